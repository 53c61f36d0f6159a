/* The fleet runtime (src/fleet/fleet.c) against a real etcd: several instances on one loop share
 * one etcd, and one of them may reach it through a relay the harness can cut, freeze or hold.
 * Propagation, TTL and local expiry, etcd killed and restarted, a partition healed without a
 * lost event, compaction, the safety rule, racing writes, the quorum, startup, a lost lease.
 * Run by fleet_live.py, which starts etcd and the relay (SST_ETCD_URL, SST_RELAY_URL) and does
 * the "CTL ..." requests this program prints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "fleet/etcd.h"
#include "fleet/fleet.h"
#include "sidestep/error.h"

#define WATCHDOG_MS 30000
#define MAX_INST    5
#define MAX_ACTS    8
#define REGION_A    0
#define REGION_B    1
#define REGION_C    2

static const char *etcd_url, *relay_url;
static unsigned fleet_seq;

typedef struct fx_s fx_t;

typedef struct inst_s {
    fx_t *fx;
    char name[32];
    sst_config_t *cfg;
    sst_fleet_t *f;
    bool running, stopped;
    int n_ovr;
    sst_fleet_overrides_t *table;
    int64_t table_rev;
    uint64_t table_at, table_wall; /* when the overrides hook last ran */
    int n_quorum;
    sst_fleet_quorum_out_t q;
    int ev_count[SST_FLEET_EV_BAD_VALUE + 1];
    char ev_last[SST_FLEET_EV_BAD_VALUE + 1][512];
    int startup_calls;
    sst_fleet_startup_t startup;
    int n_ovr_at_startup;
    bool a_forced_at_startup;
    int64_t skew;
} inst_t;

typedef struct act_s {
    bool started, done;
    int calls;
    sst_fleet_result_t r;
    char route[128];
    uint64_t at;
} act_t;

typedef struct res_s {
    bool done;
    int status;
    int64_t revision, n_kvs;
} res_t;

struct fx_s {
    uv_loop_t loop;
    uv_timer_t watchdog, sleeper;
    bool expired, slept;
    inst_t inst[MAX_INST];
    act_t acts[MAX_ACTS];
    sst_etcd_t *e;
    res_t r;
    char fleet[48];
};

static void on_watchdog(uv_timer_t *t)
{
    ((fx_t *)t->data)->expired = true;
}

#define RUN_UNTIL_MS(fx, cond, ms)                                                                 \
    do {                                                                                           \
        (fx)->expired = false;                                                                     \
        uv_timer_start(&(fx)->watchdog, on_watchdog, (ms), 0);                                     \
        while (!(cond) && !(fx)->expired)                                                          \
            uv_run(&(fx)->loop, UV_RUN_ONCE);                                                      \
        uv_timer_stop(&(fx)->watchdog);                                                            \
        if (!(cond))                                                                               \
            fail_msg("watchdog (%d ms): %s", (int)(ms), #cond);                                    \
    } while (0)
#define RUN_UNTIL(fx, cond) RUN_UNTIL_MS(fx, cond, WATCHDOG_MS)

static void on_slept(uv_timer_t *t)
{
    ((fx_t *)t->data)->slept = true;
}

/* Runs the loop for `ms`. */
static void run_for(fx_t *fx, uint64_t ms)
{
    fx->slept = false;
    uv_timer_start(&fx->sleeper, on_slept, ms, 0);
    while (!fx->slept)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

static uint64_t now_ms(fx_t *fx)
{
    uv_update_time(&fx->loop);
    return uv_now(&fx->loop);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Asks fleet_live.py to act on etcd or the relay and waits for its answer. */
static void ctl(const char *cmd)
{
    char line[256] = "";
    printf("CTL %s\n", cmd);
    fflush(stdout);
    if (fgets(line, sizeof(line), stdin) == NULL || strncmp(line, "OK", 2) != 0)
        fail_msg("the harness did not do \"%s\": %s", cmd, line);
}

static uint16_t dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- hooks -------------------------------------------------------------------------------- */

static void on_overrides(void *arg, const sst_fleet_overrides_t *t, int64_t revision)
{
    inst_t *in = arg;
    assert_false(in->stopped);
    memcpy(in->table, t, sizeof(*t));
    in->table_rev = revision;
    in->table_at = now_ms(in->fx);
    in->table_wall = wall_ms();
    in->n_ovr++;
}

static void on_quorum(void *arg, const sst_fleet_quorum_out_t *q)
{
    inst_t *in = arg;
    assert_false(in->stopped);
    in->q = *q;
    in->n_quorum++;
}

static void on_event(void *arg, sst_fleet_event_t ev, const char *text)
{
    inst_t *in = arg;
    assert_false(in->stopped);
    assert_true((unsigned)ev <= SST_FLEET_EV_BAD_VALUE);
    in->ev_count[ev]++;
    snprintf(in->ev_last[ev], sizeof(in->ev_last[ev]), "%s", text);
    printf("  [%s] %s: %s\n", in->name, sst_fleet_event_name(ev), text);
}

static void on_startup(void *arg, sst_fleet_startup_t s)
{
    inst_t *in = arg;
    assert_false(in->stopped);
    in->startup = s;
    in->startup_calls++;
    in->n_ovr_at_startup = in->n_ovr;
    in->a_forced_at_startup = in->table->region_force[REGION_A].set;
}

static void on_stopped(void *arg)
{
    inst_t *in = arg;
    in->stopped = true;
    in->running = false;
}

/* ---- instances ---------------------------------------------------------------------------- */

typedef struct inst_opts_s {
    const char *endpoint; /* NULL: etcd */
    const char *lease_ttl;
    const char *startup_wait;
    int64_t clock_skew_ms; /* this instance's wall clock runs ahead by this much */
} inst_opts_t;

static uint64_t skewed_clock(void *arg)
{
    return wall_ms() + (uint64_t)(*(int64_t *)arg);
}

static void inst_start(fx_t *fx, int i, const char *name, const inst_opts_t *o)
{
    inst_t *in = &fx->inst[i];
    char yaml[2048], admin[32], diag_text[600];
    sst_diag_t diag;
    assert_false(in->running);
    memset(in, 0, sizeof(*in));
    in->fx = fx;
    snprintf(in->name, sizeof(in->name), "%s", name);
    in->table = calloc(1, sizeof(*in->table));
    assert_non_null(in->table);
    snprintf(yaml, sizeof(yaml),
             "listen: [127.0.0.1:0]\n"
             "admin: {address: 127.0.0.1:0}\n"
             "regions:\n"
             "  - {name: a, backends: [127.0.0.1:9001]}\n"
             "  - {name: b, url: http://b.example, backends: [127.0.0.1:9002]}\n"
             "  - {name: c, url: http://c.example, backends: [127.0.0.1:9003]}\n"
             "routes:\n"
             "  - {name: web, primary: a, failover: [b], match: {host: web.example}}\n"
             "  - {name: api, primary: c}\n"
             "fleet:\n"
             "  name: %s\n"
             "  instance: %s\n"
             "  etcd: {endpoints: [\"%s\"], dial_timeout: 500ms, lease_ttl: %s}\n"
             "  health_quorum: majority\n"
             "  startup_wait: %s\n",
             fx->fleet, name, o && o->endpoint ? o->endpoint : etcd_url,
             o && o->lease_ttl ? o->lease_ttl : "5s",
             o && o->startup_wait ? o->startup_wait : "10s");
    if (sst_config_load_string("fleet.yaml", yaml, strlen(yaml), &in->cfg, &diag) != 0)
        fail_msg("config: %s", sst_diag_format(&diag, diag_text, sizeof(diag_text)));
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", 9901 + i);
    sst_fleet_opts_t opts = {.cfg = in->cfg,
                             .admin = admin,
                             .version = "0.1.0-test",
                             .config_hash = "0123abcd",
                             .seed = (uint64_t)i + 1};
    in->skew = o ? o->clock_skew_ms : 0;
    if (in->skew != 0) {
        opts.wall_ms = skewed_clock;
        opts.clock_arg = &in->skew;
    }
    sst_fleet_hooks_t hooks = {.arg = in,
                               .overrides = on_overrides,
                               .quorum = on_quorum,
                               .event = on_event,
                               .startup = on_startup};
    assert_int_equal(sst_fleet_start(&fx->loop, &opts, &hooks, &in->f), 0);
    in->running = true;
}

static void inst_stop(fx_t *fx, int i)
{
    inst_t *in = &fx->inst[i];
    if (!in->running)
        return;
    sst_fleet_stop(in->f, on_stopped, in);
    RUN_UNTIL(fx, in->stopped);
}

static sst_fleet_status_t inst_status(fx_t *fx, int i)
{
    sst_fleet_status_t s;
    sst_fleet_status(fx->inst[i].f, &s);
    return s;
}

static bool region_state(const inst_t *in, size_t r, sst_fleet_state_t st)
{
    return in->table->region_force[r].set && in->table->region_force[r].ovr.state == st;
}

static bool region_forced_down(const inst_t *in, size_t r)
{
    return region_state(in, r, SST_FLEET_DOWN);
}

static bool region_clear(const inst_t *in, size_t r)
{
    return in->n_ovr > 0 && !in->table->region_force[r].set;
}

static bool all_ready(fx_t *fx, int n)
{
    for (int i = 0; i < n; i++)
        if (fx->inst[i].startup != SST_FLEET_STARTUP_READY)
            return false;
    return true;
}

static bool all_connected(fx_t *fx, int n, bool want)
{
    for (int i = 0; i < n; i++)
        if (inst_status(fx, i).connected != want)
            return false;
    return true;
}

static void start_n(fx_t *fx, int n, int via_relay)
{
    static const char *const names[] = {"lb-1", "lb-2", "lb-3", "lb-4", "lb-5"};
    for (int i = 0; i < n; i++) {
        inst_opts_t o = {.endpoint = i == via_relay ? relay_url : NULL};
        inst_start(fx, i, names[i], &o);
    }
    RUN_UNTIL(fx, all_ready(fx, n));
}

/* Every instance's view: region bits set in `down` are DOWN. */
static void set_view(fx_t *fx, int i, uint32_t down)
{
    static const char *const regions[] = {"a", "b", "c"};
    sst_fleet_view_t v;
    memset(&v, 0, sizeof(v));
    v.n_regions = 3;
    for (size_t r = 0; r < 3; r++) {
        snprintf(v.regions[r].name, sizeof(v.regions[r].name), "%s", regions[r]);
        v.regions[r].down = (down >> r) & 1;
        snprintf(v.regions[r].reason, sizeof(v.regions[r].reason), "%s",
                 v.regions[r].down ? "L7STS" : "L7OK");
    }
    assert_int_equal(sst_fleet_set_view(fx->inst[i].f, &v), 0);
}

/* ---- actions and the test's own etcd client ----------------------------------------------- */

static void on_act(void *arg, const sst_fleet_result_t *r)
{
    act_t *a = arg;
    a->calls++;
    a->done = true;
    a->r = *r;
    snprintf(a->route, sizeof(a->route), "%s", r->route ? r->route : "");
    a->r.route = NULL;
}

static act_t *act_start(fx_t *fx, int slot, int i, sst_fleet_op_t op, bool backend,
                        const char *target, uint64_t ttl_ms, bool override_safety)
{
    act_t *a = &fx->acts[slot];
    memset(a, 0, sizeof(*a));
    sst_fleet_action_t in = {.op = op,
                             .backend = backend,
                             .target = sst_str_c(target),
                             .reason = SST_STR_LIT("fleet test"),
                             .client = SST_STR_LIT("127.0.0.1:5000"),
                             .ttl_ms = ttl_ms,
                             .override_safety = override_safety};
    assert_int_equal(sst_fleet_action(fx->inst[i].f, &in, on_act, a), 0);
    assert_false(a->done); /* never answered inside the call */
    a->started = true;
    return a;
}

static sst_fleet_result_t act(fx_t *fx, int i, sst_fleet_op_t op, bool backend, const char *target,
                              uint64_t ttl_ms, bool override_safety)
{
    act_t *a = act_start(fx, 0, i, op, backend, target, ttl_ms, override_safety);
    RUN_UNTIL(fx, a->done);
    assert_int_equal(a->calls, 1);
    return a->r;
}

static void act_ok(fx_t *fx, int i, sst_fleet_op_t op, const char *target, uint64_t ttl_ms,
                   int64_t *revision)
{
    sst_fleet_result_t r = act(fx, i, op, false, target, ttl_ms, false);
    if (r.status != 0)
        fail_msg("action on %s: %d %s", target, r.http_status, r.message);
    assert_int_equal(r.http_status, 200);
    assert_true(r.revision > 0);
    if (revision != NULL)
        *revision = r.revision;
}

static void on_res(void *arg, int status, const sst_etcd_resp_t *resp)
{
    res_t *r = arg;
    r->done = true;
    r->status = status;
    r->revision = resp->revision;
    r->n_kvs = (int64_t)resp->n_kvs;
}

#define ETCD_CALL(fx, call)                                                                        \
    do {                                                                                           \
        (fx)->r.done = false;                                                                      \
        assert_int_equal((call), 0);                                                               \
        RUN_UNTIL(fx, (fx)->r.done);                                                               \
    } while (0)

static int64_t etcd_revision(fx_t *fx)
{
    sst_etcd_range_t q = {.key = SST_STR_LIT("/sidestep-test-none")};
    ETCD_CALL(fx, sst_etcd_range(fx->e, &q, on_res, &fx->r));
    assert_int_equal(fx->r.status, 0);
    return fx->r.revision;
}

static void etcd_compact(fx_t *fx, int64_t revision)
{
    ETCD_CALL(fx, sst_etcd_compact(fx->e, revision, true, on_res, &fx->r));
    assert_int_equal(fx->r.status, 0);
}

static int64_t etcd_count(fx_t *fx, const char *key)
{
    sst_etcd_range_t q = {.key = sst_str_c(key)};
    ETCD_CALL(fx, sst_etcd_range(fx->e, &q, on_res, &fx->r));
    assert_int_equal(fx->r.status, 0);
    return fx->r.n_kvs;
}

/* ---- fixture ------------------------------------------------------------------------------ */

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    sst_addr_t ep;
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->watchdog);
    uv_timer_init(&fx->loop, &fx->sleeper);
    fx->watchdog.data = fx->sleeper.data = fx;
    ctl("reset"); /* etcd up, the relay passing, whatever an earlier failure left */
    snprintf(fx->fleet, sizeof(fx->fleet), "t%u-%ld", ++fleet_seq, (long)getpid());
    assert_int_equal(sst_etcd_parse_endpoint(etcd_url, strlen(etcd_url), false, &ep), 0);
    sst_etcd_opts_t o = {.endpoints = &ep, .n_endpoints = 1, .dial_timeout_ms = 1000};
    assert_int_equal(sst_etcd_new(&fx->loop, &o, &fx->e), 0);
    *state = fx;
    return 0;
}

static bool etcd_closed;

static void on_etcd_closed(void *arg)
{
    etcd_closed = true;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    /* the harness may have left etcd or the relay down after a failed assertion */
    for (int i = 0; i < MAX_INST; i++)
        if (fx->inst[i].running)
            sst_fleet_stop(fx->inst[i].f, on_stopped, &fx->inst[i]);
    etcd_closed = false;
    sst_etcd_close(fx->e, on_etcd_closed, NULL);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_close((uv_handle_t *)&fx->sleeper, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_true(etcd_closed);
    for (int i = 0; i < MAX_INST; i++) {
        assert_false(fx->inst[i].running);
        sst_config_unref(fx->inst[i].cfg);
        free(fx->inst[i].table);
    }
    for (int i = 0; i < MAX_ACTS; i++)
        if (fx->acts[i].started)
            assert_int_equal(fx->acts[i].calls, 1); /* every action answered exactly once */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static bool all_forced_down(fx_t *fx, int n, size_t r)
{
    for (int i = 0; i < n; i++)
        if (!region_forced_down(&fx->inst[i], r))
            return false;
    return true;
}

static bool all_clear(fx_t *fx, int n, size_t r)
{
    for (int i = 0; i < n; i++)
        if (!region_clear(&fx->inst[i], r))
            return false;
    return true;
}

static bool members_current(fx_t *fx, int i, int n, int64_t revision)
{
    const sst_fleet_member_t *m;
    size_t count = sst_fleet_members(fx->inst[i].f, &m);
    if ((int)count != n)
        return false;
    for (size_t k = 0; k < count; k++)
        if (!m[k].has_heartbeat || !m[k].has_view ||
            (int64_t)m[k].heartbeat.applied_revision < revision)
            return false;
    return true;
}

/* A write through one instance reaches all three within 1 s; heartbeats carry what each has
 * applied; a clear through another reverts all. */
static void test_propagation(void **state)
{
    fx_t *fx = *state;
    int64_t rev, rev2;
    start_n(fx, 3, -1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx->inst[i].startup_calls, 1);
        assert_true(fx->inst[i].n_ovr_at_startup >= 1); /* overrides first, then ready */
        set_view(fx, i, 0);
    }
    uint64_t t0 = now_ms(fx);
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "a", 0, &rev);
    RUN_UNTIL(fx, all_forced_down(fx, 3, REGION_A));
    for (int i = 0; i < 3; i++) {
        inst_t *in = &fx->inst[i];
        const sst_fleet_override_t *o = &in->table->region_force[REGION_A].ovr;
        printf("  %s applied the force-down %llu ms after the request\n", in->name,
               (unsigned long long)(in->table_at - t0));
        assert_true(in->table_at - t0 <= 1000);
        assert_true(in->table_rev >= rev);
        assert_string_equal(o->by_instance, "lb-1");
        assert_string_equal(o->by_client, "127.0.0.1:5000");
        assert_string_equal(o->reason, "fleet test");
        assert_int_equal(o->expires_at, 0);
    }
    /* every instance lists all three, each heartbeat saying it applied the write */
    for (int i = 0; i < 3; i++)
        RUN_UNTIL(fx, members_current(fx, i, 3, rev));
    sst_fleet_status_t s = inst_status(fx, 1);
    assert_true(s.connected);
    assert_true(s.applied_revision >= rev);
    assert_int_equal(s.connects, 1);
    assert_int_equal(s.startup, SST_FLEET_STARTUP_READY);
    json_object *j = sst_fleet_to_json(fx->inst[2].f), *v;
    assert_non_null(j);
    assert_true(json_object_object_get_ex(j, "instances", &v));
    assert_int_equal(json_object_array_length(v), 3);
    assert_true(json_object_object_get_ex(j, "overrides", &v));
    assert_int_equal(json_object_array_length(v), 1);
    assert_true(json_object_object_get_ex(j, "connected", &v));
    assert_true(json_object_get_boolean(v));
    json_object_put(j);

    t0 = now_ms(fx);
    act_ok(fx, 1, SST_FLEET_OP_CLEAR, "a", 0, &rev2);
    assert_true(rev2 > rev);
    RUN_UNTIL(fx, all_clear(fx, 3, REGION_A));
    for (int i = 0; i < 3; i++)
        assert_true(fx->inst[i].table_at - t0 <= 1000);
    /* clearing what is not set is not an error */
    act_ok(fx, 2, SST_FLEET_OP_CLEAR, "a", 0, NULL);
}

/* A TTL action: the key lives on its own lease; every instance reverts at expires_at, within
 * TTL + 2 s of the write, and etcd deletes the key when the lease ends. */
static void test_ttl_expiry(void **state)
{
    fx_t *fx = *state;
    char key[128];
    start_n(fx, 3, -1);
    uint64_t t0 = now_ms(fx), w0 = wall_ms();
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "a", 5000, NULL);
    RUN_UNTIL(fx, all_forced_down(fx, 3, REGION_A));
    uint64_t expires = fx->inst[1].table->region_force[REGION_A].ovr.expires_at;
    assert_true(expires >= w0 + 5000 && expires <= w0 + 6000);
    RUN_UNTIL(fx, all_clear(fx, 3, REGION_A));
    for (int i = 0; i < 3; i++) {
        inst_t *in = &fx->inst[i];
        printf("  %s reverted %llu ms after the request\n", in->name,
               (unsigned long long)(in->table_at - t0));
        assert_true(in->table_wall >= expires);
        assert_true(in->table_at - t0 <= 5000 + 2000);
    }
    snprintf(key, sizeof(key), "/sidestep/%s/overrides/region/a/force", fx->fleet);
    uint64_t give_up = now_ms(fx) + 10000;
    while (etcd_count(fx, key) != 0 && now_ms(fx) < give_up)
        run_for(fx, 200);
    assert_int_equal(etcd_count(fx, key), 0);
}

/* expires_at is wall-clock time shared between machines: an instance whose clock runs 3 s
 * ahead reverts 3 s early (the skew adds to or takes from the TTL; docs/fleet.md). */
static void test_clock_skew(void **state)
{
    fx_t *fx = *state;
    start_n(fx, 1, -1);
    inst_opts_t o = {.clock_skew_ms = 3000};
    inst_start(fx, 1, "lb-ahead", &o);
    RUN_UNTIL(fx, all_ready(fx, 2));
    uint64_t t0 = now_ms(fx);
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "a", 6000, NULL);
    RUN_UNTIL(fx, all_forced_down(fx, 2, REGION_A));
    RUN_UNTIL(fx, region_clear(&fx->inst[1], REGION_A));
    uint64_t ahead = fx->inst[1].table_at - t0;
    RUN_UNTIL(fx, region_clear(&fx->inst[0], REGION_A));
    uint64_t on_time = fx->inst[0].table_at - t0;
    printf("  reverted after %llu ms (3 s ahead) and %llu ms\n", (unsigned long long)ahead,
           (unsigned long long)on_time);
    assert_true(ahead >= 2900 && ahead <= 3600);
    assert_true(on_time >= 6000 && on_time <= 6600);
}

/* etcd killed after a TTL write: every instance still reverts at expires_at, by itself; after
 * etcd comes back (which restarts leases with their full TTL), none applies the key again. */
static void test_local_expiry_without_etcd(void **state)
{
    fx_t *fx = *state;
    char key[128];
    start_n(fx, 3, -1);
    uint64_t w0 = wall_ms();
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "a", 6000, NULL);
    RUN_UNTIL(fx, all_forced_down(fx, 3, REGION_A));
    uint64_t expires = fx->inst[0].table->region_force[REGION_A].ovr.expires_at;
    ctl("kill");
    RUN_UNTIL(fx, all_connected(fx, 3, false));
    assert_true(all_forced_down(fx, 3, REGION_A)); /* kept while etcd is away */
    RUN_UNTIL(fx, all_clear(fx, 3, REGION_A));
    for (int i = 0; i < 3; i++) {
        inst_t *in = &fx->inst[i];
        printf("  %s reverted %lld ms after expires_at, etcd down\n", in->name,
               (long long)(in->table_wall - expires));
        assert_true(in->table_wall >= expires && in->table_wall <= expires + 1000);
        assert_true(in->ev_count[SST_FLEET_EV_EXPIRED] >= 1);
    }
    assert_true(expires <= w0 + 7000);
    assert_true(all_connected(fx, 3, false));
    ctl("restart");
    RUN_UNTIL(fx, all_connected(fx, 3, true));
    /* etcd restarted the lease with its full TTL: the key is still there, and ignored */
    snprintf(key, sizeof(key), "/sidestep/%s/overrides/region/a/force", fx->fleet);
    assert_int_equal(etcd_count(fx, key), 1);
    run_for(fx, 300);
    assert_true(all_clear(fx, 3, REGION_A));
}

/* etcd killed: every instance keeps the override and keeps its routing; after lease_ttl the
 * quorum falls back to the own view; all reconnect when etcd returns, with the override. */
static void test_etcd_killed(void **state)
{
    fx_t *fx = *state;
    start_n(fx, 3, -1);
    set_view(fx, 0, 1u << REGION_A); /* lb-1 alone sees a DOWN */
    set_view(fx, 1, 0);
    set_view(fx, 2, 0);
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "b", 0, NULL);
    RUN_UNTIL(fx, all_forced_down(fx, 3, REGION_B));
    RUN_UNTIL(fx, inst_status(fx, 0).quorum.voters[REGION_A] == 3);
    assert_int_equal(fx->inst[0].q.basis, SST_FLEET_BASIS_FLEET);
    assert_false(fx->inst[0].q.down & (1u << REGION_A));

    ctl("kill");
    RUN_UNTIL(fx, all_connected(fx, 3, false));
    for (int i = 0; i < 3; i++) {
        assert_true(fx->inst[i].ev_count[SST_FLEET_EV_DISCONNECTED] >= 1);
        assert_int_equal(inst_status(fx, i).disconnects, 1);
    }
    /* lease_ttl (5 s) without etcd: decisions on the own view, the override still in force */
    RUN_UNTIL(fx, inst_status(fx, 0).store_lost);
    RUN_UNTIL(fx, fx->inst[0].q.basis == SST_FLEET_BASIS_STORE_LOST);
    assert_true(fx->inst[0].q.down & (1u << REGION_A));
    assert_true(fx->inst[0].ev_count[SST_FLEET_EV_STORE_LOST] >= 1);
    assert_true(all_forced_down(fx, 3, REGION_B));

    ctl("restart");
    RUN_UNTIL(fx, all_connected(fx, 3, true));
    for (int i = 0; i < 3; i++)
        assert_int_equal(inst_status(fx, i).connects, 2);
    assert_true(all_forced_down(fx, 3, REGION_B));
    RUN_UNTIL(fx, fx->inst[0].q.basis == SST_FLEET_BASIS_FLEET);
    act_ok(fx, 2, SST_FLEET_OP_CLEAR, "b", 0, NULL);
    RUN_UNTIL(fx, all_clear(fx, 3, REGION_B));
}

/* lb-3 reaches etcd through the relay. Cut off, it keeps the force-down and misses the clear
 * and a force-up made meanwhile; once the relay is back it applies both. */
static void test_partition_heals(void **state)
{
    fx_t *fx = *state;
    int64_t rev;
    start_n(fx, 3, 2);
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "a", 0, NULL);
    RUN_UNTIL(fx, all_forced_down(fx, 3, REGION_A));
    ctl("relay-cut");
    RUN_UNTIL(fx, !inst_status(fx, 2).connected);
    act_ok(fx, 1, SST_FLEET_OP_CLEAR, "a", 0, NULL);
    act_ok(fx, 0, SST_FLEET_OP_FORCE_UP, "b", 0, &rev);
    RUN_UNTIL(fx, all_clear(fx, 2, REGION_A) && region_state(&fx->inst[1], REGION_B, SST_FLEET_UP));
    run_for(fx, 300);
    assert_true(region_forced_down(&fx->inst[2], REGION_A)); /* kept while cut off */
    assert_false(fx->inst[2].table->region_force[REGION_B].set);
    ctl("relay-restore");
    RUN_UNTIL(fx, region_clear(&fx->inst[2], REGION_A) &&
                      region_state(&fx->inst[2], REGION_B, SST_FLEET_UP));
    sst_fleet_status_t s = inst_status(fx, 2);
    assert_true(s.connected);
    assert_int_equal(s.connects, 2);
    assert_true(s.revision >= rev);
    assert_true(fx->inst[2].table_rev >= rev);
}

/* A black hole: lb-3's connections stay open but nothing moves. Its failing keepalive makes it
 * read again instead of trusting the silent watch; once bytes flow, it catches up. */
static void test_black_hole(void **state)
{
    fx_t *fx = *state;
    start_n(fx, 3, 2);
    /* a write seen by lb-3 first: its watch is up before the relay goes silent */
    act_ok(fx, 0, SST_FLEET_OP_FORCE_UP, "c", 0, NULL);
    RUN_UNTIL(fx, region_state(&fx->inst[2], REGION_C, SST_FLEET_UP));
    ctl("relay-freeze");
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "a", 0, NULL);
    RUN_UNTIL(fx, all_forced_down(fx, 2, REGION_A));
    run_for(fx, 300);
    assert_false(region_forced_down(&fx->inst[2], REGION_A));
    RUN_UNTIL(fx, !inst_status(fx, 2).connected);
    ctl("relay-thaw");
    RUN_UNTIL(fx, region_forced_down(&fx->inst[2], REGION_A) && inst_status(fx, 2).connected);
}

/* A compaction under live watches is survived; a watch resumed from a compacted revision is
 * answered by reading again. lb-3's read after a cut goes through, its watch is held at the
 * relay while writes are made and compacted away; released, the watch is refused as compacted,
 * and lb-3 reads again and has every write. */
static void test_compaction(void **state)
{
    fx_t *fx = *state;
    int64_t rev;
    start_n(fx, 3, 2);
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "a", 0, &rev);
    RUN_UNTIL(fx, all_forced_down(fx, 3, REGION_A));
    etcd_compact(fx, etcd_revision(fx));
    act_ok(fx, 1, SST_FLEET_OP_CLEAR, "a", 0, NULL);
    RUN_UNTIL(fx, all_clear(fx, 3, REGION_A));
    for (int i = 0; i < 3; i++)
        assert_int_equal(inst_status(fx, i).compactions, 0);

    ctl("relay-cut");
    RUN_UNTIL(fx, !inst_status(fx, 2).connected);
    act_ok(fx, 0, SST_FLEET_OP_FORCE_UP, "b", 0, NULL);
    ctl("relay-hold"); /* the next connection (the read) passes, the watch's is held */
    RUN_UNTIL(fx, inst_status(fx, 2).connects == 2);
    assert_true(region_state(&fx->inst[2], REGION_B, SST_FLEET_UP));
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "a", 0, &rev);
    act_ok(fx, 1, SST_FLEET_OP_FORCE_UP, "c", 0, NULL);
    etcd_compact(fx, etcd_revision(fx));
    ctl("relay-release");
    RUN_UNTIL(fx, inst_status(fx, 2).compactions == 1);
    assert_true(fx->inst[2].ev_count[SST_FLEET_EV_COMPACTED] == 1);
    RUN_UNTIL(fx, region_forced_down(&fx->inst[2], REGION_A) &&
                      region_state(&fx->inst[2], REGION_C, SST_FLEET_UP));
    assert_true(inst_status(fx, 2).connected);
}

/* The safety rule refuses a write that leaves a route without a usable region, naming it;
 * override_safety writes it anyway. */
static void test_safety_rule(void **state)
{
    fx_t *fx = *state;
    start_n(fx, 2, -1);
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "a", 0, NULL);
    RUN_UNTIL(fx, all_forced_down(fx, 2, REGION_A));
    sst_fleet_result_t r = act(fx, 1, SST_FLEET_OP_FORCE_DOWN, false, "b", 0, false);
    assert_int_equal(r.status, SST_EBUSY);
    assert_int_equal(r.http_status, 409);
    assert_string_equal(fx->acts[0].route, "web");
    assert_non_null(strstr(r.message, "\"web\""));
    r = act(fx, 1, SST_FLEET_OP_DRAIN, false, "c", 0, false);
    assert_int_equal(r.http_status, 409);
    assert_string_equal(fx->acts[0].route, "api");
    r = act(fx, 0, SST_FLEET_OP_FORCE_DOWN, true, "127.0.0.1:9002", 10000, false);
    assert_int_equal(r.http_status, 409); /* b's only backend */
    assert_string_equal(fx->acts[0].route, "web");
    r = act(fx, 0, SST_FLEET_OP_DRAIN, false, "c", 0, true);
    assert_int_equal(r.http_status, 200);
    /* nothing was written by the refusals */
    run_for(fx, 300);
    for (int i = 0; i < 2; i++) {
        assert_false(fx->inst[i].table->region_force[REGION_B].set);
        assert_true(fx->inst[i].table->region_drain[REGION_C].set);
        assert_false(fx->inst[i].table->backend_force[1].set);
    }
    /* a region forced up keeps the route usable, so the other may go down */
    act_ok(fx, 1, SST_FLEET_OP_UNDRAIN, "c", 0, NULL);
    act_ok(fx, 1, SST_FLEET_OP_FORCE_UP, "a", 0, NULL);
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "b", 0, NULL);
}

/* Two conflicting force-downs started together through two instances: exactly one passes. */
static void test_racing_writes(void **state)
{
    fx_t *fx = *state;
    start_n(fx, 2, -1);
    for (int round = 0; round < 5; round++) {
        act_t *x = act_start(fx, 1, 0, SST_FLEET_OP_FORCE_DOWN, false, "a", 0, false);
        act_t *y = act_start(fx, 2, 1, SST_FLEET_OP_FORCE_DOWN, false, "b", 0, false);
        RUN_UNTIL(fx, x->done && y->done);
        int ok = (x->r.status == 0) + (y->r.status == 0);
        act_t *loser = x->r.status == 0 ? y : x;
        printf("  round %d: a %d, b %d\n", round, x->r.http_status, y->r.http_status);
        assert_int_equal(ok, 1);
        assert_int_equal(loser->r.http_status, 409);
        assert_string_equal(loser->route, "web");
        const char *winner = x->r.status == 0 ? "a" : "b";
        size_t wr = x->r.status == 0 ? REGION_A : REGION_B;
        RUN_UNTIL(fx, all_forced_down(fx, 2, wr));
        act_ok(fx, round % 2, SST_FLEET_OP_CLEAR, winner, 0, NULL);
        RUN_UNTIL(fx, all_clear(fx, 2, wr));
    }
}

/* health_quorum: majority. lb-1 alone sees a DOWN: not DOWN for routing, and it says it
 * disagrees; once lb-2 sees it too, a is DOWN for everyone and lb-3 is the one that disagrees. */
static void test_quorum_majority(void **state)
{
    fx_t *fx = *state;
    const uint32_t a = 1u << REGION_A;
    start_n(fx, 3, -1);
    int calls = fx->inst[0].n_quorum;
    set_view(fx, 0, a);
    assert_int_equal(fx->inst[0].n_quorum, calls); /* never inside the call */
    set_view(fx, 1, 0);
    set_view(fx, 2, 0);
    /* the hook runs when the decision changes; the status has the counts as they are */
    RUN_UNTIL(fx, inst_status(fx, 0).quorum.voters[REGION_A] == 3 &&
                      inst_status(fx, 1).quorum.voters[REGION_A] == 3 &&
                      inst_status(fx, 2).quorum.voters[REGION_A] == 3);
    assert_true(fx->inst[0].q.disagree & a);
    assert_false(fx->inst[0].q.down & a);
    sst_fleet_status_t s = inst_status(fx, 0);
    assert_int_equal(s.quorum.down_votes[REGION_A], 1);
    assert_int_equal(s.quorum.needed[REGION_A], 2);
    assert_true(s.quorum.disagree & a);
    assert_int_equal(fx->inst[0].ev_count[SST_FLEET_EV_DISAGREE], 1);
    assert_non_null(strstr(fx->inst[0].ev_last[SST_FLEET_EV_DISAGREE], "region a"));
    assert_false(fx->inst[1].q.down & a);
    assert_int_equal(fx->inst[1].q.disagree, 0);
    assert_int_equal(fx->inst[1].ev_count[SST_FLEET_EV_DISAGREE], 0);

    set_view(fx, 1, a);
    RUN_UNTIL(fx,
              (fx->inst[0].q.down & a) && (fx->inst[2].q.down & a) && (fx->inst[2].q.disagree & a));
    RUN_UNTIL(fx, fx->inst[0].q.disagree == 0);
    assert_int_equal(fx->inst[0].ev_count[SST_FLEET_EV_AGREE], 1);
    s = inst_status(fx, 2);
    assert_int_equal(s.quorum.down_votes[REGION_A], 2);
    assert_int_equal(s.own_down, 0);
}

static bool member_config(fx_t *fx, int i, const char *name, uint64_t version, const char *hash)
{
    const sst_fleet_member_t *m;
    size_t n = sst_fleet_members(fx->inst[i].f, &m);
    for (size_t k = 0; k < n; k++)
        if (strcmp(m[k].name, name) == 0)
            return m[k].has_heartbeat && m[k].heartbeat.config_version == version &&
                   strcmp(m[k].heartbeat.config_hash, hash) == 0;
    return false;
}

/* A reload: the table is rebuilt for the new config's indices at once and handed over again;
 * the heartbeat carries the new config version and hash; fleet identity needs a restart. */
static void test_reload(void **state)
{
    fx_t *fx = *state;
    char yaml[1024];
    sst_config_t *cfg = NULL, *other = NULL;
    sst_diag_t d;
    int64_t rev;
    start_n(fx, 1, -1);
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "b", 0, NULL);
    RUN_UNTIL(fx, region_forced_down(&fx->inst[0], REGION_B));
    for (int pass = 0; pass < 2; pass++) {
        snprintf(yaml, sizeof(yaml),
                 "listen: [127.0.0.1:0]\n"
                 "admin: {address: 127.0.0.1:0}\n"
                 "regions:\n"
                 "  - {name: b, url: http://b.example, backends: [127.0.0.1:9002]}\n"
                 "  - {name: a, backends: [127.0.0.1:9001]}\n"
                 "  - {name: c, url: http://c.example, backends: [127.0.0.1:9003]}\n"
                 "routes:\n"
                 "  - {name: web, primary: a, failover: [b], match: {host: web.example}}\n"
                 "  - {name: api, primary: c}\n"
                 "fleet:\n"
                 "  name: %s\n"
                 "  instance: lb-1\n"
                 "  etcd: {endpoints: [\"%s\"], dial_timeout: 500ms, lease_ttl: 5s}\n"
                 "  health_quorum: off\n",
                 pass == 0 ? fx->fleet : "another-fleet", etcd_url);
        assert_int_equal(
            sst_config_load_string("r.yaml", yaml, strlen(yaml), pass == 0 ? &cfg : &other, &d), 0);
    }
    cfg->version = 2;
    int calls = fx->inst[0].n_ovr;
    assert_int_equal(sst_fleet_set_config(fx->inst[0].f, cfg, "beef"), 0);
    assert_int_equal(fx->inst[0].n_ovr, calls); /* the hook runs later, from the loop */
    const sst_fleet_overrides_t *t = sst_fleet_overrides(fx->inst[0].f, &rev);
    assert_true(t->region_force[0].set); /* b is region 0 now */
    assert_false(t->region_force[1].set);
    RUN_UNTIL(fx, fx->inst[0].n_ovr == calls + 1);
    assert_true(fx->inst[0].table->region_force[0].set);
    RUN_UNTIL(fx, member_config(fx, 0, "lb-1", 2, "beef"));
    assert_int_equal(sst_fleet_set_config(fx->inst[0].f, other, "beef"), SST_ENOTSUP);
    assert_int_equal(sst_fleet_set_config(fx->inst[0].f, cfg, "NotHex"), SST_EINVAL);
    sst_config_unref(cfg); /* the runtime holds its own reference */
    sst_config_unref(other);
    act_ok(fx, 0, SST_FLEET_OP_CLEAR, "b", 0, NULL);
    RUN_UNTIL(fx, region_clear(&fx->inst[0], 0));
}

/* A new instance started during an override has it before it reports ready; one that cannot
 * reach etcd serves after startup_wait, saying so. */
static void test_startup(void **state)
{
    fx_t *fx = *state;
    char dead[48];
    start_n(fx, 1, -1);
    act_ok(fx, 0, SST_FLEET_OP_FORCE_DOWN, "a", 0, NULL);
    inst_start(fx, 1, "lb-new", NULL);
    RUN_UNTIL(fx, fx->inst[1].startup_calls == 1);
    assert_int_equal(fx->inst[1].startup, SST_FLEET_STARTUP_READY);
    assert_true(fx->inst[1].a_forced_at_startup);

    snprintf(dead, sizeof(dead), "http://127.0.0.1:%u", dead_port());
    inst_opts_t o = {.endpoint = dead, .startup_wait = "300ms"};
    uint64_t t0 = now_ms(fx);
    inst_start(fx, 2, "lb-lost", &o);
    RUN_UNTIL(fx, fx->inst[2].startup_calls == 1);
    assert_int_equal(fx->inst[2].startup, SST_FLEET_STARTUP_TIMED_OUT);
    assert_true(now_ms(fx) - t0 >= 290);
    assert_int_equal(fx->inst[2].n_ovr, 0);
    assert_true(fx->inst[2].ev_count[SST_FLEET_EV_DISCONNECTED] >= 1);
    assert_int_equal(fx->inst[2].ev_count[SST_FLEET_EV_STARTUP], 1);
    assert_false(inst_status(fx, 2).connected);
    inst_stop(fx, 2);
    inst_stop(fx, 1);
}

static bool sees_live(fx_t *fx, int i, const char *name, bool live)
{
    const sst_fleet_member_t *m;
    size_t n = sst_fleet_members(fx->inst[i].f, &m);
    for (size_t k = 0; k < n; k++)
        if (strcmp(m[k].name, name) == 0)
            return m[k].has_heartbeat == live;
    return !live;
}

/* lb-1's lease revoked behind its back: peers drop it, it grants a new one and comes back. */
static void test_lease_lost(void **state)
{
    fx_t *fx = *state;
    start_n(fx, 2, -1);
    RUN_UNTIL(fx, sees_live(fx, 1, "lb-1", true) && inst_status(fx, 0).lease_id != 0);
    int64_t lease = inst_status(fx, 0).lease_id;
    ETCD_CALL(fx, sst_etcd_lease_revoke(fx->e, lease, on_res, &fx->r));
    assert_int_equal(fx->r.status, 0);
    RUN_UNTIL(fx, sees_live(fx, 1, "lb-1", false));
    RUN_UNTIL(fx, fx->inst[0].ev_count[SST_FLEET_EV_LEASE] == 1);
    RUN_UNTIL(fx, sees_live(fx, 1, "lb-1", true));
    assert_true(inst_status(fx, 0).lease_id != lease);
    /* a stopped instance revokes its lease: its peer drops it at once */
    inst_stop(fx, 0);
    RUN_UNTIL_MS(fx, sees_live(fx, 1, "lb-1", false), 2000);
}

/* Bad requests are answered 400/404 from the loop, never inside the call, and write nothing. */
static void test_action_validation(void **state)
{
    fx_t *fx = *state;
    start_n(fx, 1, -1);
    sst_fleet_result_t r = act(fx, 0, SST_FLEET_OP_FORCE_DOWN, false, "a", 2000, false);
    assert_int_equal(r.http_status, 400);
    assert_non_null(strstr(r.message, "minimum lease TTL"));
    r = act(fx, 0, SST_FLEET_OP_FORCE_DOWN, false, "nowhere", 0, false);
    assert_int_equal(r.http_status, 404);
    r = act(fx, 0, SST_FLEET_OP_DRAIN, true, "127.0.0.1:9001", 0, false);
    assert_int_equal(r.http_status, 400);
    r = act(fx, 0, SST_FLEET_OP_FORCE_UP, true, "127.0.0.1:9999", 0, false);
    assert_int_equal(r.http_status, 404);
    sst_fleet_action_t bad = {.op = SST_FLEET_OP_FORCE_DOWN, .target = SST_STR_LIT("a")};
    act_t *a = &fx->acts[3];
    memset(a, 0, sizeof(*a));
    assert_int_equal(sst_fleet_action(fx->inst[0].f, &bad, on_act, a), 0);
    a->started = true;
    RUN_UNTIL(fx, a->done);
    assert_int_equal(a->r.http_status, 400); /* no reason */
    assert_non_null(strstr(a->r.message, "reason"));
    run_for(fx, 200);
    assert_false(fx->inst[0].table->region_force[REGION_A].set);
}

/* Stopping with an action in flight answers it once; no hook runs after the stop. */
static void test_stop_during_action(void **state)
{
    fx_t *fx = *state;
    start_n(fx, 1, -1);
    act_t *a = act_start(fx, 4, 0, SST_FLEET_OP_FORCE_DOWN, false, "a", 10000, false);
    sst_fleet_stop(fx->inst[0].f, on_stopped, &fx->inst[0]);
    RUN_UNTIL(fx, fx->inst[0].stopped);
    assert_true(a->done);
    assert_int_equal(a->calls, 1);
    assert_true(a->r.status == 0 || a->r.status == SST_ECANCELED || a->r.status == SST_EAGAIN);
    assert_int_equal(a->r.http_status, a->r.status == 0 ? 200 : 503);
}

int main(int argc, char **argv)
{
    etcd_url = getenv("SST_ETCD_URL");
    relay_url = getenv("SST_RELAY_URL");
    if (etcd_url == NULL || etcd_url[0] == 0 || relay_url == NULL || relay_url[0] == 0) {
        fprintf(stderr, "fleet-live: SST_ETCD_URL and SST_RELAY_URL are not set; run it "
                        "through tests/integration/fleet_live.py, which starts etcd and the "
                        "relay\n");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_propagation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_skew, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_expiry_without_etcd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etcd_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition_heals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_black_hole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safety_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_racing_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quorum_majority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_startup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_during_action, setup, teardown),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
