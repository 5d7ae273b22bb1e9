/* test_cuda_lorentz.c - the CUDA backend against the CPU kernels: the class margin loss and
 * argmax, the Lorentz decoders (pair scores, pair margin loss, class logits), Riemannian Adam,
 * stabilisation, and empty sizes. The harness and the tolerances are in test_cuda.h. */
#include "test_cuda.h"

/* ---- class margin loss, argmax ---- */

typedef struct {
    int64_t nidx, C;
    float margin, w;
    int with_dl;
} cml_par;

static void cml_fn(const hg_kctx *k, op *o) /* args: logits, idx, labels, dl */
{
    const cml_par *p = o->par;
    o->ret = hg_k_class_margin_loss(k, p->with_dl ? F(o, 3) : NULL, F(o, 0), I64(o, 1), p->nidx,
                                    I32(o, 2), p->C, p->margin, p->w);
}
static void argmax_fn(const hg_kctx *k, op *o) /* args: logits, idx, pred */
{
    const cml_par *p = o->par;
    hg_k_argmax_rows(k, I32(o, 2), F(o, 0), I64(o, 1), p->nidx, p->C);
}

static void test_class_margin_loss_argmax(void **state)
{
    (void)state;
    REQUIRE_GPU();
    const int64_t n = 300, C = 7, nidx = 250; /* nidx > HG_K_FLOAT_RUN: several chunks */
    float *logits = uniform(n * C, -3.0f, 3.0f, 600);
    int32_t *labels = hg_test_alloc(n, sizeof *labels);
    int64_t *idx = hg_test_alloc(n, sizeof *idx);
    hg_rng g;
    hg_rng_seed(&g, 601);
    for (int64_t i = 0; i < n; i++) {
        labels[i] = (int32_t)hg_rng_below(&g, (uint64_t)C);
        idx[i] = i;
    }
    hg_rng_shuffle_i64(&g, idx, n); /* the first nidx: distinct rows in shuffled order */
    for (int64_t i = 0; i < n; i += 5) { /* ties for the maximum: the first one wins */
        float mx = -INFINITY;
        for (int64_t c = 0; c < C; c++)
            mx = fmaxf(mx, logits[i * C + c]);
        logits[i * C + 3] = logits[i * C + 5] = mx + 1.0f;
    }
    for (int with_dl = 0; with_dl < 2; with_dl++) {
        const cml_par p = {nidx, C, 2.0f, 1.0f / (float)nidx, with_dl};
        op o;
        res rc, rg;
        op_init(&o, cml_fn, &p, "class_margin_loss(%s)", with_dl ? "dl" : "dl NULL");
        op_arg(&o, T_F32, ARG_IN, n * C, logits);
        op_arg(&o, T_I64, ARG_IN, nidx, idx);
        op_arg(&o, T_I32, ARG_IN, n, labels);
        const int idl = op_arg(&o, T_F32, ARG_OUT, nidx * C, NULL);
        run_both(&o, &rc, &rg);
        /* the hinges margin - l_y + l_c are exact in double (three floats), so both sides take
         * the same branches; the loss is their double sum in any order: 2 nidx C ud sum|terms| */
        double lmag = 0.0;
        for (int64_t a = 0; a < nidx; a++)
            for (int64_t c = 0; c < C; c++) {
                const float *li = logits + idx[a] * C;
                lmag += fmax((double)p.margin - li[labels[idx[a]]] + li[c], 0.0);
            }
        expect_scalar(&o, rg.ret, rc.ret, 2.0 * (double)(nidx * C) * UD * lmag, "loss");
        if (with_dl) {
            /* w or 0, and w - nactive w for the label (two roundings of <= C |w|) */
            double *tol = td(nidx * C);
            for (int64_t i = 0; i < nidx * C; i++)
                tol[i] = 2.0 * U32 * (double)(C + 1) * p.w;
            expect_arg_within(&o, idl, &rg, &rc, tol, C, "dl");
        } else { /* dl NULL: nothing written (still NaN) */
            expect_arg_bits(&o, idl, &rg, &rc, "dl (untouched)");
        }

        const cml_par pa = {n, C, 0.0f, 0.0f, 0};
        int64_t *all = hg_test_alloc(n, sizeof *all);
        for (int64_t i = 0; i < n; i++)
            all[i] = with_dl ? idx[i] : i;
        op_init(&o, argmax_fn, &pa, "argmax_rows(%s)", with_dl ? "shuffled" : "in order");
        op_arg(&o, T_F32, ARG_IN, n * C, logits);
        op_arg(&o, T_I64, ARG_IN, n, all);
        const int ip = op_arg(&o, T_I32, ARG_OUT, n, NULL);
        run_both(&o, &rc, &rg);
        expect_arg_bits(&o, ip, &rg, &rc, "pred");
        for (int64_t a = 0; a < n; a++)
            if (all[a] % 5 == 0)
                assert_int_equal(((int32_t *)rg.h[ip])[a], 3);
    }
}

/* ---- decoders: pair scores, margin loss, class logits ----
 * A score 2 + 2 <x, y>_L of width d: d float products summed, times 2, plus 2 and the store:
 * within (d + 3) u (2 + 2 sum |x_j y_j|) on each side. A gradient element accumulated (+=) from
 * m terms onto its start value: within (m + 2) u (|start| + sum |terms|) on each side. */

/* Magnitudes M and term counts cnt of dX rows u, v += c d<x_u, x_v>_L / dX. */
static void pair_mag(double *M, int64_t *cnt, const float *X, int32_t u, int32_t v, double c,
                     int64_t d)
{
    for (int64_t j = 0; j < d; j++) {
        M[u * d + j] += fabs(c * X[v * d + j]);
        M[v * d + j] += fabs(c * X[u * d + j]);
    }
    cnt[u]++;
    cnt[v]++;
}

#define PAIR_NPTS 40
#define PAIR_COUNT 200 /* every point in ~10 pairs: repeated ids, rows written by many pairs */
#define NAN_ROW (PAIR_NPTS - 1)

typedef struct {
    int64_t count, d, n;
    float margin, w;
    int with_dx;
} pair_par;

static void pair_score_fn(const hg_kctx *k, op *o) /* args: X, pairs, out */
{
    const pair_par *p = o->par;
    hg_k_lorentz_pair_score(k, F(o, 2), F(o, 0), I32(o, 1), p->count, p->d);
}
static void pair_score_bwd_fn(const hg_kctx *k, op *o) /* args: X, pairs, g, dX */
{
    const pair_par *p = o->par;
    hg_k_lorentz_pair_score_backward(k, F(o, 3), F(o, 0), I32(o, 1), F(o, 2), p->count, p->d);
}

static void test_pair_score(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5, 24};
    for (int w = 0; w < 3; w++) {
        const int mark = hg_test_mark();
        const int64_t d = widths[w], np = PAIR_NPTS, count = PAIR_COUNT;
        const pair_par p = {count, d, np, 0.0f, 0.0f, 0};
        float *X = tf(np * d);
        int32_t *pairs = hg_test_alloc(2 * count, sizeof *pairs);
        hg_test_random_points(X, np, d, 2.0, 1200 + (uint64_t)w);
        hg_test_random_pairs(pairs, count, PAIR_NPTS, 1210 + (uint64_t)w, 5);
        op o;
        res rc, rg;
        op_init(&o, pair_score_fn, &p, "lorentz_pair_score(d=%lld)", (long long)d);
        op_arg(&o, T_F32, ARG_IN, np * d, X);
        op_arg(&o, T_I32, ARG_IN, 2 * count, pairs);
        const int iout = op_arg(&o, T_F32, ARG_OUT, count, NULL);
        run_both(&o, &rc, &rg);
        double *tol = td(count);
        for (int64_t e = 0; e < count; e++) {
            double mag;
            hg_test_score(X + pairs[2 * e] * d, X + pairs[2 * e + 1] * d, d, &mag);
            tol[e] = 2.0 * (double)(d + 3) * U32 * mag;
        }
        expect_arg_within(&o, iout, &rg, &rc, tol, 1, "scores");

        /* backward: pairs with g = 0 are skipped, so the row NAN_ROW (only in such pairs) may be
         * NaN without reaching dX */
        float *g = uniform(count, -1.0f, 1.0f, 1220 + (uint64_t)w);
        for (int64_t e = 0; e < count; e++)
            if (e % 5 == 4 || e % 7 == 0)
                g[e] = 0.0f;
        float *Xn = fcopy(X, np * d);
        hg_test_fill_nan(Xn + NAN_ROW * d, d);
        float *dX0 = uniform(np * d, -1.0f, 1.0f, 1230 + (uint64_t)w);
        op_init(&o, pair_score_bwd_fn, &p, "lorentz_pair_score_backward(d=%lld)", (long long)d);
        op_arg(&o, T_F32, ARG_IN, np * d, Xn);
        op_arg(&o, T_I32, ARG_IN, 2 * count, pairs);
        op_arg(&o, T_F32, ARG_IN, count, g);
        const int idX = op_arg(&o, T_F32, ARG_OUT, np * d, dX0);
        run_both(&o, &rc, &rg);
        double *M = td(np * d), *T = td(np * d);
        int64_t *cnt = hg_test_alloc(np, sizeof *cnt);
        for (int64_t i = 0; i < np * d; i++)
            M[i] = fabs((double)dX0[i]);
        for (int64_t e = 0; e < count; e++)
            if (g[e] != 0.0f)
                pair_mag(M, cnt, Xn, pairs[2 * e], pairs[2 * e + 1], 2.0 * g[e], d);
        for (int64_t i = 0; i < np * d; i++)
            T[i] = 2.0 * (double)(cnt[i / d] + 2) * U32 * M[i];
        expect_arg_within(&o, idX, &rg, &rc, T, d, "dX");
        for (int64_t j = 0; j < d; j++) /* the NaN row's start values, untouched */
            assert_true(((float *)rg.h[idX])[NAN_ROW * d + j] == dX0[NAN_ROW * d + j]);
        hg_test_release(mark);
    }
}

/* args: X, pos, neg, s_pos, s_neg, dX */
static void pair_margin_fn(const hg_kctx *k, op *o)
{
    const pair_par *p = o->par;
    o->ret = hg_k_lorentz_pair_margin_loss(k, F(o, 3), F(o, 4), p->with_dx ? F(o, 5) : NULL,
                                           F(o, 0), I32(o, 1), I32(o, 2), p->count, p->margin,
                                           p->w, p->n, p->d, NULL);
}

static void test_pair_margin_loss(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5, 24};
    /* PAIR_COUNT couples, and 37: few enough for a single segment of the GPU's row scan */
    for (int w = 0; w < 3; w++)
        for (int v = 0; v < 4; v++) {
            const int mark = hg_test_mark(), with_dx = v & 1;
            const int64_t d = widths[w], np = PAIR_NPTS, count = v & 2 ? 37 : PAIR_COUNT;
            const pair_par p = {count, d, np, 2.0f, 1.0f / (2.0f * (float)count), with_dx};
            float *X = tf(np * d);
            int32_t *pos = hg_test_alloc(2 * count, sizeof *pos);
            int32_t *neg = hg_test_alloc(2 * count, sizeof *neg);
            hg_test_random_points(X, np, d, 1.5, 1300 + (uint64_t)w);
            hg_test_random_pairs(pos, count, PAIR_NPTS, 1310 + (uint64_t)w, 0);
            hg_test_random_pairs(neg, count, PAIR_NPTS, 1320 + (uint64_t)w, 0);
            /* keep every hinge margin - s_pos + s_neg away from 0 (1e-3 >> the scores' rounding
             * differences), so that both sides take the same branches: redraw such negatives */
            hg_rng g;
            hg_rng_seed(&g, 1330 + (uint64_t)w);
            int64_t active = 0;
            for (int64_t e = 0; e < count; e++) {
                double m1, m2, t;
                for (;;) {
                    t = p.margin -
                        hg_test_score(X + pos[2 * e] * d, X + pos[2 * e + 1] * d, d, &m1) +
                        hg_test_score(X + neg[2 * e] * d, X + neg[2 * e + 1] * d, d, &m2);
                    if (fabs(t) > 1e-3)
                        break;
                    neg[2 * e] = (int32_t)hg_rng_below(&g, PAIR_NPTS);
                }
                active += t > 0.0;
            }
            assert_true(active > 0 && active < count); /* both branches of the hinge */
            float *dX0 = uniform(np * d, -1.0f, 1.0f, 1340 + (uint64_t)w);
            op o;
            op_init(&o, pair_margin_fn, &p, "lorentz_pair_margin_loss(d=%lld, count=%lld, dX %s)",
                    (long long)d, (long long)count, with_dx ? "given" : "NULL");
            op_arg(&o, T_F32, ARG_IN, np * d, X);
            op_arg(&o, T_I32, ARG_IN, 2 * count, pos);
            op_arg(&o, T_I32, ARG_IN, 2 * count, neg);
            const int isp = op_arg(&o, T_F32, ARG_OUT, count, NULL);
            const int isn = op_arg(&o, T_F32, ARG_OUT, count, NULL);
            const int idX = op_arg(&o, T_F32, ARG_OUT, np * d, dX0);
            res rc, rg;
            run_both(&o, &rc, &rg);
            double *tp = td(count), *tn = td(count), *M = td(np * d), *T = td(np * d);
            int64_t *cnt = hg_test_alloc(np, sizeof *cnt);
            double ltol = 0.0, lmag = 0.0;
            const float *sp = rc.h[isp], *sn = rc.h[isn];
            for (int64_t i = 0; i < np * d; i++)
                M[i] = fabs((double)dX0[i]);
            for (int64_t e = 0; e < count; e++) {
                double mp, mn;
                hg_test_score(X + pos[2 * e] * d, X + pos[2 * e + 1] * d, d, &mp);
                hg_test_score(X + neg[2 * e] * d, X + neg[2 * e + 1] * d, d, &mn);
                tp[e] = 2.0 * (double)(d + 3) * U32 * mp;
                tn[e] = 2.0 * (double)(d + 3) * U32 * mn;
                if (!((double)p.margin - sp[e] + sn[e] > 0.0))
                    continue;
                /* the loss sums the active hinges of each side's own scores, in double */
                ltol += tp[e] + tn[e];
                lmag += fabs((double)p.margin) + fabs((double)sp[e]) + fabs((double)sn[e]);
                pair_mag(M, cnt, X, pos[2 * e], pos[2 * e + 1], -2.0 * p.w, d);
                pair_mag(M, cnt, X, neg[2 * e], neg[2 * e + 1], 2.0 * p.w, d);
            }
            ltol += 2.0 * (double)(count + 2) * UD * lmag;
            expect_arg_within(&o, isp, &rg, &rc, tp, 1, "s_pos");
            expect_arg_within(&o, isn, &rg, &rc, tn, 1, "s_neg");
            expect_scalar(&o, rg.ret, rc.ret, ltol, "loss");
            if (with_dx) {
                for (int64_t i = 0; i < np * d; i++)
                    T[i] = 2.0 * (double)(cnt[i / d] + 2) * U32 * M[i];
                expect_arg_within(&o, idX, &rg, &rc, T, d, "dX");
            } else {
                expect_arg_bits(&o, idX, &rg, &rc, "dX buffer (dX NULL: untouched)");
            }
            hg_test_release(mark);
        }
}

typedef struct {
    int64_t n, C, d, nidx;
    int with_b, with_db;
} cls_par;

static void class_logits_fn(const hg_kctx *k, op *o) /* args: X, P, b, logits */
{
    const cls_par *p = o->par;
    hg_k_lorentz_class_logits(k, F(o, 3), F(o, 0), F(o, 1), p->with_b ? F(o, 2) : NULL, p->n,
                              p->C, p->d);
}
/* args: dl, X, P, idx, dX, dP, db */
static void class_logits_bwd_fn(const hg_kctx *k, op *o)
{
    const cls_par *p = o->par;
    hg_k_lorentz_class_logits_backward(k, F(o, 4), F(o, 5), p->with_db ? F(o, 6) : NULL, F(o, 0),
                                       F(o, 1), F(o, 2), I64(o, 3), p->nidx, p->C, p->d, NULL);
}

static void test_class_logits(void **state)
{
    (void)state;
    REQUIRE_GPU();
    /* (d, C): the CPU's 16-wide path needs C <= 16 */
    static const int64_t cfgs[][2] = {{16, 7}, {16, 16}, {16, 20}, {5, 7}, {24, 3}};
    for (int c = 0; c < 5; c++) {
        const int mark = hg_test_mark();
        const int64_t d = cfgs[c][0], C = cfgs[c][1], n = LIN_N, nidx = 70;
        const cls_par p = {n, C, d, nidx, c != 1, c != 2};
        float *X = tf(n * d), *P = tf(C * d), *b = uniform(C, -0.5f, 0.5f, 1420 + (uint64_t)c);
        hg_test_random_points(X, n, d, 2.0, 1400 + (uint64_t)c);
        hg_test_random_points(P, C, d, 1.0, 1410 + (uint64_t)c);
        op o;
        res rc, rg;
        op_init(&o, class_logits_fn, &p, "lorentz_class_logits(d=%lld, C=%lld, b %s)",
                (long long)d, (long long)C, p.with_b ? "given" : "NULL");
        op_arg(&o, T_F32, ARG_IN, n * d, X);
        op_arg(&o, T_F32, ARG_IN, C * d, P);
        op_arg(&o, T_F32, ARG_IN, C, b);
        const int il = op_arg(&o, T_F32, ARG_OUT, n * C, NULL);
        run_both(&o, &rc, &rg);
        double *tol = td(n * C);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < C; k++) {
                double mag;
                hg_test_score(X + i * d, P + k * d, d, &mag);
                tol[i * C + k] = 2.0 * (double)(d + 4) * U32 * (mag + fabs((double)b[k]));
            }
        expect_arg_within(&o, il, &rg, &rc, tol, C, "logits");

        /* backward over nidx distinct rows in shuffled order (nidx > HG_K_FLOAT_RUN) */
        int64_t *idx = hg_test_shuffled_rows(n, 1430 + (uint64_t)c);
        float *dl = uniform(nidx * C, -1.0f, 1.0f, 1440 + (uint64_t)c);
        for (int64_t q = 0; q < nidx * C; q += 3)
            dl[q] = 0.0f;
        float *dX0 = uniform(n * d, -1.0f, 1.0f, 1450 + (uint64_t)c);
        float *dP0 = uniform(C * d, -1.0f, 1.0f, 1460 + (uint64_t)c);
        float *db0 = uniform(C, -1.0f, 1.0f, 1470 + (uint64_t)c);
        op_init(&o, class_logits_bwd_fn, &p, "lorentz_class_logits_backward(d=%lld, C=%lld, db %s)",
                (long long)d, (long long)C, p.with_db ? "given" : "NULL");
        op_arg(&o, T_F32, ARG_IN, nidx * C, dl);
        op_arg(&o, T_F32, ARG_IN, n * d, X);
        op_arg(&o, T_F32, ARG_IN, C * d, P);
        op_arg(&o, T_I64, ARG_IN, nidx, idx);
        const int idX = op_arg(&o, T_F32, ARG_OUT, n * d, dX0);
        const int idP = op_arg(&o, T_F32, ARG_OUT, C * d, dP0);
        const int idb = op_arg(&o, T_F32, ARG_OUT, C, db0);
        run_both(&o, &rc, &rg);
        double *MX = td(n * d), *MP = td(C * d), *MB = td(C);
        for (int64_t i = 0; i < n * d; i++)
            MX[i] = fabs((double)dX0[i]);
        for (int64_t i = 0; i < C * d; i++)
            MP[i] = fabs((double)dP0[i]);
        for (int64_t k = 0; k < C; k++)
            MB[k] = fabs((double)db0[k]);
        for (int64_t a = 0; a < nidx; a++)
            for (int64_t k = 0; k < C; k++) {
                const double gk = dl[a * C + k];
                MB[k] += fabs(gk);
                for (int64_t j = 0; j < d; j++) {
                    MX[idx[a] * d + j] += fabs(2.0 * gk * P[k * d + j]);
                    MP[k * d + j] += fabs(2.0 * gk * X[idx[a] * d + j]);
                }
            }
        for (int64_t i = 0; i < n * d; i++)
            MX[i] *= 2.0 * (double)(C + 2) * U32;
        for (int64_t i = 0; i < C * d; i++)
            MP[i] *= 2.0 * (double)(nidx + 2) * U32;
        for (int64_t k = 0; k < C; k++)
            MB[k] *= 2.0 * (double)(nidx + 2) * U32;
        expect_arg_within(&o, idX, &rg, &rc, MX, d, "dX");
        expect_arg_within(&o, idP, &rg, &rc, MP, d, "dP");
        if (p.with_db)
            expect_arg_within(&o, idb, &rg, &rc, MB, C, "db");
        else
            expect_arg_bits(&o, idb, &rg, &rc, "db buffer (db NULL: untouched)");
        hg_test_release(mark);
    }
}

/* ---- Riemannian Adam and stabilisation ---- */

typedef struct {
    int64_t n, d, t;
    float lr, b1, b2, eps;
    int with_m;
} radam_par;

static void radam_fn(const hg_kctx *k, op *o) /* args: x, grad, m, v */
{
    const radam_par *p = o->par;
    hg_k_lorentz_radam_step(k, F(o, 0), F(o, 1), F(o, 2), F(o, 3), p->n, p->d, p->lr, p->b1,
                            p->b2, p->eps, p->t);
}

/* Magnitudes of one step of point x (mirror of the CPU kernel, in double): the terms of
 * y_j = ch x_j + sh u_j (mx), of m'_j = M_j + coef (x_j + y_j) (mm) and of
 * v' = b2 v + (1 - b2) <U,U>_L with its Euclidean square (mv). */
static void radam_mags(double *mx, double *mm, double *mv, const float *x, const float *grad,
                       const float *m, float v, const radam_par *p)
{
    const int64_t d = p->d;
    double X[FMAXD] = {0}, U[FMAXD] = {0}, M[FMAXD] = {0}, Y[FMAXD] = {0};
    const double bc1 = 1.0 - pow((double)p->b1, (double)p->t);
    const double bc2 = 1.0 - pow((double)p->b2, (double)p->t);
    for (int64_t j = 0; j < d; j++) {
        X[j] = x[j];
        U[j] = grad[j];
    }
    U[0] = -U[0];
    double xu = -X[0] * U[0];
    for (int64_t j = 1; j < d; j++)
        xu += X[j] * U[j];
    for (int64_t j = 0; j < d; j++)
        U[j] += xu * X[j];
    double uu = -U[0] * U[0], ue = U[0] * U[0];
    for (int64_t j = 1; j < d; j++) {
        uu += U[j] * U[j];
        ue += U[j] * U[j];
    }
    const double vn = p->b2 * (double)v + (1.0 - p->b2) * uu;
    *mv = p->b2 * (double)v + (1.0 - p->b2) * ue;
    const double denom = sqrt(fmax(vn, 0.0) / bc2) + p->eps;
    for (int64_t j = 0; j < d; j++) {
        M[j] = p->b1 * m[j] + (1.0 - p->b1) * U[j];
        U[j] = -(double)p->lr * (M[j] / bc1) / denom;
    }
    double nu = -U[0] * U[0];
    for (int64_t j = 1; j < d; j++)
        nu += U[j] * U[j];
    nu = sqrt(fmax(nu, 0.0));
    const double ch = nu < HG_LORENTZ_EXPMAP_MIN_NORM ? 1.0 : cosh(nu);
    const double sh = nu < HG_LORENTZ_EXPMAP_MIN_NORM ? 1.0 : sinh(nu) / nu;
    double ym = -0.0, xy = 0.0;
    for (int64_t j = 0; j < d; j++) {
        Y[j] = ch * X[j] + sh * U[j];
        mx[j] = ch * fabs(X[j]) + sh * fabs(U[j]);
        const double e = j == 0 ? -1.0 : 1.0;
        ym += e * Y[j] * M[j];
        xy += e * X[j] * Y[j];
    }
    const double coef = ym / (1.0 - xy);
    for (int64_t j = 0; j < d; j++)
        mm[j] = fabs(M[j]) + fabs(coef) * (fabs(X[j]) + fabs(Y[j]));
}

static void test_radam_step(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5};
    for (int w = 0; w < 2; w++)
        for (int warm = 0; warm < 2; warm++) {
            const int mark = hg_test_mark();
            const int64_t n = 37, d = widths[w], T0 = warm ? 6 : 0;
            const radam_par p = {n, d, T0 + 1, 1e-2f, 0.9f, 0.999f, 1e-8f, 1};
            float *x = tf(n * d), *m = tf(n * d), *v = tf(n), *grad = tf(n * d);
            hg_rng g;
            hg_rng_seed(&g, 1500 + (uint64_t)(2 * w + warm));
            double xd[FMAXD];
            for (int64_t i = 0; i < n; i++) {
                hg_test_random_point(xd, d, 0.2 + 2.5 * hg_rng_uniform(&g), &g);
                for (int64_t j = 0; j < d; j++)
                    x[i * d + j] = (float)xd[j];
            }
            /* warm: T0 steps on the CPU first, so that m and v are a realistic state */
            for (int64_t t = 0; t <= T0; t++) {
                for (int64_t i = 0; i < n * d; i++)
                    grad[i] = (float)hg_rng_normal(&g);
                if (t < T0)
                    hg_k_lorentz_radam_step(&CPU, x, grad, m, v, n, d, p.lr, p.b1, p.b2, p.eps,
                                            t + 1);
            }
            op o;
            op_init(&o, radam_fn, &p, "lorentz_radam_step(d=%lld, t=%lld)", (long long)d,
                    (long long)p.t);
            const int ix = op_arg(&o, T_F32, ARG_OUT, n * d, x);
            op_arg(&o, T_F32, ARG_IN, n * d, grad);
            const int im = op_arg(&o, T_F32, ARG_OUT, n * d, m);
            const int iv = op_arg(&o, T_F32, ARG_OUT, n, v);
            res rc, rg;
            run_both(&o, &rc, &rg);
            /* The step runs in double from the float state (on the CPU; the contract: the GPU
             * within float rounding): the outputs differ by their final roundings and by the
             * rounding of v (a float) feeding the step. Allow 4 (d + 8) u of each output's
             * magnitude: that also covers a float evaluation of the step's d-term inner
             * products. */
            double *tx = td(n * d), *tm = td(n * d), *tv = td(n);
            const double kap = 4.0 * (double)(d + 8) * U32;
            for (int64_t i = 0; i < n; i++) {
                radam_mags(tx + i * d, tm + i * d, tv + i, x + i * d, grad + i * d, m + i * d,
                           v[i], &p);
                for (int64_t j = 0; j < d; j++) {
                    tx[i * d + j] *= kap;
                    tm[i * d + j] *= kap;
                }
                tv[i] *= kap;
            }
            expect_arg_within(&o, ix, &rg, &rc, tx, d, "x");
            expect_arg_within(&o, im, &rg, &rc, tm, d, "m");
            expect_arg_within(&o, iv, &rg, &rc, tv, 1, "v");
            hg_test_release(mark);
        }
}

static void stabilize_fn(const hg_kctx *k, op *o) /* args: x, m */
{
    const radam_par *p = o->par;
    hg_k_lorentz_stabilize(k, F(o, 0), p->with_m ? F(o, 1) : NULL, p->n, p->d);
}

static void test_stabilize(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5};
    for (int w = 0; w < 2; w++)
        for (int with_m = 0; with_m < 2; with_m++) {
            const int mark = hg_test_mark();
            const int64_t n = 37, d = widths[w];
            const radam_par p = {n, d, 0, 0.0f, 0.0f, 0.0f, 0.0f, with_m};
            float *x = tf(n * d), *m = tf(n * d);
            hg_rng g;
            hg_rng_seed(&g, 1600 + (uint64_t)w);
            double xd[FMAXD];
            for (int64_t i = 0; i < n; i++) {
                hg_test_random_point(xd, d, 0.5 + 2.0 * hg_rng_uniform(&g), &g);
                for (int64_t j = 0; j < d; j++) { /* off the manifold by 1e-2, m not tangent */
                    x[i * d + j] = (float)(xd[j] * (1.0 + 1e-2 * (2.0 * hg_rng_uniform(&g) - 1.0)));
                    m[i * d + j] = (float)hg_rng_normal(&g);
                }
            }
            op o;
            op_init(&o, stabilize_fn, &p, "lorentz_stabilize(d=%lld, m %s)", (long long)d,
                    with_m ? "given" : "NULL");
            const int ix = op_arg(&o, T_F32, ARG_OUT, n * d, x);
            const int im = op_arg(&o, T_F32, ARG_OUT, n * d, m);
            res rc, rg;
            run_both(&o, &rc, &rg);
            /* x_sp untouched; x0 = sqrt(1 + sum of d - 1 positive squares): (d + 2) u relative
             * on a float path, u in double: allow 2 (d + 4) u. m = M + <x,M>_L x: magnitude
             * |M_j| + sum_k |x_k M_k| |x_j|, d-term sum: 2 (d + 4) u of it. */
            const float *xc = rc.h[ix];
            double *tx = td(n * d), *tm = td(n * d);
            for (int64_t i = 0; i < n; i++) {
                tx[i * d] = 2.0 * (double)(d + 4) * U32 * fabs((double)xc[i * d]);
                double sxm = 0.0;
                for (int64_t j = 0; j < d; j++)
                    sxm += fabs((double)xc[i * d + j] * m[i * d + j]);
                for (int64_t j = 0; j < d; j++)
                    tm[i * d + j] = 2.0 * (double)(d + 4) * U32 *
                                    (fabs((double)m[i * d + j]) +
                                     sxm * fabs((double)xc[i * d + j]));
            }
            expect_arg_within(&o, ix, &rg, &rc, tx, d, "x");
            if (with_m)
                expect_arg_within(&o, im, &rg, &rc, tm, d, "m");
            else
                expect_arg_bits(&o, im, &rg, &rc, "m buffer (m NULL: untouched)");
            hg_test_release(mark);
        }
}

/* ---- empty sizes: no rows, pairs or loss rows ---- */

static void test_empty(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5};
    for (int w = 0; w < 2; w++) {
        const int mark = hg_test_mark();
        const int64_t d = widths[w];
        op o;
        res rc, rg;
        /* class logits backward over 0 rows: dX, dP, db unchanged */
        const int64_t n = 9, C = 3;
        const cls_par pc = {n, C, d, 0, 1, 1};
        float *X = tf(n * d), *P = tf(C * d);
        hg_test_random_points(X, n, d, 1.0, 1702);
        hg_test_random_points(P, C, d, 1.0, 1703);
        op_init(&o, class_logits_bwd_fn, &pc, "lorentz_class_logits_backward(nidx=0, d=%lld)",
                (long long)d);
        op_arg(&o, T_F32, ARG_IN, 0, NULL);
        op_arg(&o, T_F32, ARG_IN, n * d, X);
        op_arg(&o, T_F32, ARG_IN, C * d, P);
        op_arg(&o, T_I64, ARG_IN, 0, NULL);
        const int idX = op_arg(&o, T_F32, ARG_OUT, n * d, uniform(n * d, -1.0f, 1.0f, 1704));
        const int idP = op_arg(&o, T_F32, ARG_OUT, C * d, uniform(C * d, -1.0f, 1.0f, 1705));
        const int idb = op_arg(&o, T_F32, ARG_OUT, C, uniform(C, -1.0f, 1.0f, 1706));
        run_both(&o, &rc, &rg);
        expect_arg_bits(&o, idX, &rg, &rc, "dX");
        expect_arg_bits(&o, idP, &rg, &rc, "dP");
        expect_arg_bits(&o, idb, &rg, &rc, "db");

        /* margin losses over 0 couples / 0 rows: 0, dX unchanged */
        const pair_par pp = {0, d, n, 2.0f, 1.0f, 1};
        op_init(&o, pair_margin_fn, &pp, "lorentz_pair_margin_loss(count=0, d=%lld)",
                (long long)d);
        op_arg(&o, T_F32, ARG_IN, n * d, X);
        op_arg(&o, T_I32, ARG_IN, 0, NULL);
        op_arg(&o, T_I32, ARG_IN, 0, NULL);
        op_arg(&o, T_F32, ARG_OUT, 0, NULL);
        op_arg(&o, T_F32, ARG_OUT, 0, NULL);
        const int idX2 = op_arg(&o, T_F32, ARG_OUT, n * d, uniform(n * d, -1.0f, 1.0f, 1707));
        run_both(&o, &rc, &rg);
        assert_true(rc.ret == 0.0 && rg.ret == 0.0);
        expect_arg_bits(&o, idX2, &rg, &rc, "dX");

        const cml_par pm = {0, C, 1.0f, 1.0f, 1};
        int32_t labels[9] = {0};
        op_init(&o, cml_fn, &pm, "class_margin_loss(nidx=0)");
        op_arg(&o, T_F32, ARG_IN, n * C, uniform(n * C, -1.0f, 1.0f, 1708));
        op_arg(&o, T_I64, ARG_IN, 0, NULL);
        op_arg(&o, T_I32, ARG_IN, n, labels);
        op_arg(&o, T_F32, ARG_OUT, 0, NULL);
        run_both(&o, &rc, &rg);
        assert_true(rc.ret == 0.0 && rg.ret == 0.0);
        hg_test_release(mark);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CUDA_TEST(test_class_margin_loss_argmax),
        CUDA_TEST(test_pair_score),
        CUDA_TEST(test_pair_margin_loss),
        CUDA_TEST(test_class_logits),
        CUDA_TEST(test_radam_step),
        CUDA_TEST(test_stabilize),
        CUDA_TEST(test_empty),
    };
    return cuda_tests_status(cmocka_run_group_tests(tests, group_setup, group_teardown));
}
