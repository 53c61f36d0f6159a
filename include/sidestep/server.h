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
 * with a message in err (the process should exit non-zero: nothing is left running). */
int sst_server_start(uv_loop_t *loop, sst_config_t *cfg, const sst_server_opts_t *opts,
                     sst_server_t **out, char *err, size_t err_size);

/* Reloads the config file. On success new requests use the new config while in-flight ones
 * finish with the old; health state of unchanged backends and operator actions carry over.
 * On failure the old config keeps serving. Returns 0 or a negative error with err filled. */
int sst_server_reload(sst_server_t *s, char *err, size_t err_size);

/* Stops: graceful waits for in-flight requests up to timeouts.shutdown, closing idle
 * connections at once; !graceful closes everything now. Asynchronous: uv_run on the control
 * loop returns once every thread and handle is done. Safe to call again (to hurry). */
void sst_server_stop(sst_server_t *s, bool graceful);

/* Frees the server after uv_run returned. */
void sst_server_free(sst_server_t *s);

#endif
