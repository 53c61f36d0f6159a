/* What ctl and drill share (cli.h): command-line parsing helpers, one admin API call and the
 * reading of its JSON answers. Blocking, for the tools only; nothing here runs in the proxy. */
#include "tools/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "sidestep/error.h"
#include "sidestep/str.h"

int sst__cli_usage_error(const char *tool, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "sidestep %s: ", tool);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see sidestep %s --help)\n", tool);
    return 2;
}

bool sst__cli_opt(int argc, char **argv, int *i, const char *name, const char **value,
                  bool *missing)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    if (strncmp(a, name, n) != 0)
        return false;
    if (a[n] == '=') {
        *value = a + n + 1;
        return true;
    }
    if (a[n] != 0)
        return false;
    if (*i + 1 >= argc) {
        *missing = true;
        return true;
    }
    *value = argv[++*i];
    return true;
}

const char *sst__cli_admin(const char *admin)
{
    if (admin != NULL && admin[0] != 0)
        return admin;
    admin = getenv("SIDESTEP_ADMIN");
    return admin != NULL && admin[0] != 0 ? admin : SST_CLI_DEFAULT_ADMIN;
}

const char *sst__cli_env_token(void)
{
    const char *token = getenv("SIDESTEP_TOKEN");
    return token != NULL && token[0] != 0 ? token : NULL;
}

int sst__cli_admin_addr(const char *text, sst_addr_t *addr)
{
    sst_str_t s = sst_str_c(text);

    if (s.len > 7 && strncmp(s.base, "http://", 7) == 0) {
        s.base += 7;
        s.len -= 7;
    }
    if (s.len > 0 && s.base[s.len - 1] == '/')
        s.len--;
    return sst_parse_addr(s.base, s.len, false, true, addr) == 0 ? 0 : SST_EINVAL;
}

int sst__cli_duration(const char *text, bool zero_ok, uint64_t *out)
{
    uint64_t ms;

    if (sst_parse_duration_ms(text, strlen(text), &ms) != 0 || (!zero_ok && ms == 0) ||
        ms > SST_CLI_MAX_MS)
        return SST_EINVAL;
    *out = ms;
    return 0;
}

void sst__cli_encode(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    if (size == 0)
        return;
    for (; *in != 0 && o + 4 < size; in++) {
        unsigned char c = (unsigned char)*in;
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '~' || c == ':';
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
}

char *sst__cli_action_body(const char *reason, const char *ttl)
{
    return sst__cli_action_body_ex(reason, ttl, NULL, false);
}

char *sst__cli_action_body_ex(const char *reason, const char *ttl, const char *scope,
                              bool override_safety)
{
    json_object *b = json_object_new_object();
    char *out = NULL;

    if (b != NULL && json_object_object_add(b, "reason", json_object_new_string(reason)) == 0 &&
        (ttl == NULL || json_object_object_add(b, "ttl", json_object_new_string(ttl)) == 0) &&
        (scope == NULL || json_object_object_add(b, "scope", json_object_new_string(scope)) == 0) &&
        (!override_safety ||
         json_object_object_add(b, "override_safety", json_object_new_boolean(1)) == 0))
        out = strdup(json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN));
    json_object_put(b);
    return out;
}

int sst__cli_admin_call(const sst_addr_t *admin, const char *token, const char *method,
                        const char *target, const char *body, uint64_t timeout_ms,
                        sst_hc_reply_t *out, char *err, size_t err_size)
{
    sst_hc_req_t req = {
        .addr = admin,
        .host = admin->text,
        .method = method,
        .target = target,
        .token = token,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .timeout_ms = timeout_ms,
    };
    return sst__hc_request(&req, out, err, err_size);
}

const char *sst__cli_error_text(json_object *j, const sst_hc_reply_t *r)
{
    const char *msg = sst__json_str(j, "error", NULL);
    return msg != NULL ? msg : r->body;
}

json_object *sst__json_get(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o != NULL && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

const char *sst__json_str(json_object *o, const char *key, const char *dflt)
{
    json_object *v = sst__json_get(o, key);
    return v != NULL && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : dflt;
}

uint64_t sst__json_u64(json_object *o, const char *key)
{
    json_object *v = sst__json_get(o, key);
    return v != NULL ? json_object_get_uint64(v) : 0;
}

bool sst__json_has(json_object *o, const char *key)
{
    json_object *v = sst__json_get(o, key);
    return v != NULL && !json_object_is_type(v, json_type_null);
}

const char *sst__human_ms(uint64_t ms, char *buf, size_t size)
{
    if (ms < 1000)
        snprintf(buf, size, "%llums", (unsigned long long)ms);
    else if (ms < 60000)
        snprintf(buf, size, "%.*fs", ms % 1000 == 0 ? 0 : ms < 10000 ? 2 : 1, (double)ms / 1000);
    else if (ms < 3600000)
        snprintf(buf, size, "%llum%llus", (unsigned long long)(ms / 60000),
                 (unsigned long long)(ms % 60000 / 1000));
    else
        snprintf(buf, size, "%lluh%llum", (unsigned long long)(ms / 3600000),
                 (unsigned long long)(ms % 3600000 / 60000));
    return buf;
}
