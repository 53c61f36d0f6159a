/* pool.c with fake upstream connections (the test includes pool.c and provides the five
 * functions it asks upstream.c): most recent first, the idle bound, the connection limit, the
 * peek before a non-idempotent reuse, retiring pools across reloads, draining at stop, and
 * the gauges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "core/pool.c"

/* ---- fake upstream connections ----------------------------------------------------------- */

struct sst_upstream_s {
    sst_link_t link;
    sst_pool_t *pool;
    uint64_t idle_since;
    bool idle;   /* in its pool, as far as the fake knows */
    bool alive;  /* what the peek answers */
    bool peeked; /* the pool asked */
    bool closed;
};

sst_link_t *sst__upstream_link(sst_upstream_t *u)
{
    return &u->link;
}

sst_upstream_t *sst__upstream_of_link(sst_link_t *l)
{
    return sst_container_of(l, sst_upstream_t, link);
}

uint64_t sst__upstream_idle_since(const sst_upstream_t *u)
{
    return u->idle_since;
}

bool sst__upstream_alive(sst_upstream_t *u)
{
    u->peeked = true;
    return u->alive;
}

/* As upstream.c does: an idle connection leaves its pool, the pool counts the close. */
void sst__upstream_close(sst_upstream_t *u)
{
    assert_false(u->closed);
    if (u->idle)
        sst__pool_forget(u->pool, u);
    u->idle = false;
    u->closed = true;
    sst__pool_closed(u->pool);
}

/* ---- fixture ----------------------------------------------------------------------------- */

typedef struct fixture_s {
    sst_wmetrics_t *m;
    sst_pools_t ps;
    sst_config_t *cfg;
    sst_prep_t *prep;
    sst_view_t view;
} fixture_t;

static sst_config_t *load(const char *yaml)
{
    sst_config_t *cfg = NULL;
    sst_diag_t diag;
    memset(&diag, 0, sizeof(diag));
    assert_int_equal(sst_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &diag), 0);
    return cfg;
}

static const char yaml1[] = "listen: [127.0.0.1:0]\n"
                            "regions:\n"
                            "  - {name: a, url: http://a.example,"
                            " backends: [127.0.0.1:1, 127.0.0.1:2], health: {enabled: false}}\n"
                            "  - {name: b, url: http://b.example,"
                            " backends: [127.0.0.1:4], health: {enabled: false}}\n";
/* After a reload: 127.0.0.1:2 is gone, 127.0.0.1:3 is new. */
static const char yaml2[] = "listen: [127.0.0.1:0]\n"
                            "regions:\n"
                            "  - {name: a, url: http://a.example,"
                            " backends: [127.0.0.1:3, 127.0.0.1:1], health: {enabled: false}}\n";

static sst_prep_t *prep_for(const sst_config_t *cfg, uint16_t first_mid)
{
    sst_prep_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    for (size_t b = 0; b < cfg->n_backends; b++)
        p->backend_mid[b] = (uint16_t)(first_mid + b);
    return p;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->m = calloc(1, sizeof(*f->m));
    assert_non_null(f->m);
    f->cfg = load(yaml1);
    f->prep = prep_for(f->cfg, 10);
    f->view.cfg = f->cfg;
    f->view.prep = f->prep;
    sst__pools_init(&f->ps, f->m);
    sst__pools_update(&f->ps, f->cfg, f->prep);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    sst__pools_free(&f->ps);
    sst_config_unref(f->cfg);
    free(f->prep);
    free(f->m);
    free(f);
    return 0;
}

static uint64_t gauge(const sst_counter_t *c)
{
    return sst_counter_get(c);
}

/* A connection opened to p and now back from an exchange, idle since `at`. */
static bool put(sst_pool_t *p, sst_upstream_t *u, uint64_t at, size_t max_idle)
{
    u->pool = p;
    u->idle_since = at;
    u->alive = true;
    bool kept = sst__pool_put(p, u, max_idle);
    u->idle = kept;
    return kept;
}

static sst_upstream_t *opened(sst_pool_t *p)
{
    sst_upstream_t *u = calloc(1, sizeof(*u));
    assert_non_null(u);
    sst_list_init(&u->link);
    u->pool = p;
    sst__pool_opened(p);
    return u;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_pools_by_backend(void **state)
{
    fixture_t *f = *state;
    sst_pool_t *p0 = sst__pool_for(&f->ps, &f->view, 0);
    sst_pool_t *p1 = sst__pool_for(&f->ps, &f->view, 1);
    sst_pool_t *p2 = sst__pool_for(&f->ps, &f->view, 2);
    assert_non_null(p0);
    assert_ptr_not_equal(p0, p1);
    assert_ptr_not_equal(p1, p2);
    assert_ptr_equal(sst__pool_for(&f->ps, &f->view, 1), p1); /* the same one every time */
    assert_int_equal(sst__pool_metric_id(p1), 11);
    const struct sockaddr_in *sa = (const struct sockaddr_in *)sst__pool_addr(p1);
    assert_int_equal(ntohs(sa->sin_port), 2);
}

static void test_most_recent_first_and_bound(void **state)
{
    fixture_t *f = *state;
    sst_pool_t *p = sst__pool_for(&f->ps, &f->view, 1);
    sst_upstream_t *u[4];
    for (int i = 0; i < 4; i++)
        u[i] = opened(p);
    assert_int_equal(gauge(&f->m->up_active[11]), 4);
    assert_int_equal(gauge(&f->m->up_connects[11]), 4);
    /* at most 3 idle: the fourth is refused and stays the caller's */
    assert_true(put(p, u[0], 100, 3));
    assert_true(put(p, u[1], 200, 3));
    assert_true(put(p, u[2], 300, 3));
    assert_false(put(p, u[3], 400, 3));
    assert_int_equal(gauge(&f->m->up_idle[11]), 3);
    /* most recently used first */
    assert_ptr_equal(sst__pool_take(p, false, 500), u[2]);
    assert_ptr_equal(sst__pool_take(p, false, 500), u[1]);
    assert_int_equal(gauge(&f->m->up_reuses[11]), 2);
    assert_int_equal(gauge(&f->m->up_idle[11]), 1);
    for (int i = 0; i < 4; i++) {
        u[i]->idle = u[i] == u[0];
        sst__upstream_close(u[i]);
        free(u[i]);
    }
    assert_null(sst__pool_take(p, false, 500));
    assert_int_equal(gauge(&f->m->up_active[11]), 0);
    assert_int_equal(gauge(&f->m->up_idle[11]), 0);
}

static void test_connection_limit(void **state)
{
    fixture_t *f = *state;
    sst_pool_t *p = sst__pool_for(&f->ps, &f->view, 0);
    sst_upstream_t *a = opened(p), *b = opened(p);
    assert_false(sst__pool_full(p, 3));
    assert_true(sst__pool_full(p, 2));
    sst__upstream_close(a);
    assert_false(sst__pool_full(p, 2));
    sst__upstream_close(b);
    free(a);
    free(b);
}

/* A non-idempotent request peeks a connection idle for a second or more; a dead one is closed
 * and the next one tried. Within the second, or for idempotent requests, no peek. */
static void test_peek_before_reuse(void **state)
{
    fixture_t *f = *state;
    sst_pool_t *p = sst__pool_for(&f->ps, &f->view, 1);
    sst_upstream_t *old = opened(p), *dead = opened(p), *fresh = opened(p);
    put(p, old, 1000, 10);
    put(p, dead, 1500, 10);
    dead->alive = false;
    /* idempotent: no peek, the most recent is taken even though it is dead */
    assert_ptr_equal(sst__pool_take(p, false, 5000), dead);
    assert_false(dead->peeked);
    put(p, dead, 1500, 10);
    dead->alive = false;
    put(p, fresh, 4500, 10);
    /* non-idempotent at 5000: fresh (idle 0.5 s) is not peeked */
    assert_ptr_equal(sst__pool_take(p, true, 5000), fresh);
    assert_false(fresh->peeked);
    /* then dead (idle 3.5 s) is peeked and closed, old (alive) is peeked and taken */
    assert_ptr_equal(sst__pool_take(p, true, 5000), old);
    assert_true(dead->peeked && dead->closed);
    assert_true(old->peeked);
    sst__upstream_close(old);
    sst__upstream_close(fresh);
    free(old);
    free(dead);
    free(fresh);
}

/* A reload: the pool of a kept address stays warm, a removed address's pool retires (idle
 * connections close now, busy ones are refused when they come back), and a request still on
 * the old config borrows pools by address. */
static void test_reload_retires(void **state)
{
    fixture_t *f = *state;
    sst_pool_t *kept = sst__pool_for(&f->ps, &f->view, 0); /* 127.0.0.1:1 */
    sst_pool_t *gone = sst__pool_for(&f->ps, &f->view, 1); /* 127.0.0.1:2 */
    sst_upstream_t *k = opened(kept), *g_idle = opened(gone), *g_busy = opened(gone);
    put(kept, k, 10, 10);
    put(gone, g_idle, 10, 10);

    sst_config_t *cfg2 = load(yaml2);
    sst_prep_t *prep2 = prep_for(cfg2, 20);
    sst_view_t view2 = {.cfg = cfg2, .prep = prep2};
    sst__pools_update(&f->ps, cfg2, prep2);
    assert_true(g_idle->closed);
    assert_false(k->closed);
    assert_ptr_equal(sst__pool_for(&f->ps, &view2, 1), kept);
    assert_int_equal(sst__pool_metric_id(kept), 21); /* the new config's series */
    assert_ptr_equal(sst__pool_take(kept, false, 20), k);
    /* the busy connection of the removed backend comes back: refused */
    assert_false(put(gone, g_busy, 30, 10));
    /* a request on the old config finds the retired pool by address */
    assert_ptr_equal(sst__pool_for(&f->ps, &f->view, 1), gone);
    sst__upstream_close(g_busy);
    sst__upstream_close(k);
    /* a reload with the retired pool empty frees it */
    sst__pools_update(&f->ps, cfg2, prep2);
    size_t n = 0;
    for (sst_link_t *l = f->ps.all.next; l != &f->ps.all; l = l->next)
        n++;
    /* 127.0.0.1:1 and :3; :4 went at the first reload (no connection), :2 at this one */
    assert_int_equal(n, 2);
    free(k);
    free(g_idle);
    free(g_busy);
    sst_config_unref(cfg2);
    free(prep2);
}

static void test_close_all_drains(void **state)
{
    fixture_t *f = *state;
    sst_pool_t *p = sst__pool_for(&f->ps, &f->view, 0);
    sst_upstream_t *a = opened(p), *b = opened(p);
    put(p, a, 10, 10);
    sst__pools_close_all(&f->ps);
    assert_true(a->closed);
    /* stopping: nothing goes back to a pool */
    assert_false(put(p, b, 20, 10));
    sst__upstream_close(b);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pools_by_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_most_recent_first_and_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peek_before_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_retires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_all_drains, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
