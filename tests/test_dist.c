/* test_dist.c - the data-parallel layer (src/dist.h), run under mpirun with 2 ranks (tests/
 * meson.build) and alone (a world of one):
 *   - the gradient all-reduce sums every rank's buffer, and every rank holds the same result;
 *   - the step's scalars are summed; a non-finite value on one rank stops every rank with the
 *     message naming that rank (the lowest one when several saw one), and rank 0 reports it;
 *   - the replica check passes on identical parameters and names the rank whose differ;
 *   - a setup failure on one rank is agreed (every rank fails, that rank reports);
 *   - rank 0's bytes reach every rank;
 *   - on a device context (the emulated one in test_dist_emu; a GPU when there is one) the
 *     all-reduce and the checksum go through the host staging buffer;
 *   - alone, every call returns at once and nothing is reported or required. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "../src/dist.h"
#include "../src/hg.h"

static hg_dist D;
static hg_kctx K = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};

static void sum_grad(void **s)
{
    (void)s;
    float x[1000];
    for (int i = 0; i < 1000; i++)
        x[i] = (float)(D.rank + 1) * (float)i;
    assert_int_equal(hg_dist_sum_grad(&D, x, 1000), HG_OK);
    const float ranks_sum = (float)(D.size * (D.size + 1) / 2); /* 1 + 2 + ... + size */
    for (int i = 0; i < 1000; i++)
        assert_true(x[i] == ranks_sum * (float)i);
}

static void step_scalars(void **s)
{
    (void)s;
    double x[2] = {1.5, (double)D.rank};
    assert_int_equal(hg_dist_step_scalars(&D, x, 2, 0, 7), HG_OK);
    if (D.size > 1) {
        assert_true(x[0] == 1.5 * D.size);
        assert_true(x[1] == (double)(D.size * (D.size - 1) / 2));
    }
    /* the last rank meets a NaN: every rank stops at this step, naming it */
    x[0] = D.rank == D.size - 1 ? NAN : 1.0;
    const int rc = hg_dist_step_scalars(&D, x, 1, !isfinite(x[0]), 9);
    if (D.size == 1) {
        assert_int_equal(rc, HG_OK); /* alone: the driver's own guard applies */
        return;
    }
    assert_int_equal(rc, HG_ENUMERIC);
    char want[64];
    snprintf(want, sizeof want, "step 9: rank %d of %d", D.size - 1, D.size);
    assert_non_null(strstr(hg_last_error(), want));
    assert_int_equal(D.reporter, 0);
    /* every rank: the lowest is named */
    D.reporter = -1;
    assert_int_equal(hg_dist_step_scalars(&D, x, 1, 1, 10), HG_ENUMERIC);
    assert_non_null(strstr(hg_last_error(), "step 10: rank 0 of"));
    D.reporter = -1;
}

static void replicas(void **s)
{
    (void)s;
    float p[257];
    for (int i = 0; i < 257; i++)
        p[i] = 0.25f * (float)i;
    assert_int_equal(hg_dist_check_replicas(&D, p, 257, 3), HG_OK);
    if (D.size == 1)
        return;
    if (D.rank == 1)
        p[200] = nextafterf(p[200], 1e9f); /* one bit of one parameter */
    assert_int_equal(hg_dist_check_replicas(&D, p, 257, 4), HG_ENUMERIC);
    assert_non_null(strstr(hg_last_error(), "step 4: the replicas differ"));
    assert_non_null(strstr(hg_last_error(), "rank 1 are not those of rank 0"));
    assert_int_equal(D.reporter, 0);
    D.reporter = -1;
}

static void agree(void **s)
{
    (void)s;
    assert_int_equal(hg_dist_agree(&D, HG_OK), HG_OK);
    if (D.size == 1) {
        assert_int_equal(hg_dist_agree(&D, HG_EIO), HG_EIO);
        return;
    }
    const int mine = D.rank == 1 ? HG_ERRORF(HG_EIO, "cannot read x") : HG_OK;
    const int rc = hg_dist_agree(&D, mine);
    assert_int_equal(rc, D.rank == 1 ? HG_EIO : HG_EINVAL);
    assert_int_equal(D.reporter, 1);
    D.reporter = -1;
}

static void bcast(void **s)
{
    (void)s;
    unsigned char b[100];
    memset(b, D.rank == 0 ? 7 : 1, sizeof b);
    assert_int_equal(hg_dist_bcast(&D, b, sizeof b), HG_OK);
    for (size_t i = 0; i < sizeof b; i++)
        assert_int_equal(b[i], 7);
}

/* The same sums and checksums through a device context's memory (skipped without one). */
static void staged(void **s)
{
    (void)s;
    hg_kctx gpu;
    if (hg_kctx_init(&gpu, HG_DEVICE_CUDA, 1) != HG_OK) {
        hg_error_clear();
        skip();
    }
    hg_dist E = D; /* the same ranks, attached to the device */
    E.stage = NULL;
    E.hashes = NULL;
    assert_int_equal(hg_dist_attach(&E, &gpu, 300), HG_OK);
    assert_true(E.size == 1 || E.stage != NULL);
    float h[300], *x = hg_k_alloc(&gpu, sizeof h, "test");
    assert_non_null(x);
    for (int i = 0; i < 300; i++)
        h[i] = (float)(D.rank + 1) * (float)i;
    hg_k_upload(&gpu, x, h, sizeof h);
    assert_int_equal(hg_dist_sum_grad(&E, x, 300), HG_OK);
    hg_k_download(&gpu, h, x, sizeof h);
    for (int i = 0; i < 300; i++)
        assert_true(h[i] == (float)(E.size * (E.size + 1) / 2) * (float)i);
    assert_int_equal(hg_dist_sum_grad(&E, x, 301), E.size == 1 ? HG_OK : HG_EINVAL);
    assert_int_equal(hg_dist_check_replicas(&E, x, 300, 1), HG_OK);
    hg_k_free(&gpu, x);
    hg_free(E.stage);
    hg_free(E.hashes);
    hg_kctx_destroy(&gpu);
}

int main(void)
{
    if (hg_dist_init(&D) != HG_OK || hg_dist_attach(&D, &K, 1000) != HG_OK) {
        fprintf(stderr, "test_dist: %s\n", hg_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sum_grad), cmocka_unit_test(step_scalars), cmocka_unit_test(replicas),
        cmocka_unit_test(agree), cmocka_unit_test(bcast), cmocka_unit_test(staged),
    };
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    printf("rank %d of %d: %d failed\n", D.rank, D.size, failed);
    return hg_dist_exit(&D, failed ? 1 : 0);
}
