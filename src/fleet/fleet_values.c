/* Fleet keys and values: building and parsing the etcd key layout under /sidestep/<fleet>/, and
 * the JSON codec of overrides, heartbeats and health views. Pure; every name and string is
 * validated both ways, so a bad value from etcd is an error, never a crash or a truncation. */
#include "fleet/fleet_state.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "fleet/etcd_codec.h"
#include "sidestep/error.h"

/* ---- names -------------------------------------------------------------------------------- */

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_name_char(unsigned char c)
{
    return is_alnum(c) || c == '_' || c == '.' || c == '-';
}

static bool all_name_chars(sst_str_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if (!is_name_char((unsigned char)s.base[i]))
            return false;
    return true;
}

bool sst_fleet_valid_name(sst_str_t s)
{
    /* the config loader checks fleet.name and fleet.instance with the same rule */
    return sst_config_fleet_name_ok(s.base, s.len);
}

bool sst_fleet_valid_region(sst_str_t s)
{
    return s.len >= 1 && s.len <= SST_FLEET_REGION_MAX && all_name_chars(s);
}

bool sst_fleet_valid_backend(sst_str_t s)
{
    size_t colon = s.len;
    uint64_t port;
    if (s.len < 3 || s.len > SST_FLEET_HOSTPORT_MAX)
        return false;
    while (colon > 0 && s.base[colon - 1] != ':')
        colon--;
    if (colon < 2) /* no ':' or an empty host */
        return false;
    sst_str_t host = sst_str(s.base, colon - 1), digits = sst_str(s.base + colon, s.len - colon);
    if (digits.len == 0 || (digits.len > 1 && digits.base[0] == '0') ||
        sst_str_to_u64(digits, 65535, &port) != 0 || port == 0)
        return false;
    if (host.base[0] == '[') {
        if (host.len < 4 || host.base[host.len - 1] != ']')
            return false;
        for (size_t i = 1; i + 1 < host.len; i++) {
            unsigned char c = (unsigned char)host.base[i];
            if (!(c == ':' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                  (c >= 'A' && c <= 'F')))
                return false;
        }
        return true;
    }
    for (size_t i = 0; i < host.len; i++) {
        unsigned char c = (unsigned char)host.base[i];
        if (!(is_alnum(c) || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* ---- keys --------------------------------------------------------------------------------- */

static const char *const prefix_paths[] = {
    [SST_FLEET_PREFIX_ROOT] = "",
    [SST_FLEET_PREFIX_OVERRIDES] = "overrides/",
    [SST_FLEET_PREFIX_INSTANCES] = "instances/",
    [SST_FLEET_PREFIX_VIEWS] = "views/",
};

/* Appends pieces into buf with a bound; false when they do not fit (with the NUL). */
static bool key_join(char *buf, size_t size, size_t *len, const sst_str_t *parts, size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].len >= size - off)
            return false;
        memcpy(buf + off, parts[i].base, parts[i].len);
        off += parts[i].len;
    }
    buf[off] = 0;
    *len = off;
    return true;
}

int sst_fleet_prefix(const char *fleet, sst_fleet_prefix_t which, char *buf, size_t size,
                     size_t *len)
{
    if (fleet == NULL || buf == NULL || size == 0 || (unsigned)which > SST_FLEET_PREFIX_VIEWS ||
        !sst_fleet_valid_name(sst_str_c(fleet)))
        return SST_EINVAL;
    sst_str_t parts[] = {SST_STR_LIT("/sidestep/"), sst_str_c(fleet), SST_STR_LIT("/"),
                         sst_str_c(prefix_paths[which])};
    return key_join(buf, size, len, parts, 4) ? 0 : SST_E2BIG;
}

int sst_fleet_key(const char *fleet, sst_fleet_key_kind_t kind, sst_str_t name, char *buf,
                  size_t size, size_t *len)
{
    sst_str_t mid, tail = SST_STR_LIT("");
    bool ok;
    if (fleet == NULL || buf == NULL || size == 0 || !sst_fleet_valid_name(sst_str_c(fleet)))
        return SST_EINVAL;
    switch (kind) {
    case SST_FLEET_KEY_REGION_FORCE:
    case SST_FLEET_KEY_REGION_DRAIN:
        ok = sst_fleet_valid_region(name);
        mid = SST_STR_LIT("overrides/region/");
        tail = kind == SST_FLEET_KEY_REGION_FORCE ? SST_STR_LIT("/force") : SST_STR_LIT("/drain");
        break;
    case SST_FLEET_KEY_BACKEND_FORCE:
        ok = sst_fleet_valid_backend(name);
        mid = SST_STR_LIT("overrides/backend/");
        tail = SST_STR_LIT("/force");
        break;
    case SST_FLEET_KEY_INSTANCE:
        ok = sst_fleet_valid_name(name);
        mid = SST_STR_LIT("instances/");
        break;
    case SST_FLEET_KEY_VIEW:
        ok = sst_fleet_valid_name(name);
        mid = SST_STR_LIT("views/");
        break;
    default:
        return SST_EINVAL;
    }
    if (!ok)
        return SST_EINVAL;
    sst_str_t parts[] = {
        SST_STR_LIT("/sidestep/"), sst_str_c(fleet), SST_STR_LIT("/"), mid, name, tail};
    return key_join(buf, size, len, parts, 6) ? 0 : SST_E2BIG;
}

/* Consumes `lit` at the front of *s. */
static bool eat(sst_str_t *s, sst_str_t lit)
{
    if (!sst_str_has_prefix(*s, lit))
        return false;
    s->base += lit.len;
    s->len -= lit.len;
    return true;
}

int sst_fleet_key_parse(const char *fleet, sst_str_t key, sst_fleet_key_info_t *out)
{
    sst_str_t s = key;
    if (fleet == NULL || out == NULL || (key.len > 0 && key.base == NULL) ||
        key.len > SST_FLEET_KEY_MAX || !eat(&s, SST_STR_LIT("/sidestep/")) ||
        !eat(&s, sst_str_c(fleet)) || !eat(&s, SST_STR_LIT("/")))
        return SST_EINVAL;
    bool instance = eat(&s, SST_STR_LIT("instances/"));
    if (instance || eat(&s, SST_STR_LIT("views/"))) {
        out->kind = instance ? SST_FLEET_KEY_INSTANCE : SST_FLEET_KEY_VIEW;
        out->name = s;
        return sst_fleet_valid_name(s) ? 0 : SST_EINVAL;
    }
    bool region = eat(&s, SST_STR_LIT("overrides/region/"));
    if (!region && !eat(&s, SST_STR_LIT("overrides/backend/")))
        return SST_EINVAL;
    const char *slash = s.len ? memchr(s.base, '/', s.len) : NULL;
    if (slash == NULL)
        return SST_EINVAL;
    sst_str_t name = sst_str(s.base, (size_t)(slash - s.base));
    sst_str_t sub = sst_str(slash + 1, s.len - name.len - 1);
    if (region && sst_str_eq(sub, SST_STR_LIT("force")) && sst_fleet_valid_region(name))
        out->kind = SST_FLEET_KEY_REGION_FORCE;
    else if (region && sst_str_eq(sub, SST_STR_LIT("drain")) && sst_fleet_valid_region(name))
        out->kind = SST_FLEET_KEY_REGION_DRAIN;
    else if (!region && sst_str_eq(sub, SST_STR_LIT("force")) && sst_fleet_valid_backend(name))
        out->kind = SST_FLEET_KEY_BACKEND_FORCE;
    else
        return SST_EINVAL;
    out->name = name;
    return 0;
}

/* ---- JSON helpers ------------------------------------------------------------------------- */

static int fail(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    if (err != NULL && size > 0) {
        va_start(ap, fmt);
        if (vsnprintf(err, size, fmt, ap) < 0)
            err[0] = 0;
        va_end(ap);
    }
    return SST_EINVAL;
}

/* Puts "prefix." before the message of a nested field's error; returns SST_EINVAL. */
static int nest(char *err, size_t size, const char *prefix)
{
    char inner[160];
    if (err == NULL || size == 0)
        return SST_EINVAL;
    snprintf(inner, sizeof(inner), "%s", err);
    return fail(err, size, "%s.%s", prefix, inner);
}

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* Copies the string field `name` into out[max + 1]. */
static int get_str(json_object *o, const char *name, bool required, size_t max, char *out,
                   char *err, size_t size)
{
    json_object *v = NULL;
    out[0] = 0;
    if (!json_object_object_get_ex(o, name, &v) || v == NULL)
        return required ? fail(err, size, "%s: required", name) : 0;
    if (!json_object_is_type(v, json_type_string))
        return fail(err, size, "%s: expected a string", name);
    size_t n = (size_t)json_object_get_string_len(v);
    const char *s = json_object_get_string(v);
    if (n > max)
        return fail(err, size, "%s: longer than %zu bytes", name, max);
    if (!printable(s, n))
        return fail(err, size, "%s: control characters", name);
    memcpy(out, s, n);
    out[n] = 0;
    return 0;
}

static int get_u64(json_object *o, const char *name, bool required, uint64_t *out, char *err,
                   size_t size)
{
    json_object *v = NULL;
    *out = 0;
    if (!json_object_object_get_ex(o, name, &v) || v == NULL)
        return required ? fail(err, size, "%s: required", name) : 0;
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
        return fail(err, size, "%s: expected a non-negative integer", name);
    *out = (uint64_t)json_object_get_int64(v);
    return 0;
}

static int get_obj(json_object *o, const char *name, json_object **out, char *err, size_t size)
{
    if (!json_object_object_get_ex(o, name, out) || *out == NULL)
        return fail(err, size, "%s: required", name);
    if (!json_object_is_type(*out, json_type_object))
        return fail(err, size, "%s: expected an object", name);
    return 0;
}

static int parse(const char *json, size_t len, json_object **out, char *err, size_t size)
{
    sst__etcd_diag_t d;
    if (json == NULL || len > SST_FLEET_VALUE_MAX)
        return fail(err, size, "value: larger than %d bytes", SST_FLEET_VALUE_MAX);
    if (sst__etcd_parse_json(json, len, out, &d) != 0)
        return fail(err, size, "value: %s", d.message);
    return 0;
}

/* Serialises and frees `o` (built with every field when `ok`). */
static int emit(json_object *o, bool ok, char *buf, size_t size, size_t *len)
{
    size_t n = 0;
    const char *s = ok ? json_object_to_json_string_length(
                             o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n)
                       : NULL;
    int rc = 0;
    if (s == NULL) {
        rc = SST_ENOMEM;
    } else if (n >= size) {
        rc = SST_E2BIG;
    } else {
        memcpy(buf, s, n + 1);
        *len = n;
    }
    json_object_put(o);
    return rc;
}

/* Field adders: an allocation failure clears *ok, and the encoder then answers SST_ENOMEM. */
static void put_str(json_object *o, const char *name, const char *v, bool *ok)
{
    json_object *s = json_object_new_string(v);
    if (s == NULL || json_object_object_add(o, name, s) != 0) {
        json_object_put(s);
        *ok = false;
    }
}

static void put_u64(json_object *o, const char *name, uint64_t v, bool *ok)
{
    json_object *n = json_object_new_int64((int64_t)v); /* checked <= INT64_MAX before */
    if (n == NULL || json_object_object_add(o, name, n) != 0) {
        json_object_put(n);
        *ok = false;
    }
}

/* A C string held in an array of `cap` bytes: NUL-terminated inside it, no control bytes. */
static bool cstr_ok(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    return n < cap && printable(s, n);
}

static bool u64_ok(uint64_t v)
{
    return v <= INT64_MAX; /* decoded as JSON integers, which json-c reads as int64 */
}

/* ---- overrides ---------------------------------------------------------------------------- */

static const char *const state_names[] = {
    [SST_FLEET_DOWN] = "down",
    [SST_FLEET_UP] = "up",
    [SST_FLEET_DRAIN] = "drain",
};

static int override_check(const sst_fleet_override_t *v, char *err, size_t size)
{
    if ((unsigned)v->state > SST_FLEET_DRAIN)
        return fail(err, size, "state: expected down, up or drain");
    if (!cstr_ok(v->reason, sizeof(v->reason)) || v->reason[0] == 0)
        return fail(err, size, "reason: required, printable, at most %d bytes",
                    SST_FLEET_REASON_MAX);
    if (!cstr_ok(v->by_instance, sizeof(v->by_instance)) ||
        !sst_fleet_valid_name(sst_str_c(v->by_instance)))
        return fail(err, size, "by.instance: invalid instance name");
    if (!cstr_ok(v->by_client, sizeof(v->by_client)))
        return fail(err, size, "by.client: printable, at most %d bytes", SST_FLEET_CLIENT_MAX);
    if (!u64_ok(v->created_at) || !u64_ok(v->expires_at) || !u64_ok(v->ttl_ms))
        return fail(err, size, "created_at: out of range");
    if (v->expires_at == 0 && v->ttl_ms == 0)
        return 0;
    if (v->ttl_ms == 0 || v->expires_at < v->created_at ||
        v->expires_at - v->created_at != v->ttl_ms)
        return fail(err, size, "expires_at: must be created_at + ttl_ms");
    return 0;
}

int sst_fleet_override_encode(const sst_fleet_override_t *v, char *buf, size_t size, size_t *len,
                              char *err, size_t err_size)
{
    bool ok = true;
    if (v == NULL || buf == NULL || len == NULL)
        return SST_EINVAL;
    int rc = override_check(v, err, err_size);
    if (rc != 0)
        return rc;
    json_object *o = json_object_new_object(), *by = json_object_new_object();
    if (o == NULL || by == NULL || json_object_object_add(o, "by", by) != 0) {
        json_object_put(o);
        json_object_put(by);
        return SST_ENOMEM;
    }
    put_str(o, "state", state_names[v->state], &ok);
    put_str(o, "reason", v->reason, &ok);
    put_str(by, "instance", v->by_instance, &ok);
    put_str(by, "client", v->by_client, &ok);
    put_u64(o, "created_at", v->created_at, &ok);
    put_u64(o, "expires_at", v->expires_at, &ok);
    put_u64(o, "ttl_ms", v->ttl_ms, &ok);
    return emit(o, ok, buf, size, len);
}

int sst_fleet_override_decode(sst_fleet_key_kind_t kind, const char *json, size_t len,
                              sst_fleet_override_t *out, char *err, size_t err_size)
{
    json_object *root = NULL, *by;
    char state[8];
    int rc;
    if (out == NULL)
        return SST_EINVAL;
    memset(out, 0, sizeof(*out));
    if ((rc = parse(json, len, &root, err, err_size)) != 0)
        return rc;
    if ((rc = get_str(root, "state", true, sizeof(state) - 1, state, err, err_size)) != 0)
        goto done;
    if (kind == SST_FLEET_KEY_REGION_DRAIN) {
        if (strcmp(state, "drain") != 0) {
            rc = fail(err, err_size, "state: expected \"drain\" in a drain key");
            goto done;
        }
        out->state = SST_FLEET_DRAIN;
    } else if (kind == SST_FLEET_KEY_REGION_FORCE || kind == SST_FLEET_KEY_BACKEND_FORCE) {
        if (strcmp(state, "down") == 0)
            out->state = SST_FLEET_DOWN;
        else if (strcmp(state, "up") == 0)
            out->state = SST_FLEET_UP;
        else {
            rc = fail(err, err_size, "state: expected \"down\" or \"up\" in a force key");
            goto done;
        }
    } else {
        rc = fail(err, err_size, "key: not an override");
        goto done;
    }
    if ((rc = get_str(root, "reason", true, SST_FLEET_REASON_MAX, out->reason, err, err_size)) ||
        (rc = get_obj(root, "by", &by, err, err_size)) ||
        (get_str(by, "instance", true, SST_FLEET_NAME_MAX, out->by_instance, err, err_size) &&
         (rc = nest(err, err_size, "by"))) ||
        (get_str(by, "client", false, SST_FLEET_CLIENT_MAX, out->by_client, err, err_size) &&
         (rc = nest(err, err_size, "by"))) ||
        (rc = get_u64(root, "created_at", true, &out->created_at, err, err_size)) ||
        (rc = get_u64(root, "expires_at", false, &out->expires_at, err, err_size)) ||
        (rc = get_u64(root, "ttl_ms", false, &out->ttl_ms, err, err_size)))
        goto done;
    rc = override_check(out, err, err_size);
done:
    json_object_put(root);
    return rc;
}

/* ---- heartbeats --------------------------------------------------------------------------- */

static int instance_check(const sst_fleet_instance_t *v, char *err, size_t size)
{
    if (!cstr_ok(v->instance, sizeof(v->instance)) || !sst_fleet_valid_name(sst_str_c(v->instance)))
        return fail(err, size, "instance: invalid instance name");
    if (!cstr_ok(v->admin, sizeof(v->admin)) || !sst_fleet_valid_backend(sst_str_c(v->admin)))
        return fail(err, size, "admin: expected host:port");
    if (!cstr_ok(v->version, sizeof(v->version)) || v->version[0] == 0)
        return fail(err, size, "version: required, at most %d bytes", SST_FLEET_VERSION_MAX);
    size_t n = strnlen(v->config_hash, sizeof(v->config_hash));
    if (n == 0 || n == sizeof(v->config_hash))
        return fail(err, size, "config_hash: required, at most %d hex digits", SST_FLEET_HASH_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = v->config_hash[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return fail(err, size, "config_hash: expected lower-case hex");
    }
    if (!u64_ok(v->config_version) || !u64_ok(v->started_at) || !u64_ok(v->seen_at) ||
        !u64_ok(v->applied_revision))
        return fail(err, size, "config_version: out of range");
    return 0;
}

int sst_fleet_instance_encode(const sst_fleet_instance_t *v, char *buf, size_t size, size_t *len,
                              char *err, size_t err_size)
{
    bool ok = true;
    if (v == NULL || buf == NULL || len == NULL)
        return SST_EINVAL;
    int rc = instance_check(v, err, err_size);
    if (rc != 0)
        return rc;
    json_object *o = json_object_new_object();
    if (o == NULL)
        return SST_ENOMEM;
    put_str(o, "instance", v->instance, &ok);
    put_str(o, "admin", v->admin, &ok);
    put_str(o, "version", v->version, &ok);
    put_u64(o, "config_version", v->config_version, &ok);
    put_str(o, "config_hash", v->config_hash, &ok);
    put_u64(o, "started_at", v->started_at, &ok);
    put_u64(o, "seen_at", v->seen_at, &ok);
    put_u64(o, "applied_revision", v->applied_revision, &ok);
    return emit(o, ok, buf, size, len);
}

int sst_fleet_instance_decode(sst_str_t instance, const char *json, size_t len,
                              sst_fleet_instance_t *out, char *err, size_t err_size)
{
    json_object *root = NULL;
    int rc;
    if (out == NULL)
        return SST_EINVAL;
    memset(out, 0, sizeof(*out));
    if ((rc = parse(json, len, &root, err, err_size)) != 0)
        return rc;
    if ((rc = get_str(root, "instance", true, SST_FLEET_NAME_MAX, out->instance, err, err_size)) ||
        (rc = get_str(root, "admin", true, SST_FLEET_HOSTPORT_MAX, out->admin, err, err_size)) ||
        (rc = get_str(root, "version", true, SST_FLEET_VERSION_MAX, out->version, err, err_size)) ||
        (rc = get_u64(root, "config_version", true, &out->config_version, err, err_size)) ||
        (rc = get_str(root, "config_hash", true, SST_FLEET_HASH_MAX, out->config_hash, err,
                      err_size)) ||
        (rc = get_u64(root, "started_at", true, &out->started_at, err, err_size)) ||
        (rc = get_u64(root, "seen_at", true, &out->seen_at, err, err_size)) ||
        (rc = get_u64(root, "applied_revision", true, &out->applied_revision, err, err_size)) ||
        (rc = instance_check(out, err, err_size)))
        goto done;
    if (instance.len > 0 && !sst_str_eq(instance, sst_str_c(out->instance)))
        rc = fail(err, err_size, "instance: \"%s\" under another instance's key", out->instance);
done:
    json_object_put(root);
    return rc;
}

/* ---- health views ------------------------------------------------------------------------- */

static int region_view_check(const sst_fleet_region_view_t *r, char *err, size_t size)
{
    if (!cstr_ok(r->name, sizeof(r->name)) || !sst_fleet_valid_region(sst_str_c(r->name)))
        return fail(err, size, "regions: invalid region name");
    if (!cstr_ok(r->reason, sizeof(r->reason)))
        return fail(err, size, "regions.%s.reason: at most %d bytes", r->name, SST_FLEET_CODE_MAX);
    for (const char *c = r->reason; *c != 0; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_'))
            return fail(err, size, "regions.%s.reason: expected a code like L7STS", r->name);
    if (!cstr_ok(r->text, sizeof(r->text)))
        return fail(err, size, "regions.%s.text: printable, at most %d bytes", r->name,
                    SST_FLEET_TEXT_MAX);
    return 0;
}

int sst_fleet_view_encode(const sst_fleet_view_t *v, char *buf, size_t size, size_t *len, char *err,
                          size_t err_size)
{
    bool ok = true;
    if (v == NULL || buf == NULL || len == NULL)
        return SST_EINVAL;
    if (v->n_regions > SST_MAX_REGIONS)
        return fail(err, err_size, "regions: more than %d", SST_MAX_REGIONS);
    if (!u64_ok(v->at))
        return fail(err, err_size, "at: out of range");
    for (size_t i = 0; i < v->n_regions; i++) {
        int rc = region_view_check(&v->regions[i], err, err_size);
        if (rc != 0)
            return rc;
    }
    json_object *o = json_object_new_object(), *regions = json_object_new_object();
    if (o == NULL || regions == NULL || json_object_object_add(o, "regions", regions) != 0) {
        json_object_put(o);
        json_object_put(regions);
        return SST_ENOMEM;
    }
    put_u64(o, "at", v->at, &ok);
    for (size_t i = 0; i < v->n_regions && ok; i++) {
        const sst_fleet_region_view_t *r = &v->regions[i];
        json_object *ro = json_object_new_object();
        if (ro == NULL || json_object_object_add(regions, r->name, ro) != 0) {
            json_object_put(ro);
            ok = false;
            break;
        }
        put_str(ro, "state", r->down ? "down" : "up", &ok);
        put_str(ro, "reason", r->reason, &ok);
        put_str(ro, "text", r->text, &ok);
    }
    return emit(o, ok, buf, size, len);
}

int sst_fleet_view_decode(const char *json, size_t len, sst_fleet_view_t *out, char *err,
                          size_t err_size)
{
    json_object *root = NULL, *regions;
    char state[16];
    int rc;
    if (out == NULL)
        return SST_EINVAL;
    memset(out, 0, sizeof(*out));
    if ((rc = parse(json, len, &root, err, err_size)) != 0)
        return rc;
    if ((rc = get_u64(root, "at", true, &out->at, err, err_size)) ||
        (rc = get_obj(root, "regions", &regions, err, err_size)))
        goto done;
    json_object_object_foreach(regions, name, val)
    {
        sst_fleet_region_view_t *r;
        if (out->n_regions == SST_MAX_REGIONS) {
            rc = fail(err, err_size, "regions: more than %d", SST_MAX_REGIONS);
            goto done;
        }
        if (!sst_fleet_valid_region(sst_str_c(name))) {
            rc = fail(err, err_size, "regions: invalid region name");
            goto done;
        }
        if (!json_object_is_type(val, json_type_object)) {
            rc = fail(err, err_size, "regions.%s: expected an object", name);
            goto done;
        }
        r = &out->regions[out->n_regions++];
        snprintf(r->name, sizeof(r->name), "%s", name);
        if (get_str(val, "state", true, sizeof(state) - 1, state, err, err_size) ||
            get_str(val, "reason", false, SST_FLEET_CODE_MAX, r->reason, err, err_size) ||
            get_str(val, "text", false, SST_FLEET_TEXT_MAX, r->text, err, err_size)) {
            char where[SST_FLEET_REGION_MAX + 16];
            snprintf(where, sizeof(where), "regions.%s", r->name);
            rc = nest(err, err_size, where);
            goto done;
        }
        if ((rc = region_view_check(r, err, err_size)) != 0)
            goto done;
        if (strcmp(state, "down") != 0 && strcmp(state, "up") != 0) {
            rc = fail(err, err_size, "regions.%s.state: expected \"up\" or \"down\"", name);
            goto done;
        }
        r->down = state[0] == 'd';
    }
done:
    json_object_put(root);
    return rc;
}

void sst_fleet_view_masks(const sst_config_t *cfg, const sst_fleet_view_t *v, uint32_t *down,
                          uint32_t *known)
{
    *down = *known = 0;
    for (size_t i = 0; i < v->n_regions && i < SST_MAX_REGIONS; i++) {
        const char *name = v->regions[i].name;
        int r = sst_config_region_index(cfg, name, strlen(name));
        if (r < 0 || r >= SST_MAX_REGIONS)
            continue;
        *known |= 1u << r;
        if (v->regions[i].down)
            *down |= 1u << r;
    }
}
