/* Handshake load for bench/tls.py: CONNS connections at once, each a new TCP connection that
 * completes a TLS handshake, sends one GET with "Connection: close" and reads the answer to the
 * server's close. "full" never offers a session, so every handshake is a full one; "resume"
 * offers, on each connection slot, the session its previous connection ended with (the latest
 * ticket it received). No certificate check (the server's CPU is what is measured). Prints one
 * JSON line of counts. A bench tool built by CMake (build/tests/tls-load), linked against
 * OpenSSL only: never part of sst_core nor of the sidestep binary.
 *
 *   tls-load [-2] HOST:PORT PATH SECONDS CONNS full|resume    (-2: TLS 1.2 only) */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>

#define MAX_CONNS  1024
#define STALL_NS   5000000000ull /* a connection silent this long counts as an error */
#define N_STATUSES 6

enum { S_IDLE, S_CONNECT, S_HANDSHAKE, S_WRITE, S_READ };
enum { E_CONNECT, E_HANDSHAKE, E_IO, E_TIMEOUT, E_STATUS, N_ERRORS };
static const char *const error_names[N_ERRORS] = {"connect", "handshake", "io", "timeout",
                                                  "no_status"};

typedef struct slot_s {
    int fd, state;
    SSL *ssl;
    SSL_SESSION *sess; /* resume: what the next connection of this slot offers */
    uint64_t since_ns;
    char head[16]; /* the first bytes of the answer: its status line */
    size_t head_len;
} slot_t;

static struct {
    uint64_t handshakes, resumed, answers, errors[N_ERRORS];
    int status[N_STATUSES];
    uint64_t status_n[N_STATUSES];
    char params[128];      /* version, suite and key exchange group of the first handshake */
    uint64_t other_params; /* handshakes that negotiated something else */
} count;

static SSL_CTX *ctx;
static int ep;
static struct sockaddr_in addr;
static char request[512];
static size_t request_len;
static bool resume;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void count_status(const slot_t *s)
{
    int code;

    if (s->head_len < 12 || memcmp(s->head, "HTTP/1.", 7) != 0 ||
        sscanf(s->head + 9, "%3d", &code) != 1) {
        count.errors[E_STATUS]++;
        return;
    }
    count.answers++;
    for (int i = 0; i < N_STATUSES; i++) {
        if (count.status[i] == code || count.status[i] == 0) {
            count.status[i] = code;
            count.status_n[i]++;
            return;
        }
    }
}

/* What the handshake agreed on, so that a run shows every server negotiated the same. */
static void count_params(SSL *ssl)
{
    char now[sizeof count.params];
    int group = SSL_get_negotiated_group(ssl);
    const char *gname = group != 0 ? OBJ_nid2sn(group) : NULL;

    snprintf(now, sizeof now, "%s %s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
             gname != NULL ? gname : "none");
    if (count.params[0] == '\0')
        memcpy(count.params, now, sizeof now);
    else if (strcmp(count.params, now) != 0)
        count.other_params++;
}

/* Ends the slot's connection; an error is counted under `err` (-1: none). */
static void slot_end(slot_t *s, int err)
{
    if (err >= 0)
        count.errors[err]++;
    if (s->ssl != NULL) {
        if (resume && err < 0) {
            SSL_SESSION_free(s->sess);
            s->sess = SSL_get1_session(s->ssl);
        }
        /* the server has closed already: mark the shutdown done instead of sending an alert
         * to a closed socket */
        SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->state = S_IDLE;
}

static void slot_watch(slot_t *s, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = s};
    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

static void slot_start(slot_t *s)
{
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    int one = 1;

    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        count.errors[E_CONNECT]++;
        return;
    }
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->since_ns = now_ns();
    s->head_len = 0;
    if (connect(s->fd, (struct sockaddr *)&addr, sizeof addr) != 0 && errno != EINPROGRESS) {
        slot_end(s, E_CONNECT);
        return;
    }
    s->state = S_CONNECT;
    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
}

/* Waits for what OpenSSL asked for; false when the error is not a wait. */
static bool slot_want(slot_t *s, int rc)
{
    switch (SSL_get_error(s->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        slot_watch(s, EPOLLIN);
        return true;
    case SSL_ERROR_WANT_WRITE:
        slot_watch(s, EPOLLOUT);
        return true;
    default:
        ERR_clear_error();
        return false;
    }
}

static void slot_step(slot_t *s)
{
    char buf[16384];
    int rc, err;
    socklen_t len = sizeof err;

    s->since_ns = now_ns();
    switch (s->state) {
    case S_CONNECT:
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            slot_end(s, E_CONNECT);
            return;
        }
        s->ssl = SSL_new(ctx);
        if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
            slot_end(s, E_HANDSHAKE);
            return;
        }
        SSL_set_connect_state(s->ssl);
        if (resume && s->sess != NULL)
            SSL_set_session(s->ssl, s->sess);
        s->state = S_HANDSHAKE;
        /* fall through */
    case S_HANDSHAKE:
        rc = SSL_do_handshake(s->ssl);
        if (rc != 1) {
            if (!slot_want(s, rc))
                slot_end(s, E_HANDSHAKE);
            return;
        }
        count.handshakes++;
        if (SSL_session_reused(s->ssl))
            count.resumed++;
        count_params(s->ssl);
        s->state = S_WRITE;
        /* fall through */
    case S_WRITE:
        rc = SSL_write(s->ssl, request, (int)request_len);
        if (rc <= 0) {
            if (!slot_want(s, rc))
                slot_end(s, E_IO);
            return;
        }
        s->state = S_READ;
        /* fall through */
    case S_READ:
        for (;;) {
            rc = SSL_read(s->ssl, buf, sizeof buf);
            if (rc > 0) {
                size_t take = sizeof s->head - s->head_len;
                if (take > (size_t)rc)
                    take = (size_t)rc;
                memcpy(s->head + s->head_len, buf, take);
                s->head_len += take;
                continue;
            }
            err = SSL_get_error(s->ssl, rc);
            if (err == SSL_ERROR_ZERO_RETURN) { /* the server's close_notify, or its FIN */
                count_status(s);
                slot_end(s, -1);
            } else if (!slot_want(s, rc)) {
                slot_end(s, E_IO);
            }
            return;
        }
    }
}

static void print_result(double seconds, long conns)
{
    printf("{\"seconds\": %.3f, \"connections\": %ld, \"mode\": \"%s\", \"handshakes\": %llu, "
           "\"resumed\": %llu, \"answers\": %llu, \"negotiated\": \"%s\", "
           "\"other_negotiated\": %llu, \"statuses\": {",
           seconds, conns, resume ? "resume" : "full", (unsigned long long)count.handshakes,
           (unsigned long long)count.resumed, (unsigned long long)count.answers, count.params,
           (unsigned long long)count.other_params);
    for (int i = 0; i < N_STATUSES && count.status[i] != 0; i++)
        printf("%s\"%d\": %llu", i ? ", " : "", count.status[i],
               (unsigned long long)count.status_n[i]);
    printf("}, \"errors\": {");
    for (int i = 0; i < N_ERRORS; i++)
        printf("%s\"%s\": %llu", i ? ", " : "", error_names[i],
               (unsigned long long)count.errors[i]);
    printf("}}\n");
}

/* A whole decimal number in [lo, hi], or -1. */
static long parse_long(const char *text, long lo, long hi)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
        return -1;
    return v;
}

static int usage(void)
{
    fprintf(stderr, "usage: tls-load [-2] HOST:PORT PATH SECONDS CONNS full|resume\n");
    return 2;
}

int main(int argc, char **argv)
{
    static slot_t slots[MAX_CONNS];
    struct epoll_event events[64];
    bool tls12 = argc > 1 && strcmp(argv[1], "-2") == 0;
    char host[64], *colon;
    double seconds;
    long conns, port;
    char *rest;
    uint64_t start, end;

    if (tls12) {
        argv++;
        argc--;
    }
    if (argc != 6)
        return usage();
    snprintf(host, sizeof host, "%s", argv[1]);
    colon = strrchr(host, ':');
    seconds = strtod(argv[3], &rest);
    conns = parse_long(argv[4], 1, MAX_CONNS);
    resume = strcmp(argv[5], "resume") == 0;
    if (colon == NULL || *rest != '\0' || !(seconds > 0 && seconds < 3600) || conns < 0 ||
        (!resume && strcmp(argv[5], "full") != 0))
        return usage();
    *colon = '\0';
    port = parse_long(colon + 1, 1, 65535);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 || port < 0)
        return usage();
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                                   argv[2], argv[1]);
    if (request_len >= sizeof request)
        return usage();

    /* OpenSSL's client defaults otherwise, as wrk's: TLS 1.3 with AES-256-GCM and X25519 */
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return 1;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* a FIN without close_notify ends the answer too; sessions are kept per slot */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (tls12)
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    signal(SIGPIPE, SIG_IGN); /* a write to a connection the server closed is an error */
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return 1;

    start = now_ns();
    end = start + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < conns; i++) {
        slots[i].fd = -1;
        slot_start(&slots[i]);
    }
    for (;;) {
        uint64_t t = now_ns();
        if (t >= end)
            break;
        int n = epoll_wait(ep, events, 64, 50);
        for (int i = 0; i < n; i++)
            slot_step(events[i].data.ptr);
        t = now_ns();
        for (int i = 0; i < conns; i++) {
            slot_t *s = &slots[i];
            if (s->state != S_IDLE && t - s->since_ns > STALL_NS)
                slot_end(s, E_TIMEOUT);
            if (s->state == S_IDLE && t < end)
                slot_start(s);
        }
    }
    print_result((double)(now_ns() - start) / 1e9, conns);
    for (int i = 0; i < conns; i++) {
        if (slots[i].state != S_IDLE) {
            SSL_free(slots[i].ssl);
            close(slots[i].fd);
        }
        SSL_SESSION_free(slots[i].sess);
    }
    SSL_CTX_free(ctx);
    return 0;
}
