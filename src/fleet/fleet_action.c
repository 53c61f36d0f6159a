/* Fleet actions (sst_fleet_action): validate, read the overrides, run the safety rule, and
 * write with one compare-and-put txn on the action's own lease; settle unknown outcomes by
 * reading back, and revoke the lease of a write that did not happen. Answers are delivered from
 * the runtime's t_kick timer, never inside the call. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/fleet.h"
#include "fleet/fleet_internal.h"
#include "sidestep/error.h"

/* Compare failures (another write between read and txn) retried before answering 503. */
#define ACT_MAX_TRIES 5

struct sst__fleet_act_s {
    sst__fleet_act_t *next; /* the runtime's answer queue */
    sst_fleet_t *f;
    sst_fleet_op_t op;
    bool backend, checked, put;
    sst_fleet_proposal_t prop;
    char target[SST_FLEET_HOSTPORT_MAX + 1];
    char key[SST_FLEET_KEY_MAX + 1];
    size_t key_len;
    char value[1024];
    size_t value_len;
    uint64_t ttl_ms;
    int64_t lease;
    int64_t read_revision;
    int tries;
    char route[128];
    sst_fleet_result_t res;
    sst_fleet_action_cb cb;
    void *arg;
};

static const char *const act_words[] = {
    [SST_FLEET_OP_FORCE_DOWN] = "force-down", [SST_FLEET_OP_FORCE_UP] = "force-up",
    [SST_FLEET_OP_CLEAR] = "clear",           [SST_FLEET_OP_DRAIN] = "drain",
    [SST_FLEET_OP_UNDRAIN] = "undrain",
};

static int act_http(int status)
{
    switch (status) {
    case 0:
        return 200;
    case SST_EINVAL:
        return 400;
    case SST_ENOENT:
        return 404;
    case SST_EBUSY:
        return 409;
    default:
        return 503;
    }
}

/* Queues the answer; the runtime delivers it from the loop and frees the action. */
static void act_finish(sst__fleet_act_t *a)
{
    sst_fleet_t *f = a->f;
    a->res.http_status = act_http(a->res.status);
    a->res.route = a->res.status == SST_EBUSY ? a->route : NULL;
    a->next = NULL;
    if (f->done_tail != NULL)
        f->done_tail->next = a;
    else
        f->done_head = a;
    f->done_tail = a;
    sst__fleet_kick(f);
}

void sst__fleet_act_deliver_all(sst_fleet_t *f)
{
    while (f->done_head != NULL) {
        sst__fleet_act_t *a = f->done_head;
        f->done_head = a->next;
        if (f->done_head == NULL)
            f->done_tail = NULL;
        a->cb(a->arg, &a->res);
        free(a);
    }
}

__attribute__((format(printf, 3, 4))) static void act_fail(sst__fleet_act_t *a, int status,
                                                           const char *fmt, ...)
{
    va_list ap;
    a->res.status = status;
    va_start(ap, fmt);
    vsnprintf(a->res.message, sizeof(a->res.message), fmt, ap);
    va_end(ap);
}

static const char *act_what(const sst__fleet_act_t *a)
{
    return a->backend ? "backend" : "region";
}

/* ---- validation --------------------------------------------------------------------------- */

static bool act_printable(sst_str_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if ((unsigned char)s.base[i] < 0x20 || (unsigned char)s.base[i] == 0x7f)
            return false;
    return true;
}

static int act_prepare_value(sst__fleet_act_t *a, const sst_fleet_action_t *in)
{
    sst_fleet_t *f = a->f;
    sst_fleet_override_t v;
    char err[160];
    if (in->reason.len == 0 || in->reason.len > SST_FLEET_REASON_MAX ||
        !act_printable(in->reason)) {
        act_fail(a, SST_EINVAL, "reason: 1 to %d printable bytes are required",
                 SST_FLEET_REASON_MAX);
        return -1;
    }
    if (in->client.len > SST_FLEET_CLIENT_MAX || !act_printable(in->client)) {
        act_fail(a, SST_EINVAL, "client: at most %d printable bytes", SST_FLEET_CLIENT_MAX);
        return -1;
    }
    if (in->ttl_ms != 0 && in->ttl_ms < SST_FLEET_MIN_TTL_MS) {
        /* refused, not rounded up: the operator would get a longer action than asked */
        act_fail(a, SST_EINVAL,
                 "ttl %" PRIu64 "ms is below etcd's minimum lease TTL (5s): use 5s or more, or "
                 "scope local",
                 in->ttl_ms);
        return -1;
    }
    if (in->ttl_ms > SST_FLEET_MAX_ACTION_TTL_MS) {
        act_fail(a, SST_EINVAL, "ttl must be at most 720h (leave it out for no expiry)");
        return -1;
    }
    memset(&v, 0, sizeof(v));
    v.state = in->op == SST_FLEET_OP_DRAIN      ? SST_FLEET_DRAIN
              : in->op == SST_FLEET_OP_FORCE_UP ? SST_FLEET_UP
                                                : SST_FLEET_DOWN;
    memcpy(v.reason, in->reason.base, in->reason.len);
    snprintf(v.by_instance, sizeof(v.by_instance), "%s", f->instance);
    if (in->client.len > 0)
        memcpy(v.by_client, in->client.base, in->client.len);
    v.created_at = sst__fleet_wall(f);
    v.ttl_ms = in->ttl_ms;
    v.expires_at = in->ttl_ms ? v.created_at + in->ttl_ms : 0;
    if (sst_fleet_override_encode(&v, a->value, sizeof(a->value), &a->value_len, err,
                                  sizeof(err)) != 0) {
        act_fail(a, SST_EINVAL, "%s", err);
        return -1;
    }
    a->ttl_ms = in->ttl_ms;
    a->prop.state = v.state;
    return 0;
}

static int act_prepare(sst__fleet_act_t *a, const sst_fleet_action_t *in)
{
    sst_fleet_t *f = a->f;
    sst_fleet_key_kind_t kind;
    int idx;
    if ((unsigned)in->op > SST_FLEET_OP_UNDRAIN) {
        act_fail(a, SST_EINVAL, "unknown action");
        return -1;
    }
    a->op = in->op;
    a->backend = in->backend;
    bool drain = in->op == SST_FLEET_OP_DRAIN || in->op == SST_FLEET_OP_UNDRAIN;
    if (drain && in->backend) {
        act_fail(a, SST_EINVAL, "%s applies to regions, not backends", act_words[in->op]);
        return -1;
    }
    if (in->target.len == 0 || in->target.len > SST_FLEET_HOSTPORT_MAX) {
        act_fail(a, SST_EINVAL, "a %s name is required", act_what(a));
        return -1;
    }
    memcpy(a->target, in->target.base, in->target.len);
    if (in->backend) {
        idx = sst_config_backend_index(f->cfg, in->target.base, in->target.len);
        kind = SST_FLEET_KEY_BACKEND_FORCE;
    } else {
        idx = sst_config_region_index(f->cfg, in->target.base, in->target.len);
        kind = drain ? SST_FLEET_KEY_REGION_DRAIN : SST_FLEET_KEY_REGION_FORCE;
    }
    if (idx < 0 || !act_printable(in->target)) {
        act_fail(a, SST_ENOENT, "no %s \"%s\" in this instance's config", act_what(a), a->target);
        return -1;
    }
    if (sst_fleet_key(f->name, kind, in->target, a->key, sizeof(a->key), &a->key_len) != 0) {
        act_fail(a, SST_EINVAL, "%s \"%s\" cannot be a fleet key", act_what(a), a->target);
        return -1;
    }
    a->prop.kind = kind;
    a->prop.index = (size_t)idx;
    a->put = in->op == SST_FLEET_OP_FORCE_DOWN || in->op == SST_FLEET_OP_FORCE_UP ||
             in->op == SST_FLEET_OP_DRAIN;
    if (a->put && act_prepare_value(a, in) != 0)
        return -1;
    a->checked =
        (in->op == SST_FLEET_OP_FORCE_DOWN || in->op == SST_FLEET_OP_DRAIN) && !in->override_safety;
    return 0;
}

/* ---- etcd steps --------------------------------------------------------------------------- */

static void act_unavailable(sst__fleet_act_t *a, int status, const char *step, const char *why)
{
    if (status == SST_ECANCELED)
        act_fail(a, SST_ECANCELED, "fleet mode is stopping: %s did not complete", step);
    else
        act_fail(a, SST_EAGAIN, "etcd unreachable while %s: %s%s%s; nothing was applied", step,
                 sst_strerror(status), why && why[0] ? ": " : "", why ? why : "");
}

static void act_on_revoked(void *arg, int status, const sst_etcd_resp_t *resp)
{
    act_finish(arg);
}

/* Ends a write that did not happen: its lease (if any) is revoked first, so no key of it can
 * remain. The answer is already in a->res. */
static void act_abandon(sst__fleet_act_t *a)
{
    if (a->lease != 0 && sst_etcd_lease_revoke(a->f->etcd, a->lease, act_on_revoked, a) == 0)
        return;
    act_finish(a);
}

static void act_ok(sst__fleet_act_t *a, int64_t revision)
{
    char ttl[48] = "";
    a->res.status = 0;
    a->res.revision = revision;
    if (a->ttl_ms)
        snprintf(ttl, sizeof(ttl), " (ttl %" PRIu64 "ms)", a->ttl_ms);
    snprintf(a->res.message, sizeof(a->res.message),
             "%s of %s %s written at etcd revision %" PRId64 "%s", act_words[a->op], act_what(a),
             a->target, revision, ttl);
    act_finish(a);
}

static void act_txn(sst__fleet_act_t *a);
static void act_grant(sst__fleet_act_t *a);

/* Runs the safety rule on the overrides etcd returned at `revision`, then writes. */
static void act_check(sst__fleet_act_t *a, int64_t revision, const sst_etcd_kv_t *kvs, size_t n)
{
    sst_fleet_t *f = a->f;
    sst_fleet_store_t store;
    char err[256];
    unsigned changed = 0;
    size_t route = SIZE_MAX;
    uint64_t now = sst__fleet_wall(f);

    sst_fleet_store_init(&store, f->name);
    for (size_t i = 0; i < n; i++) {
        /* a value that does not decode counts as absent, as on every instance */
        if (sst_fleet_store_put(&store, kvs[i].key, kvs[i].value, kvs[i].mod_revision, kvs[i].lease,
                                &changed, err, sizeof(err)) == SST_ENOMEM) {
            sst_fleet_store_clear(&store);
            act_fail(a, SST_EAGAIN, "out of memory reading the overrides");
            act_abandon(a);
            return;
        }
    }
    sst_fleet_store_overrides(&store, f->cfg, now, &f->scratch, NULL);
    sst_fleet_store_clear(&store);
    /* a reload may have come since act_prepare: indices are the current config's */
    int idx = a->backend ? sst_config_backend_index(f->cfg, a->target, strlen(a->target))
                         : sst_config_region_index(f->cfg, a->target, strlen(a->target));
    if (idx < 0) {
        act_fail(a, SST_ENOENT, "no %s \"%s\" in this instance's config any more", act_what(a),
                 a->target);
        act_abandon(a);
        return;
    }
    a->prop.index = (size_t)idx;
    int rc = sst_fleet_safety_check(f->cfg, &f->scratch, &a->prop, now, &route);
    if (rc == SST_EBUSY) {
        const char *name = route < f->cfg->n_routes ? f->cfg->routes[route].name : "?";
        snprintf(a->route, sizeof(a->route), "%s", name);
        act_fail(a, SST_EBUSY,
                 "%s of %s %s would leave route \"%s\" with no usable region fleet-wide (set "
                 "override_safety to do it anyway)",
                 act_words[a->op], act_what(a), a->target, a->route);
        act_abandon(a);
        return;
    }
    if (rc != 0) {
        act_fail(a, SST_EINVAL, "the safety rule refused the proposal: %s", sst_strerror(rc));
        act_abandon(a);
        return;
    }
    a->read_revision = revision;
    if (a->ttl_ms != 0 && a->lease == 0) {
        act_grant(a); /* after the check: a refused write costs no lease */
        return;
    }
    act_txn(a);
}

static void act_on_verify(void *arg, int status, const sst_etcd_resp_t *resp)
{
    sst__fleet_act_t *a = arg;
    if (status == 0 && resp->n_kvs == 1 && resp->kvs[0].value.len == a->value_len &&
        memcmp(resp->kvs[0].value.base, a->value, a->value_len) == 0) {
        act_ok(a, resp->kvs[0].mod_revision); /* the txn did go through */
        return;
    }
    if (status == 0)
        act_fail(a, SST_EAGAIN,
                 "the connection to etcd was lost during the write, which was not applied");
    else
        act_fail(a, status == SST_ECANCELED ? SST_ECANCELED : SST_EAGAIN,
                 "the connection to etcd was lost during the write and its outcome is unknown "
                 "(%s); the lease is being revoked: check GET /fleet",
                 sst_strerror(status));
    act_abandon(a);
}

/* The txn's outcome is unknown: read the key back. */
static void act_verify(sst__fleet_act_t *a)
{
    sst_etcd_range_t q = {.key = sst_str(a->key, a->key_len)};
    int rc = sst_etcd_range(a->f->etcd, &q, act_on_verify, a);
    if (rc != 0) {
        act_fail(a, rc == SST_ECANCELED ? SST_ECANCELED : SST_EAGAIN,
                 "the outcome of the write is unknown (%s): check GET /fleet", sst_strerror(rc));
        act_abandon(a);
    }
}

static void act_on_txn(void *arg, int status, const sst_etcd_resp_t *resp)
{
    sst__fleet_act_t *a = arg;
    if (status == 0 && resp->succeeded) {
        act_ok(a, resp->revision);
        return;
    }
    if (status == 0) {
        /* another override was written since the read: check again on the fresh state */
        if (++a->tries >= ACT_MAX_TRIES || resp->n_ops != 1 ||
            resp->ops[0].type != SST_ETCD_OP_RANGE) {
            act_fail(a, SST_EAGAIN,
                     "fleet overrides kept changing during the write (%d tries): "
                     "try again",
                     a->tries);
            act_abandon(a);
            return;
        }
        act_check(a, resp->revision, resp->ops[0].kvs, resp->ops[0].n_kvs);
        return;
    }
    if (status == SST_ECONNRESET || status == SST_ETIMEDOUT || status == SST_ECANCELED) {
        act_verify(a); /* sent, maybe applied */
        return;
    }
    act_unavailable(a, status, "writing", resp->message);
    act_abandon(a);
}

/* One txn: (compare MOD < R + 1 over overrides/ when checked) then put; else re-read. */
static void act_txn(sst__fleet_act_t *a)
{
    sst_fleet_t *f = a->f;
    sst_etcd_compare_t cmp = {.key = sst_str(f->ovr_prefix, f->ovr_prefix_len),
                              .prefix = true,
                              .target = SST_ETCD_CMP_MOD,
                              .result = SST_ETCD_CMP_LESS,
                              .number = a->read_revision + 1};
    sst_etcd_op_t put = {.type = SST_ETCD_OP_PUT,
                         .put = {.key = sst_str(a->key, a->key_len),
                                 .value = sst_str(a->value, a->value_len),
                                 .lease = a->lease}};
    sst_etcd_op_t reread = {
        .type = SST_ETCD_OP_RANGE,
        .range = {.key = sst_str(f->ovr_prefix, f->ovr_prefix_len), .prefix = true}};
    sst_etcd_txn_t txn = {.compare = a->checked ? &cmp : NULL,
                          .n_compare = a->checked ? 1 : 0,
                          .success = &put,
                          .n_success = 1,
                          .failure = a->checked ? &reread : NULL,
                          .n_failure = a->checked ? 1 : 0};
    int rc = sst_etcd_txn(f->etcd, &txn, act_on_txn, a);
    if (rc != 0) {
        act_unavailable(a, rc, "writing", "");
        act_abandon(a);
    }
}

static void act_on_read(void *arg, int status, const sst_etcd_resp_t *resp)
{
    sst__fleet_act_t *a = arg;
    if (status != 0) {
        act_unavailable(a, status, "reading the overrides", resp->message);
        act_abandon(a);
        return;
    }
    act_check(a, resp->revision, resp->kvs, resp->n_kvs);
}

static void act_read(sst__fleet_act_t *a)
{
    sst_fleet_t *f = a->f;
    sst_etcd_range_t q = {.key = sst_str(f->ovr_prefix, f->ovr_prefix_len), .prefix = true};
    int rc = sst_etcd_range(f->etcd, &q, act_on_read, a);
    if (rc != 0) {
        act_unavailable(a, rc, "reading the overrides", "");
        act_abandon(a);
    }
}

static void act_on_grant(void *arg, int status, const sst_etcd_resp_t *resp)
{
    sst__fleet_act_t *a = arg;
    if (status != 0 || resp->lease_id == 0) {
        act_unavailable(a, status ? status : SST_EPROTO, "granting the action's lease",
                        resp->message);
        act_finish(a);
        return;
    }
    a->lease = resp->lease_id;
    act_txn(a);
}

/* The action's own lease: its TTL rounded up to whole seconds (etcd counts seconds); the
 * key's expires_at stays exact and every instance enforces it. */
static void act_grant(sst__fleet_act_t *a)
{
    int rc =
        sst_etcd_lease_grant(a->f->etcd, (int64_t)((a->ttl_ms + 999) / 1000), 0, act_on_grant, a);
    if (rc != 0) {
        act_unavailable(a, rc, "granting the action's lease", "");
        act_finish(a);
    }
}

static void act_on_delete(void *arg, int status, const sst_etcd_resp_t *resp)
{
    sst__fleet_act_t *a = arg;
    if (status != 0) {
        act_unavailable(a, status, "deleting", resp->message);
        act_finish(a);
        return;
    }
    a->res.status = 0;
    a->res.revision = resp->revision;
    snprintf(a->res.message, sizeof(a->res.message), "%s of %s %s: %s at etcd revision %" PRId64,
             act_words[a->op], act_what(a), a->target,
             resp->count > 0 ? "deleted" : "nothing was set", resp->revision);
    act_finish(a);
}

static void act_begin(sst__fleet_act_t *a)
{
    if (!a->put) {
        /* clear and undrain: deleting is idempotent; the key's lease expires by itself */
        sst_etcd_delete_t d = {.key = sst_str(a->key, a->key_len)};
        int rc = sst_etcd_delete(a->f->etcd, &d, act_on_delete, a);
        if (rc != 0) {
            act_unavailable(a, rc, "deleting", "");
            act_finish(a);
        }
    } else if (a->checked) {
        act_read(a);
    } else if (a->ttl_ms != 0) {
        act_grant(a);
    } else {
        act_txn(a);
    }
}

int sst_fleet_action(sst_fleet_t *f, const sst_fleet_action_t *in, sst_fleet_action_cb cb,
                     void *arg)
{
    if (f == NULL || in == NULL || cb == NULL || (in->target.len > 0 && in->target.base == NULL) ||
        (in->reason.len > 0 && in->reason.base == NULL) ||
        (in->client.len > 0 && in->client.base == NULL))
        return SST_EINVAL;
    if (f->stopping)
        return SST_ECANCELED;
    sst__fleet_act_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return SST_ENOMEM;
    a->f = f;
    a->cb = cb;
    a->arg = arg;
    if (act_prepare(a, in) != 0) {
        act_finish(a); /* answered from the loop like every other outcome */
        return 0;
    }
    act_begin(a);
    return 0;
}
