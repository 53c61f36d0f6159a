/* The control plane, on the caller's loop: owns the config, the health state machine and its
 * prober, publishes views to the workers, drains their passive signals, applies reloads and
 * operator actions, and runs graceful shutdown. Never on the request path. */
#include "sidestep/server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "core/passive.h"
#include "core/server_fleet.h"
#include "core/server_int.h"
#include "core/view.h"
#include "core/worker.h"
#include "health/probe.h"
#include "sidestep/error.h"
#include "sidestep/log.h"

#define STOP_POLL_MS 20

static void server_publish_view(sst_server_t *s, sst_view_t *v);

/* ---- health events, logged and counted ---------------------------------------------------- */

static const char *state_name(sst_state_t st)
{
    return st == SST_UP ? "up" : "down";
}

static void server_on_event(const sst_health_event_t *ev, void *opaque)
{
    sst_server_t *s = opaque;
    char line[4096];
    bool backend = ev->kind == SST_EVENT_BACKEND;
    const char *region = "";
    const sst_config_t *cfg = s->pending_cfg != NULL ? s->pending_cfg : s->cfg;
    if (backend && cfg != NULL && ev->index < cfg->n_backends)
        region = cfg->regions[cfg->backends[ev->index].region].name;

    if (ev->reason < SST_REASON__COUNT)
        s->events_total[ev->reason]++;
    if (ev->from != ev->to && cfg != NULL) {
        const sst_prep_t *prep = s->pending_prep != NULL ? s->pending_prep
                                 : s->view != NULL       ? s->view->prep
                                                         : NULL;
        if (prep != NULL && backend && ev->index < SST_MAX_BACKENDS)
            s->transitions[prep->backend_mid[ev->index]][ev->to == SST_UP]++;
        else if (prep != NULL && !backend && ev->index < SST_MAX_REGIONS)
            s->region_transitions[prep->region_mid[ev->index]][ev->to == SST_UP]++;
    }
    const char *nm = ev->name != NULL ? ev->name : "?";
    const char *kind = backend ? "backend" : "region";
    const char *from = state_name(ev->from), *to = state_name(ev->to);
    const char *code = sst_reason_code(ev->reason);
    /* the JSON "region" of a region event is its own name */
    const char *jregion = backend ? region : nm;
    /* text: TIME event KIND [REGION/]NAME FROM -> TO reason=CODE "TEXT" COUNTS */
    sst_log_field_t f[] = {
        {.key = "type", .pre = " ", .kind = SST_LF_RAW, .str = "event", .len = 5},
        {.key = "kind", .pre = " ", .kind = SST_LF_RAW, .str = kind, .len = strlen(kind)},
        {.pre = backend ? " " : NULL,
         .post = "/",
         .kind = SST_LF_RAW,
         .str = region,
         .len = strlen(region)},
        {.key = "name",
         .pre = backend ? "" : " ",
         .kind = SST_LF_ESC,
         .str = nm,
         .len = strlen(nm)},
        {.key = "region", .kind = SST_LF_RAW, .str = jregion, .len = strlen(jregion)},
        {.key = "from", .pre = " ", .kind = SST_LF_RAW, .str = from, .len = strlen(from)},
        {.key = "to", .pre = " -> ", .kind = SST_LF_RAW, .str = to, .len = strlen(to)},
        {.key = "reason", .pre = " reason=", .kind = SST_LF_RAW, .str = code, .len = strlen(code)},
        {.key = "text",
         .pre = " \"",
         .post = "\"",
         .kind = SST_LF_ESC,
         .str = ev->text,
         .len = strnlen(ev->text, sizeof(ev->text))},
        {.key = "successes",
         .pre = backend ? " successes=" : NULL,
         .kind = SST_LF_UINT,
         .u = ev->successes},
        {.key = "failures",
         .pre = backend ? " failures=" : NULL,
         .kind = SST_LF_UINT,
         .u = ev->failures},
        {.key = "up", .pre = backend ? NULL : " up=", .kind = SST_LF_UINT, .u = ev->n_up},
        {.key = "total", .pre = backend ? NULL : "/", .kind = SST_LF_UINT, .u = ev->n_backends},
    };
    size_t len =
        sst_log_format(line, sizeof(line), sst_log_epoch_ms(), f, sizeof(f) / sizeof(f[0]));
    sst_log_event_write(line, len);
}

/* ---- publishing ------------------------------------------------------------------------- */

static void server_publish_view(sst_server_t *s, sst_view_t *v)
{
    sst_view_t *old = s->view;
    s->view = v;
    for (unsigned i = 0; i < s->n_workers; i++)
        sst__worker_publish(&s->workers[i], v);
    if (old != NULL)
        sst__view_unref(old);
}

static void server_arm_health_timer(sst_server_t *s);

void sst__server_publish(sst_server_t *s)
{
    sst_hsnap_t *snap = NULL;
    sst_view_t *v = NULL;

    if (s->stopping || s->health == NULL)
        return;
    if (sst_health_snapshot(s->health, ++s->generation, &snap) != 0) {
        sst_error("out of memory publishing health state; retrying on the next change");
        return;
    }
    snap->config_version = s->cfg->version;
    sst__sfleet_route(s, s->cfg, snap);
    if (sst__view_new(s->cfg, snap, s->view->prep, s->view->prep_refs, s->generation, &v) != 0) {
        sst_hsnap_unref(snap);
        sst_error("out of memory publishing health state; retrying on the next change");
        return;
    }
    sst_hsnap_unref(snap);
    v->hold_accept = s->accept_held;
    server_publish_view(s, v);
    server_arm_health_timer(s);
    sst__sfleet_published(s);
}

/* ---- health inputs ---------------------------------------------------------------------- */

static void server_on_probe(void *opaque, size_t backend, const sst_probe_result_t *in)
{
    sst_server_t *s = opaque;
    if (backend >= s->cfg->n_backends)
        return;
    /* a success slower than health.slow is an L7SLOW failure (issue 15): judged before it is
     * counted, so that sidestep_probes_total says what the health state saw */
    sst_probe_result_t res = *in;
    sst_health_classify_slow(&res, &s->cfg->backends[backend].health);
    unsigned mid = s->view->prep->backend_mid[backend];
    if (res.reason < SST_REASON__COUNT)
        s->probes[mid][res.reason]++;
    s->probe_lat[mid][sst_m_lat_bucket(res.duration_ms * 1000)]++;
    s->probe_lat_sum_us[mid] += res.duration_ms * 1000;
    if (sst_health_probe_result(s->health, backend, &res, uv_now(s->loop)))
        sst__server_publish(s);
}

static void server_on_passive(uv_async_t *a)
{
    sst_server_t *s = a->data;
    bool changed = false;
    uint64_t now = uv_now(s->loop);
    for (unsigned i = 0; i < s->n_workers; i++) {
        sst_passive_msg_t m;
        while (sst__passive_pop(&s->workers[i].passive, &m)) {
            /* a signal about a config that has been replaced refers to other indices */
            if (s->health == NULL || m.config_version != s->cfg->version ||
                m.backend >= s->cfg->n_backends)
                continue;
            if (m.signal < SST_PASSIVE__COUNT)
                s->passive_signals[m.signal]++;
            changed |= sst_health_passive(s->health, m.backend, (sst_passive_t)m.signal, now);
        }
    }
    if (changed)
        sst__server_publish(s);
}

static void server_on_health_timer(uv_timer_t *t)
{
    sst_server_t *s = t->data;
    uint64_t next;
    if (s->health == NULL)
        return;
    if (sst_health_tick(s->health, uv_now(s->loop), &next))
        sst__server_publish(s);
    else
        server_arm_health_timer(s);
}

static void server_arm_health_timer(sst_server_t *s)
{
    uint64_t next = UINT64_MAX, now = uv_now(s->loop);
    if (s->health == NULL || s->stopping)
        return;
    sst_health_tick(s->health, now, &next);
    if (next == UINT64_MAX) {
        uv_timer_stop(&s->health_timer);
        return;
    }
    uv_timer_start(&s->health_timer, server_on_health_timer, next > now ? next - now : 0, 0);
}

int sst__server_admin_op(sst_server_t *s, bool region, const char *name, sst_admin_op_t op,
                         const char *reason, uint64_t ttl_ms, char *err, size_t err_size)
{
    const sst_config_t *cfg = s->cfg;
    uint64_t now = uv_now(s->loop);
    bool changed = false, any = false;
    int rc = 0;

    if (region) {
        int r = sst_config_region_index(cfg, name, strlen(name));
        if (r < 0) {
            snprintf(err, err_size, "unknown region \"%s\"", name);
            return SST_ENOENT;
        }
        rc = sst_health_admin_region(s->health, (size_t)r, op, reason, ttl_ms, now, &changed);
        any = true;
    } else {
        /* one address may serve in several regions: the action applies to each */
        for (size_t b = 0; b < cfg->n_backends && rc == 0; b++) {
            if (strcmp(cfg->backends[b].addr.text, name) != 0)
                continue;
            bool ch = false;
            rc = sst_health_admin_backend(s->health, b, op, reason, ttl_ms, now, &ch);
            changed |= ch;
            any = true;
        }
        if (!any) {
            snprintf(err, err_size, "unknown backend \"%s\"", name);
            return SST_ENOENT;
        }
    }
    if (rc != 0) {
        snprintf(err, err_size, "%s does not apply here", region ? "action" : "action");
        return rc;
    }
    sst__server_publish(s); /* also re-arms the TTL timer */
    return 0;
}

/* ---- the ready file --------------------------------------------------------------------- */

static void server_addr_text(const struct sockaddr_storage *sa, char *buf, size_t size)
{
    char ip[64] = "?";
    int port = 0;
    if (sa->ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof(ip));
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
        snprintf(buf, size, "%s:%d", ip, port);
    } else if (sa->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof(ip));
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
        snprintf(buf, size, "[%s]:%d", ip, port);
    } else {
        snprintf(buf, size, "?");
    }
}

void sst_server_listen_text(const sst_server_t *s, size_t i, char *buf, size_t size)
{
    if (i >= s->cfg->n_listeners || i >= SST_MAX_LISTENERS) {
        snprintf(buf, size, "?");
        return;
    }
    server_addr_text(&s->view->prep->bound[i], buf, size);
}

static int server_write_ready(sst_server_t *s)
{
    char tmp[4096], path[4096], addr[80];
    int n = snprintf(tmp, sizeof(tmp), "{\"pid\": %d, \"listen\": [", (int)getpid());
    for (size_t i = 0; i < s->cfg->n_listeners && n > 0 && (size_t)n < sizeof(tmp); i++) {
        sst_server_listen_text(s, i, addr, sizeof(addr));
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%s\"%s\"", i ? ", " : "", addr);
    }
    if (n > 0 && (size_t)n < sizeof(tmp)) {
        if (s->admin_bound.ss_family != 0) {
            server_addr_text(&s->admin_bound, addr, sizeof(addr));
            n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "], \"admin\": \"%s\"}\n", addr);
        } else {
            n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "], \"admin\": null}\n");
        }
    }
    if (n <= 0 || (size_t)n >= sizeof(tmp))
        return SST_E2BIG;
    snprintf(path, sizeof(path), "%s.tmp", s->ready_file);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, tmp, (size_t)n);
    close(fd);
    if (w != n || rename(path, s->ready_file) != 0)
        return SST_EIO;
    return 0;
}

/* ---- access log sink --------------------------------------------------------------------- */

static int server_open_access(const sst_config_t *cfg, int *fd)
{
    const char *a = cfg->log.access;
    if (a == NULL || strcmp(a, "stderr") == 0)
        *fd = 2;
    else if (strcmp(a, "stdout") == 0)
        *fd = 1;
    else if (strcmp(a, "off") == 0)
        *fd = -1;
    else {
        /* O_NONBLOCK: opening a FIFO (or a device) must not block the control loop; only
         * regular files and character devices (/dev/null, a tty) are accepted */
        struct stat st;
        *fd = open(a, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0644);
        if (*fd < 0)
            return errno == ENXIO ? SST_EINVAL : -errno; /* ENXIO: a FIFO with no reader */
        if (fstat(*fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)) ||
            fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) & ~O_NONBLOCK) != 0) {
            close(*fd);
            *fd = -1;
            return SST_EINVAL;
        }
    }
    return 0;
}

/* "file:line:col: log.access: PATH: why" for an access log that cannot be opened */
static void server_access_error(const sst_config_t *cfg, int rc, char *err, size_t err_size)
{
    snprintf(err, err_size, "%s:%u:%u: log.access: %s: %s", cfg->source, cfg->log.access_pos.line,
             cfg->log.access_pos.column, cfg->log.access,
             rc == SST_EINVAL ? "not a regular file or character device" : sst_strerror(rc));
}

static void server_setup_log(sst_server_t *s, int access_fd)
{
    int old = s->access_fd;
    if (old > 2 && access_fd > 2 && dup2(access_fd, old) >= 0) {
        (void)fcntl(old, F_SETFD, FD_CLOEXEC); /* dup2 clears it; sidestep never execs */
        /* a file after a file: the new one takes the old descriptor's number in one atomic
         * step, so a worker mid-write writes to one file or the other, never to a closed or
         * reused descriptor */
        close(access_fd);
        access_fd = old;
        old = -1;
    }
    sst_log_setup(s->cfg->log.level, 2, access_fd, s->cfg->log.format == SST_LOG_JSON);
    s->access_fd = access_fd;
    /* A worker may be mid-write on the old descriptor: keep it open (files only) until the
     * next reload replaces it, which is long after any write in flight finished. */
    if (s->old_access_fd > 2)
        close(s->old_access_fd);
    s->old_access_fd = old;
}

/* ---- start ------------------------------------------------------------------------------- */

static int server_release(sst_server_t *s);

static void server_on_abort_closed(uv_handle_t *h)
{
    sst_server_t *s = h->data;
    if (--s->abort_closes == 0)
        (void)server_release(s);
}

/* Undoes a start that failed once threads and handles existed: the prober and the admin
 * listener close (they free themselves in their close callbacks), the workers stop at once and
 * are joined here, and the server's own handles on the caller's loop close, the last close
 * callback freeing the server. Afterwards no thread runs and no handle is active; the caller's
 * next uv_run only finishes those close callbacks. */
static void server_abort_start(sst_server_t *s)
{
    s->stopping = true;
    if (s->prober != NULL) {
        sst_prober_stop(s->prober, NULL, NULL);
        s->prober = NULL;
    }
    sst__admin_stop(s);
    sst__server_tls_stop(s);
    sst__sfleet_stop(s);
    for (unsigned i = 0; i < s->n_workers; i++)
        sst__worker_request_stop(&s->workers[i], SST_STOP_NOW);
    for (unsigned i = 0; i < s->n_workers; i++)
        sst__worker_join(&s->workers[i]); /* bounded: STOP_NOW closes every connection */
    s->handles_open = false;
    s->abort_closes = 3;
    uv_close((uv_handle_t *)&s->passive_async, server_on_abort_closed);
    uv_close((uv_handle_t *)&s->health_timer, server_on_abort_closed);
    uv_close((uv_handle_t *)&s->stop_timer, server_on_abort_closed);
}

static unsigned server_worker_count(const sst_config_t *cfg, const sst_server_opts_t *opts)
{
    unsigned n = opts != NULL && opts->workers > 0 ? opts->workers : cfg->workers;
    if (n == 0) {
        uv_cpu_info_t *info;
        int count = 0;
        if (uv_cpu_info(&info, &count) == 0) {
            uv_free_cpu_info(info, count);
            n = count > 0 ? (unsigned)count : 1;
        } else {
            n = 1;
        }
    }
    return n > SST_MAX_WORKERS ? SST_MAX_WORKERS : n;
}

static int server_new_view(sst_server_t *s, sst_config_t *cfg, sst_health_t *h, sst_prep_t *prep,
                           sst_view_t **out)
{
    sst_hsnap_t *snap;
    atomic_uint_fast32_t *prep_refs = malloc(sizeof(*prep_refs));
    if (prep_refs == NULL)
        return SST_ENOMEM;
    atomic_init(prep_refs, 0);
    int rc = sst_health_snapshot(h, ++s->generation, &snap);
    if (rc != 0) {
        free(prep_refs);
        return rc;
    }
    snap->config_version = cfg->version;
    sst__sfleet_route(s, cfg, snap);
    rc = sst__view_new(cfg, snap, prep, prep_refs, s->generation, out);
    sst_hsnap_unref(snap);
    if (rc != 0)
        free(prep_refs);
    else
        (*out)->hold_accept = s->accept_held;
    return rc;
}

int sst_server_start(uv_loop_t *loop, sst_config_t *cfg, const sst_server_opts_t *opts,
                     sst_server_t **out, char *err, size_t err_size)
{
    sst_server_t *s = calloc(1, sizeof(*s));
    sst_prep_t *prep = NULL;
    int rc, access_fd;

    if (s == NULL)
        return SST_ENOMEM;
    s->loop = loop;
    s->access_fd = s->old_access_fd = -1;
    s->cfg = sst_config_ref(cfg);
    s->cfg->version = ++s->config_version;
    s->config_path = opts != NULL && opts->config_path ? strdup(opts->config_path) : NULL;
    s->ready_file = opts != NULL && opts->ready_file ? strdup(opts->ready_file) : NULL;
    s->start_ms = uv_now(loop);
    s->start_epoch_ms = sst_log_epoch_ms();
    s->rng = (uint64_t)uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
    s->region_names[0] = strdup("none");
    s->n_region_names = 1;
    s->n_workers = server_worker_count(cfg, opts);
    s->workers = calloc(s->n_workers, sizeof(*s->workers));
    atomic_init(&s->n_conns, 0);
    if (s->workers == NULL || s->region_names[0] == NULL) {
        rc = SST_ENOMEM;
        goto fail;
    }
    if ((rc = server_open_access(cfg, &access_fd)) != 0) {
        server_access_error(cfg, rc, err, err_size);
        goto fail;
    }
    server_setup_log(s, access_fd);
    s->pending_cfg = cfg;
    rc = sst_health_create(cfg, NULL, uv_now(loop), server_on_event, s, &s->health);
    s->pending_cfg = NULL;
    if (rc != 0)
        goto fail;
    if ((rc = sst__prep_build(cfg, s, &prep, err, err_size)) != 0)
        goto fail;
    /* fleet mode: no client is accepted before the fleet's overrides are read (startup_wait) */
    s->accept_held = cfg->fleet.enabled && cfg->fleet.startup_wait_ms > 0;
    if ((rc = server_new_view(s, s->cfg, s->health, prep, &s->view)) != 0) {
        sst__prep_abandon(s, prep);
        sst__prep_free(prep);
        goto fail;
    }
    sst__prep_commit(s, prep);
    if ((rc = uv_async_init(loop, &s->passive_async, server_on_passive)) != 0)
        goto fail; /* the loop's eventfd: EMFILE; no handle was made */
    s->passive_async.data = s;
    uv_timer_init(loop, &s->health_timer);
    s->health_timer.data = s;
    uv_timer_init(loop, &s->stop_timer);
    s->stop_timer.data = s;
    s->handles_open = true;
    for (unsigned i = 0; i < s->n_workers; i++) {
        if ((rc = sst__worker_start(&s->workers[i], i, &s->n_conns, &s->passive_async, s->view)) !=
            0) {
            snprintf(err, err_size, "starting worker %u: %s", i, sst_strerror(rc));
            goto fail_running;
        }
    }
    rc = sst_prober_start(loop, s->cfg, s->health, s->view->prep->tls, sst_rand_next(&s->rng),
                          server_on_probe, s, &s->prober);
    if (rc != 0) {
        snprintf(err, err_size, "starting health checks: %s", sst_strerror(rc));
        goto fail_running;
    }
    if (cfg->admin.enabled && (rc = sst__admin_start(s, err, err_size)) != 0)
        goto fail_running;
    if ((rc = sst__server_tls_start(s)) != 0) {
        snprintf(err, err_size, "starting TLS housekeeping: %s", sst_strerror(rc));
        goto fail_running;
    }
    if (cfg->fleet.enabled && (rc = sst__sfleet_start(s, err, err_size)) != 0)
        goto fail_running;
    server_arm_health_timer(s);
    if (s->ready_file != NULL && (rc = server_write_ready(s)) != 0) {
        snprintf(err, err_size, "ready file %s: %s", s->ready_file, sst_strerror(rc));
        goto fail_running;
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        char addr[80];
        sst_server_listen_text(s, i, addr, sizeof(addr));
        sst_info("listening on %s (%u worker%s)", addr, s->n_workers, s->n_workers == 1 ? "" : "s");
    }
    *out = s;
    return 0;

fail_running:
    /* server.h's promise: nothing is left running and *out is NULL (issue 11) */
    server_abort_start(s);
    *out = NULL;
    return rc != 0 ? rc : SST_EINVAL;
fail:
    if (err[0] == 0)
        snprintf(err, err_size, "%s", sst_strerror(rc));
    sst__lsocks_free(s);
    if (s->health != NULL)
        sst_health_destroy(s->health);
    if (s->view != NULL)
        sst__view_unref(s->view);
    sst_config_unref(s->cfg);
    free(s->workers);
    sst__prep_names_free(s); /* "none", and any name a failed start registered */
    free(s->config_path);
    free(s->ready_file);
    free(s);
    *out = NULL;
    return rc;
}

/* ---- reload ------------------------------------------------------------------------------ */

int sst_server_reload(sst_server_t *s, char *err, size_t err_size)
{
    sst_config_t *cfg = NULL;
    sst_health_t *h = NULL;
    sst_prep_t *prep = NULL, *built = NULL;
    sst_view_t *v = NULL;
    sst_prober_t *prober = NULL;
    sst_diag_t diag;
    int rc, access_fd = -1;

    err[0] = 0;
    if (s->stopping) {
        snprintf(err, err_size, "shutting down");
        return SST_ECANCELED;
    }
    if (s->config_path == NULL) {
        snprintf(err, err_size, "running the embedded demo: there is no file to reload");
        return SST_ENOTSUP;
    }
    memset(&diag, 0, sizeof(diag));
    if ((rc = sst_config_load(s->config_path, &cfg, &diag)) != 0) {
        sst_diag_format(&diag, err, err_size);
        goto fail;
    }
    cfg->version = s->config_version + 1;
    if (cfg->admin.enabled != s->cfg->admin.enabled ||
        (cfg->admin.enabled && strcmp(cfg->admin.addr.text, s->cfg->admin.addr.text) != 0))
        sst_warn("reload: the admin listener address changes only with a restart");
    if ((rc = server_open_access(cfg, &access_fd)) != 0) {
        server_access_error(cfg, rc, err, err_size);
        goto fail;
    }
    if ((rc = sst__prep_build(cfg, s, &prep, err, err_size)) != 0)
        goto fail;
    built = prep;
    s->pending_cfg = cfg;
    s->pending_prep = prep;
    rc = sst_health_create(cfg, s->health, uv_now(s->loop), server_on_event, s, &h);
    s->pending_cfg = NULL;
    s->pending_prep = NULL;
    if (rc != 0)
        goto fail;
    if ((rc = server_new_view(s, cfg, h, prep, &v)) != 0)
        goto fail;
    prep = NULL; /* owned by the view now */
    rc = sst_prober_start(s->loop, cfg, h, v->prep->tls, sst_rand_next(&s->rng), server_on_probe, s,
                          &prober);
    if (rc != 0) {
        snprintf(err, err_size, "starting health checks: %s", sst_strerror(rc));
        goto fail;
    }
    /* carried-over backends keep their probe rhythm; only new ones get a prompt first probe */
    sst_prober_carry(prober, s->prober);
    /* commit: nothing below fails */
    sst_prober_stop(s->prober, NULL, NULL); /* reads neither the old cfg nor health after this */
    s->prober = prober;
    sst_health_destroy(s->health);
    s->health = h;
    sst_config_t *old_cfg = s->cfg;
    s->cfg = cfg;
    s->config_version = cfg->version;
    server_setup_log(s, access_fd);
    sst__prep_commit(s, built);
    server_publish_view(s, v);
    server_arm_health_timer(s);
    sst__sfleet_reloaded(s, old_cfg);
    sst_config_unref(old_cfg);
    s->reloads_ok++;
    sst_info("reloaded %s (config version %llu)", s->config_path,
             (unsigned long long)s->config_version);
    return 0;

fail:
    if (built != NULL)
        sst__prep_abandon(s, built); /* sockets opened for new addresses close */
    if (v != NULL)
        sst__view_unref(v);
    if (prep != NULL)
        sst__prep_free(prep);
    if (h != NULL)
        sst_health_destroy(h);
    if (access_fd > 2)
        close(access_fd);
    sst_config_unref(cfg);
    s->reloads_failed++;
    if (err[0] == 0)
        snprintf(err, err_size, "%s", sst_strerror(rc));
    sst_error("reload rejected, the previous config keeps serving: %s", err);
    return rc;
}

/* ---- stop -------------------------------------------------------------------------------- */

static void server_on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void server_on_stop_poll(uv_timer_t *t)
{
    sst_server_t *s = t->data;
    for (unsigned i = 0; i < s->n_workers; i++)
        if (s->workers[i].started && !atomic_load(&s->workers[i].exited))
            return;
    for (unsigned i = 0; i < s->n_workers; i++)
        sst__worker_join(&s->workers[i]);
    uv_timer_stop(t);
    if (s->handles_open) {
        s->handles_open = false;
        uv_close((uv_handle_t *)&s->passive_async, server_on_handle_closed);
        uv_close((uv_handle_t *)&s->health_timer, server_on_handle_closed);
        uv_close((uv_handle_t *)&s->stop_timer, server_on_handle_closed);
    }
}

void sst_server_stop(sst_server_t *s, bool graceful)
{
    bool first = !s->stopping;
    s->stopping = true;
    if (first) {
        if (s->prober != NULL) {
            sst_prober_stop(s->prober, NULL, NULL);
            s->prober = NULL;
        }
        sst__admin_stop(s);
        sst__server_tls_stop(s);
        sst__sfleet_stop(s);
        if (s->handles_open) {
            uv_timer_stop(&s->health_timer);
            uv_timer_start(&s->stop_timer, server_on_stop_poll, STOP_POLL_MS, STOP_POLL_MS);
        }
        sst_info("%s",
                 graceful ? "shutting down: finishing in-flight requests" : "shutting down now");
    }
    for (unsigned i = 0; i < s->n_workers; i++)
        sst__worker_request_stop(&s->workers[i], graceful ? SST_STOP_GRACEFUL : SST_STOP_NOW);
}

/* Frees what the server holds once no thread and no handle of its own remains. Returns 0, or
 * SST_EBUSY when a worker's loop ended with a handle still open. */
static int server_release(sst_server_t *s)
{
    int rc = 0;
    for (unsigned i = 0; i < s->n_workers; i++)
        if (s->workers[i].loop_unclean)
            rc = SST_EBUSY;
    sst__lsocks_free(s);
    if (s->view != NULL)
        sst__view_unref(s->view);
    if (s->health != NULL)
        sst_health_destroy(s->health);
    sst_config_unref(s->cfg);
    sst__prep_names_free(s);
    if (s->old_access_fd > 2)
        close(s->old_access_fd);
    if (s->access_fd > 2)
        close(s->access_fd);
    free(s->workers);
    free(s->config_path);
    free(s->ready_file);
    free(s);
    return rc;
}

int sst_server_free(sst_server_t *s)
{
    if (s == NULL)
        return 0;
    for (unsigned i = 0; i < s->n_workers; i++)
        sst__worker_join(&s->workers[i]);
    return server_release(s);
}
