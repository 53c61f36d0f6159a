/* server.c and worker.c lifecycle contracts (issue 11, item 6), with failures injected into the
 * libuv calls the product cannot make fail on demand (this binary is linked with
 * -Wl,--wrap=uv_tcp_init,--wrap=uv_async_init,--wrap=uv_thread_create):
 *  - a start that fails leaves nothing running: *out is NULL, no thread, no descriptor, and the
 *    caller's loop closes cleanly, whichever step failed;
 *  - a worker that fails before its thread starts gives back its loop and buffers;
 *  - uv_tcp_init failing for a client connection, an upstream connection or an admin
 *    connection costs that connection only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/server_int.h"
#include "core/view.h"
#include "sidestep/error.h"
#include "sidestep/server.h"

/* ---- fault injection ---------------------------------------------------------------------- */

enum { ANY_LOOP = 0, CONTROL_LOOP, WORKER_LOOP };

typedef struct fault_s {
    atomic_int where; /* which loops the fault applies to */
    atomic_int skip;  /* matching calls to let through first */
    atomic_int fail;  /* matching calls to fail after those */
} fault_t;

static fault_t tcp_init_fault, async_init_fault, thread_fault;
static uv_loop_t ctl_loop;

static void fault_arm(fault_t *f, int where, int skip, int fail)
{
    atomic_store(&f->where, where);
    atomic_store(&f->skip, skip);
    atomic_store(&f->fail, fail);
}

static void faults_clear(void)
{
    fault_arm(&tcp_init_fault, ANY_LOOP, 0, 0);
    fault_arm(&async_init_fault, ANY_LOOP, 0, 0);
    fault_arm(&thread_fault, ANY_LOOP, 0, 0);
}

static bool fault_hit(fault_t *f, const uv_loop_t *loop)
{
    int where = atomic_load(&f->where);
    if ((where == CONTROL_LOOP && loop != &ctl_loop) || (where == WORKER_LOOP && loop == &ctl_loop))
        return false;
    if (atomic_load(&f->skip) > 0 && atomic_fetch_sub(&f->skip, 1) > 0)
        return false;
    return atomic_load(&f->fail) > 0 && atomic_fetch_sub(&f->fail, 1) > 0;
}

int __real_uv_tcp_init(uv_loop_t *loop, uv_tcp_t *handle);
int __wrap_uv_tcp_init(uv_loop_t *loop, uv_tcp_t *handle);
int __real_uv_async_init(uv_loop_t *loop, uv_async_t *handle, uv_async_cb cb);
int __wrap_uv_async_init(uv_loop_t *loop, uv_async_t *handle, uv_async_cb cb);
int __real_uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg);
int __wrap_uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg);

int __wrap_uv_tcp_init(uv_loop_t *loop, uv_tcp_t *handle)
{
    return fault_hit(&tcp_init_fault, loop) ? UV_ENOMEM : __real_uv_tcp_init(loop, handle);
}

int __wrap_uv_async_init(uv_loop_t *loop, uv_async_t *handle, uv_async_cb cb)
{
    return fault_hit(&async_init_fault, loop) ? UV_EMFILE : __real_uv_async_init(loop, handle, cb);
}

int __wrap_uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg)
{
    return fault_hit(&thread_fault, NULL) ? UV_EAGAIN : __real_uv_thread_create(tid, entry, arg);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int open_fds(void)
{
    return count_dir("/proc/self/fd") - 1; /* not the directory stream's own descriptor */
}

static int threads(void)
{
    return count_dir("/proc/self/task");
}

/* A port on 127.0.0.1 nothing listens on (bound, then released): connects are refused. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static sst_config_t *load(unsigned workers, int admin_port)
{
    char yaml[1024], admin[96] = "";
    sst_config_t *cfg = NULL;
    sst_diag_t diag;
    if (admin_port >= 0)
        snprintf(admin, sizeof(admin), "admin: {address: \"127.0.0.1:%d\"}\n", admin_port);
    snprintf(yaml, sizeof(yaml),
             "workers: %u\n"
             "listen: [\"127.0.0.1:0\"]\n"
             "%s"
             "regions: [{name: a, url: \"http://a.example\", backends: [\"127.0.0.1:%d\"],"
             " health: {enabled: false, initial: up}}]\n"
             "log: {access: \"off\", level: error}\n",
             workers, admin, closed_port());
    memset(&diag, 0, sizeof(diag));
    assert_int_equal(sst_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &diag), 0);
    return cfg;
}

/* Runs the control loop until nothing in it is active (handles closing included), bounded. */
static void drain_loop(void)
{
    for (int i = 0; i < 1000 && uv_run(&ctl_loop, UV_RUN_NOWAIT) != 0; i++)
        pause_ms(1);
    assert_int_equal(uv_loop_alive(&ctl_loop), 0);
}

static void stop_and_free(sst_server_t *s)
{
    sst_server_stop(s, false);
    for (int i = 0; i < 5000 && uv_run(&ctl_loop, UV_RUN_NOWAIT) != 0; i++)
        pause_ms(1);
    assert_int_equal(uv_loop_alive(&ctl_loop), 0);
    assert_int_equal(sst_server_free(s), 0); /* every worker loop closed cleanly */
}

/* A blocking client connection to 127.0.0.1:port with a 3 s receive timeout. */
static int client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 3};
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Sends a GET and reads its answer (up to `size` bytes, one read after the head's first
 * bytes arrive is enough for sidestep's short answers). Returns the bytes read, 0 on close. */
static ssize_t exchange(int fd, char *buf, size_t size)
{
    static const char req[] = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(req) - 1));
    ssize_t n = recv(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    return n;
}

static int listen_port(sst_server_t *s)
{
    char text[80];
    sst_server_listen_text(s, 0, text, sizeof(text));
    return atoi(strrchr(text, ':') + 1);
}

/* ---- a failed start leaves nothing running ------------------------------------------------- */

typedef struct start_case_s {
    const char *name;
    fault_t *fault; /* NULL: no injected fault */
    int where, skip;
    bool admin_taken; /* the admin address is in use */
    bool bad_ready;   /* the ready file cannot be written */
} start_case_t;

static void test_failed_start_leaves_nothing(void **state)
{
    static const start_case_t cases[] = {
        {"the server's async handle", &async_init_fault, CONTROL_LOOP, 0, false, false},
        {"worker 0's loop eventfd", &async_init_fault, WORKER_LOOP, 0, false, false},
        {"worker 1's loop eventfd", &async_init_fault, WORKER_LOOP, 1, false, false},
        {"worker 0's thread", &thread_fault, ANY_LOOP, 0, false, false},
        {"worker 1's thread", &thread_fault, ANY_LOOP, 1, false, false},
        {"the admin listener's handle", &tcp_init_fault, CONTROL_LOOP, 0, false, false},
        {"the admin address in use", NULL, 0, 0, true, false},
        {"the ready file", NULL, 0, 0, false, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const start_case_t *c = &cases[i];
        int taken = -1, admin_port = 0;
        if (c->admin_taken) {
            struct sockaddr_in a = {.sin_family = AF_INET,
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            socklen_t len = sizeof(a);
            taken = socket(AF_INET, SOCK_STREAM, 0);
            assert_int_equal(bind(taken, (struct sockaddr *)&a, sizeof(a)), 0);
            assert_int_equal(listen(taken, 1), 0);
            assert_int_equal(getsockname(taken, (struct sockaddr *)&a, &len), 0);
            admin_port = ntohs(a.sin_port);
        }
        sst_config_t *cfg = load(2, admin_port);
        sst_server_opts_t opts = {.ready_file = c->bad_ready ? "/nonexistent/dir/ready" : NULL};
        int fds = open_fds(), nthreads = threads();
        static char sentinel;
        sst_server_t *s = (sst_server_t *)&sentinel; /* must be overwritten with NULL */
        char err[256] = "";

        faults_clear();
        if (c->fault != NULL)
            fault_arm(c->fault, c->where, c->skip, 1);
        int rc = sst_server_start(&ctl_loop, cfg, &opts, &s, err, sizeof(err));
        faults_clear();
        if (rc == 0)
            fail_msg("%s: the start succeeded", c->name);
        if (s != NULL)
            fail_msg("%s: *out is not NULL after a failed start", c->name);
        if (err[0] == 0)
            fail_msg("%s: no error message", c->name);
        if (threads() != nthreads)
            fail_msg("%s: %d threads after the failed start, %d before", c->name, threads(),
                     nthreads);
        drain_loop();
        if (open_fds() != fds)
            fail_msg("%s: %d descriptors after the failed start, %d before (%s)", c->name,
                     open_fds(), fds, err);
        sst_config_unref(cfg);
        if (taken >= 0)
            close(taken);
    }
}

static void test_start_and_stop(void **state)
{
    int fds = open_fds(), nthreads = threads();
    sst_config_t *cfg = load(2, 0);
    sst_server_t *s = NULL;
    char err[256] = "", buf[512];
    assert_int_equal(sst_server_start(&ctl_loop, cfg, NULL, &s, err, sizeof(err)), 0);
    sst_config_unref(cfg);
    assert_non_null(s);
    assert_int_equal(threads(), nthreads + 2);
    int fd = client(listen_port(s));
    assert_true(exchange(fd, buf, sizeof(buf)) > 0);
    assert_memory_equal(buf, "HTTP/1.1 502 ", 13); /* the backend refuses */
    close(fd);
    stop_and_free(s);
    assert_int_equal(threads(), nthreads);
    assert_int_equal(open_fds(), fds);
}

/* ---- uv_tcp_init failing on the request path ----------------------------------------------- */

static void test_client_handle_init_fails(void **state)
{
    sst_config_t *cfg = load(1, -1);
    sst_server_t *s = NULL;
    char err[256] = "", buf[512];
    assert_int_equal(sst_server_start(&ctl_loop, cfg, NULL, &s, err, sizeof(err)), 0);
    sst_config_unref(cfg);
    int port = listen_port(s);

    /* the accepted client's handle cannot be set up: that client is closed, nobody else
     * notices */
    fault_arm(&tcp_init_fault, WORKER_LOOP, 0, 1);
    int fd = client(port);
    ssize_t n = exchange(fd, buf, sizeof(buf));
    assert_true(n <= 0);
    close(fd);
    /* when even the handle to drop it with fails, the connection stays queued, the listener
     * pauses and the worker's tick takes it up again: this client is served late */
    fault_arm(&tcp_init_fault, WORKER_LOOP, 0, 2);
    fd = client(port);
    assert_true(exchange(fd, buf, sizeof(buf)) > 0);
    assert_memory_equal(buf, "HTTP/1.1 502 ", 13);
    assert_int_equal(atomic_load(&tcp_init_fault.fail), 0);
    close(fd);
    faults_clear();
    fd = client(port);
    assert_true(exchange(fd, buf, sizeof(buf)) > 0);
    assert_memory_equal(buf, "HTTP/1.1 502 ", 13);
    close(fd);
    stop_and_free(s);
}

static void test_upstream_handle_init_fails(void **state)
{
    sst_config_t *cfg = load(1, -1);
    sst_server_t *s = NULL;
    char err[256] = "", buf[512];
    assert_int_equal(sst_server_start(&ctl_loop, cfg, NULL, &s, err, sizeof(err)), 0);
    sst_config_unref(cfg);
    int fd = client(listen_port(s));
    assert_true(exchange(fd, buf, sizeof(buf)) > 0); /* accepted: the next init is upstream */
    fault_arm(&tcp_init_fault, WORKER_LOOP, 0, 1);
    assert_true(exchange(fd, buf, sizeof(buf)) > 0);
    faults_clear();
    /* a failed connect attempt: the client is answered, the connection stays usable */
    assert_memory_equal(buf, "HTTP/1.1 502 ", 13);
    assert_non_null(strstr(buf, "\r\n\r\n502 Bad Gateway"));
    assert_true(exchange(fd, buf, sizeof(buf)) > 0);
    assert_memory_equal(buf, "HTTP/1.1 502 ", 13);
    close(fd);
    stop_and_free(s);
}

static void test_admin_handle_init_fails(void **state)
{
    sst_config_t *cfg = load(1, 0);
    sst_server_t *s = NULL;
    char err[256] = "", buf[2048];
    assert_int_equal(sst_server_start(&ctl_loop, cfg, NULL, &s, err, sizeof(err)), 0);
    sst_config_unref(cfg);
    int port = ntohs(((struct sockaddr_in *)&s->admin_bound)->sin_port);

    /* the admin API runs on this thread's loop: drive it while the client waits */
    fault_arm(&tcp_init_fault, CONTROL_LOOP, 0, 1);
    int fd = client(port);
    static const char req[] = "GET /status HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(req) - 1));
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    ssize_t n = -1;
    for (int i = 0; i < 3000 && n < 0; i++) {
        uv_run(&ctl_loop, UV_RUN_NOWAIT);
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n < 0)
            pause_ms(1);
    }
    faults_clear();
    /* the failed init cost a retry (the connection waited in the backlog), not the client */
    assert_true(n > 12);
    buf[n] = 0;
    assert_memory_equal(buf, "HTTP/1.1 200 ", 13);
    close(fd);
    stop_and_free(s);
}

static int setup(void **state)
{
    uv_tcp_t t;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    faults_clear();
    if (uv_loop_init(&ctl_loop) != 0)
        return -1;
    /* libuv keeps a spare descriptor per loop from its first uv_listen on (for EMFILE): open
     * it now, so that descriptor counts compare like with like */
    if (uv_tcp_init(&ctl_loop, &t) != 0 || uv_tcp_bind(&t, (struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&t, 1, NULL) != 0)
        return -1;
    uv_close((uv_handle_t *)&t, NULL);
    return uv_run(&ctl_loop, UV_RUN_DEFAULT);
}

static int teardown(void **state)
{
    return uv_loop_close(&ctl_loop); /* every handle of every case closed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_start_leaves_nothing),
        cmocka_unit_test(test_start_and_stop),
        cmocka_unit_test(test_client_handle_init_fails),
        cmocka_unit_test(test_upstream_handle_init_fails),
        cmocka_unit_test(test_admin_handle_init_fails),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
