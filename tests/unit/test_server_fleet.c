/* The pure parts of fleet mode's server side (core/server_fleet.c): routing a snapshot by the
 * quorum, this instance's own view, and region masks carried across a reload. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/server_fleet.h"
#include "sidestep/error.h"

/* a: two backends, min_healthy 2; b: one backend; c: one backend */
static const char yaml[] = "listen: [127.0.0.1:0]\n"
                           "regions:\n"
                           "  - {name: a, backends: [127.0.0.1:9001, 127.0.0.1:9002],"
                           " min_healthy: 2}\n"
                           "  - {name: b, url: http://b.example, backends: [127.0.0.1:9003]}\n"
                           "  - {name: c, url: http://c.example, backends: [127.0.0.1:9004]}\n"
                           "routes:\n"
                           "  - {name: web, primary: a, failover: [b, c]}\n";

static sst_config_t *load(const char *text)
{
    sst_config_t *cfg = NULL;
    sst_diag_t d;
    if (sst_config_load_string("t.yaml", text, strlen(text), &cfg, &d) != 0)
        fail_msg("config: %s:%u: %s: %s", d.file, d.line, d.key, d.msg);
    return cfg;
}

/* ---- routing by the quorum ---------------------------------------------------------------- */

typedef struct snap_region_s {
    uint8_t state, force;
    uint32_t n_up;
    uint64_t hold;
} snap_region_t;

static const struct route_case {
    const char *name;
    snap_region_t in;         /* region a */
    uint8_t backend_state[2]; /* a's backends */
    uint8_t backend_force[2]; /* a's backends */
    uint32_t down, decided;   /* bit 0: region a */
    uint8_t want_state;       /* region a after */
    uint32_t want_n_up;       /* ... */
    uint64_t want_hold;       /* ... */
    uint8_t want_backend_state[2];
} route_cases[] = {
    {"not decided: untouched",
     {SST_DOWN, SST_FORCE_NONE, 0, 0},
     {SST_DOWN, SST_DOWN},
     {0, 0},
     0,
     0,
     SST_DOWN,
     0,
     0,
     {SST_DOWN, SST_DOWN}},
    {"fleet DOWN over a local UP",
     {SST_UP, SST_FORCE_NONE, 2, 5000},
     {SST_UP, SST_UP},
     {0, 0},
     1,
     1,
     SST_DOWN,
     2,
     0,
     {SST_UP, SST_UP}},
    {"fleet UP over a local DOWN with no backend up: configured weights",
     {SST_DOWN, SST_FORCE_NONE, 0, 0},
     {SST_DOWN, SST_DOWN},
     {0, 0},
     0,
     1,
     SST_UP,
     2,
     0,
     {SST_UP, SST_UP}},
    {"fleet UP with one backend up here: that one only",
     {SST_DOWN, SST_FORCE_NONE, 1, 0},
     {SST_UP, SST_DOWN},
     {0, 0},
     0,
     1,
     SST_UP,
     1,
     0,
     {SST_UP, SST_DOWN}},
    {"fleet UP: a backend forced down stays down",
     {SST_DOWN, SST_FORCE_NONE, 0, 0},
     {SST_DOWN, SST_DOWN},
     {SST_FORCE_DOWN, 0},
     0,
     1,
     SST_UP,
     1,
     0,
     {SST_DOWN, SST_UP}},
    {"a force-down wins over the fleet's UP",
     {SST_DOWN, SST_FORCE_DOWN, 2, 0},
     {SST_UP, SST_UP},
     {0, 0},
     0,
     1,
     SST_DOWN,
     2,
     0,
     {SST_UP, SST_UP}},
    {"a force-up wins over the fleet's DOWN",
     {SST_UP, SST_FORCE_UP, 0, 0},
     {SST_DOWN, SST_DOWN},
     {0, 0},
     1,
     1,
     SST_UP,
     0,
     0,
     {SST_DOWN, SST_DOWN}},
    {"agreement: UP stays UP with its hold",
     {SST_UP, SST_FORCE_NONE, 2, 7000},
     {SST_UP, SST_UP},
     {0, 0},
     0,
     1,
     SST_UP,
     2,
     7000,
     {SST_UP, SST_UP}},
};

static void test_route_apply(void **state)
{
    (void)state;
    sst_config_t *cfg = load(yaml);
    sst_hsnap_t *snap = calloc(1, sizeof(*snap));
    assert_non_null(snap);
    for (size_t i = 0; i < sizeof(route_cases) / sizeof(route_cases[0]); i++) {
        const struct route_case *c = &route_cases[i];
        memset(snap, 0, sizeof(*snap));
        snap->n_regions = cfg->n_regions;
        snap->n_backends = cfg->n_backends;
        snap->regions[0].state = c->in.state;
        snap->regions[0].force = c->in.force;
        snap->regions[0].n_up = c->in.n_up;
        snap->regions[0].hold_until_ms = c->in.hold;
        for (int b = 0; b < 2; b++) {
            snap->backends[b].state = c->backend_state[b];
            snap->backends[b].force = c->backend_force[b];
            snap->backends[b].slow_start_end_ms = 99;
        }
        /* region b is untouched by every case: not decided, or decided the way it is */
        snap->regions[1].state = SST_UP;
        snap->backends[2].state = SST_DOWN;
        sst__fleet_route_apply(cfg, snap, c->down, c->decided);
        if (snap->regions[0].state != c->want_state || snap->regions[0].n_up != c->want_n_up ||
            snap->regions[0].hold_until_ms != c->want_hold)
            fail_msg("%s: state %u n_up %u hold %llu", c->name, snap->regions[0].state,
                     snap->regions[0].n_up, (unsigned long long)snap->regions[0].hold_until_ms);
        for (int b = 0; b < 2; b++)
            if (snap->backends[b].state != c->want_backend_state[b])
                fail_msg("%s: backend %d state %u", c->name, b, snap->backends[b].state);
        assert_int_equal(snap->regions[1].state, SST_UP);
        assert_int_equal(snap->backends[2].state, SST_DOWN);
    }
    /* a backend marked UP for the fleet runs at its full weight, not a slow start */
    memset(snap, 0, sizeof(*snap));
    snap->n_regions = cfg->n_regions;
    snap->n_backends = cfg->n_backends;
    snap->backends[0].slow_start_end_ms = 99;
    sst__fleet_route_apply(cfg, snap, 0, 1);
    assert_int_equal(snap->backends[0].slow_start_end_ms, 0);
    free(snap);
    sst_config_unref(cfg);
}

/* ---- the own view ------------------------------------------------------------------------- */

static void no_event(const sst_health_event_t *ev, void *opaque)
{
    (void)ev;
    (void)opaque;
}

static void probe(sst_health_t *h, size_t b, bool ok, sst_reason_t why, uint16_t status,
                  uint64_t *now)
{
    sst_probe_result_t r = {.ok = ok, .reason = why, .status = status};
    for (int i = 0; i < 3; i++)
        sst_health_probe_result(h, b, &r, (*now += 100));
}

static const sst_fleet_region_view_t *region(const sst_fleet_view_t *v, const char *name)
{
    for (size_t i = 0; i < v->n_regions; i++)
        if (strcmp(v->regions[i].name, name) == 0)
            return &v->regions[i];
    fail_msg("no region %s in the view", name);
    return NULL;
}

static void test_own_view(void **state)
{
    (void)state;
    sst_config_t *cfg = load(yaml);
    sst_health_t *h = NULL;
    sst_fleet_view_t v;
    uint64_t now = 1000;
    bool changed;
    assert_int_equal(sst_health_create(cfg, NULL, now, no_event, NULL, &h), 0);

    /* at start: the primary is assumed UP, the others DOWN until their first probe */
    sst__fleet_own_view(cfg, h, &v);
    assert_int_equal(v.n_regions, 3);
    assert_false(region(&v, "a")->down);
    assert_true(region(&v, "b")->down);
    assert_string_equal(region(&v, "b")->reason, "INIT");

    probe(h, 2, true, SST_REASON_L7OK, 200, &now);
    probe(h, 3, true, SST_REASON_L7OK, 200, &now);
    probe(h, 1, false, SST_REASON_L7STS, 503, &now);
    sst__fleet_own_view(cfg, h, &v);
    assert_false(region(&v, "b")->down);
    assert_string_equal(region(&v, "b")->reason, "");
    /* a needs both backends: one failing its checks takes it DOWN, with that backend's why */
    assert_true(region(&v, "a")->down);
    assert_string_equal(region(&v, "a")->reason, "L7STS");

    /* operator forces and drains are not the own view: they apply on top, everywhere */
    assert_int_equal(sst_health_admin_backend(h, 1, SST_ADMIN_FORCE_UP, "op", 0, now, &changed), 0);
    assert_int_equal(sst_health_admin_region(h, 1, SST_ADMIN_FORCE_DOWN, "op", 0, now, &changed),
                     0);
    assert_int_equal(sst_health_admin_region(h, 2, SST_ADMIN_DRAIN, "op", 0, now, &changed), 0);
    sst__fleet_own_view(cfg, h, &v);
    assert_true(region(&v, "a")->down);
    assert_false(region(&v, "b")->down);
    assert_false(region(&v, "c")->down);

    /* and the view encodes as a fleet value */
    char buf[4096], err[160];
    size_t len;
    assert_int_equal(sst_fleet_view_encode(&v, buf, sizeof(buf), &len, err, sizeof(err)), 0);
    sst_health_destroy(h);
    sst_config_unref(cfg);
}

/* ---- masks across a reload ---------------------------------------------------------------- */

static void test_remap_mask(void **state)
{
    (void)state;
    sst_config_t *from = load(yaml);
    sst_config_t *to = load("listen: [127.0.0.1:0]\n"
                            "regions:\n"
                            "  - {name: c, url: http://c.example, backends: [127.0.0.1:9004]}\n"
                            "  - {name: a, backends: [127.0.0.1:9001]}\n"
                            "  - {name: d, url: http://d.example, backends: [127.0.0.1:9005]}\n"
                            "routes:\n"
                            "  - {name: web, primary: a, failover: [c]}\n");
    static const struct {
        uint32_t mask, want, want_known;
    } cases[] = {
        {0x0, 0x0, 0x3}, /* c and a known, d new */
        {0x1, 0x2, 0x3}, /* a: 0 -> 1 */
        {0x4, 0x1, 0x3}, /* c: 2 -> 0 */
        {0x2, 0x0, 0x3}, /* b is gone */
        {0x7, 0x3, 0x3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t known = 0;
        uint32_t got = sst__fleet_remap_mask(from, cases[i].mask, to, &known);
        if (got != cases[i].want || known != cases[i].want_known)
            fail_msg("mask %#x: got %#x known %#x", cases[i].mask, got, known);
    }
    uint32_t known = 0;
    assert_int_equal(sst__fleet_remap_mask(from, 0x5, from, &known), 0x5);
    assert_int_equal(known, 0x7);
    sst_config_unref(from);
    sst_config_unref(to);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_apply),
        cmocka_unit_test(test_own_view),
        cmocka_unit_test(test_remap_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
