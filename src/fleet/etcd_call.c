/* The etcd client's request kinds: range, put, delete, txn, compact, leases and watches, each
 * built by the codec and started as a call, and the watch stream split into messages. Opens no
 * connection and picks no endpoint itself: etcd.c dispatches, retries and delivers. */
#include "fleet/etcd.h"

#include <stdlib.h>

#include <json-c/json.h>
#include <uv.h>

#include "fleet/etcd_codec.h"
#include "fleet/etcd_internal.h"
#include "sidestep/error.h"

/* ---- the watch stream -------------------------------------------------------------------- */

/* One complete watch stream message. Returns false when the watch ended. */
static bool watch_on_message(etcd_call_t *c, json_object *obj)
{
    sst__etcd_arena_t arena = {NULL};
    sst_etcd_watch_msg_t msg;
    int rc = sst__etcd_decode_watch(obj, &arena, &msg, &c->diag);
    json_object_put(obj);
    if (rc == 0 && msg.kind == SST_ETCD_WATCH_END) {
        c->end = msg; /* compact_revision; err is the status below */
        rc = msg.err;
    } else if (rc == 0 && msg.kind == SST_ETCD_WATCH_CREATED) {
        if (c->created) {
            rc = SST_EPROTO;
            sst__etcd_diag_printf(&c->diag, "malformed watch stream: a second creation message");
        }
        c->created = true;
        /* Watching from now, the creation's header revision is no bound: etcd reads it after
         * registering the watcher, so a write in between is both at or below it and delivered
         * as an event. last_revision stays unknown (0) until an event or a progress message. */
        if (c->conn != NULL)
            uv_timer_stop(&c->conn->timer); /* confirmed: no deadline from here on */
    } else if (rc == 0 && !c->created) {
        rc = SST_EPROTO;
        sst__etcd_diag_printf(&c->diag, "malformed watch stream: a message before the creation");
    } else if (rc == 0 && msg.kind == SST_ETCD_WATCH_EVENTS) {
        int64_t last = c->last_revision;
        for (size_t i = 0; i < msg.n_events && rc == 0; i++) {
            int64_t r = msg.events[i].kv.mod_revision;
            /* the caller resumes from last_revision + 1: a gap or a step back would lose or
             * repeat events, so it is refused rather than delivered */
            if (r <= c->last_revision || r < last) {
                rc = SST_EPROTO;
                sst__etcd_diag_printf(&c->diag,
                                      "malformed watch stream: event revision %lld after %lld",
                                      (long long)r, (long long)last);
            }
            last = r;
        }
        if (rc == 0)
            c->last_revision = last;
    } else if (rc == 0 && msg.revision > c->last_revision) {
        c->last_revision = msg.revision; /* progress */
    }
    if (rc != 0) {
        sst__etcd_arena_free(&arena);
        sst__etcd_call_fail(c, rc, true);
        return false;
    }
    msg.last_revision = c->last_revision;
    c->wcb(c->arg, &msg);
    sst__etcd_arena_free(&arena);
    return !c->finished;
}

/* Splits the watch body into JSON messages: chunk boundaries need not match them. Each message
 * is bounded by max_message before json-c buffers more of it. */
int sst__etcd_watch_feed(etcd_call_t *c, const char *at, size_t len)
{
    size_t max = c->e->max_message;
    while (len > 0) {
        size_t room = max - c->msg_bytes + 1; /* one byte past the bound proves it too large */
        size_t n = len < room ? len : room;
        json_object *obj = json_tokener_parse_ex(c->tok, at, (int)n);
        enum json_tokener_error jerr = json_tokener_get_error(c->tok);
        if (obj != NULL) {
            size_t used = json_tokener_get_parse_end(c->tok);
            json_tokener_reset(c->tok);
            c->msg_bytes = 0;
            at += used;
            len -= used;
            if (!watch_on_message(c, obj))
                return -1;
            continue;
        }
        if (jerr != json_tokener_continue) {
            sst__etcd_diag_printf(&c->diag, "malformed watch stream: %s",
                                  json_tokener_error_desc(jerr));
            sst__etcd_call_fail(c, SST_EPROTO, true);
            return -1;
        }
        c->msg_bytes += n;
        at += n;
        len -= n;
        if (c->msg_bytes > max) {
            sst__etcd_diag_printf(&c->diag, "watch message larger than %zu bytes", max);
            sst__etcd_call_fail(c, SST_E2BIG, true);
            return -1;
        }
    }
    return 0;
}

/* ---- calls -------------------------------------------------------------------------------- */

/* Starts a call whose request body is `body` (consumed). */
static int call_start(sst_etcd_t *e, sst__etcd_call_t kind, json_object *body, sst_etcd_cb cb,
                      sst_etcd_watch_cb wcb, void *arg, etcd_call_t **out)
{
    etcd_call_t *c = calloc(1, kind == SST__ETCD_WATCH ? sizeof(sst_etcd_watch_t) : sizeof(*c));
    int rc;
    if (c == NULL) {
        json_object_put(body);
        return SST_ENOMEM;
    }
    rc = sst__etcd_json_text(body, e->max_message, &c->body, &c->body_len);
    json_object_put(body);
    if (rc == 0 && kind == SST__ETCD_WATCH) {
        if ((c->tok = json_tokener_new()) == NULL)
            rc = SST_ENOMEM;
        else
            json_tokener_set_flags(c->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
    }
    if (rc != 0) {
        sst__etcd_call_free(c);
        return rc;
    }
    c->e = e;
    c->kind = kind;
    c->cb = cb;
    c->wcb = wcb;
    c->arg = arg;
    /* The loop's cached time may be old when the caller ran long since the loop last woke;
     * timeouts counted from it would fire at once. */
    uv_update_time(e->loop);
    c->deadline_ms = uv_now(e->loop) + e->request_timeout_ms;
    c->first_endpoint = e->preferred;
    sst_list_append(&e->calls, &c->link);
    if (out != NULL)
        *out = c;
    sst__etcd_call_dispatch(c, true);
    return 0;
}

static int etcd_check(const sst_etcd_t *e, const void *cb, const void *req)
{
    if (e == NULL || cb == NULL || req == NULL)
        return SST_EINVAL;
    return e->closing ? SST_ECANCELED : 0;
}

int sst_etcd_range(sst_etcd_t *e, const sst_etcd_range_t *req, sst_etcd_cb cb, void *arg)
{
    json_object *o = NULL;
    int rc = etcd_check(e, (const void *)cb, req);
    if (rc == 0 && (rc = sst__etcd_json_range(req, &o)) == 0)
        rc = call_start(e, SST__ETCD_RANGE, o, cb, NULL, arg, NULL);
    return rc;
}

int sst_etcd_put(sst_etcd_t *e, const sst_etcd_put_t *req, sst_etcd_cb cb, void *arg)
{
    json_object *o = NULL;
    int rc = etcd_check(e, (const void *)cb, req);
    if (rc == 0 && (rc = sst__etcd_json_put(req, &o)) == 0)
        rc = call_start(e, SST__ETCD_PUT, o, cb, NULL, arg, NULL);
    return rc;
}

int sst_etcd_delete(sst_etcd_t *e, const sst_etcd_delete_t *req, sst_etcd_cb cb, void *arg)
{
    json_object *o = NULL;
    int rc = etcd_check(e, (const void *)cb, req);
    if (rc == 0 && (rc = sst__etcd_json_delete(req, &o)) == 0)
        rc = call_start(e, SST__ETCD_DELETE, o, cb, NULL, arg, NULL);
    return rc;
}

int sst_etcd_txn(sst_etcd_t *e, const sst_etcd_txn_t *req, sst_etcd_cb cb, void *arg)
{
    json_object *o = NULL;
    int rc = etcd_check(e, (const void *)cb, req);
    if (rc == 0 && (rc = sst__etcd_json_txn(req, &o)) == 0)
        rc = call_start(e, SST__ETCD_TXN, o, cb, NULL, arg, NULL);
    return rc;
}

int sst_etcd_compact(sst_etcd_t *e, int64_t revision, bool physical, sst_etcd_cb cb, void *arg)
{
    json_object *o = NULL;
    int rc = etcd_check(e, (const void *)cb, e);
    if (rc == 0 && (rc = sst__etcd_json_compact(revision, physical, &o)) == 0)
        rc = call_start(e, SST__ETCD_COMPACT, o, cb, NULL, arg, NULL);
    return rc;
}

static int etcd_lease_call(sst_etcd_t *e, sst__etcd_call_t kind, int64_t ttl_s, int64_t id,
                           sst_etcd_cb cb, void *arg)
{
    json_object *o = NULL;
    int rc = etcd_check(e, (const void *)cb, e);
    if (rc == 0 && (rc = sst__etcd_json_lease(kind, ttl_s, id, &o)) == 0)
        rc = call_start(e, kind, o, cb, NULL, arg, NULL);
    return rc;
}

int sst_etcd_lease_grant(sst_etcd_t *e, int64_t ttl_s, int64_t id, sst_etcd_cb cb, void *arg)
{
    return etcd_lease_call(e, SST__ETCD_LEASE_GRANT, ttl_s, id, cb, arg);
}

int sst_etcd_lease_keepalive(sst_etcd_t *e, int64_t id, sst_etcd_cb cb, void *arg)
{
    return etcd_lease_call(e, SST__ETCD_LEASE_KEEPALIVE, 0, id, cb, arg);
}

int sst_etcd_lease_revoke(sst_etcd_t *e, int64_t id, sst_etcd_cb cb, void *arg)
{
    return etcd_lease_call(e, SST__ETCD_LEASE_REVOKE, 0, id, cb, arg);
}

int sst_etcd_watch(sst_etcd_t *e, const sst_etcd_watch_opts_t *opts, sst_etcd_watch_cb cb,
                   void *arg, sst_etcd_watch_t **out)
{
    json_object *o = NULL;
    etcd_call_t *c = NULL;
    int rc = etcd_check(e, (const void *)cb, opts);
    if (rc == 0 && out == NULL)
        rc = SST_EINVAL;
    if (rc != 0 || (rc = sst__etcd_json_watch(opts, &o)) != 0)
        return rc;
    if ((rc = call_start(e, SST__ETCD_WATCH, o, NULL, cb, arg, &c)) != 0)
        return rc;
    if (opts->start_revision > 0)
        c->last_revision = opts->start_revision - 1;
    *out = (sst_etcd_watch_t *)c;
    return 0;
}

void sst_etcd_watch_cancel(sst_etcd_watch_t *w)
{
    etcd_call_t *c = &w->call;
    if (c->finished)
        return;
    sst__etcd_diag_printf(&c->diag, "watch cancelled");
    c->diag.grpc_code = 0;
    sst__etcd_call_fail(c, SST_ECANCELED, true);
}
