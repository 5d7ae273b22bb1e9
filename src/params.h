/* params.h - a model's parameter group: every trainable and frozen tensor of the model (its
 * linear maps' and its ordinary ones) in flat buffers, one per role, with one fused optimiser
 * step, one gradient zeroing, one clipping call, and a workspace shared by all its clients.
 *
 * Life cycle: create; declare hyperparameter groups (hg_params_add_group) and tensors
 * (hg_params_add), register after-step hooks and bind callbacks, reserve workspace; then
 * hg_params_commit() allocates everything once (zeroed, in the kernel context's memory) and calls
 * every bind callback, which is where clients take their pointers and write initial values. After
 * commit nothing is declared and nothing is allocated: the training calls (zero_grad,
 * grad_sqnorm, scale_grad, clip_grad_norm, step) allocate nothing.
 *
 * Layout. Trainable tensors come first, ordered by hyperparameter group and then by declaration;
 * their gradients and both moments sit at the same offsets of the grad / m / v buffers, so a run
 * of adjacent tensors that share a group and a rule and whose clocks agree (same t and learning-
 * rate factor: the maps of one model run their schedules in step) is one optimiser call (the
 * fused step). Frozen tensors follow in the parameter buffer only.
 *
 * Clocks. A clock (an Adam step counter t and a learning-rate factor) belongs to whoever schedules
 * a set of tensors (an SST map restarts the counter of its sampled vectors every iteration and
 * warms their learning rate up). hg_params_step() advances every registered clock by one before
 * it updates, so a tensor is stepped with t = its clock's t after the increment and learning rate
 * lr * group lr_scale * clock lr_factor. Tensors declared with a NULL clock use the group's own.
 *
 * Rules: HG_PARAM_ADAM (Adam, torch semantics; weight decay decoupled (AdamW) or as L2, per
 * group) and HG_PARAM_LORENTZ (Riemannian Adam on rows of `width` points of the Lorentz model;
 * its second moment, one per point, uses the first count / width floats of its slot). */
#ifndef HG_PARAMS_H
#define HG_PARAMS_H

#include <stdint.h>

#include "../kernels/kernels.h"

typedef struct hg_param_hp {
    float lr_scale;     /* multiplies the base learning rate (1 by default) */
    float beta1, beta2, eps;
    float weight_decay; /* AdamW when decoupled_wd, otherwise added to the gradient (L2) */
    int decoupled_wd;
} hg_param_hp;

/* Adam (0.9, 0.999, 1e-8), no weight decay, decoupled, lr_scale 1. */
void hg_param_hp_default(hg_param_hp *hp);

typedef struct hg_param_clock {
    int64_t t;       /* steps taken with the current moments (0 right after a reset) */
    float lr_factor; /* multiplies the learning rate of the next step */
} hg_param_clock;

typedef enum { HG_PARAM_FROZEN = 0, HG_PARAM_ADAM, HG_PARAM_LORENTZ } hg_param_rule;

typedef struct hg_params hg_params;

/* Called once by hg_params_commit after allocation (bind) or by hg_params_step after the
 * updates (after_step). Return HG_OK or a status (recorded by the callee). */
typedef int (*hg_params_fn)(void *ctx);

/* A group on context k (borrowed; outlives it). Errors: HG_EINVAL, HG_ENOMEM. */
int hg_params_create(hg_params **out, const hg_kctx *k);
void hg_params_free(hg_params *P); /* NULL is fine */
const hg_kctx *hg_params_kctx(const hg_params *P);

/* Declaration (before commit). A hyperparameter group: returns its id (>= 0) in *id.
 * Errors: HG_EINVAL (bad values, after commit), HG_ENOMEM. */
int hg_params_add_group(hg_params *P, const char *name, const hg_param_hp *hp, int *id);
/* A tensor of count floats named `name` (unique; copied) in group `group` with `rule`; width is
 * the row width for HG_PARAM_LORENTZ (count a multiple of it), ignored otherwise; clock NULL: the
 * group's clock. Returns its id in *id. Errors: HG_EINVAL (duplicate or empty name, bad group,
 * count < 0, after commit), HG_ENOMEM. */
int hg_params_add(hg_params *P, int group, const char *name, int64_t count, hg_param_rule rule,
                  int64_t width, hg_param_clock *clock, int *id);
/* Register a callback pair: bind (may be NULL) runs at commit, after_step (may be NULL) after
 * every step's updates, in registration order. Errors: HG_EINVAL, HG_ENOMEM. */
int hg_params_add_client(hg_params *P, hg_params_fn bind, hg_params_fn after_step, void *ctx);
/* The shared workspace must hold at least `floats` floats (the maximum of all requests is
 * allocated). Errors: HG_EINVAL (negative, after commit). */
int hg_params_reserve_workspace(hg_params *P, int64_t floats);

/* Allocate every buffer (zeroed) and call the bind callbacks. Errors: HG_ENOMEM, HG_EINVAL
 * (twice), or the first failing bind's status. */
int hg_params_commit(hg_params *P);

/* Pointers into k's memory (after commit); grad, m and v are NULL for a frozen tensor. */
float *hg_params_data(const hg_params *P, int id);
float *hg_params_grad(const hg_params *P, int id);
float *hg_params_moment1(const hg_params *P, int id);
float *hg_params_moment2(const hg_params *P, int id);
int64_t hg_params_count(const hg_params *P, int id);
/* The flat buffers themselves (after commit): every trainable tensor's gradient, contiguous in
 * layout order (hg_params_num_trainable floats), e.g. to sum it over processes in one call; and
 * every parameter (hg_params_param_floats floats), e.g. to checksum a replica. */
float *hg_params_grad_buffer(const hg_params *P);
float *hg_params_param_buffer(const hg_params *P);
float *hg_params_workspace(const hg_params *P);
int64_t hg_params_workspace_floats(const hg_params *P);
/* The group's own clock (for tensors declared with clock NULL). */
hg_param_clock *hg_params_group_clock(hg_params *P, int group);
/* Change a group's learning-rate scale (e.g. from an option, before training). */
void hg_params_set_lr_scale(hg_params *P, int group, float lr_scale);

/* ---- training calls (after commit; allocate nothing) ---- */
void hg_params_zero_grad(hg_params *P);
double hg_params_grad_sqnorm(const hg_params *P);
void hg_params_scale_grad(hg_params *P, float a);
/* Global-norm clipping as torch.nn.utils.clip_grad_norm_: returns the norm before clipping and,
 * when max_norm > 0 and norm > max_norm, scales every gradient by max_norm / (norm + 1e-6). */
double hg_params_clip_grad_norm(hg_params *P, double max_norm);
/* Zero both moments of tensor id (nothing for a frozen one). */
void hg_params_reset_moments(hg_params *P, int id);
/* One step: every registered clock t += 1, every trainable tensor updated by its rule (adjacent
 * tensors of one group and rule with equal clocks in one call), then the after_step callbacks. Returns the
 * first callback failure (the remaining callbacks still run). */
int hg_params_step(hg_params *P, float lr);

/* ---- counts and checkpoint view ---- */
int64_t hg_params_num_trainable(const hg_params *P);  /* floats with a gradient */
int64_t hg_params_state_floats(const hg_params *P);   /* moment floats (2 per trainable) */
int64_t hg_params_param_floats(const hg_params *P);   /* every parameter float */
int hg_params_num_tensors(const hg_params *P);
const char *hg_params_name(const hg_params *P, int id);
hg_param_rule hg_params_rule(const hg_params *P, int id);

#endif
