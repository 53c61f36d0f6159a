/* Entry point: argv, config load (or the embedded demo), signals (SIGHUP reload, SIGTERM and
 * SIGINT graceful stop, a second one stops at once), the control loop, the exit status. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>
#include <uv.h>

#include "demo/demo.h"
#include "sidestep/config.h"
#include "sidestep/error.h"
#include "sidestep/log.h"
#include "sidestep/server.h"
#include "sidestep/str.h"
#include "sidestep/tools.h"

static const char usage[] =
    "usage: sidestep [-c FILE] [--ready-file PATH] [--workers N]\n"
    "       sidestep --check FILE\n"
    "       sidestep ctl [--admin HOST:PORT] [--token TOKEN] [--json] COMMAND ...\n"
    "       sidestep drill [--admin HOST:PORT] [--url URL] [options]\n"
    "       sidestep --help | --version\n"
    "\n"
    "A failover and region-routing HTTP/1.1 reverse proxy. While a route's primary region is\n"
    "healthy it proxies to it; when it is down it answers 307 with a Location in a healthy\n"
    "region, so clients re-send the same method and body there.\n"
    "\n"
    "  -c, --config FILE   run with this YAML config (without it: the embedded demo, proxy on\n"
    "                      127.0.0.1:8080 in front of two stub regions started in-process)\n"
    "      --check FILE    validate FILE and exit: 0 when valid, 1 with file:line:col: key: error\n"
    "      --ready-file P  write {\"pid\",\"listen\",\"admin\"} as JSON to P once listening\n"
    "      --workers N     event-loop threads (default: the config's `workers`, else one per "
    "core)\n"
    "  ctl COMMAND         talk to the admin API: status, metrics, reload, drain, undrain,\n"
    "                      force-down, force-up, clear (see `sidestep ctl --help`)\n"
    "  drill               run a failover drill against a running instance (`sidestep drill "
    "--help`)\n"
    "\n"
    "Signals: SIGHUP reloads the config; SIGTERM or SIGINT stop gracefully (a second one stops\n"
    "at once). Exit status: 0 after a clean stop, 1 when the config or the start failed, 2 for\n"
    "bad arguments, 3 when the stop left an event-loop handle open (a bug: please report it).\n"
    "Docs: docs/configuration.md, docs/operations.md.\n";

/* Exit status after a stop that left a libuv handle open (the server's loop or a worker's). */
#define MAIN_EXIT_UNCLEAN 3

typedef struct main_state_s {
    uv_loop_t *loop;
    sst_server_t *server;
    uv_signal_t sig_hup, sig_term, sig_int;
    int stops;
    sst_demo_t *demo; /* the embedded demo's stand-in regions, or NULL */
} main_state_t;

static void main_on_signal(uv_signal_t *h, int signum)
{
    main_state_t *m = h->data;
    if (signum == SIGHUP) {
        char err[512];
        if (m->server != NULL)
            sst_server_reload(m->server, err, sizeof(err)); /* logs its own outcome */
        return;
    }
    m->stops++;
    if (m->server != NULL)
        sst_server_stop(m->server, m->stops == 1);
    sst_demo_stop(m->demo);
    m->demo = NULL;
}

static int main_check(const char *path)
{
    sst_config_t *cfg = NULL;
    sst_diag_t diag;
    char msg[1024];
    memset(&diag, 0, sizeof(diag));
    if (sst_config_load(path, &cfg, &diag) != 0) {
        fprintf(stderr, "%s\n", sst_diag_format(&diag, msg, sizeof(msg)));
        return 1;
    }
    printf("%s: ok (%zu listener%s, %zu region%s, %zu backend%s, %zu route%s)\n", path,
           cfg->n_listeners, cfg->n_listeners == 1 ? "" : "s", cfg->n_regions,
           cfg->n_regions == 1 ? "" : "s", cfg->n_backends, cfg->n_backends == 1 ? "" : "s",
           cfg->n_routes, cfg->n_routes == 1 ? "" : "s");
    sst_config_unref(cfg);
    return 0;
}

/* The demo's stand-in regions, in-process: us-east on :9001 and :9002, eu-west on :9101. */
static int main_start_demo(main_state_t *m, const sst_config_t *cfg)
{
    char err[512];
    int rc = sst_demo_start(m->loop, cfg, &m->demo, err, sizeof(err));

    if (rc != 0)
        fprintf(stderr, "sidestep: demo backend %s\n", err);
    return rc;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *ready_file = NULL;
    unsigned workers = 0;
    main_state_t m;
    sst_config_t *cfg = NULL;
    sst_diag_t diag;
    char err[1024] = "";
    char addr[sizeof(cfg->listeners[0].addr.text)] = "";
    int rc;

    if (argc > 1 && strcmp(argv[1], "ctl") == 0)
        return sst_ctl_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "drill") == 0)
        return sst_drill_main(argc - 1, argv + 1);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("sidestep %s (libuv %s, llhttp %d.%d.%d)\n", SST_VERSION, uv_version_string(),
                   LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
            return 0;
        } else if (strcmp(a, "--check") == 0 && i + 1 < argc) {
            return main_check(argv[i + 1]);
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(a, "--ready-file") == 0 && i + 1 < argc) {
            ready_file = argv[++i];
        } else if (strcmp(a, "--workers") == 0 && i + 1 < argc) {
            uint64_t n;
            if (sst_str_to_u64(sst_str_c(argv[++i]), SST_MAX_WORKERS, &n) != 0 || n == 0) {
                fprintf(stderr, "sidestep: --workers wants 1..%d\n", SST_MAX_WORKERS);
                return 2;
            }
            workers = (unsigned)n;
        } else {
            fprintf(stderr, "sidestep: unknown argument '%s'\n\n%s", a, usage);
            return 2;
        }
    }

    memset(&diag, 0, sizeof(diag));
    rc = config_path != NULL ? sst_config_load(config_path, &cfg, &diag)
                             : sst_config_demo(&cfg, &diag);
    if (rc != 0) {
        fprintf(stderr, "sidestep: %s\n", sst_diag_format(&diag, err, sizeof(err)));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(&m, 0, sizeof(m));
    m.loop = uv_default_loop();
    /* Handlers first: a signal that arrives while starting (a supervisor, or a test, may stop
     * sidestep as soon as the ready file appears) is queued by libuv and handled by uv_run
     * instead of killing the process with the default action. */
    uv_signal_init(m.loop, &m.sig_hup);
    uv_signal_init(m.loop, &m.sig_term);
    uv_signal_init(m.loop, &m.sig_int);
    m.sig_hup.data = m.sig_term.data = m.sig_int.data = &m;
    uv_signal_start(&m.sig_hup, main_on_signal, SIGHUP);
    uv_signal_start(&m.sig_term, main_on_signal, SIGTERM);
    uv_signal_start(&m.sig_int, main_on_signal, SIGINT);
    /* signals must not keep the loop alive once the server is done */
    uv_unref((uv_handle_t *)&m.sig_hup);
    uv_unref((uv_handle_t *)&m.sig_term);
    uv_unref((uv_handle_t *)&m.sig_int);
    sst_server_opts_t opts = {
        .config_path = config_path, .ready_file = ready_file, .workers = workers};
    rc = cfg->demo ? main_start_demo(&m, cfg) : 0; /* reports its own error */
    if (rc == 0) {
        rc = sst_server_start(m.loop, cfg, &opts, &m.server, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "sidestep: %s\n", err);
    }
    sst_config_unref(cfg);
    if (rc != 0) {
        sst_demo_stop(m.demo);
        m.demo = NULL;
    } else if (m.demo != NULL) {
        /* the address the listener bound, as the ready file reports it */
        sst_server_listen_text(m.server, 0, addr, sizeof(addr));
        fprintf(stderr,
                "\nsidestep demo: proxy on http://%s in front of us-east (127.0.0.1:9001, :9002)"
                " and eu-west (127.0.0.1:9101)\n"
                "  try:      curl -i http://%s/hello\n"
                "  failover: curl -s -X POST http://127.0.0.1:9901/regions/us-east/force-down "
                "-d '{\"reason\":\"demo\",\"ttl\":\"2m\"}'\n"
                "            curl -i -X POST --data hello http://%s/orders   (307 to eu-west; "
                "add -L to follow)\n"
                "  status:   ./build/sidestep ctl status\n\n",
                addr, addr, addr);
    }
    uv_run(m.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&m.sig_hup, NULL);
    uv_close((uv_handle_t *)&m.sig_term, NULL);
    uv_close((uv_handle_t *)&m.sig_int, NULL);
    uv_run(m.loop, UV_RUN_DEFAULT);
    int free_rc = sst_server_free(m.server);
    int close_rc = uv_loop_close(m.loop);
    if (close_rc != 0)
        sst_error("control loop closed with handles still open");
    if (rc != 0)
        return 1;
    /* a handle left open at exit is a leak: the status says so, for tests and supervisors */
    return free_rc != 0 || close_rc != 0 ? MAIN_EXIT_UNCLEAN : 0;
}
