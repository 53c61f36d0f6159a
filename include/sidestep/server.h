/* The running proxy: workers, health checking, admin API and reload, driven from one control
 * loop (the caller's). main.c owns argv and signals; everything else starts here. */
#ifndef SST_SERVER_H
#define SST_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "sidestep/config.h"

typedef struct sst_server_s sst_server_t;

typedef struct sst_server_opts_s {
    const char *config_path; /* reloaded on SIGHUP / POST /reload; NULL for the demo */
    const char *ready_file;  /* written (JSON, atomically) once every listener is bound */
    unsigned workers;        /* overrides the config's `workers` when not 0 */
} sst_server_opts_t;

/* Starts serving `cfg` (a reference is taken) on `loop`: binds every listener, starts the
 * workers, the probes and the admin listener. Returns 0 and sets *out, or a negative error
 * with a message in err and *out set to NULL. On failure nothing is left running: no thread,
 * no active handle, no listening socket. Handles it made on `loop` may still be closing; the
 * caller's next uv_run (which returns once they are closed) finishes them, before
 * uv_loop_close. The process should exit non-zero. */
int sst_server_start(uv_loop_t *loop, sst_config_t *cfg, const sst_server_opts_t *opts,
                     sst_server_t **out, char *err, size_t err_size);

/* The bound address of listener `i` of the config in force ("127.0.0.1:8080", "[::1]:80"),
 * into buf; "?" when it is unknown. For logs and the ready file (a port 0 shows the one
 * the kernel chose). */
void sst_server_listen_text(const sst_server_t *s, size_t i, char *buf, size_t size);

/* Reloads the config file. On success new requests use the new config while in-flight ones
 * finish with the old; health state of unchanged backends and operator actions carry over.
 * On failure the old config keeps serving. Returns 0 or a negative error with err filled. */
int sst_server_reload(sst_server_t *s, char *err, size_t err_size);

/* Stops: graceful waits for in-flight requests up to timeouts.shutdown, closing idle
 * connections at once; !graceful closes everything now. Asynchronous: uv_run on the control
 * loop returns once every thread and handle is done. Safe to call again (to hurry). */
void sst_server_stop(sst_server_t *s, bool graceful);

/* Frees the server after uv_run returned (NULL is ignored). Returns 0, or SST_EBUSY when a
 * worker's event loop ended with a handle still open: a leak, which the exit status must show
 * (main.c exits 3). */
int sst_server_free(sst_server_t *s);

#endif
