/* sidestep-stub: the scripted stub origin (tests/support/stub) as a program for the integration
 * tests and bench/, hashing request bodies with libcrypto SHA-256. Prints its port once
 * listening; exits 0 on SIGTERM/SIGINT only when every handle closed cleanly. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <uv.h>

#include "sidestep/error.h"
#include "sidestep/str.h"
#include "stub.h"

#define STUB_MAX_WORKERS 64

typedef struct stub_worker_s {
    uv_loop_t loop;
    uv_async_t stop;
    sst_stub_t *origin; /* this worker's stub origin */
    pthread_t thread;
    bool started;
    bool loop_ready;
    bool stop_ready;
} stub_worker_t;

typedef struct stub_s {
    stub_worker_t workers[STUB_MAX_WORKERS];
    unsigned nworkers;
    uv_signal_t sigterm;
    uv_signal_t sigint;
} stub_t;

/* --- SHA-256 through EVP ---------------------------------------------------------------------- */

static void *stub_sha_create(void *arg)
{
    return EVP_MD_CTX_new();
}

static int stub_sha_reset(void *state)
{
    return EVP_DigestInit_ex(state, EVP_sha256(), NULL) == 1 ? 0 : SST_EIO;
}

static int stub_sha_update(void *state, const void *data, size_t len)
{
    return EVP_DigestUpdate(state, data, len) == 1 ? 0 : SST_EIO;
}

static int stub_sha_final(void *state, char *hex, size_t cap)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_DigestFinal_ex(state, md, &n) != 1 || (size_t)n * 2 + 1 > cap)
        return SST_EIO;
    for (unsigned int i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * n] = '\0';
    return (int)(2 * n);
}

static void stub_sha_destroy(void *state)
{
    EVP_MD_CTX_free(state);
}

static const sst_stub_hasher_t stub_sha256 = {
    .label = "sha256",
    .create = stub_sha_create,
    .reset = stub_sha_reset,
    .update = stub_sha_update,
    .final = stub_sha_final,
    .destroy = stub_sha_destroy,
};

/* --- arguments -------------------------------------------------------------------------------- */

static void stub_usage(FILE *f)
{
    fprintf(f, "usage: sidestep-stub --listen HOST:PORT [--name NAME] [--status N] [--size N]\n"
               "                     [--delay MS] [--chunked] [--no-length] [--fail MODE]\n"
               "                     [--health-status N] [--no-hash] [--workers N]\n"
               "                     [--proxy-protocol]\n"
               "Prints the bound port on stdout, then serves until SIGTERM or SIGINT.\n"
               "Fail modes:");
    for (unsigned i = 0; i < SST_STUB_FAIL_COUNT_; i++)
        fprintf(f, " %s", sst_stub_fail_name((sst_stub_fail_t)i));
    fprintf(f, "\n");
}

static int stub_number(const char *opt, const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (text == NULL || sst_str_to_u64(sst_str_c(text), max, out) != 0 || *out < min) {
        fprintf(stderr, "sidestep-stub: %s needs a number from %llu to %llu\n", opt,
                (unsigned long long)min, (unsigned long long)max);
        return SST_EINVAL;
    }
    return 0;
}

/* Fills opts; returns 0, 1 for --help, or SST_EINVAL after printing why. */
static int stub_parse_args(int argc, char **argv, sst_stub_opts_t *opts, const char **listen,
                           unsigned *workers)
{
    uint64_t n;
    bool hash = true;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            stub_usage(stdout);
            return 1;
        } else if (strcmp(a, "--listen") == 0 && v != NULL) {
            *listen = v;
        } else if (strcmp(a, "--name") == 0 && v != NULL) {
            opts->name = v;
        } else if (strcmp(a, "--status") == 0) {
            if (stub_number(a, v, 200, 599, &n) != 0)
                return SST_EINVAL;
            opts->status = (uint16_t)n;
        } else if (strcmp(a, "--health-status") == 0) {
            if (stub_number(a, v, 200, 599, &n) != 0)
                return SST_EINVAL;
            opts->health_status = (uint16_t)n;
        } else if (strcmp(a, "--size") == 0) {
            if (stub_number(a, v, 0, (uint64_t)1 << 40, &opts->size) != 0)
                return SST_EINVAL;
            opts->fixed_size = true;
        } else if (strcmp(a, "--delay") == 0) {
            if (stub_number(a, v, 0, 3600000, &opts->delay_ms) != 0)
                return SST_EINVAL;
        } else if (strcmp(a, "--workers") == 0) {
            if (stub_number(a, v, 1, STUB_MAX_WORKERS, &n) != 0)
                return SST_EINVAL;
            *workers = (unsigned)n;
        } else if (strcmp(a, "--fail") == 0 && v != NULL) {
            if (sst_stub_fail_parse(sst_str_c(v), &opts->fail) != 0) {
                fprintf(stderr, "sidestep-stub: unknown fail mode '%s'\n", v);
                stub_usage(stderr);
                return SST_EINVAL;
            }
        } else {
            takes = false;
            if (strcmp(a, "--chunked") == 0) {
                opts->chunked = true;
            } else if (strcmp(a, "--no-length") == 0) {
                opts->no_length = true;
            } else if (strcmp(a, "--no-hash") == 0) {
                hash = false;
            } else if (strcmp(a, "--proxy-protocol") == 0) {
                opts->proxy_protocol = true;
            } else {
                fprintf(stderr, "sidestep-stub: unknown or incomplete option '%s'\n", a);
                stub_usage(stderr);
                return SST_EINVAL;
            }
        }
        if (takes)
            i++;
    }
    if (*listen == NULL) {
        fprintf(stderr, "sidestep-stub: --listen HOST:PORT is required\n");
        return SST_EINVAL;
    }
    opts->hasher = hash ? &stub_sha256 : NULL;
    return 0;
}

/* --- workers and signals ------------------------------------------------------------------- */

static void stub_on_async_closed(uv_handle_t *handle)
{
}

/* Runs on a worker's own loop thread. */
static void stub_on_stop(uv_async_t *async)
{
    stub_worker_t *w = async->data;

    if (w->origin != NULL)
        (void)sst_stub_stop(w->origin, NULL, NULL);
    w->origin = NULL;
    uv_close((uv_handle_t *)&w->stop, stub_on_async_closed);
}

static void stub_on_signal(uv_signal_t *sig, int signum)
{
    stub_t *stub = sig->data;

    for (unsigned i = 0; i < stub->nworkers; i++)
        uv_async_send(&stub->workers[i].stop); /* worker 0 is this loop: same path */
    uv_close((uv_handle_t *)&stub->sigterm, NULL);
    uv_close((uv_handle_t *)&stub->sigint, NULL);
}

static void *stub_thread(void *arg)
{
    stub_worker_t *w = arg;

    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Starts worker i's origin on its own loop; with several workers they share the port that worker
 * 0 bound through SO_REUSEPORT. */
static int stub_start_worker(stub_worker_t *w, const char *addr, const sst_stub_opts_t *opts)
{
    int err = uv_loop_init(&w->loop);

    if (err != 0)
        return err;
    w->loop_ready = true;
    err = uv_async_init(&w->loop, &w->stop, stub_on_stop);
    if (err != 0)
        return err;
    w->stop_ready = true;
    w->stop.data = w;
    return sst_stub_start(&w->loop, addr, opts, &w->origin);
}

/* Closes a loop that never ran or finished running; its result proves no handle leaked. */
static int stub_close_loop(stub_worker_t *w)
{
    int rc;

    if (!w->loop_ready)
        return 0;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&w->loop);
    if (rc != 0)
        fprintf(stderr, "sidestep-stub: loop did not close cleanly: %s\n", sst_strerror(rc));
    return rc;
}

static int stub_bind_all(stub_t *stub, const char *listen, sst_stub_opts_t *opts)
{
    char addr[128];
    const char *colon = strrchr(listen, ':');
    int err;

    opts->reuseport = stub->nworkers > 1;
    err = stub_start_worker(&stub->workers[0], listen, opts);
    if (err != 0 || stub->nworkers == 1 || colon == NULL)
        return err;
    /* Later workers bind the port worker 0 got, which matters when it was 0. */
    if (snprintf(addr, sizeof(addr), "%.*s:%u", (int)(colon - listen), listen,
                 sst_stub_port(stub->workers[0].origin)) >= (int)sizeof(addr))
        return SST_EINVAL;
    for (unsigned i = 1; i < stub->nworkers; i++) {
        err = stub_start_worker(&stub->workers[i], addr, opts);
        if (err != 0)
            return err;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static stub_t stub;
    sst_stub_opts_t opts;
    const char *listen = NULL;
    unsigned workers = 1;
    int status = 0;
    int err;

    memset(&opts, 0, sizeof(opts));
    err = stub_parse_args(argc, argv, &opts, &listen, &workers);
    if (err != 0)
        return err > 0 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN); /* a peer closing mid-write is an error return, not a death */
    stub.nworkers = workers;

    err = stub_bind_all(&stub, listen, &opts);
    if (err != 0) {
        fprintf(stderr, "sidestep-stub: cannot listen on %s: %s\n", listen, sst_strerror(err));
        for (unsigned i = 0; i < workers; i++) {
            stub_worker_t *w = &stub.workers[i];
            if (w->origin != NULL)
                (void)sst_stub_stop(w->origin, NULL, NULL);
            if (w->stop_ready)
                uv_close((uv_handle_t *)&w->stop, NULL);
            (void)stub_close_loop(w);
        }
        return 1;
    }

    uv_signal_init(&stub.workers[0].loop, &stub.sigterm);
    uv_signal_init(&stub.workers[0].loop, &stub.sigint);
    stub.sigterm.data = &stub;
    stub.sigint.data = &stub;
    uv_signal_start(&stub.sigterm, stub_on_signal, SIGTERM);
    uv_signal_start(&stub.sigint, stub_on_signal, SIGINT);

    for (unsigned i = 1; i < workers; i++) {
        if (pthread_create(&stub.workers[i].thread, NULL, stub_thread, &stub.workers[i]) != 0) {
            fprintf(stderr, "sidestep-stub: cannot start worker thread %u\n", i);
            return 1;
        }
        stub.workers[i].started = true;
    }
    printf("%u\n", sst_stub_port(stub.workers[0].origin));
    fflush(stdout);

    uv_run(&stub.workers[0].loop, UV_RUN_DEFAULT);
    for (unsigned i = 1; i < workers; i++)
        if (stub.workers[i].started)
            pthread_join(stub.workers[i].thread, NULL);
    for (unsigned i = 0; i < workers; i++)
        if (stub_close_loop(&stub.workers[i]) != 0)
            status = 1;
    return status;
}
