/* The etcd client (src/fleet/etcd.c) against a real single-node etcd: KV and txn with prefix
 * compares, leases expiring under a watcher, watches from a revision, compaction, endpoint
 * failover, and etcd killed mid-watch then restarted without a lost event. Run by etcd_live.py,
 * which starts etcd (tests/support/etcd.py), passes SST_ETCD_URL, and performs the "CTL kill" /
 * "CTL restart" requests this program prints on stdout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "fleet/etcd.h"
#include "sidestep/error.h"

#define WATCHDOG_MS 20000
#define MAX_KVS     8

static const char *etcd_url;

typedef struct res_s res_t;
typedef struct wrec_s wrec_t;

/* Results live in the fixture, not on a test's stack: after a failed assertion, teardown's close
 * still delivers cancellations to them. */
typedef struct fx_s {
    uv_loop_t loop;
    uv_timer_t watchdog;
    bool expired;
    sst_etcd_t *e, *e2;
    int closed;
    res_t *r;
    wrec_t *rec;
} fx_t;

struct res_s {
    bool done;
    int status, grpc;
    char msg[SST_ETCD_MESSAGE_MAX];
    int64_t revision, count, lease, ttl;
    bool succeeded;
    size_t n_kvs, n_ops;
    char keys[MAX_KVS][64], vals[MAX_KVS][64];
    int64_t mods[MAX_KVS];
    int op_type0;
    size_t op_kvs0;
};

struct wrec_s {
    int created, progress, ends, n_events;
    int64_t revs[32];
    char keys[32][64];
    int types[32];
    bool has_prev[32];
    char prev_vals[32][64];
    int64_t last, progress_rev;
    int end_err;
    int64_t end_compact, end_last;
    char end_msg[SST_ETCD_MESSAGE_MAX];
};

static void on_watchdog(uv_timer_t *t)
{
    ((fx_t *)t->data)->expired = true;
}

#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        (f)->expired = false;                                                                      \
        uv_timer_start(&(f)->watchdog, on_watchdog, WATCHDOG_MS, 0);                               \
        while (!(cond) && !(f)->expired)                                                           \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->watchdog);                                                             \
        if ((f)->expired)                                                                          \
            fail_msg("watchdog: %s", #cond);                                                       \
    } while (0)

/* Asks etcd_live.py to act on etcd and waits for its answer. */
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

/* A client on [dead port,] the etcd under test. */
static sst_etcd_t *open_client(fx_t *f, bool dead_first)
{
    sst_addr_t eps[2];
    size_t n = 0;
    sst_etcd_t *e = NULL;
    if (dead_first) {
        char dead[48];
        snprintf(dead, sizeof(dead), "http://127.0.0.1:%u", dead_port());
        assert_int_equal(sst_etcd_parse_endpoint(dead, strlen(dead), false, &eps[n++]), 0);
    }
    assert_int_equal(sst_etcd_parse_endpoint(etcd_url, strlen(etcd_url), false, &eps[n++]), 0);
    sst_etcd_opts_t o = {.endpoints = eps, .n_endpoints = n, .dial_timeout_ms = 1000};
    assert_int_equal(sst_etcd_new(&f->loop, &o, &e), 0);
    return e;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->watchdog);
    f->watchdog.data = f;
    f->r = calloc(1, sizeof(*f->r));
    f->rec = calloc(1, sizeof(*f->rec));
    assert_non_null(f->r);
    assert_non_null(f->rec);
    f->e = open_client(f, false);
    *state = f;
    return 0;
}

static void on_closed(void *arg)
{
    ((fx_t *)arg)->closed++;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int want = 1 + (f->e2 != NULL);
    sst_etcd_close(f->e, on_closed, f);
    if (f->e2 != NULL)
        sst_etcd_close(f->e2, on_closed, f);
    RUN_UNTIL(f, f->closed == want);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->r);
    free(f->rec);
    free(f);
    return 0;
}

/* ---- synchronous helpers over the callback API -------------------------------------------- */

static void on_resp(void *arg, int status, const sst_etcd_resp_t *r)
{
    res_t *res = arg;
    memset(res, 0, sizeof(*res));
    res->done = true;
    res->status = status;
    res->grpc = r->grpc_code;
    snprintf(res->msg, sizeof(res->msg), "%s", r->message);
    res->revision = r->revision;
    res->count = r->count;
    res->lease = r->lease_id;
    res->ttl = r->ttl;
    res->succeeded = r->succeeded;
    res->n_kvs = r->n_kvs;
    res->n_ops = r->n_ops;
    for (size_t i = 0; i < r->n_kvs && i < MAX_KVS; i++) {
        snprintf(res->keys[i], sizeof(res->keys[i]), "%s", r->kvs[i].key.base);
        snprintf(res->vals[i], sizeof(res->vals[i]), "%s", r->kvs[i].value.base);
        res->mods[i] = r->kvs[i].mod_revision;
    }
    if (r->n_ops > 0) {
        res->op_type0 = r->ops[0].type;
        res->op_kvs0 = r->ops[0].n_kvs;
    }
}

/* Runs `call` (whose callback argument is f->r) to completion. */
#define WAIT_CALL(f, call)                                                                         \
    do {                                                                                           \
        (f)->r->done = false;                                                                      \
        assert_int_equal((call), 0);                                                               \
        RUN_UNTIL(f, (f)->r->done);                                                                \
    } while (0)

static int64_t put(fx_t *f, sst_etcd_t *e, const char *key, const char *val, int64_t lease)
{
    sst_etcd_put_t p = {.key = sst_str_c(key), .value = sst_str_c(val), .lease = lease};
    WAIT_CALL(f, sst_etcd_put(e, &p, on_resp, f->r));
    if (f->r->status != 0)
        fail_msg("put %s: %s (%s)", key, sst_strerror(f->r->status), f->r->msg);
    return f->r->revision;
}

static res_t range(fx_t *f, sst_etcd_t *e, const char *prefix)
{
    sst_etcd_range_t q = {.key = sst_str_c(prefix), .prefix = true};
    WAIT_CALL(f, sst_etcd_range(e, &q, on_resp, f->r));
    return *f->r;
}

/* ---- watch recording ---------------------------------------------------------------------- */

static void on_watch(void *arg, const sst_etcd_watch_msg_t *m)
{
    wrec_t *w = arg;
    assert_int_equal(w->ends, 0);
    w->last = m->last_revision;
    switch (m->kind) {
    case SST_ETCD_WATCH_CREATED:
        w->created++;
        break;
    case SST_ETCD_WATCH_PROGRESS:
        w->progress++;
        w->progress_rev = m->revision;
        break;
    case SST_ETCD_WATCH_EVENTS:
        for (size_t i = 0; i < m->n_events && w->n_events < 32; i++, w->n_events++) {
            const sst_etcd_event_t *ev = &m->events[i];
            w->revs[w->n_events] = ev->kv.mod_revision;
            w->types[w->n_events] = ev->type;
            w->has_prev[w->n_events] = ev->has_prev;
            snprintf(w->keys[w->n_events], sizeof(w->keys[0]), "%s", ev->kv.key.base);
            snprintf(w->prev_vals[w->n_events], sizeof(w->prev_vals[0]), "%s",
                     ev->has_prev ? ev->prev_kv.value.base : "");
        }
        break;
    case SST_ETCD_WATCH_END:
        w->ends++;
        w->end_err = m->err;
        w->end_compact = m->compact_revision;
        w->end_last = m->last_revision;
        snprintf(w->end_msg, sizeof(w->end_msg), "%s", m->message);
        break;
    }
}

static sst_etcd_watch_t *watch(fx_t *f, sst_etcd_t *e, const char *prefix, int64_t from,
                               wrec_t *rec)
{
    sst_etcd_watch_t *w = NULL;
    sst_etcd_watch_opts_t o = {.key = sst_str_c(prefix),
                               .prefix = true,
                               .start_revision = from,
                               .progress_notify = true,
                               .prev_kv = true};
    memset(rec, 0, sizeof(*rec));
    assert_int_equal(sst_etcd_watch(e, &o, on_watch, rec, &w), 0);
    return w;
}

/* ---- tests -------------------------------------------------------------------------------- */

/* The fleet safety rule's shape: read, then write only if nothing under the prefix changed. */
static void test_kv_txn(void **state)
{
    fx_t *f = *state;
    res_t *r = f->r;
    int64_t r1 = put(f, f->e, "/t/txn/overrides/a", "1", 0);
    res_t got = range(f, f->e, "/t/txn/overrides/");
    assert_int_equal(got.status, 0);
    assert_int_equal(got.n_kvs, 1);
    assert_string_equal(got.vals[0], "1");
    assert_int_equal(got.mods[0], r1);

    sst_etcd_compare_t unchanged = {.key = SST_STR_LIT("/t/txn/overrides/"),
                                    .prefix = true,
                                    .target = SST_ETCD_CMP_MOD,
                                    .result = SST_ETCD_CMP_LESS,
                                    .number = r1 + 1};
    sst_etcd_op_t write = {
        .type = SST_ETCD_OP_PUT,
        .put = {.key = SST_STR_LIT("/t/txn/overrides/b"), .value = SST_STR_LIT("2")}};
    sst_etcd_op_t reread = {.type = SST_ETCD_OP_RANGE,
                            .range = {.key = SST_STR_LIT("/t/txn/overrides/"), .prefix = true}};
    sst_etcd_txn_t txn = {&unchanged, 1, &write, 1, &reread, 1};
    WAIT_CALL(f, sst_etcd_txn(f->e, &txn, on_resp, r));
    assert_int_equal(r->status, 0);
    assert_true(r->succeeded);
    assert_int_equal(r->revision, r1 + 1);
    assert_int_equal(r->n_ops, 1);
    assert_int_equal(r->op_type0, SST_ETCD_OP_PUT);

    /* the same compare from the stale read now fails: the failure branch re-reads */
    WAIT_CALL(f, sst_etcd_txn(f->e, &txn, on_resp, r));
    assert_int_equal(r->status, 0);
    assert_false(r->succeeded);
    assert_int_equal(r->op_type0, SST_ETCD_OP_RANGE);
    assert_int_equal(r->op_kvs0, 2);

    /* an empty range compares as one absent key (mod_revision 0) */
    sst_etcd_compare_t empty = {.key = SST_STR_LIT("/t/txn/none/"),
                                .prefix = true,
                                .target = SST_ETCD_CMP_MOD,
                                .result = SST_ETCD_CMP_LESS,
                                .number = 1};
    sst_etcd_txn_t t2 = {&empty, 1, NULL, 0, NULL, 0};
    WAIT_CALL(f, sst_etcd_txn(f->e, &t2, on_resp, r));
    assert_int_equal(r->status, 0);
    assert_true(r->succeeded);

    sst_etcd_compare_t val = {.key = SST_STR_LIT("/t/txn/overrides/a"),
                              .target = SST_ETCD_CMP_VALUE,
                              .result = SST_ETCD_CMP_EQUAL,
                              .value = SST_STR_LIT("1")};
    sst_etcd_txn_t t3 = {&val, 1, NULL, 0, NULL, 0};
    WAIT_CALL(f, sst_etcd_txn(f->e, &t3, on_resp, r));
    assert_true(r->succeeded);
    val.result = SST_ETCD_CMP_NOT_EQUAL;
    WAIT_CALL(f, sst_etcd_txn(f->e, &t3, on_resp, r));
    assert_int_equal(r->status, 0);
    assert_false(r->succeeded);

    /* etcd's own refusal comes back with its gRPC code and message */
    sst_etcd_op_t dup[2] = {write, write};
    sst_etcd_txn_t t4 = {NULL, 0, dup, 2, NULL, 0};
    WAIT_CALL(f, sst_etcd_txn(f->e, &t4, on_resp, r));
    assert_int_equal(r->status, SST_EINVAL);
    assert_int_equal(r->grpc, 3);
    assert_non_null(strstr(r->msg, "duplicate key"));

    sst_etcd_delete_t del = {.key = SST_STR_LIT("/t/txn/"), .prefix = true, .prev_kv = true};
    WAIT_CALL(f, sst_etcd_delete(f->e, &del, on_resp, r));
    assert_int_equal(r->status, 0);
    assert_int_equal(r->count, 2);
    assert_int_equal(r->n_kvs, 2);
    assert_int_equal(range(f, f->e, "/t/txn/").n_kvs, 0);
}

/* A key attached to a lease disappears when the lease is no longer kept alive, and a watcher
 * sees the DELETE. */
static void test_lease_expiry(void **state)
{
    fx_t *f = *state;
    res_t *r = f->r;
    wrec_t *rec = f->rec;
    WAIT_CALL(f, sst_etcd_lease_grant(f->e, 3, 0, on_resp, r));
    assert_int_equal(r->status, 0);
    assert_true(r->lease > 0);
    assert_int_equal(r->ttl, 3);
    int64_t lease = r->lease;

    sst_etcd_watch_t *w = watch(f, f->e, "/t/lease/", 0, rec);
    RUN_UNTIL(f, rec->created == 1);
    int64_t rev = put(f, f->e, "/t/lease/k", "held", lease);
    WAIT_CALL(f, sst_etcd_lease_keepalive(f->e, lease, on_resp, r));
    assert_int_equal(r->status, 0);
    assert_int_equal(r->lease, lease);
    assert_int_equal(r->ttl, 3);

    RUN_UNTIL(f, rec->n_events == 2); /* the put, then the expiry */
    assert_int_equal(rec->types[0], SST_ETCD_EVENT_PUT);
    assert_int_equal(rec->revs[0], rev);
    assert_int_equal(rec->types[1], SST_ETCD_EVENT_DELETE);
    assert_string_equal(rec->keys[1], "/t/lease/k");
    assert_true(rec->revs[1] > rev);
    assert_true(rec->has_prev[1]);
    assert_string_equal(rec->prev_vals[1], "held");
    assert_int_equal(range(f, f->e, "/t/lease/").n_kvs, 0);

    WAIT_CALL(f, sst_etcd_lease_keepalive(f->e, lease, on_resp, r));
    assert_int_equal(r->status, SST_ENOENT);
    WAIT_CALL(f, sst_etcd_lease_revoke(f->e, lease, on_resp, r));
    assert_int_equal(r->status, SST_ENOENT);
    assert_int_equal(r->grpc, 5);

    /* revoking a live lease deletes its keys at once */
    WAIT_CALL(f, sst_etcd_lease_grant(f->e, 60, 0, on_resp, r));
    lease = r->lease;
    put(f, f->e, "/t/lease/r", "x", lease);
    WAIT_CALL(f, sst_etcd_lease_revoke(f->e, lease, on_resp, r));
    assert_int_equal(r->status, 0);
    RUN_UNTIL(f, rec->n_events == 4);
    assert_int_equal(rec->types[3], SST_ETCD_EVENT_DELETE);
    assert_int_equal(range(f, f->e, "/t/lease/").n_kvs, 0);
    sst_etcd_watch_cancel(w);
    RUN_UNTIL(f, rec->ends == 1);
}

/* A watch from an old revision replays every event since then, in order, then follows live
 * writes, and progress notifications say how far it is. */
static void test_watch_from_revision(void **state)
{
    fx_t *f = *state;
    int64_t revs[6];
    char key[32];
    wrec_t *rec = f->rec;
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "/t/wr/k%d", i);
        revs[i] = put(f, f->e, key, "v", 0);
    }
    sst_etcd_watch_t *w = watch(f, f->e, "/t/wr/", revs[1], rec);
    RUN_UNTIL(f, rec->n_events == 4);
    assert_int_equal(rec->created, 1);
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "/t/wr/k%d", i + 1);
        assert_int_equal(rec->revs[i], revs[i + 1]);
        assert_string_equal(rec->keys[i], key);
    }
    revs[5] = put(f, f->e, "/t/wr/k5", "v", 0);
    RUN_UNTIL(f, rec->n_events == 5);
    assert_int_equal(rec->revs[4], revs[5]);
    assert_int_equal(rec->last, revs[5]);
    /* etcd_live.py starts etcd with a 500 ms progress interval */
    RUN_UNTIL(f, rec->progress > 0);
    assert_true(rec->progress_rev >= revs[5]);
    assert_true(rec->last >= revs[5]);
    sst_etcd_watch_cancel(w);
    RUN_UNTIL(f, rec->ends == 1);
    assert_int_equal(rec->end_err, SST_ECANCELED);
}

/* A watch from a compacted revision is cancelled by etcd with the compact revision, so the
 * caller reads again and watches from there. */
static void test_watch_compacted(void **state)
{
    fx_t *f = *state;
    res_t *r = f->r;
    wrec_t *rec = f->rec;
    int64_t ra = put(f, f->e, "/t/wc/a", "1", 0);
    put(f, f->e, "/t/wc/b", "2", 0);
    int64_t rc = put(f, f->e, "/t/wc/c", "3", 0);
    WAIT_CALL(f, sst_etcd_compact(f->e, rc, true, on_resp, r));
    assert_int_equal(r->status, 0);

    watch(f, f->e, "/t/wc/", ra, rec);
    RUN_UNTIL(f, rec->ends == 1);
    assert_int_equal(rec->end_err, SST_ERANGE);
    assert_int_equal(rec->end_compact, rc);
    assert_non_null(strstr(rec->end_msg, "compacted"));
    assert_int_equal(rec->n_events, 0);

    WAIT_CALL(f, sst_etcd_compact(f->e, ra, false, on_resp, r));
    assert_int_equal(r->status, SST_ERANGE);
    assert_int_equal(r->grpc, 11);

    /* the recovery the caller makes: read, then watch from the read's revision + 1 */
    res_t now = range(f, f->e, "/t/wc/");
    assert_int_equal(now.n_kvs, 3);
    sst_etcd_watch_t *w = watch(f, f->e, "/t/wc/", now.revision + 1, rec);
    RUN_UNTIL(f, rec->created == 1);
    int64_t rd = put(f, f->e, "/t/wc/d", "4", 0);
    RUN_UNTIL(f, rec->n_events == 1);
    assert_int_equal(rec->revs[0], rd);
    sst_etcd_watch_cancel(w);
    RUN_UNTIL(f, rec->ends == 1);
}

static void test_endpoint_failover(void **state)
{
    fx_t *f = *state;
    wrec_t *rec = f->rec;
    f->e2 = open_client(f, true); /* a dead endpoint first */
    res_t got = range(f, f->e2, "/t/");
    assert_int_equal(got.status, 0);
    assert_true(got.revision > 0);
    sst_etcd_watch_t *w = watch(f, f->e2, "/t/fo/", 0, rec);
    RUN_UNTIL(f, rec->created == 1);
    sst_etcd_watch_cancel(w);
    RUN_UNTIL(f, rec->ends == 1);
}

/* etcd killed under a watch: the loss is reported with the last revision delivered; after a
 * restart, a write made before the watch resumes is not lost when it resumes from there + 1. */
static void test_kill_restart(void **state)
{
    fx_t *f = *state;
    wrec_t *rec = f->rec;
    watch(f, f->e, "/t/kr/", 0, rec);
    RUN_UNTIL(f, rec->created == 1);
    int64_t ra = put(f, f->e, "/t/kr/a", "1", 0);
    RUN_UNTIL(f, rec->n_events == 1);

    ctl("kill");
    RUN_UNTIL(f, rec->ends == 1);
    assert_int_equal(rec->end_err, SST_ECONNRESET);
    assert_int_equal(rec->end_last, ra);
    int64_t resume = rec->end_last + 1;
    res_t down = range(f, f->e, "/t/kr/");
    assert_int_equal(down.status, SST_ECONNREFUSED);

    ctl("restart");
    f->e2 = open_client(f, false);
    int64_t rb = put(f, f->e2, "/t/kr/b", "2", 0); /* while the first client is away */
    int64_t rc = put(f, f->e2, "/t/kr/c", "3", 0);

    sst_etcd_watch_t *w = watch(f, f->e, "/t/kr/", resume, rec);
    RUN_UNTIL(f, rec->n_events == 2);
    assert_int_equal(rec->revs[0], rb);
    assert_string_equal(rec->keys[0], "/t/kr/b");
    assert_int_equal(rec->revs[1], rc);
    assert_int_equal(range(f, f->e, "/t/kr/").n_kvs, 3); /* the first client works again */
    sst_etcd_watch_cancel(w);
    RUN_UNTIL(f, rec->ends == 1);
}

int main(void)
{
    etcd_url = getenv("SST_ETCD_URL");
    if (etcd_url == NULL || etcd_url[0] == 0) {
        fprintf(stderr, "etcd-live: SST_ETCD_URL is not set; run it through "
                        "tests/integration/etcd_live.py, which starts etcd\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kv_txn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_from_revision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_compacted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
