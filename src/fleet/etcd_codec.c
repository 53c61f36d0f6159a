/* etcd v3 gateway codec: the arena results live in, base64, and the JSON request bodies. Pure (no
 * I/O, no clock); decoding is in etcd_decode.c. */
#include "fleet/etcd_codec.h"

#include <limits.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "sidestep/error.h"

/* ---- arena -------------------------------------------------------------------------------- */

struct sst__etcd_block_s {
    sst__etcd_block_t *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

#define ARENA_BLOCK 8192
#define ARENA_ALIGN (alignof(max_align_t))

void *sst__etcd_arena_alloc(sst__etcd_arena_t *a, size_t n)
{
    if (n > SIZE_MAX / 2)
        return NULL;
    size_t need = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (need == 0)
        need = ARENA_ALIGN;
    sst__etcd_block_t *b = a->head;
    if (b == NULL || b->cap - b->used < need) {
        size_t cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    memset(p, 0, n);
    return p;
}

void sst__etcd_arena_free(sst__etcd_arena_t *a)
{
    while (a->head != NULL) {
        sst__etcd_block_t *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

/* ---- base64 ------------------------------------------------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t sst__etcd_b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void sst__etcd_b64_encode(const void *in, size_t n, char *out)
{
    const uint8_t *p = in;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *out++ = b64_alphabet[v >> 18];
        *out++ = b64_alphabet[(v >> 12) & 63];
        *out++ = b64_alphabet[(v >> 6) & 63];
        *out++ = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *out++ = b64_alphabet[v >> 18];
        *out++ = b64_alphabet[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *out++ = b64_alphabet[v >> 18];
        *out++ = b64_alphabet[(v >> 12) & 63];
        *out++ = b64_alphabet[(v >> 6) & 63];
        *out++ = '=';
    }
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int sst__etcd_b64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len)
{
    size_t o = 0;
    if (n % 4 != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int v[4];
        size_t pad = 0;
        for (size_t k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && last && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0 || (v[k] = b64_value(c)) < 0)
                return SST_EINVAL; /* '=' before data, or outside the alphabet */
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | v[3];
        /* canonical form only: the bits a pad character hides must be zero */
        if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0))
            return SST_EINVAL;
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(w >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)w;
    }
    *out_len = o;
    return 0;
}

/* ---- paths and errors --------------------------------------------------------------------- */

static const char *const call_paths[] = {
    [SST__ETCD_RANGE] = "/v3/kv/range",
    [SST__ETCD_PUT] = "/v3/kv/put",
    [SST__ETCD_DELETE] = "/v3/kv/deleterange",
    [SST__ETCD_TXN] = "/v3/kv/txn",
    [SST__ETCD_COMPACT] = "/v3/kv/compaction",
    [SST__ETCD_LEASE_GRANT] = "/v3/lease/grant",
    [SST__ETCD_LEASE_KEEPALIVE] = "/v3/lease/keepalive",
    [SST__ETCD_LEASE_REVOKE] = "/v3/lease/revoke",
    [SST__ETCD_WATCH] = "/v3/watch",
};

const char *sst__etcd_path(sst__etcd_call_t call)
{
    return call_paths[call];
}

bool sst__etcd_idempotent(sst__etcd_call_t call)
{
    switch (call) {
    case SST__ETCD_RANGE:
    case SST__ETCD_DELETE:
    case SST__ETCD_COMPACT:
    case SST__ETCD_LEASE_KEEPALIVE:
    case SST__ETCD_LEASE_REVOKE:
        return true;
    case SST__ETCD_PUT:         /* a second put is a second revision and a second watch event */
    case SST__ETCD_TXN:         /* a second run may see its own first write and fail the compare */
    case SST__ETCD_LEASE_GRANT: /* a second lease would leak until its TTL */
    case SST__ETCD_WATCH:
        return false;
    }
    return false;
}

int sst__etcd_grpc_error(int grpc_code)
{
    switch (grpc_code) {
    case 1: /* Canceled */
        return SST_ECANCELED;
    case 3: /* InvalidArgument: bad key, duplicate key in txn, too many ops, request too large */
        return SST_EINVAL;
    case 4: /* DeadlineExceeded: "etcdserver: request timed out" */
        return SST_ETIMEDOUT;
    case 5: /* NotFound: lease not found */
        return SST_ENOENT;
    case 6: /* AlreadyExists: lease ID taken */
        return SST_EEXIST;
    case 7:  /* PermissionDenied */
    case 16: /* Unauthenticated */
        return SST_EACCES;
    case 8: /* ResourceExhausted: too many requests, quota */
        return SST_E2BIG;
    case 9:  /* FailedPrecondition */
    case 10: /* Aborted */
        return SST_EBUSY;
    case 11: /* OutOfRange: required revision compacted, or a future revision */
        return SST_ERANGE;
    case 14: /* Unavailable: no leader, leader changed, not capable */
        return SST_EAGAIN;
    default:
        return SST_EIO;
    }
}

/* ---- request bodies ----------------------------------------------------------------------- */

size_t sst_etcd_prefix_end(const char *key, size_t len, char *out)
{
    size_t n = len;
    while (n > 0 && (unsigned char)key[n - 1] == 0xff)
        n--;
    if (n == 0) {
        out[0] = 0; /* etcd: range_end "\0" is the end of the keyspace */
        return 1;
    }
    memcpy(out, key, n);
    out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
    return n;
}

/* Adds `name`: base64 of bytes. */
static int json_add_bytes(json_object *o, const char *name, const char *p, size_t n)
{
    size_t blen = sst__etcd_b64_len(n);
    if (n > (size_t)INT_MAX / 2)
        return SST_E2BIG;
    char *tmp = malloc(blen + 1);
    if (tmp == NULL)
        return SST_ENOMEM;
    sst__etcd_b64_encode(p, n, tmp);
    json_object *s = json_object_new_string_len(tmp, (int)blen);
    free(tmp);
    if (s == NULL || json_object_object_add(o, name, s) != 0) {
        json_object_put(s);
        return SST_ENOMEM;
    }
    return 0;
}

/* Adds `name`: an int64 as a decimal string, as the gateway writes them. */
static int json_add_i64(json_object *o, const char *name, int64_t v)
{
    char buf[24];
    if (v < 0)
        return SST_EINVAL;
    size_t n = sst_u64_to_dec((uint64_t)v, buf);
    json_object *s = json_object_new_string_len(buf, (int)n);
    if (s == NULL || json_object_object_add(o, name, s) != 0) {
        json_object_put(s);
        return SST_ENOMEM;
    }
    return 0;
}

static int json_add_bool(json_object *o, const char *name, bool v)
{
    json_object *b = json_object_new_boolean(v);
    if (b == NULL || json_object_object_add(o, name, b) != 0) {
        json_object_put(b);
        return SST_ENOMEM;
    }
    return 0;
}

static int json_add_obj(json_object *o, const char *name, json_object *v)
{
    if (json_object_object_add(o, name, v) != 0) {
        json_object_put(v);
        return SST_ENOMEM;
    }
    return 0;
}

/* key and range_end of a range selector (range, delete, compare, watch). */
static int json_add_range(json_object *o, sst_str_t key, sst_str_t range_end, bool prefix)
{
    int rc;
    if (key.len > 0 && key.base == NULL)
        return SST_EINVAL;
    if (prefix && key.len == 0) {
        /* every key: ["\0", "\0") in etcd's convention */
        if ((rc = json_add_bytes(o, "key", "", 1)) != 0)
            return rc;
        return json_add_bytes(o, "range_end", "", 1);
    }
    if (key.len == 0)
        return SST_EINVAL; /* etcd: "key is not provided" */
    if ((rc = json_add_bytes(o, "key", key.base, key.len)) != 0)
        return rc;
    if (prefix) {
        char *end = malloc(key.len);
        if (end == NULL)
            return SST_ENOMEM;
        size_t n = sst_etcd_prefix_end(key.base, key.len, end);
        rc = json_add_bytes(o, "range_end", end, n);
        free(end);
        return rc;
    }
    if (range_end.len > 0) {
        if (range_end.base == NULL)
            return SST_EINVAL;
        return json_add_bytes(o, "range_end", range_end.base, range_end.len);
    }
    return 0;
}

static int range_fill(json_object *o, const sst_etcd_range_t *r)
{
    int rc;
    if ((rc = json_add_range(o, r->key, r->range_end, r->prefix)) != 0)
        return rc;
    if (r->revision != 0 && (rc = json_add_i64(o, "revision", r->revision)) != 0)
        return rc;
    if (r->limit != 0 && (rc = json_add_i64(o, "limit", r->limit)) != 0)
        return rc;
    if (r->keys_only && (rc = json_add_bool(o, "keys_only", true)) != 0)
        return rc;
    if (r->count_only && (rc = json_add_bool(o, "count_only", true)) != 0)
        return rc;
    if (r->serializable && (rc = json_add_bool(o, "serializable", true)) != 0)
        return rc;
    return 0;
}

static int put_fill(json_object *o, const sst_etcd_put_t *p)
{
    int rc;
    if (p->key.len == 0 || p->key.base == NULL || (p->value.len > 0 && p->value.base == NULL))
        return SST_EINVAL;
    if ((rc = json_add_bytes(o, "key", p->key.base, p->key.len)) != 0)
        return rc;
    if ((rc = json_add_bytes(o, "value", p->value.base, p->value.len)) != 0)
        return rc;
    if (p->lease != 0 && (rc = json_add_i64(o, "lease", p->lease)) != 0)
        return rc;
    if (p->prev_kv && (rc = json_add_bool(o, "prev_kv", true)) != 0)
        return rc;
    return 0;
}

static int delete_fill(json_object *o, const sst_etcd_delete_t *d)
{
    int rc;
    if ((rc = json_add_range(o, d->key, d->range_end, d->prefix)) != 0)
        return rc;
    if (d->prev_kv && (rc = json_add_bool(o, "prev_kv", true)) != 0)
        return rc;
    return 0;
}

/* A new object filled by `fill`; on failure nothing leaks. */
static int json_build(const void *req, int (*fill)(json_object *, const void *), json_object **out)
{
    if (req == NULL)
        return SST_EINVAL;
    json_object *o = json_object_new_object();
    if (o == NULL)
        return SST_ENOMEM;
    int rc = fill(o, req);
    if (rc != 0) {
        json_object_put(o);
        return rc;
    }
    *out = o;
    return 0;
}

static int fill_range(json_object *o, const void *req)
{
    return range_fill(o, req);
}
static int fill_put(json_object *o, const void *req)
{
    return put_fill(o, req);
}
static int fill_delete(json_object *o, const void *req)
{
    return delete_fill(o, req);
}

int sst__etcd_json_range(const sst_etcd_range_t *r, json_object **out)
{
    return json_build(r, fill_range, out);
}

int sst__etcd_json_put(const sst_etcd_put_t *p, json_object **out)
{
    return json_build(p, fill_put, out);
}

int sst__etcd_json_delete(const sst_etcd_delete_t *d, json_object **out)
{
    return json_build(d, fill_delete, out);
}

static const char *const cmp_targets[] = {
    [SST_ETCD_CMP_VERSION] = "VERSION", [SST_ETCD_CMP_CREATE] = "CREATE",
    [SST_ETCD_CMP_MOD] = "MOD",         [SST_ETCD_CMP_VALUE] = "VALUE",
    [SST_ETCD_CMP_LEASE] = "LEASE",
};
static const char *const cmp_fields[] = {
    [SST_ETCD_CMP_VERSION] = "version",  [SST_ETCD_CMP_CREATE] = "create_revision",
    [SST_ETCD_CMP_MOD] = "mod_revision", [SST_ETCD_CMP_VALUE] = "value",
    [SST_ETCD_CMP_LEASE] = "lease",
};
static const char *const cmp_results[] = {
    [SST_ETCD_CMP_EQUAL] = "EQUAL",
    [SST_ETCD_CMP_GREATER] = "GREATER",
    [SST_ETCD_CMP_LESS] = "LESS",
    [SST_ETCD_CMP_NOT_EQUAL] = "NOT_EQUAL",
};

static int json_add_string(json_object *o, const char *name, const char *v)
{
    json_object *s = json_object_new_string(v);
    if (s == NULL)
        return SST_ENOMEM;
    return json_add_obj(o, name, s);
}

static int compare_fill(json_object *o, const void *req)
{
    const sst_etcd_compare_t *c = req;
    int rc;
    if ((unsigned)c->target > SST_ETCD_CMP_LEASE || (unsigned)c->result > SST_ETCD_CMP_NOT_EQUAL)
        return SST_EINVAL;
    if ((rc = json_add_range(o, c->key, c->range_end, c->prefix)) != 0)
        return rc;
    if ((rc = json_add_string(o, "target", cmp_targets[c->target])) != 0 ||
        (rc = json_add_string(o, "result", cmp_results[c->result])) != 0)
        return rc;
    if (c->target == SST_ETCD_CMP_VALUE) {
        if (c->value.len > 0 && c->value.base == NULL)
            return SST_EINVAL;
        return json_add_bytes(o, "value", c->value.len ? c->value.base : "", c->value.len);
    }
    return json_add_i64(o, cmp_fields[c->target], c->number);
}

static int op_fill(json_object *o, const void *req)
{
    const sst_etcd_op_t *op = req;
    const char *name;
    int (*fill)(json_object *, const void *);
    const void *inner;
    switch (op->type) {
    case SST_ETCD_OP_RANGE:
        name = "request_range";
        fill = fill_range;
        inner = &op->range;
        break;
    case SST_ETCD_OP_PUT:
        name = "request_put";
        fill = fill_put;
        inner = &op->put;
        break;
    case SST_ETCD_OP_DELETE:
        name = "request_delete_range";
        fill = fill_delete;
        inner = &op->del;
        break;
    default:
        return SST_EINVAL;
    }
    json_object *v = NULL;
    int rc = json_build(inner, fill, &v);
    if (rc != 0)
        return rc;
    return json_add_obj(o, name, v);
}

/* Adds `name`: [fill(items[0]), ...]. */
static int json_add_list(json_object *o, const char *name, const void *items, size_t n, size_t size,
                         int (*fill)(json_object *, const void *))
{
    if (n == 0)
        return 0;
    if (items == NULL)
        return SST_EINVAL;
    json_object *arr = json_object_new_array_ext((int)n);
    if (arr == NULL)
        return SST_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_object *v = NULL;
        int rc = json_build((const char *)items + i * size, fill, &v);
        if (rc == 0 && json_object_array_add(arr, v) != 0) {
            json_object_put(v);
            rc = SST_ENOMEM;
        }
        if (rc != 0) {
            json_object_put(arr);
            return rc;
        }
    }
    return json_add_obj(o, name, arr);
}

static int txn_fill(json_object *o, const void *req)
{
    const sst_etcd_txn_t *t = req;
    int rc;
    if (t->n_compare > SST_ETCD_MAX_TXN_OPS || t->n_success > SST_ETCD_MAX_TXN_OPS ||
        t->n_failure > SST_ETCD_MAX_TXN_OPS)
        return SST_E2BIG;
    if ((rc = json_add_list(o, "compare", t->compare, t->n_compare, sizeof(*t->compare),
                            compare_fill)) != 0 ||
        (rc = json_add_list(o, "success", t->success, t->n_success, sizeof(*t->success),
                            op_fill)) != 0 ||
        (rc = json_add_list(o, "failure", t->failure, t->n_failure, sizeof(*t->failure),
                            op_fill)) != 0)
        return rc;
    return 0;
}

int sst__etcd_json_txn(const sst_etcd_txn_t *t, json_object **out)
{
    return json_build(t, txn_fill, out);
}

int sst__etcd_json_compact(int64_t revision, bool physical, json_object **out)
{
    json_object *o = json_object_new_object();
    int rc;
    if (o == NULL)
        return SST_ENOMEM;
    if (revision <= 0)
        rc = SST_EINVAL;
    else if ((rc = json_add_i64(o, "revision", revision)) == 0 && physical)
        rc = json_add_bool(o, "physical", true);
    if (rc != 0) {
        json_object_put(o);
        return rc;
    }
    *out = o;
    return 0;
}

int sst__etcd_json_lease(sst__etcd_call_t call, int64_t ttl_s, int64_t id, json_object **out)
{
    json_object *o = json_object_new_object();
    int rc = 0;
    if (o == NULL)
        return SST_ENOMEM;
    if (call == SST__ETCD_LEASE_GRANT) {
        if (ttl_s <= 0 || id < 0)
            rc = SST_EINVAL;
        else if ((rc = json_add_i64(o, "TTL", ttl_s)) == 0 && id != 0)
            rc = json_add_i64(o, "ID", id);
    } else if (call == SST__ETCD_LEASE_KEEPALIVE || call == SST__ETCD_LEASE_REVOKE) {
        rc = id <= 0 ? SST_EINVAL : json_add_i64(o, "ID", id);
    } else {
        rc = SST_EINVAL;
    }
    if (rc != 0) {
        json_object_put(o);
        return rc;
    }
    *out = o;
    return 0;
}

static int watch_fill(json_object *o, const void *req)
{
    const sst_etcd_watch_opts_t *w = req;
    int rc;
    if ((rc = json_add_range(o, w->key, w->range_end, w->prefix)) != 0)
        return rc;
    if (w->start_revision < 0)
        return SST_EINVAL;
    if (w->start_revision > 0 && (rc = json_add_i64(o, "start_revision", w->start_revision)) != 0)
        return rc;
    if (w->progress_notify && (rc = json_add_bool(o, "progress_notify", true)) != 0)
        return rc;
    if (w->prev_kv && (rc = json_add_bool(o, "prev_kv", true)) != 0)
        return rc;
    return 0;
}

int sst__etcd_json_watch(const sst_etcd_watch_opts_t *w, json_object **out)
{
    json_object *inner = NULL, *o;
    int rc = json_build(w, watch_fill, &inner);
    if (rc != 0)
        return rc;
    if ((o = json_object_new_object()) == NULL) {
        json_object_put(inner);
        return SST_ENOMEM;
    }
    if ((rc = json_add_obj(o, "create_request", inner)) != 0) {
        json_object_put(o);
        return rc;
    }
    *out = o;
    return 0;
}

int sst__etcd_json_text(json_object *obj, size_t max, char **out, size_t *len)
{
    size_t n = 0;
    const char *s = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (s == NULL)
        return SST_ENOMEM;
    if (n > max)
        return SST_E2BIG;
    char *p = malloc(n + 1);
    if (p == NULL)
        return SST_ENOMEM;
    memcpy(p, s, n + 1);
    *out = p;
    *len = n;
    return 0;
}
