/* etcd v3 gateway response decoding: unary bodies, error bodies and watch stream messages into
 * sst_etcd_* structs. Pure; every field read from etcd is type-checked, and anything unexpected
 * is SST_EPROTO with a message naming the field, never a crash or a silent default. */
#include "fleet/etcd_codec.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidestep/error.h"

/* ---- decoding ----------------------------------------------------------------------------- */

static void diag_set(sst__etcd_diag_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void diag_set(sst__etcd_diag_t *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(d->message, sizeof(d->message), fmt, ap) < 0)
        d->message[0] = 0;
    va_end(ap);
}

/* Copies text from etcd, printable ASCII only: it ends up in logs and JSON answers. */
static void diag_copy(sst__etcd_diag_t *d, const char *s, size_t n)
{
    size_t i = 0;
    for (; i < n && i + 1 < sizeof(d->message); i++) {
        unsigned char c = (unsigned char)s[i];
        d->message[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    d->message[i] = 0;
}

static int proto_fail(sst__etcd_diag_t *d, const char *field, const char *what)
{
    diag_set(d, "malformed etcd response: %s: %s", field, what);
    return SST_EPROTO;
}

/* Field getters: 0 with *out set (an absent or null field gives the zero value, as protobuf's
 * JSON form leaves defaults out), or SST_EPROTO on a wrong type. */
static json_object *field(json_object *o, const char *name)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, name, &v))
        return NULL;
    return v; /* NULL for a JSON null */
}

static int parse_i64_text(const char *s, size_t n, int64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return SST_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return SST_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > INT64_MAX)
        return SST_EINVAL;
    *out = (int64_t)v;
    return 0;
}

static int get_i64(json_object *o, const char *name, int64_t *out, sst__etcd_diag_t *d)
{
    json_object *v = field(o, name);
    *out = 0;
    if (v == NULL)
        return 0;
    if (json_object_is_type(v, json_type_string)) {
        if (parse_i64_text(json_object_get_string(v), (size_t)json_object_get_string_len(v), out) !=
            0)
            return proto_fail(d, name, "expected a non-negative decimal int64");
        return 0;
    }
    if (json_object_is_type(v, json_type_int)) {
        int64_t x = json_object_get_int64(v);
        if (x < 0)
            return proto_fail(d, name, "negative");
        *out = x;
        return 0;
    }
    return proto_fail(d, name, "expected an int64");
}

static int get_bool(json_object *o, const char *name, bool *out, sst__etcd_diag_t *d)
{
    json_object *v = field(o, name);
    *out = false;
    if (v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_boolean))
        return proto_fail(d, name, "expected a boolean");
    *out = json_object_get_boolean(v) != 0;
    return 0;
}

static int get_obj(json_object *o, const char *name, json_object **out, sst__etcd_diag_t *d)
{
    json_object *v = field(o, name);
    *out = v;
    if (v != NULL && !json_object_is_type(v, json_type_object))
        return proto_fail(d, name, "expected an object");
    return 0;
}

static int get_array(json_object *o, const char *name, json_object **out, sst__etcd_diag_t *d)
{
    json_object *v = field(o, name);
    *out = v;
    if (v != NULL && !json_object_is_type(v, json_type_array))
        return proto_fail(d, name, "expected an array");
    return 0;
}

/* Text field (etcd's own messages); *out is NULL when absent. */
static int get_text(json_object *o, const char *name, json_object **out, sst__etcd_diag_t *d)
{
    json_object *v = field(o, name);
    *out = v;
    if (v != NULL && !json_object_is_type(v, json_type_string))
        return proto_fail(d, name, "expected a string");
    return 0;
}

/* Base64 bytes field, decoded into the arena with a NUL after them. */
static int get_bytes(json_object *o, const char *name, sst__etcd_arena_t *a, sst_str_t *out,
                     sst__etcd_diag_t *d)
{
    json_object *v = field(o, name);
    size_t n = 0;
    uint8_t *buf;
    *out = sst_str("", 0);
    if (v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_string))
        return proto_fail(d, name, "expected a base64 string");
    size_t len = (size_t)json_object_get_string_len(v);
    if ((buf = sst__etcd_arena_alloc(a, len / 4 * 3 + 1)) == NULL)
        return SST_ENOMEM;
    if (sst__etcd_b64_decode(json_object_get_string(v), len, buf, &n) != 0)
        return proto_fail(d, name, "invalid base64");
    buf[n] = 0;
    *out = sst_str((const char *)buf, n);
    return 0;
}

static int decode_kv(json_object *o, sst__etcd_arena_t *a, sst_etcd_kv_t *kv, sst__etcd_diag_t *d)
{
    int rc;
    if (!json_object_is_type(o, json_type_object))
        return proto_fail(d, "kv", "expected an object");
    if ((rc = get_bytes(o, "key", a, &kv->key, d)) != 0 ||
        (rc = get_bytes(o, "value", a, &kv->value, d)) != 0 ||
        (rc = get_i64(o, "create_revision", &kv->create_revision, d)) != 0 ||
        (rc = get_i64(o, "mod_revision", &kv->mod_revision, d)) != 0 ||
        (rc = get_i64(o, "version", &kv->version, d)) != 0 ||
        (rc = get_i64(o, "lease", &kv->lease, d)) != 0)
        return rc;
    if (kv->key.len == 0)
        return proto_fail(d, "kv", "empty key");
    return 0;
}

static int decode_kvs(json_object *o, const char *name, sst__etcd_arena_t *a,
                      const sst_etcd_kv_t **out, size_t *n_out, sst__etcd_diag_t *d)
{
    json_object *arr;
    int rc = get_array(o, name, &arr, d);
    *out = NULL;
    *n_out = 0;
    if (rc != 0 || arr == NULL)
        return rc;
    size_t n = json_object_array_length(arr);
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / sizeof(sst_etcd_kv_t))
        return SST_ENOMEM;
    sst_etcd_kv_t *kvs = sst__etcd_arena_alloc(a, n * sizeof(*kvs));
    if (kvs == NULL)
        return SST_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if ((rc = decode_kv(json_object_array_get_idx(arr, i), a, &kvs[i], d)) != 0)
            return rc;
    *out = kvs;
    *n_out = n;
    return 0;
}

static int decode_header(json_object *o, int64_t *revision, sst__etcd_diag_t *d)
{
    json_object *h;
    int rc = get_obj(o, "header", &h, d);
    *revision = 0;
    if (rc != 0 || h == NULL)
        return rc;
    return get_i64(h, "revision", revision, d);
}

int sst__etcd_parse_json(const char *body, size_t len, json_object **out, sst__etcd_diag_t *d)
{
    json_tokener *tok;
    json_object *o;
    *out = NULL;
    if (len > INT_MAX) {
        diag_set(d, "etcd response too large");
        return SST_E2BIG;
    }
    if ((tok = json_tokener_new()) == NULL)
        return SST_ENOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
    o = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (o == NULL) {
        if (jerr == json_tokener_continue || jerr == json_tokener_success)
            diag_set(d, "malformed etcd response: truncated JSON");
        else
            diag_set(d, "malformed etcd response: %s at byte %zu", json_tokener_error_desc(jerr),
                     end);
        return SST_EPROTO;
    }
    for (size_t i = end; i < len; i++) {
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n') {
            json_object_put(o);
            diag_set(d, "malformed etcd response: data after the JSON object");
            return SST_EPROTO;
        }
    }
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        diag_set(d, "malformed etcd response: expected a JSON object");
        return SST_EPROTO;
    }
    *out = o;
    return 0;
}

/* An error body: the unary form {"error": text, "message": text, "code": N} or the streamed form
 * {"error": {"grpc_code": N, "message": text, ...}}. Returns the mapped code, or SST_EPROTO when
 * the body says nothing usable. */
static int decode_error(json_object *root, unsigned http_status, sst__etcd_diag_t *d)
{
    json_object *e = field(root, "error"), *code, *msg = NULL;
    int64_t c = 0;
    if (e != NULL && json_object_is_type(e, json_type_object)) {
        code = field(e, "grpc_code");
        msg = field(e, "message");
    } else {
        code = field(root, "code");
        msg = field(root, "message");
        if (msg == NULL)
            msg = e;
    }
    if (code == NULL || !json_object_is_type(code, json_type_int) ||
        (c = json_object_get_int64(code)) <= 0 || c > 16) {
        diag_set(d, "etcd answered HTTP %u without a gRPC status", http_status);
        return SST_EPROTO;
    }
    d->grpc_code = (int)c;
    if (msg != NULL && json_object_is_type(msg, json_type_string))
        diag_copy(d, json_object_get_string(msg), (size_t)json_object_get_string_len(msg));
    else
        diag_set(d, "etcd error (gRPC code %d)", d->grpc_code);
    return sst__etcd_grpc_error(d->grpc_code);
}

static int decode_op(json_object *o, sst__etcd_arena_t *a, sst_etcd_resp_t *out,
                     sst__etcd_diag_t *d);

static int decode_txn(json_object *o, sst__etcd_arena_t *a, sst_etcd_resp_t *out,
                      sst__etcd_diag_t *d)
{
    json_object *arr;
    int rc;
    if ((rc = get_bool(o, "succeeded", &out->succeeded, d)) != 0 ||
        (rc = get_array(o, "responses", &arr, d)) != 0 || arr == NULL)
        return rc;
    size_t n = json_object_array_length(arr);
    if (n == 0)
        return 0;
    if (n > SST_ETCD_MAX_TXN_OPS)
        return proto_fail(d, "responses", "more than the ops sent");
    sst_etcd_resp_t *ops = sst__etcd_arena_alloc(a, n * sizeof(*ops));
    if (ops == NULL)
        return SST_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if ((rc = decode_op(json_object_array_get_idx(arr, i), a, &ops[i], d)) != 0)
            return rc;
    out->ops = ops;
    out->n_ops = n;
    return 0;
}

/* The body of one call's response (or of one txn op's). */
static int decode_body(sst__etcd_call_t call, json_object *o, sst__etcd_arena_t *a,
                       sst_etcd_resp_t *out, sst__etcd_diag_t *d)
{
    json_object *prev, *err;
    int rc;
    if ((rc = decode_header(o, &out->revision, d)) != 0)
        return rc;
    switch (call) {
    case SST__ETCD_RANGE:
        out->type = SST_ETCD_OP_RANGE;
        if ((rc = decode_kvs(o, "kvs", a, &out->kvs, &out->n_kvs, d)) != 0 ||
            (rc = get_i64(o, "count", &out->count, d)) != 0)
            return rc;
        return get_bool(o, "more", &out->more, d);
    case SST__ETCD_PUT:
        out->type = SST_ETCD_OP_PUT;
        if ((rc = get_obj(o, "prev_kv", &prev, d)) != 0 || prev == NULL)
            return rc;
        sst_etcd_kv_t *kv = sst__etcd_arena_alloc(a, sizeof(*kv));
        if (kv == NULL)
            return SST_ENOMEM;
        if ((rc = decode_kv(prev, a, kv, d)) != 0)
            return rc;
        out->kvs = kv;
        out->n_kvs = 1;
        return 0;
    case SST__ETCD_DELETE:
        out->type = SST_ETCD_OP_DELETE;
        if ((rc = get_i64(o, "deleted", &out->count, d)) != 0)
            return rc;
        return decode_kvs(o, "prev_kvs", a, &out->kvs, &out->n_kvs, d);
    case SST__ETCD_TXN:
        return decode_txn(o, a, out, d);
    case SST__ETCD_COMPACT:
    case SST__ETCD_LEASE_REVOKE:
        return 0;
    case SST__ETCD_LEASE_GRANT:
    case SST__ETCD_LEASE_KEEPALIVE:
        if ((rc = get_i64(o, "ID", &out->lease_id, d)) != 0 ||
            (rc = get_i64(o, "TTL", &out->ttl, d)) != 0 || (rc = get_text(o, "error", &err, d)))
            return rc;
        if (err != NULL && json_object_get_string_len(err) > 0) {
            diag_copy(d, json_object_get_string(err), (size_t)json_object_get_string_len(err));
            return SST_EIO;
        }
        if (out->lease_id == 0)
            return proto_fail(d, "ID", "missing");
        if (call == SST__ETCD_LEASE_KEEPALIVE && out->ttl == 0) {
            /* etcd answers a keepalive of an unknown lease with TTL 0 */
            diag_set(d, "lease %lld not found (expired or revoked)", (long long)out->lease_id);
            return SST_ENOENT;
        }
        return 0;
    case SST__ETCD_WATCH:
        break;
    }
    return proto_fail(d, "response", "unexpected call");
}

static int decode_op(json_object *o, sst__etcd_arena_t *a, sst_etcd_resp_t *out,
                     sst__etcd_diag_t *d)
{
    static const struct {
        const char *name;
        sst__etcd_call_t call;
    } kinds[] = {
        {"response_range", SST__ETCD_RANGE},
        {"response_put", SST__ETCD_PUT},
        {"response_delete_range", SST__ETCD_DELETE},
    };
    if (!json_object_is_type(o, json_type_object) || json_object_object_length(o) != 1)
        return proto_fail(d, "responses[]", "expected an object with one response");
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        json_object *v;
        int rc = get_obj(o, kinds[i].name, &v, d);
        if (rc != 0)
            return rc;
        if (v != NULL)
            return decode_body(kinds[i].call, v, a, out, d);
    }
    return proto_fail(d, "responses[]", "unknown response kind");
}

int sst__etcd_decode(sst__etcd_call_t call, unsigned http_status, const char *body, size_t len,
                     sst__etcd_arena_t *a, sst_etcd_resp_t *out, sst__etcd_diag_t *d)
{
    json_object *root = NULL, *o;
    int rc;

    memset(out, 0, sizeof(*out));
    d->grpc_code = 0;
    d->message[0] = 0;
    rc = sst__etcd_parse_json(body, len, &root, d);
    if (http_status != 200) {
        if (rc != 0) {
            diag_set(d, "etcd answered HTTP %u without an etcd error body", http_status);
            return SST_EPROTO;
        }
        rc = decode_error(root, http_status, d);
        goto done;
    }
    if (rc != 0)
        return rc;
    o = root;
    if (call == SST__ETCD_LEASE_KEEPALIVE) {
        /* a streaming call: the gateway wraps the message as {"result": ...} or {"error": ...} */
        if (field(root, "error") != NULL) {
            rc = decode_error(root, http_status, d);
            goto done;
        }
        if ((rc = get_obj(root, "result", &o, d)) != 0)
            goto done;
        if (o == NULL) {
            rc = proto_fail(d, "result", "missing");
            goto done;
        }
    }
    rc = decode_body(call, o, a, out, d);
done:
    json_object_put(root);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

static int decode_event(json_object *o, sst__etcd_arena_t *a, sst_etcd_event_t *ev,
                        sst__etcd_diag_t *d)
{
    json_object *type, *kv, *prev;
    int rc;
    if (!json_object_is_type(o, json_type_object))
        return proto_fail(d, "events[]", "expected an object");
    type = field(o, "type");
    if (type == NULL) {
        ev->type = SST_ETCD_EVENT_PUT; /* the enum's zero value is left out */
    } else if (json_object_is_type(type, json_type_string)) {
        const char *t = json_object_get_string(type);
        if (strcmp(t, "PUT") == 0)
            ev->type = SST_ETCD_EVENT_PUT;
        else if (strcmp(t, "DELETE") == 0)
            ev->type = SST_ETCD_EVENT_DELETE;
        else
            return proto_fail(d, "type", "unknown event type");
    } else if (json_object_is_type(type, json_type_int) && json_object_get_int64(type) >= 0 &&
               json_object_get_int64(type) <= 1) {
        ev->type = json_object_get_int64(type) == 0 ? SST_ETCD_EVENT_PUT : SST_ETCD_EVENT_DELETE;
    } else {
        return proto_fail(d, "type", "expected PUT or DELETE");
    }
    if ((rc = get_obj(o, "kv", &kv, d)) != 0 || (rc = get_obj(o, "prev_kv", &prev, d)) != 0)
        return rc;
    if (kv == NULL)
        return proto_fail(d, "kv", "missing");
    if ((rc = decode_kv(kv, a, &ev->kv, d)) != 0)
        return rc;
    if (prev != NULL) {
        ev->has_prev = true;
        return decode_kv(prev, a, &ev->prev_kv, d);
    }
    return 0;
}

int sst__etcd_decode_watch(json_object *msg, sst__etcd_arena_t *a, sst_etcd_watch_msg_t *out,
                           sst__etcd_diag_t *d)
{
    json_object *res, *arr, *reason;
    bool created, canceled;
    int rc;

    memset(out, 0, sizeof(*out));
    d->grpc_code = 0;
    d->message[0] = 0;
    out->message = d->message;
    if (!json_object_is_type(msg, json_type_object))
        return proto_fail(d, "watch message", "expected an object");
    if (field(msg, "error") != NULL) {
        out->kind = SST_ETCD_WATCH_END;
        out->err = decode_error(msg, 200, d);
        out->grpc_code = d->grpc_code;
        return out->err == SST_EPROTO ? SST_EPROTO : 0;
    }
    if ((rc = get_obj(msg, "result", &res, d)) != 0)
        return rc;
    if (res == NULL)
        return proto_fail(d, "result", "missing");
    if ((rc = decode_header(res, &out->revision, d)) != 0 ||
        (rc = get_bool(res, "created", &created, d)) != 0 ||
        (rc = get_bool(res, "canceled", &canceled, d)) != 0 ||
        (rc = get_i64(res, "compact_revision", &out->compact_revision, d)) != 0 ||
        (rc = get_text(res, "cancel_reason", &reason, d)) != 0 ||
        (rc = get_array(res, "events", &arr, d)) != 0)
        return rc;
    if (canceled) {
        out->kind = SST_ETCD_WATCH_END;
        if (out->compact_revision > 0) {
            out->err = SST_ERANGE;
            diag_set(d, "watch start revision compacted (compact revision %lld)",
                     (long long)out->compact_revision);
        } else {
            out->err = SST_EIO;
            if (reason != NULL && json_object_get_string_len(reason) > 0)
                diag_copy(d, json_object_get_string(reason),
                          (size_t)json_object_get_string_len(reason));
            else
                diag_set(d, "watch cancelled by etcd");
        }
        return 0;
    }
    size_t n = arr != NULL ? json_object_array_length(arr) : 0;
    if (created) {
        out->kind = SST_ETCD_WATCH_CREATED;
        if (n > 0)
            return proto_fail(d, "events", "in a creation message");
        return 0;
    }
    if (n == 0) {
        out->kind = SST_ETCD_WATCH_PROGRESS;
        return 0;
    }
    if (n > SIZE_MAX / sizeof(sst_etcd_event_t))
        return SST_ENOMEM;
    sst_etcd_event_t *evs = sst__etcd_arena_alloc(a, n * sizeof(*evs));
    if (evs == NULL)
        return SST_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if ((rc = decode_event(json_object_array_get_idx(arr, i), a, &evs[i], d)) != 0)
            return rc;
    out->kind = SST_ETCD_WATCH_EVENTS;
    out->events = evs;
    out->n_events = n;
    return 0;
}
