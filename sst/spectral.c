/* spectral.c - the SST method of sst/linear.c: sampling, the storage layout of the triplets
 * (sampled ones first, see linear_internal.h), materialisation, gradients from G or from the
 * activations, the per-step clamp and renormalisation, iterations and round ends.
 *
 * Choices the paper leaves open, all ours: sigma is stepped every step with the base learning
 * rate and keeps its moments across iterations (reset at round ends, where the SVD re-mixes the
 * basis); renormalisation rescales U_i and V_i to unit length without moving the lost norm into
 * sigma_i; sampling draws sequentially without replacement (torch.multinomial semantics), `top`
 * breaks ties by the lower index. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/hg.h"
#include "linear_internal.h"

/* Below this norm a singular vector is left as it is by the renormalisation: its direction is
 * undefined, and dividing would turn rounding noise into a unit vector. */
#define HG_SST_RENORM_MIN_NORM 1e-30

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

/* ---------------------------------------------------------------- layout */

static float *urow(const hg_linear *L, int64_t p)
{
    return p < L->r ? L->US + p * L->m : L->UR + (p - L->r) * L->m;
}

static float *vrow(const hg_linear *L, int64_t p)
{
    return p < L->r ? L->VS + p * L->n : L->VR + (p - L->r) * L->n;
}

int64_t hg__sst_pos(const hg_linear *L, int64_t i) { return L->pos[i]; }
float *hg__sst_u(const hg_linear *L, int64_t i) { return urow(L, L->pos[i]); }
float *hg__sst_v(const hg_linear *L, int64_t i) { return vrow(L, L->pos[i]); }

/* order = [sel..., the other indices ascending], pos its inverse. */
static void layout_from_sel(hg_linear *L, const int64_t *sel, int64_t *order, int64_t *pos)
{
    const int64_t k = L->kk, r = L->r;
    for (int64_t i = 0; i < k; i++)
        pos[i] = -1;
    for (int64_t j = 0; j < r; j++) {
        order[j] = sel[j];
        pos[sel[j]] = j;
    }
    int64_t p = r;
    for (int64_t i = 0; i < k; i++)
        if (pos[i] < 0) {
            order[p] = i;
            pos[i] = p++;
        }
}

void hg__sst_layout_identity(hg_linear *L)
{
    for (int64_t j = 0; j < L->r; j++)
        L->sel[j] = j;
    layout_from_sel(L, L->sel, L->order, L->pos);
}

void hg__sst_sched_indices_loaded(hg_linear *L) { layout_from_sel(L, L->sel, L->order, L->pos); }

static int64_t factored_rows(const hg_linear *L, int64_t rows);

/* Floats of the workspace the round-end SVD uses from its start. */
static int64_t svd_floats(const hg_linear *L)
{
    const int64_t m = L->m, n = L->n, k = L->kk;
    return k * m + k + k * n + 16 + (hg_k_svd_workspace_bytes(L->k, m, n) + 3) / 4;
}

int64_t hg__sst_workspace_floats(const hg_linear *L, int64_t rows)
{
    const int64_t m = L->m, n = L->n, k = L->kk;
    int64_t w = k * HG_MAX(m, n);                                    /* permutation, P */
    w = HG_MAX(w, svd_floats(L) + (L->w_less ? m * n : 0));         /* round end (and its W) */
    w = HG_MAX(w, m * n + k * n);                                    /* backward through G */
    w = HG_MAX(w, 2 * k * factored_rows(L, rows));                   /* the factored path */
    if (rows > 0)
        w = HG_MAX(w, HG_MIN(2 * k * rows, m * n + k * n));          /* the cheaper path */
    return w;
}

/* ---------------------------------------------------------------- decompose, materialise */

int hg__sst_decompose(hg_linear *L, const float *Wsrc)
{
    const int64_t m = L->m, n = L->n, k = L->kk, r = L->r;
    float *ws = hg_params_workspace(L->P);
    float *sUt = ws, *ssig = sUt + k * m, *sVt = ssig + k;
    float *sws = sVt + k * n;
    sws += (16 - ((uintptr_t)sws / sizeof(float)) % 16) % 16; /* 64-byte aligned */
    int rc = hg_k_svd(L->k, Wsrc, sUt, ssig, sVt, m, n, sws);
    if (rc != HG_OK)
        return rc; /* recorded by hg_k_svd, with the shape; the triplets are untouched */
    hg_k_copy(L->k, L->US, sUt, (size_t)(r * m) * sizeof(float));
    hg_k_copy(L->k, L->UR, sUt + r * m, (size_t)((k - r) * m) * sizeof(float));
    hg_k_copy(L->k, L->sigma, ssig, (size_t)k * sizeof(float));
    hg_k_copy(L->k, L->VS, sVt, (size_t)(r * n) * sizeof(float));
    hg_k_copy(L->k, L->VR, sVt + r * n, (size_t)((k - r) * n) * sizeof(float));
    hg__sst_layout_identity(L);
    return HG_OK;
}

/* W (=) U_S^T diag(sigma[:r]) V_S + U_R^T diag(sigma[r:]) V_R, through P = diag(sigma) Vt
 * (k x n scratch). */
static void build_w(const hg_linear *L, float *W, float *P)
{
    const int64_t m = L->m, n = L->n, k = L->kk, r = L->r;
    hg_k_scale_rows(L->k, P, L->sigma, L->VS, r, n);
    hg__gemm_fp32(L->k, 1, 0, m, n, r, 1.0f, L->US, m, P, n, 0.0f, W, n);
    if (k > r) {
        hg_k_scale_rows(L->k, P + r * n, L->sigma + r, L->VR, k - r, n);
        hg__gemm_fp32(L->k, 1, 0, m, n, k - r, 1.0f, L->UR, m, P + r * n, n, 1.0f, W, n);
    }
}

float *hg__sst_svd_input(const hg_linear *L)
{
    return L->W ? L->W : hg_params_workspace(L->P) + svd_floats(L);
}

static void materialise_w(hg_linear *L)
{
    build_w(L, L->W, hg_params_workspace(L->P));
    L->W_stale = 0;
}

float *hg__sst_weight(const hg_linear *L)
{
    hg_linear *Lm = (hg_linear *)L; /* W is the map's cache, not its state */
    if (!L->W) {
        if (!(Lm->W_own = hg_k_alloc(L->k, (size_t)(L->m * L->n) * sizeof(float),
                                     "materialised weight")))
            return NULL;
        Lm->W = L->W_own;
        Lm->W_stale = 1;
    }
    if (L->W_stale && !L->W_pinned)
        materialise_w(Lm);
    return L->W;
}

/* ---------------------------------------------------------------- products */

/* Multiply-adds of one training forward + backward of `rows` rows (the sampled vectors' own
 * products are the same on both paths and left out):
 *  dense:    rebuild W (m n k), Y and dX through W (2 rows m n), the gradients through the
 *            activations (rows k (m + n)) or through G (rows m n + k m n), whichever is fewer;
 *  factored: X V and Y (rows k (n + m)), dY U and X V again (rows k (m + n)), dX (rows k n). */
int hg__sst_factored(const hg_linear *L, int64_t rows)
{
    if (L->W_pinned || L->max_rows == 0) /* a loaded W; a map sized for no products */
        return 0;
    if (!L->W && L->w_less)
        return 1;
    if (L->o.product != HG_SST_PRODUCT_AUTO)
        return L->o.product == HG_SST_PRODUCT_FACTORED;
    const double m = (double)L->m, n = (double)L->n, k = (double)L->kk, R = (double)rows;
    const double act = R * k * (m + n), viaG = R * m * n + k * m * n;
    const double dense = m * n * k + 2.0 * R * m * n + (act < viaG ? act : viaG);
    const double factored = 2.0 * R * k * (m + n) + R * k * n;
    return factored < dense;
}

/* The most rows up to `rows` that take the factored path (0: none). */
static int64_t factored_rows(const hg_linear *L, int64_t rows)
{
    for (int64_t R = rows; R > 0; R--)
        if (hg__sst_factored(L, R))
            return R;
    return 0;
}

/* Vt X^T (k x rows): row p is X V_p, storage order. */
static void x_v(const hg_linear *L, float *XVt, const float *X, int64_t rows)
{
    const int64_t n = L->n, k = L->kk, r = L->r;
    hg__gemm(L->k, 0, 1, r, rows, n, 1.0f, L->VS, n, X, n, 0.0f, XVt, rows);
    if (k > r)
        hg__gemm(L->k, 0, 1, k - r, rows, n, 1.0f, L->VR, n, X, n, 0.0f, XVt + r * rows, rows);
}

/* Out (rows x w) (=) S^T F with S (k x rows) and F the k factor rows of width w (first r at
 * Fs, the others at Fr). */
static void from_factors(const hg_linear *L, float *Out, const float *S, const float *Fs,
                         const float *Fr, int64_t w, int64_t rows)
{
    const int64_t k = L->kk, r = L->r;
    hg__gemm(L->k, 1, 0, rows, w, r, 1.0f, S, rows, Fs, w, 0.0f, Out, w);
    if (k > r)
        hg__gemm(L->k, 1, 0, rows, w, k - r, 1.0f, S + r * rows, rows, Fr, w, 1.0f, Out, w);
}

void hg__sst_forward(const hg_linear *L, float *Y, const float *X, int64_t rows)
{
    if (!hg__sst_factored(L, rows)) {
        hg__gemm(L->k, 0, 1, rows, L->m, L->n, 1.0f, X, L->n, hg__sst_weight(L), L->n, 0.0f, Y,
                 L->m);
        return;
    }
    /* X V is kept for the backward of this X (the map's cache: const-callers may fill it); rows
     * beyond the workspace's max_rows go in chunks (a map without W has no other way) */
    hg_linear *Lm = (hg_linear *)L;
    float *S = hg_params_workspace(L->P);
    const int keep = rows <= L->xv_cap;
    Lm->xv_X = keep ? X : NULL;
    Lm->xv_rows = rows;
    for (int64_t at = 0; at < rows; at += L->max_rows) {
        const int64_t c = HG_MIN(L->max_rows, rows - at);
        float *XVt = keep ? L->XV : S;
        x_v(L, XVt, X + at * L->n, c);
        hg_k_scale_rows(L->k, S, L->sigma, XVt, L->kk, c);
        from_factors(L, Y + at * L->m, S, L->US, L->UR, L->m, c);
    }
}

/* ---------------------------------------------------------------- gradients */

/* From G (m x n), P (k x n) scratch: P = Ut G, so row p of P is (G^T U_p)^T, the enhanced gV of a
 * sampled p, and dsigma_p = U_p^T G V_p = P_p . V_p (the exact gradient); gU_S += V_S G^T is
 * G V_j for every sampled j (the true dL/dU_j = sigma_j G V_j without sigma_j). */
static void grad_from_G(hg_linear *L, const float *G, float *P)
{
    const int64_t m = L->m, n = L->n, k = L->kk, r = L->r;
    hg__gemm(L->k, 0, 0, r, n, m, 1.0f, L->US, m, G, n, 0.0f, P, n);
    if (k > r)
        hg__gemm(L->k, 0, 0, k - r, n, m, 1.0f, L->UR, m, G, n, 0.0f, P + r * n, n);
    hg_k_row_dots(L->k, L->gsigma, P, L->VS, r, n);
    if (k > r)
        hg_k_row_dots(L->k, L->gsigma + r, P + r * n, L->VR, k - r, n);
    hg_k_axpy(L->k, L->gV, 1.0f, P, r * n);
    hg__gemm(L->k, 0, 1, r, m, n, 1.0f, L->VS, n, G, n, 1.0f, L->gU, m);
}

void hg__sst_grad_from_G(hg_linear *L, const float *G)
{
    grad_from_G(L, G, hg_params_workspace(L->P));
}

/* Operations of the two ways to the gradients for `rows` rows (multiply-adds). */
static int use_activations(const hg_linear *L, int64_t rows)
{
    const double m = (double)L->m, n = (double)L->n, k = (double)L->kk, r = (double)L->r;
    const double act = (double)rows * (k * (m + n) + r * (m + n));
    const double viaG = (double)rows * m * n + k * m * n + r * m * n;
    return act < viaG;
}

void hg__sst_backward(hg_linear *L, float *dX, const float *dY, const float *X, int64_t rows)
{
    const int64_t m = L->m, n = L->n, k = L->kk, r = L->r;
    float *ws = hg_params_workspace(L->P);
    const int factored = hg__sst_factored(L, rows);
    if (!factored && !use_activations(L, rows)) {
        /* G = dY^T X in the workspace, then as above */
        hg__gemm(L->k, 1, 0, m, n, rows, 1.0f, dY, m, X, n, 0.0f, ws, n);
        grad_from_G(L, ws, ws + m * n);
        return;
    }
    /* XVt (k x rows) = Vt X^T, dYUt (k x rows) = Ut dY^T: row p of their product summed over the
     * rows is dsigma_p; the sampled rows give gU_S = XVt_S dY and gV_S = dYUt_S X; factored,
     * dX = (diag(sigma) dYUt)^T Vt. */
    float *XVt = ws, *dYUt = ws + k * rows;
    if (factored && L->xv_X == X && L->xv_rows == rows)
        XVt = L->XV; /* from this X's forward, with the same V */
    else
        x_v(L, XVt, X, rows);
    hg__gemm(L->k, 0, 1, r, rows, m, 1.0f, L->US, m, dY, m, 0.0f, dYUt, rows);
    if (k > r)
        hg__gemm(L->k, 0, 1, k - r, rows, m, 1.0f, L->UR, m, dY, m, 0.0f, dYUt + r * rows, rows);
    hg_k_row_dots(L->k, L->gsigma, dYUt, XVt, k, rows);
    hg__gemm(L->k, 0, 0, r, m, rows, 1.0f, XVt, rows, dY, m, 1.0f, L->gU, m);
    hg__gemm(L->k, 0, 0, r, n, rows, 1.0f, dYUt, rows, X, n, 1.0f, L->gV, n);
    if (factored && dX) {
        hg_k_scale_rows(L->k, dYUt, L->sigma, dYUt, k, rows);
        from_factors(L, dX, dYUt, L->VS, L->VR, n, rows);
    }
}

/* ---------------------------------------------------------------- step pieces */

/* After the optimiser's update: sigma >= 0 (a NaN stays visible), the sampled vectors back to
 * unit length. */
void hg__sst_after_update(hg_linear *L)
{
    hg_k_clamp_min(L->k, L->sigma, 0.0f, L->kk);
    if (!L->o.renorm)
        return;
    for (int64_t j = 0; j < L->r; j++) {
        hg_k_normalize(L->k, L->US + j * L->m, L->m, HG_SST_RENORM_MIN_NORM);
        hg_k_normalize(L->k, L->VS + j * L->n, L->n, HG_SST_RENORM_MIN_NORM);
    }
}

/* Move the rows of Ut (rows of width w at storage positions through row()) into the new order. */
static void permute_rows(hg_linear *L, float *(*row)(const hg_linear *, int64_t), int64_t w,
                         float *S, float *S_block, float *R_block, const int64_t *order_new)
{
    const int64_t k = L->kk, r = L->r;
    for (int64_t p = 0; p < k; p++)
        hg_k_copy(L->k, S + p * w, row(L, L->pos[order_new[p]]), (size_t)w * sizeof(float));
    hg_k_copy(L->k, S_block, S, (size_t)(r * w) * sizeof(float));
    hg_k_copy(L->k, R_block, S + r * w, (size_t)((k - r) * w) * sizeof(float));
}

/* Start an SST iteration: draw S from sigma (canonical order), move the drawn triplets to the
 * front (sigma and its moments with them), fresh moments and gradients for the sampled vectors,
 * W re-materialised from the new layout. */
void hg__sst_begin_iteration(hg_linear *L)
{
    const int64_t k = L->kk, r = L->r;
    float *canon = L->sigma_host, *store = L->sigma_host + k;
    int64_t *sel_new = L->order + k, *order_new = L->order + 2 * k, *pos_new = L->order + 3 * k;
    hg_k_download(L->k, store, L->sigma, (size_t)k * sizeof(float));
    for (int64_t i = 0; i < k; i++)
        canon[i] = store[L->pos[i]];
    hg__sst_sample(&L->rng, canon, k, r, L->o.sampling, sel_new, L->wsamp);
    layout_from_sel(L, sel_new, order_new, pos_new);

    float *S = hg_params_workspace(L->P);
    permute_rows(L, urow, L->m, S, L->US, L->UR, order_new);
    permute_rows(L, vrow, L->n, S, L->VS, L->VR, order_new);
    float *vecs[3] = {L->sigma, L->msigma, L->vsigma};
    for (int q = 0; q < 3; q++) {
        hg_k_download(L->k, store, vecs[q], (size_t)k * sizeof(float));
        for (int64_t p = 0; p < k; p++)
            canon[p] = store[L->pos[order_new[p]]];
        hg_k_upload(L->k, vecs[q], canon, (size_t)k * sizeof(float));
    }
    memcpy(L->sel, sel_new, (size_t)r * sizeof *L->sel);
    memcpy(L->order, order_new, (size_t)k * sizeof *L->order);
    memcpy(L->pos, pos_new, (size_t)k * sizeof *L->pos);

    hg_k_zero(L->k, L->gU, (size_t)(r * L->m) * sizeof(float));
    hg_k_zero(L->k, L->gV, (size_t)(r * L->n) * sizeof(float));
    hg_params_reset_moments(L->P, L->id_US);
    hg_params_reset_moments(L->P, L->id_VS);
    L->clk_vec.t = 0;
    L->in_iter = 0;
    L->W_stale = 1; /* rebuilt at its next use from the new order: what a reload computes */
}

int hg__linear_sst_round_end(hg_linear *L)
{
    int rc = HG_OK;
    /* the weight of the step just taken, in the old order (a map without W builds it) */
    float *W = hg__sst_svd_input(L);
    if (L->W)
        hg__sst_weight(L);
    else
        build_w(L, W, hg_params_workspace(L->P));
    /* an SVD's behaviour on NaN input is undefined */
    if (!hg_k_all_finite(L->k, W, L->m * L->n))
        rc = HG_ERRORF(HG_ENUMERIC, "sst: non-finite %lld x %lld weight at a round end (step %lld)",
                       (long long)L->m, (long long)L->n, (long long)L->step);
    if (rc == HG_OK)
        rc = hg__sst_decompose(L, W);
    hg_params_reset_moments(L->P, L->id_sigma);
    hg_params_reset_moments(L->P, L->id_US);
    hg_params_reset_moments(L->P, L->id_VS);
    L->clk_main.t = 0;
    L->clk_vec.t = 0;
    L->W_stale = 1;
    return rc;
}
