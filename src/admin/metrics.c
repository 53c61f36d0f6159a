/* Prometheus text exposition (format 0.0.4): every worker's counters summed, plus the health
 * figures the control thread keeps. Runs on the control thread for GET /metrics; workers are
 * never stopped or locked for it (their counters are single-writer relaxed atomics). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "core/server_fleet.h"
#include "core/server_int.h"
#include "fleet/fleet.h"
#include "sidestep/error.h"
#include "sidestep/tls.h"

typedef struct mbuf_s {
    char *p;
    size_t len, cap;
    bool oom;
} mbuf_t;

static void mb_printf(mbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void mb_printf(mbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

/* Label values: backslash, double quote and newline escaped (exposition format). */
static const char *mb_label(const char *s, char *buf, size_t size)
{
    size_t o = 0;
    if (s == NULL)
        s = "other";
    for (; *s != 0 && o + 3 < size; s++) {
        if (*s == '\\' || *s == '"') {
            buf[o++] = '\\';
            buf[o++] = *s;
        } else if (*s == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *s;
        }
    }
    buf[o] = 0;
    return buf;
}

static void mb_help(mbuf_t *b, const char *name, const char *type, const char *help)
{
    mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Sums one counter over every worker: `first` points at it in worker 0's block, the same
 * offset is read in the others. */
static uint64_t metrics_sum(const sst_server_t *s, const sst_counter_t *first)
{
    size_t off = (size_t)((const char *)first - (const char *)s->workers[0].metrics);
    uint64_t sum = 0;
    for (unsigned i = 0; i < s->n_workers; i++) {
        const char *base = (const char *)s->workers[i].metrics;
        if (base != NULL)
            sum += sst_counter_get((const sst_counter_t *)(base + off));
    }
    return sum;
}

#define SUM_WORKERS(s, field) metrics_sum((s), &(s)->workers[0].metrics->field)

static const char *const dec_names[SST_M_DECISIONS] = {
    [SST_M_PROXY] = "proxy",
    [SST_M_REDIRECT] = "redirect",
    [SST_M_REJECT] = "reject",
    [SST_M_ERROR] = "error",
};

static const char *const upfail_names[SST_M_UP_FAILS] = {
    [SST_M_UP_REFUSED] = "refused",
    [SST_M_UP_CONNECT_TIMEOUT] = "connect_timeout",
    [SST_M_UP_CONNECT_ERROR] = "connect_error",
    [SST_M_UP_RESET] = "reset",
    [SST_M_UP_TIMEOUT] = "response_timeout",
    [SST_M_UP_BAD_RESPONSE] = "bad_response",
    [SST_M_UP_ABORTED] = "aborted",
    [SST_M_UP_TRY_TIMEOUT] = "try_timeout",
};

static void render_requests(mbuf_t *b, sst_server_t *s)
{
    char rl[256], gl[256];
    static const char *const cls[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

    mb_help(b, "sidestep_requests_total", "counter",
            "Requests by route, decision, region and status class.");
    for (size_t r = 0; r < s->n_route_names || r == SST_M_ROUTES - 1; r++) {
        size_t ri = r < s->n_route_names ? r : SST_M_ROUTES - 1;
        for (int d = 0; d < SST_M_DECISIONS; d++)
            for (size_t g = 0; g < SST_M_REGIONS; g++)
                for (int c = 0; c < 6; c++) {
                    uint64_t v = SUM_WORKERS(s, requests[ri][d][g][c]);
                    if (v == 0)
                        continue;
                    mb_printf(
                        b,
                        "sidestep_requests_total{route=\"%s\",decision=\"%s\",region=\"%s\","
                        "status=\"%s\"} %llu\n",
                        mb_label(ri < s->n_route_names ? s->route_names[ri] : "-", rl, sizeof(rl)),
                        dec_names[d],
                        mb_label(g < s->n_region_names ? s->region_names[g] : "other", gl,
                                 sizeof(gl)),
                        cls[c], (unsigned long long)v);
                }
        if (r >= s->n_route_names)
            break;
    }
    mb_help(b, "sidestep_responses_total", "counter", "Responses by exact status code.");
    for (int code = 100; code < 600; code++) {
        uint64_t v = SUM_WORKERS(s, responses_by_code[code]);
        if (v != 0)
            mb_printf(b, "sidestep_responses_total{code=\"%d\"} %llu\n", code,
                      (unsigned long long)v);
    }
    mb_help(b, "sidestep_request_duration_seconds", "histogram",
            "Time from the first request byte to the end of the response, by route and "
            "decision.");
    for (size_t r = 0; r < s->n_route_names; r++) {
        for (int d = 0; d < SST_M_DECISIONS; d++) {
            uint64_t count = 0;
            uint64_t buckets[SST_M_LAT_BUCKETS + 1];
            for (int k = 0; k <= SST_M_LAT_BUCKETS; k++) {
                buckets[k] = SUM_WORKERS(s, latency[r][d][k]);
                count += buckets[k];
            }
            if (count == 0)
                continue;
            mb_label(s->route_names[r], rl, sizeof(rl));
            uint64_t cum = 0;
            for (int k = 0; k < SST_M_LAT_BUCKETS; k++) {
                cum += buckets[k];
                mb_printf(b,
                          "sidestep_request_duration_seconds_bucket{route=\"%s\",decision=\"%s\","
                          "le=\"%g\"} %llu\n",
                          rl, dec_names[d], (double)sst_m_lat_bounds_us[k] / 1e6,
                          (unsigned long long)cum);
            }
            mb_printf(b,
                      "sidestep_request_duration_seconds_bucket{route=\"%s\",decision=\"%s\","
                      "le=\"+Inf\"} %llu\n",
                      rl, dec_names[d], (unsigned long long)count);
            mb_printf(b,
                      "sidestep_request_duration_seconds_sum{route=\"%s\",decision=\"%s\"} %.6f\n",
                      rl, dec_names[d], (double)SUM_WORKERS(s, latency_sum_us[r][d]) / 1e6);
            mb_printf(b,
                      "sidestep_request_duration_seconds_count{route=\"%s\",decision=\"%s\"} "
                      "%llu\n",
                      rl, dec_names[d], (unsigned long long)count);
        }
    }
    mb_help(b, "sidestep_bytes_total", "counter",
            "Bytes received from and sent to clients, by route.");
    for (size_t r = 0; r < s->n_route_names; r++) {
        mb_label(s->route_names[r], rl, sizeof(rl));
        mb_printf(b, "sidestep_bytes_total{route=\"%s\",direction=\"in\"} %llu\n", rl,
                  (unsigned long long)SUM_WORKERS(s, bytes_in[r]));
        mb_printf(b, "sidestep_bytes_total{route=\"%s\",direction=\"out\"} %llu\n", rl,
                  (unsigned long long)SUM_WORKERS(s, bytes_out[r]));
    }
    mb_help(b, "sidestep_redirects_total", "counter", "Redirects by target region.");
    mb_help(b, "sidestep_inflight_failovers_total", "counter",
            "Requests redirected after their backend could not be reached, by the region left.");
    for (size_t g = 1; g < s->n_region_names; g++) {
        mb_label(s->region_names[g], gl, sizeof(gl));
        mb_printf(b, "sidestep_redirects_total{region=\"%s\"} %llu\n", gl,
                  (unsigned long long)SUM_WORKERS(s, redirects[g]));
        mb_printf(b, "sidestep_inflight_failovers_total{region=\"%s\"} %llu\n", gl,
                  (unsigned long long)SUM_WORKERS(s, inflight_failovers[g]));
    }
}

static void render_connections(mbuf_t *b, sst_server_t *s)
{
    static const char *const tnames[4] = {"request_head", "body", "send", "idle"};
    uint64_t accepted = SUM_WORKERS(s, conn_accepted);
    uint64_t closed = SUM_WORKERS(s, conn_closed);

    mb_help(b, "sidestep_connections_active", "gauge", "Open client connections.");
    mb_printf(b, "sidestep_connections_active %llu\n",
              (unsigned long long)(accepted >= closed ? accepted - closed : 0));
    mb_help(b, "sidestep_connections_total", "counter", "Client connections accepted.");
    mb_printf(b, "sidestep_connections_total %llu\n", (unsigned long long)accepted);
    mb_help(b, "sidestep_connections_rejected_total", "counter",
            "Connections answered 503 over limits.connections.");
    mb_printf(b, "sidestep_connections_rejected_total %llu\n",
              (unsigned long long)SUM_WORKERS(s, conn_rejected));
    mb_help(b, "sidestep_connections_evicted_total", "counter",
            "Idle keep-alive connections closed to make room for new ones.");
    mb_printf(b, "sidestep_connections_evicted_total %llu\n",
              (unsigned long long)SUM_WORKERS(s, conn_evicted));
    mb_help(b, "sidestep_client_aborts_total", "counter",
            "Clients that went away before their response completed.");
    mb_printf(b, "sidestep_client_aborts_total %llu\n",
              (unsigned long long)SUM_WORKERS(s, client_aborts));
    mb_help(b, "sidestep_timeouts_total", "counter", "Client-side timeouts by kind.");
    for (int k = 0; k < 4; k++)
        mb_printf(b, "sidestep_timeouts_total{kind=\"%s\"} %llu\n", tnames[k],
                  (unsigned long long)SUM_WORKERS(s, timeouts[k]));
    mb_help(b, "sidestep_retries_total", "counter",
            "Attempts repeated on another backend of the same region.");
    mb_printf(b, "sidestep_retries_total %llu\n", (unsigned long long)SUM_WORKERS(s, retries));
}

/* PROXY protocol headers on listeners (issue 16): every series always, so a rate over them
 * needs no special case for a reason that has not happened yet. */
static void render_proxy_protocol(mbuf_t *b, sst_server_t *s)
{
    static const char *const commands[3] = {
        [SST_PP_LOCAL] = "local", [SST_PP_PROXY] = "proxy", [SST_PP_UNKNOWN] = "unknown"};
    mb_help(b, "sidestep_proxy_protocol_accepted_total", "counter",
            "PROXY protocol headers read whole on listeners with proxy_protocol, by version and "
            "command.");
    for (int v = 0; v < 2; v++)
        for (int k = 0; k < 3; k++)
            mb_printf(b,
                      "sidestep_proxy_protocol_accepted_total{version=\"%d\",command=\"%s\"} "
                      "%llu\n",
                      v + 1, commands[k], (unsigned long long)SUM_WORKERS(s, pp_accepted[v][k]));
    mb_help(b, "sidestep_proxy_protocol_rejected_total", "counter",
            "Connections to listeners with proxy_protocol closed without an answer, by reason.");
    for (unsigned r = SST_PP_OK + 1; r < SST_M_PP_REASONS; r++)
        mb_printf(b, "sidestep_proxy_protocol_rejected_total{reason=\"%s\"} %llu\n",
                  sst_m_pp_reason_name(r), (unsigned long long)SUM_WORKERS(s, pp_rejected[r]));
}

static void render_upstreams(mbuf_t *b, sst_server_t *s)
{
    char bl[300];
    mb_help(b, "sidestep_upstream_requests_total", "counter", "Requests sent to each backend.");
    mb_help(b, "sidestep_upstream_connects_total", "counter",
            "Connections opened to each backend.");
    mb_help(b, "sidestep_upstream_reuses_total", "counter",
            "Requests sent on a pooled keep-alive connection.");
    mb_help(b, "sidestep_upstream_failures_total", "counter",
            "Failed attempts by backend and kind.");
    mb_help(b, "sidestep_upstream_connections", "gauge",
            "Open connections to each backend, and how many of them are idle in the pool.");
    for (size_t i = 0; i < s->n_backend_names; i++) {
        mb_label(s->backend_names[i], bl, sizeof(bl));
        mb_printf(b, "sidestep_upstream_requests_total{backend=\"%s\"} %llu\n", bl,
                  (unsigned long long)SUM_WORKERS(s, up_requests[i]));
        mb_printf(b, "sidestep_upstream_connects_total{backend=\"%s\"} %llu\n", bl,
                  (unsigned long long)SUM_WORKERS(s, up_connects[i]));
        mb_printf(b, "sidestep_upstream_reuses_total{backend=\"%s\"} %llu\n", bl,
                  (unsigned long long)SUM_WORKERS(s, up_reuses[i]));
        for (int k = 0; k < SST_M_UP_FAILS; k++) {
            uint64_t v = SUM_WORKERS(s, up_failures[i][k]);
            if (v != 0)
                mb_printf(b, "sidestep_upstream_failures_total{backend=\"%s\",kind=\"%s\"} %llu\n",
                          bl, upfail_names[k], (unsigned long long)v);
        }
        mb_printf(b, "sidestep_upstream_connections{backend=\"%s\",state=\"open\"} %lld\n", bl,
                  (long long)SUM_WORKERS(s, up_active[i]));
        mb_printf(b, "sidestep_upstream_connections{backend=\"%s\",state=\"idle\"} %lld\n", bl,
                  (long long)SUM_WORKERS(s, up_idle[i]));
    }
    /* issue 15: the abandoned attempts are failures of kind try_timeout; these kept waiting */
    mb_help(b, "sidestep_upstream_try_waits_total", "counter",
            "Attempts of requests that may not be repeated that got no response byte within "
            "try_timeout and kept waiting (each a passive timeout signal).");
    for (size_t i = 0; i < s->n_backend_names; i++) {
        mb_label(s->backend_names[i], bl, sizeof(bl));
        mb_printf(b, "sidestep_upstream_try_waits_total{backend=\"%s\"} %llu\n", bl,
                  (unsigned long long)SUM_WORKERS(s, up_try_waits[i]));
    }
}

static void render_health(mbuf_t *b, sst_server_t *s)
{
    const sst_config_t *cfg = s->cfg;
    const sst_prep_t *prep = s->view->prep;
    uint64_t now = uv_now(s->loop);
    char bl[300], gl[256];

    mb_help(b, "sidestep_backend_up", "gauge",
            "Effective backend state (1 up, 0 down), operator forces applied.");
    mb_help(b, "sidestep_backend_forced", "gauge", "An operator force on the backend.");
    for (size_t i = 0; i < cfg->n_backends; i++) {
        sst_health_backend_info_t bi;
        sst_health_backend_info(s->health, i, &bi);
        mb_label(cfg->backends[i].addr.text, bl, sizeof(bl));
        mb_label(cfg->regions[cfg->backends[i].region].name, gl, sizeof(gl));
        mb_printf(b, "sidestep_backend_up{region=\"%s\",backend=\"%s\"} %d\n", gl, bl,
                  bi.state == SST_UP);
        mb_printf(b, "sidestep_backend_forced{region=\"%s\",backend=\"%s\",force=\"up\"} %d\n", gl,
                  bl, bi.force == SST_FORCE_UP);
        mb_printf(b, "sidestep_backend_forced{region=\"%s\",backend=\"%s\",force=\"down\"} %d\n",
                  gl, bl, bi.force == SST_FORCE_DOWN);
    }
    mb_help(b, "sidestep_region_up", "gauge", "Effective region state (1 up, 0 down).");
    mb_help(b, "sidestep_region_drained", "gauge", "The region is drained by an operator.");
    mb_help(b, "sidestep_region_routable", "gauge",
            "The region receives traffic: up, not drained, past its failback delay.");
    mb_help(b, "sidestep_region_backends_up", "gauge", "Backends up in the region.");
    for (size_t r = 0; r < cfg->n_regions; r++) {
        mb_label(cfg->regions[r].name, gl, sizeof(gl));
        const sst_hsnap_region_t *reg = &s->view->snap->regions[r];
        mb_printf(b, "sidestep_region_up{region=\"%s\"} %d\n", gl, reg->state == SST_UP);
        mb_printf(b, "sidestep_region_drained{region=\"%s\"} %d\n", gl, reg->drained);
        mb_printf(b, "sidestep_region_routable{region=\"%s\"} %d\n", gl,
                  sst_hsnap_region_usable(s->view->snap, r, now));
        mb_printf(b, "sidestep_region_backends_up{region=\"%s\"} %u\n", gl, reg->n_up);
    }
    mb_help(b, "sidestep_state_transitions_total", "counter",
            "Changes of effective state, by backend or region and new state.");
    for (size_t i = 0; i < s->n_backend_names; i++) {
        mb_label(s->backend_names[i], bl, sizeof(bl));
        for (int to = 0; to < 2; to++)
            mb_printf(b,
                      "sidestep_state_transitions_total{kind=\"backend\",name=\"%s\",to=\"%s\"} "
                      "%llu\n",
                      bl, to ? "up" : "down", (unsigned long long)s->transitions[i][to]);
    }
    for (size_t g = 1; g < s->n_region_names; g++) {
        mb_label(s->region_names[g], gl, sizeof(gl));
        for (int to = 0; to < 2; to++)
            mb_printf(b,
                      "sidestep_state_transitions_total{kind=\"region\",name=\"%s\",to=\"%s\"} "
                      "%llu\n",
                      gl, to ? "up" : "down", (unsigned long long)s->region_transitions[g][to]);
    }
    mb_help(b, "sidestep_probes_total", "counter", "Active probe results by backend and code.");
    mb_help(b, "sidestep_probe_duration_seconds", "histogram", "Active probe durations.");
    for (size_t i = 0; i < s->n_backend_names; i++) {
        mb_label(s->backend_names[i], bl, sizeof(bl));
        uint64_t count = 0;
        for (int k = 0; k < SST_REASON__COUNT; k++) {
            if (s->probes[i][k] == 0)
                continue;
            mb_printf(b, "sidestep_probes_total{backend=\"%s\",result=\"%s\"} %llu\n", bl,
                      sst_reason_code((sst_reason_t)k), (unsigned long long)s->probes[i][k]);
        }
        uint64_t cum = 0;
        for (int k = 0; k <= SST_M_LAT_BUCKETS; k++)
            count += s->probe_lat[i][k];
        if (count == 0)
            continue;
        for (int k = 0; k < SST_M_LAT_BUCKETS; k++) {
            cum += s->probe_lat[i][k];
            mb_printf(b, "sidestep_probe_duration_seconds_bucket{backend=\"%s\",le=\"%g\"} %llu\n",
                      bl, (double)sst_m_lat_bounds_us[k] / 1e6, (unsigned long long)cum);
        }
        mb_printf(b, "sidestep_probe_duration_seconds_bucket{backend=\"%s\",le=\"+Inf\"} %llu\n",
                  bl, (unsigned long long)count);
        mb_printf(b, "sidestep_probe_duration_seconds_sum{backend=\"%s\"} %.6f\n", bl,
                  (double)s->probe_lat_sum_us[i] / 1e6);
        mb_printf(b, "sidestep_probe_duration_seconds_count{backend=\"%s\"} %llu\n", bl,
                  (unsigned long long)count);
    }
    mb_help(b, "sidestep_health_events_total", "counter", "Health and operator events by reason.");
    for (int k = 0; k < SST_REASON__COUNT; k++)
        if (s->events_total[k] != 0)
            mb_printf(b, "sidestep_health_events_total{reason=\"%s\"} %llu\n",
                      sst_reason_code((sst_reason_t)k), (unsigned long long)s->events_total[k]);
    mb_help(b, "sidestep_passive_signals_total", "counter",
            "Passive health signals received from proxied traffic.");
    for (int k = 0; k < SST_PASSIVE__COUNT; k++)
        mb_printf(b, "sidestep_passive_signals_total{signal=\"%s\"} %llu\n",
                  sst_passive_name((sst_passive_t)k), (unsigned long long)s->passive_signals[k]);
    (void)prep;
}

/* TLS (issue 14): handshakes and failures from the workers' counters, and the expiry of every
 * certificate the HTTPS listeners of the config in force loaded. */
static void render_tls(mbuf_t *b, sst_server_t *s)
{
    const sst_config_t *cfg = s->cfg;
    const sst_tls_set_t *set = s->view->prep->tls;
    char ll[300], nl[300], cl[600], bl[300];

    mb_help(b, "sidestep_tls_handshakes_total", "counter",
            "Completed TLS handshakes on HTTPS listeners, by version and resumption.");
    for (int v = 0; v < 2; v++)
        for (int r = 0; r < 2; r++)
            mb_printf(b, "sidestep_tls_handshakes_total{version=\"%s\",resumed=\"%s\"} %llu\n",
                      v ? "1.3" : "1.2", r ? "true" : "false",
                      (unsigned long long)SUM_WORKERS(s, tls.handshakes[v][r]));
    mb_help(b, "sidestep_tls_handshake_failures_total", "counter",
            "TLS connections on HTTPS listeners that failed before their handshake completed "
            "(and renegotiation attempts), by reason.");
    for (int k = SST_TLS_FAIL_NONE + 1; k < SST_TLS_FAIL__COUNT; k++)
        mb_printf(b, "sidestep_tls_handshake_failures_total{reason=\"%s\"} %llu\n",
                  sst_tls_fail_name((sst_tls_fail_t)k),
                  (unsigned long long)SUM_WORKERS(s, tls.failures[k]));
    mb_help(b, "sidestep_upstream_tls_handshakes_total", "counter",
            "Completed TLS handshakes with each TLS backend, by resumption.");
    mb_help(b, "sidestep_upstream_tls_handshake_failures_total", "counter",
            "Failed TLS handshakes with each TLS backend, by reason.");
    for (size_t i = 0; i < s->n_backend_names; i++) {
        uint64_t full = SUM_WORKERS(s, tls.up_handshakes[i][0]);
        uint64_t resumed = SUM_WORKERS(s, tls.up_handshakes[i][1]);
        mb_label(s->backend_names[i], bl, sizeof(bl));
        if (full + resumed != 0) {
            mb_printf(b,
                      "sidestep_upstream_tls_handshakes_total{backend=\"%s\",resumed=\"false\"} "
                      "%llu\n",
                      bl, (unsigned long long)full);
            mb_printf(b,
                      "sidestep_upstream_tls_handshakes_total{backend=\"%s\",resumed=\"true\"} "
                      "%llu\n",
                      bl, (unsigned long long)resumed);
        }
        for (int k = SST_TLS_FAIL_NONE + 1; k < SST_TLS_FAIL__COUNT; k++) {
            uint64_t v = SUM_WORKERS(s, tls.up_failures[i][k]);
            if (v != 0)
                mb_printf(b,
                          "sidestep_upstream_tls_handshake_failures_total{backend=\"%s\","
                          "reason=\"%s\"} %llu\n",
                          bl, sst_tls_fail_name((sst_tls_fail_t)k), (unsigned long long)v);
        }
    }
    mb_help(b, "sidestep_tls_cert_expiry_seconds", "gauge",
            "When each loaded certificate expires (Unix time, its notAfter), by listener, "
            "certificate file and DNS name.");
    for (size_t l = 0; l < cfg->n_listeners; l++) {
        const sst_tls_server_t *srv = sst_tls_set_server(set, l);
        if (srv == NULL)
            continue;
        mb_label(cfg->listeners[l].addr.text, ll, sizeof(ll));
        for (size_t i = 0; i < sst_tls_server_cert_count(srv); i++) {
            const sst_tls_cert_info_t *ci = sst_tls_server_cert(srv, i);
            mb_label(ci->path, cl, sizeof(cl));
            /* a certificate without a DNS name (the default one only) shows its subject */
            size_t n = ci->n_names > 0 ? ci->n_names : 1;
            for (size_t k = 0; k < n; k++) {
                mb_label(ci->n_names > 0 ? ci->names[k] : ci->subject, nl, sizeof(nl));
                mb_printf(b,
                          "sidestep_tls_cert_expiry_seconds{listener=\"%s\",name=\"%s\","
                          "cert=\"%s\"} %lld\n",
                          ll, nl, cl, (long long)ci->not_after);
            }
        }
    }
}

/* Fleet mode's block: the runtime's connection and revisions, the quorum, admin actions. */
static void render_fleet(mbuf_t *b, sst_server_t *s)
{
    static const char *const scopes[SST_SFLEET_SCOPES] = {"fleet", "local"};
    static const char *const results[SST_SFLEET_RESULTS] = {"ok", "invalid", "not_found",
                                                            "conflict", "unavailable"};
    const sst_sfleet_t *sf = s->fleet;
    const sst_config_t *cfg = s->cfg;
    sst_fleet_status_t st;
    const sst_fleet_member_t *members;
    char gl[256];
    if (sf == NULL)
        return;
    sst_fleet_status(sf->f, &st);
    size_t n = sst_fleet_members(sf->f, &members), live = 0;
    for (size_t i = 0; i < n; i++)
        live += members[i].has_heartbeat;
    mb_help(b, "sidestep_fleet_connected", "gauge",
            "1 while etcd is read and watched, 0 while the last overrides are kept without it.");
    mb_printf(b, "sidestep_fleet_connected %d\n", st.connected);
    mb_help(b, "sidestep_fleet_revision", "gauge", "The last etcd revision seen.");
    mb_printf(b, "sidestep_fleet_revision %lld\n", (long long)st.revision);
    mb_help(b, "sidestep_fleet_applied_revision", "gauge",
            "The etcd revision of the fleet overrides in force here.");
    mb_printf(b, "sidestep_fleet_applied_revision %lld\n", (long long)st.applied_revision);
    mb_help(b, "sidestep_fleet_connects_total", "counter", "Connections to etcd (read, watched).");
    mb_printf(b, "sidestep_fleet_connects_total %llu\n", (unsigned long long)st.connects);
    mb_help(b, "sidestep_fleet_disconnects_total", "counter", "Losses of etcd.");
    mb_printf(b, "sidestep_fleet_disconnects_total %llu\n", (unsigned long long)st.disconnects);
    mb_help(b, "sidestep_fleet_compactions_total", "counter",
            "Watches restarted after a compaction.");
    mb_printf(b, "sidestep_fleet_compactions_total %llu\n", (unsigned long long)st.compactions);
    mb_help(b, "sidestep_fleet_bad_values_total", "counter", "Fleet keys refused and ignored.");
    mb_printf(b, "sidestep_fleet_bad_values_total %llu\n", (unsigned long long)st.bad_values);
    mb_help(b, "sidestep_fleet_instances", "gauge", "Live instances (heartbeat keys) seen.");
    mb_printf(b, "sidestep_fleet_instances %zu\n", live);
    mb_help(b, "sidestep_fleet_store_lost", "gauge",
            "1 when etcd has been away for lease_ttl: quorum decisions use the own view.");
    mb_printf(b, "sidestep_fleet_store_lost %d\n", st.store_lost);
    mb_help(b, "sidestep_fleet_accept_held", "gauge",
            "1 while client connections wait for the fleet's overrides (startup).");
    mb_printf(b, "sidestep_fleet_accept_held %d\n", s->accept_held);
    mb_help(b, "sidestep_fleet_region_disagree", "gauge",
            "1 while this instance's own view of the region differs from the fleet's decision.");
    for (size_t r = 0; r < cfg->n_regions && r < SST_MAX_REGIONS; r++)
        mb_printf(b, "sidestep_fleet_region_disagree{region=\"%s\"} %d\n",
                  mb_label(cfg->regions[r].name, gl, sizeof(gl)),
                  st.quorum.basis == SST_FLEET_BASIS_FLEET && (st.quorum.disagree >> r) & 1);
    mb_help(b, "sidestep_fleet_disagreements_total", "counter",
            "Times this instance started to disagree with the fleet about the region.");
    for (size_t g = 1; g < s->n_region_names && g < SST_M_REGIONS; g++)
        mb_printf(b, "sidestep_fleet_disagreements_total{region=\"%s\"} %llu\n",
                  mb_label(s->region_names[g], gl, sizeof(gl)),
                  (unsigned long long)sf->disagreements[g]);
    mb_help(b, "sidestep_fleet_actions_total", "counter",
            "Operator actions in fleet mode, by scope and result.");
    for (int sc = 0; sc < SST_SFLEET_SCOPES; sc++)
        for (int r = 0; r < SST_SFLEET_RESULTS; r++)
            mb_printf(b, "sidestep_fleet_actions_total{scope=\"%s\",result=\"%s\"} %llu\n",
                      scopes[sc], results[r], (unsigned long long)sf->actions[sc][r]);
}

int sst__metrics_render(sst_server_t *s, char **out, size_t *len)
{
    mbuf_t b = {.p = malloc(64 * 1024), .cap = 64 * 1024};
    if (b.p == NULL)
        return SST_ENOMEM;
    b.p[0] = 0;
    render_requests(&b, s);
    render_connections(&b, s);
    render_proxy_protocol(&b, s);
    render_upstreams(&b, s);
    render_health(&b, s);
    render_tls(&b, s);
    render_fleet(&b, s);
    mb_help(&b, "sidestep_reloads_total", "counter", "Config reloads by result.");
    mb_printf(&b, "sidestep_reloads_total{result=\"ok\"} %llu\n",
              (unsigned long long)s->reloads_ok);
    mb_printf(&b, "sidestep_reloads_total{result=\"failed\"} %llu\n",
              (unsigned long long)s->reloads_failed);
    mb_help(&b, "sidestep_config_version", "gauge", "Version of the config in use (1 at start).");
    mb_printf(&b, "sidestep_config_version %llu\n", (unsigned long long)s->config_version);
    mb_help(&b, "sidestep_uptime_seconds", "gauge", "Seconds since start.");
    mb_printf(&b, "sidestep_uptime_seconds %.3f\n",
              (double)(uv_now(s->loop) - s->start_ms) / 1000.0);
    mb_help(&b, "sidestep_workers", "gauge", "Event-loop worker threads.");
    mb_printf(&b, "sidestep_workers %u\n", s->n_workers);
    uint64_t dropped = 0;
    for (unsigned i = 0; i < s->n_workers; i++)
        dropped += atomic_load(&s->workers[i].passive.dropped);
    mb_help(&b, "sidestep_passive_dropped_total", "counter",
            "Passive signals dropped because the control thread fell behind.");
    mb_printf(&b, "sidestep_passive_dropped_total %llu\n", (unsigned long long)dropped);
    if (b.oom) {
        free(b.p);
        return SST_ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
