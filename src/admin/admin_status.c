/* The GET /status document and the region/backend objects the actions answer with, built with
 * json-c from the control thread's view of health, config and worker counters. Reads only:
 * never changes state, never blocks. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "admin/admin.h"
#include "core/server_int.h"
#include "sidestep/error.h"
#include "sidestep/log.h"

/* Building state: json-c returns NULL when malloc fails, and json_object_object_add would
 * store that as a JSON null, so every add goes through here and remembers the failure. */
typedef struct jb_s {
    bool oom;
    const sst_server_t *s;
    uint64_t now; /* uv_now of the control loop */
} jb_t;

static json_object *jb_obj(jb_t *b)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        b->oom = true;
    return o;
}

static json_object *jb_arr(jb_t *b)
{
    json_object *o = json_object_new_array();
    if (o == NULL)
        b->oom = true;
    return o;
}

static void jb_add(jb_t *b, json_object *o, const char *key, json_object *v)
{
    if (v == NULL)
        b->oom = true;
    if (o == NULL || v == NULL || json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        if (o != NULL)
            b->oom = true;
    }
}

static void jb_push(jb_t *b, json_object *arr, json_object *v)
{
    if (v == NULL)
        b->oom = true;
    if (arr == NULL || v == NULL || json_object_array_add(arr, v) != 0) {
        json_object_put(v);
        if (arr != NULL)
            b->oom = true;
    }
}

static void jb_null(jb_t *b, json_object *o, const char *key)
{
    if (o != NULL && json_object_object_add(o, key, NULL) != 0)
        b->oom = true;
}

static void jb_str(jb_t *b, json_object *o, const char *key, const char *v)
{
    if (v == NULL)
        jb_null(b, o, key);
    else
        jb_add(b, o, key, json_object_new_string(v));
}

static void jb_u64(jb_t *b, json_object *o, const char *key, uint64_t v)
{
    jb_add(b, o, key, json_object_new_uint64(v));
}

static void jb_bool(jb_t *b, json_object *o, const char *key, bool v)
{
    jb_add(b, o, key, json_object_new_boolean(v));
}

/* uv_now-based times become wall-clock ISO-8601 UTC through the start offsets. */
static void jb_time(jb_t *b, json_object *o, const char *key, uint64_t mono_ms)
{
    const sst_server_t *s = b->s;
    char ts[32];
    /* saturating: a time before the epoch shows as 1970, one past year 9999 as 9999 (the
     * admin API bounds TTLs, so neither happens in practice) */
    const uint64_t max_wall = 253402300799999ull; /* 9999-12-31T23:59:59.999Z */
    uint64_t wall;
    if (mono_ms >= s->start_ms)
        wall = mono_ms - s->start_ms > max_wall - s->start_epoch_ms
                   ? max_wall
                   : s->start_epoch_ms + (mono_ms - s->start_ms);
    else
        wall = s->start_ms - mono_ms > s->start_epoch_ms
                   ? 0
                   : s->start_epoch_ms - (s->start_ms - mono_ms);
    sst_log_time(wall, ts);
    jb_str(b, o, key, ts);
}

static const char *state_word(sst_state_t st)
{
    return st == SST_UP ? "up" : "down";
}

static void jb_reason(jb_t *b, json_object *o, sst_reason_t r, const char *text)
{
    json_object *ro = jb_obj(b);
    jb_str(b, ro, "code", sst_reason_code(r));
    jb_str(b, ro, "text", text[0] != 0 ? text : sst_reason_text(r));
    jb_add(b, o, "reason", ro);
}

/* {"reason", "expires", "expires_in_ms"} of an operator action, with "state" for forces. */
static json_object *jb_action(jb_t *b, const char *state, const char *reason, uint64_t expires_ms)
{
    json_object *o = jb_obj(b);
    if (state != NULL)
        jb_str(b, o, "state", state);
    jb_str(b, o, "reason", reason);
    if (expires_ms != 0) {
        jb_time(b, o, "expires", expires_ms);
        jb_u64(b, o, "expires_in_ms", expires_ms > b->now ? expires_ms - b->now : 0);
    } else {
        jb_null(b, o, "expires");
        jb_null(b, o, "expires_in_ms");
    }
    return o;
}

static void jb_force(jb_t *b, json_object *o, sst_force_t f, const char *reason,
                     uint64_t expires_ms)
{
    if (f == SST_FORCE_NONE)
        jb_null(b, o, "force");
    else
        jb_add(b, o, "force", jb_action(b, f == SST_FORCE_UP ? "up" : "down", reason, expires_ms));
}

static json_object *backend_json(jb_t *b, size_t i)
{
    const sst_server_t *s = b->s;
    const sst_config_t *cfg = s->cfg;
    const sst_backend_cfg_t *bc = &cfg->backends[i];
    sst_health_backend_info_t bi;
    json_object *o = jb_obj(b), *probe, *passive;

    sst_health_backend_info(s->health, i, &bi);
    jb_str(b, o, "address", bc->addr.text);
    jb_str(b, o, "region", cfg->regions[bc->region].name);
    jb_u64(b, o, "weight", bc->weight);
    jb_str(b, o, "state", state_word(bi.state));
    jb_str(b, o, "operational", state_word(bi.op));
    jb_time(b, o, "since", bi.since_ms);
    jb_u64(b, o, "since_ms_ago", b->now > bi.since_ms ? b->now - bi.since_ms : 0);
    jb_reason(b, o, bi.reason, bi.reason_text);
    jb_force(b, o, bi.force, bi.force_reason, bi.force_expires_ms);
    jb_bool(b, o, "health_checks", bc->health.enabled);

    probe = jb_obj(b);
    jb_u64(b, probe, "ok", bi.probes_ok);
    jb_u64(b, probe, "failed", bi.probes_failed);
    jb_u64(b, probe, "consecutive_successes", bi.successes);
    jb_u64(b, probe, "consecutive_failures", bi.failures);
    if (bi.last_probe_ms != 0) {
        jb_time(b, probe, "last_at", bi.last_probe_ms);
        jb_str(b, probe, "last_result", sst_reason_code(bi.last_probe_reason));
        if (bi.last_status != 0)
            jb_u64(b, probe, "last_status", bi.last_status);
        else
            jb_null(b, probe, "last_status");
        jb_u64(b, probe, "last_duration_ms", bi.last_probe_duration_ms);
    } else {
        jb_null(b, probe, "last_at");
        jb_null(b, probe, "last_result");
        jb_null(b, probe, "last_status");
        jb_null(b, probe, "last_duration_ms");
    }
    jb_add(b, o, "probe", probe);

    passive = jb_obj(b);
    jb_u64(b, passive, "consecutive_failures", bi.passive_failures);
    jb_bool(b, passive, "down", bi.passive_down);
    jb_u64(b, passive, "ejections", bi.passive_ejections);
    jb_u64(b, passive, "ejections_refused", bi.passive_ejections_refused);
    jb_add(b, o, "passive", passive);
    return o;
}

static json_object *region_json(jb_t *b, size_t r)
{
    const sst_server_t *s = b->s;
    const sst_region_cfg_t *rc = &s->cfg->regions[r];
    sst_health_region_info_t ri;
    json_object *o = jb_obj(b), *backends;

    sst_health_region_info(s->health, r, &ri);
    jb_str(b, o, "name", rc->name);
    jb_str(b, o, "url", rc->url);
    jb_str(b, o, "state", state_word(ri.state));
    jb_bool(b, o, "routable", sst_hsnap_region_usable(s->view->snap, r, b->now));
    jb_time(b, o, "since", ri.since_ms);
    jb_u64(b, o, "since_ms_ago", b->now > ri.since_ms ? b->now - ri.since_ms : 0);
    jb_reason(b, o, ri.reason, ri.reason_text);
    jb_u64(b, o, "backends_up", ri.n_up);
    jb_u64(b, o, "backends_total", rc->n_backends);
    jb_u64(b, o, "min_healthy", rc->min_healthy);
    jb_bool(b, o, "min_healthy_is_pct", rc->min_healthy_pct);
    jb_u64(b, o, "failback_delay_ms", rc->failback_delay_ms);
    if (ri.hold_until_ms > b->now) {
        json_object *h = jb_obj(b);
        jb_time(b, h, "until", ri.hold_until_ms);
        jb_u64(b, h, "remaining_ms", ri.hold_until_ms - b->now);
        jb_add(b, o, "failback_hold", h);
    } else {
        jb_null(b, o, "failback_hold");
    }
    jb_force(b, o, ri.force, ri.force_reason, ri.force_expires_ms);
    if (ri.drained)
        jb_add(b, o, "drain", jb_action(b, NULL, ri.drain_reason, ri.drain_expires_ms));
    else
        jb_null(b, o, "drain");
    backends = jb_arr(b);
    for (size_t i = 0; i < rc->n_backends; i++)
        jb_push(b, backends, backend_json(b, rc->first_backend + i));
    jb_add(b, o, "backends", backends);
    return o;
}

static const char *decision_word(sst_decision_kind_t k)
{
    switch (k) {
    case SST_DECIDE_PROXY:
        return "proxy";
    case SST_DECIDE_REDIRECT:
        return "redirect";
    case SST_DECIDE_REJECT:
        return "reject";
    }
    return "?";
}

static const char *all_down_word(sst_all_down_t p)
{
    switch (p) {
    case SST_ALL_DOWN_REJECT:
        return "reject";
    case SST_ALL_DOWN_FAIL_OPEN:
        return "fail_open";
    case SST_ALL_DOWN_FALLBACK:
        return "fallback";
    }
    return "?";
}

/* A Host the route's pattern matches: the pattern itself, a name under a "*." suffix, or a
 * reserved name (RFC 2606 .invalid) for "*" so that no exact route takes it. */
static void route_sample_host(const char *pattern, char *buf, size_t size)
{
    if (pattern == NULL || strcmp(pattern, "*") == 0 || pattern[0] == 0)
        snprintf(buf, size, "sidestep-status.invalid");
    else if (pattern[0] == '*' && pattern[1] == '.')
        snprintf(buf, size, "sidestep-status%s", pattern + 1);
    else
        snprintf(buf, size, "%s", pattern);
}

/* The decision a GET for the route's path_prefix would get now. */
static json_object *route_decision_json(jb_t *b, size_t i)
{
    const sst_view_t *v = b->s->view;
    const sst_config_t *cfg = v->cfg;
    const sst_route_cfg_t *rt = &cfg->routes[i];
    char host[320];
    sst_route_input_t in;
    sst_decision_t d;
    json_object *o = jb_obj(b);

    route_sample_host(rt->host, host, sizeof(host));
    memset(&in, 0, sizeof(in));
    in.now_ms = b->now;
    in.method = SST_STR_LIT("GET");
    in.target = sst_str_c(rt->path_prefix != NULL ? rt->path_prefix : "/");
    in.host = sst_str_c(host);
    if (sst_route_decide(&in, cfg, v->snap, &d) != 0) {
        jb_null(b, o, "kind");
        jb_str(b, o, "reason", "the path prefix is not a routable target");
        return o;
    }
    if (d.route != i) {
        /* a route listed earlier (or more specific) takes every request this one could */
        jb_null(b, o, "kind");
        jb_str(b, o, "reason", "shadowed by another route");
        jb_str(b, o, "shadowed_by", d.route < cfg->n_routes ? cfg->routes[d.route].name : NULL);
        return o;
    }
    jb_str(b, o, "kind", decision_word(d.kind));
    if (d.kind != SST_DECIDE_REJECT && d.region < cfg->n_regions)
        jb_str(b, o, "region", cfg->regions[d.region].name);
    else
        jb_null(b, o, "region");
    if (d.kind == SST_DECIDE_PROXY)
        jb_null(b, o, "status");
    else
        jb_u64(b, o, "status", d.status);
    jb_str(b, o, "reason", d.reason);
    if (d.kind == SST_DECIDE_REDIRECT) {
        char loc[2048];
        size_t n = 0;
        for (size_t k = 0; k < d.n_location; k++) {
            size_t l = d.location[k].len;
            if (n + l >= sizeof(loc))
                l = sizeof(loc) - 1 - n;
            memcpy(loc + n, d.location[k].base, l);
            n += l;
        }
        loc[n] = 0;
        jb_str(b, o, "location", loc);
    } else {
        jb_null(b, o, "location");
    }
    if (d.kind == SST_DECIDE_REJECT && d.retry_after_s != 0)
        jb_u64(b, o, "retry_after_s", d.retry_after_s);
    return o;
}

static json_object *route_json(jb_t *b, size_t i)
{
    const sst_config_t *cfg = b->s->view->cfg;
    const sst_route_cfg_t *rt = &cfg->routes[i];
    json_object *o = jb_obj(b), *fo = jb_arr(b);

    jb_str(b, o, "name", rt->name);
    jb_str(b, o, "host", rt->host != NULL ? rt->host : "*");
    jb_str(b, o, "path_prefix", rt->path_prefix != NULL ? rt->path_prefix : "/");
    jb_str(b, o, "primary", cfg->regions[rt->primary].name);
    for (size_t k = 0; k < rt->n_failover; k++)
        jb_push(b, fo, json_object_new_string(cfg->regions[rt->failover[k]].name));
    jb_add(b, o, "failover", fo);
    jb_u64(b, o, "redirect_status", rt->redirect_status);
    jb_str(b, o, "all_down", all_down_word(rt->all_down));
    jb_add(b, o, "decision", route_decision_json(b, i));
    return o;
}

/* Sums one counter over every worker: `field` is its offset in sst_wmetrics_t, `n` how many
 * consecutive counters (an array) to add up. */
static uint64_t counters_sum(const sst_server_t *s, size_t field, size_t n)
{
    uint64_t sum = 0;
    for (unsigned w = 0; w < s->n_workers; w++) {
        const char *base = (const char *)s->workers[w].metrics;
        if (base == NULL)
            continue;
        const sst_counter_t *c = (const sst_counter_t *)(base + field);
        for (size_t k = 0; k < n; k++)
            sum += sst_counter_get(&c[k]);
    }
    return sum;
}

#define COUNTERS(s, member)                                                                        \
    counters_sum((s), offsetof(sst_wmetrics_t, member),                                            \
                 sizeof(((sst_wmetrics_t *)0)->member) / sizeof(sst_counter_t))

static json_object *counters_json(jb_t *b)
{
    const sst_server_t *s = b->s;
    json_object *o = jb_obj(b);
    uint64_t accepted = COUNTERS(s, conn_accepted), closed = COUNTERS(s, conn_closed);

    jb_u64(b, o, "requests", COUNTERS(s, requests));
    jb_u64(b, o, "connections_active", accepted > closed ? accepted - closed : 0);
    jb_u64(b, o, "connections_total", accepted);
    jb_u64(b, o, "redirects", COUNTERS(s, redirects));
    jb_u64(b, o, "inflight_failovers", COUNTERS(s, inflight_failovers));
    jb_u64(b, o, "retries", COUNTERS(s, retries));
    return o;
}

static void addr_text(const struct sockaddr_storage *sa, char *buf, size_t size)
{
    char ip[64] = "?";
    if (sa->ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, ntohs(((const struct sockaddr_in *)sa)->sin_port));
    } else if (sa->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
    } else {
        snprintf(buf, size, "?");
    }
}

static int jb_finish(jb_t *b, json_object *o, json_object **out)
{
    if (b->oom || o == NULL) {
        json_object_put(o);
        return SST_ENOMEM;
    }
    *out = o;
    return 0;
}

int sst__admin_region_json(sst_server_t *s, size_t r, json_object **out)
{
    jb_t b = {.s = s, .now = uv_now(s->loop)};
    if (r >= s->cfg->n_regions)
        return SST_ENOENT;
    return jb_finish(&b, region_json(&b, r), out);
}

int sst__admin_backend_json(sst_server_t *s, size_t i, json_object **out)
{
    jb_t b = {.s = s, .now = uv_now(s->loop)};
    if (i >= s->cfg->n_backends)
        return SST_ENOENT;
    return jb_finish(&b, backend_json(&b, i), out);
}

int sst__admin_status_json(sst_server_t *s, json_object **out)
{
    jb_t b = {.s = s, .now = uv_now(s->loop)};
    const sst_config_t *cfg = s->cfg;
    json_object *o = jb_obj(&b), *c = jb_obj(&b), *ls = jb_arr(&b), *rs = jb_arr(&b),
                *ro = jb_arr(&b);
    char addr[80];

    jb_str(&b, o, "version", SST_VERSION);
    jb_u64(&b, o, "pid", (uint64_t)getpid());
    jb_time(&b, o, "time", b.now);
    jb_time(&b, o, "started_at", s->start_ms);
    jb_u64(&b, o, "uptime_ms", b.now - s->start_ms);
    jb_u64(&b, o, "workers", s->n_workers);
    jb_u64(&b, c, "version", s->config_version);
    jb_str(&b, c, "source", cfg->source);
    jb_add(&b, o, "config", c);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        sst_server_listen_text(s, i, addr, sizeof(addr));
        jb_push(&b, ls, json_object_new_string(addr));
    }
    jb_add(&b, o, "listeners", ls);
    if (s->admin_bound.ss_family != 0) {
        addr_text(&s->admin_bound, addr, sizeof(addr));
        jb_str(&b, o, "admin", addr);
    } else {
        jb_null(&b, o, "admin");
    }
    jb_str(&b, o, "local_region",
           cfg->local_region < cfg->n_regions ? cfg->regions[cfg->local_region].name : NULL);
    jb_add(&b, o, "counters", counters_json(&b));
    for (size_t r = 0; r < cfg->n_regions; r++)
        jb_push(&b, rs, region_json(&b, r));
    jb_add(&b, o, "regions", rs);
    for (size_t i = 0; i < s->view->cfg->n_routes; i++)
        jb_push(&b, ro, route_json(&b, i));
    jb_add(&b, o, "routes", ro);
    return jb_finish(&b, o, out);
}
