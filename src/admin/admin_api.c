/* The admin API's request grammar: which resource a path names, which methods it takes, the
 * bearer token check and the action body. Pure (no libuv, no clock): unit-tested on its own. */
#include "admin/admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "sidestep/error.h"
#include "sidestep/route.h"

static const char *const admin_op_words[] = {
    [SST_ADMIN_DRAIN] = "drain",       [SST_ADMIN_UNDRAIN] = "undrain",
    [SST_ADMIN_FORCE_UP] = "force-up", [SST_ADMIN_FORCE_DOWN] = "force-down",
    [SST_ADMIN_CLEAR] = "clear",
};

const char *sst__admin_op_word(sst_admin_op_t op)
{
    if ((unsigned)op >= sizeof(admin_op_words) / sizeof(admin_op_words[0]))
        return NULL;
    return admin_op_words[op];
}

static int admin_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes one path segment into out (NUL-terminated). Returns 0, 400 for a broken
 * escape or an encoded NUL, 404 when the result cannot be a name (empty or too long). */
static int admin_decode(sst_str_t seg, char *out, size_t size, const char **why)
{
    size_t o = 0;
    for (size_t i = 0; i < seg.len; i++) {
        char c = seg.base[i];
        if (c == '%') {
            int hi = i + 1 < seg.len ? admin_hex(seg.base[i + 1]) : -1;
            int lo = i + 2 < seg.len ? admin_hex(seg.base[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                *why = "bad percent-encoding in path";
                return 400;
            }
            c = (char)(hi * 16 + lo);
            if (c == 0) {
                *why = "encoded NUL in path";
                return 400;
            }
            i += 2;
        }
        if (o + 1 >= size) {
            *why = "name too long";
            return 404;
        }
        out[o++] = c;
    }
    out[o] = 0;
    if (o == 0) {
        *why = "empty name in path";
        return 404;
    }
    return 0;
}

static bool admin_seg_is(sst_str_t s, const char *word)
{
    return sst_str_eq(s, sst_str_c(word));
}

int sst__admin_parse_target(sst_str_t target, sst_admin_target_t *out, const char **why)
{
    sst_str_t pq, authority, path;

    memset(out, 0, sizeof(*out));
    *why = "no such admin resource";
    if (sst_target_path_query(target, &pq, &authority) != 0)
        return 404;
    (void)authority;
    const char *q = memchr(pq.base, '?', pq.len);
    path = q != NULL ? sst_str(pq.base, (size_t)(q - pq.base)) : pq;

    /* split into at most three segments after the leading '/' */
    sst_str_t seg[4];
    size_t n = 0, start = 1;
    if (path.len == 0 || path.base[0] != '/')
        return 404;
    for (size_t i = 1; i <= path.len; i++) {
        if (i == path.len || path.base[i] == '/') {
            if (n == 4)
                return 404;
            seg[n++] = sst_str(path.base + start, i - start);
            start = i + 1;
        }
    }
    if (n == 1) {
        if (admin_seg_is(seg[0], "status"))
            out->res = SST_ARES_STATUS;
        else if (admin_seg_is(seg[0], "metrics"))
            out->res = SST_ARES_METRICS;
        else if (admin_seg_is(seg[0], "reload"))
            out->res = SST_ARES_RELOAD;
        else if (admin_seg_is(seg[0], "fleet"))
            out->res = SST_ARES_FLEET;
        else
            return 404;
        out->allow = out->res == SST_ARES_RELOAD ? "POST" : "GET, HEAD";
        return 0;
    }
    if (n != 3)
        return 404;
    bool region = admin_seg_is(seg[0], "regions");
    if (!region && !admin_seg_is(seg[0], "backends"))
        return 404;
    bool found = false;
    for (size_t op = 0; op < sizeof(admin_op_words) / sizeof(admin_op_words[0]); op++) {
        if (!admin_seg_is(seg[2], admin_op_words[op]))
            continue;
        if (!region && (op == SST_ADMIN_DRAIN || op == SST_ADMIN_UNDRAIN))
            return 404; /* drain is a region action */
        out->op = (sst_admin_op_t)op;
        found = true;
    }
    if (!found)
        return 404;
    int rc = admin_decode(seg[1], out->name, sizeof(out->name), why);
    if (rc != 0)
        return rc;
    out->res = region ? SST_ARES_REGION : SST_ARES_BACKEND;
    out->allow = "POST";
    return 0;
}

bool sst__admin_method_ok(const sst_admin_target_t *t, sst_str_t method)
{
    switch (t->res) {
    case SST_ARES_STATUS:
    case SST_ARES_METRICS:
    case SST_ARES_FLEET:
        return sst_str_eq(method, SST_STR_LIT("GET")) || sst_str_eq(method, SST_STR_LIT("HEAD"));
    case SST_ARES_RELOAD:
    case SST_ARES_REGION:
    case SST_ARES_BACKEND:
        return sst_str_eq(method, SST_STR_LIT("POST"));
    }
    return false;
}

bool sst__admin_auth_ok(sst_str_t authorization, const char *token)
{
    sst_str_t v = sst_str_trim_ows(authorization);
    size_t tl = token != NULL ? strlen(token) : 0;

    if (token == NULL)
        return true;
    /* RFC 9110 §11.4: credentials = auth-scheme [ 1*SP token68 ]; the scheme is
     * case-insensitive (RFC 6750 §2.1 names it "Bearer"). */
    if (v.len < 7 || !sst_str_ieq(sst_str(v.base, 6), SST_STR_LIT("Bearer")) || v.base[6] != ' ')
        return false;
    size_t i = 7;
    while (i < v.len && v.base[i] == ' ')
        i++;
    sst_str_t cand = sst_str(v.base + i, v.len - i);
    /* Runs over the configured token whatever the candidate is, and never branches on a byte,
     * so the time tells nothing about how much of a guess was right. */
    unsigned diff = cand.len != tl;
    for (size_t k = 0; k < tl; k++) {
        unsigned char c = k < cand.len ? (unsigned char)cand.base[k] : 0;
        diff |= (unsigned char)token[k] ^ c;
    }
    return diff == 0;
}

static int admin_fail(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int admin_fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return SST_EINVAL;
}

static int admin_parse_reason(json_object *v, sst_admin_action_t *out, char *err, size_t size)
{
    if (!json_object_is_type(v, json_type_string))
        return admin_fail(err, size, "%s must be a string", "reason");
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    sst_str_t t = sst_str_trim_ows(sst_str(s, len));
    if (t.len == 0)
        return admin_fail(err, size, "%s must not be empty", "reason");
    if (t.len > SST_ADMIN_MAX_REASON) {
        snprintf(err, size, "reason is longer than %d bytes", SST_ADMIN_MAX_REASON);
        return SST_EINVAL;
    }
    for (size_t i = 0; i < t.len; i++) {
        unsigned char c = (unsigned char)t.base[i];
        if (c < 0x20 || c == 0x7f)
            return admin_fail(err, size, "%s must not hold control characters", "reason");
    }
    memcpy(out->reason, t.base, t.len);
    out->reason[t.len] = 0;
    return 0;
}

static int admin_parse_ttl(json_object *v, sst_admin_op_t op, sst_admin_action_t *out, char *err,
                           size_t size)
{
    if (op == SST_ADMIN_UNDRAIN || op == SST_ADMIN_CLEAR)
        return admin_fail(err, size, "ttl does not apply to %s", sst__admin_op_word(op));
    if (!json_object_is_type(v, json_type_string))
        return admin_fail(err, size, "%s must be a duration string such as \"10m\"", "ttl");
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    char q[48];
    if (sst_parse_duration_ms(s, len, &out->ttl_ms) != 0) {
        snprintf(q, sizeof(q), "%.*s", len > 40 ? 40 : (int)len, s);
        return admin_fail(err, size, "ttl: bad duration \"%s\" (use 30s, 10m, 1h)", q);
    }
    if (out->ttl_ms == 0)
        return admin_fail(err, size, "%s must be above zero (leave it out for no expiry)", "ttl");
    if (out->ttl_ms > SST_ADMIN_MAX_TTL_MS)
        return admin_fail(err, size,
                          "%s must be at most 720h (30 days; leave it out for no expiry)", "ttl");
    return 0;
}

static int admin_parse_scope(json_object *v, sst_admin_action_t *out, char *err, size_t size)
{
    const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
    if (s != NULL && strcmp(s, "fleet") == 0)
        out->scope = SST_ADMIN_SCOPE_FLEET;
    else if (s != NULL && strcmp(s, "local") == 0)
        out->scope = SST_ADMIN_SCOPE_LOCAL;
    else
        return admin_fail(err, size, "%s must be \"fleet\" or \"local\"", "scope");
    return 0;
}

int sst__admin_parse_action(const char *body, size_t len, sst_admin_op_t op,
                            sst_admin_action_t *out, char *err, size_t err_size)
{
    json_tokener *tok = NULL;
    json_object *obj = NULL;
    int rc = SST_EINVAL;
    bool have_reason = false;

    memset(out, 0, sizeof(*out));
    if (len == 0) {
        snprintf(err, err_size, "a JSON body {\"reason\": \"...\"} is required");
        return SST_EINVAL;
    }
    if (len > SST_ADMIN_MAX_BODY) {
        snprintf(err, err_size, "body is larger than %d bytes", SST_ADMIN_MAX_BODY);
        return SST_EINVAL;
    }
    tok = json_tokener_new_ex(8);
    if (tok == NULL) {
        snprintf(err, err_size, "out of memory");
        return SST_ENOMEM;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (obj == NULL || jerr != json_tokener_success) {
        snprintf(err, err_size, "body is not valid JSON: %s",
                 jerr == json_tokener_continue ? "unexpected end of input"
                                               : json_tokener_error_desc(jerr));
        goto done;
    }
    /* Whitespace may follow the object; anything else is a second value. */
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
        char c = body[i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            snprintf(err, err_size, "body is not valid JSON: data after the object");
            goto done;
        }
    }
    if (!json_object_is_type(obj, json_type_object)) {
        snprintf(err, err_size, "body must be a JSON object");
        goto done;
    }
    json_object_object_foreach(obj, key, val)
    {
        if (strcmp(key, "reason") == 0) {
            if (admin_parse_reason(val, out, err, err_size) != 0)
                goto done;
            have_reason = true;
        } else if (strcmp(key, "ttl") == 0) {
            if (admin_parse_ttl(val, op, out, err, err_size) != 0)
                goto done;
        } else if (strcmp(key, "scope") == 0) {
            if (admin_parse_scope(val, out, err, err_size) != 0)
                goto done;
        } else if (strcmp(key, "override_safety") == 0) {
            if (!json_object_is_type(val, json_type_boolean)) {
                admin_fail(err, err_size, "%s must be true or false", "override_safety");
                goto done;
            }
            out->override_safety = json_object_get_boolean(val);
        } else {
            char q[48];
            snprintf(q, sizeof(q), "%.40s", key);
            admin_fail(err, err_size,
                       "unknown key \"%s\" (expected reason, ttl, scope, override_safety)", q);
            goto done;
        }
    }
    if (!have_reason) {
        snprintf(err, err_size, "reason is required");
        goto done;
    }
    if (out->override_safety && out->scope == SST_ADMIN_SCOPE_LOCAL) {
        snprintf(err, err_size,
                 "override_safety applies to fleet actions: a local action has no safety rule");
        goto done;
    }
    rc = 0;
done:
    json_object_put(obj);
    json_tokener_free(tok);
    return rc;
}
