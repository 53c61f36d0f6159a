/* `sidestep ctl`: the admin API from a shell. Parses the command line, sends one request with
 * the blocking client, and prints either the raw answer (--json) or a readable summary.
 * Exit status: 0 ok, 1 the request failed (the server's error is printed), 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "admin/admin.h"
#include "sidestep/config.h"
#include "sidestep/error.h"
#include "sidestep/tools.h"
#include "tools/cli.h"

#define CTL_DEFAULT_TIMEOUT 10000

static const char ctl_usage[] =
    "usage: sidestep ctl [--admin HOST:PORT] [--token TOKEN] [--json] [--timeout D] COMMAND\n"
    "\n"
    "commands:\n"
    "  status                                  regions, backends, routes and counters\n"
    "  metrics                                 the Prometheus text\n"
    "  reload                                  re-read the config file (like SIGHUP)\n"
    "  fleet                                   fleet mode: every live instance, the fleet's\n"
    "                                          overrides and the health quorum\n"
    "  drain REGION --reason R [--ttl D]       send no new traffic to REGION\n"
    "  undrain REGION --reason R               end a drain\n"
    "  force-down region NAME|backend HOST:PORT --reason R [--ttl D]\n"
    "  force-up   region NAME|backend HOST:PORT --reason R [--ttl D]\n"
    "  clear      region NAME|backend HOST:PORT --reason R      remove a force\n"
    "\n"
    "options:\n"
    "  --admin HOST:PORT   admin API address (default $SIDESTEP_ADMIN, else " SST_CLI_DEFAULT_ADMIN
    ")\n"
    "  --token TOKEN       bearer token (default $SIDESTEP_TOKEN)\n"
    "  --json              print the server's JSON answer as is\n"
    "  --timeout D         give up after D (default 10s)\n"
    "  --reason R          why (required for actions; logged with the event)\n"
    "  --ttl D             the action expires after D (30s, 10m, 1h; 5s or more for fleet)\n"
    "  --scope S           fleet mode: fleet (every instance, through etcd; the default) or\n"
    "                      local (this instance only; wins over the fleet's here)\n"
    "  --override-safety   a fleet force-down or drain that would leave a route with no\n"
    "                      usable region fleet-wide is done anyway\n"
    "\n"
    "exit status: 0 ok, 1 the request failed, 2 usage error. See docs/operations.md.\n";

typedef struct ctl_opts_s {
    const char *admin;
    const char *token;
    const char *reason;
    const char *ttl;
    const char *scope;
    bool override_safety;
    bool json;
    uint64_t timeout_ms;
    const char *words[4];
    size_t n_words;
} ctl_opts_t;

static int ctl_parse(int argc, char **argv, ctl_opts_t *o)
{
    const char *timeout = NULL;
    memset(o, 0, sizeof(*o));
    o->token = sst__cli_env_token();
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
        } else if (strcmp(a, "--override-safety") == 0) {
            o->override_safety = true;
        } else if (sst__cli_opt(argc, argv, &i, "--scope", &o->scope, &missing)) {
            if (missing)
                return sst__cli_usage_error("ctl", "%s needs a value", a);
            if (strcmp(o->scope, "fleet") != 0 && strcmp(o->scope, "local") != 0)
                return sst__cli_usage_error("ctl", "--scope is fleet or local (got '%s')",
                                            o->scope);
        } else if (sst__cli_opt(argc, argv, &i, "--admin", &o->admin, &missing) ||
                   sst__cli_opt(argc, argv, &i, "--token", &o->token, &missing) ||
                   sst__cli_opt(argc, argv, &i, "--reason", &o->reason, &missing) ||
                   sst__cli_opt(argc, argv, &i, "--ttl", &o->ttl, &missing) ||
                   sst__cli_opt(argc, argv, &i, "--timeout", &timeout, &missing)) {
            if (missing)
                return sst__cli_usage_error("ctl", "%s needs a value", a);
        } else if (a[0] == '-' && a[1] != 0) {
            return sst__cli_usage_error("ctl", "unknown option '%s'", a);
        } else {
            if (o->n_words == sizeof(o->words) / sizeof(o->words[0]))
                return sst__cli_usage_error("ctl", "unexpected argument '%s'", a);
            o->words[o->n_words++] = a;
        }
    }
    o->admin = sst__cli_admin(o->admin);
    if (timeout != NULL && sst__cli_duration(timeout, false, &o->timeout_ms) != 0)
        return sst__cli_usage_error("ctl", "bad --timeout '%s' (use 5s, 500ms; at most 24h)",
                                    timeout);
    if (o->n_words == 0)
        return sst__cli_usage_error("ctl", "%s", "a command is required");
    return 0;
}

/* ---- readable output ----------------------------------------------------------------------- */

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
    const char *src = sst__json_str(a, "source", NULL);
    printf(CTL_DETAIL "%s", "", what);
    if (src != NULL && strcmp(src, "fleet") == 0)
        printf(" (fleet, by %s)", sst__json_str(sst__json_get(a, "by"), "instance", "?"));
    else if (src != NULL)
        printf(" (%s%s)", src,
               json_object_get_boolean(sst__json_get(a, "fleet_shadowed"))
                   ? ", over a fleet override"
                   : "");
    printf(": \"%s\"", sst__json_str(a, "reason", ""));
    if (sst__json_has(a, "expires_in_ms"))
        printf(", expires in %s\n", sst__human_ms(sst__json_u64(a, "expires_in_ms"), h, sizeof(h)));
    else
        printf(", no expiry\n");
}

static void ctl_print_state_row(const char *indent, const char *name, json_object *o)
{
    char t[32], ago[32], label[300];
    json_object *reason = sst__json_get(o, "reason");
    snprintf(label, sizeof(label), "%s%s", indent, name);
    printf(CTL_ROW, label, sst__json_str(o, "state", "?"),
           ctl_time(sst__json_str(o, "since", NULL), t, sizeof(t)),
           sst__human_ms(sst__json_u64(o, "since_ms_ago"), ago, sizeof(ago)),
           sst__json_str(reason, "code", "?"), ": ", sst__json_str(reason, "text", ""));
}

static void ctl_print_backend(json_object *b, const char *indent)
{
    char d[32];
    json_object *p = sst__json_get(b, "probe");
    ctl_print_state_row(indent, sst__json_str(b, "address", "?"), b);
    printf(CTL_DETAIL "probes %llu ok / %llu failed", "",
           (unsigned long long)sst__json_u64(p, "ok"),
           (unsigned long long)sst__json_u64(p, "failed"));
    if (sst__json_has(p, "last_status"))
        printf(", last %llu in %s", (unsigned long long)sst__json_u64(p, "last_status"),
               sst__human_ms(sst__json_u64(p, "last_duration_ms"), d, sizeof(d)));
    else if (sst__json_has(p, "last_result"))
        printf(", last %s", sst__json_str(p, "last_result", "?"));
    if (!json_object_get_boolean(sst__json_get(b, "health_checks")))
        printf(" (health checks off)");
    if (json_object_get_boolean(sst__json_get(sst__json_get(b, "passive"), "down")))
        printf("; down by passive checks");
    printf("\n");
    if (sst__json_has(b, "force")) {
        char what[32];
        snprintf(what, sizeof(what), "forced %s",
                 sst__json_str(sst__json_get(b, "force"), "state", "?"));
        ctl_print_action(what, sst__json_get(b, "force"));
    }
}

static void ctl_print_region(json_object *r)
{
    char h[32];
    json_object *bs = sst__json_get(r, "backends");
    ctl_print_state_row("", sst__json_str(r, "name", "?"), r);
    printf(CTL_DETAIL "%llu/%llu backends up, %s", "",
           (unsigned long long)sst__json_u64(r, "backends_up"),
           (unsigned long long)sst__json_u64(r, "backends_total"),
           json_object_get_boolean(sst__json_get(r, "routable")) ? "routable" : "not routable");
    if (sst__json_has(r, "failback_hold"))
        printf(" (failback hold: %s left)",
               sst__human_ms(sst__json_u64(sst__json_get(r, "failback_hold"), "remaining_ms"), h,
                             sizeof(h)));
    printf("\n");
    if (sst__json_has(r, "force")) {
        char what[32];
        snprintf(what, sizeof(what), "forced %s",
                 sst__json_str(sst__json_get(r, "force"), "state", "?"));
        ctl_print_action(what, sst__json_get(r, "force"));
    }
    if (sst__json_has(r, "drain"))
        ctl_print_action("drained", sst__json_get(r, "drain"));
    for (size_t i = 0; bs != NULL && i < json_object_array_length(bs); i++)
        ctl_print_backend(json_object_array_get_idx(bs, i), "  ");
}

static void ctl_print_route(json_object *rt)
{
    char match[300], fo[256] = "", dec[400];
    json_object *f = sst__json_get(rt, "failover"), *d = sst__json_get(rt, "decision");
    snprintf(match, sizeof(match), "%s%s", sst__json_str(rt, "host", "*"),
             sst__json_str(rt, "path_prefix", "/"));
    for (size_t i = 0; f != NULL && i < json_object_array_length(f); i++) {
        size_t l = strlen(fo);
        snprintf(fo + l, sizeof(fo) - l, "%s%s", i ? "," : "",
                 json_object_get_string(json_object_array_get_idx(f, i)));
    }
    const char *kind = sst__json_str(d, "kind", NULL);
    if (kind == NULL)
        snprintf(dec, sizeof(dec), "none (%s)", sst__json_str(d, "reason", "?"));
    else if (strcmp(kind, "proxy") == 0)
        snprintf(dec, sizeof(dec), "proxy to %s (%s)", sst__json_str(d, "region", "?"),
                 sst__json_str(d, "reason", ""));
    else if (strcmp(kind, "redirect") == 0)
        snprintf(dec, sizeof(dec), "redirect %llu to %s (%s)",
                 (unsigned long long)sst__json_u64(d, "status"), sst__json_str(d, "region", "?"),
                 sst__json_str(d, "reason", ""));
    else
        snprintf(dec, sizeof(dec), "reject %llu (%s)",
                 (unsigned long long)sst__json_u64(d, "status"), sst__json_str(d, "reason", ""));
    printf("%-16s %-24s %-10s %-16s %s\n", sst__json_str(rt, "name", "?"), match,
           sst__json_str(rt, "primary", "?"), fo[0] ? fo : "-", dec);
}

/* One line on fleet mode for `ctl status`. */
static void ctl_print_fleet_line(json_object *f)
{
    json_object *dis = sst__json_get(f, "disagree");
    printf("fleet %s: instance %s, %s, revision %llu (applied %llu), startup %s%s",
           sst__json_str(f, "name", "?"), sst__json_str(f, "instance", "?"),
           json_object_get_boolean(sst__json_get(f, "connected")) ? "connected to etcd"
                                                                  : "NOT connected to etcd",
           (unsigned long long)sst__json_u64(f, "revision"),
           (unsigned long long)sst__json_u64(f, "applied_revision"),
           sst__json_str(f, "startup", "?"),
           json_object_get_boolean(sst__json_get(f, "accepting")) ? "" : " (holding clients)");
    for (size_t i = 0; dis != NULL && i < json_object_array_length(dis); i++)
        printf("%s%s", i == 0 ? ", disagrees on " : ",",
               json_object_get_string(json_object_array_get_idx(dis, i)));
    printf("\n");
    if (sst__json_has(f, "restart_needed"))
        printf("restart needed: %s\n", sst__json_str(f, "restart_needed", "?"));
}

static void ctl_print_status(json_object *st)
{
    char up[32];
    json_object *c = sst__json_get(st, "counters"), *cfg = sst__json_get(st, "config"),
                *ls = sst__json_get(st, "listeners");
    json_object *rs = sst__json_get(st, "regions"), *ro = sst__json_get(st, "routes");

    printf("sidestep %s, pid %llu, up %s, %llu worker%s, config version %llu (%s)\n",
           sst__json_str(st, "version", "?"), (unsigned long long)sst__json_u64(st, "pid"),
           sst__human_ms(sst__json_u64(st, "uptime_ms"), up, sizeof(up)),
           (unsigned long long)sst__json_u64(st, "workers"),
           sst__json_u64(st, "workers") == 1 ? "" : "s",
           (unsigned long long)sst__json_u64(cfg, "version"), sst__json_str(cfg, "source", "?"));
    printf("listening on");
    for (size_t i = 0; ls != NULL && i < json_object_array_length(ls); i++)
        printf(" %s", json_object_get_string(json_object_array_get_idx(ls, i)));
    printf(", admin on %s, local region %s\n", sst__json_str(st, "admin", "-"),
           sst__json_str(st, "local_region", "-"));
    if (sst__json_has(st, "fleet"))
        ctl_print_fleet_line(sst__json_get(st, "fleet"));
    printf("requests %llu, connections %llu active / %llu total, redirects %llu, "
           "in-flight failovers %llu\n\n",
           (unsigned long long)sst__json_u64(c, "requests"),
           (unsigned long long)sst__json_u64(c, "connections_active"),
           (unsigned long long)sst__json_u64(c, "connections_total"),
           (unsigned long long)sst__json_u64(c, "redirects"),
           (unsigned long long)sst__json_u64(c, "inflight_failovers"));
    ctl_print_header("REGION / BACKEND");
    for (size_t i = 0; rs != NULL && i < json_object_array_length(rs); i++)
        ctl_print_region(json_object_array_get_idx(rs, i));
    printf("\n%-16s %-24s %-10s %-16s %s\n", "ROUTE", "MATCH", "PRIMARY", "FAILOVER",
           "DECISION NOW");
    for (size_t i = 0; ro != NULL && i < json_object_array_length(ro); i++)
        ctl_print_route(json_object_array_get_idx(ro, i));
}

/* `ctl fleet`: the instances, their views, the fleet's overrides. */
static void ctl_print_fleet(json_object *f)
{
    char age[32], ttl[32], cfgv[48];
    json_object *q = sst__json_get(f, "quorum"), *ins = sst__json_get(f, "instances"),
                *ovr = sst__json_get(f, "overrides");
    uint64_t now = sst__json_u64(f, "time_ms");

    printf("fleet %s, seen from %s: %s, revision %llu (applied %llu), quorum %s (%s)\n\n",
           sst__json_str(f, "fleet", "?"), sst__json_str(f, "instance", "?"),
           json_object_get_boolean(sst__json_get(f, "connected")) ? "connected to etcd"
                                                                  : "NOT connected to etcd",
           (unsigned long long)sst__json_u64(f, "revision"),
           (unsigned long long)sst__json_u64(f, "applied_revision"), sst__json_str(q, "mode", "?"),
           sst__json_str(q, "basis", "?"));
    printf("%-16s %-22s %-8s %-24s %8s %8s  %s\n", "INSTANCE", "ADMIN", "VERSION",
           "CONFIG (VERSION HASH)", "SEEN", "APPLIED", "VIEW");
    for (size_t i = 0; ins != NULL && i < json_object_array_length(ins); i++) {
        json_object *m = json_object_array_get_idx(ins, i), *v = sst__json_get(m, "view");
        uint64_t seen = sst__json_u64(m, "last_seen");
        char name[80];
        snprintf(name, sizeof(name), "%s%s", sst__json_str(m, "instance", "?"),
                 json_object_get_boolean(sst__json_get(m, "self")) ? " *" : "");
        snprintf(cfgv, sizeof(cfgv), "%llu %s",
                 (unsigned long long)sst__json_u64(m, "config_version"),
                 sst__json_str(m, "config_hash", "-"));
        if (!json_object_get_boolean(sst__json_get(m, "live")))
            snprintf(age, sizeof(age), "gone");
        else
            sst__human_ms(now > seen ? now - seen : 0, age, sizeof(age));
        printf("%-16s %-22s %-8s %-24s %8s %8llu  ", name, sst__json_str(m, "admin", "-"),
               sst__json_str(m, "version", "-"), cfgv, age,
               (unsigned long long)sst__json_u64(m, "applied_revision"));
        bool first = true;
        if (v != NULL && json_object_is_type(v, json_type_object)) {
            json_object_object_foreach(v, region, rv)
            {
                const char *state = sst__json_str(rv, "state", "?");
                printf("%s%s %s", first ? "" : ", ", region, state);
                if (strcmp(state, "down") == 0 && sst__json_has(rv, "reason"))
                    printf(" (%s)", sst__json_str(rv, "reason", ""));
                first = false;
            }
        }
        printf("%s\n", first ? "-" : "");
    }
    printf("\n%-24s %-6s %-6s %-16s %-10s %s\n", "FLEET OVERRIDE", "KIND", "STATE", "BY", "EXPIRES",
           "REASON");
    size_t n = ovr != NULL ? json_object_array_length(ovr) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_array_get_idx(ovr, i);
        uint64_t exp = sst__json_u64(o, "expires_at");
        char target[300];
        snprintf(target, sizeof(target), "%s %s",
                 sst__json_has(o, "backend") ? "backend" : "region",
                 sst__json_str(o, "backend", sst__json_str(o, "region", "?")));
        if (exp == 0)
            snprintf(ttl, sizeof(ttl), "never");
        else if (exp <= now)
            snprintf(ttl, sizeof(ttl), "expired");
        else
            sst__human_ms(exp - now, ttl, sizeof(ttl));
        printf("%-24s %-6s %-6s %-16s %-10s %s\n", target, sst__json_str(o, "kind", "?"),
               sst__json_str(o, "state", "?"),
               sst__json_str(sst__json_get(o, "by"), "instance", "?"), ttl,
               sst__json_str(o, "reason", ""));
    }
    if (n == 0)
        printf("(none)\n");
}

static void ctl_print_answer(const char *cmd, json_object *o)
{
    const char *scope = sst__json_str(o, "scope", NULL);
    if (strcmp(cmd, "status") == 0) {
        ctl_print_status(o);
    } else if (strcmp(cmd, "fleet") == 0) {
        ctl_print_fleet(o);
    } else if (scope != NULL && strcmp(scope, "fleet") == 0) {
        printf("fleet: %s\n", sst__json_str(o, "message", "done"));
    } else if (strcmp(cmd, "reload") == 0) {
        printf("reloaded: config version %llu (%s)\n",
               (unsigned long long)sst__json_u64(o, "config_version"),
               sst__json_str(o, "source", "?"));
    } else if (sst__json_has(o, "address")) {
        json_object *all = sst__json_get(o, "instances");
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
    if (strcmp(w, "status") == 0 || strcmp(w, "metrics") == 0 || strcmp(w, "reload") == 0 ||
        strcmp(w, "fleet") == 0) {
        if (o->n_words != 1)
            return sst__cli_usage_error("ctl", "%s takes no argument", w);
        if (o->scope != NULL || o->override_safety)
            return sst__cli_usage_error("ctl", "--scope and --override-safety go with actions");
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
                return sst__cli_usage_error("ctl", "usage: %s REGION --reason R", w);
            name = o->words[1];
        } else {
            if (o->n_words != 3 ||
                (strcmp(o->words[1], "region") != 0 && strcmp(o->words[1], "backend") != 0))
                return sst__cli_usage_error(
                    "ctl", "usage: %s region NAME|backend HOST:PORT --reason R", w);
            kind = o->words[1];
            name = o->words[2];
        }
        if (o->reason == NULL || o->reason[0] == 0)
            return sst__cli_usage_error("ctl", "%s needs --reason", w);
        if (o->ttl != NULL &&
            (actions[i].op == SST_ADMIN_UNDRAIN || actions[i].op == SST_ADMIN_CLEAR))
            return sst__cli_usage_error("ctl", "--ttl does not apply to %s", w);
        uint64_t ttl;
        if (o->ttl != NULL && (sst_parse_duration_ms(o->ttl, strlen(o->ttl), &ttl) != 0 ||
                               ttl == 0 || ttl > SST_ADMIN_MAX_TTL_MS))
            return sst__cli_usage_error("ctl", "bad --ttl '%s' (use 30s, 10m, 1h; at most 720h)",
                                        o->ttl);
        if (strlen(name) >= SST_ADMIN_NAME_MAX)
            return sst__cli_usage_error("ctl", "name too long: %s", name);
        sst__cli_encode(name, enc, sizeof(enc));
        snprintf(cmd->target, sizeof(cmd->target), "/%s/%s/%s",
                 strcmp(kind, "region") == 0 ? "regions" : "backends", enc, w);
        if (o->override_safety && o->scope != NULL && strcmp(o->scope, "local") == 0)
            return sst__cli_usage_error("ctl", "--override-safety goes with fleet actions");
        cmd->method = "POST";
        cmd->body = sst__cli_action_body_ex(o->reason, o->ttl, o->scope, o->override_safety);
        if (cmd->body == NULL) {
            fprintf(stderr, "sidestep ctl: out of memory\n");
            return 1;
        }
        return 0;
    }
    return sst__cli_usage_error("ctl", "unknown command '%s'", w);
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
    if (sst__cli_admin_addr(o.admin, &addr) != 0)
        return sst__cli_usage_error("ctl", "bad --admin '%s' (want HOST:PORT)", o.admin);
    if ((rc = ctl_build(&o, &cmd)) != 0)
        return rc;
    rc = sst__cli_admin_call(&addr, o.token, cmd.method, cmd.target, cmd.body, o.timeout_ms, &reply,
                             err, sizeof(err));
    free(cmd.body);
    if (rc != 0) {
        fprintf(stderr, "sidestep ctl: admin API at %s: %s\n", addr.text, err);
        return 1;
    }
    json_object *j = NULL;
    if (strstr(reply.content_type, "json") != NULL)
        j = json_tokener_parse(reply.body);
    if (reply.status < 200 || reply.status > 299) {
        if (o.json && j != NULL)
            fwrite(reply.body, 1, reply.body_len, stdout);
        fprintf(stderr, "sidestep ctl: %u: %s\n", reply.status, sst__cli_error_text(j, &reply));
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
