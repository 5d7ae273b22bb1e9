/* linear.c - the shared linear-map backend: full rank, LoRA, ReLoRA*, SST (DESIGN.md section 4).
 *
 * Fields and layout: sst/linear_internal.h. Choices the papers leave open, all ours:
 *  - Weight decay acts on full: W; LoRA/ReLoRA: A and B; SST: sigma only (the singular vectors are
 *    unit-length directions, decaying them would only fight the renormalisation).
 *  - SST's sigma is stepped every step with the base learning rate: the per-iteration warm-up is for
 *    the freshly sampled vectors, whose moments restart at zero; sigma's moments persist across the
 *    iteration (reset only at a round end, where Adam's bias correction restarts them cleanly).
 *  - The round-end re-orthogonalisation resets all moments, sigma's included: the SVD re-mixes the
 *    basis, so the old per-index statistics describe different directions.
 *  - Renormalisation (opts.renorm) rescales U_i and V_i to unit length without moving the lost norm
 *    into sigma_i (the paper's "normalise after each update").
 *  - ReLoRA* and SST warm up linearly from their first period on: factor min(1, (s + 1) / warmup)
 *    at the s-th step (from 0) of every iteration / merge period.
 *  - Sampling draws sequentially without replacement (torch.multinomial semantics); `top` breaks
 *    ties by the lower index. The LoRA A draw and the SST draws share one stream seeded by `seed`.
 * Memory: every float array the kernels touch lives in the kernel context's memory and is only
 * touched through kernels/kernels.h, so the same code runs on the CPU and on a CUDA context; host
 * copies are made (into buffers allocated at create) only where host logic needs the values:
 * sigma for the sampling at each iteration begin, LoRA's A drawn on the host then uploaded.
 * SVDs are thin, in double (hg_k_svd: LAPACKE dgesdd on the CPU, cuSOLVER on CUDA), with their
 * workspace allocated at create, so the training step never allocates. */
#include "linear.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/hg.h"
#include "../src/rng.h"
#include "linear_internal.h"

/* Below this norm a singular vector is left as it is by the renormalisation: its direction is
 * undefined, and dividing would turn rounding noise into a unit vector. */
#define HG_SST_RENORM_MIN_NORM 1e-30

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

int hg_linear_method_parse(const char *s)
{
    for (int i = 0; s && i < (int)(sizeof method_names / sizeof *method_names); i++)
        if (strcmp(s, method_names[i]) == 0)
            return i;
    return -1;
}

const char *hg_linear_method_name(hg_linear_method m)
{
    return (unsigned)m < sizeof method_names / sizeof *method_names ? method_names[m] : "?";
}

int hg_sst_sampling_parse(const char *s)
{
    for (int i = 0; s && i < (int)(sizeof sampling_names / sizeof *sampling_names); i++)
        if (strcmp(s, sampling_names[i]) == 0)
            return i;
    return -1;
}

const char *hg_sst_sampling_name(hg_sst_sampling s)
{
    return (unsigned)s < sizeof sampling_names / sizeof *sampling_names ? sampling_names[s] : "?";
}

/* ---------------------------------------------------------------- small helpers */

/* Sizes were range-checked in create, so a refused GEMM is a broken invariant. */
static void gemm(const hg_kctx *k, int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                 int64_t ldc)
{
    if (hg_k_gemm(k, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) != 0)
        abort();
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

/* torch.nn.init.kaiming_uniform_(A, a=sqrt(5)) on A (r x n): fan_in = n, gain = sqrt(2/(1+5)),
 * bound = gain * sqrt(3 / fan_in) = 1 / sqrt(n). Drawn on the host, then uploaded. */
static void lora_init_A(hg_linear *L)
{
    const double bound = 1.0 / sqrt((double)L->n);
    for (int64_t i = 0; i < L->r * L->n; i++)
        L->A_host[i] = (float)((2.0 * hg_rng_uniform(&L->rng) - 1.0) * bound);
    hg_k_upload(L->k, L->A, L->A_host, (size_t)(L->r * L->n) * sizeof(float));
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
    put_word(L->sched + w * HG__SCHED_T_MAIN, (uint64_t)L->t_main);
    put_word(L->sched + w * HG__SCHED_T_VEC, (uint64_t)L->t_vec);
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
    }
    L->step = (int64_t)x[HG__SCHED_STEP];
    L->t_main = (int64_t)x[HG__SCHED_T_MAIN];
    L->t_vec = (int64_t)x[HG__SCHED_T_VEC];
    L->in_iter = (int64_t)x[HG__SCHED_IN_ITER];
    L->in_round = (int64_t)x[HG__SCHED_IN_ROUND];
    for (int q = 0; q < 4; q++)
        L->rng.s[q] = x[HG__SCHED_RNG0 + q];
}

/* ---------------------------------------------------------------- SST pieces */

void hg__sst_sample(hg_rng *rng, const float *sigma, int64_t k, int64_t r, hg_sst_sampling rule,
                    int64_t *out, double *w)
{
    /* w[i] >= 0: available with that weight; w[i] < 0: taken. */
    double sum = 0.0;
    for (int64_t i = 0; i < k; i++)
        sum += sigma[i] > 0.0f ? (double)sigma[i] : 0.0;
    for (int64_t i = 0; i < k; i++) {
        double s = sigma[i] > 0.0f ? (double)sigma[i] : 0.0;
        switch (rule) {
        case HG_SST_SAMPLE_SIGMA: w[i] = s; break;
        case HG_SST_SAMPLE_MIXED: w[i] = 0.5 * (1.0 / (double)k + (sum > 0.0 ? s / sum : 0.0)); break;
        case HG_SST_SAMPLE_UNIFORM: w[i] = 1.0; break;
        case HG_SST_SAMPLE_TOP: w[i] = s; break;
        default: abort(); /* validated in create */
        }
    }
    for (int64_t j = 0; j < r; j++) {
        int64_t pick = -1;
        if (rule == HG_SST_SAMPLE_TOP) {
            for (int64_t i = 0; i < k; i++)
                if (w[i] >= 0.0 && (pick < 0 || w[i] > w[pick]))
                    pick = i;
        } else {
            double total = 0.0;
            for (int64_t i = 0; i < k; i++)
                if (w[i] > 0.0)
                    total += w[i];
            if (total > 0.0) {
                double u = hg_rng_uniform(rng) * total, acc = 0.0;
                int64_t last = -1;
                for (int64_t i = 0; i < k; i++) {
                    if (!(w[i] > 0.0))
                        continue;
                    acc += w[i];
                    last = i;
                    if (u < acc) {
                        pick = i;
                        break;
                    }
                }
                if (pick < 0)
                    pick = last; /* u landed in the rounding gap at the end */
            } else { /* only zero weights left: uniform among the untaken */
                int64_t avail = 0;
                for (int64_t i = 0; i < k; i++)
                    avail += w[i] >= 0.0;
                int64_t t = (int64_t)hg_rng_below(rng, (uint64_t)avail);
                for (int64_t i = 0; i < k; i++)
                    if (w[i] >= 0.0 && t-- == 0) {
                        pick = i;
                        break;
                    }
            }
        }
        out[j] = pick;
        w[pick] = -1.0;
    }
}

/* Start an SST iteration: draw S (from a host copy of sigma), fresh moments and gradients for the
 * sampled vectors. */
static void sst_begin_iteration(hg_linear *L)
{
    hg_k_download(L->k, L->sigma_host, L->sigma, (size_t)L->kk * sizeof(float));
    hg__sst_sample(&L->rng, L->sigma_host, L->kk, L->r, L->o.sampling, L->sel, L->wsamp);
    /* gU, gV / mU, mV / vU, vV are contiguous runs */
    const size_t nvec = (size_t)(L->r * (L->m + L->n));
    hg_k_zero(L->k, L->gU, nvec * sizeof(float));
    hg_k_zero(L->k, L->mU, nvec * sizeof(float));
    hg_k_zero(L->k, L->vU, nvec * sizeof(float));
    L->t_vec = 0;
    L->in_iter = 0;
}

/* W (=) Ut^T diag(sigma) Vt, or W0 + s B A. */
static void materialise(hg_linear *L)
{
    const int64_t m = L->m, n = L->n;
    if (is_lora(L)) {
        hg_k_copy(L->k, L->W, L->W0, (size_t)(m * n) * sizeof(float));
        gemm(L->k, 0, 0, m, n, L->r, L->scale, L->B, L->r, L->A, n, 1.0f, L->W, n);
    } else if (L->o.method == HG_LINEAR_SST) {
        hg_k_scale_rows(L->k, L->P, L->sigma, L->Vt, L->kk, n);
        gemm(L->k, 1, 0, m, n, L->kk, 1.0f, L->Ut, m, L->P, n, 0.0f, L->W, n);
    }
}

/* [U, sigma, V] = thin SVD of Wsrc (m x n, k's memory) into the triplets, through the scratch
 * (svd_Ut, svd_sigma, P) so that a failed SVD leaves the triplets as they were. HG_ELAPACK. */
static int sst_decompose(hg_linear *L, const float *Wsrc)
{
    const int64_t m = L->m, n = L->n, k = L->kk;
    int rc = hg_k_svd(L->k, Wsrc, L->svd_Ut, L->svd_sigma, L->P, m, n, L->svd_ws);
    if (rc != HG_OK)
        return rc; /* recorded by hg_k_svd, with the shape */
    hg_k_copy(L->k, L->Ut, L->svd_Ut, (size_t)(k * m) * sizeof(float));
    hg_k_copy(L->k, L->sigma, L->svd_sigma, (size_t)k * sizeof(float));
    hg_k_copy(L->k, L->Vt, L->P, (size_t)(k * n) * sizeof(float));
    return HG_OK;
}

/* Round end (DESIGN 4): [U, sigma, V] = SVD(U diag(sigma) V^T), W unchanged to rounding; all
 * moments restart. */
int hg__linear_sst_round_end(hg_linear *L)
{
    int rc = HG_OK;
    /* an SVD's behaviour on NaN input is undefined */
    if (!hg_k_all_finite(L->k, L->W, L->m * L->n))
        rc = HG_ERRORF(HG_ENUMERIC, "sst: non-finite %lld x %lld weight at a round end (step %lld)",
                       (long long)L->m, (long long)L->n, (long long)L->step);
    if (rc == HG_OK)
        rc = sst_decompose(L, L->W); /* W is current: materialised before the schedule runs */
    hg_k_zero(L->k, L->buf_mom, (size_t)(2 * L->ntrain) * sizeof(float));
    L->t_main = 0;
    L->t_vec = 0;
    materialise(L);
    sched_store(L);
    return rc;
}

float hg__linear_lr_factor(const hg_linear *L)
{
    if (L->o.method == HG_LINEAR_SST || L->o.method == HG_LINEAR_RELORA)
        return warmup_factor(L->in_iter, L->o.warmup);
    return 1.0f;
}

/* ---------------------------------------------------------------- create / free */

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

int hg_linear_create(hg_linear **out, const hg_kctx *k, int64_t m, int64_t n, const float *W_init,
                     const hg_linear_opts *o, uint64_t seed)
{
    int rc = HG_OK;
    hg_linear *L = NULL;
    if (!out)
        return HG_ERRORF(HG_EINVAL, "hg_linear_create: NULL output");
    *out = NULL;
    HG_CHECK(validate(k, m, n, W_init, o));

    L = hg_calloc(1, sizeof *L, "linear layer");
    if (!L) {
        rc = HG_ENOMEM;
        goto done;
    }
    L->k = k;
    L->o = *o;
    L->m = m;
    L->n = n;
    L->kk = HG_MIN(m, n);
    const int64_t kk = L->kk, mn = m * n;
    const hg_linear_method meth = o->method;
    L->r = meth == HG_LINEAR_FULL ? 0 : o->rank;
    const int64_t r = L->r;
    L->scale = is_lora(L) ? (o->lora_alpha > 0.0f ? o->lora_alpha : (float)r) / (float)r : 0.0f;
    L->T2 = o->iters_per_round > 0 ? o->iters_per_round : (kk + r - 1) / (r > 0 ? r : 1);
    hg_rng_seed(&L->rng, seed);

    /* size table per role (k's memory); the work buffer holds W (LoRA, SST) and SST's scratch */
    int64_t nparam, nwork;
    const int64_t nsched = HG__SCHED_FLOATS_PER_WORD * sched_nwords(L);
    switch (meth) {
    case HG_LINEAR_FULL:
        nparam = mn;
        L->ntrain = mn;
        nwork = 0;
        break;
    case HG_LINEAR_LORA:
    case HG_LINEAR_RELORA:
        nparam = mn + r * (m + n);
        L->ntrain = r * (m + n);
        nwork = mn;
        break;
    default: /* SST */
        nparam = kk * m + kk + kk * n;
        L->ntrain = kk + r * (m + n);
        nwork = mn + kk * n + kk * m + kk;
        break;
    }
    L->buf_param = hg_k_alloc(k, (size_t)nparam * sizeof(float), "linear parameters");
    L->buf_grad = hg_k_alloc(k, (size_t)L->ntrain * sizeof(float), "linear gradients");
    L->buf_mom = hg_k_alloc(k, (size_t)(2 * L->ntrain) * sizeof(float), "linear Adam moments");
    if (nwork > 0)
        L->buf_work = hg_k_alloc(k, (size_t)nwork * sizeof(float), "linear work buffer");
    L->sched = hg_calloc((size_t)nsched, sizeof(float), "linear schedule state");
    if (!L->buf_param || !L->buf_grad || !L->buf_mom || (nwork > 0 && !L->buf_work) || !L->sched) {
        rc = HG_ENOMEM;
        goto done;
    }
    float *mom_m = L->buf_mom, *mom_v = L->buf_mom + L->ntrain;

    /* carve (the role buffers come zeroed) */
    switch (meth) {
    case HG_LINEAR_FULL:
        L->W = L->buf_param;
        L->gW = L->buf_grad;
        L->mW = mom_m;
        L->vW = mom_v;
        hg_k_upload(k, L->W, W_init, (size_t)mn * sizeof(float));
        break;
    case HG_LINEAR_LORA:
    case HG_LINEAR_RELORA:
        L->W0 = L->buf_param;
        L->A = L->W0 + mn;
        L->B = L->A + r * n;
        L->gA = L->buf_grad;
        L->gB = L->gA + r * n;
        L->mA = mom_m;
        L->mB = mom_m + r * n;
        L->vA = mom_v;
        L->vB = mom_v + r * n;
        L->W = L->buf_work;
        L->A_host = hg_calloc((size_t)(r * n), sizeof(float), "LoRA A staging");
        if (!L->A_host) {
            rc = HG_ENOMEM;
            goto done;
        }
        hg_k_upload(k, L->W0, W_init, (size_t)mn * sizeof(float));
        lora_init_A(L); /* B stays 0: W = W0 exactly */
        break;
    default: { /* SST */
        L->Ut = L->buf_param;
        L->sigma = L->Ut + kk * m;
        L->Vt = L->sigma + kk;
        L->gsigma = L->buf_grad;
        L->gU = L->gsigma + kk;
        L->gV = L->gU + r * m;
        L->msigma = mom_m;
        L->mU = mom_m + kk;
        L->mV = L->mU + r * m;
        L->vsigma = mom_v;
        L->vU = mom_v + kk;
        L->vV = L->vU + r * m;
        L->W = L->buf_work;
        L->P = L->W + mn;
        L->svd_Ut = L->P + kk * n;
        L->svd_sigma = L->svd_Ut + kk * m;
        L->sel = hg_calloc((size_t)r, sizeof *L->sel, "SST sampled indices");
        L->wsamp = hg_calloc((size_t)kk, sizeof *L->wsamp, "SST sampling weights");
        L->sigma_host = hg_calloc((size_t)kk, sizeof *L->sigma_host, "SST sigma host copy");
        if (!L->sel || !L->wsamp || !L->sigma_host) {
            rc = HG_ENOMEM;
            goto done;
        }
        const int64_t wsb = hg_k_svd_workspace_bytes(k, m, n);
        if (wsb < 0) {
            rc = HG_ERRORF(HG_ELAPACK, "sst: SVD workspace query for %lld x %lld failed",
                           (long long)m, (long long)n);
            goto done;
        }
        L->svd_ws = hg_k_alloc(k, (size_t)wsb, "SST SVD workspace");
        if (!L->svd_ws) {
            rc = HG_ENOMEM;
            goto done;
        }
        hg_k_upload(k, L->W, W_init, (size_t)mn * sizeof(float)); /* overwritten by materialise */
        HG_CHECK(sst_decompose(L, L->W));
        sst_begin_iteration(L);
        break;
    }
    }
    materialise(L);
    sched_store(L);

    /* checkpoint tensors: the parameters, then the moments and schedule for an exact resume */
#define HG_TENSOR(nm, ptr, cnt)            \
    do {                                   \
        L->tname[L->ntens] = (nm);         \
        L->tdata[L->ntens] = (ptr);        \
        L->tcount[L->ntens] = (cnt);       \
        L->ntens++;                        \
    } while (0)
    switch (meth) {
    case HG_LINEAR_FULL:
        HG_TENSOR("W", L->W, mn);
        HG_TENSOR("W.adam_m", L->mW, mn);
        HG_TENSOR("W.adam_v", L->vW, mn);
        break;
    case HG_LINEAR_LORA:
    case HG_LINEAR_RELORA:
        HG_TENSOR("W0", L->W0, mn);
        HG_TENSOR("A", L->A, r * n);
        HG_TENSOR("B", L->B, m * r);
        HG_TENSOR("A.adam_m", L->mA, r * n);
        HG_TENSOR("A.adam_v", L->vA, r * n);
        HG_TENSOR("B.adam_m", L->mB, m * r);
        HG_TENSOR("B.adam_v", L->vB, m * r);
        break;
    default:
        HG_TENSOR("Ut", L->Ut, kk * m); /* (k x m): row i is the i-th left singular vector */
        HG_TENSOR("sigma", L->sigma, kk);
        HG_TENSOR("Vt", L->Vt, kk * n); /* (k x n): row i is the i-th right singular vector */
        HG_TENSOR("sigma.adam_m", L->msigma, kk);
        HG_TENSOR("sigma.adam_v", L->vsigma, kk);
        HG_TENSOR("U_S.adam_m", L->mU, r * m); /* (r x m): the sampled vectors, draw order */
        HG_TENSOR("U_S.adam_v", L->vU, r * m);
        HG_TENSOR("V_S.adam_m", L->mV, r * n);
        HG_TENSOR("V_S.adam_v", L->vV, r * n);
        break;
    }
    HG_TENSOR("sched", L->sched, nsched); /* integers, 16 bits per float; layout in linear_internal.h */
#undef HG_TENSOR

done:
    if (rc != HG_OK) {
        hg_linear_free(L);
        L = NULL;
    }
    *out = L;
    return rc;
}

void hg_linear_free(hg_linear *L)
{
    if (!L)
        return;
    hg_k_free(L->k, L->buf_param);
    hg_k_free(L->k, L->buf_grad);
    hg_k_free(L->k, L->buf_mom);
    hg_k_free(L->k, L->buf_work);
    hg_k_free(L->k, L->svd_ws);
    hg_free(L->sched);
    hg_free(L->sel);
    hg_free(L->wsamp);
    hg_free(L->sigma_host);
    hg_free(L->A_host);
    hg_free(L);
}

int64_t hg_linear_rows(const hg_linear *L) { return L->m; }
int64_t hg_linear_cols(const hg_linear *L) { return L->n; }
const float *hg_linear_weight(const hg_linear *L) { return L->W; }

void hg_linear_load_weight(hg_linear *L, const float *W)
{
    hg_k_upload(L->k, L->W, W, (size_t)(L->m * L->n) * sizeof(float));
}

/* ---------------------------------------------------------------- gradients */

void hg_linear_zero_grad(hg_linear *L)
{
    hg_k_zero(L->k, L->buf_grad, (size_t)L->ntrain * sizeof(float));
}

void hg_linear_accumulate_grad(hg_linear *L, const float *G)
{
    const int64_t m = L->m, n = L->n, r = L->r, kk = L->kk;
    switch (L->o.method) {
    case HG_LINEAR_FULL:
        hg_k_axpy(L->k, L->gW, 1.0f, G, m * n);
        break;
    case HG_LINEAR_LORA:
    case HG_LINEAR_RELORA:
        /* W = W0 + s B A: gB += s G A^T (m x r), gA += s B^T G (r x n) */
        gemm(L->k, 0, 1, m, r, n, L->scale, G, n, L->A, n, 1.0f, L->gB, r);
        gemm(L->k, 1, 0, r, n, m, L->scale, L->B, r, G, n, 1.0f, L->gA, n);
        break;
    default: {
        /* P = U^T G (k x n): row i is U_i^T G = (G^T U_i)^T, the enhanced gV_i, and
         * dsigma_i = U_i^T G V_i = P_i . V_i (DESIGN 4, exact gradient). */
        gemm(L->k, 0, 0, kk, n, m, 1.0f, L->Ut, m, G, n, 0.0f, L->P, n);
        hg_k_row_dots(L->k, L->gsigma, L->P, L->Vt, kk, n);
        for (int64_t j = 0; j < r; j++) {
            const int64_t i = L->sel[j];
            hg_k_axpy(L->k, L->gV + j * n, 1.0f, L->P + i * n, n);
            /* gU_j += G V_i (m x 1): the true dL/dU_i = sigma_i G V_i without sigma_i */
            gemm(L->k, 0, 1, m, 1, n, 1.0f, G, n, L->Vt + i * n, n, 1.0f, L->gU + j * m, 1);
        }
        break;
    }
    }
}

double hg_linear_grad_sqnorm(const hg_linear *L) { return hg_k_sqnorm(L->k, L->buf_grad, L->ntrain); }

void hg_linear_scale_grad(hg_linear *L, float a) { hg_k_scale(L->k, L->buf_grad, a, L->ntrain); }

/* ---------------------------------------------------------------- the step */

int hg_linear_step(hg_linear *L, float lr)
{
    int rc = HG_OK;
    const hg_linear_opts *o = &L->o;
    const float wd_dec = o->decoupled_wd ? o->weight_decay : 0.0f;
    const float wd_l2 = o->decoupled_wd ? 0.0f : o->weight_decay;
    const int64_t m = L->m, n = L->n, r = L->r, kk = L->kk;

    switch (o->method) {
    case HG_LINEAR_FULL:
        L->t_main++;
        hg_k_adam_step(L->k, L->W, L->gW, L->mW, L->vW, m * n, lr, o->beta1, o->beta2, o->eps,
                       wd_dec, wd_l2, L->t_main);
        break;
    case HG_LINEAR_LORA:
    case HG_LINEAR_RELORA: {
        const float f = hg__linear_lr_factor(L);
        L->t_main++;
        /* A and B are one contiguous run in params, grads and moments */
        hg_k_adam_step(L->k, L->A, L->gA, L->mA, L->vA, r * (m + n), lr * f, o->beta1, o->beta2,
                       o->eps, wd_dec, wd_l2, L->t_main);
        break;
    }
    default: {
        /* sigma: every step, base lr (no per-iteration warm-up, see the top of this file) */
        L->t_main++;
        hg_k_adam_step(L->k, L->sigma, L->gsigma, L->msigma, L->vsigma, kk, lr, o->beta1, o->beta2,
                       o->eps, wd_dec, wd_l2, L->t_main);
        /* clamp at 0 (DESIGN 4); a NaN stays visible to the caller */
        hg_k_clamp_min(L->k, L->sigma, 0.0f, kk);
        /* the sampled vectors: enhanced gradients, warmed-up lr, no weight decay */
        const float f = hg__linear_lr_factor(L);
        L->t_vec++;
        for (int64_t j = 0; j < r; j++) {
            const int64_t i = L->sel[j];
            hg_k_adam_step(L->k, L->Ut + i * m, L->gU + j * m, L->mU + j * m, L->vU + j * m, m,
                           lr * f, o->beta1, o->beta2, o->eps, 0.0f, 0.0f, L->t_vec);
            hg_k_adam_step(L->k, L->Vt + i * n, L->gV + j * n, L->mV + j * n, L->vV + j * n, n,
                           lr * f, o->beta1, o->beta2, o->eps, 0.0f, 0.0f, L->t_vec);
            if (o->renorm) {
                hg_k_normalize(L->k, L->Ut + i * m, m, HG_SST_RENORM_MIN_NORM);
                hg_k_normalize(L->k, L->Vt + i * n, n, HG_SST_RENORM_MIN_NORM);
            }
        }
        break;
    }
    }
    L->step++;
    L->in_iter++;
    materialise(L);

    /* schedule hooks (timed: on a device the step's pending work is waited for first, and the
     * hook's own at the end, which also reports a failure of either as HG_ECUDA) */
    if (o->method == HG_LINEAR_RELORA && L->in_iter >= o->steps_per_iter) {
        /* ReLoRA* merge: W0 += s B A (W unchanged), fresh A, B = 0, fresh Adam state, warm-up again */
        (void)hg_k_sync(L->k); /* errors are sticky: the sync below reports them */
        double t0 = hg_now();
        gemm(L->k, 0, 0, m, n, r, L->scale, L->B, r, L->A, n, 1.0f, L->W0, n);
        lora_init_A(L);
        hg_k_zero(L->k, L->B, (size_t)(m * r) * sizeof(float));
        hg_k_zero(L->k, L->buf_mom, (size_t)(2 * L->ntrain) * sizeof(float));
        L->t_main = 0;
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
        sst_begin_iteration(L);
    } else if (o->method != HG_LINEAR_RELORA && o->method != HG_LINEAR_SST) {
        L->in_iter = 0; /* no periods */
    }
    sched_store(L);
    return rc;
}

/* ---------------------------------------------------------------- counts, checkpoints */

int64_t hg_linear_num_trainable(const hg_linear *L) { return L->ntrain; }

void hg_linear_get_stats(const hg_linear *L, hg_linear_stats *out)
{
    out->reorths = L->n_reorth;
    out->merges = L->n_merge;
    out->schedule_seconds = L->reorth_seconds;
}
int64_t hg_linear_state_floats(const hg_linear *L) { return 2 * L->ntrain; }

int hg_linear_num_tensors(const hg_linear *L) { return L->ntens; }

void hg_linear_tensor(hg_linear *L, int i, const char **name, float **data, int64_t *count)
{
    const int ok = i >= 0 && i < L->ntens;
    if (name)
        *name = ok ? L->tname[i] : NULL;
    if (data)
        *data = ok ? L->tdata[i] : NULL;
    if (count)
        *count = ok ? L->tcount[i] : 0;
}

void hg_linear_tensor_read(const hg_linear *L, int i, float *host_dst)
{
    if (i < 0 || i >= L->ntens || !host_dst)
        return;
    const size_t bytes = (size_t)L->tcount[i] * sizeof(float);
    if (L->tdata[i] == L->sched)
        memcpy(host_dst, L->sched, bytes);
    else
        hg_k_download(L->k, host_dst, L->tdata[i], bytes);
}

void hg_linear_tensor_write(hg_linear *L, int i, const float *host_src)
{
    if (i < 0 || i >= L->ntens || !host_src)
        return;
    const size_t bytes = (size_t)L->tcount[i] * sizeof(float);
    if (L->tdata[i] == L->sched)
        memcpy(L->sched, host_src, bytes);
    else
        hg_k_upload(L->k, L->tdata[i], host_src, bytes);
}

void hg_linear_rematerialise(hg_linear *L)
{
    sched_load(L);
    materialise(L);
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
        hg_k_download(L->k, W_out, L->W, (size_t)(m * n) * sizeof(float));
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
        /* the `keep` largest sigma of the current triplets (ties: lower index) */
        taken = hg_calloc((size_t)kk, 1, "pruning flags");
        if (!taken) {
            rc = HG_ENOMEM;
            goto done;
        }
        hg_k_download(L->k, Ut, L->Ut, (size_t)(kk * m) * sizeof(float));
        hg_k_download(L->k, sigma, L->sigma, (size_t)kk * sizeof(float));
        hg_k_download(L->k, Vt, L->Vt, (size_t)(kk * n) * sizeof(float));
        for (int64_t q = 0; q < keep; q++) {
            int64_t best = -1;
            for (int64_t i = 0; i < kk; i++)
                if (!taken[i] && (best < 0 || sigma[i] > sigma[best]))
                    best = i;
            taken[best] = 1;
            gemm(&cpu, 1, 0, m, n, 1, sigma[best], Ut + best * m, m, Vt + best * n, n, 1.0f, W_out,
                 n);
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
    hg_k_download(L->k, Wh, L->W, (size_t)(m * n) * sizeof(float));
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
