/* nn.c - CPU bodies of the neural-network ops (kernels/ops_nn.def): activations, bias, row
 * softmax, layer norm, token cross-entropy, embeddings, attention heads.
 *
 * Row-wise ops split their rows between threads (OpenMP, static schedule) when the work is large
 * enough; every row is computed the same way on any thread, so results do not depend on the
 * thread count. Sums over the rows (bias, gamma and beta gradients) run over tiles of columns,
 * each column summed in double in row order; the cross-entropy's loss is summed over fixed
 * chunks of rows, then the chunks in order; the embedding gradient, likewise over tiles of
 * columns, walks the rows in order. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "../src/hg.h"
#include "backend.h"
#include "hg_config.h"

/* Elements of work below which a loop stays on one thread. */
#define NN_PAR_MIN 32768
/* Columns per tile of the sums over rows. */
#define NN_TILE 64
/* Rows per chunk of the cross-entropy's loss, and chunks per round. */
#define NN_CE_CHUNK 64
#define NN_CE_ROUND 256

#if HG_HAVE_OPENMP
#define NN_PRAGMA(x) _Pragma(#x)
/* The next for loop split statically between nt threads (one: no parallel region). */
#define NN_FOR(nt) NN_PRAGMA(omp parallel for schedule(static) if (nt > 1) num_threads(nt))
#else
#define NN_FOR(nt)
#endif

/* Threads for `work` elements of work. */
static int nn_threads(const hg_kctx *k, int64_t work) { return work >= NN_PAR_MIN ? k->threads : 1; }

/* ---------------------------------------------------------------- row helpers
 * Written so that the compiler vectorises them: sums run in NN_LANES interleaved double partial
 * sums (element i into lane i mod NN_LANES) added in a fixed tree at the end, so the order, and
 * the result, depends on the data alone. */

#define NN_LANES 8

static double lanes_total(const double *a)
{
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* sum_i x[i] (a NULL y) or sum_i x[i] y[i], in double. */
static double row_dot(const float *x, const float *y, int64_t n)
{
    double a[NN_LANES] = {0};
    int64_t i = 0;
    if (y)
        for (; i + NN_LANES <= n; i += NN_LANES)
            for (int l = 0; l < NN_LANES; l++)
                a[l] += (double)x[i + l] * y[i + l];
    else
        for (; i + NN_LANES <= n; i += NN_LANES)
            for (int l = 0; l < NN_LANES; l++)
                a[l] += x[i + l];
    for (int l = 0; i < n; i++, l++)
        a[l] += y ? (double)x[i] * y[i] : (double)x[i];
    return lanes_total(a);
}

/* max_i scale x[i] (-inf for n = 0; NaN elements are skipped). */
static float row_max(const float *x, int64_t n, float scale)
{
    float m[NN_LANES];
    for (int l = 0; l < NN_LANES; l++)
        m[l] = -INFINITY;
    int64_t i = 0;
    for (; i + NN_LANES <= n; i += NN_LANES)
        for (int l = 0; l < NN_LANES; l++)
            m[l] = m[l] > scale * x[i + l] ? m[l] : scale * x[i + l];
    for (int l = 0; i < n; i++, l++)
        m[l] = m[l] > scale * x[i] ? m[l] : scale * x[i];
    float r = m[0];
    for (int l = 1; l < NN_LANES; l++)
        r = r > m[l] ? r : m[l];
    return r;
}

/* e^x for x <= 0 (0 below -87, where e^x leaves the normal floats), within 2 ulp of expf:
 * x = n ln 2 + r with |r| <= ln 2 / 2 (ln 2 split in two for an exact product), e^r by its
 * degree-7 Taylor polynomial, 2^n put into the exponent bits. Branch-free, so that loops of it
 * vectorise (the C library's expf does not without -ffast-math). */
static inline float nn_exp(float x)
{
    const float n = rintf(x * 1.44269504088896341f);
    float r = fmaf(n, -0.693145751953125f, x);
    r = fmaf(n, -1.42860682030941723212e-6f, r);
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    const int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return x < -87.0f ? 0.0f : p * two_n;
}

/* ---------------------------------------------------------------- activations, bias */

void hg_cpu_relu_forward(const hg_kctx *k, float *y, const float *x, int64_t n)
{
    (void)k;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void hg_cpu_relu_backward(const hg_kctx *k, float *dx, const float *dy, const float *x, int64_t n)
{
    (void)k;
    for (int64_t i = 0; i < n; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

void hg_cpu_gelu_forward(const hg_kctx *k, float *y, const float *x, int64_t n)
{
    const int nt = nn_threads(k, n * 8);
    NN_FOR(nt)
    for (int64_t i = 0; i < n; i++)
        y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

void hg_cpu_gelu_backward(const hg_kctx *k, float *dx, const float *dy, const float *x, int64_t n)
{
    const float c = (float)(0.5 * M_2_SQRTPI * M_SQRT1_2); /* 1 / sqrt(2 pi) */
    const int nt = nn_threads(k, n * 8);
    NN_FOR(nt)
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        const float cdf = 0.5f * (1.0f + erff(v * (float)M_SQRT1_2));
        dx[i] = dy[i] * (cdf + v * c * nn_exp(-0.5f * v * v));
    }
}

void hg_cpu_add_bias_rows(const hg_kctx *k, float *y, const float *b, int64_t rows, int64_t cols)
{
    const int nt = nn_threads(k, rows * cols);
    NN_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        float *yr = y + r * cols;
        for (int64_t c = 0; c < cols; c++)
            yr[c] += b[c];
    }
}

void hg_cpu_col_sums(const hg_kctx *k, float *out, const float *x, int64_t rows, int64_t cols)
{
    const int64_t ntiles = (cols + NN_TILE - 1) / NN_TILE;
    const int nt = nn_threads(k, rows * cols);
    NN_FOR(nt)
    for (int64_t t = 0; t < ntiles; t++) {
        const int64_t c0 = t * NN_TILE, w = HG_MIN(NN_TILE, cols - c0);
        double acc[NN_TILE] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * cols + c0;
            for (int64_t j = 0; j < w; j++)
                acc[j] += xr[j];
        }
        for (int64_t j = 0; j < w; j++)
            out[c0 + j] = (float)((double)out[c0 + j] + acc[j]);
    }
}

/* ---------------------------------------------------------------- softmax */

/* Unmasked keys of row r: a prefix (both masks cut a row's tail). */
static int64_t softmax_keys(int64_t r, int64_t cols, int64_t causal, const int32_t *key_len,
                            int64_t rows_per_len)
{
    int64_t nk = cols;
    if (causal > 0 && r % causal + 1 < nk)
        nk = r % causal + 1;
    if (key_len && key_len[r / rows_per_len] < nk)
        nk = key_len[r / rows_per_len] < 0 ? 0 : key_len[r / rows_per_len];
    return nk;
}

void hg_cpu_softmax_forward(const hg_kctx *k, float *y, const float *x, int64_t rows, int64_t cols,
                            float scale, int64_t causal, const int32_t *key_len,
                            int64_t rows_per_len)
{
    const int nt = nn_threads(k, rows * cols * 4);
    NN_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        const int64_t nk = softmax_keys(r, cols, causal, key_len, rows_per_len);
        const float m = row_max(xr, nk, scale);
        for (int64_t j = 0; j < nk; j++)
            yr[j] = nn_exp(scale * xr[j] - m);
        const double s = row_dot(yr, NULL, nk);
        const float inv = nk > 0 ? (float)(1.0 / s) : 0.0f;
        for (int64_t j = 0; j < nk; j++)
            yr[j] *= inv;
        for (int64_t j = nk; j < cols; j++)
            yr[j] = 0.0f;
    }
}

void hg_cpu_softmax_backward(const hg_kctx *k, float *dx, const float *dy, const float *y,
                             int64_t rows, int64_t cols, float scale)
{
    const int nt = nn_threads(k, rows * cols);
    NN_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        const float *dyr = dy + r * cols, *yr = y + r * cols;
        float *dxr = dx + r * cols;
        const float fd = (float)row_dot(dyr, yr, cols);
        for (int64_t j = 0; j < cols; j++)
            dxr[j] = scale * yr[j] * (dyr[j] - fd);
    }
}

/* ---------------------------------------------------------------- fused causal attention
 * Flash-style on tiles of ATT_TILE query rows by ATT_TILE keys: each tile's scores are one small
 * SGEMM into a stack buffer, the softmax runs online over the key tiles (a running maximum and
 * sum per row), and the context collects P V tile by tile; no T x T array exists. The backward
 * recomputes each tile's P from lse. Work is split by (item, query tile) in the forward and by
 * item in the backward (an item's dK, dV collect over its query tiles), so the results do not
 * depend on the thread count. */

#define ATT_TILE 64

/* S (qn x kn, leading dimension ATT_TILE) (=) A (qn x dh) B^T (B: kn x dh). */
static void att_scores(float *S, const float *A, const float *B, int64_t qn, int64_t kn,
                       int64_t dh)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)qn, (int)kn, (int)dh, 1.0f, A,
                (int)dh, B, (int)dh, 0.0f, S, ATT_TILE);
}

/* Keys of tile j0 (kn of them) that query i sees. */
static int64_t att_visible(int64_t i, int64_t j0, int64_t kn)
{
    return i - j0 + 1 < kn ? i - j0 + 1 : kn;
}

void hg_cpu_attn_causal_forward(const hg_kctx *k, float *O, float *lse, const float *Q,
                                const float *K, const float *V, int64_t items, int64_t T,
                                int64_t dh, float scale, float p, uint64_t seed)
{
    if (dh > HG_ATTN_MAX_DH || items <= 0 || T <= 0)
        return;
    const int64_t tiles = (T + ATT_TILE - 1) / ATT_TILE;
    const int nt = nn_threads(k, items * T * T * dh / 4);
    NN_FOR(nt)
    for (int64_t w = 0; w < items * tiles; w++) {
        const int64_t b = w / tiles, i0 = (w % tiles) * ATT_TILE;
        const int64_t qn = T - i0 < ATT_TILE ? T - i0 : ATT_TILE;
        const float *Qb = Q + b * T * dh, *Kb = K + b * T * dh, *Vb = V + b * T * dh;
        float S[ATT_TILE * ATT_TILE], acc[ATT_TILE * HG_ATTN_MAX_DH], m[ATT_TILE];
        float mask[ATT_TILE];
        double l[ATT_TILE];
        for (int64_t r = 0; r < qn; r++)
            m[r] = -INFINITY, l[r] = 0.0;
        memset(acc, 0, (size_t)(qn * dh) * sizeof(float));
        for (int64_t j0 = 0; j0 < i0 + qn; j0 += ATT_TILE) {
            const int64_t kn = T - j0 < ATT_TILE ? T - j0 : ATT_TILE;
            att_scores(S, Qb + i0 * dh, Kb + j0 * dh, qn, kn, dh);
            for (int64_t r = 0; r < qn; r++) {
                const int64_t i = i0 + r, nk = att_visible(i, j0, kn);
                float *row = S + r * ATT_TILE, mx = m[r];
                for (int64_t c = 0; c < nk; c++)
                    mx = fmaxf(mx, scale * row[c]);
                if (mx > m[r]) { /* a new maximum: rescale what was summed */
                    const float corr = m[r] == -INFINITY ? 0.0f : nn_exp(m[r] - mx);
                    l[r] *= corr;
                    for (int64_t c = 0; c < dh; c++)
                        acc[r * dh + c] *= corr;
                    m[r] = mx;
                }
                hg_k_dropout_mask(mask, ((b * T + i) * T) + j0, nk, p, seed);
                double sum = 0.0;
                for (int64_t c = 0; c < nk; c++) {
                    const float e = nn_exp(scale * row[c] - mx);
                    sum += e;
                    row[c] = e * mask[c];
                }
                l[r] += sum;
                for (int64_t c = nk; c < kn; c++)
                    row[c] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)qn, (int)dh, (int)kn,
                        1.0f, S, ATT_TILE, Vb + j0 * dh, (int)dh, 1.0f, acc, (int)dh);
        }
        for (int64_t r = 0; r < qn; r++) {
            const float inv = (float)(1.0 / l[r]);
            for (int64_t c = 0; c < dh; c++)
                O[(b * T + i0 + r) * dh + c] = acc[r * dh + c] * inv;
            lse[b * T + i0 + r] = (float)((double)m[r] + log(l[r]));
        }
    }
}

void hg_cpu_attn_causal_backward(const hg_kctx *k, float *dQ, float *dK, float *dV,
                                 const float *dO, const float *Q, const float *K, const float *V,
                                 const float *O, const float *lse, int64_t items, int64_t T,
                                 int64_t dh, float scale, float p, uint64_t seed)
{
    if (dh > HG_ATTN_MAX_DH || items <= 0 || T <= 0)
        return;
    const int nt = nn_threads(k, items * T * T * dh / 2);
    NN_FOR(nt)
    for (int64_t b = 0; b < items; b++) {
        const int64_t o0 = b * T * dh;
        const float *Qb = Q + o0, *Kb = K + o0, *Vb = V + o0, *Gb = dO + o0;
        float *dKb = dK + o0, *dVb = dV + o0;
        float P[ATT_TILE * ATT_TILE], PM[ATT_TILE * ATT_TILE], dS[ATT_TILE * ATT_TILE];
        float dq[ATT_TILE * HG_ATTN_MAX_DH], D[ATT_TILE], mask[ATT_TILE];
        memset(dKb, 0, (size_t)(T * dh) * sizeof(float));
        memset(dVb, 0, (size_t)(T * dh) * sizeof(float));
        for (int64_t i0 = 0; i0 < T; i0 += ATT_TILE) {
            const int64_t qn = T - i0 < ATT_TILE ? T - i0 : ATT_TILE;
            for (int64_t r = 0; r < qn; r++) /* sum_j P_ij M_ij dPd_ij = dO_i . O_i */
                D[r] = (float)row_dot(Gb + (i0 + r) * dh, O + o0 + (i0 + r) * dh, dh);
            memset(dq, 0, (size_t)(qn * dh) * sizeof(float));
            for (int64_t j0 = 0; j0 < i0 + qn; j0 += ATT_TILE) {
                const int64_t kn = T - j0 < ATT_TILE ? T - j0 : ATT_TILE;
                att_scores(P, Qb + i0 * dh, Kb + j0 * dh, qn, kn, dh);
                att_scores(dS, Gb + i0 * dh, Vb + j0 * dh, qn, kn, dh); /* dPd = dO V^T */
                for (int64_t r = 0; r < qn; r++) {
                    const int64_t i = i0 + r, nk = att_visible(i, j0, kn);
                    const float L = lse[b * T + i];
                    float *pr = P + r * ATT_TILE, *pm = PM + r * ATT_TILE, *ds = dS + r * ATT_TILE;
                    hg_k_dropout_mask(mask, ((b * T + i) * T) + j0, nk, p, seed);
                    for (int64_t c = 0; c < nk; c++) {
                        const float e = nn_exp(scale * pr[c] - L);
                        pm[c] = e * mask[c];
                        ds[c] = e * (mask[c] * ds[c] - D[r]);
                    }
                    for (int64_t c = nk; c < kn; c++)
                        pm[c] = ds[c] = 0.0f;
                }
                /* dV_j += (P M)^T dO_i, dQ_i += dS K_j, dK_j += dS^T Q_i */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kn, (int)dh, (int)qn,
                            1.0f, PM, ATT_TILE, Gb + i0 * dh, (int)dh, 1.0f, dVb + j0 * dh,
                            (int)dh);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)qn, (int)dh, (int)kn,
                            1.0f, dS, ATT_TILE, Kb + j0 * dh, (int)dh, 1.0f, dq, (int)dh);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kn, (int)dh, (int)qn,
                            scale, dS, ATT_TILE, Qb + i0 * dh, (int)dh, 1.0f, dKb + j0 * dh,
                            (int)dh);
            }
            for (int64_t e = 0; e < qn * dh; e++)
                dQ[o0 + i0 * dh + e] = scale * dq[e];
        }
    }
}

/* ---------------------------------------------------------------- layer norm */

void hg_cpu_layernorm_forward(const hg_kctx *k, float *y, float *mean, float *rstd, const float *x,
                              const float *gamma, const float *beta, int64_t rows, int64_t cols,
                              float eps)
{
    const int nt = nn_threads(k, rows * cols);
    NN_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        const double mu = row_dot(xr, NULL, cols) / (double)cols;
        double a[NN_LANES] = {0};
        int64_t j = 0;
        for (; j + NN_LANES <= cols; j += NN_LANES)
            for (int l = 0; l < NN_LANES; l++)
                a[l] += ((double)xr[j + l] - mu) * ((double)xr[j + l] - mu);
        for (int l = 0; j < cols; j++, l++)
            a[l] += ((double)xr[j] - mu) * ((double)xr[j] - mu);
        const double v = lanes_total(a);
        const float m = (float)mu, rs = (float)(1.0 / sqrt(v / (double)cols + (double)eps));
        mean[r] = m;
        rstd[r] = rs;
        for (int64_t c = 0; c < cols; c++)
            yr[c] = (xr[c] - m) * rs;
        if (gamma)
            for (int64_t c = 0; c < cols; c++)
                yr[c] *= gamma[c];
        if (beta)
            for (int64_t c = 0; c < cols; c++)
                yr[c] += beta[c];
    }
}

void hg_cpu_layernorm_backward(const hg_kctx *k, float *dx, float *dgamma, float *dbeta,
                               const float *dy, const float *x, const float *mean,
                               const float *rstd, const float *gamma, int64_t rows, int64_t cols)
{
    const int nt = nn_threads(k, rows * cols);
    NN_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        float *dxr = dx + r * cols;
        const float m = mean[r], rs = rstd[r];
        double la[NN_LANES] = {0}, lb[NN_LANES] = {0};
        int64_t j = 0;
        for (; j + NN_LANES <= cols; j += NN_LANES)
            for (int l = 0; l < NN_LANES; l++) {
                const float g = gamma ? dyr[j + l] * gamma[j + l] : dyr[j + l];
                la[l] += g;
                lb[l] += (double)g * ((xr[j + l] - m) * rs);
            }
        for (int l = 0; j < cols; j++, l++) {
            const float g = gamma ? dyr[j] * gamma[j] : dyr[j];
            la[l] += g;
            lb[l] += (double)g * ((xr[j] - m) * rs);
        }
        const double a = lanes_total(la), b = lanes_total(lb);
        const float fa = (float)(a / (double)cols), fb = (float)(b / (double)cols);
        for (int64_t c = 0; c < cols; c++) {
            const float g = gamma ? dyr[c] * gamma[c] : dyr[c];
            dxr[c] = rs * (g - fa - (xr[c] - m) * rs * fb);
        }
    }
    if (!dgamma && !dbeta)
        return;
    const int64_t ntiles = (cols + NN_TILE - 1) / NN_TILE;
    NN_FOR(nt)
    for (int64_t t = 0; t < ntiles; t++) {
        const int64_t c0 = t * NN_TILE, w = HG_MIN(NN_TILE, cols - c0);
        double ag[NN_TILE] = {0}, ab[NN_TILE] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * cols + c0, *dyr = dy + r * cols + c0;
            const float m = mean[r], rs = rstd[r];
            for (int64_t j = 0; j < w; j++) {
                ag[j] += (double)dyr[j] * ((xr[j] - m) * rs);
                ab[j] += dyr[j];
            }
        }
        for (int64_t j = 0; j < w; j++) {
            if (dgamma)
                dgamma[c0 + j] = (float)((double)dgamma[c0 + j] + ag[j]);
            if (dbeta)
                dbeta[c0 + j] = (float)((double)dbeta[c0 + j] + ab[j]);
        }
    }
}

/* ---------------------------------------------------------------- cross-entropy */

/* Loss of row r (0 when ignored); its gradient row when dl. */
static double ce_row(float *dl, const float *l, int32_t target, int64_t C, float smoothing,
                     int32_t ignore_index, float w)
{
    if (target == ignore_index) {
        if (dl)
            memset(dl, 0, (size_t)C * sizeof *dl);
        return 0.0;
    }
    /* everything read from l before dl (which may be l) is written: the maximum, the sum, the
       target's logit; then one exp pass keeps exp(l - m) in dl, and one pass scales it */
    const float m = row_max(l, C, 1.0f), lt = l[target];
    const double sl = row_dot(l, NULL, C);
    double s;
    if (dl) {
        for (int64_t c = 0; c < C; c++)
            dl[c] = nn_exp(l[c] - m);
        s = row_dot(dl, NULL, C);
    } else {
        double ls[NN_LANES] = {0};
        int64_t c = 0;
        for (; c + NN_LANES <= C; c += NN_LANES)
            for (int j = 0; j < NN_LANES; j++)
                ls[j] += nn_exp(l[c + j] - m);
        for (int j = 0; c < C; c++, j++)
            ls[j] += nn_exp(l[c] - m);
        s = lanes_total(ls);
    }
    const double lse = (double)m + log(s);
    const double off = (double)smoothing / (double)C;
    const double loss = lse - (1.0 - smoothing) * (double)lt - off * sl;
    if (dl) {
        const float a = w * (float)(1.0 / s), q = w * (float)off;
        for (int64_t j = 0; j < C; j++)
            dl[j] = dl[j] * a - q;
        dl[target] -= w * (1.0f - smoothing);
    }
    return loss;
}

double hg_cpu_cross_entropy(const hg_kctx *k, float *dlogits, const float *logits,
                            const int32_t *targets, int64_t rows, int64_t C, float smoothing,
                            int32_t ignore_index, float w)
{
    const int nt = nn_threads(k, rows * C * 4);
    double total = 0.0;
    for (int64_t r0 = 0; r0 < rows; r0 += (int64_t)NN_CE_CHUNK * NN_CE_ROUND) {
        const int64_t nch = HG_MIN(NN_CE_ROUND, (rows - r0 + NN_CE_CHUNK - 1) / NN_CE_CHUNK);
        double part[NN_CE_ROUND];
        NN_FOR(nt)
        for (int64_t c = 0; c < nch; c++) {
            const int64_t a = r0 + c * NN_CE_CHUNK, b = HG_MIN(a + NN_CE_CHUNK, rows);
            double s = 0.0;
            for (int64_t r = a; r < b; r++)
                s += ce_row(dlogits ? dlogits + r * C : NULL, logits + r * C, targets[r], C,
                            smoothing, ignore_index, w);
            part[c] = s;
        }
        for (int64_t c = 0; c < nch; c++)
            total += part[c];
    }
    return total;
}

/* ---------------------------------------------------------------- embeddings */

void hg_cpu_embed_forward(const hg_kctx *k, float *Y, const float *E, const int32_t *ids,
                          const float *pos, int64_t rows, int64_t T, int64_t d, float scale)
{
    const int nt = nn_threads(k, rows * d);
    NN_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        float *yr = Y + r * d;
        const float *er = ids[r] >= 0 ? E + (int64_t)ids[r] * d : NULL;
        const float *pr = pos ? pos + (r % T) * d : NULL;
        for (int64_t c = 0; c < d; c++)
            yr[c] = fmaf(scale, er ? er[c] : 0.0f, pr ? pr[c] : 0.0f);
    }
}

void hg_cpu_embed_backward(const hg_kctx *k, float *dE, const float *dY, const int32_t *ids,
                           int64_t rows, int64_t d, float scale)
{
    const int64_t ntiles = (d + NN_TILE - 1) / NN_TILE;
    const int nt = nn_threads(k, rows * d);
    NN_FOR(nt)
    for (int64_t t = 0; t < ntiles; t++) {
        const int64_t c0 = t * NN_TILE, w = HG_MIN(NN_TILE, d - c0);
        for (int64_t r = 0; r < rows; r++) {
            if (ids[r] < 0)
                continue;
            float *er = dE + (int64_t)ids[r] * d + c0;
            const float *dyr = dY + r * d + c0;
            for (int64_t j = 0; j < w; j++)
                er[j] = fmaf(scale, dyr[j], er[j]);
        }
    }
}

/* ---------------------------------------------------------------- attention heads */

/* One (b, t, h) row of dh floats moves between (B, T, H, dh) and (B, H, T, dh); split: from the
 * first layout to the second. */
static void heads_move(const hg_kctx *k, float *dst, const float *src, int64_t B, int64_t T,
                       int64_t H, int64_t dh, int split)
{
    const int nt = nn_threads(k, B * T * H * dh);
    NN_FOR(nt)
    for (int64_t bt = 0; bt < B * T; bt++) {
        const int64_t b = bt / T, t = bt % T;
        for (int64_t h = 0; h < H; h++) {
            const int64_t a = (bt * H + h) * dh, s = ((b * H + h) * T + t) * dh;
            memcpy(split ? dst + s : dst + a, split ? src + a : src + s, (size_t)dh * sizeof *dst);
        }
    }
}

void hg_cpu_heads_split(const hg_kctx *k, float *dst, const float *src, int64_t B, int64_t T,
                        int64_t H, int64_t dh)
{
    heads_move(k, dst, src, B, T, H, dh, 1);
}

void hg_cpu_heads_merge(const hg_kctx *k, float *dst, const float *src, int64_t B, int64_t T,
                        int64_t H, int64_t dh)
{
    heads_move(k, dst, src, B, T, H, dh, 0);
}
