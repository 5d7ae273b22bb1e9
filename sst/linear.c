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
 * SVDs are thin, in double (LAPACKE dgesdd), and called column-major on the row-major buffer (which
 * is W^T column-major), so LAPACKE makes no transposed copies and the training step never allocates. */
#include "linear.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lapacke.h>

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
 * bound = gain * sqrt(3 / fan_in) = 1 / sqrt(n). */
static void lora_init_A(hg_linear *L)
{
    const double bound = 1.0 / sqrt((double)L->n);
    for (int64_t i = 0; i < L->r * L->n; i++)
        L->A[i] = (float)((2.0 * hg_rng_uniform(&L->rng) - 1.0) * bound);
}

/* Thin SVD of the row-major m x n matrix in a (destroyed), read as W^T (n x m) column-major:
 * W^T = V S U^T, so LAPACK's "U" (n x k, ldu n) is our Vt (k x n row-major) and its "VT"
 * (k x m, ldvt k) is our U (m x k row-major). Returns LAPACK's info. */
static lapack_int svd_thin(int64_t m, int64_t n, double *a, double *s, double *vt_rows,
                           double *u_rowmajor, double *work, lapack_int lwork, lapack_int *iwork)
{
    const lapack_int k = (lapack_int)HG_MIN(m, n);
    return LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'S', (lapack_int)n, (lapack_int)m, a, (lapack_int)n,
                               s, vt_rows, (lapack_int)n, u_rowmajor, k, work, lwork, iwork);
}

/* Optimal dgesdd workspace for an m x n thin SVD (query only); -1 on failure. */
static int64_t svd_lwork(int64_t m, int64_t n, double *a, double *s, double *u, double *vt,
                         lapack_int *iwork)
{
    double q = 0.0;
    lapack_int info = svd_thin(m, n, a, s, u, vt, &q, -1, iwork);
    if (info != 0 || !(q >= 1.0) || q > (double)INT_MAX)
        return -1;
    return (int64_t)q;
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

/* Start an SST iteration: draw S, fresh moments and gradients for the sampled vectors. */
static void sst_begin_iteration(hg_linear *L)
{
    hg__sst_sample(&L->rng, L->sigma, L->kk, L->r, L->o.sampling, L->sel, L->wsamp);
    const int64_t nvec = L->r * (L->m + L->n); /* gU, gV / mU, mV / vU, vV are contiguous */
    memset(L->gU, 0, (size_t)nvec * sizeof(float));
    memset(L->mU, 0, (size_t)nvec * sizeof(float));
    memset(L->vU, 0, (size_t)nvec * sizeof(float));
    L->t_vec = 0;
    L->in_iter = 0;
}

/* W (=) Ut^T diag(sigma) Vt, or W0 + s B A. */
static void materialise(hg_linear *L)
{
    const int64_t m = L->m, n = L->n;
    if (is_lora(L)) {
        memcpy(L->W, L->W0, (size_t)(m * n) * sizeof(float));
        gemm(L->k, 0, 0, m, n, L->r, L->scale, L->B, L->r, L->A, n, 1.0f, L->W, n);
    } else if (L->o.method == HG_LINEAR_SST) {
        for (int64_t i = 0; i < L->kk; i++)
            for (int64_t b = 0; b < n; b++)
                L->P[i * n + b] = L->sigma[i] * L->Vt[i * n + b];
        gemm(L->k, 1, 0, m, n, L->kk, 1.0f, L->Ut, m, L->P, n, 0.0f, L->W, n);
    }
}

/* [U, sigma, V] = thin SVD of Wsrc (m x n) into the triplets. HG_ELAPACK; triplets untouched then. */
static int sst_decompose(hg_linear *L, const float *Wsrc)
{
    const int64_t m = L->m, n = L->n, k = L->kk;
    for (int64_t i = 0; i < m * n; i++)
        L->sa[i] = Wsrc[i];
    lapack_int info = svd_thin(m, n, L->sa, L->ss, L->su, L->svt, L->swork, (lapack_int)L->slwork,
                               L->siwork);
    if (info != 0)
        return HG_ERRORF(HG_ELAPACK, "sst: dgesdd of a %lld x %lld weight failed (info %d)",
                         (long long)m, (long long)n, (int)info);
    for (int64_t i = 0; i < k; i++) {
        L->sigma[i] = (float)L->ss[i];
        for (int64_t a = 0; a < m; a++)
            L->Ut[i * m + a] = (float)L->svt[a * k + i];
        for (int64_t b = 0; b < n; b++)
            L->Vt[i * n + b] = (float)L->su[i * n + b];
    }
    return HG_OK;
}

/* Round end (DESIGN 4): [U, sigma, V] = SVD(U diag(sigma) V^T), W unchanged to rounding; all
 * moments restart. */
int hg__linear_sst_round_end(hg_linear *L)
{
    int rc = HG_OK;
    for (int64_t i = 0; i < L->m * L->n; i++)
        if (!isfinite(L->W[i])) { /* LAPACK's behaviour on NaN input is undefined */
            rc = HG_ERRORF(HG_ENUMERIC, "sst: non-finite weight entry %lld at a round end (step %lld)",
                           (long long)i, (long long)L->step);
            break;
        }
    if (rc == HG_OK)
        rc = sst_decompose(L, L->W); /* W is current: materialised before the schedule runs */
    memset(L->buf_mom, 0, (size_t)(2 * L->ntrain) * sizeof(float));
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

    /* size table per role */
    int64_t nparam, nwork;
    const int64_t nsched = HG__SCHED_FLOATS_PER_WORD * sched_nwords(L);
    switch (meth) {
    case HG_LINEAR_FULL:
        nparam = mn;
        L->ntrain = mn;
        nwork = nsched;
        break;
    case HG_LINEAR_LORA:
    case HG_LINEAR_RELORA:
        nparam = mn + r * (m + n);
        L->ntrain = r * (m + n);
        nwork = mn + nsched;
        break;
    default: /* SST */
        nparam = kk * m + kk + kk * n;
        L->ntrain = kk + r * (m + n);
        nwork = mn + kk * n + nsched;
        break;
    }
    L->buf_param = hg_calloc((size_t)nparam, sizeof(float), "linear parameters");
    L->buf_grad = hg_calloc((size_t)L->ntrain, sizeof(float), "linear gradients");
    L->buf_mom = hg_calloc((size_t)(2 * L->ntrain), sizeof(float), "linear Adam moments");
    L->buf_work = hg_calloc((size_t)nwork, sizeof(float), "linear work buffer");
    if (!L->buf_param || !L->buf_grad || !L->buf_mom || !L->buf_work) {
        rc = HG_ENOMEM;
        goto done;
    }
    float *mom_m = L->buf_mom, *mom_v = L->buf_mom + L->ntrain;

    /* carve */
    switch (meth) {
    case HG_LINEAR_FULL:
        L->W = L->buf_param;
        L->gW = L->buf_grad;
        L->mW = mom_m;
        L->vW = mom_v;
        L->sched = L->buf_work;
        memcpy(L->W, W_init, (size_t)mn * sizeof(float));
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
        L->sched = L->W + mn;
        memcpy(L->W0, W_init, (size_t)mn * sizeof(float));
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
        L->sched = L->P + kk * n;
        L->sel = hg_calloc((size_t)r, sizeof *L->sel, "SST sampled indices");
        L->wsamp = hg_calloc((size_t)kk, sizeof *L->wsamp, "SST sampling weights");
        L->sa = hg_calloc((size_t)(mn + kk + kk * n + m * kk), sizeof(double), "SST SVD buffers");
        L->siwork = hg_calloc((size_t)(8 * kk), sizeof *L->siwork, "SST SVD integer workspace");
        if (!L->sel || !L->wsamp || !L->sa || !L->siwork) {
            rc = HG_ENOMEM;
            goto done;
        }
        L->ss = L->sa + mn;
        L->su = L->ss + kk;
        L->svt = L->su + kk * n;
        L->slwork = svd_lwork(m, n, L->sa, L->ss, L->su, L->svt, L->siwork);
        if (L->slwork < 0) {
            rc = HG_ERRORF(HG_ELAPACK, "sst: dgesdd workspace query for %lld x %lld failed",
                           (long long)m, (long long)n);
            goto done;
        }
        L->swork = hg_calloc((size_t)L->slwork, sizeof(double), "SST SVD workspace");
        if (!L->swork) {
            rc = HG_ENOMEM;
            goto done;
        }
        HG_CHECK(sst_decompose(L, W_init));
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
    hg_free(L->buf_param);
    hg_free(L->buf_grad);
    hg_free(L->buf_mom);
    hg_free(L->buf_work);
    hg_free(L->sel);
    hg_free(L->wsamp);
    hg_free(L->sa);
    hg_free(L->siwork);
    hg_free(L->swork);
    hg_free(L);
}

int64_t hg_linear_rows(const hg_linear *L) { return L->m; }
int64_t hg_linear_cols(const hg_linear *L) { return L->n; }
const float *hg_linear_weight(const hg_linear *L) { return L->W; }

void hg_linear_load_weight(hg_linear *L, const float *W)
{
    memcpy(L->W, W, (size_t)(L->m * L->n) * sizeof(float));
}

/* ---------------------------------------------------------------- gradients */

void hg_linear_zero_grad(hg_linear *L)
{
    memset(L->buf_grad, 0, (size_t)L->ntrain * sizeof(float));
}

void hg_linear_accumulate_grad(hg_linear *L, const float *G)
{
    const int64_t m = L->m, n = L->n, r = L->r, kk = L->kk;
    switch (L->o.method) {
    case HG_LINEAR_FULL:
        for (int64_t i = 0; i < m * n; i++)
            L->gW[i] += G[i];
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
        for (int64_t i = 0; i < kk; i++) {
            const float *p = L->P + i * n, *v = L->Vt + i * n;
            double d = 0.0;
            for (int64_t b = 0; b < n; b++)
                d += (double)p[b] * v[b];
            L->gsigma[i] += (float)d;
        }
        for (int64_t j = 0; j < r; j++) {
            const int64_t i = L->sel[j];
            const float *p = L->P + i * n;
            float *gv = L->gV + j * n;
            for (int64_t b = 0; b < n; b++)
                gv[b] += p[b];
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

static void renorm_row(float *x, int64_t len)
{
    double s = 0.0;
    for (int64_t i = 0; i < len; i++)
        s += (double)x[i] * x[i];
    s = sqrt(s);
    if (s > HG_SST_RENORM_MIN_NORM) {
        const float inv = (float)(1.0 / s);
        for (int64_t i = 0; i < len; i++)
            x[i] *= inv;
    }
}

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
        for (int64_t i = 0; i < kk; i++)
            if (L->sigma[i] < 0.0f) /* clamp at 0 (DESIGN 4); a NaN stays visible to the caller */
                L->sigma[i] = 0.0f;
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
                renorm_row(L->Ut + i * m, m);
                renorm_row(L->Vt + i * n, n);
            }
        }
        break;
    }
    }
    L->step++;
    L->in_iter++;
    materialise(L);

    /* schedule hooks */
    if (o->method == HG_LINEAR_RELORA && L->in_iter >= o->steps_per_iter) {
        /* ReLoRA* merge: W0 += s B A (W unchanged), fresh A, B = 0, fresh Adam state, warm-up again */
        double t0 = hg_now();
        gemm(L->k, 0, 0, m, n, r, L->scale, L->B, r, L->A, n, 1.0f, L->W0, n);
        lora_init_A(L);
        memset(L->B, 0, (size_t)(m * r) * sizeof(float));
        memset(L->buf_mom, 0, (size_t)(2 * L->ntrain) * sizeof(float));
        L->t_main = 0;
        L->in_iter = 0;
        materialise(L);
        L->n_merge++;
        L->reorth_seconds += hg_now() - t0;
    } else if (o->method == HG_LINEAR_SST && L->in_iter >= o->steps_per_iter) {
        if (++L->in_round >= L->T2) {
            double t0 = hg_now();
            L->in_round = 0;
            rc = hg__linear_sst_round_end(L); /* on failure the old triplets stay; report it */
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
    double *buf = NULL, *work = NULL;
    lapack_int *iwork = NULL;
    unsigned char *taken = NULL;
    if (keep < 0 || !W_out) {
        rc = HG_ERRORF(HG_EINVAL, "--prune-sigma: keep %lld must be >= 0", (long long)keep);
        goto done;
    }
    if (keep >= kk) {
        memcpy(W_out, L->W, (size_t)(m * n) * sizeof(float));
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
        for (int64_t q = 0; q < keep; q++) {
            int64_t best = -1;
            for (int64_t i = 0; i < kk; i++)
                if (!taken[i] && (best < 0 || L->sigma[i] > L->sigma[best]))
                    best = i;
            taken[best] = 1;
            gemm(L->k, 1, 0, m, n, 1, L->sigma[best], L->Ut + best * m, m, L->Vt + best * n, n, 1.0f,
                 W_out, n);
        }
        goto done;
    }
    /* other methods: thin SVD of the current W, rebuilt from the leading `keep` triplets */
    buf = hg_calloc((size_t)(m * n + kk + kk * n + m * kk), sizeof(double), "pruning SVD buffers");
    iwork = hg_calloc((size_t)(8 * kk), sizeof *iwork, "pruning SVD integer workspace");
    if (!buf || !iwork) {
        rc = HG_ENOMEM;
        goto done;
    }
    double *a = buf, *s = a + m * n, *vrows = s + kk, *u = vrows + kk * n;
    int64_t lwork = svd_lwork(m, n, a, s, vrows, u, iwork);
    if (lwork < 0) {
        rc = HG_ERRORF(HG_ELAPACK, "pruning: dgesdd workspace query for %lld x %lld failed",
                       (long long)m, (long long)n);
        goto done;
    }
    work = hg_calloc((size_t)lwork, sizeof(double), "pruning SVD workspace");
    if (!work) {
        rc = HG_ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < m * n; i++)
        a[i] = L->W[i];
    lapack_int info = svd_thin(m, n, a, s, vrows, u, work, (lapack_int)lwork, iwork);
    if (info != 0) {
        rc = HG_ERRORF(HG_ELAPACK, "pruning: dgesdd of a %lld x %lld weight failed (info %d)",
                       (long long)m, (long long)n, (int)info);
        goto done;
    }
    for (int64_t x = 0; x < m; x++)
        for (int64_t y = 0; y < n; y++) {
            double acc = 0.0;
            for (int64_t i = 0; i < keep; i++)
                acc += s[i] * u[x * kk + i] * vrows[i * n + y];
            W_out[x * n + y] = (float)acc;
        }
done:
    hg_free(taken);
    hg_free(buf);
    hg_free(iwork);
    hg_free(work);
    return rc;
}
