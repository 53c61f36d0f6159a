/* `sidestep drill`: a failover drill against a running instance. It reads /status, sends its
 * own steady traffic (drill_traffic.c), forces the primary region down through the admin API,
 * measures how long until every answer is a redirect to the failover region, restores the
 * region and measures how long until traffic is proxied again, then reports. A force it set is
 * always cleared before it exits, on SIGINT/SIGTERM too; its TTL is the second safety net. */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <uv.h>

#include "sidestep/error.h"
#include "sidestep/log.h"
#include "sidestep/route.h"
#include "sidestep/tools.h"
#include "tools/cli.h"
#include "tools/drill.h"

#define DRILL_POLL_MS          10
#define DRILL_BASELINE_MS      5000
#define DRILL_ADMIN_TIMEOUT_MS 5000
#define DRILL_MAX_STABLE       50 /* answers in a row that make a switch "settled", at most */

static const char drill_usage[] =
    "usage: sidestep drill [options]\n"
    "\n"
    "Fails a region over and back while sending traffic of its own, and reports how long each\n"
    "switch took and what the clients saw.\n"
    "\n"
    "  --url URL               proxy URL to send traffic to (default "
    "http://127.0.0.1:8080/drill)\n"
    "  --admin HOST:PORT       admin API (default $SIDESTEP_ADMIN, else 127.0.0.1:9901)\n"
    "  --token TOKEN           bearer token (default $SIDESTEP_TOKEN)\n"
    "  --region NAME           region to fail (default: the primary of the route the URL "
    "matches)\n"
    "  --expect NAME           region traffic must move to (default: that route's first "
    "failover)\n"
    "  --rate N                requests per second (default 50)\n"
    "  --method M              request method (default GET)\n"
    "  --body-size SIZE        request body bytes (default 0; 16k, 1m)\n"
    "  --timeout D             per-request timeout (default 2s)\n"
    "  --hold D                time to stay failed over (default 3s)\n"
    "  --failover-timeout D    give up when failover takes longer (default 30s)\n"
    "  --failback-timeout D    give up when failback takes longer than the region's\n"
    "                          failback_delay plus D (default 30s)\n"
    "  --ttl D                 TTL of the force-down, a safety net if the drill dies\n"
    "                          (default: failover-timeout + hold + 60s)\n"
    "  --json FILE             also write the report as JSON to FILE ('-' for stdout)\n"
    "  --fleet                 fleet mode: force the region down fleet-wide through --admin,\n"
    "                          send traffic to every live instance (GET /fleet: each one's\n"
    "                          admin address, then its listener from its /status; the URL's\n"
    "                          host and path are kept) and report each instance's convergence\n"
    "                          with p50/p99/max\n"
    "\n"
    "Exit status: 0 the drill passed, 1 it failed or was interrupted (the report says why),\n"
    "2 usage error. See docs/operations.md.\n";

static volatile sig_atomic_t drill_signal;

int sst__drill_signalled(void)
{
    return (int)drill_signal;
}

static void drill_on_signal(int sig)
{
    struct sigaction sa;
    drill_signal = sig;
    /* a second signal ends the process at once; the force's TTL then restores the region */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, NULL);
}

typedef sst_drill_opts_t drill_opts_t;
typedef sst_drill_t drill_t;

void sst__drill_problem(drill_t *d, const char *fmt, ...)
{
    va_list ap;
    if (d->n_problems == sizeof(d->problems) / sizeof(d->problems[0]))
        return;
    va_start(ap, fmt);
    vsnprintf(d->problems[d->n_problems++], sizeof(d->problems[0]), fmt, ap);
    va_end(ap);
}

uint64_t sst__drill_now_us(const drill_t *d)
{
    return (uv_hrtime() - d->t0_ns) / 1000;
}

void sst__drill_say(const drill_t *d, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "drill [%7.3fs] ", (double)sst__drill_now_us(d) / 1e6);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- options ------------------------------------------------------------------------------- */

static int drill_duration(const char *name, const char *v, uint64_t *out, bool zero_ok)
{
    if (sst__cli_duration(v, zero_ok, out) != 0)
        return sst__cli_usage_error("drill", "bad duration for %s (use 500ms, 3s, 1m; at most 24h)",
                                    name);
    return 0;
}

/* Every option takes a value, as --name VALUE or --name=VALUE. */
static const char *const drill_options[] = {
    "--url",
    "--admin",
    "--token",
    "--region",
    "--expect",
    "--method",
    "--json",
    "--rate",
    "--body-size",
    "--timeout",
    "--hold",
    "--failover-timeout",
    "--failback-timeout",
    "--ttl",
    NULL,
};

static int drill_parse(int argc, char **argv, drill_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->url = "http://127.0.0.1:8080/drill";
    o->admin = sst__cli_admin(NULL);
    o->token = sst__cli_env_token();
    o->method = "GET";
    o->rate = 50;
    o->timeout_ms = 2000;
    o->hold_ms = 3000;
    o->failover_timeout_ms = 30000;
    o->failback_timeout_ms = 30000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL, *name = NULL;
        bool missing = false;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(drill_usage, stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0)
            return sst__cli_usage_error("drill", "unexpected argument '%s'", a);
        if (strcmp(a, "--fleet") == 0) {
            o->fleet = true;
            continue;
        }
        for (size_t k = 0; name == NULL && drill_options[k] != NULL; k++)
            if (sst__cli_opt(argc, argv, &i, drill_options[k], &v, &missing))
                name = drill_options[k];
        if (name == NULL)
            return sst__cli_usage_error("drill", "unknown option '%s'", a);
        if (missing)
            return sst__cli_usage_error("drill", "%s needs a value", a);
        int rc = 0;
        if (strcmp(name, "--url") == 0) {
            o->url = v;
        } else if (strcmp(name, "--admin") == 0) {
            o->admin = v;
        } else if (strcmp(name, "--token") == 0) {
            o->token = v[0] ? v : NULL;
        } else if (strcmp(name, "--region") == 0) {
            o->region = v;
        } else if (strcmp(name, "--expect") == 0) {
            o->expect = v;
        } else if (strcmp(name, "--method") == 0) {
            if (!sst_str_is_token(sst_str_c(v)) || strlen(v) > 20)
                return sst__cli_usage_error("drill", "bad --method '%s'", v);
            o->method = v;
        } else if (strcmp(name, "--json") == 0) {
            o->json_path = v;
        } else if (strcmp(name, "--rate") == 0) {
            char *end;
            o->rate = strtod(v, &end);
            if (end == v || *end != 0 || !(o->rate > 0) || o->rate > 10000)
                return sst__cli_usage_error("drill", "bad --rate '%s' (1..10000 requests/s)", v);
        } else if (strcmp(name, "--body-size") == 0) {
            if (sst_parse_size(v, strlen(v), &o->body_size) != 0 || o->body_size > (64u << 20))
                return sst__cli_usage_error("drill", "bad --body-size '%s' (at most 64m)", v);
        } else if (strcmp(name, "--timeout") == 0) {
            rc = drill_duration(name, v, &o->timeout_ms, false);
        } else if (strcmp(name, "--hold") == 0) {
            rc = drill_duration(name, v, &o->hold_ms, true);
        } else if (strcmp(name, "--failover-timeout") == 0) {
            rc = drill_duration(name, v, &o->failover_timeout_ms, false);
        } else if (strcmp(name, "--failback-timeout") == 0) {
            rc = drill_duration(name, v, &o->failback_timeout_ms, false);
        } else if (strcmp(name, "--ttl") == 0) {
            rc = drill_duration(name, v, &o->ttl_ms, false);
        }
        if (rc != 0)
            return rc;
    }
    if (o->ttl_ms == 0)
        o->ttl_ms = o->failover_timeout_ms + o->hold_ms + 60000;
    if (o->ttl_ms <= o->hold_ms)
        return sst__cli_usage_error("drill", "%s: --ttl must be longer than --hold", "ttl");
    return 0;
}

/* http://HOST[:PORT][/path]: the connect address, the Host header and the target. */
static int drill_parse_url(drill_t *d)
{
    const char *u = d->o.url;
    char hostport[320];
    if (strncmp(u, "http://", 7) != 0)
        return sst__cli_usage_error("drill", "--url must start with http:// (got '%s')", u);
    const char *auth = u + 7, *slash = strchr(auth, '/');
    size_t alen = slash ? (size_t)(slash - auth) : strlen(auth);
    if (alen == 0 || alen >= sizeof(d->proxy_host) || memchr(auth, '@', alen) != NULL ||
        memchr(auth, '?', alen) != NULL || memchr(auth, '#', alen) != NULL)
        return sst__cli_usage_error("drill", "bad host in --url '%s'", u);
    memcpy(d->proxy_host, auth, alen);
    d->proxy_host[alen] = 0;
    const char *path = slash ? slash : "/";
    if (strlen(path) >= sizeof(d->target) || strchr(path, '#') != NULL ||
        strpbrk(path, " \t\r\n") != NULL)
        return sst__cli_usage_error("drill", "bad path in --url '%s'", u);
    snprintf(d->target, sizeof(d->target), "%s", path);
    /* add the default port when none is given */
    const char *rb = strrchr(d->proxy_host, ']');
    const char *colon = strrchr(d->proxy_host, ':');
    bool has_port = colon != NULL && (rb == NULL || colon > rb);
    snprintf(hostport, sizeof(hostport), "%s%s", d->proxy_host, has_port ? "" : ":80");
    if (sst_parse_addr(hostport, strlen(hostport), false, true, &d->proxy_addr) != 0)
        return sst__cli_usage_error("drill", "cannot resolve the host of --url '%s'", u);
    return 0;
}

static int drill_admin_addr(drill_t *d)
{
    if (sst__cli_admin_addr(d->o.admin, &d->admin_addr) != 0)
        return sst__cli_usage_error("drill", "bad --admin '%s' (want HOST:PORT)", d->o.admin);
    return 0;
}

/* ---- the admin API ------------------------------------------------------------------------- */

/* One admin call. Returns the parsed JSON answer of a 2xx, or NULL with err filled. */
json_object *sst__drill_admin_at(drill_t *d, const sst_addr_t *addr, const char *method,
                                 const char *target, const char *body, char *err, size_t err_size)
{
    sst_hc_reply_t r;
    if (sst__cli_admin_call(addr, d->o.token, method, target, body, DRILL_ADMIN_TIMEOUT_MS, &r, err,
                            err_size) != 0)
        return NULL;
    json_object *j = json_tokener_parse(r.body);
    if (r.status < 200 || r.status > 299) {
        snprintf(err, err_size, "%s %s: %u %s", method, target, r.status,
                 sst__cli_error_text(j, &r));
        json_object_put(j);
        j = NULL;
    } else if (j == NULL) {
        snprintf(err, err_size, "%s %s: the answer is not JSON", method, target);
    }
    sst__hc_reply_free(&r);
    return j;
}

static json_object *drill_admin(drill_t *d, const char *method, const char *target,
                                const char *body, char *err, size_t err_size)
{
    return sst__drill_admin_at(d, &d->admin_addr, method, target, body, err, err_size);
}

json_object *sst__drill_find_region(json_object *status, const char *name)
{
    json_object *rs = sst__json_get(status, "regions");
    for (size_t i = 0; rs != NULL && i < json_object_array_length(rs); i++) {
        json_object *r = json_object_array_get_idx(rs, i);
        const char *n = sst__json_str(r, "name", NULL);
        if (n != NULL && strcmp(n, name) == 0)
            return r;
    }
    return NULL;
}

/* The route the drill URL matches, found with the proxy's own matcher over the route table
 * from /status (sst_route_match reads only routes[].host and routes[].path_prefix). */
static json_object *drill_find_route(drill_t *d, json_object *status)
{
    json_object *ro = sst__json_get(status, "routes");
    size_t n = ro != NULL ? json_object_array_length(ro) : 0;
    sst_config_t *cfg;
    json_object *found = NULL;

    if (n == 0 || n > SST_MAX_ROUTES || (cfg = calloc(1, sizeof(*cfg))) == NULL)
        return NULL;
    cfg->n_routes = n;
    for (size_t i = 0; i < n; i++) {
        json_object *rt = json_object_array_get_idx(ro, i);
        const char *h = sst__json_str(rt, "host", NULL),
                   *p = sst__json_str(rt, "path_prefix", NULL);
        cfg->routes[i].host = strdup(h ? h : "*");
        cfg->routes[i].path_prefix = strdup(p ? p : "/");
        if (cfg->routes[i].host == NULL || cfg->routes[i].path_prefix == NULL)
            goto done;
    }
    int idx = sst_route_match(cfg, sst_str_c(d->proxy_host), sst_str_c(d->target));
    if (idx >= 0)
        found = json_object_array_get_idx(ro, (size_t)idx);
done:
    for (size_t i = 0; i < n; i++) {
        free(cfg->routes[i].host);
        free(cfg->routes[i].path_prefix);
    }
    free(cfg);
    return found;
}

/* Reads /status and settles route, region, expected region and failback delay. */
static int drill_discover(drill_t *d)
{
    char err[1024];
    json_object *st = drill_admin(d, "GET", "/status", NULL, err, sizeof(err));
    if (st == NULL) {
        fprintf(stderr, "sidestep drill: reading /status: %s\n", err);
        return 1;
    }
    int rc = 1;
    json_object *rt = drill_find_route(d, st);
    if (rt == NULL && (d->o.region == NULL || d->o.expect == NULL)) {
        fprintf(stderr, "sidestep drill: no route matches %s; give --region and --expect\n",
                d->o.url);
        goto done;
    }
    snprintf(d->route, sizeof(d->route), "%s", sst__json_str(rt, "name", "?"));
    const char *primary = rt ? sst__json_str(rt, "primary", NULL) : NULL;
    json_object *fo = rt ? sst__json_get(rt, "failover") : NULL;
    const char *first_fo = fo != NULL && json_object_array_length(fo) > 0
                               ? json_object_get_string(json_object_array_get_idx(fo, 0))
                               : NULL;
    snprintf(d->region, sizeof(d->region), "%s",
             d->o.region ? d->o.region
             : primary   ? primary
                         : "");
    snprintf(d->expect, sizeof(d->expect), "%s",
             d->o.expect ? d->o.expect
             : first_fo  ? first_fo
                         : "");
    if (d->expect[0] == 0) {
        fprintf(stderr, "sidestep drill: route %s has no failover region; give --expect\n",
                d->route);
        goto done;
    }
    json_object *reg = sst__drill_find_region(st, d->region);
    if (reg == NULL || sst__drill_find_region(st, d->expect) == NULL) {
        fprintf(stderr, "sidestep drill: unknown region \"%s\"\n", reg ? d->expect : d->region);
        goto done;
    }
    if (strcmp(d->region, d->expect) == 0) {
        fprintf(stderr, "sidestep drill: the region to fail and the expected one are both %s\n",
                d->region);
        goto done;
    }
    if (primary != NULL && strcmp(primary, d->region) != 0)
        fprintf(stderr,
                "sidestep drill: warning: %s is not the primary of route %s (%s); the drill "
                "expects traffic to be proxied there before and after\n",
                d->region, d->route, primary);
    d->in_fleet = sst__json_has(st, "fleet");
    if (d->in_fleet && !d->o.fleet)
        fprintf(stderr,
                "sidestep drill: %s runs in fleet mode: the drill forces this instance "
                "alone (scope local); --fleet drills the whole fleet\n",
                d->admin_addr.text);
    json_object *v = sst__json_get(reg, "failback_delay_ms");
    d->failback_delay_ms = v != NULL ? json_object_get_uint64(v) : 0;
    v = sst__json_get(reg, "force");
    if (v != NULL && !json_object_is_type(v, json_type_null)) {
        fprintf(stderr, "sidestep drill: region %s already has a force (%s); clear it first\n",
                d->region, sst__json_str(v, "reason", "?"));
        goto done;
    }
    rc = 0;
done:
    json_object_put(st);
    return rc;
}

int sst__drill_region_op(drill_t *d, const char *op, uint64_t ttl_ms, char *err, size_t size)
{
    char target[512], enc[400], ttl[32];
    sst__cli_encode(d->region, enc, sizeof(enc));
    snprintf(target, sizeof(target), "/regions/%s/%s", enc, op);
    snprintf(ttl, sizeof(ttl), "%llums", (unsigned long long)ttl_ms);
    /* a fleet drill's force is fleet-wide; a drill of one instance in fleet mode forces that
     * instance alone (the server's default there would be the whole fleet) */
    char *body = sst__cli_action_body_ex("drill", ttl_ms != 0 ? ttl : NULL,
                                         d->o.fleet    ? "fleet"
                                         : d->in_fleet ? "local"
                                                       : NULL,
                                         false);
    if (body == NULL) {
        snprintf(err, size, "out of memory");
        return SST_ENOMEM;
    }
    json_object *j = drill_admin(d, "POST", target, body, err, size);
    free(body);
    if (j == NULL)
        return SST_EIO;
    json_object_put(j);
    return 0;
}

/* Clears our force; tries a few times, since leaving a region forced down is the worst outcome
 * of a drill. */
void sst__drill_restore(drill_t *d)
{
    char err[1024], ttl[32];
    if (!d->forced || d->cleared)
        return;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (sst__drill_region_op(d, "clear", 0, err, sizeof(err)) == 0) {
            d->cleared = true;
            return;
        }
        sst__drill_say(d, "clearing the force on %s failed: %s", d->region, err);
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr,
            "sidestep drill: WARNING: region %s may still be forced down (the force expires "
            "%s after it was set); clear it with:\n  sidestep ctl --admin %s clear region %s "
            "--reason drill\n",
            d->region, sst__human_ms(d->o.ttl_ms, ttl, sizeof(ttl)), d->admin_addr.text, d->region);
    sst__drill_problem(d, "could not clear the force on %s: %s", d->region, err);
}

/* ---- watching the traffic ------------------------------------------------------------------ */

sst_drill_kind_t sst__drill_kind(const drill_t *d, const sst_drill_rec_t *r)
{
    if (r->error != SST_DRILL_OK)
        return SST_DRILL_KIND_ERROR;
    if (r->status >= 200 && r->status <= 299 && r->region[0] == 0)
        return SST_DRILL_KIND_PROXIED;
    if (r->status >= 300 && r->status <= 399 && strcmp(r->region, d->expect) == 0)
        return SST_DRILL_KIND_EXPECTED;
    return SST_DRILL_KIND_OTHER;
}

bool sst__drill_settled(drill_t *d, sst_traffic_t *t, uint64_t since, sst_drill_kind_t kind,
                        char *last, size_t last_size)
{
    sst_drill_rec_t recs[DRILL_MAX_STABLE];
    size_t n = sst__traffic_recent(t, since, recs, d->stable), seen = 0;
    bool ok = true;
    last[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (seen++ == 0) {
            if (recs[i].error != SST_DRILL_OK)
                snprintf(last, last_size, "%s error",
                         sst__drill_err_word((sst_drill_err_t)recs[i].error));
            else
                snprintf(last, last_size, "%u%s%.47s", recs[i].status,
                         recs[i].region[0] ? " to " : "", recs[i].region);
        }
        if (sst__drill_kind(d, &recs[i]) != kind)
            ok = false;
    }
    return ok && seen >= d->stable;
}

void sst__drill_sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short, which is what the callers want */
}

/* Waits until settled or `timeout_ms`; false on timeout or signal (problem recorded). */
static bool drill_wait(drill_t *d, uint64_t since, sst_drill_kind_t kind, uint64_t timeout_ms,
                       const char *what)
{
    uint64_t deadline = sst__drill_now_us(d) + timeout_ms * 1000;
    char last[96] = "";
    for (;;) {
        if (drill_signal != 0) {
            d->interrupted = true;
            sst__drill_problem(d, "interrupted by signal %d while waiting for %s",
                               (int)drill_signal, what);
            return false;
        }
        if (sst__drill_settled(d, d->traffic, since, kind, last, sizeof(last)))
            return true;
        if (sst__drill_now_us(d) >= deadline) {
            char t[32];
            sst__drill_problem(d, "no %s within %s (last answer: %s)", what,
                               sst__human_ms(timeout_ms, t, sizeof(t)), last[0] ? last : "none");
            return false;
        }
        sst__drill_sleep_ms(DRILL_POLL_MS);
    }
}

bool sst__drill_pause(drill_t *d, uint64_t ms)
{
    uint64_t end = sst__drill_now_us(d) + ms * 1000;
    while (sst__drill_now_us(d) < end) {
        if (drill_signal != 0) {
            d->interrupted = true;
            sst__drill_problem(d, "interrupted by signal %d", (int)drill_signal);
            return false;
        }
        sst__drill_sleep_ms(DRILL_POLL_MS);
    }
    return true;
}

/* ---- the report ------------------------------------------------------------------------------ */

typedef sst_drill_report_t drill_report_t;

static int drill_cmp_start(const void *a, const void *b)
{
    const sst_drill_rec_t *x = a, *y = b;
    return x->start_us < y->start_us ? -1 : x->start_us > y->start_us;
}

/* The first answer of the unbroken run of `kind` that ends the window [from, to) of request
 * starts. Returns false when the window's last answer is not of `kind`. */
static bool drill_run(const drill_t *d, const sst_drill_rec_t *r, size_t n, uint64_t from,
                      uint64_t to, sst_drill_kind_t kind, uint64_t *first_end)
{
    size_t lo = n, hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (r[i].start_us < from || r[i].start_us >= to)
            continue;
        if (lo == n)
            lo = i;
        hi = i + 1;
    }
    if (lo == n)
        return false;
    size_t k = hi;
    while (k > lo && sst__drill_kind(d, &r[k - 1]) == kind)
        k--;
    if (k == hi)
        return false;
    /* the run's first answer to arrive, not its first request to be sent */
    uint64_t first = UINT64_MAX;
    for (size_t i = k; i < hi; i++)
        if (r[i].end_us < first)
            first = r[i].end_us;
    *first_end = first;
    return true;
}

void sst__drill_analyse(drill_t *d, sst_traffic_t *t, drill_report_t *rep)
{
    sst_drill_rec_t *r = NULL;
    size_t n = 0;
    memset(rep, 0, sizeof(*rep));
    if (sst__traffic_records(t, &r, &n, &rep->sent, &rep->skipped) != 0)
        sst__drill_problem(d, "out of memory: some requests were not recorded");
    qsort(r, n, sizeof(*r), drill_cmp_start);
    rep->n = n;
    for (size_t i = 0; i < n; i++) {
        sst_drill_kind_t k = sst__drill_kind(d, &r[i]);
        int phase = !d->forced || r[i].start_us < d->t_force_us           ? 0
                    : d->t_clear_us == 0 || r[i].start_us < d->t_clear_us ? 1
                                                                          : 2;
        rep->kinds[phase][k]++;
        if (r[i].error != SST_DRILL_OK) {
            rep->errors[r[i].error]++;
            continue;
        }
        rep->answered++;
        if (k == SST_DRILL_KIND_OTHER)
            rep->unexpected++;
        const char *reg = r[i].status >= 300 && r[i].status <= 399 ? r[i].region : "";
        size_t h = 0;
        while (h < rep->n_hist &&
               (rep->hist[h].status != r[i].status || strcmp(rep->hist[h].region, reg) != 0))
            h++;
        if (h == rep->n_hist && rep->n_hist < sizeof(rep->hist) / sizeof(rep->hist[0])) {
            rep->hist[h].status = r[i].status;
            snprintf(rep->hist[h].region, sizeof(rep->hist[h].region), "%s", reg);
            rep->n_hist++;
        }
        if (h < rep->n_hist)
            rep->hist[h].count++;
    }
    if (d->forced && d->t_clear_us != 0) {
        uint64_t first;
        if (drill_run(d, r, n, d->t_force_us, d->t_clear_us, SST_DRILL_KIND_EXPECTED, &first)) {
            rep->have_failover = true;
            rep->run_over_us = first;
            rep->failover_us = first > d->t_force_us ? first - d->t_force_us : 0;
        }
        if (drill_run(d, r, n, d->t_clear_us, UINT64_MAX, SST_DRILL_KIND_PROXIED, &first)) {
            rep->have_failback = true;
            rep->run_back_us = first;
            rep->failback_us = first > d->t_clear_us ? first - d->t_clear_us : 0;
        }
    }
    free(r);
}

static const char *drill_kind_words[4] = {"proxied", "redirected_expected", "other_status",
                                          "error"};

static json_object *drill_ms_or_null(bool have, uint64_t us)
{
    return have ? json_object_new_uint64((us + 500) / 1000) : NULL;
}

static json_object *drill_report_json(const drill_t *d, const drill_report_t *rep, bool pass)
{
    json_object *o = json_object_new_object(), *st = json_object_new_object(),
                *er = json_object_new_object(), *rq = json_object_new_object(),
                *ph = json_object_new_object(), *pr = json_object_new_array();
    char ts[32], key[80];
    static const char *const phase_names[3] = {"before", "during", "after"};

    if (o == NULL || st == NULL || er == NULL || rq == NULL || ph == NULL || pr == NULL) {
        json_object_put(o);
        json_object_put(st);
        json_object_put(er);
        json_object_put(rq);
        json_object_put(ph);
        json_object_put(pr);
        return NULL;
    }
    sst_log_time(d->start_epoch_ms, ts);
    json_object_object_add(o, "result", json_object_new_string(pass ? "pass" : "fail"));
    for (size_t i = 0; i < d->n_problems; i++)
        json_object_array_add(pr, json_object_new_string(d->problems[i]));
    json_object_object_add(o, "problems", pr);
    json_object_object_add(o, "url", json_object_new_string(d->o.url));
    json_object_object_add(o, "method", json_object_new_string(d->o.method));
    snprintf(key, sizeof(key), "%g", d->o.rate);
    json_object_object_add(o, "rate", json_object_new_double_s(d->o.rate, key));
    json_object_object_add(o, "body_size", json_object_new_uint64(d->o.body_size));
    json_object_object_add(o, "admin", json_object_new_string(d->admin_addr.text));
    json_object_object_add(o, "route", json_object_new_string(d->route));
    json_object_object_add(o, "region", json_object_new_string(d->region));
    json_object_object_add(o, "expected_region", json_object_new_string(d->expect));
    json_object_object_add(o, "failback_delay_ms", json_object_new_uint64(d->failback_delay_ms));
    json_object_object_add(o, "started_at", json_object_new_string(ts));
    json_object_object_add(o, "duration_ms", drill_ms_or_null(true, d->t_end_us));
    json_object_object_add(o, "force_down_at_ms", drill_ms_or_null(d->forced, d->t_force_us));
    json_object_object_add(o, "clear_at_ms", drill_ms_or_null(d->t_clear_us != 0, d->t_clear_us));
    json_object_object_add(o, "failover_ms",
                           drill_ms_or_null(rep->have_failover, rep->failover_us));
    json_object_object_add(o, "failback_ms",
                           drill_ms_or_null(rep->have_failback, rep->failback_us));
    json_object_object_add(rq, "sent", json_object_new_uint64(rep->sent));
    json_object_object_add(rq, "answered", json_object_new_uint64(rep->answered));
    json_object_object_add(rq, "skipped", json_object_new_uint64(rep->skipped));
    json_object_object_add(o, "requests", rq);
    for (size_t h = 0; h < rep->n_hist; h++) {
        snprintf(key, sizeof(key), "%u%s%s", rep->hist[h].status, rep->hist[h].region[0] ? " " : "",
                 rep->hist[h].region);
        json_object_object_add(st, key, json_object_new_uint64(rep->hist[h].count));
    }
    json_object_object_add(o, "statuses", st);
    for (int e = SST_DRILL_CONNECT; e < SST_DRILL_ERR__COUNT; e++)
        json_object_object_add(er, sst__drill_err_word((sst_drill_err_t)e),
                               json_object_new_uint64(rep->errors[e]));
    json_object_object_add(er, "unexpected_status", json_object_new_uint64(rep->unexpected));
    json_object_object_add(o, "errors", er);
    for (int p = 0; p < 3; p++) {
        json_object *po = json_object_new_object();
        for (int k = 0; k < 4 && po != NULL; k++)
            json_object_object_add(po, drill_kind_words[k],
                                   json_object_new_uint64(rep->kinds[p][k]));
        json_object_object_add(ph, phase_names[p], po);
    }
    json_object_object_add(o, "phases", ph);
    return o;
}

static void drill_print(const drill_t *d, const drill_report_t *rep, bool pass)
{
    char a[32];
    uint64_t nerr = 0;
    for (int e = SST_DRILL_CONNECT; e < SST_DRILL_ERR__COUNT; e++)
        nerr += rep->errors[e];
    printf("\nsidestep drill report\n");
    printf("  traffic      %s %s at %g req/s for %.1f s\n", d->o.method, d->o.url, d->o.rate,
           (double)d->t_end_us / 1e6);
    printf("  drill        fail %s (route %s), expect traffic on %s\n", d->region, d->route,
           d->expect);
    if (rep->have_failover)
        printf("  failover     %.3f s  (force-down at %.3f s; every answer a redirect to %s "
               "from %.3f s until the restore)\n",
               (double)rep->failover_us / 1e6, (double)d->t_force_us / 1e6, d->expect,
               (double)rep->run_over_us / 1e6);
    else
        printf("  failover     not achieved\n");
    if (rep->have_failback)
        printf("  failback     %.3f s  (restore at %.3f s; failback_delay %s; proxied again "
               "from %.3f s)\n",
               (double)rep->failback_us / 1e6, (double)d->t_clear_us / 1e6,
               sst__human_ms(d->failback_delay_ms, a, sizeof(a)), (double)rep->run_back_us / 1e6);
    else
        printf("  failback     not achieved\n");
    printf("  requests     %llu sent, %llu answered, %llu errors%s\n",
           (unsigned long long)rep->sent, (unsigned long long)rep->answered,
           (unsigned long long)nerr,
           rep->skipped ? " (some sends skipped: too many in flight)" : "");
    printf("  statuses    ");
    for (size_t h = 0; h < rep->n_hist; h++)
        printf(" %u%s%s x %llu%s", rep->hist[h].status, rep->hist[h].region[0] ? " to " : "",
               rep->hist[h].region, (unsigned long long)rep->hist[h].count,
               h + 1 < rep->n_hist ? "," : "");
    printf("%s\n", rep->n_hist == 0 ? " none" : "");
    printf("  errors       connect %llu, timeout %llu, reset %llu, protocol %llu, unexpected "
           "status %llu\n",
           (unsigned long long)rep->errors[SST_DRILL_CONNECT],
           (unsigned long long)rep->errors[SST_DRILL_TIMEOUT],
           (unsigned long long)rep->errors[SST_DRILL_RESET],
           (unsigned long long)rep->errors[SST_DRILL_PROTOCOL],
           (unsigned long long)rep->unexpected);
    for (size_t i = 0; i < d->n_problems; i++)
        printf("  problem      %s\n", d->problems[i]);
    printf("  result       %s\n", pass ? "PASS" : "FAIL");
}

int sst__drill_write_json(const drill_t *d, json_object *j)
{
    const char *text = json_object_to_json_string_ext(
        j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (strcmp(d->o.json_path, "-") == 0) {
        printf("%s\n", text);
        return 0;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", d->o.json_path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0 ||
        rename(tmp, d->o.json_path) != 0) {
        fprintf(stderr, "sidestep drill: cannot write %s\n", d->o.json_path);
        return 1;
    }
    return 0;
}

/* ---- the drill --------------------------------------------------------------------------- */

static void drill_steps(drill_t *d)
{
    char err[1024], t1[32], t2[32];
    uint64_t settle = (uint64_t)(1000.0 * (double)d->stable / d->o.rate);

    sst__drill_say(d, "sending %s %s at %g req/s", d->o.method, d->o.url, d->o.rate);
    if (!drill_wait(d, 0, SST_DRILL_KIND_PROXIED, DRILL_BASELINE_MS + settle,
                    "steady proxied traffic before the drill"))
        return;
    sst__drill_say(d, "baseline: answers are proxied; forcing %s down (ttl %s)", d->region,
                   sst__human_ms(d->o.ttl_ms, t1, sizeof(t1)));
    d->forced = true; /* from here on the exit path clears, even if the call seems to fail */
    d->t_force_us = sst__drill_now_us(d);
    if (sst__drill_region_op(d, "force-down", d->o.ttl_ms, err, sizeof(err)) != 0) {
        sst__drill_problem(d, "force-down failed: %s", err);
        return;
    }
    if (!drill_wait(d, d->t_force_us, SST_DRILL_KIND_EXPECTED, d->o.failover_timeout_ms,
                    "failover to the expected region")) {
        d->t_clear_us = sst__drill_now_us(d);
        return;
    }
    sst__drill_say(d, "failed over to %s; holding %s", d->expect,
                   sst__human_ms(d->o.hold_ms, t1, sizeof(t1)));
    bool held = sst__drill_pause(d, d->o.hold_ms);
    d->t_clear_us = sst__drill_now_us(d);
    sst__drill_restore(d);
    if (!held || !d->cleared)
        return;
    sst__drill_say(d,
                   "cleared the force on %s; waiting for failback (failback_delay %s, give up "
                   "after %s more)",
                   d->region, sst__human_ms(d->failback_delay_ms, t1, sizeof(t1)),
                   sst__human_ms(d->o.failback_timeout_ms, t2, sizeof(t2)));
    if (!drill_wait(d, d->t_clear_us, SST_DRILL_KIND_PROXIED,
                    d->failback_delay_ms + d->o.failback_timeout_ms, "failback to the region"))
        return;
    sst__drill_say(d, "traffic is proxied again");
}

int sst_drill_main(int argc, char **argv)
{
    drill_t *d = calloc(1, sizeof(*d));
    struct sigaction sa, old_int, old_term;
    char err[512];
    int rc;

    if (d == NULL) {
        fprintf(stderr, "sidestep drill: out of memory\n");
        return 1;
    }
    rc = drill_parse(argc, argv, &d->o);
    if (rc == 0)
        rc = drill_parse_url(d);
    if (rc == 0)
        rc = drill_admin_addr(d);
    if (rc != 0) {
        free(d);
        return rc == 1 ? 0 : rc;
    }
    d->t0_ns = uv_hrtime();
    d->start_epoch_ms = sst_log_epoch_ms();
    d->stable = (uint64_t)ceil(d->o.rate * 0.3);
    d->stable = d->stable < 3 ? 3 : d->stable > DRILL_MAX_STABLE ? DRILL_MAX_STABLE : d->stable;
    if (drill_discover(d) != 0) {
        free(d);
        return 1;
    }
    sst__drill_say(d, "route %s: fail %s, expect %s (failback_delay %llums)", d->route, d->region,
                   d->expect, (unsigned long long)d->failback_delay_ms);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = drill_on_signal; /* no SA_RESTART: sleeps end early */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    if (d->o.fleet) {
        rc = sst__drill_fleet(d);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        free(d);
        return rc;
    }
    sst_traffic_opts_t to = {
        .addr = &d->proxy_addr,
        .host = d->proxy_host,
        .method = d->o.method,
        .target = d->target,
        .body_size = d->o.body_size,
        .rate = d->o.rate,
        .timeout_ms = d->o.timeout_ms,
        .t0_ns = d->t0_ns,
    };
    if ((rc = sst__traffic_start(&to, &d->traffic, err, sizeof(err))) != 0) {
        fprintf(stderr, "sidestep drill: %s\n", err);
        free(d);
        return 1;
    }
    drill_steps(d);
    sst__drill_restore(d); /* no-op unless a step bailed out with the force still set */
    if (d->interrupted)
        sst__drill_say(d, "interrupted: the force is cleared; stopping");
    sst__drill_pause(d, 200); /* a few answers after the last switch */
    d->t_end_us = sst__drill_now_us(d);
    sst__traffic_stop(d->traffic);

    drill_report_t rep;
    sst__drill_analyse(d, d->traffic, &rep);
    if (d->forced && d->t_clear_us != 0 && !d->interrupted) {
        if (!rep.have_failover && d->n_problems == 0)
            sst__drill_problem(d, "the redirects to %s did not last until the restore", d->expect);
        if (!rep.have_failback && d->n_problems == 0)
            sst__drill_problem(d, "traffic did not stay on %s after the failback", d->region);
    }
    uint64_t nerr = 0;
    for (int e = SST_DRILL_CONNECT; e < SST_DRILL_ERR__COUNT; e++)
        nerr += rep.errors[e];
    if (nerr > 0)
        sst__drill_problem(d, "%llu request%s got no response", (unsigned long long)nerr,
                           nerr == 1 ? "" : "s");
    if (rep.unexpected > 0)
        sst__drill_problem(d, "%llu unexpected status%s (neither proxied 2xx nor a redirect to %s)",
                           (unsigned long long)rep.unexpected, rep.unexpected == 1 ? "" : "es",
                           d->expect);
    bool pass = d->n_problems == 0 && rep.have_failover && rep.have_failback;
    drill_print(d, &rep, pass);
    if (d->o.json_path != NULL) {
        json_object *j = drill_report_json(d, &rep, pass);
        if (j == NULL || sst__drill_write_json(d, j) != 0)
            pass = false;
        json_object_put(j);
    }
    sst__traffic_free(d->traffic);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(d);
    return pass ? 0 : 1;
}
