/* passive.c: which outcomes of real traffic are passive health signals (table-driven), the
 * "good answer after a failure" rule, and the ring: order, the drop count when full, a new
 * config forgetting earlier failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/passive.h"

static void test_failure_kinds(void **state)
{
    static const struct {
        sst_m_upfail_t kind;
        sst_passive_t sig;
    } cases[] = {
        {SST_M_UP_REFUSED, SST_PASSIVE_REFUSED},
        {SST_M_UP_CONNECT_TIMEOUT, SST_PASSIVE_CONNECT_TIMEOUT},
        {SST_M_UP_CONNECT_ERROR, SST_PASSIVE_RESET},
        {SST_M_UP_RESET, SST_PASSIVE_RESET},
        {SST_M_UP_BAD_RESPONSE, SST_PASSIVE_RESET},
        /* issue 15: silence and cut responses count */
        {SST_M_UP_TIMEOUT, SST_PASSIVE_TIMEOUT},
        {SST_M_UP_TRY_TIMEOUT, SST_PASSIVE_TIMEOUT},
        {SST_M_UP_ABORTED, SST_PASSIVE_ABORTED},
        /* says nothing about the backend's health */
        {SST_M_UP_FAILS, SST_PASSIVE_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(sst__passive_of_failure(cases[i].kind), cases[i].sig);
}

static void test_response_statuses(void **state)
{
    static const struct {
        unsigned status;
        bool passive_5xx, was_bad, complete, report;
        sst_passive_t sig;
    } cases[] = {
        /* the head: a counted 5xx, nothing else */
        {200, false, false, false, false, SST_PASSIVE_OK}, /* the common path sends nothing */
        {200, true, false, false, false, SST_PASSIVE_OK},
        {200, false, true, false, false, SST_PASSIVE_OK}, /* the OK waits for the end */
        {404, true, true, false, false, SST_PASSIVE_OK},
        {500, true, false, false, true, SST_PASSIVE_5XX},
        {503, true, true, false, true, SST_PASSIVE_5XX},
        {503, false, false, false, false, SST_PASSIVE_OK}, /* not counted without passive_5xx */
        {503, false, true, false, false, SST_PASSIVE_OK},
        {499, true, false, false, false, SST_PASSIVE_OK},
        /* the end: the first good answer after a failure */
        {200, false, false, true, false, SST_PASSIVE_OK},
        {200, false, true, true, true, SST_PASSIVE_OK},
        {404, true, true, true, true, SST_PASSIVE_OK},
        {503, false, true, true, true, SST_PASSIVE_OK}, /* a 5xx that is not counted is an OK */
        {503, true, true, true, false, SST_PASSIVE_OK}, /* a counted one was reported already */
        {500, true, false, true, false, SST_PASSIVE_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sst_passive_t sig = (sst_passive_t)99;
        bool r = sst__passive_of_response(cases[i].status, cases[i].passive_5xx, cases[i].was_bad,
                                          cases[i].complete, &sig);
        if (r != cases[i].report || (r && sig != cases[i].sig))
            fail_msg("case %zu: status %u: report %d sig %d", i, cases[i].status, r, (int)sig);
    }
}

static int n_notified;

static void on_async(uv_async_t *a)
{
    n_notified++;
}

static void test_ring(void **state)
{
    static const char yaml[] = "listen: [127.0.0.1:0]\n"
                               "regions:\n"
                               "  - {name: a, url: http://a.example, backends: [127.0.0.1:1,"
                               " 127.0.0.1:2], health: {passive_5xx: true}}\n";
    sst_config_t *cfg = NULL;
    sst_diag_t diag;
    uv_loop_t loop;
    uv_async_t async;
    sst_passive_ring_t *r = calloc(1, sizeof(*r));
    sst_passive_msg_t m;
    memset(&diag, 0, sizeof(diag));
    assert_non_null(r);
    assert_int_equal(sst_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &diag), 0);
    cfg->version = 7;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_async_init(&loop, &async, on_async), 0);
    sst__passive_init(r, &async);

    sst__passive_response(r, cfg, 0, 200, true); /* nothing: no failure before */
    assert_false(sst__passive_pop(r, &m));
    sst__passive_failure(r, cfg, 1, SST_M_UP_REFUSED);
    sst__passive_failure(r, cfg, 1, SST_M_UP_FAILS);   /* not a signal */
    sst__passive_response(r, cfg, 1, 200, false);      /* a head: the OK waits for the end */
    sst__passive_failure(r, cfg, 1, SST_M_UP_ABORTED); /* cut mid-body */
    sst__passive_response(r, cfg, 1, 200, false);
    sst__passive_response(r, cfg, 1, 200, true); /* the good answer after it, complete */
    sst__passive_response(r, cfg, 1, 200, true); /* and then nothing again */
    sst__passive_response(r, cfg, 0, 502, false);
    assert_true(sst__passive_pop(r, &m));
    assert_int_equal(m.backend, 1);
    assert_int_equal(m.signal, SST_PASSIVE_REFUSED);
    assert_int_equal(m.config_version, 7);
    assert_true(sst__passive_pop(r, &m));
    assert_int_equal(m.signal, SST_PASSIVE_ABORTED);
    assert_true(sst__passive_pop(r, &m));
    assert_int_equal(m.signal, SST_PASSIVE_OK);
    assert_true(sst__passive_pop(r, &m));
    assert_int_equal(m.backend, 0);
    assert_int_equal(m.signal, SST_PASSIVE_5XX);
    assert_false(sst__passive_pop(r, &m));

    /* a new config: the failure reported under the old one is forgotten */
    sst__passive_failure(r, cfg, 0, SST_M_UP_RESET);
    assert_true(sst__passive_pop(r, &m));
    sst__passive_forget(r);
    sst__passive_response(r, cfg, 0, 200, true);
    assert_false(sst__passive_pop(r, &m));

    /* full: the excess is counted, never overwrites */
    for (int i = 0; i < SST_PASSIVE_RING + 5; i++)
        sst__passive_failure(r, cfg, 1, SST_M_UP_RESET);
    assert_int_equal(atomic_load(&r->dropped), 5);
    int n = 0;
    while (sst__passive_pop(r, &m))
        n++;
    assert_int_equal(n, SST_PASSIVE_RING);

    uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(n_notified >= 1); /* the control thread is woken */
    uv_close((uv_handle_t *)&async, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    sst_config_unref(cfg);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failure_kinds),
        cmocka_unit_test(test_response_statuses),
        cmocka_unit_test(test_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
