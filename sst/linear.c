/* linear.c - the shared linear-map backend: full rank, LoRA, ReLoRA*, SST; the SST method's own
 * pieces are in sst/spectral.c.
 *
 * Fields and layout: sst/linear_internal.h. Choices the papers leave open, all ours:
 *  - Weight decay acts on full: W; LoRA/ReLoRA: A and B; SST: sigma only (the singular vectors are
 *    unit-length directions, decaying them would only fight the renormalisation).
 *  - ReLoRA* and SST warm up linearly from their first period on: factor min(1, (s + 1) / warmup)
 *    at the s-th step (from 0) of every iteration / merge period.
 *  - The LoRA A draw and the SST draws share one stream seeded by `seed`.
 * Memory: the tensors live in the parameter group; every array is touched only through
 * kernels/kernels.h, so the same code runs on the CPU and on a CUDA context; host copies are made
 * (into buffers allocated at create) only where host logic needs the values. SVDs are thin, in
 * double (hg_k_svd), in the group's shared workspace, so the training step never allocates. */
#include "linear.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/hg.h"
#include "../src/rng.h"
#include "linear_internal.h"

/* ---------------------------------------------------------------- names and defaults */

void hg_linear_opts_default(hg_linear_opts *o)
{
    memset(o, 0, sizeof *o);
    o->method = HG_LINEAR_FULL;
    o->rank = 1;
    o->lora_alpha = 0.0f; /* = r */
    o->steps_per_iter = 100;
    o->warmup = 100;
    o->iters_per_round = 0; /* ceil(k / r) */
    o->sampling = HG_SST_SAMPLE_SIGMA;
    o->renorm = 1;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = 0.0f;
    o->decoupled_wd = 1;
}

static const char *const method_names[] = {"full", "lora", "relora", "sst"};
static const char *const sampling_names[] = {"sigma", "mixed", "uniform", "top"};
static const char *const product_names[] = {"auto", "dense", "factored"};
#define NAMES(a) (a), sizeof(a) / sizeof *(a)

/* The index of s in names (n of them), or -1. */
static int name_index(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

int hg_linear_method_parse(const char *s) { return name_index(s, NAMES(method_names)); }
int hg_sst_sampling_parse(const char *s) { return name_index(s, NAMES(sampling_names)); }
int hg_sst_product_parse(const char *s) { return name_index(s, NAMES(product_names)); }

void hg_linear_group_hp(const hg_linear_opts *o, hg_param_hp *weights, hg_param_hp *vectors)
{
    hg_param_hp_default(weights);
    weights->beta1 = o->beta1;
    weights->beta2 = o->beta2;
    weights->eps = o->eps;
    weights->weight_decay = o->weight_decay;
    weights->decoupled_wd = o->decoupled_wd;
    *vectors = *weights;
    vectors->weight_decay = 0.0f;
}

const char *hg_linear_method_name(hg_linear_method m)
{
    return (unsigned)m < sizeof method_names / sizeof *method_names ? method_names[m] : "?";
}

const char *hg_sst_sampling_name(hg_sst_sampling s)
{
    return (unsigned)s < sizeof sampling_names / sizeof *sampling_names ? sampling_names[s] : "?";
}

/* ---------------------------------------------------------------- small helpers */

void hg__gemm(const hg_kctx *k, int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc)
{
    if (hg_k_gemm(k, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) != 0)
        abort();
}

void hg__gemm_fp32(const hg_kctx *k, int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                   int64_t ldc)
{
    hg_kctx exact = *k;
    exact.precision = HG_PREC_FP32;
    hg__gemm(&exact, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static float warmup_factor(int64_t step_in_period, int warmup)
{
    if (warmup <= 0)
        return 1.0f;
    double f = (double)(step_in_period + 1) / (double)warmup;
    return f < 1.0 ? (float)f : 1.0f;
}

static int is_lora(const hg_linear *L)
{
    return L->o.method == HG_LINEAR_LORA || L->o.method == HG_LINEAR_RELORA;
}

float hg__linear_lr_factor(const hg_linear *L)
{
    if (L->o.method == HG_LINEAR_SST || L->o.method == HG_LINEAR_RELORA)
        return warmup_factor(L->in_iter, L->o.warmup);
    return 1.0f;
}

/* The learning-rate factors of the next step from the schedule's position: ReLoRA*'s A and B
 * and SST's sampled vectors warm up after each merge / iteration start; the rest take 1. */
static void set_lr_factors(hg_linear *L)
{
    L->clk_main.lr_factor = L->o.method == HG_LINEAR_RELORA ? hg__linear_lr_factor(L) : 1.0f;
    L->clk_vec.lr_factor = L->o.method == HG_LINEAR_SST ? hg__linear_lr_factor(L) : 1.0f;
}

/* torch.nn.init.kaiming_uniform_(A, a=sqrt(5)) on A (r x n): fan_in = n, gain = sqrt(2/(1+5)),
 * bound = gain * sqrt(3 / fan_in) = 1 / sqrt(n). Drawn on the host, then uploaded. */
static void lora_init_A(hg_linear *L)
{
    const double bound = 1.0 / sqrt((double)L->n);
    for (int64_t i = 0; i < L->r * L->n; i++)
        L->A_host[i] = (float)((2.0 * hg_rng_uniform(&L->rng) - 1.0) * bound);
    hg_k_upload(L->k, L->A, L->A_host, (size_t)(L->r * L->n) * sizeof(float));
}

/* W (=) W0 + s B A; SST's W is marked stale and rebuilt where it is next used (hg__sst_weight),
 * which a step on the factored path never does. */
static void materialise(hg_linear *L)
{
    if (is_lora(L)) {
        hg_k_copy(L->k, L->W, L->W0, (size_t)(L->m * L->n) * sizeof(float));
        hg__gemm_fp32(L->k, 0, 0, L->m, L->n, L->r, L->scale, L->B, L->r, L->A, L->n, 1.0f, L->W,
                      L->n);
    } else if (L->o.method == HG_LINEAR_SST) {
        L->W_stale = 1;
        L->W_pinned = 0;
        L->xv_X = NULL; /* V moved */
    }
}

/* ---------------------------------------------------------------- schedule state (checkpoints) */

static int64_t sched_nwords(const hg_linear *L)
{
    return HG__SCHED_NFIXED + (L->o.method == HG_LINEAR_SST ? L->r : 0);
}

static void put_word(float *f, uint64_t x)
{
    for (int q = 0; q < HG__SCHED_FLOATS_PER_WORD; q++)
        f[q] = (float)((x >> (16 * q)) & 0xffffu);
}

static int get_word(const float *f, uint64_t *x)
{
    uint64_t v = 0;
    for (int q = 0; q < HG__SCHED_FLOATS_PER_WORD; q++) {
        double d = f[q];
        if (!(d >= 0.0 && d <= 65535.0 && d == floor(d)))
            return 0;
        v |= (uint64_t)d << (16 * q);
    }
    *x = v;
    return 1;
}

static void sched_store(hg_linear *L)
{
    const int w = HG__SCHED_FLOATS_PER_WORD;
    put_word(L->sched + w * HG__SCHED_STEP, (uint64_t)L->step);
    put_word(L->sched + w * HG__SCHED_T_MAIN, (uint64_t)L->clk_main.t);
    put_word(L->sched + w * HG__SCHED_T_VEC, (uint64_t)L->clk_vec.t);
    put_word(L->sched + w * HG__SCHED_IN_ITER, (uint64_t)L->in_iter);
    put_word(L->sched + w * HG__SCHED_IN_ROUND, (uint64_t)L->in_round);
    for (int q = 0; q < 4; q++)
        put_word(L->sched + w * (HG__SCHED_RNG0 + q), L->rng.s[q]);
    if (L->o.method == HG_LINEAR_SST)
        for (int64_t j = 0; j < L->r; j++)
            put_word(L->sched + w * (HG__SCHED_NFIXED + j), (uint64_t)L->sel[j]);
}

/* Take the schedule from the sched tensor when it is well formed; otherwise keep the current one. */
static void sched_load(hg_linear *L)
{
    const int w = HG__SCHED_FLOATS_PER_WORD;
    uint64_t x[HG__SCHED_NFIXED];
    for (int i = 0; i < HG__SCHED_NFIXED; i++)
        if (!get_word(L->sched + w * i, &x[i]))
            return;
    const int periodic = L->o.method == HG_LINEAR_RELORA || L->o.method == HG_LINEAR_SST;
    if (x[HG__SCHED_STEP] > INT64_MAX / 2 || x[HG__SCHED_T_MAIN] > x[HG__SCHED_STEP] ||
        x[HG__SCHED_T_VEC] > x[HG__SCHED_STEP] ||
        (periodic && x[HG__SCHED_IN_ITER] >= (uint64_t)L->o.steps_per_iter) ||
        (L->o.method == HG_LINEAR_SST && x[HG__SCHED_IN_ROUND] >= (uint64_t)L->T2))
        return;
    if (L->o.method == HG_LINEAR_SST) {
        /* r distinct indices below k, or nothing is taken */
        for (int64_t j = 0; j < L->r; j++) {
            uint64_t s, t;
            if (!get_word(L->sched + w * (HG__SCHED_NFIXED + j), &s) || s >= (uint64_t)L->kk)
                return;
            for (int64_t q = 0; q < j; q++)
                if (get_word(L->sched + w * (HG__SCHED_NFIXED + q), &t) && t == s)
                    return;
        }
        for (int64_t j = 0; j < L->r; j++) {
            uint64_t s = 0;
            get_word(L->sched + w * (HG__SCHED_NFIXED + j), &s);
            L->sel[j] = (int64_t)s;
        }
        hg__sst_sched_indices_loaded(L);
    }
    L->step = (int64_t)x[HG__SCHED_STEP];
    L->clk_main.t = (int64_t)x[HG__SCHED_T_MAIN];
    L->clk_vec.t = (int64_t)x[HG__SCHED_T_VEC];
    L->in_iter = (int64_t)x[HG__SCHED_IN_ITER];
    L->in_round = (int64_t)x[HG__SCHED_IN_ROUND];
    for (int q = 0; q < 4; q++)
        L->rng.s[q] = x[HG__SCHED_RNG0 + q];
}

static int validate(const hg_kctx *k, int64_t m, int64_t n, const float *W_init,
                    const hg_linear_opts *o)
{
    if (!k || !W_init || !o)
        return HG_ERRORF(HG_EINVAL, "hg_linear_create: NULL argument");
    if (m < 1 || n < 1 || m > INT_MAX / 8 || n > INT_MAX / 8)
        return HG_ERRORF(HG_EINVAL, "linear layer size %lld x %lld out of range (1 .. %d)",
                         (long long)m, (long long)n, INT_MAX / 8);
    if ((unsigned)o->method > HG_LINEAR_SST)
        return HG_ERRORF(HG_EINVAL, "--method: unknown linear method %d", (int)o->method);
    const char *mname = hg_linear_method_name(o->method);
    const int64_t kk = HG_MIN(m, n);
    if (o->method != HG_LINEAR_FULL) {
        if (o->rank < 1)
            return HG_ERRORF(HG_EINVAL, "%s: --rank %d must be >= 1", mname, o->rank);
        if (o->rank > kk)
            return HG_ERRORF(HG_EINVAL, "%s: --rank %d exceeds min(out, in) = %lld (layer %lld x %lld)",
                             mname, o->rank, (long long)kk, (long long)m, (long long)n);
    }
    if ((o->method == HG_LINEAR_LORA || o->method == HG_LINEAR_RELORA) && !isfinite(o->lora_alpha))
        return HG_ERRORF(HG_EINVAL, "%s: --lora-alpha must be finite", mname);
    if (o->method == HG_LINEAR_RELORA || o->method == HG_LINEAR_SST) {
        if (o->steps_per_iter < 1)
            return HG_ERRORF(HG_EINVAL, "%s: --sst-steps (T3) %d must be >= 1", mname,
                             o->steps_per_iter);
        if (o->warmup < 0)
            return HG_ERRORF(HG_EINVAL, "%s: --sst-warmup %d must be >= 0", mname, o->warmup);
    }
    if (o->method == HG_LINEAR_SST) {
        if (o->iters_per_round < 0)
            return HG_ERRORF(HG_EINVAL, "sst: --sst-rounds-iters (T2) %d must be >= 0 (0 = ceil(k/r))",
                             o->iters_per_round);
        if ((unsigned)o->sampling > HG_SST_SAMPLE_TOP)
            return HG_ERRORF(HG_EINVAL, "sst: --sst-sampling: unknown rule %d", (int)o->sampling);
        if ((unsigned)o->product > HG_SST_PRODUCT_FACTORED)
            return HG_ERRORF(HG_EINVAL, "sst: --sst-product: unknown path %d", (int)o->product);
    }
    if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f) || !(o->beta2 >= 0.0f && o->beta2 < 1.0f))
        return HG_ERRORF(HG_EINVAL, "Adam betas (%g, %g) must lie in [0, 1)", (double)o->beta1,
                         (double)o->beta2);
    if (!(o->eps > 0.0f) || !isfinite(o->eps))
        return HG_ERRORF(HG_EINVAL, "Adam eps %g must be positive", (double)o->eps);
    if (!(o->weight_decay >= 0.0f) || !isfinite(o->weight_decay))
        return HG_ERRORF(HG_EINVAL, "--weight-decay %g must be >= 0", (double)o->weight_decay);
    for (int64_t i = 0; i < m * n; i++)
        if (!isfinite(W_init[i]))
            return HG_ERRORF(HG_EINVAL, "%s: initial weight (%lld x %lld) has a non-finite entry at %lld",
                             mname, (long long)m, (long long)n, (long long)i);
    return HG_OK;
}

/* ---------------------------------------------------------------- create, bind, free */

static int add_tensor(hg_linear *L, int group, const char *nm, int64_t count, hg_param_rule rule,
                      hg_param_clock *clock, int *id)
{
    char full[512];
    if (snprintf(full, sizeof full, "%s.%s", L->name, nm) >= (int)sizeof full)
        return HG_ERRORF(HG_EINVAL, "linear map name '%s' too long", L->name);
    return hg_params_add(L->P, group, full, count, rule, 0, clock, id);
}

/* Checkpoint view entry i: group tensor `id`, moment q (0 data, 1 first, 2 second moment). */
static void view(hg_linear *L, const char *nm, int id, int q)
{
    int t = L->ntens++;
    snprintf(L->tname[t], sizeof L->tname[t], "%s%s", nm, q == 0 ? "" : q == 1 ? ".adam_m" : ".adam_v");
    L->tid[t] = id;
    L->tmom[t] = q;
    L->tcount[t] = id >= 0 ? hg_params_count(L->P, id) : 0;
}

static int bind(void *ctx);
static int after_step(void *ctx);

int hg_linear_create(hg_linear **out, hg_params *P, int group, int vec_group, const char *name,
                     int64_t m, int64_t n, const float *W_init, const hg_linear_opts *o,
                     uint64_t seed, int64_t max_rows)
{
    int rc = HG_OK;
    hg_linear *L = NULL;
    if (!out)
        return HG_ERRORF(HG_EINVAL, "hg_linear_create: NULL output");
    *out = NULL;
    if (!P || !name || max_rows < 0)
        return HG_ERRORF(HG_EINVAL, "hg_linear_create: NULL group or name, or max_rows < 0");
    const hg_kctx *k = hg_params_kctx(P);
    HG_CHECK(validate(k, m, n, W_init, o));

    L = hg_calloc(1, sizeof *L, "linear layer");
    if (!L) {
        rc = HG_ENOMEM;
        goto done;
    }
    L->P = P;
    L->k = k;
    L->o = *o;
    L->m = m;
    L->n = n;
    L->kk = HG_MIN(m, n);
    L->max_rows = max_rows;
    const int64_t kk = L->kk, mn = m * n;
    const hg_linear_method meth = o->method;
    L->r = meth == HG_LINEAR_FULL ? 0 : o->rank;
    const int64_t r = L->r;
    L->scale = is_lora(L) ? (o->lora_alpha > 0.0f ? o->lora_alpha : (float)r) / (float)r : 0.0f;
    L->T2 = o->iters_per_round > 0 ? o->iters_per_round : (kk + r - 1) / (r > 0 ? r : 1);
    L->clk_main.lr_factor = 1.0f;
    L->clk_vec.lr_factor = 1.0f;
    hg_rng_seed(&L->rng, seed);
    L->id_W = L->id_W0 = L->id_A = L->id_B = L->id_sigma = -1;
    L->id_US = L->id_VS = L->id_UR = L->id_VR = -1;
    const size_t name_len = strlen(name) + 1;
    L->name = hg_calloc(name_len, 1, "linear map name");
    L->W_init = hg_calloc((size_t)mn, sizeof(float), "initial weight copy");
    L->sched = hg_calloc((size_t)(HG__SCHED_FLOATS_PER_WORD * (HG__SCHED_NFIXED + (meth == HG_LINEAR_SST ? r : 0))),
                         sizeof(float), "linear schedule state");
    if (!L->name || !L->W_init || !L->sched) {
        rc = HG_ENOMEM;
        goto done;
    }
    memcpy(L->name, name, name_len);
    memcpy(L->W_init, W_init, (size_t)mn * sizeof(float));

    int64_t ws = 0;
    switch (meth) {
    case HG_LINEAR_FULL:
        HG_CHECK(add_tensor(L, group, "W", mn, HG_PARAM_ADAM, &L->clk_main, &L->id_W));
        L->ntrain = mn;
        break;
    case HG_LINEAR_LORA:
    case HG_LINEAR_RELORA:
        HG_CHECK(add_tensor(L, group, "W0", mn, HG_PARAM_FROZEN, NULL, &L->id_W0));
        HG_CHECK(add_tensor(L, group, "A", r * n, HG_PARAM_ADAM, &L->clk_main, &L->id_A));
        HG_CHECK(add_tensor(L, group, "B", m * r, HG_PARAM_ADAM, &L->clk_main, &L->id_B));
        L->ntrain = r * (m + n);
        L->A_host = hg_calloc((size_t)(r * n), sizeof(float), "LoRA A staging");
        if (!L->A_host) {
            rc = HG_ENOMEM;
            goto done;
        }
        ws = 2 * r * max_rows;
        break;
    default: /* SST */
        HG_CHECK(add_tensor(L, group, "sigma", kk, HG_PARAM_ADAM, &L->clk_main, &L->id_sigma));
        HG_CHECK(add_tensor(L, vec_group, "U_S", r * m, HG_PARAM_ADAM, &L->clk_vec, &L->id_US));
        HG_CHECK(add_tensor(L, vec_group, "V_S", r * n, HG_PARAM_ADAM, &L->clk_vec, &L->id_VS));
        HG_CHECK(add_tensor(L, group, "U_R", (kk - r) * m, HG_PARAM_FROZEN, NULL, &L->id_UR));
        HG_CHECK(add_tensor(L, group, "V_R", (kk - r) * n, HG_PARAM_FROZEN, NULL, &L->id_VR));
        L->ntrain = kk + r * (m + n);
        L->sel = hg_calloc((size_t)r, sizeof *L->sel, "SST sampled indices");
        L->order = hg_calloc((size_t)(4 * kk), sizeof *L->order, "SST layout");
        L->pos = hg_calloc((size_t)kk, sizeof *L->pos, "SST layout");
        L->wsamp = hg_calloc((size_t)kk, sizeof *L->wsamp, "SST sampling weights");
        L->sigma_host = hg_calloc((size_t)(2 * kk), sizeof *L->sigma_host, "SST sigma host copy");
        if (!L->sel || !L->order || !L->pos || !L->wsamp || !L->sigma_host) {
            rc = HG_ENOMEM;
            goto done;
        }
        if (hg_k_svd_workspace_bytes(k, m, n) < 0) {
            rc = HG_ERRORF(HG_ELAPACK, "sst: SVD workspace query for %lld x %lld failed",
                           (long long)m, (long long)n);
            goto done;
        }
        L->w_less = max_rows > 0 && hg__sst_factored(L, max_rows);
        ws = hg__sst_workspace_floats(L, max_rows);
        /* the forward's X V is kept for the backward at the row count the map is sized for,
           when it takes the factored path and the copy is no larger than W */
        if (max_rows > 0 && hg__sst_factored(L, max_rows) && kk * max_rows <= mn)
            L->xv_cap = max_rows;
        if (L->xv_cap > 0 && !(L->XV = hg_k_alloc(k, (size_t)(kk * L->xv_cap) * sizeof(float),
                                                   "SST forward's X V"))) {
            rc = HG_ENOMEM;
            goto done;
        }
        break;
    }
    if (is_lora(L) || (meth == HG_LINEAR_SST && !L->w_less)) {
        L->W_own = hg_k_alloc(k, (size_t)mn * sizeof(float), "materialised weight");
        if (!L->W_own) {
            rc = HG_ENOMEM;
            goto done;
        }
        L->W = L->W_own;
    }
    HG_CHECK(hg_params_reserve_workspace(P, ws));
    HG_CHECK(hg_params_add_client(P, bind, after_step, L));

    /* checkpoint view: the parameters, then the moments and schedule for an exact resume */
    switch (meth) {
    case HG_LINEAR_FULL:
        view(L, "W", L->id_W, 0), view(L, "W", L->id_W, 1), view(L, "W", L->id_W, 2);
        break;
    case HG_LINEAR_LORA:
    case HG_LINEAR_RELORA:
        view(L, "W0", L->id_W0, 0), view(L, "A", L->id_A, 0), view(L, "B", L->id_B, 0);
        view(L, "A", L->id_A, 1), view(L, "A", L->id_A, 2);
        view(L, "B", L->id_B, 1), view(L, "B", L->id_B, 2);
        break;
    default:
        view(L, "sigma", L->id_sigma, 0), view(L, "U_S", L->id_US, 0), view(L, "V_S", L->id_VS, 0);
        view(L, "U_R", L->id_UR, 0), view(L, "V_R", L->id_VR, 0);
        view(L, "sigma", L->id_sigma, 1), view(L, "sigma", L->id_sigma, 2);
        view(L, "U_S", L->id_US, 1), view(L, "U_S", L->id_US, 2);
        view(L, "V_S", L->id_VS, 1), view(L, "V_S", L->id_VS, 2);
        break;
    }
    view(L, "sched", -1, 0);
    L->tcount[L->ntens - 1] = HG__SCHED_FLOATS_PER_WORD * sched_nwords(L);

done:
    if (rc != HG_OK) {
        hg_linear_free(L);
        L = NULL;
    }
    *out = L;
    return rc;
}

/* At commit: take the pointers, write the initial state. */
static int bind(void *ctx)
{
    hg_linear *L = ctx;
    hg_params *P = L->P;
    const int64_t mn = L->m * L->n;
    int rc = HG_OK;
    switch (L->o.method) {
    case HG_LINEAR_FULL:
        L->W = hg_params_data(P, L->id_W);
        L->gW = hg_params_grad(P, L->id_W);
        hg_k_upload(L->k, L->W, L->W_init, (size_t)mn * sizeof(float));
        break;
    case HG_LINEAR_LORA:
    case HG_LINEAR_RELORA:
        L->W0 = hg_params_data(P, L->id_W0);
        L->A = hg_params_data(P, L->id_A);
        L->gA = hg_params_grad(P, L->id_A);
        L->B = hg_params_data(P, L->id_B);
        L->gB = hg_params_grad(P, L->id_B);
        hg_k_upload(L->k, L->W0, L->W_init, (size_t)mn * sizeof(float));
        lora_init_A(L); /* B stays 0: W = W0 exactly */
        break;
    default:
        L->sigma = hg_params_data(P, L->id_sigma);
        L->gsigma = hg_params_grad(P, L->id_sigma);
        L->msigma = hg_params_moment1(P, L->id_sigma);
        L->vsigma = hg_params_moment2(P, L->id_sigma);
        L->US = hg_params_data(P, L->id_US);
        L->gU = hg_params_grad(P, L->id_US);
        L->mU = hg_params_moment1(P, L->id_US);
        L->vU = hg_params_moment2(P, L->id_US);
        L->VS = hg_params_data(P, L->id_VS);
        L->gV = hg_params_grad(P, L->id_VS);
        L->mV = hg_params_moment1(P, L->id_VS);
        L->vV = hg_params_moment2(P, L->id_VS);
        L->UR = hg_params_data(P, L->id_UR);
        L->VR = hg_params_data(P, L->id_VR);
        /* the SVD of W_init */
        float *Ws = hg__sst_svd_input(L);
        hg_k_upload(L->k, Ws, L->W_init, (size_t)mn * sizeof(float));
        rc = hg__sst_decompose(L, Ws);
        if (rc == HG_OK)
            hg__sst_begin_iteration(L);
        break;
    }
    hg_free(L->W_init);
    L->W_init = NULL;
    if (rc == HG_OK)
        materialise(L);
    set_lr_factors(L);
    sched_store(L);
    return rc;
}

void hg_linear_free(hg_linear *L)
{
    if (!L)
        return;
    hg_k_free(L->k, L->W_own);
    hg_k_free(L->k, L->XV);
    hg_free(L->name);
    hg_free(L->W_init);
    hg_free(L->sched);
    hg_free(L->sel);
    hg_free(L->order);
    hg_free(L->pos);
    hg_free(L->wsamp);
    hg_free(L->sigma_host);
    hg_free(L->A_host);
    hg_free(L);
}

int64_t hg_linear_rows(const hg_linear *L) { return L->m; }
int64_t hg_linear_cols(const hg_linear *L) { return L->n; }
const float *hg_linear_weight(const hg_linear *L)
{
    return L->o.method == HG_LINEAR_SST ? hg__sst_weight(L) : L->W;
}

int hg_linear_load_weight(hg_linear *L, const float *W)
{
    if (!L->W && !hg__sst_weight(L)) /* an SST map without W gets one */
        return HG_ENOMEM;
    hg_k_upload(L->k, L->W, W, (size_t)(L->m * L->n) * sizeof(float));
    L->W_stale = 0;
    L->W_pinned = L->o.method == HG_LINEAR_SST; /* used as it is, until rematerialised */
    return HG_OK;
}

/* ---------------------------------------------------------------- forward, backward */

void hg_linear_forward(const hg_linear *L, float *Y, const float *X, const float *bias, int64_t rows)
{
    if (L->o.method == HG_LINEAR_SST)
        hg__sst_forward(L, Y, X, rows);
    else
        hg__gemm(L->k, 0, 1, rows, L->m, L->n, 1.0f, X, L->n, L->W, L->n, 0.0f, Y, L->m);
    if (bias)
        hg_k_add_bias_rows(L->k, Y, bias, rows, L->m);
}

int hg_linear_backward(hg_linear *L, float *dX, float *gbias, const float *dY, const float *X,
                       int64_t rows)
{
    const int64_t m = L->m, n = L->n, r = L->r;
    if (rows < 0 || rows > L->max_rows)
        return HG_ERRORF(HG_EINVAL, "linear %s: backward of %lld rows, created for at most %lld",
                         L->name, (long long)rows, (long long)L->max_rows);
    const int factored = L->o.method == HG_LINEAR_SST && hg__sst_factored(L, rows);
    if (dX && !factored) /* the factored SST path writes dX with its gradients */
        hg__gemm(L->k, 0, 0, rows, n, m, 1.0f, dY, m, hg_linear_weight(L), n, 0.0f, dX, n);
    if (gbias)
        hg_k_col_sums(L->k, gbias, dY, rows, m);
    switch (L->o.method) {
    case HG_LINEAR_FULL:
        hg__gemm(L->k, 1, 0, m, n, rows, 1.0f, dY, m, X, n, 1.0f, L->gW, n);
        break;
    case HG_LINEAR_LORA:
    case HG_LINEAR_RELORA: {
        /* W = W0 + s B A: gB += s dY^T (X A^T), gA += s (dY B)^T X */
        float *XA = hg_params_workspace(L->P), *dYB = XA + rows * r;
        hg__gemm(L->k, 0, 1, rows, r, n, 1.0f, X, n, L->A, n, 0.0f, XA, r);
        hg__gemm(L->k, 0, 0, rows, r, m, 1.0f, dY, m, L->B, r, 0.0f, dYB, r);
        hg__gemm(L->k, 1, 0, m, r, rows, L->scale, dY, m, XA, r, 1.0f, L->gB, r);
        hg__gemm(L->k, 1, 0, r, n, rows, L->scale, dYB, r, X, n, 1.0f, L->gA, n);
        break;
    }
    default:
        hg__sst_backward(L, factored ? dX : NULL, dY, X, rows);
        break;
    }
    return HG_OK;
}

void hg_linear_accumulate_grad(hg_linear *L, const float *G)
{
    const int64_t m = L->m, n = L->n, r = L->r;
    switch (L->o.method) {
    case HG_LINEAR_FULL:
        hg_k_axpy(L->k, L->gW, 1.0f, G, m * n);
        break;
    case HG_LINEAR_LORA:
    case HG_LINEAR_RELORA:
        /* W = W0 + s B A: gB += s G A^T (m x r), gA += s B^T G (r x n) */
        hg__gemm(L->k, 0, 1, m, r, n, L->scale, G, n, L->A, n, 1.0f, L->gB, r);
        hg__gemm(L->k, 1, 0, r, n, m, L->scale, L->B, r, G, n, 1.0f, L->gA, n);
        break;
    default:
        hg__sst_grad_from_G(L, G);
        break;
    }
}

/* ---------------------------------------------------------------- after the group's update */

static int after_step(void *ctx)
{
    hg_linear *L = ctx;
    const hg_linear_opts *o = &L->o;
    int rc = HG_OK;
    if (o->method == HG_LINEAR_SST)
        hg__sst_after_update(L);
    L->step++;
    L->in_iter++;
    materialise(L);

    /* schedule hooks (timed: on a device the step's pending work is waited for first, and the
     * hook's own at the end, which also reports a failure of either as HG_ECUDA) */
    if (o->method == HG_LINEAR_RELORA && L->in_iter >= o->steps_per_iter) {
        /* ReLoRA* merge: W0 += s B A (W unchanged), fresh A, B = 0, fresh Adam state, warm-up again */
        (void)hg_k_sync(L->k); /* errors are sticky: the sync below reports them */
        double t0 = hg_now();
        hg__gemm_fp32(L->k, 0, 0, L->m, L->n, L->r, L->scale, L->B, L->r, L->A, L->n, 1.0f,
                      L->W0, L->n);
        lora_init_A(L);
        hg_k_zero(L->k, L->B, (size_t)(L->m * L->r) * sizeof(float));
        hg_params_reset_moments(L->P, L->id_A);
        hg_params_reset_moments(L->P, L->id_B);
        L->clk_main.t = 0;
        L->in_iter = 0;
        materialise(L);
        rc = hg_k_sync(L->k);
        L->n_merge++;
        L->reorth_seconds += hg_now() - t0;
    } else if (o->method == HG_LINEAR_SST && L->in_iter >= o->steps_per_iter) {
        if (++L->in_round >= L->T2) {
            (void)hg_k_sync(L->k);
            double t0 = hg_now();
            L->in_round = 0;
            rc = hg__linear_sst_round_end(L); /* on failure the old triplets stay; report it */
            const int rs = hg_k_sync(L->k);
            if (rc == HG_OK)
                rc = rs;
            L->n_reorth++;
            L->reorth_seconds += hg_now() - t0;
        }
        hg__sst_begin_iteration(L);
    } else if (o->method != HG_LINEAR_RELORA && o->method != HG_LINEAR_SST) {
        L->in_iter = 0; /* no periods */
    }
    set_lr_factors(L);
    sched_store(L);
    return rc;
}

/* ---------------------------------------------------------------- counts, checkpoints */

int64_t hg_linear_num_trainable(const hg_linear *L) { return L->ntrain; }
int64_t hg_linear_state_floats(const hg_linear *L) { return 2 * L->ntrain; }

void hg_linear_get_bytes(const hg_linear *L, hg_linear_bytes *out)
{
    int64_t params = 0;
    for (int i = 0; i < L->ntens; i++)
        if (L->tid[i] >= 0 && L->tmom[i] == 0)
            params += L->tcount[i];
    out->params = (int64_t)sizeof(float) * params;
    out->grads = (int64_t)sizeof(float) * L->ntrain;
    out->moments = (int64_t)sizeof(float) * 2 * L->ntrain;
    out->scratch = (L->W_own ? (int64_t)sizeof(float) * L->m * L->n : 0) +
                   (int64_t)sizeof(float) * L->kk * L->xv_cap;
    int64_t ws = 0;
    if (is_lora(L))
        ws = 2 * L->r * L->max_rows;
    else if (L->o.method == HG_LINEAR_SST)
        ws = hg__sst_workspace_floats(L, L->max_rows);
    out->shared_workspace = (int64_t)sizeof(float) * ws;
}

void hg_linear_get_stats(const hg_linear *L, hg_linear_stats *out)
{
    out->reorths = L->n_reorth;
    out->merges = L->n_merge;
    out->schedule_seconds = L->reorth_seconds;
}

int hg_linear_num_tensors(const hg_linear *L) { return L->ntens; }

void hg_linear_tensor(const hg_linear *L, int i, const char **name, int64_t *count)
{
    const int ok = i >= 0 && i < L->ntens;
    if (name)
        *name = ok ? L->tname[i] : NULL;
    if (count)
        *count = ok ? L->tcount[i] : 0;
}

float *hg__linear_tensor_data(const hg_linear *L, int i)
{
    if (L->tid[i] < 0)
        return L->sched;
    return L->tmom[i] == 0 ? hg_params_data(L->P, L->tid[i])
           : L->tmom[i] == 1 ? hg_params_moment1(L->P, L->tid[i])
                             : hg_params_moment2(L->P, L->tid[i]);
}

void hg_linear_tensor_read(const hg_linear *L, int i, float *host_dst)
{
    if (i < 0 || i >= L->ntens || !host_dst)
        return;
    const size_t bytes = (size_t)L->tcount[i] * sizeof(float);
    if (L->tid[i] < 0)
        memcpy(host_dst, L->sched, bytes);
    else
        hg_k_download(L->k, host_dst, hg__linear_tensor_data(L, i), bytes);
}

void hg_linear_tensor_write(hg_linear *L, int i, const float *host_src)
{
    if (i < 0 || i >= L->ntens || !host_src)
        return;
    const size_t bytes = (size_t)L->tcount[i] * sizeof(float);
    if (L->tid[i] < 0)
        memcpy(L->sched, host_src, bytes);
    else
        hg_k_upload(L->k, hg__linear_tensor_data(L, i), host_src, bytes);
}

void hg_linear_rematerialise(hg_linear *L)
{
    L->W_pinned = 0;
    sched_load(L);
    materialise(L);
    set_lr_factors(L);
    sched_store(L);
}

/* ---------------------------------------------------------------- pruning */

int hg_linear_pruned_weight(const hg_linear *L, int64_t keep, float *W_out)
{
    int rc = HG_OK;
    const int64_t m = L->m, n = L->n, kk = L->kk;
    float *Ut = NULL, *sigma = NULL, *Vt = NULL, *Wh = NULL;
    void *ws = NULL;
    unsigned char *taken = NULL;
    hg_kctx cpu;
    hg_kctx_init(&cpu, HG_DEVICE_CPU, 1); /* host products and SVD: W_out is host memory */
    if (keep < 0 || !W_out) {
        rc = HG_ERRORF(HG_EINVAL, "--prune-sigma: keep %lld must be >= 0", (long long)keep);
        goto done;
    }
    if (keep >= kk) {
        const float *W = hg_linear_weight(L);
        if (!W) {
            rc = HG_ENOMEM;
            goto done;
        }
        hg_k_download(L->k, W_out, W, (size_t)(m * n) * sizeof(float));
        goto done;
    }
    Ut = hg_calloc((size_t)(kk * m), sizeof *Ut, "pruning U");
    sigma = hg_calloc((size_t)kk, sizeof *sigma, "pruning sigma");
    Vt = hg_calloc((size_t)(kk * n), sizeof *Vt, "pruning V");
    if (!Ut || !sigma || !Vt) {
        rc = HG_ENOMEM;
        goto done;
    }
    memset(W_out, 0, (size_t)(m * n) * sizeof(float));
    if (L->o.method == HG_LINEAR_SST) {
        /* the `keep` largest |sigma| of the current triplets (a negative sigma is a singular
           value with one vector turned round; ties: lower index) */
        taken = hg_calloc((size_t)kk, 1, "pruning flags");
        if (!taken) {
            rc = HG_ENOMEM;
            goto done;
        }
        /* storage order: U_S rows, then U_R rows (linear_internal.h) */
        const int64_t r = L->r;
        hg_k_download(L->k, Ut, L->US, (size_t)(r * m) * sizeof(float));
        hg_k_download(L->k, Ut + r * m, L->UR, (size_t)((kk - r) * m) * sizeof(float));
        hg_k_download(L->k, sigma, L->sigma, (size_t)kk * sizeof(float));
        hg_k_download(L->k, Vt, L->VS, (size_t)(r * n) * sizeof(float));
        hg_k_download(L->k, Vt + r * n, L->VR, (size_t)((kk - r) * n) * sizeof(float));
        for (int64_t q = 0; q < keep; q++) {
            int64_t best = -1; /* a position; ties: the lower canonical index */
            for (int64_t i = 0; i < kk; i++) {
                const int64_t p = L->pos[i];
                if (!taken[p] && (best < 0 || fabsf(sigma[p]) > fabsf(sigma[best])))
                    best = p;
            }
            taken[best] = 1;
            hg__gemm(&cpu, 1, 0, m, n, 1, sigma[best], Ut + best * m, m, Vt + best * n, n, 1.0f,
                     W_out, n);
        }
        goto done;
    }
    /* other methods: thin SVD of the current W (on the host), rebuilt from the leading `keep`
     * triplets in double */
    const int64_t wsb = hg_k_svd_workspace_bytes(&cpu, m, n);
    if (wsb < 0) {
        rc = HG_ERRORF(HG_ELAPACK, "pruning: SVD workspace query for %lld x %lld failed",
                       (long long)m, (long long)n);
        goto done;
    }
    Wh = hg_calloc((size_t)(m * n), sizeof *Wh, "pruning weight copy");
    ws = hg_calloc((size_t)wsb, 1, "pruning SVD workspace");
    if (!Wh || !ws) {
        rc = HG_ENOMEM;
        goto done;
    }
    hg_k_download(L->k, Wh, hg_linear_weight(L), (size_t)(m * n) * sizeof(float)); /* not SST */
    HG_CHECK(hg_k_svd(&cpu, Wh, Ut, sigma, Vt, m, n, ws));
    for (int64_t x = 0; x < m; x++)
        for (int64_t y = 0; y < n; y++) {
            double acc = 0.0;
            for (int64_t i = 0; i < keep; i++)
                acc += (double)sigma[i] * Ut[i * m + x] * Vt[i * n + y];
            W_out[x * n + y] = (float)acc;
        }
done:
    hg_free(taken);
    hg_free(Ut);
    hg_free(sigma);
    hg_free(Vt);
    hg_free(Wh);
    hg_free(ws);
    hg_kctx_destroy(&cpu);
    return rc;
}
