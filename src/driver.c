/* driver.c - the shared training loop (see driver.h). */
#include "driver.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hg.h"
#include "outdir.h"

#define JSON_CAP (1u << 16)

/* The driver's scalars in last.ckpt ("driver/state"). */
enum {
    ST_STEP, ST_STOPPED, ST_DIRTY, ST_BEST, ST_BEST_STEP, ST_SINCE_BEST, ST_LOG_LINES,
    ST_NMETRICS, ST_COUNT
};
_Static_assert(ST_COUNT <= sizeof(((hg_driver *)0)->state) / sizeof(uint64_t), "state words");

static uint64_t bits_of(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static double double_of(uint64_t u)
{
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static void path_in(char *buf, size_t cap, const char *dir, const char *file)
{
    snprintf(buf, cap, "%s/%s", dir, file);
}

int hg_driver_init(hg_driver *d, const hg_driver_config *cfg, const hg_driver_model *model)
{
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    d->model = *model;
    hg_registry_init(&d->best_reg);
    hg_registry_init(&d->resume);
    const hg_driver_model *m = model;
    if (m->nmetrics < 1 || m->nmetrics > HG_DRIVER_MAX_METRICS || m->select < 0 ||
        m->select >= m->nmetrics || !m->reg || !m->grad || !m->update || !m->evaluate ||
        !m->reloaded || !m->meta || !m->add_json || !cfg->unit || cfg->max_steps < 0 ||
        cfg->eval_every < 1 || cfg->save_every < 1 || cfg->patience < 1)
        return HG_ERRORF(HG_EINVAL, "hg_driver_init: bad model description or configuration");
    hg_early_stop_init(&d->es, m->higher_better, cfg->patience, cfg->min_steps);
    int rc = HG_OK;
    size_t best_bytes = hg_registry_bytes(m->reg, HG_TENSOR_RUN);
    d->best = hg_calloc(HG_MAX(best_bytes, 1), 1, "best model snapshot");
    d->step_ms = hg_calloc((size_t)HG_MAX(cfg->max_steps, 1), sizeof(double), "step times");
    d->json = hg_calloc(JSON_CAP, 1, "result line");
    if (!d->best || !d->step_ms || !d->json)
        return HG_ENOMEM;

    /* last.ckpt: the model's registry, the snapshot under "best/", the driver's own state */
    unsigned char *p = d->best;
    for (int64_t i = 0; i < m->reg->n; i++) {
        const hg_tensor *t = &m->reg->t[i];
        HG_CHECK(hg_registry_add_as(&d->resume, t->name, t));
        if (t->flags & HG_TENSOR_RUN)
            continue;
        char name[HG_CKPT_MAX_NAME + 8];
        snprintf(name, sizeof name, "best/%s", t->name);
        HG_CHECK(hg_registry_add(&d->best_reg, t->name, t->dtype, p, t->count, NULL, 0));
        HG_CHECK(hg_registry_add(&d->resume, name, t->dtype, p, t->count, NULL, 0));
        p += hg_tensor_bytes(t);
    }
    HG_CHECK(hg_registry_add(&d->resume, "driver/state", HG_DTYPE_U64, d->state, ST_COUNT, NULL,
                             0));
    /* doubles kept bit for bit as 64-bit words */
    HG_CHECK(hg_registry_add(&d->resume, "driver/best_val", HG_DTYPE_U64, d->best_val,
                             m->nmetrics, NULL, 0));
    HG_CHECK(hg_registry_add(&d->resume, "driver/best_test", HG_DTYPE_U64, d->best_test,
                             m->nmetrics, NULL, 0));
    if (cfg->dist && cfg->dist->size > 1 &&
        !(d->sync = hg_calloc(HG_MAX(hg_registry_bytes(&d->resume, 0), 1), 1, "rank state")))
        return HG_ENOMEM;
done:
    return rc;
}

void hg_driver_destroy(hg_driver *d)
{
    hg_registry_destroy(&d->best_reg);
    hg_registry_destroy(&d->resume);
    hg_free(d->best);
    hg_free(d->step_ms);
    hg_free(d->json);
    hg_free(d->sync);
    if (d->log)
        fclose(d->log);
    memset(d, 0, sizeof *d);
}

int hg_driver_load(hg_driver *d, const char *path)
{
    int rc = hg_registry_load(d->model.reg, HG_TENSOR_RUN, path, NULL, 0, NULL);
    if (rc == HG_OK)
        d->model.reloaded(d->model.ctx);
    return rc;
}

void hg_driver_restore_best(hg_driver *d)
{
    hg_registry_scatter(d->model.reg, HG_TENSOR_RUN, d->best);
    d->model.reloaded(d->model.ctx);
}

/* ---- files ---- */

/* The best model's files, staged for the next commit (outdir.h). */
static int save_best(hg_driver *d)
{
    char path[4200], meta[4096];
    d->model.meta(d->model.ctx, meta, sizeof meta);
    hg_outdir_staged(path, sizeof path, d->cfg.out_dir, "checkpoint.bin");
    int rc = hg_registry_save(&d->best_reg, 0, path, meta);
    if (rc == HG_OK && d->model.save_best)
        rc = d->model.save_best(d->model.ctx, d->cfg.out_dir);
    if (rc == HG_OK)
        d->dirty = 0;
    return rc;
}

/* The driver's scalars into d->state (saved as "driver/state"), and back. */
static void pack_state(hg_driver *d)
{
    uint64_t *s = d->state;
    s[ST_STEP] = (uint64_t)d->step;
    s[ST_STOPPED] = (uint64_t)d->stopped_early;
    s[ST_DIRTY] = (uint64_t)d->dirty;
    s[ST_BEST] = bits_of(d->es.best);
    s[ST_BEST_STEP] = (uint64_t)d->es.best_step;
    s[ST_SINCE_BEST] = (uint64_t)d->es.since_best;
    s[ST_LOG_LINES] = (uint64_t)d->log_lines;
    s[ST_NMETRICS] = (uint64_t)d->model.nmetrics;
}

static void unpack_state(hg_driver *d)
{
    const uint64_t *s = d->state;
    d->step = (int64_t)s[ST_STEP];
    d->stopped_early = (int)s[ST_STOPPED];
    d->dirty = (int)s[ST_DIRTY];
    d->es.best = double_of(s[ST_BEST]);
    d->es.best_step = (int64_t)s[ST_BEST_STEP];
    d->es.since_best = (int64_t)s[ST_SINCE_BEST];
    d->log_lines = (int64_t)s[ST_LOG_LINES];
}

/* last.ckpt, staged for the next commit. */
static int save_last(hg_driver *d)
{
    char path[4200], meta[4096];
    pack_state(d);
    d->model.meta(d->model.ctx, meta, sizeof meta);
    hg_outdir_staged(path, sizeof path, d->cfg.out_dir, "last.ckpt");
    return hg_registry_save(&d->resume, 0, path, meta);
}

/* Make the staged files and log.csv's lines so far the directory's set (outdir.h). */
static int commit(hg_driver *d)
{
    return hg_outdir_commit(d->cfg.out_dir, d->run_id, d->step, (uint64_t)d->log_bytes);
}

/* Stage and commit: the best model when it changed (or `force`), and last.ckpt. A failure
 * removes what was staged. */
static int save_set(hg_driver *d, int force)
{
    int rc = d->dirty || force ? save_best(d) : HG_OK;
    if (rc == HG_OK)
        rc = save_last(d);
    if (rc == HG_OK)
        rc = commit(d);
    if (rc != HG_OK)
        hg_outdir_discard(d->cfg.out_dir);
    return rc;
}

/* Continue from last.ckpt: every tensor, the driver's state, log.csv cut back to the lines
 * written before the save. */
static int load_last(hg_driver *d, const char *path)
{
    int rc = hg_registry_load(&d->resume, 0, path, NULL, 0, NULL);
    if (rc != HG_OK)
        return rc;
    const uint64_t *s = d->state;
    if (s[ST_NMETRICS] != (uint64_t)d->model.nmetrics || s[ST_STEP] > (uint64_t)d->cfg.max_steps)
        return HG_ERRORF(HG_EFORMAT, "%s: saved at %s %llu of another run", path, d->cfg.unit,
                         (unsigned long long)s[ST_STEP]);
    unpack_state(d);
    d->model.reloaded(d->model.ctx);

    /* log.csv: the header and the lines written up to the save, then appended to */
    char log[4200];
    path_in(log, sizeof log, d->cfg.out_dir, "log.csv");
    d->log = fopen(log, "r+");
    int64_t lines = 0;
    for (int c; d->log && lines <= d->log_lines && (c = getc(d->log)) != EOF;)
        lines += c == '\n';
    if (!d->log || lines <= d->log_lines || ftruncate(fileno(d->log), ftell(d->log)) != 0 ||
        fseek(d->log, 0, SEEK_END) != 0)
        return HG_ERRORF(HG_EIO, "%s: cannot continue it (%lld lines expected)", log,
                         (long long)d->log_lines + 1);
    d->log_bytes = ftell(d->log);
    return HG_OK;
}

/* Push the line just printed to log.csv out whole (one write: a kill leaves whole lines). On a
 * write error the file is cut back to its previous lines. */
static int end_log_line(hg_driver *d)
{
    if (fflush(d->log) != 0 || ferror(d->log)) {
        int e = errno;
        clearerr(d->log);
        (void)ftruncate(fileno(d->log), d->log_bytes);
        return HG_ERRORF(HG_EIO, "%s/log.csv: write error: %s", d->cfg.out_dir, strerror(e));
    }
    d->log_bytes = ftell(d->log);
    return HG_OK;
}

/* log.csv's header, for a fresh run. */
static int open_log(hg_driver *d)
{
    char path[4200];
    path_in(path, sizeof path, d->cfg.out_dir, "log.csv");
    d->log = fopen(path, "w");
    if (!d->log)
        return HG_ERRORF(HG_EIO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(d->log, "%s,loss,grad_norm", d->cfg.unit);
    for (int k = 0; k < d->model.nmetrics; k++)
        if (d->model.metrics[k].flags & HG_METRIC_LOG)
            fprintf(d->log, ",val_%s", d->model.metrics[k].name);
    fprintf(d->log, ",step_ms\n");
    return end_log_line(d);
}

/* ---- the loop ---- */

/* Evaluate on val at `step` and keep the model when it is the best so far. */
static int evaluate(hg_driver *d, int64_t step, double *val)
{
    const hg_driver_model *m = &d->model;
    int rc = m->evaluate(m->ctx, HG_SPLIT_VAL, val);
    if (rc == HG_OK && hg_early_stop_update(&d->es, step, val[m->select])) {
        memcpy(d->best_val, val, (size_t)m->nmetrics * sizeof *val);
        rc = m->evaluate(m->ctx, HG_SPLIT_TEST, d->best_test);
        if (rc == HG_OK) {
            hg_registry_gather(m->reg, HG_TENSOR_RUN, d->best);
            if (m->on_best)
                m->on_best(m->ctx);
            d->dirty = 1;
        }
    }
    if (rc != HG_OK && step > 0) {
        char why[1024]; /* the message is formatted into the buffer it comes from */
        snprintf(why, sizeof why, "%s", hg_last_error());
        rc = HG_ERRORF(rc, "%s %lld: evaluation failed (diverged? try a smaller --lr or "
                       "--grad-clip): %s", d->cfg.unit, (long long)step, why);
    }
    return rc;
}

static int log_line(hg_driver *d, int64_t step, double loss, double gnorm, const double *val)
{
    const hg_driver_model *m = &d->model;
    double ms = d->step_ms[step - 1];
    if (d->log) {
        fprintf(d->log, "%lld,%.9g,%.9g", (long long)step, loss, gnorm);
        for (int k = 0; k < m->nmetrics; k++)
            if (m->metrics[k].flags & HG_METRIC_LOG)
                fprintf(d->log, ",%.9g", val[k]);
        fprintf(d->log, ",%.4f\n", ms);
        int rc = end_log_line(d);
        if (rc != HG_OK)
            return rc;
        d->log_lines++;
    }
    if (d->cfg.quiet || d->cfg.log_freq <= 0 || step % d->cfg.log_freq != 0)
        return HG_OK;
    printf("%s %5lld | loss %.4f | val", d->cfg.unit, (long long)step, loss);
    for (int k = 0; k < m->nmetrics; k++)
        if (m->metrics[k].flags & HG_METRIC_REPORT)
            printf(" %s %.4f", m->metrics[k].label ? m->metrics[k].label : m->metrics[k].name,
                   val[k]);
    printf(" | best %lld | %.3f ms/step\n", (long long)d->es.best_step, ms);
    return HG_OK;
}

/* One step and, when due, its evaluation, log line and saves. */
static int one_step(hg_driver *d, int64_t step, double *val)
{
    const hg_driver_model *m = &d->model;
    const char *unit = d->cfg.unit;
    double loss = 0.0, gnorm = 0.0, t0 = hg_now();
    int rc = m->grad(m->ctx, step, &loss, &gnorm);
    if (rc != HG_OK)
        return rc;
    if (!isfinite(loss))
        return HG_ERRORF(HG_ENUMERIC, "%s %lld: training loss is %g (diverged; try a smaller "
                         "--lr or --grad-clip)", unit, (long long)step, loss);
    if (!isfinite(gnorm))
        return HG_ERRORF(HG_ENUMERIC, "%s %lld: gradient norm is %g", unit, (long long)step,
                         gnorm);
    if ((rc = m->update(m->ctx, step, hg_lr_at(&d->cfg.lr, step), gnorm)))
        return rc;
    double t1 = hg_now();
    d->step_ms[step - 1] = 1e3 * (t1 - t0);
    d->train_seconds += t1 - t0;
    d->step = step;
    if (step % d->cfg.eval_every == 0 || step == d->cfg.max_steps) {
        if ((rc = evaluate(d, step, val)))
            return rc;
        if ((rc = log_line(d, step, loss, gnorm, val)))
            return rc;
        d->stopped_early = hg_early_stop_done(&d->es, step);
    }
    if (d->cfg.out_dir && step % d->cfg.save_every == 0)
        rc = save_set(d, 0);
    return rc;
}

int hg_driver_resumable(const hg_driver *d)
{
    char path[4200];
    struct stat st;
    if (!d->cfg.out_dir)
        return 0;
    path_in(path, sizeof path, d->cfg.out_dir, "last.ckpt");
    return stat(path, &st) == 0;
}

/* Several ranks: rank 0's whole state (what last.ckpt holds) into every other rank. */
static int sync_ranks(hg_driver *d)
{
    hg_dist *dist = d->cfg.dist;
    const size_t bytes = hg_registry_bytes(&d->resume, 0);
    if (dist->rank == 0) {
        pack_state(d);
        hg_registry_gather(&d->resume, 0, d->sync);
    }
    int rc = hg_dist_bcast(dist, d->sync, bytes);
    if (rc == HG_OK && dist->rank != 0) {
        hg_registry_scatter(&d->resume, 0, d->sync);
        unpack_state(d);
        d->model.reloaded(d->model.ctx);
    }
    return rc;
}

/* Start afresh (step 0 evaluated) or from last.ckpt. */
static int start(hg_driver *d, int resume, double *val)
{
    int rc = HG_OK;
    if (d->cfg.out_dir)
        snprintf(d->run_id, sizeof d->run_id, "%llx-%lx", (unsigned long long)time(NULL),
                 (long)getpid());
    if (resume && d->cfg.out_dir &&
        (rc = hg_outdir_recover(d->cfg.out_dir, d->run_id, sizeof d->run_id)))
        return rc;
    if (resume && hg_driver_resumable(d)) {
        char path[4200];
        path_in(path, sizeof path, d->cfg.out_dir, "last.ckpt");
        if ((rc = load_last(d, path)))
            return rc;
        if (!d->cfg.quiet)
            printf("%s: resuming %s at %s %lld\n", d->cfg.program, d->cfg.out_dir, d->cfg.unit,
                   (long long)d->step);
    } else {
        d->step = 0;
        if (d->cfg.out_dir && (rc = open_log(d)))
            return rc;
        if ((rc = evaluate(d, 0, val)))
            return rc;
    }
    return HG_OK;
}

int hg_driver_run(hg_driver *d, int resume)
{
    double val[HG_DRIVER_MAX_METRICS] = {0};
    const int several = d->cfg.dist && d->cfg.dist->size > 1;
    int rc = HG_OK;
    if (!several || d->cfg.dist->rank == 0)
        rc = start(d, resume, val);
    if (rc == HG_OK && several)
        rc = sync_ranks(d);
    if (rc != HG_OK)
        return rc;
    d->first_step = d->step;
    while (rc == HG_OK && !d->stopped_early && d->step < d->cfg.max_steps)
        rc = one_step(d, d->step + 1, val);
    if (rc == HG_OK && d->cfg.out_dir)
        rc = save_set(d, 1);
    if (rc != HG_OK && d->cfg.out_dir && d->es.best_step >= 0) {
        /* keep what was already achieved: the best model so far (the message stays) */
        char why[1024];
        snprintf(why, sizeof why, "%s", hg_last_error());
        if (save_best(d) != HG_OK || commit(d) != HG_OK)
            hg_outdir_discard(d->cfg.out_dir);
        HG_ERRORF(rc, "%s", why);
    }
    return rc;
}

/* ---- results ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median time of the steps this process took (sorted in a copy). */
static double median_step_ms(const hg_driver *d)
{
    int64_t n = d->step - d->first_step;
    if (n <= 0)
        return 0.0;
    double *v = hg_calloc((size_t)n, sizeof *v, "step times");
    if (!v)
        return NAN;
    memcpy(v, d->step_ms + d->first_step, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    hg_free(v);
    return med;
}

double hg_peak_rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    if (f)
        fclose(f);
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = ru.ru_maxrss;
    }
    return (double)kb / 1024.0;
}

void hg_driver_json(const hg_driver *d, hg_json *j, unsigned groups)
{
    const hg_driver_model *m = &d->model;
    char key[96];
    if (groups & HG_DRIVER_JSON_PROGRESS) {
        snprintf(key, sizeof key, "%ss", d->cfg.unit);
        hg_json_add_int(j, key, d->step);
        snprintf(key, sizeof key, "best_%s", d->cfg.unit);
        hg_json_add_int(j, key, d->es.best_step);
        snprintf(key, sizeof key, "max_%ss", d->cfg.unit);
        hg_json_add_str(j, "stopped", d->stopped_early ? "early_stop" : key);
    }
    for (int split = 0; split < 2 && (groups & HG_DRIVER_JSON_METRICS); split++)
        for (int k = 0; k < m->nmetrics; k++)
            if (m->metrics[k].flags & HG_METRIC_REPORT) {
                snprintf(key, sizeof key, "%s_%s", split ? "test" : "val", m->metrics[k].name);
                hg_json_add_double(j, key, split ? d->best_test[k] : d->best_val[k]);
            }
    if (groups & HG_DRIVER_JSON_TRAIN)
        hg_json_add_double(j, "train_seconds", d->train_seconds);
    if (groups & HG_DRIVER_JSON_TIMING) {
        hg_json_add_double(j, "total_seconds", hg_now() - d->cfg.t_start);
        snprintf(key, sizeof key, "%s_ms", d->cfg.unit);
        hg_json_add_double(j, key, median_step_ms(d));
        hg_json_add_double(j, "peak_rss_mib", hg_peak_rss_mib());
    }
}

int hg_driver_report(hg_driver *d)
{
    const hg_driver_model *m = &d->model;
    hg_json j;
    hg_json_begin_buf(&j, d->json, JSON_CAP - 2);
    m->add_json(m->ctx, &j, d);
    int rc = hg_json_end(&j);
    if (rc != HG_OK)
        return HG_ERRORF(rc, "the result line does not fit in %u bytes", JSON_CAP);
    if (!d->cfg.quiet && !d->cfg.no_summary) {
        printf("best %s %lld: test", d->cfg.unit, (long long)d->es.best_step);
        int first = 1;
        for (int k = 0; k < m->nmetrics; k++)
            if (m->metrics[k].flags & HG_METRIC_REPORT) {
                printf("%s %s %.4f", first ? "" : ",", m->metrics[k].name, d->best_test[k]);
                first = 0;
            }
        printf(" | %lld %ss, %.2f s training, %.3f ms/step\n", (long long)d->step, d->cfg.unit,
               d->train_seconds, median_step_ms(d));
    }
    printf("%s\n", d->json);
    if (!d->cfg.out_dir)
        return HG_OK;
    char path[4200];
    hg_outdir_staged(path, sizeof path, d->cfg.out_dir, "result.json");
    size_t len = strlen(d->json);
    d->json[len] = '\n'; /* the file ends with a newline, as stdout does */
    d->json[len + 1] = '\0';
    rc = hg_text_write(path, d->json);
    d->json[len] = '\0';
    if (rc == HG_OK)
        rc = commit(d);
    if (rc != HG_OK)
        hg_outdir_discard(d->cfg.out_dir);
    return rc;
}
