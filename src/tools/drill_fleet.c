/* `sidestep drill --fleet`: the failover drill across a fleet. It lists the live instances from
 * GET /fleet, finds each one's listener from its own /status, sends the drill's traffic
 * (drill_traffic.c) to every one of them, forces the region down fleet-wide through one
 * instance, and measures on each when it began to redirect and when it returned; the report
 * gives each instance, then p50/p99/max, with the errors seen. The steps and measures are
 * drill.c's; the force is always cleared before it exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "sidestep/error.h"
#include "sidestep/log.h"
#include "tools/cli.h"
#include "tools/drill.h"

#define FLEET_MAX_TARGETS  64
#define FLEET_BASELINE_MS  5000
#define FLEET_POLL_MS      10
#define FLEET_INSTANCE_MAX 64

typedef struct fleet_target_s {
    char instance[FLEET_INSTANCE_MAX];
    sst_addr_t admin;
    sst_addr_t proxy;
    sst_traffic_t *traffic;
    sst_drill_report_t rep;
    bool settled; /* in the current wait */
} fleet_target_t;

typedef struct fleet_drill_s {
    sst_drill_t *d;
    char fleet[FLEET_INSTANCE_MAX];
    char via[FLEET_INSTANCE_MAX]; /* the instance at --admin */
    fleet_target_t t[FLEET_MAX_TARGETS];
    size_t n;
} fleet_drill_t;

/* ---- finding the instances ---------------------------------------------------------------- */

/* The proxy address of an instance: its first listener, with the admin address's host when
 * the listener is a wildcard (0.0.0.0, ::), which only says "every address". */
static int fleet_proxy_addr(const sst_addr_t *admin, const char *listener, sst_addr_t *out)
{
    char text[320];
    const char *colon = strrchr(listener, ':');
    if (colon == NULL)
        return SST_EINVAL;
    if (strncmp(listener, "0.0.0.0:", 8) == 0 || strncmp(listener, "[::]:", 5) == 0) {
        bool v6 = strchr(admin->host, ':') != NULL;
        snprintf(text, sizeof(text), "%s%s%s%s", v6 ? "[" : "", admin->host, v6 ? "]" : "", colon);
    } else {
        snprintf(text, sizeof(text), "%s", listener);
    }
    return sst_parse_addr(text, strlen(text), false, true, out);
}

/* One instance: its /status through its advertised admin address. */
static int fleet_add_target(fleet_drill_t *fd, const char *name, const char *admin)
{
    sst_drill_t *d = fd->d;
    fleet_target_t *t = &fd->t[fd->n];
    char err[1024];

    snprintf(t->instance, sizeof(t->instance), "%s", name);
    if (sst__cli_admin_addr(admin, &t->admin) != 0) {
        fprintf(stderr, "sidestep drill: instance %s advertises a bad admin address \"%s\"\n", name,
                admin);
        return 1;
    }
    json_object *st = sst__drill_admin_at(d, &t->admin, "GET", "/status", NULL, err, sizeof(err));
    if (st == NULL) {
        fprintf(stderr, "sidestep drill: instance %s: reading /status at %s: %s\n", name,
                t->admin.text, err);
        return 1;
    }
    int rc = 1;
    json_object *ls = sst__json_get(st, "listeners");
    const char *l0 = ls != NULL && json_object_array_length(ls) > 0
                         ? json_object_get_string(json_object_array_get_idx(ls, 0))
                         : NULL;
    if (l0 == NULL || fleet_proxy_addr(&t->admin, l0, &t->proxy) != 0) {
        fprintf(stderr, "sidestep drill: instance %s: no usable listener in its /status\n", name);
    } else if (sst__drill_find_region(st, d->region) == NULL ||
               sst__drill_find_region(st, d->expect) == NULL) {
        fprintf(stderr,
                "sidestep drill: instance %s has no region %s or %s (another config?): drill "
                "the instances that share them\n",
                name, d->region, d->expect);
    } else {
        fd->n++;
        rc = 0;
    }
    json_object_put(st);
    return rc;
}

static int fleet_discover(fleet_drill_t *fd)
{
    sst_drill_t *d = fd->d;
    char err[1024];
    json_object *f =
        sst__drill_admin_at(d, &d->admin_addr, "GET", "/fleet", NULL, err, sizeof(err));
    if (f == NULL) {
        fprintf(stderr, "sidestep drill: reading /fleet at %s: %s\n", d->admin_addr.text, err);
        return 1;
    }
    snprintf(fd->fleet, sizeof(fd->fleet), "%s", sst__json_str(f, "fleet", "?"));
    snprintf(fd->via, sizeof(fd->via), "%s", sst__json_str(f, "instance", "?"));
    json_object *ins = sst__json_get(f, "instances");
    int rc = 0;
    for (size_t i = 0; ins != NULL && i < json_object_array_length(ins) && rc == 0; i++) {
        json_object *m = json_object_array_get_idx(ins, i);
        const char *admin = sst__json_str(m, "admin", NULL);
        if (!json_object_get_boolean(sst__json_get(m, "live")) || admin == NULL)
            continue; /* gone: its view outlived its heartbeat */
        if (fd->n == FLEET_MAX_TARGETS) {
            fprintf(stderr, "sidestep drill: more than %d live instances; drilling the first %d\n",
                    FLEET_MAX_TARGETS, FLEET_MAX_TARGETS);
            break;
        }
        rc = fleet_add_target(fd, sst__json_str(m, "instance", "?"), admin);
    }
    json_object_put(f);
    if (rc == 0 && fd->n == 0) {
        fprintf(stderr, "sidestep drill: fleet %s lists no live instance\n", fd->fleet);
        rc = 1;
    }
    return rc;
}

/* ---- the steps ---------------------------------------------------------------------------- */

/* Waits until every instance settled on `kind` since `since`, or timeout (problems recorded,
 * one per instance that did not). */
static bool fleet_wait_all(fleet_drill_t *fd, uint64_t since, sst_drill_kind_t kind,
                           uint64_t timeout_ms, const char *what)
{
    sst_drill_t *d = fd->d;
    uint64_t deadline = sst__drill_now_us(d) + timeout_ms * 1000;
    char last[FLEET_MAX_TARGETS][96];
    for (size_t i = 0; i < fd->n; i++) {
        fd->t[i].settled = false;
        last[i][0] = 0;
    }
    for (;;) {
        if (sst__drill_signalled() != 0) {
            d->interrupted = true;
            sst__drill_problem(d, "interrupted by signal %d while waiting for %s",
                               sst__drill_signalled(), what);
            return false;
        }
        bool all = true;
        for (size_t i = 0; i < fd->n; i++) {
            fleet_target_t *t = &fd->t[i];
            if (!t->settled)
                t->settled =
                    sst__drill_settled(d, t->traffic, since, kind, last[i], sizeof(last[i]));
            all &= t->settled;
        }
        if (all)
            return true;
        if (sst__drill_now_us(d) >= deadline) {
            char h[32];
            for (size_t i = 0; i < fd->n; i++)
                if (!fd->t[i].settled)
                    sst__drill_problem(d, "instance %s: no %s within %s (last answer: %s)",
                                       fd->t[i].instance, what,
                                       sst__human_ms(timeout_ms, h, sizeof(h)),
                                       last[i][0] ? last[i] : "none");
            return false;
        }
        sst__drill_sleep_ms(FLEET_POLL_MS);
    }
}

static void fleet_steps(fleet_drill_t *fd)
{
    sst_drill_t *d = fd->d;
    char err[1024], t1[32], t2[32];
    uint64_t settle = (uint64_t)(1000.0 * (double)d->stable / d->o.rate);

    sst__drill_say(d, "sending %s %s to %zu instance%s at %g req/s each", d->o.method, d->target,
                   fd->n, fd->n == 1 ? "" : "s", d->o.rate);
    if (!fleet_wait_all(fd, 0, SST_DRILL_KIND_PROXIED, FLEET_BASELINE_MS + settle,
                        "steady proxied traffic before the drill"))
        return;
    sst__drill_say(d,
                   "baseline: every instance proxies; forcing %s down fleet-wide through %s "
                   "(ttl %s)",
                   d->region, fd->via, sst__human_ms(d->o.ttl_ms, t1, sizeof(t1)));
    d->forced = true; /* from here on the exit path clears, even if the call seems to fail */
    d->t_force_us = sst__drill_now_us(d);
    if (sst__drill_region_op(d, "force-down", d->o.ttl_ms, err, sizeof(err)) != 0) {
        sst__drill_problem(d, "fleet force-down failed: %s", err);
        d->t_clear_us = sst__drill_now_us(d);
        return;
    }
    d->t_forced_us = sst__drill_now_us(d);
    if (!fleet_wait_all(fd, d->t_force_us, SST_DRILL_KIND_EXPECTED, d->o.failover_timeout_ms,
                        "failover to the expected region")) {
        d->t_clear_us = sst__drill_now_us(d);
        return;
    }
    sst__drill_say(d, "every instance redirects to %s; holding %s", d->expect,
                   sst__human_ms(d->o.hold_ms, t1, sizeof(t1)));
    bool held = sst__drill_pause(d, d->o.hold_ms);
    d->t_clear_us = sst__drill_now_us(d);
    sst__drill_restore(d);
    if (!held || !d->cleared)
        return;
    sst__drill_say(d,
                   "cleared the fleet force on %s; waiting for every instance to fail back "
                   "(failback_delay %s, give up after %s more)",
                   d->region, sst__human_ms(d->failback_delay_ms, t1, sizeof(t1)),
                   sst__human_ms(d->o.failback_timeout_ms, t2, sizeof(t2)));
    if (fleet_wait_all(fd, d->t_clear_us, SST_DRILL_KIND_PROXIED,
                       d->failback_delay_ms + d->o.failback_timeout_ms, "failback to the region"))
        sst__drill_say(d, "every instance proxies again");
}

/* ---- the report --------------------------------------------------------------------------- */

typedef struct fleet_stats_s {
    size_t n;
    uint64_t p50_us, p99_us, max_us;
} fleet_stats_t;

static int fleet_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles over the instances that switched. */
static fleet_stats_t fleet_stats(const fleet_drill_t *fd, bool failback)
{
    uint64_t v[FLEET_MAX_TARGETS];
    fleet_stats_t st = {0};
    for (size_t i = 0; i < fd->n; i++) {
        const sst_drill_report_t *r = &fd->t[i].rep;
        if (failback ? r->have_failback : r->have_failover)
            v[st.n++] = failback ? r->failback_us : r->failover_us;
    }
    if (st.n == 0)
        return st;
    qsort(v, st.n, sizeof(v[0]), fleet_cmp_u64);
    st.p50_us = v[(st.n * 50 + 99) / 100 - 1];
    st.p99_us = v[(st.n * 99 + 99) / 100 - 1];
    st.max_us = v[st.n - 1];
    return st;
}

static uint64_t fleet_errors(const sst_drill_report_t *r)
{
    uint64_t n = 0;
    for (int e = SST_DRILL_CONNECT; e < SST_DRILL_ERR__COUNT; e++)
        n += r->errors[e];
    return n;
}

static json_object *fleet_ms(bool have, uint64_t us)
{
    return have ? json_object_new_uint64((us + 500) / 1000) : NULL;
}

static json_object *fleet_stats_json(const fleet_stats_t *st)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    json_object_object_add(o, "instances", json_object_new_uint64(st->n));
    json_object_object_add(o, "p50", fleet_ms(st->n > 0, st->p50_us));
    json_object_object_add(o, "p99", fleet_ms(st->n > 0, st->p99_us));
    json_object_object_add(o, "max", fleet_ms(st->n > 0, st->max_us));
    return o;
}

static json_object *fleet_errors_json(const sst_drill_report_t *r)
{
    json_object *er = json_object_new_object();
    if (er == NULL)
        return NULL;
    for (int e = SST_DRILL_CONNECT; e < SST_DRILL_ERR__COUNT; e++)
        json_object_object_add(er, sst__drill_err_word((sst_drill_err_t)e),
                               json_object_new_uint64(r->errors[e]));
    json_object_object_add(er, "unexpected_status", json_object_new_uint64(r->unexpected));
    return er;
}

static json_object *fleet_target_json(const fleet_drill_t *fd, const fleet_target_t *t)
{
    const sst_drill_t *d = fd->d;
    const sst_drill_report_t *r = &t->rep;
    json_object *o = json_object_new_object(), *rq = json_object_new_object(),
                *st = json_object_new_object();
    char key[80];
    if (o == NULL || rq == NULL || st == NULL) {
        json_object_put(o);
        json_object_put(rq);
        json_object_put(st);
        return NULL;
    }
    json_object_object_add(o, "instance", json_object_new_string(t->instance));
    json_object_object_add(o, "admin", json_object_new_string(t->admin.text));
    json_object_object_add(o, "proxy", json_object_new_string(t->proxy.text));
    /* when its unbroken run of redirects began, and of proxied answers again, from the
     * force-down and the clear */
    json_object_object_add(o, "failover_ms", fleet_ms(r->have_failover, r->failover_us));
    json_object_object_add(o, "failback_ms", fleet_ms(r->have_failback, r->failback_us));
    json_object_object_add(o, "redirecting_at_ms", fleet_ms(r->have_failover, r->run_over_us));
    json_object_object_add(o, "returned_at_ms", fleet_ms(r->have_failback, r->run_back_us));
    json_object_object_add(rq, "sent", json_object_new_uint64(r->sent));
    json_object_object_add(rq, "answered", json_object_new_uint64(r->answered));
    json_object_object_add(rq, "skipped", json_object_new_uint64(r->skipped));
    json_object_object_add(o, "requests", rq);
    for (size_t h = 0; h < r->n_hist; h++) {
        snprintf(key, sizeof(key), "%u%s%s", r->hist[h].status, r->hist[h].region[0] ? " " : "",
                 r->hist[h].region);
        json_object_object_add(st, key, json_object_new_uint64(r->hist[h].count));
    }
    json_object_object_add(o, "statuses", st);
    json_object_object_add(o, "errors", fleet_errors_json(r));
    (void)d;
    return o;
}

static json_object *fleet_report_json(const fleet_drill_t *fd, const fleet_stats_t *over,
                                      const fleet_stats_t *back, const sst_drill_report_t *total,
                                      bool pass)
{
    const sst_drill_t *d = fd->d;
    json_object *o = json_object_new_object(), *pr = json_object_new_array(),
                *ins = json_object_new_array(), *cv = json_object_new_object();
    char ts[32], rate[32];
    if (o == NULL || pr == NULL || ins == NULL || cv == NULL) {
        json_object_put(o);
        json_object_put(pr);
        json_object_put(ins);
        json_object_put(cv);
        return NULL;
    }
    sst_log_time(d->start_epoch_ms, ts);
    json_object_object_add(o, "result", json_object_new_string(pass ? "pass" : "fail"));
    json_object_object_add(o, "mode", json_object_new_string("fleet"));
    for (size_t i = 0; i < d->n_problems; i++)
        json_object_array_add(pr, json_object_new_string(d->problems[i]));
    json_object_object_add(o, "problems", pr);
    json_object_object_add(o, "fleet", json_object_new_string(fd->fleet));
    json_object_object_add(o, "via", json_object_new_string(fd->via));
    json_object_object_add(o, "url", json_object_new_string(d->o.url));
    json_object_object_add(o, "method", json_object_new_string(d->o.method));
    snprintf(rate, sizeof(rate), "%g", d->o.rate);
    json_object_object_add(o, "rate", json_object_new_double_s(d->o.rate, rate));
    json_object_object_add(o, "admin", json_object_new_string(d->admin_addr.text));
    json_object_object_add(o, "route", json_object_new_string(d->route));
    json_object_object_add(o, "region", json_object_new_string(d->region));
    json_object_object_add(o, "expected_region", json_object_new_string(d->expect));
    json_object_object_add(o, "failback_delay_ms", json_object_new_uint64(d->failback_delay_ms));
    json_object_object_add(o, "started_at", json_object_new_string(ts));
    json_object_object_add(o, "duration_ms", fleet_ms(true, d->t_end_us));
    json_object_object_add(o, "force_down_at_ms", fleet_ms(d->forced, d->t_force_us));
    /* the force-down's 200: etcd has the write; the instances apply it from their watches */
    json_object_object_add(o, "force_down_acked_ms",
                           fleet_ms(d->t_forced_us != 0, d->t_forced_us - d->t_force_us));
    json_object_object_add(o, "clear_at_ms", fleet_ms(d->t_clear_us != 0, d->t_clear_us));
    for (size_t i = 0; i < fd->n; i++)
        json_object_array_add(ins, fleet_target_json(fd, &fd->t[i]));
    json_object_object_add(o, "instances", ins);
    json_object_object_add(cv, "failover_ms", fleet_stats_json(over));
    json_object_object_add(cv, "failback_ms", fleet_stats_json(back));
    json_object_object_add(o, "convergence", cv);
    json_object_object_add(o, "errors", fleet_errors_json(total));
    return o;
}

static const char *fleet_secs(bool have, uint64_t us, char *buf, size_t size)
{
    if (have)
        snprintf(buf, size, "%.3f s", (double)us / 1e6);
    else
        snprintf(buf, size, "-");
    return buf;
}

static void fleet_print_stats(const char *what, const fleet_stats_t *st, size_t of)
{
    if (st->n == 0) {
        printf("  %-12s not achieved on any instance\n", what);
        return;
    }
    printf("  %-12s p50 %.3f s, p99 %.3f s, max %.3f s (%zu of %zu instances)\n", what,
           (double)st->p50_us / 1e6, (double)st->p99_us / 1e6, (double)st->max_us / 1e6, st->n, of);
}

static void fleet_print(const fleet_drill_t *fd, const fleet_stats_t *over,
                        const fleet_stats_t *back, const sst_drill_report_t *total, bool pass)
{
    const sst_drill_t *d = fd->d;
    char a[32], b[32];
    printf("\nsidestep drill report (fleet %s, %zu instance%s)\n", fd->fleet, fd->n,
           fd->n == 1 ? "" : "s");
    printf("  traffic      %s %s at %g req/s per instance for %.1f s\n", d->o.method, d->target,
           d->o.rate, (double)d->t_end_us / 1e6);
    printf("  drill        fail %s fleet-wide through %s (route %s), expect traffic on %s\n",
           d->region, fd->via, d->route, d->expect);
    printf("\n  %-16s %-22s %10s %10s %8s %8s %7s\n", "INSTANCE", "PROXY", "FAILOVER", "FAILBACK",
           "SENT", "ANSWERED", "ERRORS");
    for (size_t i = 0; i < fd->n; i++) {
        const fleet_target_t *t = &fd->t[i];
        const sst_drill_report_t *r = &t->rep;
        printf("  %-16s %-22s %10s %10s %8llu %8llu %7llu\n", t->instance, t->proxy.text,
               fleet_secs(r->have_failover, r->failover_us, a, sizeof(a)),
               fleet_secs(r->have_failback, r->failback_us, b, sizeof(b)),
               (unsigned long long)r->sent, (unsigned long long)r->answered,
               (unsigned long long)(fleet_errors(r) + r->unexpected));
    }
    printf("\n");
    fleet_print_stats("failover", over, fd->n);
    fleet_print_stats("failback", back, fd->n);
    printf("  errors       connect %llu, timeout %llu, reset %llu, protocol %llu, unexpected "
           "status %llu\n",
           (unsigned long long)total->errors[SST_DRILL_CONNECT],
           (unsigned long long)total->errors[SST_DRILL_TIMEOUT],
           (unsigned long long)total->errors[SST_DRILL_RESET],
           (unsigned long long)total->errors[SST_DRILL_PROTOCOL],
           (unsigned long long)total->unexpected);
    for (size_t i = 0; i < d->n_problems; i++)
        printf("  problem      %s\n", d->problems[i]);
    printf("  result       %s\n", pass ? "PASS" : "FAIL");
}

int sst__drill_fleet(sst_drill_t *d)
{
    fleet_drill_t *fd = calloc(1, sizeof(*fd));
    char err[512];
    int rc = 1;
    if (fd == NULL) {
        fprintf(stderr, "sidestep drill: out of memory\n");
        return 1;
    }
    fd->d = d;
    if (fleet_discover(fd) != 0)
        goto done;
    for (size_t i = 0; i < fd->n; i++) {
        fleet_target_t *t = &fd->t[i];
        sst_traffic_opts_t to = {
            .addr = &t->proxy,
            .host = d->proxy_host,
            .method = d->o.method,
            .target = d->target,
            .body_size = d->o.body_size,
            .rate = d->o.rate,
            .timeout_ms = d->o.timeout_ms,
            .t0_ns = d->t0_ns,
        };
        if (sst__traffic_start(&to, &t->traffic, err, sizeof(err)) != 0) {
            fprintf(stderr, "sidestep drill: instance %s: %s\n", t->instance, err);
            goto stop;
        }
    }
    sst__drill_say(d, "fleet %s: %zu live instance%s; the force goes through %s", fd->fleet, fd->n,
                   fd->n == 1 ? "" : "s", fd->via);
    fleet_steps(fd);
    sst__drill_restore(d); /* no-op unless a step bailed out with the force still set */
    if (d->interrupted)
        sst__drill_say(d, "interrupted: the fleet force is cleared; stopping");
    sst__drill_pause(d, 200); /* a few answers after the last switch */
    d->t_end_us = sst__drill_now_us(d);
    for (size_t i = 0; i < fd->n; i++)
        sst__traffic_stop(fd->t[i].traffic);

    sst_drill_report_t total;
    memset(&total, 0, sizeof(total));
    bool all_switched = true;
    for (size_t i = 0; i < fd->n; i++) {
        fleet_target_t *t = &fd->t[i];
        sst__drill_analyse(d, t->traffic, &t->rep);
        for (int e = 0; e < SST_DRILL_ERR__COUNT; e++)
            total.errors[e] += t->rep.errors[e];
        total.unexpected += t->rep.unexpected;
        all_switched &= t->rep.have_failover && t->rep.have_failback;
        if (d->forced && d->t_clear_us != 0 && !d->interrupted && d->n_problems == 0) {
            if (!t->rep.have_failover)
                sst__drill_problem(d,
                                   "instance %s: the redirects to %s did not last until the "
                                   "restore",
                                   t->instance, d->expect);
            else if (!t->rep.have_failback)
                sst__drill_problem(d, "instance %s: traffic did not stay on %s after the failback",
                                   t->instance, d->region);
        }
        if (fleet_errors(&t->rep) > 0)
            sst__drill_problem(d, "instance %s: %llu request%s got no response", t->instance,
                               (unsigned long long)fleet_errors(&t->rep),
                               fleet_errors(&t->rep) == 1 ? "" : "s");
        if (t->rep.unexpected > 0)
            sst__drill_problem(d,
                               "instance %s: %llu unexpected status%s (neither proxied 2xx nor a "
                               "redirect to %s)",
                               t->instance, (unsigned long long)t->rep.unexpected,
                               t->rep.unexpected == 1 ? "" : "es", d->expect);
    }
    fleet_stats_t over = fleet_stats(fd, false), back = fleet_stats(fd, true);
    bool pass = d->n_problems == 0 && all_switched;
    fleet_print(fd, &over, &back, &total, pass);
    if (d->o.json_path != NULL) {
        json_object *j = fleet_report_json(fd, &over, &back, &total, pass);
        if (j == NULL || sst__drill_write_json(d, j) != 0)
            pass = false;
        json_object_put(j);
    }
    rc = pass ? 0 : 1;
stop:
    for (size_t i = 0; i < fd->n; i++) {
        if (fd->t[i].traffic != NULL) {
            sst__traffic_stop(fd->t[i].traffic);
            sst__traffic_free(fd->t[i].traffic);
        }
    }
done:
    free(fd);
    return rc;
}
