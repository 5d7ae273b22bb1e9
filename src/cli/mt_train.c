/* mt_train.c - `hgnn-mt train`: reads a parallel corpus, learns (or loads) the SentencePiece
 * model, trains the Transformer through the shared driver (one evaluation per epoch), then
 * translates the test set and scores it with BLEU and chrF.
 *
 * A step is --grad-accum token-budget batches on each of the R data-parallel ranks (dist.h; R = 1
 * without mpirun): the run's batches are numbered globally through the epochs (each epoch the
 * training batches in an order drawn from the seed and the epoch), the step's R x grad_accum of
 * them are taken in turn, rank r the grad_accum consecutive ones from r x grad_accum, and each
 * one's dropout masks come from its number: R ranks with grad_accum A take the batches and masks
 * of one rank with grad_accum R x A. The step's gradient is the mean of its batches' gradients
 * (each of its batch's mean token loss). Every rank evaluates alike (no communication); rank 0
 * alone prints, writes and translates the test set. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mt_cli.h"
#include "mt_session.h"
#include "tf_train.h"
#include "../bleu.h"
#include "../driver.h"
#include "../hg.h"
#include "../io.h"
#include "../outdir.h"
#include "../rng.h"
#include "../../datasets/batches.h"

/* Exit codes: bad input or options, and a run that failed after it started. */
enum { EXIT_INPUT = 2, EXIT_RUN = 3 };
enum { TRAIN = 0, VALID = 1, TEST = 2 };

typedef struct mt_run {
    hg_tf_train tr;                /* first: the driver's shared callbacks take the run */
    hg_mt_options *o;
    hg_mt_session s;
    hg_text_lines raw[6];          /* train, valid, test: source then target */
    hg_token_corpus tok[6];
    hg_mt_batches batches[3];
    int64_t *order;                /* the training batches of the current epoch, shuffled */
    int64_t order_epoch;           /* the epoch `order` is for (-1: none) */
    /* one batch, host staging and the model's copies */
    int32_t *h_src, *h_slen, *h_tin, *h_tout, *h_tlen;
    int32_t *k_src, *k_slen, *k_tin, *k_tout;
    int64_t steps_per_epoch, max_steps;
    double final_val[2];           /* the final model's validation loss and perplexity */
    double bleu, bleu_greedy, chrf;
    hg_lr_schedule lr;
    double t_log;                  /* time of the last progress line */
    double tokens_log;
    hg_registry reg;
    hg_driver drv;
} mt_run;

/* ---- batches ---- */

/* Batch `bi` of split `sp` into the model's memory; *b describes it. */
static void load_batch(mt_run *r, int sp, int64_t bi, hg_tf_batch *b, double *tokens)
{
    const hg_kctx *k = &r->s.k;
    int64_t B, Ts, Tt;
    hg_mt_collate(&r->batches[sp], bi, &r->tok[2 * sp], &r->tok[2 * sp + 1], r->s.bos, r->s.eos,
                  r->s.eos, HG_TF_IGNORE, r->h_src, r->h_slen, r->h_tin, r->h_tout, r->h_tlen, &B,
                  &Ts, &Tt);
    int64_t ntok = 0, stok = 0;
    for (int64_t i = 0; i < B; i++) {
        ntok += r->h_tlen[i];
        stok += r->h_slen[i];
    }
    hg_k_upload(k, r->k_src, r->h_src, (size_t)(B * Ts) * sizeof(int32_t));
    hg_k_upload(k, r->k_slen, r->h_slen, (size_t)B * sizeof(int32_t));
    hg_k_upload(k, r->k_tin, r->h_tin, (size_t)(B * Tt) * sizeof(int32_t));
    hg_k_upload(k, r->k_tout, r->h_tout, (size_t)(B * Tt) * sizeof(int32_t));
    *b = (hg_tf_batch){B, Ts, Tt, ntok, r->k_src, r->k_slen, r->k_tin, r->k_tout};
    if (tokens)
        *tokens = (double)(ntok + stok);
}

/* Mean negative log-likelihood per target token of a split (dropout off). */
static int split_nll(mt_run *r, int sp, double *nll)
{
    double sum = 0.0, ntok = 0.0;
    int rc = HG_OK;
    for (int64_t bi = 0; bi < r->batches[sp].nbatches; bi++) {
        hg_tf_batch b;
        double l;
        load_batch(r, sp, bi, &b, NULL);
        HG_CHECK(hg_tf_loss(r->s.model, &b, 0.0f, 0, 0, 0, &l));
        sum += l;
        ntok += (double)b.ntok;
    }
    *nll = ntok > 0 ? sum / ntok : 0.0;
done:
    return rc;
}

/* ---- the driver's callbacks ---- */

static int evaluate(void *ctx, hg_split split, double *out)
{
    mt_run *r = ctx;
    int rc = split_nll(r, split == HG_SPLIT_TEST ? TEST : VALID, &out[HG_TF_M_LOSS]);
    out[HG_TF_M_PPL] = exp(out[HG_TF_M_LOSS]);
    return rc ? rc : hg_k_sync(&r->s.k);
}

/* The training batch numbered g (from 0, through the epochs). */
static int64_t batch_of(mt_run *r, int64_t g)
{
    const int64_t nb = r->batches[TRAIN].nbatches, epoch = g / nb;
    if (epoch != r->order_epoch) { /* a new epoch: the batches in a fresh order */
        hg_rng rng;
        hg_rng_seed(&rng, hg_rng_derive(r->o->seed, 5000 + (uint64_t)epoch));
        hg_mt_batches_shuffle(r->order, nb, &rng);
        r->order_epoch = epoch;
    }
    return r->order[g % nb];
}

static int train_grad(void *ctx, int64_t step, double *loss, double *grad_norm)
{
    mt_run *r = ctx;
    const hg_mt_options *o = r->o;
    const int64_t A = o->grad_accum, G = A * r->tr.dist.size; /* batches: this rank's, all */
    hg_params *P = hg_tf_params(r->s.model);
    hg_params_zero_grad(P);
    double sc[2] = {0.0, 0.0}; /* the batches' mean token losses, and their tokens, summed */
    for (int64_t a = 0; a < A; a++) {
        const int64_t g = (step - 1) * G + r->tr.dist.rank * A + a;
        hg_tf_batch b;
        double tokens, sum;
        load_batch(r, TRAIN, batch_of(r, g), &b, &tokens);
        int rc = hg_tf_loss(r->s.model, &b, o->label_smoothing, 1,
                            hg_rng_derive(o->seed, 1000000 + (uint64_t)g + 1), 1, &sum);
        if (rc)
            return rc;
        sc[0] += b.ntok > 0 ? sum / (double)b.ntok : 0.0;
        sc[1] += tokens;
    }
    int rc = hg_tf_train_reduce(&r->tr, step, A, sc, 2, loss, grad_norm);
    if (rc)
        return rc;
    r->tr.tokens += sc[1];
    if (!o->quiet && o->log_freq > 0 && step % o->log_freq == 0) {
        const double now = hg_now(), dt = now - r->t_log;
        printf("epoch %lld | step %lld | loss %.4f | lr %.3e | %.0f tokens/s\n",
               (long long)((step - 1) * G / r->batches[TRAIN].nbatches + 1), (long long)step,
               *loss, hg_lr_at(&r->lr, step), dt > 0 ? (r->tr.tokens - r->tokens_log) / dt : 0.0);
        fflush(stdout);
        r->t_log = now;
        r->tokens_log = r->tr.tokens;
    }
    return HG_OK;
}

static void meta_json(void *ctx, char *buf, size_t cap)
{
    const mt_run *r = ctx;
    hg_tf_train_meta(&r->tr, "transformer", &r->o->linear, r->o->enc_layers, r->o->dim, buf,
                     cap);
}

static void add_json(void *ctx, hg_json *j, const hg_driver *d)
{
    const mt_run *r = ctx;
    const hg_mt_options *o = r->o;
    const hg_tf *m = r->s.model;
    char seed[32];
    hg_json_add_str(j, "corpus", o->data_dir || o->train_src ? r->o->paths[0] : "multi30k");
    hg_json_add_str(j, "src", o->src);
    hg_json_add_str(j, "tgt", o->tgt);
    hg_json_add_str(j, "method", hg_linear_method_name(o->linear.method));
    hg_json_add_int(j, "rank", o->linear.method == HG_LINEAR_FULL ? 0 : o->linear.rank);
    hg_json_add_int(j, "dim", o->dim);
    hg_json_add_int(j, "layers", o->enc_layers);
    hg_json_add_int(j, "dec_layers", o->dec_layers);
    hg_json_add_int(j, "vocab", hg_tf_cfg(m)->vocab);
    hg_json_add_double(j, "epochs", (double)(d->step * o->grad_accum * r->tr.dist.size) /
                                        (double)r->batches[TRAIN].nbatches);
    hg_json_add_int(j, "steps", d->step);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    hg_json_add_raw(j, "seed", seed);
    hg_json_add_double(j, "val_loss", r->final_val[0]);
    hg_json_add_double(j, "val_ppl", r->final_val[1]);
    hg_json_add_int(j, "beam", o->beam);
    if (o->decode) {
        hg_json_add_double(j, "test_bleu", r->bleu);
        hg_json_add_double(j, "test_bleu_greedy", r->bleu_greedy);
        hg_json_add_double(j, "test_chrf", r->chrf);
    }
    hg_tf_train_json(&r->tr, j, d);
}

/* ---- setup ---- */

static int read_data(mt_run *r)
{
    const hg_mt_options *o = r->o;
    int rc = HG_OK;
    for (int sp = 0; sp < 3; sp++)
        HG_CHECK(hg_text_read_parallel(&r->raw[2 * sp], &r->raw[2 * sp + 1], o->paths[2 * sp],
                                       o->paths[2 * sp + 1], o->max_line));
    /* the SentencePiece model: given, saved by the run being resumed, or learned here */
    char path[4200], saved[4200];
    if (o->out_dir)
        snprintf(path, sizeof path, "%s/spm.model", o->out_dir);
    if (o->resume) /* every rank reads it (rank 0 alone has an out_dir) */
        snprintf(saved, sizeof saved, "%s/spm.model", o->resume);
    if (o->spm_model) {
        HG_CHECK(hg_spm_load(&r->s.spm, o->spm_model));
    } else if (o->resume && access(saved, R_OK) == 0) {
        HG_CHECK(hg_spm_load(&r->s.spm, saved));
    } else {
        const hg_text_lines *both[2] = {&r->raw[0], &r->raw[1]};
        if (!o->quiet) {
            printf("hgnn-mt: learning a %d-piece BPE model from %lld sentence pairs\n", o->vocab,
                   (long long)r->raw[0].n);
            fflush(stdout);
        }
        if ((rc = hg_spm_train(&r->s.spm, both, 2, o->vocab, o->threads))) {
            char why[1024];
            snprintf(why, sizeof why, "%s", hg_last_error());
            return HG_ERRORF(rc, "%s and %s: %s (option --vocab %d)", o->paths[0], o->paths[1],
                             why, o->vocab);
        }
    }
    if (o->out_dir)
        HG_CHECK(hg_spm_save(r->s.spm, path));
    r->s.bos = hg_spm_bos(r->s.spm);
    r->s.eos = hg_spm_eos(r->s.spm);
    if (r->s.bos < 0 || r->s.eos < 0)
        return HG_ERRORF(HG_EINVAL, "the SentencePiece model has no BOS or EOS piece");
    for (int i = 0; i < 6; i++)
        HG_CHECK(hg_spm_encode_lines_mt(r->s.spm, &r->raw[i], o->threads, &r->tok[i]));
    for (int sp = 0; sp < 3; sp++)
        HG_CHECK(hg_mt_batches_make(&r->batches[sp], &r->tok[2 * sp], &r->tok[2 * sp + 1],
                                    o->max_tokens));
done:
    return rc;
}

static int setup(mt_run *r)
{
    const hg_mt_options *o = r->o;
    int rc = HG_OK;
    HG_CHECK(read_data(r));
    if (r->batches[TRAIN].nbatches < 1)
        return HG_ERRORF(HG_EINVAL, "%s: no training sentence", o->paths[0]);
    /* capacity: the largest batch of every split, and the test set's decoding */
    int64_t B = 1, Ls = 1, Lt = 1, Rs = 1, Rt = 1, Ltest = 1;
    for (int sp = 0; sp < 3; sp++) {
        const hg_mt_batches *b = &r->batches[sp];
        B = HG_MAX(B, b->max_pairs);
        Ls = HG_MAX(Ls, b->max_src_len);
        Lt = HG_MAX(Lt, b->max_tgt_len);
        Rs = HG_MAX(Rs, b->max_src_rows);
        Rt = HG_MAX(Rt, b->max_tgt_rows);
    }
    Ltest = r->batches[TEST].max_src_len;
    if (o->decode) {
        Ls = HG_MAX(Ls, Ltest + o->extra_len + 1);
        Lt = HG_MAX(Lt, Ltest + o->extra_len + 1);
        Rs = HG_MAX(Rs, hg_mt_decode_rows(o, Ltest));
        B = HG_MAX(B, o->decode_batch);
    }
    hg_tf_config c;
    hg_mt_model_config(o, hg_spm_vocab_size(r->s.spm), B, Ls, Lt, Rs, Rt, &c);
    HG_CHECK(hg_tf_init(&r->s.model, &r->s.k, &c));
    if (o->decode)
        HG_CHECK(hg_mt_decode_setup(&r->s, Ltest, o->beam));
    /* batch buffers */
    const hg_kctx *k = &r->s.k;
    const size_t i4 = sizeof(int32_t);
    r->h_src = hg_calloc((size_t)Rs, i4, "batch");
    r->h_tin = hg_calloc((size_t)Rt, i4, "batch");
    r->h_tout = hg_calloc((size_t)Rt, i4, "batch");
    r->h_slen = hg_calloc((size_t)B, i4, "batch");
    r->h_tlen = hg_calloc((size_t)B, i4, "batch");
    r->k_src = hg_k_alloc(k, (size_t)Rs * i4, "batch");
    r->k_tin = hg_k_alloc(k, (size_t)Rt * i4, "batch");
    r->k_tout = hg_k_alloc(k, (size_t)Rt * i4, "batch");
    r->k_slen = hg_k_alloc(k, (size_t)B * i4, "batch");
    r->order = hg_calloc((size_t)r->batches[TRAIN].nbatches, sizeof(int64_t), "batch order");
    if (!r->h_src || !r->h_tin || !r->h_tout || !r->h_slen || !r->h_tlen || !r->k_src ||
        !r->k_tin || !r->k_tout || !r->k_slen || !r->order)
        return HG_ENOMEM;
    r->order_epoch = -1;
    /* steps of G batches: an epoch's nb batches, the run's epochs x nb (the last step may run
       into the next epoch) */
    const int64_t nb = r->batches[TRAIN].nbatches, G = o->grad_accum * r->tr.dist.size;
    r->steps_per_epoch = (nb + G - 1) / G;
    r->max_steps = ((int64_t)o->epochs * nb + G - 1) / G;
    if (o->steps > 0)
        r->max_steps = HG_MIN(r->max_steps, o->steps);
    /* the registry: the model's tensors */
    hg_registry_init(&r->reg);
    HG_CHECK(hg_tf_register(r->s.model, &r->reg));
    HG_CHECK(hg_dist_attach(&r->tr.dist, k, hg_tf_num_trainable(r->s.model)));
    r->tr.model = r->s.model;
    r->tr.k = k;
    r->tr.clip = o->clip;
    r->tr.check_every = o->check_every;
    r->tr.threads = o->threads;
done:
    return rc;
}

static int driver_init(mt_run *r, double t_start)
{
    const hg_mt_options *o = r->o;
    hg_driver_model dm = {0};
    dm.ctx = r;
    dm.reg = &r->reg;
    dm.grad = train_grad;
    dm.evaluate = evaluate;
    dm.meta = meta_json;
    dm.add_json = add_json;
    r->lr = (hg_lr_schedule){HG_LR_INVSQRT, o->lr, o->warmup, r->max_steps};
    hg_driver_config c = {0};
    c.max_steps = r->max_steps;
    c.eval_every = o->eval_every > 0 ? o->eval_every : r->steps_per_epoch;
    c.lr = r->lr;
    c.save_every = o->save_every;
    c.quiet = o->quiet;
    c.out_dir = o->out_dir;
    c.program = "hgnn-mt";
    c.t_start = t_start;
    return hg_tf_train_driver(&r->tr, &r->drv, &dm, &c);
}

/* Write lines (one a line) to DIR/NAME atomically. */
static int write_lines(const char *dir, const char *name, char **lines, int64_t n)
{
    size_t len = 1;
    for (int64_t i = 0; i < n; i++)
        len += strlen(lines[i]) + 1;
    char *text = hg_calloc(len, 1, "output lines"), path[4200];
    if (!text)
        return HG_ENOMEM;
    char *p = text;
    for (int64_t i = 0; i < n; i++) {
        size_t l = strlen(lines[i]);
        memcpy(p, lines[i], l);
        p[l] = '\n';
        p += l + 1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = hg_text_write(path, text);
    hg_free(text);
    return rc;
}

/* The final model: validation loss, then the test set translated (beam and greedy) and scored
 * against the raw references with sacreBLEU's 13a BLEU and chrF2. */
static int finish(mt_run *r)
{
    const hg_mt_options *o = r->o;
    int rc = HG_OK;
    char **beam = NULL, **greedy = NULL;
    hg_bleu *bleu = NULL;
    hg_chrf *chrf = NULL;
    const int64_t n = r->tok[4].n;
    HG_CHECK(split_nll(r, VALID, &r->final_val[0]));
    r->final_val[1] = exp(r->final_val[0]);
    if (!o->decode)
        goto done;
    double t0 = hg_now();
    HG_CHECK(hg_mt_translate(&r->s, &r->tok[4], o->beam, &beam));
    double t1 = hg_now();
    HG_CHECK(hg_mt_translate(&r->s, &r->tok[4], 1, &greedy));
    hg_bleu_opts bo;
    hg_chrf_opts co;
    hg_bleu_opts_corpus(&bo);
    hg_chrf_opts_default(&co);
    HG_CHECK(hg_bleu_create(&bleu, &bo));
    HG_CHECK(hg_chrf_create(&chrf, &co));
    const char *const *refs = (const char *const *)r->raw[5].line;
    hg_bleu_result br;
    HG_CHECK(hg_bleu_corpus(bleu, (const char *const *)beam, refs, n, &br));
    r->bleu = br.score;
    HG_CHECK(hg_bleu_corpus(bleu, (const char *const *)greedy, refs, n, &br));
    r->bleu_greedy = br.score;
    HG_CHECK(hg_chrf_corpus(chrf, (const char *const *)beam, refs, n, &r->chrf, NULL));
    if (!o->quiet)
        printf("hgnn-mt: test BLEU %.2f (beam %d, %.1f s), %.2f (greedy, %.1f s), chrF2 %.2f\n",
               r->bleu, o->beam, t1 - t0, r->bleu_greedy, hg_now() - t1, r->chrf);
    if (o->out_dir) {
        HG_CHECK(write_lines(o->out_dir, "test.hyp", beam, n));
        HG_CHECK(write_lines(o->out_dir, "test.greedy.hyp", greedy, n));
    }
done:
    hg_mt_free_lines(beam, n);
    hg_mt_free_lines(greedy, n);
    hg_bleu_free(bleu);
    hg_chrf_free(chrf);
    return rc;
}

static void run_destroy(mt_run *r)
{
    hg_driver_destroy(&r->drv);
    hg_registry_destroy(&r->reg);
    const hg_kctx *k = &r->s.k;
    if (r->s.have_k) {
        hg_k_free(k, r->k_src);
        hg_k_free(k, r->k_tin);
        hg_k_free(k, r->k_tout);
        hg_k_free(k, r->k_slen);
    }
    hg_mt_session_close(&r->s);
    for (int i = 0; i < 6; i++) {
        hg_text_lines_free(&r->raw[i]);
        hg_token_corpus_free(&r->tok[i]);
    }
    for (int i = 0; i < 3; i++)
        hg_mt_batches_free(&r->batches[i]);
    void *b[] = {r->order, r->h_src, r->h_slen, r->h_tin, r->h_tout, r->h_tlen};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        hg_free(b[i]);
}

int hg_mt_train_main(int argc, char **argv)
{
    hg_mt_options o;
    mt_run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    const double t_start = hg_now();
    int rc = hg_mt_options_parse(&o, argc, argv);
    const int joined = hg_dist_init(&r.tr.dist); /* a world of one when it fails */
    if (rc == HG_ARG_DONE) {
        hg_mt_options_free(&o);
        return hg_dist_exit(&r.tr.dist, 0);
    }
    rc = rc ? rc : joined;
    if (r.tr.dist.rank > 0) { /* rank 0 alone prints and writes */
        o.out_dir = NULL;
        o.quiet = 1;
    }
    int exit_code = EXIT_INPUT;
    if (rc)
        goto setup_done;
    if (o.out_dir && ((rc = hg_mkdir_p(o.out_dir)) ||
                      (!o.resume && ((rc = hg_outdir_reset(o.out_dir)) ||
                                     (rc = hg_mt_options_save(o.out_dir, argc, argv))))))
        goto setup_done;
    if ((rc = hg_mt_session_open(&r.s, &o)) == HG_OK && (rc = setup(&r)) == HG_OK)
        rc = driver_init(&r, t_start);
setup_done:
    if ((rc = hg_dist_agree(&r.tr.dist, rc)))
        goto fail;
    if (!o.quiet)
        printf("hgnn-mt: %s -> %s | %lld pairs, %lld batches per epoch | vocab %d | d %d, %d+%d "
               "layers | method %s rank %d | %lld trainable parameters | %s | %d rank%s\n",
               o.src, o.tgt, (long long)r.raw[0].n, (long long)r.steps_per_epoch,
               hg_spm_vocab_size(r.s.spm), o.dim, o.enc_layers, o.dec_layers,
               hg_linear_method_name(o.linear.method), o.linear.rank,
               (long long)hg_tf_num_trainable(r.s.model), hg_k_device_name(&r.s.k), r.tr.dist.size,
               r.tr.dist.size > 1 ? "s" : "");
    exit_code = EXIT_RUN;
    r.t_log = hg_now();
    if ((rc = hg_driver_run(&r.drv, o.resume != NULL)) ||
        (r.tr.dist.rank == 0 && ((rc = finish(&r)) || (rc = hg_driver_report(&r.drv)))))
        goto fail;
    run_destroy(&r);
    hg_mt_options_free(&o);
    return hg_dist_exit(&r.tr.dist, 0);
fail:
    fflush(stdout);
    hg_dist_print_error(&r.tr.dist, "hgnn-mt", rc);
    run_destroy(&r);
    hg_mt_options_free(&o);
    return hg_dist_exit(&r.tr.dist, exit_code);
}
