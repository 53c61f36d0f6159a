/* fleet_store.c: PUT and DELETE of every key kind (good, bad and foreign keys), the override
 * table for a config with local expiry and the next expiry, members from heartbeats and views,
 * quorum peers, the size bounds, and table equality. Table-driven where it has cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fleet/fleet_store.h"
#include "sidestep/error.h"

#define P "/sidestep/edge/"

static const char yaml[] = "listen: [127.0.0.1:0]\n"
                           "regions:\n"
                           "  - {name: a, backends: [127.0.0.1:9001, 127.0.0.1:9002]}\n"
                           "  - {name: b, url: http://b.example, backends: [127.0.0.1:9003]}\n"
                           "routes: [{primary: a, failover: [b]}]\n";

static sst_config_t *cfg_load(void)
{
    sst_config_t *cfg = NULL;
    sst_diag_t d;
    assert_int_equal(sst_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &d), 0);
    return cfg;
}

static int setup(void **state)
{
    sst_fleet_store_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    assert_int_equal(sst_fleet_store_init(s, "edge"), 0);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    sst_fleet_store_clear(*state);
    free(*state);
    return 0;
}

static int put(sst_fleet_store_t *s, const char *key, const char *value, int64_t rev,
               unsigned *changed)
{
    char err[256];
    return sst_fleet_store_put(s, sst_str_c(key), sst_str_c(value), rev, 0, changed, err,
                               sizeof(err));
}

#define OVR(state, extra)                                                                          \
    "{\"state\":\"" state "\",\"reason\":\"r\",\"by\":{\"instance\":\"lb-1\"},"                    \
    "\"created_at\":1000" extra "}"
#define HB(name)                                                                                   \
    "{\"instance\":\"" name "\",\"admin\":\"10.0.0.1:9901\",\"version\":\"1\","                    \
    "\"config_version\":1,\"config_hash\":\"ab\",\"started_at\":1,\"seen_at\":2,"                  \
    "\"applied_revision\":3}"

/* One key at a time: what is kept, what changes, what is refused. */
static void test_put_delete(void **state)
{
    static const struct {
        const char *key, *value; /* value NULL: DELETE */
        int rc;
        unsigned changed;
        size_t n_ovr, n_members;
    } steps[] = {
        {P "overrides/region/a/force", OVR("down", ""), 0, SST_FLEET_CHG_OVERRIDES, 1, 0},
        {P "overrides/region/a/force", OVR("up", ""), 0, SST_FLEET_CHG_OVERRIDES, 1, 0},
        {P "overrides/region/a/drain", OVR("drain", ""), 0, SST_FLEET_CHG_OVERRIDES, 2, 0},
        {P "overrides/backend/127.0.0.1:9001/force", OVR("down", ""), 0, SST_FLEET_CHG_OVERRIDES, 3,
         0},
        /* a drain state in a force key: the key is now unknown, and dropped */
        {P "overrides/region/a/force", OVR("drain", ""), SST_EINVAL, SST_FLEET_CHG_OVERRIDES, 2, 0},
        {P "overrides/region/a/force", "not json", SST_EINVAL, 0, 2, 0},
        {P "overrides/region/zz/force", OVR("down", ""), 0, SST_FLEET_CHG_OVERRIDES, 3, 0},
        {P "overrides/region/zz/force", NULL, 0, SST_FLEET_CHG_OVERRIDES, 2, 0},
        {P "overrides/region/zz/force", NULL, 0, 0, 2, 0}, /* deleting twice: nothing */
        {"/sidestep/other/overrides/region/a/force", OVR("down", ""), SST_EINVAL, 0, 2, 0},
        {P "overrides/region/a/stop", OVR("down", ""), SST_EINVAL, 0, 2, 0},
        {P "elsewhere", NULL, SST_EINVAL, 0, 2, 0},
        {P "instances/lb-1", HB("lb-1"), 0, SST_FLEET_CHG_MEMBERS, 2, 1},
        {P "instances/lb-2", HB("lb-1"), SST_EINVAL, SST_FLEET_CHG_MEMBERS, 2, 1}, /* wrong name */
        {P "views/lb-2", "{\"at\":5,\"regions\":{\"a\":{\"state\":\"down\"}}}", 0,
         SST_FLEET_CHG_MEMBERS, 2, 2},
        {P "instances/lb-2", HB("lb-2"), 0, SST_FLEET_CHG_MEMBERS, 2, 2},
        {P "instances/lb-2", NULL, 0, SST_FLEET_CHG_MEMBERS, 2, 2}, /* the view remains */
        {P "views/lb-2", "{\"at\":5,\"regions\":[]}", SST_EINVAL, SST_FLEET_CHG_MEMBERS, 2, 1},
        {P "instances/lb-1", NULL, 0, SST_FLEET_CHG_MEMBERS, 2, 0},
        {P "overrides/region/a/drain", NULL, 0, SST_FLEET_CHG_OVERRIDES, 1, 0},
    };
    sst_fleet_store_t *s = *state;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        unsigned changed = 0;
        int rc = steps[i].value ? put(s, steps[i].key, steps[i].value, (int64_t)i + 1, &changed)
                                : sst_fleet_store_delete(s, sst_str_c(steps[i].key), &changed);
        if (rc != steps[i].rc || changed != steps[i].changed || s->n_ovr != steps[i].n_ovr ||
            s->n_members != steps[i].n_members)
            fail_msg("step %zu (%s): rc %d changed %u n_ovr %zu n_members %zu", i, steps[i].key, rc,
                     changed, s->n_ovr, s->n_members);
    }
    const sst_fleet_ovr_key_t *k = &s->ovr[0];
    assert_int_equal(k->kind, SST_FLEET_KEY_BACKEND_FORCE);
    assert_string_equal(k->name, "127.0.0.1:9001");
    assert_int_equal(k->mod_revision, 4);
}

/* The table for a config: expired overrides are not in force, keys the config lacks are
 * skipped, and the next expiry is the earliest still ahead. */
static void test_overrides_table(void **state)
{
    sst_fleet_store_t *s = *state;
    sst_config_t *cfg = cfg_load();
    sst_fleet_overrides_t *t = calloc(2, sizeof(*t));
    uint64_t next;
    unsigned changed = 0;
    assert_non_null(t);
    assert_int_equal(put(s, P "overrides/region/a/force",
                         OVR("down", ",\"expires_at\":5000,\"ttl_ms\":4000"), 1, &changed),
                     0);
    assert_int_equal(put(s, P "overrides/region/b/drain",
                         OVR("drain", ",\"expires_at\":3000,\"ttl_ms\":2000"), 2, &changed),
                     0);
    assert_int_equal(put(s, P "overrides/backend/127.0.0.1:9003/force", OVR("up", ""), 3, &changed),
                     0);
    assert_int_equal(put(s, P "overrides/backend/10.9.9.9:1/force", OVR("down", ""), 4, &changed),
                     0);
    assert_int_equal(put(s, P "overrides/region/other/force", OVR("down", ""), 5, &changed), 0);

    sst_fleet_store_overrides(s, cfg, 2000, &t[0], &next);
    assert_true(t[0].region_force[0].set);
    assert_int_equal(t[0].region_force[0].ovr.state, SST_FLEET_DOWN);
    assert_true(t[0].region_drain[1].set);
    assert_false(t[0].region_force[1].set);
    assert_true(t[0].backend_force[2].set);
    assert_int_equal(t[0].backend_force[2].ovr.state, SST_FLEET_UP);
    assert_false(t[0].backend_force[0].set);
    assert_int_equal(next, 3000);

    sst_fleet_store_overrides(s, cfg, 3000, &t[1], &next); /* the drain expired: exactly at */
    assert_false(t[1].region_drain[1].set);
    assert_true(t[1].region_force[0].set);
    assert_int_equal(next, 5000);
    assert_false(sst_fleet_overrides_equal(cfg, &t[0], &t[1]));
    sst_fleet_store_overrides(s, cfg, 4999, &t[0], &next);
    assert_true(sst_fleet_overrides_equal(cfg, &t[0], &t[1]));
    sst_fleet_store_overrides(s, cfg, 5000, &t[1], &next);
    assert_false(t[1].region_force[0].set);
    assert_int_equal(next, UINT64_MAX);
    assert_true(t[1].backend_force[2].set);

    /* a fresh read replaces everything: keys deleted meanwhile are gone */
    sst_fleet_store_t fresh;
    assert_int_equal(sst_fleet_store_init(&fresh, "edge"), 0);
    assert_int_equal(put(&fresh, P "overrides/region/b/force", OVR("down", ""), 9, &changed), 0);
    sst_fleet_store_swap(s, &fresh);
    sst_fleet_store_clear(&fresh);
    sst_fleet_store_overrides(s, cfg, 0, &t[0], NULL);
    assert_false(t[0].region_force[0].set);
    assert_true(t[0].region_force[1].set);
    assert_false(t[0].backend_force[2].set);
    free(t);
    sst_config_unref(cfg);
}

/* Members and their quorum peers: live from the heartbeat, votes from the view. */
static void test_members_and_peers(void **state)
{
    sst_fleet_store_t *s = *state;
    sst_config_t *cfg = cfg_load();
    sst_fleet_peer_t peers[4];
    unsigned changed = 0;
    assert_int_equal(put(s, P "views/lb-3",
                         "{\"at\":1,\"regions\":{\"b\":{\"state\":\"down\"},"
                         "\"x\":{\"state\":\"down\"}}}",
                         1, &changed),
                     0);
    assert_int_equal(put(s, P "instances/lb-1", HB("lb-1"), 2, &changed), 0);
    assert_int_equal(
        put(s, P "views/lb-1",
            "{\"at\":1,\"regions\":{\"a\":{\"state\":\"up\"},\"b\":{\"state\":\"up\"}}}", 3,
            &changed),
        0);
    assert_int_equal(s->n_members, 2);
    assert_string_equal(s->members[0].name, "lb-1"); /* sorted */
    const sst_fleet_member_t *m = sst_fleet_store_member(s, SST_STR_LIT("lb-3"));
    assert_non_null(m);
    assert_false(m->has_heartbeat);
    assert_true(m->has_view);
    assert_null(sst_fleet_store_member(s, SST_STR_LIT("lb-2")));

    size_t n = sst_fleet_store_peers(s, cfg, peers, 4);
    assert_int_equal(n, 2);
    assert_true(sst_str_eq(peers[0].instance, SST_STR_LIT("lb-1")));
    assert_true(peers[0].live);
    assert_int_equal(peers[0].known, 3);
    assert_int_equal(peers[0].down, 0);
    assert_false(peers[1].live);         /* a view without a heartbeat: no vote */
    assert_int_equal(peers[1].known, 2); /* "x" is not in this config */
    assert_int_equal(peers[1].down, 2);
    assert_int_equal(sst_fleet_store_peers(s, cfg, peers, 1), 1);
    sst_config_unref(cfg);
}

/* The bounds hold: keys beyond them are refused, never stored. */
static void test_bounds(void **state)
{
    sst_fleet_store_t *s = *state;
    char key[128], err[256];
    unsigned changed = 0;
    for (int i = 0; i < SST_FLEET_MAX_OVERRIDE_KEYS; i++) {
        snprintf(key, sizeof(key), P "overrides/backend/10.0.%d.%d:80/force", i / 256, i % 256);
        assert_int_equal(put(s, key, OVR("down", ""), i + 1, &changed), 0);
    }
    assert_int_equal(sst_fleet_store_put(s, SST_STR_LIT(P "overrides/region/a/force"),
                                         SST_STR_LIT(OVR("down", "")), 1, 0, &changed, err,
                                         sizeof(err)),
                     SST_E2BIG);
    assert_non_null(strstr(err, "too many override keys"));
    assert_int_equal(s->n_ovr, SST_FLEET_MAX_OVERRIDE_KEYS);
    for (int i = 0; i < SST_FLEET_MAX_MEMBERS; i++) {
        char hb[512], name[16];
        snprintf(name, sizeof(name), "lb-%03d", i);
        snprintf(key, sizeof(key), P "instances/%s", name);
        snprintf(hb, sizeof(hb),
                 "{\"instance\":\"%s\",\"admin\":\"10.0.0.1:9901\",\"version\":\"1\","
                 "\"config_version\":1,\"config_hash\":\"ab\",\"started_at\":1,\"seen_at\":2,"
                 "\"applied_revision\":3}",
                 name);
        assert_int_equal(put(s, key, hb, i + 1, &changed), 0);
    }
    assert_int_equal(put(s, P "instances/zz", HB("zz"), 1, &changed), SST_E2BIG);
    assert_int_equal(s->n_members, SST_FLEET_MAX_MEMBERS);
    /* an existing member still updates */
    assert_int_equal(put(s, P "views/lb-000", "{\"at\":1,\"regions\":{}}", 2, &changed), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overrides_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_members_and_peers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
