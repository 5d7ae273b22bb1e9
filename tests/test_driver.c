/* test_driver.c - the learning-rate schedules, early stopping, the tensor registry and its
 * checkpoints (version 2, and version 1 files), and the training driver on a toy model: early
 * stopping, the NaN guard, no allocation in the loop, and a run interrupted and resumed from
 * last.ckpt ending bit for bit as the uninterrupted one. */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "../src/driver.h"
#include "../src/hg.h"
#include "../src/io.h"
#include "../src/registry.h"
#include "../src/rng.h"
#include "../src/schedule.h"

/* Heap allocations counted (the program is linked with malloc, calloc and realloc wrapped). */
static long nallocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n)
{
    nallocs++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t s)
{
    nallocs++;
    return __real_calloc(n, s);
}
void *__wrap_realloc(void *p, size_t n)
{
    nallocs++;
    return __real_realloc(p, n);
}

static char tmpdir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int setup_dir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/hg_test_driver_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void join(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*size + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *size, f), *size);
    fclose(f);
    return b;
}

/* ---- learning-rate schedules ---- */

static void test_lr_schedules(void **state)
{
    (void)state;
    hg_lr_schedule s = {HG_LR_CONSTANT, 0.5, 10, 110};
    assert_true(hg_lr_at(&s, 1) == 0.5 && hg_lr_at(&s, 1000) == 0.5);

    s.kind = HG_LR_WARMUP; /* base * step / 10 up to step 10, then base */
    assert_true(hg_lr_at(&s, 1) == 0.05);
    assert_true(hg_lr_at(&s, 5) == 0.25);
    assert_true(hg_lr_at(&s, 10) == 0.5 && hg_lr_at(&s, 500) == 0.5);

    s.kind = HG_LR_INVSQRT;
    s.warmup = 4; /* warm-up, then base * sqrt(4 / step) */
    assert_true(hg_lr_at(&s, 2) == 0.25);
    assert_true(hg_lr_at(&s, 4) == 0.5);
    assert_true(hg_lr_at(&s, 16) == 0.25);
    assert_true(hg_lr_at(&s, 64) == 0.125);
    s.warmup = 0; /* base / sqrt(step) */
    assert_true(hg_lr_at(&s, 1) == 0.5 && hg_lr_at(&s, 4) == 0.25);

    s.kind = HG_LR_COSINE;
    s.warmup = 10; /* warm-up, then half a cosine from base at step 10 to 0 at step 110 */
    assert_true(hg_lr_at(&s, 5) == 0.25);
    assert_true(hg_lr_at(&s, 10) == 0.5);
    assert_true(fabs(hg_lr_at(&s, 60) - 0.25) < 1e-15);
    assert_true(fabs(hg_lr_at(&s, 35) - 0.25 * (1 + cos(M_PI / 4))) < 1e-15);
    assert_true(fabs(hg_lr_at(&s, 110)) < 1e-15 && fabs(hg_lr_at(&s, 300)) < 1e-15);
    s.total = 5; /* shorter than the warm-up: no decay */
    assert_true(hg_lr_at(&s, 20) == 0.5);

    assert_int_equal(hg_lr_kind_parse("cosine"), HG_LR_COSINE);
    assert_int_equal(hg_lr_kind_parse("linear"), -1);
    assert_string_equal(hg_lr_kind_name(HG_LR_INVSQRT), "invsqrt");
}

/* ---- early stopping ---- */

static void test_early_stop(void **state)
{
    (void)state;
    hg_early_stop e;
    /* higher is better, patience 2, no stop before step 5 */
    hg_early_stop_init(&e, 1, 2, 5);
    assert_int_equal(hg_early_stop_update(&e, 0, 0.1), 1); /* the initial model */
    assert_int_equal(hg_early_stop_update(&e, 1, 0.3), 1);
    assert_int_equal(hg_early_stop_update(&e, 2, 0.3), 0); /* equal is no improvement */
    assert_int_equal(hg_early_stop_update(&e, 3, NAN), 0);
    assert_int_equal(e.since_best, 2);
    assert_false(hg_early_stop_done(&e, 3)); /* patience spent, but before min_step */
    assert_int_equal(hg_early_stop_update(&e, 4, 0.2), 0);
    assert_true(hg_early_stop_done(&e, 5));
    assert_true(e.best == 0.3 && e.best_step == 1);
    assert_int_equal(hg_early_stop_update(&e, 6, 0.31), 1);
    assert_false(hg_early_stop_done(&e, 6));
    assert_int_equal(e.since_best, 0);

    /* lower is better; a NaN first value is the best until any number comes */
    hg_early_stop_init(&e, 0, 1, 0);
    assert_int_equal(hg_early_stop_update(&e, 0, NAN), 1);
    assert_int_equal(e.best_step, 0);
    assert_int_equal(hg_early_stop_update(&e, 1, 5.0), 1);
    assert_int_equal(hg_early_stop_update(&e, 2, 4.0), 1);
    assert_int_equal(hg_early_stop_update(&e, 3, 4.5), 0);
    assert_true(hg_early_stop_done(&e, 3));
    assert_true(e.best == 4.0 && e.best_step == 2);
}

/* ---- registry and checkpoints ---- */

/* A tensor behind callbacks: doubles each value on the way out, halves it on the way in. */
static float hidden[3] = {1, 2, 3};
static void hidden_read(const void *obj, int64_t i, void *dst)
{
    assert_ptr_equal(obj, hidden);
    assert_int_equal(i, 7);
    for (int k = 0; k < 3; k++)
        ((float *)dst)[k] = 2 * ((const float *)obj)[k];
}
static void hidden_write(void *obj, int64_t i, const void *src)
{
    (void)i;
    for (int k = 0; k < 3; k++)
        ((float *)obj)[k] = ((const float *)src)[k] / 2;
}

static void test_registry(void **state)
{
    (void)state;
    char path[256];
    join(path, sizeof path, "reg.ckpt");
    enum { N = 1000 }; /* far more tensors than any fixed table would hold */
    static float w[N][5];
    uint64_t counter[2] = {UINT64_C(0xfedcba9876543210), 42};
    hg_registry r;
    hg_registry_init(&r);
    for (int t = 0; t < N; t++) {
        char name[32];
        snprintf(name, sizeof name, "layer%d.W", t);
        for (int k = 0; k < 5; k++)
            w[t][k] = (float)t + 0.25f * (float)k;
        assert_int_equal(hg_registry_add(&r, name, HG_DTYPE_F32, w[t], 5, NULL, 0), HG_OK);
    }
    assert_int_equal(hg_registry_add(&r, "counter", HG_DTYPE_U64, counter, 2, NULL,
                                     HG_TENSOR_RUN), HG_OK);
    assert_int_equal(hg_registry_add_io(&r, "hidden", HG_DTYPE_F32, 3, hidden_read,
                                        hidden_write, hidden, 7, 0), HG_OK);
    /* names are unique and bounded */
    assert_int_equal(hg_registry_add(&r, "layer3.W", HG_DTYPE_F32, w[0], 5, NULL, 0), HG_EINVAL);
    assert_int_equal(hg_registry_add(&r, "", HG_DTYPE_F32, w[0], 5, NULL, 0), HG_EINVAL);
    assert_int_equal(r.n, N + 2);
    assert_int_equal(hg_registry_find(&r, "layer999.W"), 999);
    assert_int_equal(hg_registry_find(&r, "nope"), -1);
    assert_int_equal(hg_registry_bytes(&r, 0), N * 20 + 16 + 12);
    assert_int_equal(hg_registry_bytes(&r, HG_TENSOR_RUN), N * 20 + 12);

    /* gather / scatter */
    unsigned char *snap = malloc(hg_registry_bytes(&r, 0));
    hg_registry_gather(&r, 0, snap);
    float got[3];
    memcpy(got, snap + N * 20 + 16, sizeof got);
    assert_true(got[0] == 2 && got[2] == 6);

    /* save, spoil, load */
    assert_int_equal(hg_registry_save(&r, 0, path, "{\"k\": 1}"), HG_OK);
    memset(w, 0, sizeof w);
    counter[0] = counter[1] = 0;
    hidden[1] = -1;
    char meta[16];
    assert_int_equal(hg_registry_load(&r, 0, path, meta, sizeof meta, NULL), HG_OK);
    assert_string_equal(meta, "{\"k\": 1}");
    assert_true(w[999][4] == 1000.0f && w[0][1] == 0.25f);
    assert_true(counter[0] == UINT64_C(0xfedcba9876543210) && counter[1] == 42);
    assert_true(hidden[1] == 2);
    hg_registry_scatter(&r, 0, snap);
    free(snap);

    /* a tensor the file lacks: an error naming it, unless optional; nothing is written first */
    float extra[2] = {9, 9};
    assert_int_equal(hg_registry_add(&r, "extra", HG_DTYPE_F32, extra, 2, NULL, 0), HG_OK);
    w[5][0] = -7;
    assert_int_equal(hg_registry_load(&r, 0, path, NULL, 0, NULL), HG_EFORMAT);
    assert_non_null(strstr(hg_last_error(), "missing tensor 'extra'"));
    assert_true(w[5][0] == -7);
    r.t[r.n - 1].flags |= HG_TENSOR_OPTIONAL;
    assert_int_equal(hg_registry_load(&r, 0, path, NULL, 0, NULL), HG_OK);
    assert_true(w[5][0] == 5 && extra[0] == 9);
    /* another dtype under a known name is refused */
    hg_registry q;
    hg_registry_init(&q);
    uint64_t wrong[5];
    assert_int_equal(hg_registry_add(&q, "layer0.W", HG_DTYPE_U64, wrong, 5, NULL, 0), HG_OK);
    assert_int_equal(hg_registry_load(&q, 0, path, NULL, 0, NULL), HG_EFORMAT);
    assert_non_null(strstr(hg_last_error(), "another type"));
    hg_registry_destroy(&q);
    hg_registry_destroy(&r);
}

/* A version 1 file, byte by byte as the previous writer made it, still reads. */
static void put32(unsigned char **p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *(*p)++ = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char **p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *(*p)++ = (unsigned char)(v >> (8 * i));
}

static void test_ckpt_version1(void **state)
{
    (void)state;
    char path[256];
    join(path, sizeof path, "v1.ckpt");
    unsigned char buf[256], *p = buf;
    const float vals[2] = {1.5f, -3.0f};
    memcpy(p, "HGCKPT1", 8);
    p += 8;
    put32(&p, 1);  /* version */
    put32(&p, 1);  /* tensors */
    put64(&p, 2);  /* meta */
    memcpy(p, "{}", 2);
    p += 2;
    put32(&p, 1);
    *p++ = 'x';
    put64(&p, 2);
    for (int i = 0; i < 2; i++) {
        uint32_t u;
        memcpy(&u, &vals[i], 4);
        put32(&p, u);
    }
    uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a 64 */
    for (unsigned char *q = buf; q < p; q++)
        h = (h ^ *q) * UINT64_C(0x100000001b3);
    put64(&p, h);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, (size_t)(p - buf), f), (size_t)(p - buf));
    fclose(f);

    float x[2] = {0, 0};
    const char *const names[1] = {"x"};
    float *const data[1] = {x};
    const int64_t counts[1] = {2};
    assert_int_equal(hg_ckpt_read(path, 1, names, data, counts, NULL, 0, NULL), HG_OK);
    assert_true(x[0] == 1.5f && x[1] == -3.0f);
    /* a flipped byte is caught by the checksum there too */
    buf[30] ^= 1;
    f = fopen(path, "wb");
    fwrite(buf, 1, (size_t)(p - buf), f);
    fclose(f);
    assert_int_equal(hg_ckpt_read(path, 1, names, data, counts, NULL, 0, NULL), HG_EFORMAT);
}

/* ---- the driver on a toy model ---- */

/* Minimise |x - c|^2 / 2 by SGD with momentum; the gradient carries noise from a generator (run
 * state). Evaluation: "loss" (log only), "dist" = |x - c| (reported, selected, lower better). */
enum { DIM = 4 };
typedef struct toy {
    float x[DIM], mom[DIM];
    uint64_t steps;
    hg_rng rng;
    float grad[DIM];
    int64_t fail_at;     /* grad fails with HG_EIO at this step (0: never) */
    int64_t nan_at;      /* the loss is NaN at this step (0: never) */
    int reloads, bests;
    hg_registry reg;
} toy;
static const float target[DIM] = {1.0f, -2.0f, 0.5f, 3.0f};
static const hg_metric_desc toy_metrics[] = {
    {"loss", NULL, HG_METRIC_LOG}, {"dist", "d", HG_METRIC_LOG | HG_METRIC_REPORT}};

static int toy_grad(void *ctx, int64_t step, double *loss, double *gnorm)
{
    toy *t = ctx;
    if (step == t->fail_at)
        return HG_ERRORF(HG_EIO, "toy: stopped at %lld", (long long)step);
    double l = 0, g2 = 0;
    for (int i = 0; i < DIM; i++) {
        float d = t->x[i] - target[i];
        t->grad[i] = d + 0.3f * (float)hg_rng_normal(&t->rng);
        l += 0.5 * d * d;
        g2 += (double)t->grad[i] * t->grad[i];
    }
    *loss = step == t->nan_at ? NAN : l;
    *gnorm = sqrt(g2);
    return HG_OK;
}

static int toy_update(void *ctx, int64_t step, double lr, double gnorm)
{
    toy *t = ctx;
    (void)step, (void)gnorm;
    for (int i = 0; i < DIM; i++) {
        t->mom[i] = 0.9f * t->mom[i] + t->grad[i];
        t->x[i] -= (float)lr * t->mom[i];
    }
    t->steps++;
    return HG_OK;
}

static int toy_evaluate(void *ctx, hg_split split, double *out)
{
    toy *t = ctx;
    double s = 0;
    for (int i = 0; i < DIM; i++)
        s += (double)(t->x[i] - target[i]) * (t->x[i] - target[i]);
    out[0] = 0.5 * s;
    out[1] = sqrt(s) + (split == HG_SPLIT_TEST ? 1.0 : 0.0);
    return HG_OK;
}

static void toy_reloaded(void *ctx) { ((toy *)ctx)->reloads++; }
static void toy_on_best(void *ctx) { ((toy *)ctx)->bests++; }
static void toy_meta(void *ctx, char *buf, size_t cap)
{
    (void)ctx;
    snprintf(buf, cap, "{\"model\": \"toy\"}");
}
static void toy_json(void *ctx, hg_json *j, const hg_driver *d)
{
    (void)ctx;
    hg_json_add_str(j, "model", "toy");
    hg_driver_json(d, j, HG_DRIVER_JSON_PROGRESS | HG_DRIVER_JSON_METRICS);
}

static void toy_init(toy *t, hg_driver *d, const char *out, int64_t steps, int64_t patience)
{
    memset(t, 0, sizeof *t);
    hg_rng_seed(&t->rng, 99);
    hg_registry_init(&t->reg);
    assert_int_equal(hg_registry_add(&t->reg, "x", HG_DTYPE_F32, t->x, DIM, NULL, 0), HG_OK);
    assert_int_equal(hg_registry_add(&t->reg, "mom", HG_DTYPE_F32, t->mom, DIM, NULL, 0), HG_OK);
    assert_int_equal(hg_registry_add(&t->reg, "steps", HG_DTYPE_U64, &t->steps, 1, NULL, 0),
                     HG_OK);
    assert_int_equal(hg_registry_add(&t->reg, "rng", HG_DTYPE_U64, t->rng.s, 4, NULL,
                                     HG_TENSOR_RUN), HG_OK);
    hg_driver_model m = {t, &t->reg, 2, toy_metrics, 1, 0, toy_grad, toy_update, toy_evaluate,
                         toy_reloaded, toy_on_best, NULL, toy_meta, toy_json};
    hg_driver_config c = {0};
    c.unit = "step";
    c.max_steps = steps;
    c.eval_every = 2;
    c.patience = patience;
    c.min_steps = 10;
    c.lr = (hg_lr_schedule){HG_LR_COSINE, 0.05, 5, steps};
    c.save_every = 3;
    c.quiet = 1;
    c.out_dir = out;
    c.program = "test_driver";
    c.t_start = hg_now();
    assert_int_equal(hg_driver_init(d, &c, &m), HG_OK);
}

static void toy_destroy(toy *t, hg_driver *d)
{
    hg_driver_destroy(d);
    hg_registry_destroy(&t->reg);
}

static void test_driver_resume(void **state)
{
    (void)state;
    char a[256], b[256], pa[300], pb[300];
    join(a, sizeof a, "runA");
    join(b, sizeof b, "runB");
    mkdir(a, 0700);
    mkdir(b, 0700);
    toy t;
    hg_driver d;

    /* uninterrupted */
    toy_init(&t, &d, a, 40, 1000);
    assert_int_equal(hg_driver_run(&d, 0), HG_OK);
    assert_int_equal(d.step, 40);
    assert_false(d.stopped_early);
    float x_a[DIM];
    memcpy(x_a, t.x, sizeof x_a);
    double best_val = d.best_val[1], best_test = d.best_test[1];
    int64_t best_step = d.es.best_step;
    assert_true(best_test == best_val + 1.0); /* the test metrics are the best model's */
    assert_true(best_step > 0 && best_step % 2 == 0);
    hg_driver_restore_best(&d);
    double m[2];
    toy_evaluate(&t, HG_SPLIT_VAL, m);
    assert_true(m[1] == best_val); /* the snapshot is the best model */
    toy_destroy(&t, &d);

    /* interrupted at step 20 (the last save at 18), then resumed by another driver */
    toy_init(&t, &d, b, 40, 1000);
    t.fail_at = 20;
    assert_int_equal(hg_driver_run(&d, 0), HG_EIO);
    toy_destroy(&t, &d);
    toy_init(&t, &d, b, 40, 1000);
    assert_int_equal(hg_driver_resumable(&d), 1);
    assert_int_equal(hg_driver_run(&d, 1), HG_OK);
    assert_int_equal(d.first_step, 18);
    assert_memory_equal(t.x, x_a, sizeof x_a);
    assert_true(d.best_val[1] == best_val && d.best_test[1] == best_test);
    assert_int_equal(d.es.best_step, best_step);
    toy_destroy(&t, &d);
    const char *files[] = {"last.ckpt", "checkpoint.bin", "log.csv"};
    for (int f = 0; f < 3; f++) {
        size_t na, nb;
        snprintf(pa, sizeof pa, "%s/%s", a, files[f]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[f]);
        unsigned char *ba = slurp(pa, &na), *bb = slurp(pb, &nb);
        if (f < 2) { /* log.csv's step_ms column differs */
            assert_int_equal(na, nb);
            assert_memory_equal(ba, bb, na);
        } else {
            int la = 0, lb = 0;
            for (size_t i = 0; i < na; i++)
                la += ba[i] == '\n';
            for (size_t i = 0; i < nb; i++)
                lb += bb[i] == '\n';
            assert_int_equal(la, 21); /* header + one line per evaluation */
            assert_int_equal(lb, 21);
        }
        free(ba);
        free(bb);
    }
}

static void test_driver_stops(void **state)
{
    (void)state;
    toy t;
    hg_driver d;
    char dir[256], path[300];
    join(dir, sizeof dir, "runC");
    mkdir(dir, 0700);

    /* early stopping: patience 1, no stop before step 10; then the JSON line. Without files,
       the whole run (steps, evaluations, snapshots) allocates nothing. */
    toy_init(&t, &d, NULL, 1000, 1);
    t.x[0] = 1e6f; /* far away: it improves for a while, then the noise wins */
    long before = nallocs;
    assert_int_equal(hg_driver_run(&d, 0), HG_OK);
    assert_int_equal(nallocs, before);
    assert_true(d.stopped_early);
    assert_true(d.step >= 10 && d.step < 1000);
    assert_int_equal(d.es.since_best, 1);
    hg_json j;
    char buf[512];
    hg_json_begin_buf(&j, buf, sizeof buf);
    toy_json(&t, &j, &d);
    assert_int_equal(hg_json_end(&j), HG_OK);
    assert_non_null(strstr(buf, "\"stopped\": \"early_stop\""));
    assert_non_null(strstr(buf, "\"best_step\": "));
    assert_non_null(strstr(buf, "\"test_dist\": "));
    assert_null(strstr(buf, "val_loss"));
    toy_destroy(&t, &d);

    /* the NaN guard names the step and keeps the best model's checkpoint */
    toy_init(&t, &d, dir, 100, 1000);
    t.nan_at = 13;
    assert_int_equal(hg_driver_run(&d, 0), HG_ENUMERIC);
    assert_non_null(strstr(hg_last_error(), "step 13: training loss is nan"));
    assert_int_equal(d.step, 12);
    toy_destroy(&t, &d);
    toy_init(&t, &d, NULL, 100, 1000);
    snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
    assert_int_equal(hg_driver_load(&d, path), HG_OK);
    assert_int_equal(t.reloads, 1);
    assert_true(t.steps > 0 && t.steps <= 12); /* the best model after some steps */
    toy_destroy(&t, &d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lr_schedules),
        cmocka_unit_test(test_early_stop),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_ckpt_version1),
        cmocka_unit_test(test_driver_resume),
        cmocka_unit_test(test_driver_stops),
    };
    return cmocka_run_group_tests_name("driver", tests, setup_dir, teardown_dir);
}
