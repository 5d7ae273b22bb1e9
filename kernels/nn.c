/* nn.c - CPU bodies of the neural-network ops (kernels/ops_nn.def): activations, bias, row
 * softmax, layer norm, token cross-entropy.
 *
 * Row-wise ops split their rows between threads (OpenMP, static schedule) when the work is large
 * enough; every row is computed the same way on any thread, so results do not depend on the
 * thread count. Sums over the rows (bias, gamma and beta gradients) run over tiles of columns,
 * each column summed in double in row order; the cross-entropy's loss is summed over fixed
 * chunks of rows, then the chunks in order. */
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
        dx[i] = dy[i] * (cdf + v * c * expf(-0.5f * v * v));
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
        float m = -INFINITY;
        for (int64_t j = 0; j < nk; j++)
            m = fmaxf(m, scale * xr[j]);
        double s = 0.0;
        for (int64_t j = 0; j < nk; j++) {
            const float e = expf(scale * xr[j] - m);
            yr[j] = e;
            s += e;
        }
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
        double dot = 0.0;
        for (int64_t j = 0; j < cols; j++)
            dot += (double)dyr[j] * yr[j];
        const float fd = (float)dot;
        for (int64_t j = 0; j < cols; j++)
            dxr[j] = scale * yr[j] * (dyr[j] - fd);
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
        double s = 0.0;
        for (int64_t j = 0; j < cols; j++)
            s += xr[j];
        const double mu = s / (double)cols;
        double v = 0.0;
        for (int64_t j = 0; j < cols; j++)
            v += ((double)xr[j] - mu) * ((double)xr[j] - mu);
        const float m = (float)mu, rs = (float)(1.0 / sqrt(v / (double)cols + (double)eps));
        mean[r] = m;
        rstd[r] = rs;
        for (int64_t j = 0; j < cols; j++) {
            float t = (xr[j] - m) * rs;
            if (gamma)
                t *= gamma[j];
            if (beta)
                t += beta[j];
            yr[j] = t;
        }
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
        double a = 0.0, b = 0.0;
        for (int64_t j = 0; j < cols; j++) {
            const float g = gamma ? dyr[j] * gamma[j] : dyr[j];
            a += g;
            b += (double)g * ((xr[j] - m) * rs);
        }
        const float fa = (float)(a / (double)cols), fb = (float)(b / (double)cols);
        for (int64_t j = 0; j < cols; j++) {
            const float g = gamma ? dyr[j] * gamma[j] : dyr[j];
            dxr[j] = rs * (g - fa - (xr[j] - m) * rs * fb);
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
    float m = -INFINITY;
    for (int64_t c = 0; c < C; c++)
        m = fmaxf(m, l[c]);
    double s = 0.0, sl = 0.0;
    for (int64_t c = 0; c < C; c++) {
        s += expf(l[c] - m);
        sl += l[c];
    }
    const double lse = (double)m + log(s);
    const double off = (double)smoothing / (double)C;
    const double loss = lse - (1.0 - smoothing) * (double)l[target] - off * sl;
    if (dl) {
        const float inv = (float)(1.0 / s), q = (float)off;
        for (int64_t c = 0; c < C; c++)
            dl[c] = w * (expf(l[c] - m) * inv - q);
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
