/* sst_lb_pick: smooth weighted round-robin over the health snapshot, with tried, DOWN, forced
 * down, slow start and ignore_health. Counts are exact: the algorithm is deterministic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sidestep/route.h"

#include "route_fixture.h"

#define NOW_MS 50000

typedef struct lb_fixture_s {
    sst_config_t *cfg;
    sst_hsnap_t *snap;
    sst_lb_state_t st;
    sst_tried_t tried;
} lb_fixture_t;

/* Region 0 "solo": one backend (index 0). Region 1 "main": backends 1, 2, 3 with weights
 * 1:2:3. Region 2 "empty": no backends. */
static int lb_setup(void **state)
{
    static const uint32_t w123[] = {1, 2, 3};
    lb_fixture_t *fx = calloc(1, sizeof(*fx));
    if (fx == NULL)
        return -1;
    fx->cfg = fx_config_new();
    if (fx->cfg == NULL)
        return -1;
    fx_region(fx->cfg, "solo", NULL, 1, NULL);
    fx_region(fx->cfg, "main", NULL, 3, w123);
    fx_region(fx->cfg, "empty", NULL, 0, NULL);
    fx->snap = fx_snap_new(fx->cfg);
    if (fx->snap == NULL)
        return -1;
    *state = fx;
    return 0;
}

static int lb_teardown(void **state)
{
    lb_fixture_t *fx = *state;
    fx_config_free(fx->cfg);
    free(fx->snap);
    free(fx);
    return 0;
}

/* Picks n times in region 1 and counts picks per backend 1..3 (index 0 counts -1 results). */
static void lb_count(lb_fixture_t *fx, uint64_t now_ms, bool ignore_health, int n, int counts[4])
{
    memset(counts, 0, 4 * sizeof(int));
    for (int i = 0; i < n; i++) {
        int b = sst_lb_pick(fx->cfg, fx->snap, 1, now_ms, ignore_health, &fx->tried, &fx->st);
        if (b < 0) {
            counts[0]++;
            continue;
        }
        assert_in_range(b, 1, 3);
        counts[b]++;
    }
}

static void test_lb_weights_exact(void **state)
{
    lb_fixture_t *fx = *state;
    int counts[4];

    lb_count(fx, NOW_MS, false, 600, counts);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 100);
    assert_int_equal(counts[2], 200);
    assert_int_equal(counts[3], 300);
}

/* Smoothness: the heaviest backend is spread out, never picked in a burst (plain WRR would
 * give 3 3 3 2 2 1), and every window of 6 holds exactly 1:2:3. */
static void test_lb_smooth_sequence(void **state)
{
    lb_fixture_t *fx = *state;
    static const int want[6] = {3, 2, 1, 3, 2, 3};

    for (int round = 0; round < 5; round++)
        for (int i = 0; i < 6; i++) {
            int b = sst_lb_pick(fx->cfg, fx->snap, 1, NOW_MS, false, NULL, &fx->st);
            if (b != want[i])
                fail_msg("round %d pick %d: backend %d, want %d", round, i, b, want[i]);
        }
    /* and a fresh state replays the same sequence: no hidden randomness */
    sst_lb_state_t other = {0};
    for (int i = 0; i < 6; i++)
        assert_int_equal(sst_lb_pick(fx->cfg, fx->snap, 1, NOW_MS, false, NULL, &other), want[i]);
}

static void test_lb_tried_skipped(void **state)
{
    lb_fixture_t *fx = *state;
    int counts[4];

    sst_tried_set(&fx->tried, 3);
    lb_count(fx, NOW_MS, false, 300, counts);
    assert_int_equal(counts[1], 100);
    assert_int_equal(counts[2], 200);
    assert_int_equal(counts[3], 0);

    sst_tried_set(&fx->tried, 1);
    sst_tried_set(&fx->tried, 2);
    lb_count(fx, NOW_MS, false, 10, counts);
    assert_int_equal(counts[0], 10);
    /* ignore_health never brings back a tried backend */
    lb_count(fx, NOW_MS, true, 10, counts);
    assert_int_equal(counts[0], 10);
}

static void test_lb_down_skipped(void **state)
{
    lb_fixture_t *fx = *state;
    int counts[4];

    fx_backend_state(fx->snap, 2, SST_DOWN, SST_FORCE_NONE);
    lb_count(fx, NOW_MS, false, 400, counts);
    assert_int_equal(counts[1], 100);
    assert_int_equal(counts[2], 0);
    assert_int_equal(counts[3], 300);
    /* ignore_health does not add DOWN backends while an UP one is left */
    lb_count(fx, NOW_MS, true, 400, counts);
    assert_int_equal(counts[2], 0);
}

static void test_lb_ignore_health(void **state)
{
    lb_fixture_t *fx = *state;
    int counts[4];

    fx_backend_state(fx->snap, 1, SST_DOWN, SST_FORCE_NONE);
    fx_backend_state(fx->snap, 2, SST_DOWN, SST_FORCE_DOWN);
    fx_backend_state(fx->snap, 3, SST_DOWN, SST_FORCE_NONE);
    lb_count(fx, NOW_MS, false, 10, counts);
    assert_int_equal(counts[0], 10);

    /* fail_open / forced-up region: DOWN backends at their configured weights, except the
     * one an operator forced down */
    lb_count(fx, NOW_MS, true, 400, counts);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 100);
    assert_int_equal(counts[2], 0);
    assert_int_equal(counts[3], 300);

    sst_tried_set(&fx->tried, 1);
    lb_count(fx, NOW_MS, true, 5, counts);
    assert_int_equal(counts[3], 5);
}

static void test_lb_slow_start(void **state)
{
    lb_fixture_t *fx = *state;
    int counts[4];

    /* backend 3 (weight 3 -> 48) restarts slow start at NOW_MS for 10 s: 10% -> 4 */
    fx->snap->backends[3].slow_start_begin_ms = NOW_MS;
    fx->snap->backends[3].slow_start_end_ms = NOW_MS + 10000;
    lb_count(fx, NOW_MS, false, (16 + 32 + 4) * 2, counts); /* weights 16 : 32 : 4 */
    assert_int_equal(counts[1], 32);
    assert_int_equal(counts[2], 64);
    assert_int_equal(counts[3], 8);

    /* half way: 10% + 90% * 0.5 = 55% of 48 = 26.4, rounded down to 26 */
    memset(&fx->st, 0, sizeof(fx->st));
    lb_count(fx, NOW_MS + 5000, false, (16 + 32 + 26) * 2, counts);
    assert_int_equal(counts[1], 32);
    assert_int_equal(counts[2], 64);
    assert_int_equal(counts[3], 52);

    /* at and past the end: full weight */
    memset(&fx->st, 0, sizeof(fx->st));
    lb_count(fx, NOW_MS + 10000, false, 600, counts);
    assert_int_equal(counts[3], 300);

    /* before begin (clock of another worker slightly behind): the floor, 10% */
    memset(&fx->st, 0, sizeof(fx->st));
    lb_count(fx, NOW_MS - 10, false, (16 + 32 + 4) * 2, counts);
    assert_int_equal(counts[3], 8);

    /* a weight-1 backend at 10% (1.6, rounded down to 1) still gets traffic */
    fx->snap->backends[1].slow_start_begin_ms = NOW_MS;
    fx->snap->backends[1].slow_start_end_ms = NOW_MS + 10000;
    fx_backend_state(fx->snap, 2, SST_DOWN, SST_FORCE_NONE);
    fx_backend_state(fx->snap, 3, SST_DOWN, SST_FORCE_NONE);
    memset(&fx->st, 0, sizeof(fx->st));
    lb_count(fx, NOW_MS, false, 10, counts);
    assert_int_equal(counts[1], 10);

    /* huge slow-start spans do not overflow the ramp */
    fx->snap->backends[1].slow_start_begin_ms = 1;
    fx->snap->backends[1].slow_start_end_ms = UINT64_MAX;
    assert_int_equal(sst_lb_pick(fx->cfg, fx->snap, 1, UINT64_MAX / 2, false, NULL, &fx->st), 1);
}

static void test_lb_edges(void **state)
{
    lb_fixture_t *fx = *state;

    /* single backend, empty region, bad region */
    for (int i = 0; i < 5; i++)
        assert_int_equal(sst_lb_pick(fx->cfg, fx->snap, 0, NOW_MS, false, NULL, &fx->st), 0);
    assert_int_equal(sst_lb_pick(fx->cfg, fx->snap, 2, NOW_MS, true, NULL, &fx->st), -1);
    assert_int_equal(sst_lb_pick(fx->cfg, fx->snap, 3, NOW_MS, true, NULL, &fx->st), -1);
    assert_int_equal(sst_lb_pick(fx->cfg, fx->snap, SIZE_MAX, NOW_MS, true, NULL, &fx->st), -1);
    assert_int_equal(sst_lb_pick(NULL, fx->snap, 0, NOW_MS, true, NULL, &fx->st), -1);

    /* a configured weight of 0 is never picked, even ignoring health */
    fx->cfg->backends[0].weight = 0;
    assert_int_equal(sst_lb_pick(fx->cfg, fx->snap, 0, NOW_MS, true, NULL, &fx->st), -1);

    /* a snapshot older than the config, with fewer backends, is never read past its end */
    fx->snap->n_backends = 2;
    for (int i = 0; i < 5; i++)
        assert_int_equal(sst_lb_pick(fx->cfg, fx->snap, 1, NOW_MS, false, NULL, &fx->st), 1);

    /* accumulators near the int32 limits are renormalised, not overflowed */
    fx->snap->n_backends = 4;
    fx->st.current[1] = INT32_MAX - 1;
    fx->st.current[2] = INT32_MIN + 1;
    fx->st.current[3] = INT32_MIN + 1;
    int b = sst_lb_pick(fx->cfg, fx->snap, 1, NOW_MS, false, NULL, &fx->st);
    assert_int_equal(b, 1);
    int counts[4];
    lb_count(fx, NOW_MS, false, 600, counts);
    assert_int_equal(counts[1] + counts[2] + counts[3], 600);
    assert_in_range(counts[3], 299, 301);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lb_weights_exact, lb_setup, lb_teardown),
        cmocka_unit_test_setup_teardown(test_lb_smooth_sequence, lb_setup, lb_teardown),
        cmocka_unit_test_setup_teardown(test_lb_tried_skipped, lb_setup, lb_teardown),
        cmocka_unit_test_setup_teardown(test_lb_down_skipped, lb_setup, lb_teardown),
        cmocka_unit_test_setup_teardown(test_lb_ignore_health, lb_setup, lb_teardown),
        cmocka_unit_test_setup_teardown(test_lb_slow_start, lb_setup, lb_teardown),
        cmocka_unit_test_setup_teardown(test_lb_edges, lb_setup, lb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
