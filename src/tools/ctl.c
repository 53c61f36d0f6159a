/* `sidestep ctl`: the admin API from a shell. Parses the command line, sends one request with
 * the blocking client, and prints either the raw answer (--json) or a readable summary.
 * Exit status: 0 ok, 1 the request failed (the server's error is printed), 2 usage. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "admin/admin.h"
#include "sidestep/config.h"
#include "sidestep/error.h"
#include "sidestep/tools.h"

#define CTL_DEFAULT_ADMIN   "127.0.0.1:9901"
#define CTL_DEFAULT_TIMEOUT 10000

static const char ctl_usage[] =
    "usage: sidestep ctl [--admin HOST:PORT] [--token TOKEN] [--json] [--timeout D] COMMAND\n"
    "\n"
    "commands:\n"
    "  status                                  regions, backends, routes and counters\n"
    "  metrics                                 the Prometheus text\n"
    "  reload                                  re-read the config file (like SIGHUP)\n"
    "  drain REGION --reason R [--ttl D]       send no new traffic to REGION\n"
    "  undrain REGION --reason R               end a drain\n"
    "  force-down region NAME|backend HOST:PORT --reason R [--ttl D]\n"
    "  force-up   region NAME|backend HOST:PORT --reason R [--ttl D]\n"
    "  clear      region NAME|backend HOST:PORT --reason R      remove a force\n"
    "\n"
    "options:\n"
    "  --admin HOST:PORT   admin API address (default $SIDESTEP_ADMIN, else " CTL_DEFAULT_ADMIN
    ")\n"
    "  --token TOKEN       bearer token (default $SIDESTEP_TOKEN)\n"
    "  --json              print the server's JSON answer as is\n"
    "  --timeout D         give up after D (default 10s)\n"
    "  --reason R          why (required for actions; logged with the event)\n"
    "  --ttl D             the action expires after D (30s, 10m, 1h)\n"
    "\n"
    "exit status: 0 ok, 1 the request failed, 2 usage error. See docs/operations.md.\n";

typedef struct ctl_opts_s {
    const char *admin;
    const char *token;
    const char *reason;
    const char *ttl;
    bool json;
    uint64_t timeout_ms;
    const char *words[4];
    size_t n_words;
} ctl_opts_t;

static int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int ctl_usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "sidestep ctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see sidestep ctl --help)\n");
    return 2;
}

/* Matches "--name VALUE" and "--name=VALUE". */
static bool ctl_opt(int argc, char **argv, int *i, const char *name, const char **value,
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

static int ctl_parse(int argc, char **argv, ctl_opts_t *o)
{
    const char *timeout = NULL;
    memset(o, 0, sizeof(*o));
    o->admin = getenv("SIDESTEP_ADMIN");
    o->token = getenv("SIDESTEP_TOKEN");
    if (o->token != NULL && o->token[0] == 0)
        o->token = NULL;
    o->timeout_ms = CTL_DEFAULT_TIMEOUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool missing = false;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(ctl_usage, stdout);
            return 1;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (ctl_opt(argc, argv, &i, "--admin", &o->admin, &missing) ||
                   ctl_opt(argc, argv, &i, "--token", &o->token, &missing) ||
                   ctl_opt(argc, argv, &i, "--reason", &o->reason, &missing) ||
                   ctl_opt(argc, argv, &i, "--ttl", &o->ttl, &missing) ||
                   ctl_opt(argc, argv, &i, "--timeout", &timeout, &missing)) {
            if (missing)
                return ctl_usage_error("%s needs a value", a);
        } else if (a[0] == '-' && a[1] != 0) {
            return ctl_usage_error("unknown option '%s'", a);
        } else {
            if (o->n_words == sizeof(o->words) / sizeof(o->words[0]))
                return ctl_usage_error("unexpected argument '%s'", a);
            o->words[o->n_words++] = a;
        }
    }
    if (o->admin == NULL || o->admin[0] == 0)
        o->admin = CTL_DEFAULT_ADMIN;
    if (timeout != NULL && (sst_parse_duration_ms(timeout, strlen(timeout), &o->timeout_ms) != 0 ||
                            o->timeout_ms == 0 || o->timeout_ms > SST_CLI_MAX_MS))
        return ctl_usage_error("bad --timeout '%s' (use 5s, 500ms; at most 24h)", timeout);
    if (o->n_words == 0)
        return ctl_usage_error("%s", "a command is required");
    return 0;
}

/* "HOST:PORT", also accepted with an http:// prefix and a trailing slash. */
static int ctl_admin_addr(const char *text, sst_addr_t *addr)
{
    sst_str_t s = sst_str_c(text);
    if (s.len > 7 && strncmp(s.base, "http://", 7) == 0) {
        s.base += 7;
        s.len -= 7;
    }
    if (s.len > 0 && s.base[s.len - 1] == '/')
        s.len--;
    return sst_parse_addr(s.base, s.len, false, true, addr);
}

/* Percent-encodes a path segment: unreserved characters and ':' stay as they are. */
static void ctl_encode(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
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

/* ---- readable output ----------------------------------------------------------------------- */

static json_object *jget(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *jstr(json_object *o, const char *key, const char *dflt)
{
    json_object *v = jget(o, key);
    return v != NULL && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : dflt;
}

static uint64_t ju64(json_object *o, const char *key)
{
    json_object *v = jget(o, key);
    return v != NULL ? json_object_get_uint64(v) : 0;
}

static bool jhas(json_object *o, const char *key)
{
    json_object *v = jget(o, key);
    return v != NULL && !json_object_is_type(v, json_type_null);
}

/* "2024-05-01T12:00:00.123Z" -> "2024-05-01 12:00:00" */
static const char *ctl_time(const char *iso, char *buf, size_t size)
{
    snprintf(buf, size, "%.19s", iso != NULL ? iso : "-");
    if (strlen(buf) > 10 && buf[10] == 'T')
        buf[10] = ' ';
    return buf;
}

#define CTL_ROW    "%-22s %-5s  %-19s  %7s  %s%s%s\n"
#define CTL_DETAIL "%-31s"

static void ctl_print_header(const char *first)
{
    printf(CTL_ROW, first, "STATE", "SINCE (UTC)", "FOR", "REASON", "", "");
}

static void ctl_print_action(const char *what, json_object *a)
{
    char h[32];
    printf(CTL_DETAIL "%s: \"%s\"", "", what, jstr(a, "reason", ""));
    if (jhas(a, "expires_in_ms"))
        printf(", expires in %s\n", sst__human_ms(ju64(a, "expires_in_ms"), h, sizeof(h)));
    else
        printf(", no expiry\n");
}

static void ctl_print_state_row(const char *indent, const char *name, json_object *o)
{
    char t[32], ago[32], label[300];
    json_object *reason = jget(o, "reason");
    snprintf(label, sizeof(label), "%s%s", indent, name);
    printf(CTL_ROW, label, jstr(o, "state", "?"), ctl_time(jstr(o, "since", NULL), t, sizeof(t)),
           sst__human_ms(ju64(o, "since_ms_ago"), ago, sizeof(ago)), jstr(reason, "code", "?"),
           ": ", jstr(reason, "text", ""));
}

static void ctl_print_backend(json_object *b, const char *indent)
{
    char d[32];
    json_object *p = jget(b, "probe");
    ctl_print_state_row(indent, jstr(b, "address", "?"), b);
    printf(CTL_DETAIL "probes %llu ok / %llu failed", "", (unsigned long long)ju64(p, "ok"),
           (unsigned long long)ju64(p, "failed"));
    if (jhas(p, "last_status"))
        printf(", last %llu in %s", (unsigned long long)ju64(p, "last_status"),
               sst__human_ms(ju64(p, "last_duration_ms"), d, sizeof(d)));
    else if (jhas(p, "last_result"))
        printf(", last %s", jstr(p, "last_result", "?"));
    if (!json_object_get_boolean(jget(b, "health_checks")))
        printf(" (health checks off)");
    if (json_object_get_boolean(jget(jget(b, "passive"), "down")))
        printf("; down by passive checks");
    printf("\n");
    if (jhas(b, "force")) {
        char what[32];
        snprintf(what, sizeof(what), "forced %s", jstr(jget(b, "force"), "state", "?"));
        ctl_print_action(what, jget(b, "force"));
    }
}

static void ctl_print_region(json_object *r)
{
    char h[32];
    json_object *bs = jget(r, "backends");
    ctl_print_state_row("", jstr(r, "name", "?"), r);
    printf(CTL_DETAIL "%llu/%llu backends up, %s", "", (unsigned long long)ju64(r, "backends_up"),
           (unsigned long long)ju64(r, "backends_total"),
           json_object_get_boolean(jget(r, "routable")) ? "routable" : "not routable");
    if (jhas(r, "failback_hold"))
        printf(" (failback hold: %s left)",
               sst__human_ms(ju64(jget(r, "failback_hold"), "remaining_ms"), h, sizeof(h)));
    printf("\n");
    if (jhas(r, "force")) {
        char what[32];
        snprintf(what, sizeof(what), "forced %s", jstr(jget(r, "force"), "state", "?"));
        ctl_print_action(what, jget(r, "force"));
    }
    if (jhas(r, "drain"))
        ctl_print_action("drained", jget(r, "drain"));
    for (size_t i = 0; bs != NULL && i < json_object_array_length(bs); i++)
        ctl_print_backend(json_object_array_get_idx(bs, i), "  ");
}

static void ctl_print_route(json_object *rt)
{
    char match[300], fo[256] = "", dec[400];
    json_object *f = jget(rt, "failover"), *d = jget(rt, "decision");
    snprintf(match, sizeof(match), "%s%s", jstr(rt, "host", "*"), jstr(rt, "path_prefix", "/"));
    for (size_t i = 0; f != NULL && i < json_object_array_length(f); i++) {
        size_t l = strlen(fo);
        snprintf(fo + l, sizeof(fo) - l, "%s%s", i ? "," : "",
                 json_object_get_string(json_object_array_get_idx(f, i)));
    }
    const char *kind = jstr(d, "kind", NULL);
    if (kind == NULL)
        snprintf(dec, sizeof(dec), "none (%s)", jstr(d, "reason", "?"));
    else if (strcmp(kind, "proxy") == 0)
        snprintf(dec, sizeof(dec), "proxy to %s (%s)", jstr(d, "region", "?"),
                 jstr(d, "reason", ""));
    else if (strcmp(kind, "redirect") == 0)
        snprintf(dec, sizeof(dec), "redirect %llu to %s (%s)",
                 (unsigned long long)ju64(d, "status"), jstr(d, "region", "?"),
                 jstr(d, "reason", ""));
    else
        snprintf(dec, sizeof(dec), "reject %llu (%s)", (unsigned long long)ju64(d, "status"),
                 jstr(d, "reason", ""));
    printf("%-16s %-24s %-10s %-16s %s\n", jstr(rt, "name", "?"), match, jstr(rt, "primary", "?"),
           fo[0] ? fo : "-", dec);
}

static void ctl_print_status(json_object *st)
{
    char up[32];
    json_object *c = jget(st, "counters"), *cfg = jget(st, "config"), *ls = jget(st, "listeners");
    json_object *rs = jget(st, "regions"), *ro = jget(st, "routes");

    printf("sidestep %s, pid %llu, up %s, %llu worker%s, config version %llu (%s)\n",
           jstr(st, "version", "?"), (unsigned long long)ju64(st, "pid"),
           sst__human_ms(ju64(st, "uptime_ms"), up, sizeof(up)),
           (unsigned long long)ju64(st, "workers"), ju64(st, "workers") == 1 ? "" : "s",
           (unsigned long long)ju64(cfg, "version"), jstr(cfg, "source", "?"));
    printf("listening on");
    for (size_t i = 0; ls != NULL && i < json_object_array_length(ls); i++)
        printf(" %s", json_object_get_string(json_object_array_get_idx(ls, i)));
    printf(", admin on %s, local region %s\n", jstr(st, "admin", "-"),
           jstr(st, "local_region", "-"));
    printf(
        "requests %llu, connections %llu active / %llu total, redirects %llu, "
        "in-flight failovers %llu\n\n",
        (unsigned long long)ju64(c, "requests"), (unsigned long long)ju64(c, "connections_active"),
        (unsigned long long)ju64(c, "connections_total"), (unsigned long long)ju64(c, "redirects"),
        (unsigned long long)ju64(c, "inflight_failovers"));
    ctl_print_header("REGION / BACKEND");
    for (size_t i = 0; rs != NULL && i < json_object_array_length(rs); i++)
        ctl_print_region(json_object_array_get_idx(rs, i));
    printf("\n%-16s %-24s %-10s %-16s %s\n", "ROUTE", "MATCH", "PRIMARY", "FAILOVER",
           "DECISION NOW");
    for (size_t i = 0; ro != NULL && i < json_object_array_length(ro); i++)
        ctl_print_route(json_object_array_get_idx(ro, i));
}

static void ctl_print_answer(const char *cmd, json_object *o)
{
    if (strcmp(cmd, "status") == 0) {
        ctl_print_status(o);
    } else if (strcmp(cmd, "reload") == 0) {
        printf("reloaded: config version %llu (%s)\n",
               (unsigned long long)ju64(o, "config_version"), jstr(o, "source", "?"));
    } else if (jhas(o, "address")) {
        json_object *all = jget(o, "instances");
        ctl_print_header("BACKEND");
        for (size_t i = 0; all != NULL && i < json_object_array_length(all); i++)
            ctl_print_backend(json_object_array_get_idx(all, i), "");
        if (all == NULL)
            ctl_print_backend(o, "");
    } else {
        ctl_print_header("REGION / BACKEND");
        ctl_print_region(o);
    }
}

/* ---- commands -------------------------------------------------------------------------------- */

typedef struct ctl_cmd_s {
    const char *method;
    char target[1024];
    char *body;
} ctl_cmd_t;

static int ctl_action_body(const ctl_opts_t *o, char **out)
{
    json_object *b = json_object_new_object();
    if (b == NULL || json_object_object_add(b, "reason", json_object_new_string(o->reason)) != 0 ||
        (o->ttl != NULL && json_object_object_add(b, "ttl", json_object_new_string(o->ttl)) != 0)) {
        json_object_put(b);
        return SST_ENOMEM;
    }
    *out = strdup(json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN));
    json_object_put(b);
    return *out != NULL ? 0 : SST_ENOMEM;
}

/* Turns the words into a request. Returns 0, or 2 after printing a usage error. */
static int ctl_build(const ctl_opts_t *o, ctl_cmd_t *cmd)
{
    static const struct {
        const char *word;
        sst_admin_op_t op;
        bool region_only;
    } actions[] = {
        {"drain", SST_ADMIN_DRAIN, true},
        {"undrain", SST_ADMIN_UNDRAIN, true},
        {"force-down", SST_ADMIN_FORCE_DOWN, false},
        {"force-up", SST_ADMIN_FORCE_UP, false},
        {"clear", SST_ADMIN_CLEAR, false},
    };
    const char *w = o->words[0];
    char enc[SST_ADMIN_NAME_MAX * 3 + 1];

    memset(cmd, 0, sizeof(*cmd));
    if (strcmp(w, "status") == 0 || strcmp(w, "metrics") == 0 || strcmp(w, "reload") == 0) {
        if (o->n_words != 1)
            return ctl_usage_error("%s takes no argument", w);
        cmd->method = strcmp(w, "reload") == 0 ? "POST" : "GET";
        snprintf(cmd->target, sizeof(cmd->target), "/%s", w);
        return 0;
    }
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        if (strcmp(w, actions[i].word) != 0)
            continue;
        const char *kind = "region", *name;
        if (actions[i].region_only) {
            if (o->n_words != 2)
                return ctl_usage_error("usage: %s REGION --reason R", w);
            name = o->words[1];
        } else {
            if (o->n_words != 3 ||
                (strcmp(o->words[1], "region") != 0 && strcmp(o->words[1], "backend") != 0))
                return ctl_usage_error("usage: %s region NAME|backend HOST:PORT --reason R", w);
            kind = o->words[1];
            name = o->words[2];
        }
        if (o->reason == NULL || o->reason[0] == 0)
            return ctl_usage_error("%s needs --reason", w);
        if (o->ttl != NULL &&
            (actions[i].op == SST_ADMIN_UNDRAIN || actions[i].op == SST_ADMIN_CLEAR))
            return ctl_usage_error("--ttl does not apply to %s", w);
        uint64_t ttl;
        if (o->ttl != NULL && (sst_parse_duration_ms(o->ttl, strlen(o->ttl), &ttl) != 0 ||
                               ttl == 0 || ttl > SST_ADMIN_MAX_TTL_MS))
            return ctl_usage_error("bad --ttl '%s' (use 30s, 10m, 1h; at most 720h)", o->ttl);
        if (strlen(name) >= SST_ADMIN_NAME_MAX)
            return ctl_usage_error("name too long: %s", name);
        ctl_encode(name, enc, sizeof(enc));
        snprintf(cmd->target, sizeof(cmd->target), "/%s/%s/%s",
                 strcmp(kind, "region") == 0 ? "regions" : "backends", enc, w);
        cmd->method = "POST";
        if (ctl_action_body(o, &cmd->body) != 0) {
            fprintf(stderr, "sidestep ctl: out of memory\n");
            return 1;
        }
        return 0;
    }
    return ctl_usage_error("unknown command '%s'", w);
}

int sst_ctl_main(int argc, char **argv)
{
    ctl_opts_t o;
    ctl_cmd_t cmd;
    sst_addr_t addr;
    sst_hc_reply_t reply;
    char err[512];
    int rc = ctl_parse(argc, argv, &o);

    if (rc != 0)
        return rc == 1 ? 0 : rc;
    if (ctl_admin_addr(o.admin, &addr) != 0)
        return ctl_usage_error("bad --admin '%s' (want HOST:PORT)", o.admin);
    if ((rc = ctl_build(&o, &cmd)) != 0)
        return rc;
    sst_hc_req_t req = {
        .addr = &addr,
        .host = addr.text,
        .method = cmd.method,
        .target = cmd.target,
        .token = o.token,
        .body = cmd.body,
        .body_len = cmd.body != NULL ? strlen(cmd.body) : 0,
        .timeout_ms = o.timeout_ms,
    };
    rc = sst__hc_request(&req, &reply, err, sizeof(err));
    free(cmd.body);
    if (rc != 0) {
        fprintf(stderr, "sidestep ctl: admin API at %s: %s\n", addr.text, err);
        return 1;
    }
    json_object *j = NULL;
    if (strstr(reply.content_type, "json") != NULL)
        j = json_tokener_parse(reply.body);
    if (reply.status < 200 || reply.status > 299) {
        const char *msg = j != NULL ? jstr(j, "error", NULL) : NULL;
        if (o.json && j != NULL)
            fwrite(reply.body, 1, reply.body_len, stdout);
        fprintf(stderr, "sidestep ctl: %u: %s\n", reply.status, msg ? msg : reply.body);
        json_object_put(j);
        sst__hc_reply_free(&reply);
        return 1;
    }
    if (o.json || j == NULL)
        fwrite(reply.body, 1, reply.body_len, stdout);
    else
        ctl_print_answer(o.words[0], j);
    json_object_put(j);
    sst__hc_reply_free(&reply);
    return 0;
}
