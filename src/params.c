/* params.c - parameter groups: flat buffers, the fused optimiser step, clocks, clients. */
#include "params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hg.h"

/* Gradient-clipping guard of torch.nn.utils.clip_grad_norm_ (max_norm / (norm + 1e-6)). */
#define HG_PARAMS_CLIP_EPS 1e-6

typedef struct pgroup {
    char *name;
    hg_param_hp hp;
    hg_param_clock clock;
} pgroup;

typedef struct ptensor {
    char *name;
    int group;
    hg_param_rule rule;
    int64_t count, width;
    hg_param_clock *clock;
    int64_t offset;   /* in the parameter buffer; for trainables also in grad / m / v */
} ptensor;

typedef struct pclient {
    hg_params_fn bind, after_step;
    void *ctx;
} pclient;

struct hg_params {
    const hg_kctx *k;
    pgroup *groups;
    int ngroups, cap_groups;
    ptensor *tens;
    int ntens, cap_tens;
    pclient *clients;
    int nclients, cap_clients;
    hg_param_clock **clocks; /* distinct clocks of the trainable tensors (after commit) */
    int nclocks;
    int *order;              /* trainable tensor ids in layout order (after commit) */
    int ntrain_tens;
    int64_t nparam, ntrain, nwork;
    float *param, *grad, *m, *v, *work;
    int committed;
};

void hg_param_hp_default(hg_param_hp *hp)
{
    memset(hp, 0, sizeof *hp);
    hp->lr_scale = 1.0f;
    hp->beta1 = 0.9f;
    hp->beta2 = 0.999f;
    hp->eps = 1e-8f;
    hp->decoupled_wd = 1;
}

/* Grow *arr (of elem bytes, *cap slots) to hold n + 1. */
static int grow(void **arr, int *cap, int n, size_t elem)
{
    if (n < *cap)
        return HG_OK;
    int nc = *cap ? 2 * *cap : 8;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p)
        return HG_ERRORF(HG_ENOMEM, "out of memory (parameter group tables)");
    *arr = p;
    *cap = nc;
    return HG_OK;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = hg_calloc(n, 1, "parameter name");
    if (d)
        memcpy(d, s, n);
    return d;
}

int hg_params_create(hg_params **out, const hg_kctx *k)
{
    if (!out || !k)
        return HG_ERRORF(HG_EINVAL, "hg_params_create: NULL argument");
    *out = hg_calloc(1, sizeof **out, "parameter group");
    if (!*out)
        return HG_ENOMEM;
    (*out)->k = k;
    return HG_OK;
}

void hg_params_free(hg_params *P)
{
    if (!P)
        return;
    for (int g = 0; g < P->ngroups; g++)
        hg_free(P->groups[g].name);
    for (int i = 0; i < P->ntens; i++)
        hg_free(P->tens[i].name);
    free(P->groups);
    free(P->tens);
    free(P->clients);
    hg_free(P->clocks);
    hg_free(P->order);
    hg_k_free(P->k, P->param);
    hg_k_free(P->k, P->grad);
    hg_k_free(P->k, P->m);
    hg_k_free(P->k, P->v);
    hg_k_free(P->k, P->work);
    hg_free(P);
}

const hg_kctx *hg_params_kctx(const hg_params *P) { return P->k; }

int hg_params_add_group(hg_params *P, const char *name, const hg_param_hp *hp, int *id)
{
    if (!P || !name || !hp || !id || P->committed)
        return HG_ERRORF(HG_EINVAL, "hg_params_add_group: bad argument or group already committed");
    if (!(hp->beta1 >= 0.0f && hp->beta1 < 1.0f) || !(hp->beta2 >= 0.0f && hp->beta2 < 1.0f))
        return HG_ERRORF(HG_EINVAL, "%s: Adam betas (%g, %g) must lie in [0, 1)", name,
                         (double)hp->beta1, (double)hp->beta2);
    if (!(hp->eps > 0.0f) || !isfinite(hp->eps))
        return HG_ERRORF(HG_EINVAL, "%s: Adam eps %g must be positive", name, (double)hp->eps);
    if (!(hp->weight_decay >= 0.0f) || !isfinite(hp->weight_decay))
        return HG_ERRORF(HG_EINVAL, "%s: weight decay %g must be >= 0", name,
                         (double)hp->weight_decay);
    if (!(hp->lr_scale >= 0.0f) || !isfinite(hp->lr_scale))
        return HG_ERRORF(HG_EINVAL, "%s: learning-rate scale %g must be >= 0", name,
                         (double)hp->lr_scale);
    if (grow((void **)&P->groups, &P->cap_groups, P->ngroups, sizeof *P->groups))
        return HG_ENOMEM;
    pgroup *g = &P->groups[P->ngroups];
    memset(g, 0, sizeof *g);
    g->name = dup_str(name);
    if (!g->name)
        return HG_ENOMEM;
    g->hp = *hp;
    g->clock.lr_factor = 1.0f;
    *id = P->ngroups++;
    return HG_OK;
}

int hg_params_add(hg_params *P, int group, const char *name, int64_t count, hg_param_rule rule,
                  int64_t width, hg_param_clock *clock, int *id)
{
    if (!P || !name || !*name || !id || P->committed)
        return HG_ERRORF(HG_EINVAL, "hg_params_add: bad argument or group already committed");
    if (group < 0 || group >= P->ngroups)
        return HG_ERRORF(HG_EINVAL, "hg_params_add: %s: no group %d", name, group);
    if (count < 0 || (rule == HG_PARAM_LORENTZ && (width < 1 || count % width != 0)) ||
        (unsigned)rule > HG_PARAM_LORENTZ)
        return HG_ERRORF(HG_EINVAL, "hg_params_add: %s: bad count %lld / width %lld / rule %d", name,
                         (long long)count, (long long)width, (int)rule);
    for (int i = 0; i < P->ntens; i++)
        if (strcmp(P->tens[i].name, name) == 0)
            return HG_ERRORF(HG_EINVAL, "parameter name '%s' declared twice", name);
    if (grow((void **)&P->tens, &P->cap_tens, P->ntens, sizeof *P->tens))
        return HG_ENOMEM;
    ptensor *t = &P->tens[P->ntens];
    memset(t, 0, sizeof *t);
    t->name = dup_str(name);
    if (!t->name)
        return HG_ENOMEM;
    t->group = group;
    t->rule = rule;
    t->count = count;
    t->width = width;
    t->clock = clock;
    *id = P->ntens++;
    return HG_OK;
}

int hg_params_add_client(hg_params *P, hg_params_fn bind, hg_params_fn after_step, void *ctx)
{
    if (!P || P->committed)
        return HG_ERRORF(HG_EINVAL, "hg_params_add_client: group already committed");
    if (grow((void **)&P->clients, &P->cap_clients, P->nclients, sizeof *P->clients))
        return HG_ENOMEM;
    P->clients[P->nclients++] = (pclient){bind, after_step, ctx};
    return HG_OK;
}

int hg_params_reserve_workspace(hg_params *P, int64_t floats)
{
    if (!P || floats < 0 || P->committed)
        return HG_ERRORF(HG_EINVAL, "hg_params_reserve_workspace: bad size or already committed");
    if (floats > P->nwork)
        P->nwork = floats;
    return HG_OK;
}

static float *alloc_f(const hg_kctx *k, int64_t n, const char *what)
{
    return hg_k_alloc(k, (size_t)(n > 0 ? n : 1) * sizeof(float), what);
}

int hg_params_commit(hg_params *P)
{
    if (!P || P->committed)
        return HG_ERRORF(HG_EINVAL, "hg_params_commit: group already committed");
    P->order = hg_calloc((size_t)(P->ntens > 0 ? P->ntens : 1), sizeof *P->order, "parameter order");
    P->clocks = hg_calloc((size_t)(P->ntens + P->ngroups + 1), sizeof *P->clocks, "parameter clocks");
    if (!P->order || !P->clocks)
        return HG_ENOMEM;
    /* trainables by group, then declaration; frozen after */
    int64_t off = 0;
    for (int g = 0; g < P->ngroups; g++)
        for (int i = 0; i < P->ntens; i++) {
            ptensor *t = &P->tens[i];
            if (t->group != g || t->rule == HG_PARAM_FROZEN)
                continue;
            if (!t->clock)
                t->clock = &P->groups[g].clock;
            t->offset = off;
            off += t->count;
            P->order[P->ntrain_tens++] = i;
            int known = 0;
            for (int c = 0; c < P->nclocks; c++)
                known |= P->clocks[c] == t->clock;
            if (!known)
                P->clocks[P->nclocks++] = t->clock;
        }
    P->ntrain = off;
    for (int i = 0; i < P->ntens; i++)
        if (P->tens[i].rule == HG_PARAM_FROZEN) {
            P->tens[i].offset = off;
            off += P->tens[i].count;
        }
    P->nparam = off;
    P->param = alloc_f(P->k, P->nparam, "parameters");
    P->grad = alloc_f(P->k, P->ntrain, "gradients");
    P->m = alloc_f(P->k, P->ntrain, "first moments");
    P->v = alloc_f(P->k, P->ntrain, "second moments");
    P->work = alloc_f(P->k, P->nwork, "shared workspace");
    if (!P->param || !P->grad || !P->m || !P->v || !P->work)
        return HG_ENOMEM;
    P->committed = 1;
    for (int c = 0; c < P->nclients; c++)
        if (P->clients[c].bind) {
            int rc = P->clients[c].bind(P->clients[c].ctx);
            if (rc != HG_OK)
                return rc;
        }
    return HG_OK;
}

static int valid(const hg_params *P, int id) { return P && P->committed && id >= 0 && id < P->ntens; }

float *hg_params_data(const hg_params *P, int id)
{
    return valid(P, id) ? P->param + P->tens[id].offset : NULL;
}

static float *role(const hg_params *P, int id, float *buf)
{
    return valid(P, id) && P->tens[id].rule != HG_PARAM_FROZEN ? buf + P->tens[id].offset : NULL;
}

float *hg_params_grad(const hg_params *P, int id) { return role(P, id, P->grad); }
float *hg_params_moment1(const hg_params *P, int id) { return role(P, id, P->m); }
float *hg_params_moment2(const hg_params *P, int id) { return role(P, id, P->v); }
int64_t hg_params_count(const hg_params *P, int id) { return id >= 0 && id < P->ntens ? P->tens[id].count : 0; }
float *hg_params_grad_buffer(const hg_params *P) { return P->grad; }
float *hg_params_param_buffer(const hg_params *P) { return P->param; }
float *hg_params_workspace(const hg_params *P) { return P->work; }
int64_t hg_params_workspace_floats(const hg_params *P) { return P->nwork; }

hg_param_clock *hg_params_group_clock(hg_params *P, int group)
{
    return group >= 0 && group < P->ngroups ? &P->groups[group].clock : NULL;
}

void hg_params_set_lr_scale(hg_params *P, int group, float lr_scale)
{
    if (group >= 0 && group < P->ngroups)
        P->groups[group].hp.lr_scale = lr_scale;
}

void hg_params_zero_grad(hg_params *P) { hg_k_zero(P->k, P->grad, (size_t)P->ntrain * sizeof(float)); }

double hg_params_grad_sqnorm(const hg_params *P) { return hg_k_sqnorm(P->k, P->grad, P->ntrain); }

void hg_params_scale_grad(hg_params *P, float a) { hg_k_scale(P->k, P->grad, a, P->ntrain); }

double hg_params_clip_grad_norm(hg_params *P, double max_norm)
{
    double norm = sqrt(hg_params_grad_sqnorm(P));
    if (max_norm > 0.0 && norm > max_norm)
        hg_params_scale_grad(P, (float)(max_norm / (norm + HG_PARAMS_CLIP_EPS)));
    return norm;
}

void hg_params_reset_moments(hg_params *P, int id)
{
    if (!valid(P, id) || P->tens[id].rule == HG_PARAM_FROZEN)
        return;
    const size_t bytes = (size_t)P->tens[id].count * sizeof(float);
    hg_k_zero(P->k, P->m + P->tens[id].offset, bytes);
    hg_k_zero(P->k, P->v + P->tens[id].offset, bytes);
}

/* Update the run of trainables order[a..b) (one group and rule, equal clocks). */
static void update_run(hg_params *P, int a, int b, float lr)
{
    const ptensor *t0 = &P->tens[P->order[a]];
    const hg_param_hp *hp = &P->groups[t0->group].hp;
    const hg_param_clock *c = t0->clock;
    const float lr_eff = lr * hp->lr_scale * c->lr_factor;
    const int64_t off = t0->offset;
    int64_t n = 0;
    for (int q = a; q < b; q++)
        n += P->tens[P->order[q]].count;
    if (n == 0)
        return;
    if (t0->rule == HG_PARAM_ADAM) {
        hg_k_adam_step(P->k, P->param + off, P->grad + off, P->m + off, P->v + off, n, lr_eff,
                       hp->beta1, hp->beta2, hp->eps, hp->decoupled_wd ? hp->weight_decay : 0.0f,
                       hp->decoupled_wd ? 0.0f : hp->weight_decay, c->t);
    } else { /* one tensor per run: the width is its own */
        const int64_t w = t0->width;
        hg_k_lorentz_radam_step(P->k, P->param + off, P->grad + off, P->m + off, P->v + off,
                                t0->count / w, w, lr_eff, hp->beta1, hp->beta2, hp->eps, c->t);
    }
}

int hg_params_step(hg_params *P, float lr)
{
    for (int c = 0; c < P->nclocks; c++)
        P->clocks[c]->t++;
    int a = 0;
    while (a < P->ntrain_tens) {
        const ptensor *t0 = &P->tens[P->order[a]];
        int b = a + 1;
        if (t0->rule == HG_PARAM_ADAM)
            while (b < P->ntrain_tens) {
                const ptensor *tb = &P->tens[P->order[b]];
                if (tb->group != t0->group || tb->rule != t0->rule || tb->clock->t != t0->clock->t ||
                    tb->clock->lr_factor != t0->clock->lr_factor)
                    break;
                b++;
            }
        update_run(P, a, b, lr);
        a = b;
    }
    int rc = HG_OK;
    for (int c = 0; c < P->nclients; c++)
        if (P->clients[c].after_step) {
            int r = P->clients[c].after_step(P->clients[c].ctx);
            if (rc == HG_OK)
                rc = r;
        }
    return rc;
}

int64_t hg_params_num_trainable(const hg_params *P) { return P->ntrain; }
int64_t hg_params_state_floats(const hg_params *P) { return 2 * P->ntrain; }
int64_t hg_params_param_floats(const hg_params *P) { return P->nparam; }
int hg_params_num_tensors(const hg_params *P) { return P->ntens; }
const char *hg_params_name(const hg_params *P, int id)
{
    return id >= 0 && id < P->ntens ? P->tens[id].name : NULL;
}
hg_param_rule hg_params_rule(const hg_params *P, int id)
{
    return id >= 0 && id < P->ntens ? P->tens[id].rule : HG_PARAM_FROZEN;
}
