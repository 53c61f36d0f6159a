/* The control plane's state (server.c), for the modules that work on it from the control
 * thread: view.c (metric names, listening sockets), the admin API and the metrics exposition.
 * Workers never see it. */
#ifndef SST_CORE_SERVER_INT_H
#define SST_CORE_SERVER_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <uv.h>

#include "core/metrics.h"
#include "core/view.h"
#include "core/worker.h"
#include "health/probe.h"
#include "sidestep/config.h"
#include "sidestep/health.h"
#include "sidestep/server.h"

struct sst_admin_s; /* the admin listener (admin/admin.c) */

struct sst_sfleet_s; /* fleet mode's server side (core/server_fleet.c) */

struct sst_server_s {
    uv_loop_t *loop;
    sst_config_t *cfg;
    char *config_path; /* NULL for the embedded demo */
    uint64_t config_version;
    sst_health_t *health;
    sst_prober_t *prober;
    sst_view_t *view; /* current */
    uint64_t generation;
    unsigned n_workers;
    sst_worker_t *workers;
    atomic_uint_fast64_t n_conns; /* all workers */
    uv_async_t passive_async;
    uv_timer_t health_timer;
    uv_timer_t stop_timer; /* polls for the workers' end during shutdown */
    bool handles_open;
    unsigned abort_closes;           /* a failed start: handles still to close before the free */
    const sst_config_t *pending_cfg; /* during sst_health_create: events name its backends */
    const sst_prep_t *pending_prep;
    int access_fd, old_access_fd;
    struct sockaddr_storage admin_bound;
    sst_lsock_t *lsocks; /* every listener address ever opened (see sst_lsock_t) */
    struct sst_admin_s *admin;
    uint64_t start_ms; /* uv_now at start */
    uint64_t start_epoch_ms;
    uint64_t rng;
    bool stopping;
    int exit_code;
    char *ready_file;
    /* metric name registries (control thread only; ids are stable for the process life) */
    char *route_names[SST_M_ROUTES];
    char *region_names[SST_M_REGIONS];
    char *backend_names[SST_M_BACKENDS];
    size_t n_route_names, n_region_names, n_backend_names;
    /* health metrics, control thread only */
    uint64_t transitions[SST_M_BACKENDS][2]; /* backend: to down, to up */
    uint64_t region_transitions[SST_M_REGIONS][2];
    uint64_t probes[SST_M_BACKENDS][SST_REASON__COUNT];
    uint64_t probe_lat[SST_M_BACKENDS][SST_M_LAT_BUCKETS + 1];
    uint64_t probe_lat_sum_us[SST_M_BACKENDS];
    uint64_t events_total[SST_REASON__COUNT];
    uint64_t reloads_ok, reloads_failed;
    uint64_t passive_signals[SST_PASSIVE__COUNT];
    uv_timer_t *tls_timer; /* TLS housekeeping (server_tls.c) */

    /* fleet mode (core/server_fleet.c) */
    struct sst_sfleet_s *fleet; /* NULL outside fleet mode */
    bool accept_held;           /* views tell workers to hold accepting (fleet startup) */
};

/* For admin.c and metrics.c (control thread only). */
void sst__server_publish(sst_server_t *s);
/* Applies an operator action to the region or backend (HOST:PORT) called `name`. Returns 0,
 * SST_ENOENT (unknown name) or SST_EINVAL (action does not apply), with err filled. */
int sst__server_admin_op(sst_server_t *s, bool region, const char *name, sst_admin_op_t op,
                         const char *reason, uint64_t ttl_ms, char *err, size_t err_size);

/* TLS housekeeping (server_tls.c): the ticket-key rotation timer. Start returns 0 or
 * SST_ENOMEM; stop is idempotent (the timer frees itself once closed). */
int sst__server_tls_start(sst_server_t *s);
void sst__server_tls_stop(sst_server_t *s);

/* The admin listener sits a layer above (admin/admin.c); the server starts and stops it
 * through these two entry points, declared here so that core includes nothing above itself.
 * Start returns 0 (s->admin set, s->admin_bound the bound address) or a negative error with
 * err filled; stop is idempotent. */
int sst__admin_start(sst_server_t *s, char *err, size_t err_size);
void sst__admin_stop(sst_server_t *s);

#endif
