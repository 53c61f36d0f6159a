/* Config loader tests: every key and default, the demo, every validation error with its line,
 * column and key path, value parsers at their edges, health merging, refcounting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sidestep/config.h"
#include "sidestep/error.h"

#include "config/config_internal.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The smallest valid config; tests append keys to it. */
#define BASE       "listen: [127.0.0.1:0]\n"
#define REGIONS    "regions: [{name: a, backends: [127.0.0.1:9001]}]\n"
/* A listener written as a mapping (line 3 continues it), and one with a tls block whose
 * line 5 continues it. */
#define TLS_LISTEN "listen:\n  - address: 127.0.0.1:0\n"
#define TLS_HEAD   TLS_LISTEN "    tls:\n      certificates: [{cert: a.pem, key: a.key}]\n"

static int load(const char *yaml, sst_config_t **out, sst_diag_t *d)
{
    return sst_config_load_string("t.yaml", yaml, strlen(yaml), out, d);
}

static sst_config_t *load_ok(const char *yaml)
{
    sst_config_t *cfg = NULL;
    sst_diag_t d;
    char buf[600];
    int rc = load(yaml, &cfg, &d);
    if (rc != 0)
        fail_msg("unexpected error %d: %s", rc, sst_diag_format(&d, buf, sizeof buf));
    assert_non_null(cfg);
    return cfg;
}

/* --- the demo ---------------------------------------------------------------------------- */

static void test_demo_loads(void **state)
{
    sst_config_t *cfg = NULL;
    sst_diag_t d;

    (void)state;
    assert_int_equal(sst_config_demo(&cfg, &d), 0);
    assert_true(cfg->demo);
    assert_string_equal(cfg->source, "<embedded demo>");
    assert_int_equal(cfg->version, 0);
    assert_int_equal(atomic_load(&cfg->refcount), 1);

    assert_int_equal(cfg->n_listeners, 1);
    assert_string_equal(cfg->listeners[0].addr.text, "127.0.0.1:8080");
    assert_true(cfg->admin.enabled);
    assert_string_equal(cfg->admin.addr.text, "127.0.0.1:9901");
    assert_null(cfg->admin.token);

    assert_int_equal(cfg->n_regions, 2);
    assert_int_equal(cfg->local_region, 0);
    assert_string_equal(cfg->regions[0].name, "us-east");
    assert_string_equal(cfg->regions[0].url, "http://127.0.0.1:8080");
    assert_string_equal(cfg->regions[1].name, "eu-west");
    assert_string_equal(cfg->regions[1].url, "http://127.0.0.1:9101");
    assert_int_equal(cfg->regions[0].first_backend, 0);
    assert_int_equal(cfg->regions[0].n_backends, 2);
    assert_int_equal(cfg->regions[1].first_backend, 2);
    assert_int_equal(cfg->regions[1].n_backends, 1);
    assert_int_equal(cfg->n_backends, 3);
    assert_string_equal(cfg->backends[0].addr.text, "127.0.0.1:9001");
    assert_string_equal(cfg->backends[1].addr.text, "127.0.0.1:9002");
    assert_string_equal(cfg->backends[2].addr.text, "127.0.0.1:9101");
    for (size_t i = 0; i < cfg->n_backends; i++) {
        const sst_health_cfg_t *h = &cfg->backends[i].health;
        assert_int_equal(h->interval_ms, 1000);
        assert_int_equal(h->timeout_ms, 500);
        assert_int_equal(h->rise, 2);
        assert_int_equal(h->fall, 2);
        assert_string_equal(h->path, "/healthz");
    }
    assert_int_equal(cfg->backends[2].region, 1);
    assert_int_equal(cfg->regions[0].failback_delay_ms, 5000);
    assert_int_equal(cfg->regions[1].failback_delay_ms, 5000);

    assert_int_equal(cfg->n_routes, 1);
    assert_int_equal(cfg->routes[0].primary, 0);
    assert_int_equal(cfg->routes[0].n_failover, 1);
    assert_int_equal(cfg->routes[0].failover[0], 1);
    assert_int_equal(cfg->routes[0].redirect_status, 307);
    assert_string_equal(cfg->log.access, "stderr");
    assert_int_equal(cfg->log.format, SST_LOG_TEXT);
    sst_config_unref(cfg);

    /* The same text through the normal loader is not flagged as the demo */
    cfg = load_ok(sst_config_demo_yaml);
    assert_false(cfg->demo);
    sst_config_unref(cfg);
}

/* --- defaults ---------------------------------------------------------------------------- */

static void check_default_health(const sst_health_cfg_t *h)
{
    assert_true(h->enabled);
    assert_string_equal(h->method, "GET");
    assert_string_equal(h->path, "/healthz");
    assert_string_equal(h->host, "");
    assert_int_equal(h->n_expect, 1);
    assert_int_equal(h->expect[0].lo, 200);
    assert_int_equal(h->expect[0].hi, 399);
    assert_null(h->expect_body);
    assert_int_equal(h->interval_ms, 2000);
    assert_int_equal(h->fast_interval_ms, 500);
    assert_int_equal(h->timeout_ms, 1000);
    assert_int_equal(h->jitter_ms, 200);
    assert_int_equal(h->rise, 2);
    assert_int_equal(h->fall, 2);
    assert_int_equal(h->passive_fall, 3);
    assert_int_equal(h->passive_fall_refused, 1);
    assert_false(h->passive_5xx);
    assert_int_equal(h->initial, SST_INITIAL_AUTO);
    assert_int_equal(h->slow_ms, 0);
}

static void test_defaults(void **state)
{
    sst_config_t *cfg = load_ok(BASE REGIONS);

    (void)state;
    assert_string_equal(cfg->source, "t.yaml");
    assert_int_equal(cfg->version, 0);
    assert_false(cfg->demo);
    assert_int_equal(cfg->workers, 0);
    assert_int_equal(cfg->local_region, SIZE_MAX);

    const sst_listener_cfg_t *l = &cfg->listeners[0];
    assert_string_equal(l->addr.text, "127.0.0.1:0");
    assert_string_equal(l->addr.host, "127.0.0.1");
    assert_int_equal(l->addr.port, 0);
    assert_int_equal(l->addr.sa.ss_family, AF_INET);
    assert_int_equal(l->addr.salen, sizeof(struct sockaddr_in));
    assert_string_equal(l->proto, "http");
    assert_false(l->https_redirect);
    assert_int_equal(l->https_status_get, 301);
    assert_int_equal(l->https_status_other, 307);
    assert_int_equal(l->https_port, 0);

    assert_false(cfg->admin.enabled);
    assert_null(cfg->admin.token);

    const sst_region_cfg_t *r = &cfg->regions[0];
    assert_string_equal(r->name, "a");
    assert_null(r->url);
    check_default_health(&r->health);
    assert_int_equal(r->min_healthy, 1);
    assert_false(r->min_healthy_pct);
    assert_int_equal(r->max_ejection_pct, 100);
    assert_int_equal(r->slow_start_ms, 0);
    assert_int_equal(r->failback_delay_ms, 10000);
    assert_int_equal(cfg->backends[0].weight, 1);
    assert_int_equal(cfg->backends[0].region, 0);
    check_default_health(&cfg->backends[0].health);

    /* No routes: the default route */
    assert_int_equal(cfg->n_routes, 1);
    const sst_route_cfg_t *rt = &cfg->routes[0];
    assert_string_equal(rt->name, "default");
    assert_string_equal(rt->host, "*");
    assert_string_equal(rt->path_prefix, "/");
    assert_int_equal(rt->primary, 0);
    assert_int_equal(rt->n_failover, 0);
    assert_int_equal(rt->redirect_status, 307);
    assert_int_equal(rt->all_down, SST_ALL_DOWN_REJECT);
    assert_int_equal(rt->retry_after_s, 5);
    assert_null(rt->hop_param);
    assert_int_equal(rt->max_hops, 1);
    assert_int_equal(rt->at_hop_limit, SST_HOP_LIMIT_SERVE);
    assert_int_equal(rt->n_cors_origins, 0);
    assert_false(rt->cors_credentials);
    assert_int_equal(rt->redirect_discard_bytes, 64 * 1024);
    assert_int_equal(rt->retries, 2);
    assert_int_equal(rt->try_timeout_ms, 0);
    assert_null(rt->idempotency_header);

    const sst_limits_cfg_t *lim = &cfg->limits;
    assert_int_equal(lim->request_line, 8 * 1024);
    assert_int_equal(lim->header_field, 8 * 1024);
    assert_int_equal(lim->header_bytes, 32 * 1024);
    assert_int_equal(lim->headers, 100);
    assert_int_equal(lim->body, 100 * 1024 * 1024);
    assert_int_equal(lim->connections, 10000);
    assert_int_equal(lim->upstream_connections, 1024);
    assert_int_equal(lim->upstream_idle, 64);
    assert_int_equal(lim->response_header_bytes, 32 * 1024);
    assert_int_equal(lim->response_headers, 100);
    assert_int_equal(lim->buffer, 64 * 1024);

    const sst_timeouts_cfg_t *t = &cfg->timeouts;
    assert_int_equal(t->request_head_ms, 10000);
    assert_int_equal(t->idle_ms, 60000);
    assert_int_equal(t->connect_ms, 2000);
    assert_int_equal(t->upstream_response_ms, 30000);
    assert_int_equal(t->upstream_idle_ms, 4000);
    assert_int_equal(t->body_ms, 30000);
    assert_int_equal(t->body_total_ms, 0);
    assert_int_equal(t->body_min_rate, 0);
    assert_int_equal(t->send_ms, 30000);
    assert_int_equal(t->linger_ms, 2000);
    assert_int_equal(t->shutdown_ms, 30000);
    assert_int_equal(t->tls_handshake_ms, 10000);

    assert_false(l->tls.enabled);
    assert_false(l->hsts.enabled);
    assert_false(r->tls.enabled);
    assert_int_equal(cfg->warnings.n, 0);

    assert_string_equal(cfg->log.access, "stderr");
    assert_int_equal(cfg->log.format, SST_LOG_TEXT);
    assert_int_equal(cfg->log.level, 1);
    assert_int_equal(cfg->n_trusted_proxies, 0);
    sst_config_unref(cfg);
}

/* --- every key --------------------------------------------------------------------------- */

static const char full_yaml[] =
    "workers: 4\n"
    "local_region: eu-west\n"
    "listen:\n"
    "  - 127.0.0.1:0\n"
    "  - address: \"[::1]:8443\"\n"
    "    proto: https\n"
    "  - address: 127.0.0.1:8081\n"
    "    https_redirect: true\n"
    "  - address: 127.0.0.1:8082\n"
    "    https_redirect: {get: 308, other: 308, port: 8443}\n"
    "  - address: 127.0.0.1:8083\n"
    "    https_redirect: {port: 443}\n"
    "admin:\n"
    "  address: 10.1.2.3:9901\n"
    "  token: s3cret-token\n"
    "health:\n"
    "  method: OPTIONS\n"
    "  interval: 3s\n"
    "regions:\n"
    "  - name: us-east\n"
    "    url: HTTPS://US-East.Example.com/base/\n"
    "    backends:\n"
    "      - 127.0.0.1:9001\n"
    "      - {address: 127.0.0.1:9002, weight: 3, health: {path: /other}}\n"
    "    health:\n"
    "      enabled: false\n"
    "      path: /ready\n"
    "      host: internal.example\n"
    "      expect_status: [\"200-204\", 301, \"302,304-305\"]\n"
    "      expect_body: ok\n"
    "      interval: 1.5s\n"
    "      fast_interval: 250ms\n"
    "      timeout: 750ms\n"
    "      jitter: 100ms\n"
    "      rise: 3\n"
    "      fall: 4\n"
    "      passive_fall: 0\n"
    "      passive_fall_refused: 2\n"
    "      passive_5xx: true\n"
    "      initial: up\n"
    "      slow: 400ms\n"
    "    min_healthy: 50%\n"
    "    max_ejection: 30\n"
    "    slow_start: 20s\n"
    "    failback_delay: 1m\n"
    "  - name: eu-west\n"
    "    backends: [\"localhost:9101\"]\n"
    "    health: {initial: down, expect_status: \"200\"}\n"
    "    min_healthy: 1\n"
    "    max_ejection: 0%\n"
    "  - name: ap_south.1\n"
    "    url: http://[2001:db8::1]:8080\n"
    "    backends: [\"[::1]:9201\"]\n"
    "routes:\n"
    "  - name: api\n"
    "    match: {host: \"*.Example.COM\", path_prefix: /api}\n"
    "    primary: us-east\n"
    "    failover: [eu-west, ap_south.1]\n"
    "    redirect_status: 308\n"
    "    all_down: fail_open\n"
    "    retry_after: 1500ms\n"
    "    hop_param: sst_hop\n"
    "    max_hops: 3\n"
    "    at_hop_limit: reject\n"
    "    cors_origins: [\"https://App.Example.com\", \"*\", \"http://localhost:3000\"]\n"
    "    redirect_discard: 1m\n"
    "    retries: 0\n"
    "    try_timeout: 300ms\n"
    "    idempotency_header: Idempotency-Key\n"
    "  - primary: eu-west\n"
    "    match: {host: shop.example.com}\n"
    "    all_down: {fallback: us-east}\n"
    "    cors_credentials: true\n"
    "    cors_origins: [\"https://shop.example.com\"]\n"
    "  - primary: ap_south.1\n"
    "    all_down: reject\n"
    "    retry_after: 0s\n"
    "limits:\n"
    "  request_line: 4k\n"
    "  header_field: 4KB\n"
    "  header_bytes: 16k\n"
    "  headers: 50\n"
    "  body: 0\n"
    "  connections: 500\n"
    "  upstream_connections: 32\n"
    "  upstream_idle: 8\n"
    "  response_header_bytes: 64k\n"
    "  response_headers: 200\n"
    "  buffer: 1m\n"
    "timeouts:\n"
    "  request_head: 5s\n"
    "  idle: 2m\n"
    "  connect: 250ms\n"
    "  upstream_response: 1h\n"
    "  upstream_idle: 3s\n"
    "  body: 10s\n"
    "  body_total: 5m\n"
    "  body_min_rate: 1k\n"
    "  send: 15s\n"
    "  linger: 0\n"
    "  shutdown: 1m\n"
    "log: {access: /var/log/sidestep/access.log, format: json, level: debug}\n"
    "trusted_proxies: [10.0.0.0/8, 127.0.0.1, \"fd00::/8\"]\n";

static void test_every_key(void **state)
{
    sst_config_t *cfg = load_ok(full_yaml);
    char ip[INET6_ADDRSTRLEN];

    (void)state;
    assert_int_equal(cfg->workers, 4);
    assert_int_equal(cfg->local_region, 1);

    assert_int_equal(cfg->n_listeners, 5);
    const sst_listener_cfg_t *l = cfg->listeners;
    assert_string_equal(l[1].addr.text, "[::1]:8443");
    assert_string_equal(l[1].addr.host, "::1");
    assert_int_equal(l[1].addr.sa.ss_family, AF_INET6);
    assert_string_equal(l[1].proto, "https");
    assert_false(l[1].https_redirect);
    assert_true(l[2].https_redirect);
    assert_int_equal(l[2].https_status_get, 301);
    assert_int_equal(l[2].https_status_other, 307);
    assert_int_equal(l[2].https_port, 0);
    assert_true(l[3].https_redirect);
    assert_int_equal(l[3].https_status_get, 308);
    assert_int_equal(l[3].https_status_other, 308);
    assert_int_equal(l[3].https_port, 8443);
    assert_true(l[4].https_redirect);
    assert_int_equal(l[4].https_port, 0); /* 443 is the default: left out of Location */

    assert_true(cfg->admin.enabled);
    assert_string_equal(cfg->admin.addr.text, "10.1.2.3:9901");
    assert_string_equal(cfg->admin.token, "s3cret-token");

    assert_int_equal(cfg->n_regions, 3);
    const sst_region_cfg_t *us = &cfg->regions[0], *eu = &cfg->regions[1], *ap = &cfg->regions[2];
    assert_string_equal(us->url, "https://us-east.example.com/base");
    assert_null(eu->url);
    assert_string_equal(ap->name, "ap_south.1");
    assert_string_equal(ap->url, "http://[2001:db8::1]:8080");

    const sst_health_cfg_t *h = &us->health;
    assert_false(h->enabled);
    assert_string_equal(h->method, "OPTIONS"); /* from the top-level block */
    assert_string_equal(h->path, "/ready");
    assert_string_equal(h->host, "internal.example");
    assert_int_equal(h->n_expect, 4);
    assert_int_equal(h->expect[0].lo, 200);
    assert_int_equal(h->expect[0].hi, 204);
    assert_int_equal(h->expect[1].lo, 301);
    assert_int_equal(h->expect[1].hi, 301);
    assert_int_equal(h->expect[2].lo, 302);
    assert_int_equal(h->expect[2].hi, 302);
    assert_int_equal(h->expect[3].lo, 304);
    assert_int_equal(h->expect[3].hi, 305);
    assert_string_equal(h->expect_body, "ok");
    assert_int_equal(h->interval_ms, 1500);
    assert_int_equal(h->fast_interval_ms, 250);
    assert_int_equal(h->timeout_ms, 750);
    assert_int_equal(h->jitter_ms, 100);
    assert_int_equal(h->rise, 3);
    assert_int_equal(h->fall, 4);
    assert_int_equal(h->passive_fall, 0);
    assert_int_equal(h->passive_fall_refused, 2);
    assert_true(h->passive_5xx);
    assert_int_equal(h->initial, SST_INITIAL_UP);
    assert_int_equal(h->slow_ms, 400);
    assert_int_equal(us->min_healthy, 50);
    assert_true(us->min_healthy_pct);
    assert_int_equal(us->max_ejection_pct, 30);
    assert_int_equal(us->slow_start_ms, 20000);
    assert_int_equal(us->failback_delay_ms, 60000);

    assert_int_equal(eu->health.initial, SST_INITIAL_DOWN);
    assert_int_equal(eu->health.n_expect, 1);
    assert_int_equal(eu->health.expect[0].lo, 200);
    assert_int_equal(eu->health.expect[0].hi, 200);
    assert_int_equal(eu->health.interval_ms, 3000);
    assert_int_equal(eu->min_healthy, 1);
    assert_false(eu->min_healthy_pct);
    assert_int_equal(eu->max_ejection_pct, 0);

    assert_int_equal(cfg->n_backends, 4);
    assert_int_equal(cfg->backends[1].weight, 3);
    assert_string_equal(cfg->backends[1].health.path, "/other");
    assert_string_equal(cfg->backends[0].health.path, "/ready");
    assert_int_equal(cfg->backends[1].health.rise, 3);
    /* A name resolves at load; "localhost" is loopback whichever family it gives */
    assert_string_equal(cfg->backends[2].addr.text, "localhost:9101");
    assert_true(cfg->backends[2].addr.salen > 0);
    assert_true(sst_addr_is_loopback(&cfg->backends[2].addr));
    assert_int_equal(cfg->backends[2].region, 1);
    assert_int_equal(cfg->backends[3].region, 2);

    assert_int_equal(cfg->n_routes, 3);
    const sst_route_cfg_t *r = &cfg->routes[0];
    assert_string_equal(r->name, "api");
    assert_string_equal(r->host, "*.example.com");
    assert_string_equal(r->path_prefix, "/api");
    assert_int_equal(r->primary, 0);
    assert_int_equal(r->n_failover, 2);
    assert_int_equal(r->failover[0], 1);
    assert_int_equal(r->failover[1], 2);
    assert_int_equal(r->redirect_status, 308);
    assert_int_equal(r->all_down, SST_ALL_DOWN_FAIL_OPEN);
    assert_int_equal(r->retry_after_s, 2); /* 1500ms rounds up */
    assert_string_equal(r->hop_param, "sst_hop");
    assert_int_equal(r->max_hops, 3);
    assert_int_equal(r->at_hop_limit, SST_HOP_LIMIT_REJECT);
    assert_int_equal(r->n_cors_origins, 3);
    assert_string_equal(r->cors_origins[0], "https://app.example.com");
    assert_string_equal(r->cors_origins[1], "*");
    assert_string_equal(r->cors_origins[2], "http://localhost:3000");
    assert_int_equal(r->redirect_discard_bytes, 1024 * 1024);
    assert_int_equal(r->retries, 0);
    assert_int_equal(r->try_timeout_ms, 300);
    assert_string_equal(r->idempotency_header, "Idempotency-Key");
    assert_int_equal(cfg->routes[1].try_timeout_ms, 0);
    assert_null(cfg->routes[1].idempotency_header);
    assert_string_equal(cfg->routes[1].name, "route1");
    assert_string_equal(cfg->routes[1].host, "shop.example.com");
    assert_string_equal(cfg->routes[1].path_prefix, "/");
    assert_int_equal(cfg->routes[1].all_down, SST_ALL_DOWN_FALLBACK);
    assert_int_equal(cfg->routes[1].fallback_region, 0);
    assert_true(cfg->routes[1].cors_credentials);
    assert_false(cfg->routes[0].cors_credentials);
    assert_string_equal(cfg->routes[1].cors_origins[0], "https://shop.example.com");
    assert_string_equal(cfg->routes[2].name, "route2");
    assert_int_equal(cfg->routes[2].primary, 2);
    assert_int_equal(cfg->routes[2].retry_after_s, 0);

    const sst_limits_cfg_t *lim = &cfg->limits;
    assert_int_equal(lim->request_line, 4096);
    assert_int_equal(lim->header_field, 4096);
    assert_int_equal(lim->header_bytes, 16384);
    assert_int_equal(lim->headers, 50);
    assert_int_equal(lim->body, 0);
    assert_int_equal(lim->connections, 500);
    assert_int_equal(lim->upstream_connections, 32);
    assert_int_equal(lim->upstream_idle, 8);
    assert_int_equal(lim->response_header_bytes, 65536);
    assert_int_equal(lim->response_headers, 200);
    assert_int_equal(lim->buffer, 1024 * 1024);

    const sst_timeouts_cfg_t *t = &cfg->timeouts;
    assert_int_equal(t->request_head_ms, 5000);
    assert_int_equal(t->idle_ms, 120000);
    assert_int_equal(t->connect_ms, 250);
    assert_int_equal(t->upstream_response_ms, 3600000);
    assert_int_equal(t->upstream_idle_ms, 3000);
    assert_int_equal(t->body_ms, 10000);
    assert_int_equal(t->body_total_ms, 300000);
    assert_int_equal(t->body_min_rate, 1024);
    assert_int_equal(t->send_ms, 15000);
    assert_int_equal(t->linger_ms, 0);
    assert_int_equal(t->shutdown_ms, 60000);

    assert_string_equal(cfg->log.access, "/var/log/sidestep/access.log");
    assert_int_equal(cfg->log.format, SST_LOG_JSON);
    assert_int_equal(cfg->log.level, 0);

    assert_int_equal(cfg->n_trusted_proxies, 3);
    const struct sockaddr_in *n0 = (const struct sockaddr_in *)&cfg->trusted_proxies[0].net;
    assert_string_equal(inet_ntop(AF_INET, &n0->sin_addr, ip, sizeof ip), "10.0.0.0");
    assert_int_equal(cfg->trusted_proxies[0].prefix, 8);
    assert_int_equal(cfg->trusted_proxies[1].prefix, 32);
    assert_int_equal(cfg->trusted_proxies[2].net.ss_family, AF_INET6);
    assert_int_equal(cfg->trusted_proxies[2].prefix, 8);

    assert_int_equal(sst_config_region_index(cfg, "eu-west", 7), 1);
    assert_int_equal(sst_config_region_index(cfg, "eu-westx", 7), 1); /* length-delimited */
    assert_int_equal(sst_config_region_index(cfg, "eu", 2), -1);
    assert_int_equal(sst_config_backend_index(cfg, "127.0.0.1:9002", 14), 1);
    assert_int_equal(sst_config_backend_index(cfg, "[::1]:9201", 10), 3);
    assert_int_equal(sst_config_backend_index(cfg, "127.0.0.1:9", 11), -1);
    sst_config_unref(cfg);
}

/* --- health merge order ------------------------------------------------------------------ */

static void test_health_merge(void **state)
{
    sst_config_t *cfg =
        load_ok(BASE "health: {interval: 4s, rise: 5, path: /top, jitter: 25%, slow: 250ms}\n"
                     "regions:\n"
                     "  - name: a\n"
                     "    health: {interval: 3s, fall: 4, path: /region}\n"
                     "    backends:\n"
                     "      - 127.0.0.1:9001\n"
                     "      - address: 127.0.0.1:9002\n"
                     "        health: {path: /own, interval: 2s, timeout: 500ms, slow: 0}\n"
                     "  - name: b\n"
                     "    url: http://b.example\n"
                     "    backends: [127.0.0.1:9003]\n"
                     "  - name: c\n"
                     "    url: http://c.example\n"
                     "    health: {interval: 300ms, timeout: 300ms, jitter: 100ms}\n"
                     "    backends: [127.0.0.1:9004]\n");
    const sst_health_cfg_t *ra = &cfg->regions[0].health, *rb = &cfg->regions[1].health;
    const sst_health_cfg_t *b0 = &cfg->backends[0].health, *b1 = &cfg->backends[1].health;
    const sst_health_cfg_t *rc = &cfg->regions[2].health;

    (void)state;
    /* region over top-level over built-in */
    assert_int_equal(ra->interval_ms, 3000);
    assert_int_equal(ra->rise, 5);
    assert_int_equal(ra->fall, 4);
    assert_string_equal(ra->path, "/region");
    assert_int_equal(ra->jitter_ms, 750); /* 25% of the region's own interval */
    assert_int_equal(ra->timeout_ms, 1000);
    assert_int_equal(ra->slow_ms, 250);
    assert_memory_equal(b0, ra, sizeof *ra); /* a plain backend inherits the region as is */
    /* backend over region */
    assert_string_equal(b1->path, "/own");
    assert_int_equal(b1->interval_ms, 2000);
    assert_int_equal(b1->jitter_ms, 500); /* the percentage follows the merged interval */
    assert_int_equal(b1->timeout_ms, 500);
    assert_int_equal(b1->rise, 5);
    assert_int_equal(b1->fall, 4);
    assert_int_equal(b1->slow_ms, 0); /* a backend may turn slow off */
    /* a region without a block gets the top-level one */
    assert_int_equal(rb->interval_ms, 4000);
    assert_string_equal(rb->path, "/top");
    assert_int_equal(rb->fall, 2);
    assert_int_equal(rb->jitter_ms, 1000);
    assert_memory_equal(&cfg->backends[2].health, rb, sizeof *rb);
    /* fast_interval never above interval; a jitter duration stays as written */
    assert_int_equal(rc->interval_ms, 300);
    assert_int_equal(rc->fast_interval_ms, 300);
    assert_int_equal(rc->jitter_ms, 100);
    sst_config_unref(cfg);
}

/* --- default route ----------------------------------------------------------------------- */

static void test_default_route(void **state)
{
    sst_config_t *cfg =
        load_ok(BASE "local_region: c\n"
                     "regions:\n"
                     "  - {name: a, backends: [127.0.0.1:9001]}\n"
                     "  - {name: b, url: http://b.example, backends: [127.0.0.1:9002]}\n"
                     "  - {name: c, url: http://c.example, backends: [127.0.0.1:9003]}\n");

    (void)state;
    assert_int_equal(cfg->n_routes, 1);
    assert_string_equal(cfg->routes[0].name, "default");
    assert_string_equal(cfg->routes[0].host, "*");
    assert_string_equal(cfg->routes[0].path_prefix, "/");
    assert_int_equal(cfg->routes[0].primary, 0);
    assert_int_equal(cfg->routes[0].n_failover, 2); /* c has no url but is local: proxied */
    assert_int_equal(cfg->routes[0].failover[0], 1);
    assert_int_equal(cfg->routes[0].failover[1], 2);
    assert_int_equal(cfg->local_region, 2);
    sst_config_unref(cfg);

    /* A failover without a url is fine when this instance runs in it */
    cfg = load_ok(BASE "local_region: b\n"
                       "regions: [{name: a, backends: [127.0.0.1:9001]},"
                       " {name: b, backends: [127.0.0.1:9002]}]\n"
                       "routes: [{primary: a, failover: [b], all_down: {fallback: b}}]\n");
    assert_int_equal(cfg->routes[0].fallback_region, 1);
    sst_config_unref(cfg);
}

/* --- TLS keys and warnings ---------------------------------------------------------------- */

static void test_tls_keys(void **state)
{
    sst_config_t *cfg = load_ok(
        "listen:\n"
        "  - address: 127.0.0.1:8443\n"
        "    tls:\n"
        "      certificates:\n"
        "        - {cert: /etc/sidestep/api.pem, key: /etc/sidestep/api.key}\n"
        "        - cert: /etc/sidestep/www.pem\n"
        "          key: /etc/sidestep/www.key\n"
        "      min_version: \"1.3\"\n"
        "      ciphers: \"ECDHE-ECDSA-AES128-GCM-SHA256\"\n"
        "      session_tickets: true\n"
        "      ticket_key_file: /etc/sidestep/ticket.key\n"
        "    hsts: {max_age: 31536000, include_subdomains: true, preload: true}\n"
        "  - address: 127.0.0.1:8444\n"
        "    proto: h\n"
        "    tls: {certificates: [{cert: c, key: k}], ciphers: modern, session_tickets: no}\n"
        "    hsts:\n"
        "  - address: 127.0.0.1:8080\n"
        "    https_redirect: {port: 8443}\n"
        "  - address: 127.0.0.1:8081\n"
        "    https_redirect: {port: 8080}\n"
        "    hsts: {max_age: 0}\n"
        "regions:\n"
        "  - name: a\n"
        "    url: http://a.example\n"
        "    backends: [\"localhost:9443\", 127.0.0.1:9442]\n"
        "    tls: {ca: /etc/ssl/ca.pem, server_name: API.Internal, verify: true}\n"
        "  - name: b\n"
        "    url: https://b.example\n"
        "    backends: [127.0.0.1:9444]\n"
        "    tls: {verify: false, ca: /x}\n"
        "  - name: c\n"
        "    url: https://c.example\n"
        "    backends: [127.0.0.1:9445]\n"
        "    tls:\n"
        "timeouts: {tls_handshake: 3s}\n");
    const sst_listener_cfg_t *l = cfg->listeners;
    const sst_tls_listen_cfg_t *t = &l[0].tls;

    (void)state;
    assert_true(t->enabled);
    assert_int_equal(t->pos.line, 4);
    assert_int_equal(t->pos.column, 7);
    assert_int_equal(t->n_certs, 2);
    assert_string_equal(t->certs[0].cert, "/etc/sidestep/api.pem");
    assert_string_equal(t->certs[0].key, "/etc/sidestep/api.key");
    assert_int_equal(t->certs[0].cert_pos.line, 5);
    assert_int_equal(t->certs[0].cert_pos.column, 18);
    assert_int_equal(t->certs[0].key_pos.line, 5);
    assert_int_equal(t->certs[0].key_pos.column, 46);
    assert_string_equal(t->certs[1].cert, "/etc/sidestep/www.pem");
    assert_int_equal(t->certs[1].cert_pos.line, 6);
    assert_int_equal(t->certs[1].cert_pos.column, 17);
    assert_int_equal(t->certs[1].key_pos.line, 7);
    assert_int_equal(t->certs[1].key_pos.column, 16);
    assert_int_equal(t->min_version, SST_TLS_1_3);
    assert_string_equal(t->ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256");
    assert_int_equal(t->ciphers_pos.line, 9);
    assert_int_equal(t->ciphers_pos.column, 16);
    assert_true(t->session_tickets);
    assert_string_equal(t->ticket_key_file, "/etc/sidestep/ticket.key");
    assert_int_equal(t->ticket_key_file_pos.line, 11);
    assert_int_equal(t->ticket_key_file_pos.column, 24);
    assert_string_equal(l[0].proto, "https"); /* a TLS listener forwards https by default */
    assert_true(l[0].hsts.enabled);
    assert_int_equal(l[0].hsts.max_age_s, 31536000);
    assert_true(l[0].hsts.include_subdomains);
    assert_true(l[0].hsts.preload);

    t = &l[1].tls;
    assert_true(t->enabled);
    assert_string_equal(t->ciphers, "modern");
    assert_int_equal(t->min_version, SST_TLS_1_3); /* the modern profile is TLS 1.3 only */
    assert_false(t->session_tickets);
    assert_null(t->ticket_key_file);
    assert_string_equal(l[1].proto, "h"); /* written: kept */
    assert_true(l[1].hsts.enabled);       /* an empty block: the defaults */
    assert_int_equal(l[1].hsts.max_age_s, 63072000);
    assert_false(l[1].hsts.include_subdomains);
    assert_false(l[1].hsts.preload);

    assert_false(l[2].tls.enabled);
    assert_string_equal(l[2].proto, "http");
    assert_int_equal(l[2].https_port, 8443);
    assert_false(l[2].hsts.enabled);
    assert_int_equal(l[3].hsts.max_age_s, 0);

    const sst_tls_upstream_cfg_t *r = &cfg->regions[0].tls;
    assert_true(r->enabled);
    assert_string_equal(r->ca, "/etc/ssl/ca.pem");
    assert_int_equal(r->ca_pos.line, 26);
    assert_int_equal(r->ca_pos.column, 15);
    assert_string_equal(r->server_name, "api.internal");
    assert_true(r->verify);
    assert_false(cfg->regions[1].tls.verify);
    assert_true(cfg->regions[2].tls.enabled); /* tls: with no value: the defaults */
    assert_true(cfg->regions[2].tls.verify);
    assert_null(cfg->regions[2].tls.ca);
    assert_null(cfg->regions[2].tls.server_name);
    assert_int_equal(cfg->timeouts.tls_handshake_ms, 3000);

    /* what loads but is likely a mistake: warnings, in the order the sections are read
     * (regions before listeners) */
    static const struct {
        unsigned line, column;
        const char *key, *msg;
    } want[] = {
        {30, 19, "regions[1].tls.verify", "backend certificates are not checked"},
        {9, 16, "listen[0].tls.ciphers", "with min_version \"1.3\" it has no effect"},
        {21, 11, "listen[3].hsts", "hsts takes effect only on answers sent over TLS"},
        {20, 21, "listen[3].https_redirect",
         "redirects to https on port 8080, which listen[2] (127.0.0.1:8080) serves as plain"},
    };
    char buf[600];
    if (cfg->warnings.n != COUNT_OF(want)) {
        for (size_t i = 0; i < cfg->warnings.n; i++)
            print_error("warning: %s\n", sst_diag_format(&cfg->warnings.items[i], buf, sizeof buf));
        fail_msg("%zu warnings, expected %zu", cfg->warnings.n, COUNT_OF(want));
    }
    for (size_t i = 0; i < COUNT_OF(want); i++) {
        const sst_diag_t *w = &cfg->warnings.items[i];
        assert_string_equal(w->file, "t.yaml");
        assert_int_equal(w->line, want[i].line);
        assert_int_equal(w->column, want[i].column);
        assert_string_equal(w->key, want[i].key);
        if (strstr(w->msg, want[i].msg) == NULL)
            fail_msg("warning %zu: \"%s\" lacks \"%s\"", i, w->msg, want[i].msg);
    }
    assert_non_null(strstr(cfg->warnings.items[0].msg, "(ca is unused)"));
    sst_config_unref(cfg);

    /* an https_redirect listener may point at sidestep's own TLS port: no warning */
    cfg = load_ok("listen:\n"
                  "  - address: 127.0.0.1:8443\n"
                  "    tls: {certificates: [{cert: c, key: k}]}\n"
                  "    hsts: {}\n"
                  "  - address: 127.0.0.1:8080\n"
                  "    https_redirect: {port: 8443}\n"
                  "  - address: 127.0.0.1:443\n"
                  "    tls: {certificates: [{cert: c, key: k}]}\n"
                  "  - address: 127.0.0.1:80\n"
                  "    https_redirect: true\n" REGIONS);
    assert_int_equal(cfg->warnings.n, 0);
    assert_true(cfg->listeners[1].https_redirect);
    assert_int_equal(cfg->listeners[1].https_port, 8443);
    sst_config_unref(cfg);

    /* the diag list on its own */
    sst_diag_list_t list = {0};
    sst_diag_t d;
    memset(&d, 0, sizeof d);
    for (int i = 0; i < 10; i++) {
        d.line = (unsigned)i;
        assert_int_equal(sst_diag_list_add(&list, &d), 0);
    }
    assert_int_equal(list.n, 10);
    assert_int_equal(list.items[9].line, 9);
    sst_diag_list_free(&list);
    assert_int_equal(list.n, 0);
    assert_null(list.items);
    sst_diag_list_free(NULL);
}

/* --- validation errors: position, key path, message -------------------------------------- */

typedef struct bad_case_s {
    const char *yaml;
    const char *where; /* "t.yaml:LINE:COL: key: " as sst_diag_format prints it */
    const char *msg;   /* a substring of diag.msg */
} bad_case_t;

static const bad_case_t bad_cases[] = {
    /* YAML itself */
    {"listen: [127.0.0.1:0\nregions:\n", "t.yaml:2:8: ", "YAML syntax error: did not find"},
    {"listen:\n\t- 127.0.0.1:0\n", "t.yaml:2:1: ", "cannot start any token"},
    {"listen: [\"\xff\"]\n", "t.yaml:1:11: ", "invalid leading UTF-8 octet"},
    {BASE "listen: [127.0.0.1:1]\n",
     "t.yaml:2:1: listen: ", "duplicate key \"listen\" (first at line 1)"},
    {BASE "regions: &r []\n", "t.yaml:2:10: ", "anchors (&r) are not supported"},
    {BASE "regions: *r\n", "t.yaml:2:10: ", "aliases (*r) are not supported"},
    {BASE REGIONS "---\n" BASE, "t.yaml:3:1: ", "only one YAML document"},
    {"", "t.yaml:1:1: ", "the config is empty"},
    {"# nothing\n", "t.yaml:1:1: ", "the config is empty"},
    {"<<: {listen: [127.0.0.1:0]}\n" REGIONS,
     "t.yaml:1:1: <<: ", "merge keys (<<) are not supported"},
    {"hello\n", "t.yaml:1:1: ", "expected a mapping at the top level"},
    {"a: [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]\n", "t.yaml:1:", "nested deeper than 16 levels"},
    {"? [a]\n: 1\n", "t.yaml:1:3: ", "mapping keys must be plain words"},
    /* top level */
    {"listn: [127.0.0.1:0]\n" REGIONS,
     "t.yaml:1:1: listn: ", "unknown key \"listn\" (did you mean \"listen\"?)"},
    {BASE REGIONS "trustd_proxies: []\n",
     "t.yaml:3:1: trustd_proxies: ", "(did you mean \"trusted_proxies\"?)"},
    {REGIONS, "t.yaml:1:1: listen: ", "required"},
    {BASE, "t.yaml:1:1: regions: ", "required"},
    {BASE REGIONS "workers: 65\n", "t.yaml:3:10: workers: ", "\"65\" is out of range (1..64)"},
    {BASE REGIONS "workers: 0\n", "t.yaml:3:10: workers: ", "out of range (1..64)"},
    {BASE REGIONS "workers: many\n", "t.yaml:3:10: workers: ", "invalid number \"many\""},
    {BASE REGIONS "workers:\n", "t.yaml:3:9: workers: ", "missing value"},
    {BASE REGIONS "workers: [1]\n", "t.yaml:3:10: workers: ", "found a list"},
    /* listen */
    {"listen: []\n" REGIONS, "t.yaml:1:9: listen: ", "needs at least 1 entry"},
    {"listen: 127.0.0.1:0\n" REGIONS, "t.yaml:1:9: listen: ", "expected a list"},
    {"listen: [127.0.0.1]\n" REGIONS, "t.yaml:1:10: listen[0]: ", "missing :port"},
    {"listen: [\":8080\"]\n" REGIONS, "t.yaml:1:10: listen[0]: ", "missing host"},
    {"listen: [\"::1:8080\"]\n" REGIONS, "t.yaml:1:10: listen[0]: ", "need brackets"},
    {"listen: [127.0.0.1:65536]\n" REGIONS, "t.yaml:1:10: listen[0]: ", "invalid port \"65536\""},
    {"listen: [300.0.0.1:80]\n" REGIONS, "t.yaml:1:10: listen[0]: ", "invalid IPv4 address"},
    {"listen: [\"[::zz]:80\"]\n" REGIONS, "t.yaml:1:10: listen[0]: ", "invalid IPv6 address"},
    {"listen: [{proto: https}]\n" REGIONS, "t.yaml:1:10: listen[0].address: ", "required"},
    {"listen: [{address: 127.0.0.1:0, prot: https}]\n" REGIONS,
     "t.yaml:1:33: listen[0].prot: ", "did you mean \"proto\""},
    {"listen: [{address: 127.0.0.1:0, proto: \"a b\"}]\n" REGIONS,
     "t.yaml:1:40: listen[0].proto: ", "expected a word"},
    {"listen:\n  - address: 127.0.0.1:0\n    https_redirect: {get: 305}\n" REGIONS,
     "t.yaml:3:27: listen[0].https_redirect.get: ", "not a redirect"},
    {"listen:\n  - address: 127.0.0.1:0\n    https_redirect: {port: 0}\n" REGIONS,
     "t.yaml:3:28: listen[0].https_redirect.port: ", "out of range (1..65535)"},
    {"listen:\n  - address: 127.0.0.1:0\n    https_redirect: maybe\n" REGIONS,
     "t.yaml:3:21: listen[0].https_redirect: ", "invalid boolean"},
    {"listen: [127.0.0.1:8080, 127.0.0.1:8080]\n" REGIONS,
     "t.yaml:1:26: listen[1]: ", "already listed as listen[0]"},
    /* regions */
    {BASE "regions: {name: a}\n", "t.yaml:2:10: regions: ", "expected a list"},
    {BASE "regions: []\n", "t.yaml:2:10: regions: ", "needs at least 1 entry"},
    {BASE "regions: [a]\n", "t.yaml:2:11: regions[0]: ", "expected a mapping"},
    {BASE "regions: [{backends: [127.0.0.1:1]}]\n", "t.yaml:2:11: regions[0].name: ", "required"},
    {BASE "regions: [{name: us east, backends: [127.0.0.1:1]}]\n",
     "t.yaml:2:18: regions[0].name: ", "invalid region name \"us east\""},
    {BASE
     "regions:\n  - {name: a, backends: [127.0.0.1:1]}\n  - {name: a, backends: [127.0.0.1:2]}\n",
     "t.yaml:4:12: regions[1].name: ", "duplicate region name \"a\" (also regions[0])"},
    {BASE "regions:\n  - name: a\n", "t.yaml:3:5: regions[0].backends: ", "required"},
    {BASE "regions: [{name: a, backends: []}]\n",
     "t.yaml:2:31: regions[0].backends: ", "needs at least 1 entry"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:0]}]\n",
     "t.yaml:2:32: regions[0].backends[0]: ", "port 0"},
    {BASE "regions: [{name: a, backends: [{weight: 2}]}]\n",
     "t.yaml:2:32: regions[0].backends[0].address: ", "required"},
    {BASE "regions: [{name: a, backends: [{address: 127.0.0.1:1, weight: 0}]}]\n",
     "t.yaml:2:63: regions[0].backends[0].weight: ", "out of range (1..256)"},
    {BASE "regions:\n  - {name: a, backends: [127.0.0.1:1]}\n"
          "  - {name: b, url: http://b, backends: [127.0.0.1:1]}\n",
     "t.yaml:4:41: regions[1].backends[0]: ", "already listed in region \"a\""},
    {BASE "regions: [{name: a, url: ftp://x, backends: [127.0.0.1:1]}]\n",
     "t.yaml:2:26: regions[0].url: ", "expected http:// or https://"},
    {BASE "regions: [{name: a, url: \"https://x.com/?q=1\", backends: [127.0.0.1:1]}]\n",
     "t.yaml:2:26: regions[0].url: ", "query or fragment"},
    {BASE "regions: [{name: a, url: \"https://u@x.com\", backends: [127.0.0.1:1]}]\n",
     "t.yaml:2:26: regions[0].url: ", "user information"},
    {BASE "regions: [{name: a, url: \"https://x.com:99999\", backends: [127.0.0.1:1]}]\n",
     "t.yaml:2:26: regions[0].url: ", "invalid port"},
    {BASE "regions: [{name: a, url: \"https://\", backends: [127.0.0.1:1]}]\n",
     "t.yaml:2:26: regions[0].url: ", "missing host"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1], min_healthy: 2}]\n",
     "t.yaml:2:59: regions[0].min_healthy: ", "out of range (1..1)"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1], min_healthy: 0%}]\n",
     "t.yaml:2:59: regions[0].min_healthy: ", "out of range (1%..100%)"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1], max_ejection: 101}]\n",
     "t.yaml:2:60: regions[0].max_ejection: ", "out of range (0%..100%)"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1], slow_start: -1s}]\n",
     "t.yaml:2:58: regions[0].slow_start: ", "negative"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1], failback_delay: 25h}]\n",
     "t.yaml:2:62: regions[0].failback_delay: ", "out of range (0ms..24h)"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1], helth: {}}]\n",
     "t.yaml:2:46: regions[0].helth: ", "did you mean \"health\""},
    /* health blocks: the message points at the block that set the key */
    {BASE "regions:\n"
          "  - name: us-east\n"
          "    backends: [127.0.0.1:9001]\n"
          "    health:\n"
          "      interval: 1x\n",
     "t.yaml:6:17: regions[0].health.interval: ",
     "invalid duration \"1x\": unknown unit \"x\" (examples: 250ms, 1s"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1], health: {interval: 1s, timeout: 2s}}]\n",
     "t.yaml:2:78: regions[0].health.timeout: ", "timeout 2s exceeds interval 1s"},
    {BASE "health: {interval: 500ms}\n" REGIONS,
     "t.yaml:2:20: health.interval: ", "timeout 1s exceeds interval 500ms"},
    {BASE "health: {timeout: 1500ms}\n"
          "regions: [{name: a, backends: [127.0.0.1:1], health: {interval: 1s}}]\n",
     "t.yaml:3:65: regions[0].health.interval: ", "timeout 1500ms exceeds interval 1s"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1, "
          "{address: 127.0.0.1:2, health: {timeout: 3s}}]}]\n",
     "t.yaml:2:86: regions[0].backends[1].health.timeout: ", "timeout 3s exceeds interval 2s"},
    {BASE "health: {jitter: 60%}\n" REGIONS,
     "t.yaml:2:18: health.jitter: ", "out of range (0%..50%)"},
    {BASE "health: {jitter: 1500ms}\n" REGIONS,
     "t.yaml:2:18: health.jitter: ", "jitter 1500ms is more than half of interval 2s"},
    {BASE "health: {intreval: 1s}\n" REGIONS,
     "t.yaml:2:10: health.intreval: ", "did you mean \"interval\""},
    {BASE "health: {rise: 0}\n" REGIONS, "t.yaml:2:16: health.rise: ", "out of range (1..100)"},
    {BASE "health: {fall: 101}\n" REGIONS, "t.yaml:2:16: health.fall: ", "out of range"},
    {BASE "health: {passive_fall: -1}\n" REGIONS,
     "t.yaml:2:24: health.passive_fall: ", "out of range (0..100)"},
    {BASE "health: {interval: 5ms}\n" REGIONS,
     "t.yaml:2:20: health.interval: ", "out of range (10ms..24h)"},
    {BASE "health: {timeout: 0}\n" REGIONS,
     "t.yaml:2:19: health.timeout: ", "out of range (1ms..24h)"},
    {BASE "health: {enabled: maybe}\n" REGIONS,
     "t.yaml:2:19: health.enabled: ", "invalid boolean \"maybe\""},
    {BASE "health: {method: \"GE T\"}\n" REGIONS,
     "t.yaml:2:18: health.method: ", "invalid method \"GE T\""},
    {BASE "health: {path: healthz}\n" REGIONS, "t.yaml:2:16: health.path: ", "must start with '/'"},
    {BASE "health: {path: \"/a b\"}\n" REGIONS, "t.yaml:2:16: health.path: ", "space"},
    {BASE "health: {host: \"a b\"}\n" REGIONS, "t.yaml:2:16: health.host: ", "invalid Host"},
    {BASE "health: {expect_status: \"600\"}\n" REGIONS,
     "t.yaml:2:25: health.expect_status: ", "within 100-599"},
    {BASE "health: {expect_status: \"300-200\"}\n" REGIONS,
     "t.yaml:2:25: health.expect_status: ", "low to high"},
    {BASE "health: {expect_status: \"2xx\"}\n" REGIONS,
     "t.yaml:2:25: health.expect_status: ", "invalid status range \"2xx\""},
    {BASE "health: {expect_status: \"200,201,202,203,204,205,206,207,208\"}\n" REGIONS,
     "t.yaml:2:25: health.expect_status: ", "more than 8 status ranges"},
    {BASE "health: {expect_status: [200, \"20x\"]}\n" REGIONS,
     "t.yaml:2:31: health.expect_status[1]: ", "invalid status range"},
    {BASE "health: {initial: Up}\n" REGIONS,
     "t.yaml:2:19: health.initial: ", "expected one of auto, up, down (did you mean \"up\"?)"},
    {BASE "health: [interval]\n" REGIONS, "t.yaml:2:9: health: ", "expected a mapping"},
    /* issue 15: health.slow below the probe timeout, blamed where the pair was last set */
    {BASE "health: {slow: 1s}\n" REGIONS,
     "t.yaml:2:16: health.slow: ", "slow 1s must be below timeout 1s"},
    {BASE "health: {slow: -5ms}\n" REGIONS, "t.yaml:2:16: health.slow: ", "negative"},
    {BASE "health: {slow: fast}\n" REGIONS, "t.yaml:2:16: health.slow: ", "invalid duration"},
    {BASE "health: {slow: 600ms}\n"
          "regions: [{name: a, backends: [{address: 127.0.0.1:1, health: {timeout: 500ms}}]}]\n",
     "t.yaml:3:73: regions[0].backends[0].health.timeout: ",
     "slow 600ms must be below timeout 500ms"},
    /* local_region */
    {BASE "local_region: us-eats\n"
          "regions: [{name: us-east, backends: [127.0.0.1:1]}]\n",
     "t.yaml:2:15: local_region: ", "unknown region \"us-eats\" (did you mean \"us-east\"?)"},
    /* routes */
    {BASE REGIONS "routes: []\n", "t.yaml:3:9: routes: ", "needs at least 1 entry"},
    {BASE REGIONS "routes: [{name: x}]\n", "t.yaml:3:10: routes[0].primary: ", "required"},
    {BASE REGIONS "routes: [{primary: b}]\n",
     "t.yaml:3:20: routes[0].primary: ", "unknown region \"b\""},
    {BASE REGIONS "routes: [{primary: a, failover: [a]}]\n",
     "t.yaml:3:34: routes[0].failover[0]: ", "is the primary"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1]},"
          " {name: b, url: http://b, backends: [127.0.0.1:2]}]\n"
          "routes: [{primary: a, failover: [b, b]}]\n",
     "t.yaml:3:37: routes[0].failover[1]: ", "listed twice (also failover[0])"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1]}, {name: b, backends: [127.0.0.1:2]}]\n"
          "routes: [{primary: a, failover: [b]}]\n",
     "t.yaml:3:34: routes[0].failover[0]: ", "region \"b\" has no url"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1]}, {name: b, backends: [127.0.0.1:2]}]\n",
     "t.yaml:2:47: regions[1]: ", "without routes: the default route fails over to it"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1]}, {name: b, backends: [127.0.0.1:2]}]\n"
          "routes: [{primary: a, all_down: {fallback: b}}]\n",
     "t.yaml:3:44: routes[0].all_down.fallback: ", "cannot be a fallback redirect target"},
    {BASE REGIONS "routes: [{primary: a, all_down: fallback}]\n",
     "t.yaml:3:33: routes[0].all_down: ", "fallback needs a region"},
    {BASE REGIONS "routes: [{primary: a, all_down: rejct}]\n",
     "t.yaml:3:33: routes[0].all_down: ", "did you mean \"reject\""},
    {BASE REGIONS "routes: [{primary: a, all_down: {fallbak: a}}]\n",
     "t.yaml:3:34: routes[0].all_down.fallbak: ", "did you mean \"fallback\""},
    {BASE REGIONS "routes: [{primary: a, redirect_status: 302}]\n",
     "t.yaml:3:40: routes[0].redirect_status: ", "out of range (307..308)"},
    {BASE REGIONS "routes: [{primary: a, max_hops: 10}]\n",
     "t.yaml:3:33: routes[0].max_hops: ", "out of range (1..9)"},
    {BASE REGIONS "routes: [{primary: a, hop_param: \"a&b\"}]\n",
     "t.yaml:3:34: routes[0].hop_param: ", "invalid hop_param \"a&b\""},
    {BASE REGIONS "routes: [{primary: a, at_hop_limit: redirect}]\n",
     "t.yaml:3:37: routes[0].at_hop_limit: ", "expected one of serve, reject"},
    {BASE REGIONS "routes: [{primary: a, retries: 17}]\n",
     "t.yaml:3:32: routes[0].retries: ", "out of range (0..16)"},
    /* issue 15: try_timeout and idempotency_header */
    {BASE REGIONS "routes: [{primary: a, try_timeout: 0}]\n",
     "t.yaml:3:36: routes[0].try_timeout: ", "must be above 0"},
    {BASE REGIONS "routes: [{primary: a, try_timeout: 1x}]\n",
     "t.yaml:3:36: routes[0].try_timeout: ", "invalid duration \"1x\""},
    {BASE REGIONS "routes: [{primary: a, try_timeout: 30s}]\n",
     "t.yaml:3:36: routes[0].try_timeout: ",
     "try_timeout 30s must be below timeouts.upstream_response 30s"},
    {BASE REGIONS "routes:\n  - {primary: a}\n  - {primary: a, match: {host: b.c}, "
                  "try_timeout: 2s}\n"
                  "timeouts: {upstream_response: 1500ms}\n",
     "t.yaml:5:51: routes[1].try_timeout: ",
     "try_timeout 2s must be below timeouts.upstream_response 1500ms"},
    {BASE REGIONS "routes: [{primary: a, idempotency_header: \"Idempotency Key\"}]\n",
     "t.yaml:3:43: routes[0].idempotency_header: ", "expected a header field name"},
    {BASE REGIONS "routes: [{primary: a, idempotency_header: \"\"}]\n",
     "t.yaml:3:43: routes[0].idempotency_header: ", "must not be empty"},
    {BASE REGIONS "routes: [{primary: a, idempotency_header: Connection}]\n",
     "t.yaml:3:43: routes[0].idempotency_header: ", "cannot carry an idempotency key"},
    {BASE REGIONS "routes: [{primary: a, idempotency_header: x-forwarded-for}]\n",
     "t.yaml:3:43: routes[0].idempotency_header: ", "cannot carry an idempotency key"},
    {BASE REGIONS "routes: [{primary: a, idempotency_header: "
                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}]\n",
     "t.yaml:3:43: routes[0].idempotency_header: ", "longer than 64 bytes"},
    {BASE REGIONS "routes: [{primary: a, retry_after: 1d}]\n",
     "t.yaml:3:36: routes[0].retry_after: ", "unknown unit \"d\""},
    {BASE REGIONS "routes: [{primary: a, redirect_discard: 2g}]\n",
     "t.yaml:3:41: routes[0].redirect_discard: ", "out of range (0..1g)"},
    {BASE REGIONS "routes: [{primary: a, cors_origins: [\"https://app.example.com/\"]}]\n",
     "t.yaml:3:38: routes[0].cors_origins[0]: ", "an origin has no path"},
    {BASE REGIONS "routes: [{primary: a, cors_origins: [app.example.com]}]\n",
     "t.yaml:3:38: routes[0].cors_origins[0]: ", "expected \"*\" or scheme://host"},
    /* issue 11: browsers refuse credentials with a wildcard, in either key order */
    {BASE REGIONS "routes: [{primary: a, cors_origins: [\"*\"], cors_credentials: true}]\n",
     "t.yaml:3:62: routes[0].cors_credentials: ", "cannot be true with \"*\" in cors_origins"},
    {BASE REGIONS "routes: [{primary: a, cors_credentials: true, cors_origins: [\"https://a.b\", "
                  "\"*\"]}]\n",
     "t.yaml:3:41: routes[0].cors_credentials: ", "cannot be true with \"*\" in cors_origins"},
    {BASE REGIONS "routes: [{primary: a, cors_credentials: maybe}]\n",
     "t.yaml:3:41: routes[0].cors_credentials: ", "expected true or false"},
    {BASE REGIONS "routes: [{primary: a, match: {host: \"example.com:8080\"}}]\n",
     "t.yaml:3:37: routes[0].match.host: ", "no port here"},
    {BASE REGIONS "routes: [{primary: a, match: {host: \"a.*.com\"}}]\n",
     "t.yaml:3:37: routes[0].match.host: ", "'*' may only be"},
    {BASE REGIONS "routes: [{primary: a, match: {host: a.com, path_prefix: \"/a?b\"}}]\n",
     "t.yaml:3:57: routes[0].match.path_prefix: ", "a query (?) never matches"},
    {BASE REGIONS "routes: [{name: x, primary: a}, {primary: a}]\n",
     "t.yaml:3:33: routes[1].match: ",
     "routes[0] already matches host \"*\" and path_prefix \"/\""},
    {BASE REGIONS "routes: [{primary: a, match: {path_prefix: api}}]\n",
     "t.yaml:3:44: routes[0].match.path_prefix: ", "must start with '/'"},
    {BASE REGIONS "routes: [{primary: a, match: {path_prefx: /api}}]\n",
     "t.yaml:3:31: routes[0].match.path_prefx: ", "did you mean \"path_prefix\""},
    {BASE REGIONS "routes: [{name: x, primary: a}, {name: x, primary: a}]\n",
     "t.yaml:3:40: routes[1].name: ", "duplicate route name \"x\" (also routes[0])"},
    {BASE REGIONS "routes: [{name: route1, primary: a}, {primary: a, match: {host: b.com}}]\n",
     "t.yaml:3:38: routes[1]: ", "the default name \"route1\" of this route is taken by routes[0]"},
    {BASE REGIONS "routes: [{primary: a}, {name: route0, primary: a, match: {host: b.com}}]\n",
     "t.yaml:3:31: routes[1].name: ", "duplicate route name \"route0\" (also routes[0])"},
    {BASE REGIONS "routes: [{primary: a}, {primary: a, match: {host: \"*\"}}]\n",
     "t.yaml:3:44: routes[1].match: ", "routes[0] already matches"},
    {BASE REGIONS "routes: [{primary: a, failovr: []}]\n",
     "t.yaml:3:23: routes[0].failovr: ", "did you mean \"failover\""},
    {BASE "regions: [{name: a, backends: [127.0.0.1:9001], health: {method: HEAD, "
          "expect_body: ok}}]\n",
     "t.yaml:2:85: regions[0].health.expect_body: ", "a HEAD response has no body"},
    /* admin */
    {BASE REGIONS "admin: {address: 0.0.0.0:9901}\n",
     "t.yaml:3:18: admin.address: ", "is not loopback: set token or token_file"},
    {BASE REGIONS "admin: {address: 10.0.0.1:9901, token: \"\"}\n",
     "t.yaml:3:40: admin.token: ", "the token is empty"},
    {BASE REGIONS "admin: {token: \"a b\"}\n", "t.yaml:3:16: admin.token: ", "visible ASCII"},
    {BASE REGIONS "admin: {token: x, token_file: /nonexistent}\n",
     "t.yaml:3:31: admin.token_file: ", "either token or token_file"},
    {BASE REGIONS "admin: {token_file: /nonexistent/sidestep-token}\n",
     "t.yaml:3:21: admin.token_file: ", "cannot read \"/nonexistent/sidestep-token\""},
    {"listen: [127.0.0.1:9901]\n" REGIONS "admin: {}\n",
     "t.yaml:3:8: admin.address: ", "127.0.0.1:9901 is also listen[0]"},
    {"listen: [\"0.0.0.0:9901\"]\n" REGIONS "admin: {address: 127.0.0.1:9901}\n",
     "t.yaml:3:18: admin.address: ", "127.0.0.1:9901 overlaps listen[0] 0.0.0.0:9901"},
    {BASE REGIONS "admin: {adress: 127.0.0.1:1}\n",
     "t.yaml:3:9: admin.adress: ", "did you mean \"address\""},
    /* limits and timeouts */
    {BASE REGIONS "limits: {body: -1}\n", "t.yaml:3:16: limits.body: ", "negative sizes"},
    {BASE REGIONS "limits: {body: 1.5m}\n", "t.yaml:3:16: limits.body: ", "unknown suffix \".5m\""},
    {BASE REGIONS "limits: {buffer: 64x}\n",
     "t.yaml:3:18: limits.buffer: ", "invalid size \"64x\""},
    {BASE REGIONS "limits: {buffer: 99999999999999999999}\n",
     "t.yaml:3:18: limits.buffer: ", "too large"},
    {BASE REGIONS "limits: {headers: 0}\n",
     "t.yaml:3:19: limits.headers: ", "out of range (1..10000)"},
    {BASE REGIONS "limits: {header_bytes: 4k}\n",
     "t.yaml:3:24: limits.header_bytes: ", "header_field (8k) must not exceed header_bytes (4k)"},
    {BASE REGIONS "limits: {upstream_idle: 2000}\n",
     "t.yaml:3:25: limits.upstream_idle: ", "must not exceed upstream_connections (1024)"},
    {BASE REGIONS "limits: {request_line: 2m}\n",
     "t.yaml:3:24: limits.request_line: ", "out of range (64..1m)"},
    {BASE REGIONS "limits: {bodyy: 1m}\n", "t.yaml:3:10: limits.bodyy: ", "did you mean \"body\""},
    {BASE REGIONS "timeouts: {idle: -1s}\n", "t.yaml:3:18: timeouts.idle: ", "negative durations"},
    {BASE REGIONS "timeouts: {connect: 0}\n",
     "t.yaml:3:21: timeouts.connect: ", "out of range (1ms..24h)"},
    {BASE REGIONS "timeouts: {shutdown: 99999999999999999999s}\n",
     "t.yaml:3:22: timeouts.shutdown: ", "too large"},
    {BASE REGIONS "timeouts: {linger: 1.0005s}\n",
     "t.yaml:3:20: timeouts.linger: ", "not a whole number of milliseconds"},
    /* log */
    {BASE REGIONS "log: {level: verbose}\n",
     "t.yaml:3:14: log.level: ", "expected one of debug, info, warn, error"},
    {BASE REGIONS "log: {format: xml}\n",
     "t.yaml:3:15: log.format: ", "expected one of text, json"},
    {BASE REGIONS "log: {access: \"\"}\n", "t.yaml:3:15: log.access: ", "must not be empty"},
    {BASE REGIONS "log: {access: \"a\\0b\"}\n", "t.yaml:3:15: log.access: ", "NUL byte"},
    /* trusted_proxies */
    {BASE REGIONS "trusted_proxies: [10.1.2.3/8]\n",
     "t.yaml:3:19: trusted_proxies[0]: ", "did you mean 10.0.0.0/8?"},
    {BASE REGIONS "trusted_proxies: [10.0.0.0/33]\n",
     "t.yaml:3:19: trusted_proxies[0]: ", "invalid prefix length \"33\" (0..32)"},
    {BASE REGIONS "trusted_proxies: [\"fd00::1/8\"]\n",
     "t.yaml:3:19: trusted_proxies[0]: ", "did you mean fd00::/8?"},
    {BASE REGIONS "trusted_proxies: [proxy.local]\n",
     "t.yaml:3:19: trusted_proxies[0]: ", "invalid address \"proxy.local\""},
    /* PROXY protocol (issue 16) */
    {"listen:\n  - {address: 127.0.0.1:0, proxy_protocol: true}\n" REGIONS,
     "t.yaml:2:44: listen[0].proxy_protocol_from: ", "required when proxy_protocol is true"},
    {"listen:\n  - {address: 127.0.0.1:0, proxy_protocol_from: [10.0.0.0/8]}\n" REGIONS,
     "t.yaml:2:49: listen[0].proxy_protocol_from: ", "only used when proxy_protocol is true"},
    {"listen:\n  - address: 127.0.0.1:0\n    proxy_protocol: off\n"
     "    proxy_protocol_from: [10.0.0.0/8]\n" REGIONS,
     "t.yaml:4:26: listen[0].proxy_protocol_from: ", "only used when proxy_protocol is true"},
    {"listen:\n  - address: 127.0.0.1:0\n    proxy_protocol: true\n"
     "    proxy_protocol_from: []\n" REGIONS,
     "t.yaml:4:26: listen[0].proxy_protocol_from: ", "needs at least 1 entry"},
    {"listen:\n  - address: 127.0.0.1:0\n    proxy_protocol: true\n"
     "    proxy_protocol_from:\n" REGIONS,
     "t.yaml:4:25: listen[0].proxy_protocol_from: ", "needs at least 1 entry"},
    {"listen:\n  - address: 127.0.0.1:0\n    proxy_protocol: true\n"
     "    proxy_protocol_from: 10.0.0.0/8\n" REGIONS,
     "t.yaml:4:26: listen[0].proxy_protocol_from: ", "expected a list"},
    {"listen:\n  - address: 127.0.0.1:0\n    proxy_protocol: true\n"
     "    proxy_protocol_from: [10.0.0.0/8, 10.1.2.3/8]\n" REGIONS,
     "t.yaml:4:39: listen[0].proxy_protocol_from[1]: ", "did you mean 10.0.0.0/8?"},
    {"listen:\n  - address: 127.0.0.1:0\n    proxy_protocol: true\n"
     "    proxy_protocol_from: [lb.internal]\n" REGIONS,
     "t.yaml:4:27: listen[0].proxy_protocol_from[0]: ", "invalid address \"lb.internal\""},
    {"listen:\n  - address: 127.0.0.1:0\n    proxy_protocol: maybe\n" REGIONS,
     "t.yaml:3:21: listen[0].proxy_protocol: ", "invalid boolean \"maybe\""},
    {"listen:\n  - address: 127.0.0.1:0\n    proxy_protocl: true\n" REGIONS,
     "t.yaml:3:5: listen[0].proxy_protocl: ", "(did you mean \"proxy_protocol\"?)"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:9001], send_proxy_protocol: v3}]\n",
     "t.yaml:2:70: regions[0].send_proxy_protocol: ", "expected one of off, v1, v2"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:9001], send_proxy_protocol: true}]\n",
     "t.yaml:2:70: regions[0].send_proxy_protocol: ", "invalid value \"true\""},
    {BASE "regions: [{name: a, backends: [127.0.0.1:9001], send_proxy_protocol: V2}]\n",
     "t.yaml:2:70: regions[0].send_proxy_protocol: ", "(did you mean \"v2\"?)"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:9001], send_proxy_protocol: [v1]}]\n",
     "t.yaml:2:70: regions[0].send_proxy_protocol: ", "found a list"},
    /* TLS: the listener's tls block (certificate files are read by src/tls, not here) */
    {TLS_LISTEN "    tls: [a]\n" REGIONS,
     "t.yaml:3:10: listen[0].tls: ", "expected a mapping with certificates"},
    {TLS_LISTEN "    tls: {}\n" REGIONS,
     "t.yaml:3:10: listen[0].tls.certificates: ", "required: at least one {cert: FILE, key: FILE}"},
    {TLS_LISTEN "    tls:\n      certificates: []\n" REGIONS,
     "t.yaml:4:21: listen[0].tls.certificates: ", "needs at least 1 entry"},
    {TLS_LISTEN "    tls:\n      certificates: [a.pem]\n" REGIONS,
     "t.yaml:4:22: listen[0].tls.certificates[0]: ", "expected {cert: FILE, key: FILE}"},
    {TLS_LISTEN "    tls:\n      certificates: [{cert: a.pem}]\n" REGIONS,
     "t.yaml:4:22: listen[0].tls.certificates[0].key: ", "required: the PEM file with the private"},
    {TLS_LISTEN "    tls:\n      certificates: [{cert: \"\", key: k}]\n" REGIONS,
     "t.yaml:4:29: listen[0].tls.certificates[0].cert: ", "must not be empty"},
    {TLS_LISTEN "    tls:\n      certificates: [{cert: a, key: b, chain: c}]\n" REGIONS,
     "t.yaml:4:40: listen[0].tls.certificates[0].chain: ", "unknown key \"chain\""},
    {TLS_HEAD "      min_version: \"1.1\"\n" REGIONS, "t.yaml:5:20: listen[0].tls.min_version: ",
     "TLS 1.1 is refused: TLS 1.0 and 1.1 are deprecated"},
    {TLS_HEAD "      min_version: 1.4\n" REGIONS,
     "t.yaml:5:20: listen[0].tls.min_version: ", "invalid min_version \"1.4\""},
    {TLS_HEAD "      ciphers: old\n" REGIONS,
     "t.yaml:5:16: listen[0].tls.ciphers: ", "the Mozilla \"old\" profile exists for TLS 1.0"},
    {TLS_HEAD "      ciphers: \"a\\tb\"\n" REGIONS,
     "t.yaml:5:16: listen[0].tls.ciphers: ", "printable ASCII"},
    {TLS_HEAD "      ciphers: modern\n      min_version: \"1.2\"\n" REGIONS,
     "t.yaml:6:20: listen[0].tls.min_version: ", "ciphers: modern is TLS 1.3 only"},
    {TLS_HEAD "      session_tickets: false\n      ticket_key_file: /k\n" REGIONS,
     "t.yaml:6:24: listen[0].tls.ticket_key_file: ", "needs session_tickets: true"},
    {TLS_HEAD "      session_tickets: maybe\n" REGIONS,
     "t.yaml:5:24: listen[0].tls.session_tickets: ", "invalid boolean"},
    {TLS_HEAD "      ciphrs: x\n" REGIONS,
     "t.yaml:5:7: listen[0].tls.ciphrs: ", "did you mean \"ciphers\""},
    {"listen:\n  - address: 127.0.0.1:443\n    tls: {certificates: [{cert: a, key: b}]}\n"
     "    https_redirect: true\n" REGIONS,
     "t.yaml:4:21: listen[0].https_redirect: ", "serves TLS on port 443 itself"},
    /* hsts */
    {TLS_LISTEN "    hsts: true\n" REGIONS, "t.yaml:3:11: listen[0].hsts: ", "expected a mapping"},
    {TLS_LISTEN "    hsts: {preload: true}\n" REGIONS,
     "t.yaml:3:21: listen[0].hsts.preload: ", "requires include_subdomains: true and max_age"},
    {TLS_LISTEN "    hsts: {max_age: 1, include_subdomains: true, preload: true}\n" REGIONS,
     "t.yaml:3:59: listen[0].hsts.preload: ", "at least 31536000 (one year)"},
    {TLS_LISTEN "    hsts: {max_age: -1}\n" REGIONS,
     "t.yaml:3:21: listen[0].hsts.max_age: ", "out of range (0..2147483647)"},
    {TLS_LISTEN "    hsts: {max_age: 1, subdomains: true}\n" REGIONS,
     "t.yaml:3:24: listen[0].hsts.subdomains: ", "unknown key"},
    /* regions[].tls */
    {BASE "regions: [{name: a, backends: [127.0.0.1:1], tls: {server_name: \"a b\"}}]\n",
     "t.yaml:2:65: regions[0].tls.server_name: ", "invalid server_name \"a b\""},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1], tls: {server_name: -a.b}}]\n",
     "t.yaml:2:65: regions[0].tls.server_name: ", "expected a host name"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1], tls: {verfy: false}}]\n",
     "t.yaml:2:52: regions[0].tls.verfy: ", "did you mean \"verify\""},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1], tls: [x]}]\n",
     "t.yaml:2:51: regions[0].tls: ", "expected a mapping: {ca: FILE"},
    {BASE "regions: [{name: a, backends: [127.0.0.1:1], tls: {ca: \"\"}}]\n",
     "t.yaml:2:56: regions[0].tls.ca: ", "must not be empty"},
    {BASE REGIONS "timeouts: {tls_handshake: 0}\n",
     "t.yaml:3:27: timeouts.tls_handshake: ", "out of range (1ms..24h)"},
};

static void test_bad_configs(void **state)
{
    size_t failures = 0;

    (void)state;
    for (size_t i = 0; i < COUNT_OF(bad_cases); i++) {
        const bad_case_t *bc = &bad_cases[i];
        sst_config_t *sentinel = (sst_config_t *)(uintptr_t)0x1, *cfg = sentinel;
        sst_diag_t d;
        char buf[600];
        int rc = load(bc->yaml, &cfg, &d);
        sst_diag_format(&d, buf, sizeof buf);
        if (rc != SST_EINVAL || cfg != sentinel ||
            strncmp(buf, bc->where, strlen(bc->where)) != 0 || strstr(d.msg, bc->msg) == NULL) {
            print_error("case %zu: rc %d\n  yaml: %s\n  got:  %s\n  want: %s... %s\n", i, rc,
                        bc->yaml, buf, bc->where, bc->msg);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* A suggestion only when a known key is close; never a guess for something unrelated. */
static void test_unknown_key_suggestion(void **state)
{
    sst_config_t *cfg = NULL;
    sst_diag_t d;

    (void)state;
    assert_int_equal(load(BASE REGIONS "zzzzzzzz: 1\n", &cfg, &d), SST_EINVAL);
    assert_string_equal(d.key, "zzzzzzzz");
    assert_string_equal(d.msg, "unknown key \"zzzzzzzz\"");
    assert_int_equal(load(BASE REGIONS "lg: 1\n", &cfg, &d), SST_EINVAL);
    assert_string_equal(d.msg, "unknown key \"lg\" (did you mean \"log\"?)");
    /* "go" is two edits from "get": as many as it has letters, so no guess */
    assert_int_equal(
        load("listen: [{address: 127.0.0.1:0, https_redirect: {go: 301}}]\n" REGIONS, &cfg, &d),
        SST_EINVAL);
    assert_string_equal(d.key, "listen[0].https_redirect.go");
    assert_string_equal(d.msg, "unknown key \"go\"");
    assert_int_equal(load(BASE REGIONS "Workers: 2\n", &cfg, &d), SST_EINVAL);
    assert_string_equal(d.msg, "unknown key \"Workers\" (did you mean \"workers\"?)");
    assert_int_equal(load(BASE REGIONS "timeouts: {conect: 1s}\n", &cfg, &d), SST_EINVAL);
    assert_string_equal(d.msg, "unknown key \"conect\" (did you mean \"connect\"?)");

    assert_int_equal(sst__edit_distance(SST_STR_LIT("interval"), SST_STR_LIT("intreval")), 1);
    assert_int_equal(sst__edit_distance(SST_STR_LIT(""), SST_STR_LIT("abc")), 3);
    assert_int_equal(sst__edit_distance(SST_STR_LIT("kitten"), SST_STR_LIT("sitting")), 3);
    assert_int_equal(sst__edit_distance(SST_STR_LIT("same"), SST_STR_LIT("same")), 0);
}

/* Large counts are generated rather than written out. */
static void test_table_bounds(void **state)
{
    size_t cap = 64 * 1024, o;
    char *y = malloc(cap);
    sst_config_t *cfg = NULL;
    sst_diag_t d;

    (void)state;
    assert_non_null(y);
    /* 33 regions */
    o = (size_t)snprintf(y, cap, BASE "regions:\n");
    for (int i = 0; i < 33; i++)
        o += (size_t)snprintf(y + o, cap - o,
                              "  - {name: r%d, url: http://r%d, backends: [127.0.0.1:%d]}\n", i, i,
                              1000 + i);
    assert_int_equal(load(y, &cfg, &d), SST_EINVAL);
    assert_string_equal(d.key, "regions");
    assert_non_null(strstr(d.msg, "at most 32 entries"));

    /* 32 regions of 8 backends load; one more backend does not */
    o = (size_t)snprintf(y, cap, BASE "regions:\n");
    for (int i = 0; i < 32; i++) {
        o += (size_t)snprintf(y + o, cap - o, "  - name: r%d\n    url: http://r%d\n    backends: [",
                              i, i);
        for (int b = 0; b < 8; b++)
            o +=
                (size_t)snprintf(y + o, cap - o, "%s127.0.0.1:%d", b ? ", " : "", 2000 + i * 8 + b);
        o += (size_t)snprintf(y + o, cap - o, "]\n");
    }
    cfg = load_ok(y);
    assert_int_equal(cfg->n_regions, 32);
    assert_int_equal(cfg->n_backends, SST_MAX_BACKENDS);
    assert_int_equal(cfg->regions[31].first_backend, 248);
    assert_int_equal(cfg->routes[0].n_failover, 31);
    sst_config_unref(cfg);
    cfg = NULL;
    snprintf(y + o - 2, cap - o + 2, ", 127.0.0.1:1]\n");
    assert_int_equal(load(y, &cfg, &d), SST_EINVAL);
    assert_string_equal(d.key, "regions[31].backends");
    assert_non_null(strstr(d.msg, "more than 256 backends"));

    /* 17 listeners */
    o = (size_t)snprintf(y, cap, REGIONS "listen:\n");
    for (int i = 0; i < 17; i++)
        o += (size_t)snprintf(y + o, cap - o, "  - 127.0.0.1:%d\n", 8000 + i);
    assert_int_equal(load(y, &cfg, &d), SST_EINVAL);
    assert_string_equal(d.key, "listen");
    assert_non_null(strstr(d.msg, "at most 16 entries"));
    free(y);
}

/* --- value parsers ----------------------------------------------------------------------- */

typedef struct num_case_s {
    const char *text;
    int rc;
    uint64_t value;
} num_case_t;

static void test_durations(void **state)
{
    static const num_case_t cases[] = {
        {"250ms", 0, 250},
        {"1s", 0, 1000},
        {"1.5s", 0, 1500},
        {"0.5s", 0, 500},
        {"1.250s", 0, 1250},
        {"2m", 0, 120000},
        {"1.5m", 0, 90000},
        {"1h", 0, 3600000},
        {"0", 0, 0},
        {"0s", 0, 0},
        {"1500", 0, 1500},
        {"007ms", 0, 7},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", SST_ERANGE, 0},
        {"5124095576030431h", SST_ERANGE, 0}, /* just past UINT64_MAX ms */
        {"5124095576030431.5h", SST_ERANGE, 0},
        {"1.0005s", SST_EINVAL, 0}, /* below millisecond resolution */
        {"1.5ms", SST_EINVAL, 0},
        {"1.1234567s", SST_EINVAL, 0},
        {"-1s", SST_EINVAL, 0},
        {"-0", SST_EINVAL, 0},
        {"+1s", SST_EINVAL, 0},
        {"10x", SST_EINVAL, 0},
        {"1S", SST_EINVAL, 0},
        {"1 s", SST_EINVAL, 0},
        {"1s ", SST_EINVAL, 0},
        {"1h30m", SST_EINVAL, 0},
        {".5s", SST_EINVAL, 0},
        {"1.s", SST_EINVAL, 0},
        {"s", SST_EINVAL, 0},
        {"", SST_EINVAL, 0},
    };
    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        uint64_t v = 12345;
        int rc = sst_parse_duration_ms(cases[i].text, strlen(cases[i].text), &v);
        if (rc != cases[i].rc || (rc == 0 && v != cases[i].value) || (rc != 0 && v != 12345))
            fail_msg("duration \"%s\": rc %d value %llu", cases[i].text, rc, (unsigned long long)v);
    }
    /* length-delimited: the bytes after len are not read */
    uint64_t v;
    assert_int_equal(sst_parse_duration_ms("2sjunk", 2, &v), 0);
    assert_int_equal(v, 2000);
}

static void test_sizes(void **state)
{
    static const num_case_t cases[] = {
        {"16k", 0, 16384},
        {"16K", 0, 16384},
        {"16kb", 0, 16384},
        {"16KB", 0, 16384},
        {"10m", 0, 10485760},
        {"1g", 0, 1073741824},
        {"1G", 0, 1073741824},
        {"512", 0, 512},
        {"512b", 0, 512},
        {"0", 0, 0},
        {"17179869183g", 0, 17179869183ull << 30},
        {"17179869184g", SST_ERANGE, 0}, /* 2^34 g = 2^64 */
        {"18446744073709551616", SST_ERANGE, 0},
        {"-1", SST_EINVAL, 0},
        {"1.5k", SST_EINVAL, 0},
        {"10x", SST_EINVAL, 0},
        {"16kk", SST_EINVAL, 0},
        {"16bk", SST_EINVAL, 0},
        {"1t", SST_EINVAL, 0},
        {"k", SST_EINVAL, 0},
        {"", SST_EINVAL, 0},
        {" 1k", SST_EINVAL, 0},
    };
    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        uint64_t v = 12345;
        int rc = sst_parse_size(cases[i].text, strlen(cases[i].text), &v);
        if (rc != cases[i].rc || (rc == 0 && v != cases[i].value) || (rc != 0 && v != 12345))
            fail_msg("size \"%s\": rc %d value %llu", cases[i].text, rc, (unsigned long long)v);
    }
}

typedef struct addr_case_s {
    const char *text;
    bool allow_port0, resolve;
    int rc;
    const char *canon; /* expected text */
    int family;        /* expected sa family, 0 for unresolved */
    bool loopback;
} addr_case_t;

static void test_addrs(void **state)
{
    static const addr_case_t cases[] = {
        {"127.0.0.1:9001", false, false, 0, "127.0.0.1:9001", AF_INET, true},
        {"127.1.2.3:80", false, true, 0, "127.1.2.3:80", AF_INET, true},
        {"10.0.0.1:80", false, true, 0, "10.0.0.1:80", AF_INET, false},
        {"0.0.0.0:8080", true, true, 0, "0.0.0.0:8080", AF_INET, false},
        {"127.0.0.1:09001", false, false, 0, "127.0.0.1:9001", AF_INET, true},
        {"[::1]:9001", false, false, 0, "[::1]:9001", AF_INET6, true},
        {"[::]:80", true, true, 0, "[::]:80", AF_INET6, false},
        {"[::ffff:127.0.0.1]:80", false, true, 0, "[::ffff:127.0.0.1]:80", AF_INET6, true},
        {"[2001:db8::2]:443", false, true, 0, "[2001:db8::2]:443", AF_INET6, false},
        {"backend.local:80", false, false, 0, "backend.local:80", 0, false},
        {"localhost:8080", false, true, 0, "localhost:8080", -1, true},
        {"127.0.0.1:0", true, true, 0, "127.0.0.1:0", AF_INET, true},
        {"127.0.0.1:65535", false, true, 0, "127.0.0.1:65535", AF_INET, true},
        {"127.0.0.1:0", false, true, SST_EINVAL, NULL, 0, false},
        {"127.0.0.1:65536", false, true, SST_EINVAL, NULL, 0, false},
        {"127.0.0.1:-1", false, true, SST_EINVAL, NULL, 0, false},
        {"127.0.0.1:", false, true, SST_EINVAL, NULL, 0, false},
        {"127.0.0.1", false, true, SST_EINVAL, NULL, 0, false},
        {":80", false, true, SST_EINVAL, NULL, 0, false},
        {"::1:80", false, true, SST_EINVAL, NULL, 0, false},
        {"[::1]", false, true, SST_EINVAL, NULL, 0, false},
        {"[::1:80", false, true, SST_EINVAL, NULL, 0, false},
        {"[::1]80", false, true, SST_EINVAL, NULL, 0, false},
        {"[zz::1]:80", false, true, SST_EINVAL, NULL, 0, false},
        {"[127.0.0.1]:80", false, true, SST_EINVAL, NULL, 0, false},
        {"256.1.1.1:80", false, true, SST_EINVAL, NULL, 0, false},
        {"1.2.3:80", false, false, SST_EINVAL, NULL, 0, false},
        {"host name:80", false, false, SST_EINVAL, NULL, 0, false},
        {"a/b:80", false, false, SST_EINVAL, NULL, 0, false},
        {"", false, false, SST_EINVAL, NULL, 0, false},
    };
    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        const addr_case_t *ac = &cases[i];
        sst_addr_t a;
        memset(&a, 0x5a, sizeof a);
        int rc = sst_parse_addr(ac->text, strlen(ac->text), ac->allow_port0, ac->resolve, &a);
        if (rc != ac->rc)
            fail_msg("addr \"%s\": rc %d, want %d", ac->text, rc, ac->rc);
        if (rc != 0)
            continue;
        if (strcmp(a.text, ac->canon) != 0)
            fail_msg("addr \"%s\": text \"%s\"", ac->text, a.text);
        if (ac->family >= 0 && a.sa.ss_family != ac->family)
            fail_msg("addr \"%s\": family %d", ac->text, a.sa.ss_family);
        if (ac->family == 0 && a.salen != 0)
            fail_msg("addr \"%s\": resolved without resolve", ac->text);
        if (sst_addr_is_loopback(&a) != ac->loopback)
            fail_msg("addr \"%s\": loopback %d", ac->text, !ac->loopback);
    }
    sst_addr_t a;
    assert_int_equal(sst_parse_addr("[::1]:80", 8, false, false, &a), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 80);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&a.sa)->sin6_port), 80);
    assert_int_equal(a.salen, sizeof(struct sockaddr_in6));
    assert_false(sst_addr_is_loopback(NULL));
}

static void make_v4(struct sockaddr_storage *ss, const char *ip)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof *ss);
    sin->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
}

static void make_v6(struct sockaddr_storage *ss, const char *ip)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    sin6->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
}

static void test_trusted(void **state)
{
    static const struct {
        const char *ip;
        bool trusted;
    } cases[] = {
        {"10.1.2.3", true},         {"10.255.255.255", true}, {"11.0.0.1", false},
        {"127.0.0.1", true},        {"127.0.0.2", false},     {"192.168.1.255", true},
        {"192.168.2.1", false},     {"172.16.0.1", true},     {"172.32.0.1", false},
        {"fd12::1", true},          {"fe80::1", false},       {"::ffff:10.9.9.9", true},
        {"::ffff:11.0.0.1", false}, {"2001:db8::1", true},    {"2001:db8:0:1::1", false},
    };
    sst_config_t *cfg = load_ok(BASE REGIONS "trusted_proxies: [10.0.0.0/8, 127.0.0.1, "
                                             "192.168.1.0/24, 172.16.0.0/12, \"fd00::/8\", "
                                             "\"2001:db8::/64\"]\n");
    struct sockaddr_storage ss;

    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        if (strchr(cases[i].ip, ':'))
            make_v6(&ss, cases[i].ip);
        else
            make_v4(&ss, cases[i].ip);
        if (sst_config_is_trusted(cfg, (struct sockaddr *)&ss) != cases[i].trusted)
            fail_msg("trusted(%s) != %d", cases[i].ip, cases[i].trusted);
    }
    assert_false(sst_config_is_trusted(cfg, NULL));
    sst_config_unref(cfg);

    /* /0 trusts every address of its family, and only that family */
    cfg = load_ok(BASE REGIONS "trusted_proxies: [0.0.0.0/0]\n");
    make_v4(&ss, "203.0.113.9");
    assert_true(sst_config_is_trusted(cfg, (struct sockaddr *)&ss));
    make_v6(&ss, "2001:db8::1");
    assert_false(sst_config_is_trusted(cfg, (struct sockaddr *)&ss));
    sst_config_unref(cfg);
}

/* --- PROXY protocol keys (issue 16) ------------------------------------------------------ */

static void test_proxy_protocol(void **state)
{
    static const struct {
        const char *ip;
        bool allowed; /* on listen[1] */
    } cases[] = {
        {"10.1.2.3", true},        {"11.0.0.1", false},        {"127.0.0.1", true},
        {"127.0.0.2", false},      {"fd12::1", true},          {"fe80::1", false},
        {"::ffff:10.9.9.9", true}, {"::ffff:11.0.0.1", false}, {"::1", false},
    };
    sst_config_t *cfg = load_ok("listen:\n"
                                "  - 127.0.0.1:0\n"
                                "  - address: 127.0.0.1:0\n"
                                "    proxy_protocol: true\n"
                                "    proxy_protocol_from: [10.0.0.0/8, \"fd00::/8\", 127.0.0.1]\n"
                                "  - address: 127.0.0.1:0\n"
                                "    proxy_protocol: false\n"
                                "regions:\n"
                                "  - {name: a, backends: [127.0.0.1:9001]}\n"
                                "  - {name: b, url: http://b.example, backends: [127.0.0.1:9002], "
                                "send_proxy_protocol: v1}\n"
                                "  - {name: c, url: http://c.example, backends: [127.0.0.1:9003], "
                                "send_proxy_protocol: v2}\n"
                                "  - {name: d, url: http://d.example, backends: [127.0.0.1:9004], "
                                "send_proxy_protocol: off}\n"
                                "trusted_proxies: [192.168.0.0/16]\n");
    const sst_listener_cfg_t *l = &cfg->listeners[1];
    struct sockaddr_storage ss;

    (void)state;
    assert_int_equal(cfg->n_listeners, 3);
    assert_false(cfg->listeners[0].proxy_protocol);
    assert_int_equal(cfg->listeners[0].n_proxy_protocol_from, 0);
    assert_true(l->proxy_protocol);
    assert_int_equal(l->n_proxy_protocol_from, 3);
    assert_int_equal(l->proxy_protocol_from[0].prefix, 8);
    assert_int_equal(l->proxy_protocol_from[1].net.ss_family, AF_INET6);
    assert_int_equal(l->proxy_protocol_from[2].prefix, 32);
    assert_false(cfg->listeners[2].proxy_protocol);
    assert_int_equal(cfg->regions[0].send_proxy_protocol, SST_SEND_PROXY_OFF);
    assert_int_equal(cfg->regions[1].send_proxy_protocol, SST_SEND_PROXY_V1);
    assert_int_equal(cfg->regions[2].send_proxy_protocol, SST_SEND_PROXY_V2);
    assert_int_equal(cfg->regions[3].send_proxy_protocol, SST_SEND_PROXY_OFF);
    /* the values are the protocol versions */
    assert_int_equal(SST_SEND_PROXY_V1, 1);
    assert_int_equal(SST_SEND_PROXY_V2, 2);

    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        if (strchr(cases[i].ip, ':'))
            make_v6(&ss, cases[i].ip);
        else
            make_v4(&ss, cases[i].ip);
        if (sst_config_proxy_allowed(l, (struct sockaddr *)&ss) != cases[i].allowed)
            fail_msg("proxy_allowed(%s) != %d", cases[i].ip, cases[i].allowed);
        /* a listener without proxy_protocol allows nobody */
        assert_false(sst_config_proxy_allowed(&cfg->listeners[0], (struct sockaddr *)&ss));
        assert_false(sst_config_proxy_allowed(&cfg->listeners[2], (struct sockaddr *)&ss));
        /* the lists are separate: trusted_proxies does not open the listener, nor the reverse */
        assert_int_equal(sst_cidr_match(l->proxy_protocol_from, l->n_proxy_protocol_from,
                                        (struct sockaddr *)&ss),
                         cases[i].allowed);
        assert_false(sst_config_is_trusted(cfg, (struct sockaddr *)&ss));
    }
    make_v4(&ss, "192.168.1.1");
    assert_true(sst_config_is_trusted(cfg, (struct sockaddr *)&ss));
    assert_false(sst_config_proxy_allowed(l, (struct sockaddr *)&ss));
    assert_false(sst_config_proxy_allowed(l, NULL));
    assert_false(sst_config_proxy_allowed(NULL, (struct sockaddr *)&ss));
    ss.ss_family = AF_UNIX;
    assert_false(sst_config_proxy_allowed(l, (struct sockaddr *)&ss));
    assert_false(sst_cidr_match(NULL, 0, (struct sockaddr *)&ss));
    sst_config_unref(cfg);
}

/* proxy_protocol_from holds at most 32 networks, like trusted_proxies. */
static void test_proxy_protocol_bounds(void **state)
{
    char yaml[2048];
    size_t o;
    sst_config_t *cfg = NULL;
    sst_diag_t d;

    (void)state;
    for (int count = 32; count <= 33; count++) {
        o = (size_t)snprintf(yaml, sizeof yaml,
                             "listen:\n  - address: 127.0.0.1:0\n    proxy_protocol: true\n"
                             "    proxy_protocol_from: [");
        for (int i = 0; i < count; i++)
            o += (size_t)snprintf(yaml + o, sizeof yaml - o, "%s10.0.%d.0/24", i ? ", " : "", i);
        snprintf(yaml + o, sizeof yaml - o, "]\n" REGIONS);
        int rc = load(yaml, &cfg, &d);
        if (count == 32) {
            assert_int_equal(rc, 0);
            assert_int_equal(cfg->listeners[0].n_proxy_protocol_from, 32);
            sst_config_unref(cfg);
            cfg = NULL;
        } else {
            assert_int_equal(rc, SST_EINVAL);
            assert_string_equal(d.key, "listen[0].proxy_protocol_from");
            assert_non_null(strstr(d.msg, "at most 32 entries"));
        }
    }
}

/* --- admin token rule -------------------------------------------------------------------- */

static void test_admin_token(void **state)
{
    char path[] = "/tmp/sst-token-XXXXXX", yaml[512];
    sst_config_t *cfg;
    sst_diag_t d;
    int fd;

    (void)state;
    cfg = load_ok(BASE REGIONS "admin: {}\n");
    assert_true(cfg->admin.enabled);
    assert_string_equal(cfg->admin.addr.text, "127.0.0.1:9901");
    assert_null(cfg->admin.token);
    sst_config_unref(cfg);

    cfg = load_ok(BASE REGIONS "admin:\n");
    assert_true(cfg->admin.enabled);
    sst_config_unref(cfg);

    cfg = load_ok(BASE REGIONS "admin: {address: \"[::1]:0\"}\n");
    assert_string_equal(cfg->admin.addr.text, "[::1]:0");
    sst_config_unref(cfg);

    cfg = load_ok(BASE REGIONS "admin: {address: 0.0.0.0:9901, token: \"s3cret\"}\n");
    assert_string_equal(cfg->admin.token, "s3cret");
    sst_config_unref(cfg);

    /* token_file: read at load, trailing newline stripped */
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "file-token\r\n\n", 13), 13);
    close(fd);
    snprintf(yaml, sizeof yaml, BASE REGIONS "admin: {address: 0.0.0.0:9901, token_file: %s}\n",
             path);
    cfg = load_ok(yaml);
    assert_string_equal(cfg->admin.token, "file-token");
    sst_config_unref(cfg);

    /* an empty token file is no token */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    cfg = NULL;
    assert_int_equal(load(yaml, &cfg, &d), SST_EINVAL);
    assert_null(cfg);
    assert_string_equal(d.key, "admin.token_file");
    assert_string_equal(d.msg, "the token is empty");
    unlink(path);
}

/* --- fleet (issue 13) -------------------------------------------------------------------- */

#define ADMIN "admin: {address: 127.0.0.1:9901}\n"
#define ETCD  "  etcd: {endpoints: [\"http://127.0.0.1:2379\"]}\n"

static void test_fleet(void **state)
{
    sst_config_t *cfg;
    char host[256];

    (void)state;
    cfg = load_ok(BASE REGIONS);
    assert_false(cfg->fleet.enabled); /* single-instance mode */
    sst_config_unref(cfg);

    /* defaults: the host name, admin.address, 2s, 10s, quorum off, 5s */
    cfg = load_ok(BASE REGIONS ADMIN "fleet:\n  name: edge-prod\n" ETCD);
    assert_true(cfg->fleet.enabled);
    assert_string_equal(cfg->fleet.name, "edge-prod");
    assert_int_equal(gethostname(host, sizeof host), 0);
    assert_string_equal(cfg->fleet.instance, host);
    assert_string_equal(cfg->fleet.advertise_admin.text, "127.0.0.1:9901");
    assert_true(cfg->fleet.advertise_admin_default);
    assert_int_equal(cfg->fleet.n_endpoints, 1);
    assert_string_equal(cfg->fleet.endpoints[0].text, "127.0.0.1:2379");
    assert_int_equal(cfg->fleet.endpoints[0].sa.ss_family, AF_INET);
    assert_int_equal(cfg->fleet.dial_timeout_ms, 2000);
    assert_int_equal(cfg->fleet.lease_ttl_ms, 10000);
    assert_int_equal(cfg->fleet.health_quorum, SST_QUORUM_CFG_OFF);
    assert_int_equal(cfg->fleet.startup_wait_ms, 5000);
    sst_config_unref(cfg);

    /* every key, as issue 13 writes them */
    cfg = load_ok(BASE REGIONS "admin: {address: 0.0.0.0:9901, token: t}\n"
                               "fleet:\n"
                               "  name: edge-prod\n"
                               "  instance: lb-1\n"
                               "  advertise_admin: 10.0.0.5:9901\n"
                               "  etcd:\n"
                               "    endpoints: [\"http://127.0.0.1:2379\", \"127.0.0.2:2379/\"]\n"
                               "    dial_timeout: 500ms\n"
                               "    lease_ttl: 7s\n"
                               "  health_quorum: majority\n"
                               "  startup_wait: 0s\n");
    assert_string_equal(cfg->fleet.instance, "lb-1");
    assert_string_equal(cfg->fleet.advertise_admin.text, "10.0.0.5:9901");
    assert_false(cfg->fleet.advertise_admin_default);
    assert_int_equal(cfg->fleet.n_endpoints, 2);
    assert_string_equal(cfg->fleet.endpoints[1].text, "127.0.0.2:2379");
    assert_int_equal(cfg->fleet.dial_timeout_ms, 500);
    assert_int_equal(cfg->fleet.lease_ttl_ms, 7000);
    assert_int_equal(cfg->fleet.health_quorum, SST_QUORUM_CFG_MAJORITY);
    assert_int_equal(cfg->fleet.startup_wait_ms, 0);
    sst_config_unref(cfg);

    cfg = load_ok(BASE REGIONS ADMIN "fleet:\n  name: f\n  instance: i\n  health_quorum: 3\n" ETCD);
    assert_int_equal(cfg->fleet.health_quorum, SST_QUORUM_CFG_COUNT);
    assert_int_equal(cfg->fleet.health_quorum_count, 3);
    sst_config_unref(cfg);

    /* admin.address with port 0: the server advertises the port it binds */
    cfg = load_ok(BASE REGIONS "admin: {address: 127.0.0.1:0}\nfleet:\n  name: f\n" ETCD);
    assert_true(cfg->fleet.advertise_admin_default);
    assert_int_equal(cfg->fleet.advertise_admin.port, 0);
    sst_config_unref(cfg);

    /* the endpoint parser the etcd client shares */
    sst_addr_t a;
    assert_int_equal(sst_parse_endpoint("http://127.0.0.1:2379/", 22, false, &a), 0);
    assert_string_equal(a.text, "127.0.0.1:2379");
    assert_int_equal(sst_parse_endpoint("https://127.0.0.1:2379", 22, false, &a), SST_EINVAL);
    assert_int_equal(sst_parse_endpoint("http://127.0.0.1:2379/v3", 24, false, &a), SST_EINVAL);
    assert_int_equal(sst_parse_endpoint("http://127.0.0.1", 16, false, &a), SST_EINVAL);
    assert_true(sst_config_fleet_name_ok("lb-1.example.com", 16));
    assert_false(sst_config_fleet_name_ok("-lb", 3));
    assert_false(sst_config_fleet_name_ok("lb/1", 4));
    assert_false(sst_config_fleet_name_ok("", 0));
}

static const bad_case_t fleet_bad_cases[] = {
    {BASE REGIONS "fleet:\n  name: f\n" ETCD,
     "t.yaml:4:3: fleet: ", "fleet mode needs the admin API"},
    {BASE REGIONS ADMIN "fleet:\n" ETCD, "t.yaml:5:3: fleet.name: ", "required"},
    {BASE REGIONS ADMIN "fleet:\n  name: -edge\n" ETCD,
     "t.yaml:5:9: fleet.name: ", "invalid fleet name \"-edge\""},
    {BASE REGIONS ADMIN "fleet:\n  name: \"a/b\"\n" ETCD,
     "t.yaml:5:9: fleet.name: ", "part of etcd keys"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n  instance: "
                        "a123456789012345678901234567890123456789012345678901234567890123\n" ETCD,
     "t.yaml:6:13: fleet.instance: ", "invalid instance name"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n  instnce: x\n" ETCD,
     "t.yaml:6:3: fleet.instnce: ", "did you mean \"instance\""},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n", "t.yaml:5:3: fleet.etcd: ", "required"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n  etcd: {dial_timeout: 1s}\n",
     "t.yaml:6:9: fleet.etcd.endpoints: ", "required"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n  etcd: {endpoints: []}\n",
     "t.yaml:6:21: fleet.etcd.endpoints: ", "needs at least 1 entry"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n  etcd: {endpoints: [\"https://e:2379\"]}\n",
     "t.yaml:6:22: fleet.etcd.endpoints[0]: ", "no TLS to etcd"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n  etcd: {endpoints: [\"http://127.0.0.1:2379/v3\"]}\n",
     "t.yaml:6:22: fleet.etcd.endpoints[0]: ", "expected http://host:port"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n  etcd: {endpoints: [\"http://127.0.0.1\"]}\n",
     "t.yaml:6:22: fleet.etcd.endpoints[0]: ", "missing :port"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n"
                        "  etcd: {endpoints: [127.0.0.1:2379, \"http://127.0.0.1:2379\"]}\n",
     "t.yaml:6:38: fleet.etcd.endpoints[1]: ", "already listed as endpoints[0]"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n"
                        "  etcd: {endpoints: [127.0.0.1:2379], lease_ttl: 2s}\n",
     "t.yaml:6:50: fleet.etcd.lease_ttl: ", "below etcd's minimum lease TTL"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n"
                        "  etcd: {endpoints: [127.0.0.1:2379], lease_ttl: 5500ms}\n",
     "t.yaml:6:50: fleet.etcd.lease_ttl: ", "not a whole number of seconds"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n"
                        "  etcd: {endpoints: [127.0.0.1:2379], lease_ttl: 11m}\n",
     "t.yaml:6:50: fleet.etcd.lease_ttl: ", "out of range (5s..10m)"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n"
                        "  etcd: {endpoints: [127.0.0.1:2379], dial_timeout: 0}\n",
     "t.yaml:6:53: fleet.etcd.dial_timeout: ", "out of range (10ms..1m)"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n" ETCD "  health_quorum: most\n",
     "t.yaml:7:18: fleet.health_quorum: ", "expected off, majority or a number"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n" ETCD "  health_quorum: 0\n",
     "t.yaml:7:18: fleet.health_quorum: ", "out of range (1..256 instances)"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n" ETCD "  startup_wait: 11m\n",
     "t.yaml:7:17: fleet.startup_wait: ", "out of range (0ms..10m)"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n  advertise_admin: 0.0.0.0:9901\n" ETCD,
     "t.yaml:6:20: fleet.advertise_admin: ", "wildcard address"},
    {BASE REGIONS ADMIN "fleet:\n  name: f\n  advertise_admin: 10.0.0.5\n" ETCD,
     "t.yaml:6:20: fleet.advertise_admin: ", "missing :port"},
    {BASE REGIONS "admin: {address: 0.0.0.0:9901, token: t}\nfleet:\n  name: f\n" ETCD,
     "t.yaml:5:3: fleet.advertise_admin: ", "set fleet.advertise_admin"},
    {BASE REGIONS ADMIN "fleet: [f]\n", "t.yaml:4:8: fleet: ", "expected a mapping"},
};

static void test_fleet_bad(void **state)
{
    size_t failures = 0;

    (void)state;
    for (size_t i = 0; i < COUNT_OF(fleet_bad_cases); i++) {
        const bad_case_t *bc = &fleet_bad_cases[i];
        sst_config_t *sentinel = (sst_config_t *)(uintptr_t)0x1, *cfg = sentinel;
        sst_diag_t d;
        char buf[600];
        int rc = load(bc->yaml, &cfg, &d);
        sst_diag_format(&d, buf, sizeof buf);
        if (rc != SST_EINVAL || cfg != sentinel ||
            strncmp(buf, bc->where, strlen(bc->where)) != 0 || strstr(d.msg, bc->msg) == NULL) {
            print_error("fleet case %zu: rc %d\n  yaml: %s\n  got:  %s\n  want: %s... %s\n", i, rc,
                        bc->yaml, buf, bc->where, bc->msg);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* --- files, lifetimes, formatting -------------------------------------------------------- */

/* A file of exactly 4 MiB loads; one byte more is refused before it is parsed. */
static void test_load_file_size_limit(void **state)
{
    const size_t limit = 4u << 20;
    const char *yaml = BASE REGIONS;
    size_t head = strlen(yaml);
    char path[] = "/tmp/sst-config-XXXXXX";
    sst_config_t *cfg = NULL;
    sst_diag_t d;
    char *text;
    int fd;

    (void)state;
    /* the config, then comment lines filling the file up to the limit */
    text = malloc(limit + 1);
    assert_non_null(text);
    memcpy(text, yaml, head);
    memset(text + head, ' ', limit + 1 - head);
    for (size_t i = head; i + 1 < limit + 1; i += 64) {
        text[i] = '#';
        text[i + 63 < limit ? i + 63 : limit - 1] = '\n';
    }
    text[limit - 1] = '\n';
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, limit), (ssize_t)limit);
    close(fd);
    assert_int_equal(sst_config_load(path, &cfg, &d), 0);
    sst_config_unref(cfg);
    cfg = NULL;

    fd = open(path, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    assert_int_equal(sst_config_load(path, &cfg, &d), SST_E2BIG);
    assert_null(cfg);
    assert_non_null(strstr(d.msg, "larger than 4 MiB"));
    unlink(path);
    free(text);
}

static void test_load_file(void **state)
{
    char path[] = "/tmp/sst-config-XXXXXX";
    sst_config_t *cfg = NULL;
    sst_diag_t d;
    char buf[600];
    int fd;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, BASE REGIONS, strlen(BASE REGIONS)), strlen(BASE REGIONS));
    close(fd);
    assert_int_equal(sst_config_load(path, &cfg, &d), 0);
    assert_string_equal(cfg->source, path);
    sst_config_unref(cfg);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, BASE "regions: 5\n", strlen(BASE "regions: 5\n")),
                     strlen(BASE "regions: 5\n"));
    close(fd);
    cfg = NULL;
    assert_int_equal(sst_config_load(path, &cfg, &d), SST_EINVAL);
    assert_null(cfg);
    assert_string_equal(d.file, path);
    assert_int_equal(d.line, 2);
    assert_int_equal(d.column, 10);
    unlink(path);

    assert_int_equal(sst_config_load("/nonexistent/sidestep.yaml", &cfg, &d), SST_ENOENT);
    assert_null(cfg);
    assert_int_equal(d.line, 0);
    assert_string_equal(sst_diag_format(&d, buf, sizeof buf),
                        "/nonexistent/sidestep.yaml: cannot open: No such file or directory");
    assert_int_equal(sst_config_load("/tmp", &cfg, &d), SST_EIO); /* a directory */
    assert_non_null(strstr(d.msg, "cannot read"));
    assert_int_equal(sst_config_load(NULL, &cfg, &d), SST_EINVAL);
    assert_int_equal(sst_config_load_string("x", NULL, 3, &cfg, &d), SST_EINVAL);
    assert_int_equal(sst_config_load_string("x", "a", 1, NULL, &d), SST_EINVAL);
    /* diag may be NULL */
    assert_int_equal(sst_config_load_string("x", "a: 1", 4, &cfg, NULL), SST_EINVAL);
    assert_null(cfg);
}

static void test_diag_format(void **state)
{
    sst_diag_t d;
    char buf[600], small[12];

    (void)state;
    memset(&d, 0, sizeof d);
    snprintf(d.file, sizeof d.file, "sidestep.yaml");
    d.line = 12;
    d.column = 17;
    snprintf(d.key, sizeof d.key, "regions[0].health.interval");
    snprintf(d.msg, sizeof d.msg, "invalid duration \"1x\"");
    assert_string_equal(sst_diag_format(&d, buf, sizeof buf),
                        "sidestep.yaml:12:17: regions[0].health.interval: invalid duration \"1x\"");
    d.key[0] = '\0';
    assert_string_equal(sst_diag_format(&d, buf, sizeof buf),
                        "sidestep.yaml:12:17: invalid duration \"1x\"");
    d.line = 0;
    assert_string_equal(sst_diag_format(&d, buf, sizeof buf),
                        "sidestep.yaml: invalid duration \"1x\"");
    assert_string_equal(sst_diag_format(&d, small, sizeof small), "sidestep.ya");
    assert_string_equal(sst_diag_format(NULL, buf, sizeof buf), "");
}

/* Reads docs/configuration.md next to this file (CMake compiles it by absolute path). */
static char *read_doc(void)
{
    char path[1024];
    const char *me = __FILE__, *cut = strstr(me, "tests/unit/test_config.c");
    FILE *f;
    char *buf;
    size_t n;

    assert_non_null(cut);
    snprintf(path, sizeof path, "%.*sdocs/configuration.md", (int)(cut - me), me);
    f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    buf = calloc(1, 256 * 1024);
    assert_non_null(buf);
    n = fread(buf, 1, 256 * 1024 - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The first ```yaml block after `heading`, NUL-terminated in place. */
static char *doc_yaml_block(char *doc, const char *heading)
{
    char *start = strstr(doc, heading), *end;
    assert_non_null(start);
    start = strstr(start, "```yaml\n");
    assert_non_null(start);
    start += 8;
    end = strstr(start, "```");
    assert_non_null(end);
    *end = '\0';
    return start;
}

/* The reference's examples are configs users copy: they must load, and the demo shown there
 * must be the embedded one. */
static void test_docs_examples(void **state)
{
    char *doc = read_doc(), *example, *demo, tok[] = "/tmp/sst-doc-token-XXXXXX";
    char *yaml = calloc(1, 64 * 1024), *at;
    const char *placeholder = "/etc/sidestep/admin-token";
    sst_config_t *cfg;
    int fd;

    (void)state;
    assert_non_null(yaml);
    example = doc_yaml_block(doc, "## A full annotated example");
    demo = doc_yaml_block(example + strlen(example) + 1, "## The embedded demo");
    assert_string_equal(demo, sst_config_demo_yaml);

    /* the example reads a token file: point it at a real one */
    fd = mkstemp(tok);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "t0ken\n", 6), 6);
    close(fd);
    at = strstr(example, placeholder);
    assert_non_null(at);
    snprintf(yaml, 64 * 1024, "%.*s%s%s", (int)(at - example), example, tok,
             at + strlen(placeholder));
    cfg = load_ok(yaml);
    assert_string_equal(cfg->admin.token, "t0ken");
    assert_int_equal(cfg->n_routes, 2);
    sst_config_unref(cfg);
    unlink(tok);
    free(yaml);
    free(doc);
}

typedef struct ref_worker_s {
    sst_config_t *cfg;
    int rounds;
} ref_worker_t;

static void *ref_worker(void *arg)
{
    ref_worker_t *w = arg;
    for (int i = 0; i < w->rounds; i++)
        sst_config_unref(sst_config_ref(w->cfg));
    sst_config_unref(w->cfg); /* each worker owns one reference */
    return NULL;
}

static void test_refcount(void **state)
{
    sst_config_t *cfg = load_ok(full_yaml);
    pthread_t th[4];
    ref_worker_t w = {cfg, 20000};

    (void)state;
    assert_ptr_equal(sst_config_ref(cfg), cfg);
    assert_int_equal(atomic_load(&cfg->refcount), 2);
    sst_config_unref(cfg);
    assert_int_equal(atomic_load(&cfg->refcount), 1);
    for (int i = 0; i < 4; i++) {
        sst_config_ref(cfg);
        assert_int_equal(pthread_create(&th[i], NULL, ref_worker, &w), 0);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(atomic_load(&cfg->refcount), 1);
    sst_config_unref(cfg); /* the last one frees every string: ASan/valgrind see no leak */
    sst_config_unref(NULL);
    assert_null(sst_config_ref(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_loads),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_health_merge),
        cmocka_unit_test(test_default_route),
        cmocka_unit_test(test_tls_keys),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_unknown_key_suggestion),
        cmocka_unit_test(test_table_bounds),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_addrs),
        cmocka_unit_test(test_trusted),
        cmocka_unit_test(test_proxy_protocol),
        cmocka_unit_test(test_proxy_protocol_bounds),
        cmocka_unit_test(test_admin_token),
        cmocka_unit_test(test_fleet),
        cmocka_unit_test(test_fleet_bad),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_file_size_limit),
        cmocka_unit_test(test_diag_format),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_docs_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
