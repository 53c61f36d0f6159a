/* The stub origin's listener, start and stop, and its small helpers (see stub.h). Test code: the
 * sidestep-stub program, the tests and bench/ link it; sidestep never does. */
#define _DEFAULT_SOURCE /* SO_REUSEPORT is not POSIX */
#include "stub.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <llhttp.h>
#include <uv.h>

#include "sidestep/error.h"
#include "stub_internal.h"

static const char *const stub_fail_names[] = {
#define STUB_FAIL_NAME(id, text) [SST_STUB_FAIL_##id] = text,
    SST_STUB_FAIL_MAP(STUB_FAIL_NAME)
#undef STUB_FAIL_NAME
};

/* --- small helpers ------------------------------------------------------------------------- */

int sst_stub_fail_parse(sst_str_t name, sst_stub_fail_t *out)
{
    for (size_t i = 0; i < SST_STUB_FAIL_COUNT_; i++) {
        if (sst_str_eq(name, sst_str_c(stub_fail_names[i]))) {
            *out = (sst_stub_fail_t)i;
            return 0;
        }
    }
    return SST_EINVAL;
}

const char *sst_stub_fail_name(sst_stub_fail_t fail)
{
    if ((unsigned)fail >= SST_STUB_FAIL_COUNT_)
        return "?";
    return stub_fail_names[fail];
}

bool stub_status_ok(uint64_t status)
{
    return status >= 200 && status <= 599;
}

/* Grows *buf to hold `need` bytes, doubling; returns 0 or SST_ENOMEM (buffer untouched). */
int stub_grow(char **buf, size_t *cap, size_t need)
{
    size_t ncap = *cap ? *cap : 1024;
    char *nbuf;

    if (need <= *cap)
        return 0;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return SST_ENOMEM;
        ncap *= 2;
    }
    nbuf = realloc(*buf, ncap);
    if (nbuf == NULL)
        return SST_ENOMEM;
    *buf = nbuf;
    *cap = ncap;
    return 0;
}

/* Appends printf output at buf[*len]; false on truncation (buf then holds garbage). */
__attribute__((format(printf, 4, 5))) bool stub_fmt(char *buf, size_t cap, size_t *len,
                                                    const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*len >= cap)
        return false;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *len)
        return false;
    *len += (size_t)n;
    return true;
}

/* Boolean scripting values: 1/0, true/false, yes/no, on/off. */
int stub_parse_bool(sst_str_t v, bool *out)
{
    if (sst_str_ieq_c(v, "1") || sst_str_ieq_c(v, "true") || sst_str_ieq_c(v, "yes") ||
        sst_str_ieq_c(v, "on")) {
        *out = true;
        return 0;
    }
    if (sst_str_ieq_c(v, "0") || sst_str_ieq_c(v, "false") || sst_str_ieq_c(v, "no") ||
        sst_str_ieq_c(v, "off")) {
        *out = false;
        return 0;
    }
    return SST_EINVAL;
}

/* "Name: value" of X-Stub-Header; the value may be empty. */
bool stub_split_header(sst_str_t v, sst_str_t *name, sst_str_t *value)
{
    const char *colon = v.len ? memchr(v.base, ':', v.len) : NULL;

    if (colon == NULL)
        return false;
    *name = sst_str(v.base, (size_t)(colon - v.base));
    *value = sst_str_trim_ows(sst_str(colon + 1, v.len - (size_t)(colon - v.base) - 1));
    if (!sst_str_is_token(*name))
        return false;
    for (size_t i = 0; i < value->len; i++) {
        unsigned char c = (unsigned char)value->base[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* --- listener ------------------------------------------------------------------------------- */

static void stub_on_connection(uv_stream_t *server, int status);

static void stub_on_reject_closed(uv_handle_t *handle)
{
    sst_stub_t *o = handle->data;

    o->reject_busy = false;
    if (o->accept_pending && !o->stopping) {
        o->accept_pending = false;
        stub_on_connection((uv_stream_t *)&o->listener, 0);
    }
    stub_maybe_done(o);
}

/* Out of memory for a connection: accept and drop it, so the listener keeps serving. libuv
 * stops polling the listener until a pending connection is accepted, so one that arrives while
 * the reject handle is busy is taken once it is free. */
static void stub_reject(sst_stub_t *o)
{
    if (o->reject_busy || uv_tcp_init(o->loop, &o->reject) != 0) {
        /* taken when the reject handle is free again, or when a connection closes */
        o->accept_pending = true;
        return;
    }
    o->reject.data = o;
    o->reject_busy = true;
    (void)uv_accept((uv_stream_t *)&o->listener, (uv_stream_t *)&o->reject);
    uv_close((uv_handle_t *)&o->reject, stub_on_reject_closed);
}

static void stub_on_connection(uv_stream_t *server, int status)
{
    sst_stub_t *o = server->data;
    stub_conn_t *conn;

    if (status < 0 || o->stopping)
        return; /* libuv retries accept errors such as EMFILE itself */
    conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        stub_reject(o);
        return;
    }
    if (stub_conn_init(conn, o) != 0) {
        free(conn); /* no handle was initialised */
        stub_reject(o);
        return;
    }
    conn->next = o->conns;
    if (o->conns != NULL)
        o->conns->prev = conn;
    o->conns = conn;
    o->nconns++;
    o->stats.connections++;
    if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0) {
        stub_conn_close(conn);
        return;
    }
    (void)uv_tcp_nodelay(&conn->tcp, 1);
    stub_conn_update_reading(conn);
}

/* A connection closed: a connection left waiting in the listener for want of memory or a
 * handle is taken now, then the stub may be done stopping. */
void stub_conn_gone(sst_stub_t *o)
{
    if (o->accept_pending && !o->reject_busy && !o->stopping) {
        o->accept_pending = false;
        stub_on_connection((uv_stream_t *)&o->listener, 0);
    }
    stub_maybe_done(o);
}

/* --- start / stop --------------------------------------------------------------------------- */

static void stub_free(sst_stub_t *o)
{
    free(o->pattern);
    free(o->flood);
    free(o->big);
    free(o->prepared);
    free(o);
}

void stub_maybe_done(sst_stub_t *o)
{
    sst_stub_stop_cb done = o->done;
    void *arg = o->done_arg;

    if (!o->stopping || !o->listener_closed || o->nconns > 0 || o->reject_busy)
        return;
    stub_free(o);
    if (done != NULL)
        done(arg);
}

static void stub_on_listener_closed(uv_handle_t *handle)
{
    sst_stub_t *o = handle->data;

    o->listener_closed = true;
    stub_maybe_done(o);
}

static void stub_on_failed_close(uv_handle_t *handle)
{
    stub_free(handle->data);
}

/* "127.0.0.1:0" or "[::1]:9001", numeric only. */
static int stub_parse_addr(const char *addr, struct sockaddr_storage *ss)
{
    sst_str_t s = sst_str_c(addr);
    const char *colon;
    char host[64];
    size_t hlen;
    uint64_t port;

    if (s.len == 0)
        return SST_EINVAL;
    colon = s.base + s.len;
    while (colon > s.base && colon[-1] != ':')
        colon--;
    if (colon == s.base)
        return SST_EINVAL;
    if (sst_str_to_u64(sst_str(colon, s.len - (size_t)(colon - s.base)), 65535, &port) != 0)
        return SST_EINVAL;
    hlen = (size_t)(colon - s.base) - 1;
    if (hlen >= 2 && s.base[0] == '[' && s.base[hlen - 1] == ']') {
        if (hlen - 2 >= sizeof(host))
            return SST_EINVAL;
        memcpy(host, s.base + 1, hlen - 2);
        host[hlen - 2] = '\0';
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0 ? 0 : SST_EINVAL;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return SST_EINVAL;
    memcpy(host, s.base, hlen);
    host[hlen] = '\0';
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ? 0 : SST_EINVAL;
}

/* libuv 1.44 cannot set SO_REUSEPORT, so that socket is made here and handed over. */
static int stub_bind(sst_stub_t *o, const struct sockaddr *sa, bool reuseport)
{
    socklen_t salen =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int one = 1;
    int fd, err;

    if (!reuseport)
        return uv_tcp_bind(&o->listener, sa, 0); /* libuv sets SO_REUSEADDR */
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, sa, salen) != 0) {
        err = uv_translate_sys_error(errno);
        close(fd);
        return err;
    }
    err = uv_tcp_open(&o->listener, fd);
    if (err != 0)
        close(fd);
    return err;
}

static int stub_validate(const sst_stub_opts_t *opts)
{
    sst_str_t name = sst_str_c(opts->name);

    if (opts->name != NULL && (name.len > STUB_NAME_MAX || !sst_str_is_token(name)))
        return SST_EINVAL;
    if ((opts->status != 0 && !stub_status_ok(opts->status)) ||
        (opts->health_status != 0 && !stub_status_ok(opts->health_status)))
        return SST_EINVAL;
    if ((unsigned)opts->fail >= SST_STUB_FAIL_COUNT_ || opts->size > STUB_MAX_SIZE ||
        opts->delay_ms > STUB_MAX_DELAY_MS)
        return SST_EINVAL;
    if (opts->hasher != NULL && (opts->hasher->label == NULL || opts->hasher->create == NULL ||
                                 opts->hasher->reset == NULL || opts->hasher->update == NULL ||
                                 opts->hasher->final == NULL || opts->hasher->destroy == NULL ||
                                 strlen(opts->hasher->label) > 32))
        return SST_EINVAL;
    return 0;
}

/* The pattern, the 1xx flood, the big header and, when the default never varies, the whole
 * default response: built once, shared by every connection. */
static int stub_prepare(sst_stub_t *o)
{
    const sst_stub_hasher_t *h = o->hasher;
    char head[512];
    size_t hlen;

    o->pattern = malloc(STUB_SPAN + STUB_PATTERN_LEN);
    o->flood_len = STUB_FLOOD * (sizeof(STUB_CONTINUE) - 1);
    o->flood = malloc(o->flood_len);
    o->big_len = sizeof("X-Stub-Big: \r\n") - 1 + STUB_BIG_HEADER;
    o->big = malloc(o->big_len);
    if (o->pattern == NULL || o->flood == NULL || o->big == NULL)
        return SST_ENOMEM;
    for (size_t i = 0; i < STUB_SPAN + STUB_PATTERN_LEN; i++)
        o->pattern[i] = STUB_PATTERN[i % STUB_PATTERN_LEN];
    for (size_t i = 0; i < STUB_FLOOD; i++)
        memcpy(o->flood + i * (sizeof(STUB_CONTINUE) - 1), STUB_CONTINUE,
               sizeof(STUB_CONTINUE) - 1);
    memcpy(o->big, "X-Stub-Big: ", 12);
    memset(o->big + 12, 'b', STUB_BIG_HEADER);
    memcpy(o->big + 12 + STUB_BIG_HEADER, "\r\n", 2);

    if (h != NULL) {
        void *state = h->create(h->arg);
        int n = state ? h->reset(state) : SST_ENOMEM;
        if (n == 0)
            n = h->final(state, o->empty_hex, sizeof(o->empty_hex));
        if (state != NULL)
            h->destroy(state);
        if (n <= 0)
            return n < 0 ? n : SST_EIO;
    }

    if (!o->fixed_size || o->size > STUB_PREPARED_MAX || o->chunked || o->no_length ||
        o->delay_ms > 0 || o->fail != SST_STUB_FAIL_NONE || o->status == 204 || o->status == 304)
        return 0;
    hlen = stub_head(o, head, sizeof(head) - 2, o->status, "text/plain", STUB_FRAME_LENGTH, o->size,
                     NULL);
    assert(hlen > 0);
    memcpy(head + hlen, "\r\n", 2);
    hlen += 2;
    o->prepared = malloc(hlen + (size_t)o->size);
    if (o->prepared == NULL)
        return SST_ENOMEM;
    memcpy(o->prepared, head, hlen);
    for (size_t i = 0; i < (size_t)o->size; i++)
        o->prepared[hlen + i] = STUB_PATTERN[i % STUB_PATTERN_LEN];
    o->prepared_head_len = hlen;
    o->prepared_len = hlen + (size_t)o->size;
    return 0;
}

int sst_stub_start(uv_loop_t *loop, const char *addr, const sst_stub_opts_t *opts, sst_stub_t **out)
{
    static const sst_stub_opts_t defaults;
    struct sockaddr_storage ss;
    struct sockaddr_storage bound;
    int namelen = sizeof(bound);
    sst_stub_t *o = NULL;
    int err;

    if (loop == NULL || addr == NULL || out == NULL)
        return SST_EINVAL;
    if (opts == NULL)
        opts = &defaults;
    memset(&ss, 0, sizeof(ss));
    err = stub_validate(opts);
    if (err == 0)
        err = stub_parse_addr(addr, &ss);
    if (err != 0)
        return err;
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return SST_ENOMEM;
    o->loop = loop;
    snprintf(o->name, sizeof(o->name), "%s", opts->name ? opts->name : "origin");
    o->status = opts->status ? opts->status : 200;
    o->health_status = opts->health_status ? opts->health_status : 200;
    o->fixed_size = opts->fixed_size;
    o->size = opts->size;
    o->delay_ms = opts->delay_ms;
    o->chunked = opts->chunked;
    o->no_length = opts->no_length;
    o->fail = opts->fail;
    o->max_head = opts->max_head ? opts->max_head : STUB_MAX_HEAD;
    o->proxy_protocol = opts->proxy_protocol;
    o->hasher = opts->hasher;
    err = stub_prepare(o);
    if (err != 0) {
        stub_free(o);
        return err;
    }
    stub_settings_init(&o->settings);

    err = uv_tcp_init(loop, &o->listener);
    if (err != 0) {
        stub_free(o);
        return err;
    }
    o->listener.data = o;
    err = stub_bind(o, (const struct sockaddr *)&ss, opts->reuseport);
    if (err == 0)
        err = uv_listen((uv_stream_t *)&o->listener, STUB_BACKLOG, stub_on_connection);
    if (err == 0)
        err = uv_tcp_getsockname(&o->listener, (struct sockaddr *)&bound, &namelen);
    if (err != 0) {
        uv_close((uv_handle_t *)&o->listener, stub_on_failed_close);
        return err;
    }
    o->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    *out = o;
    return 0;
}

uint16_t sst_stub_port(const sst_stub_t *stub)
{
    return stub->port;
}

void sst_stub_stats(const sst_stub_t *stub, sst_stub_stats_t *out)
{
    *out = stub->stats;
    out->active = stub->nconns;
}

int sst_stub_set_health(sst_stub_t *stub, uint16_t status)
{
    if (!stub_status_ok(status))
        return SST_EINVAL;
    stub->health_status = status;
    return 0;
}

int sst_stub_stop(sst_stub_t *stub, sst_stub_stop_cb done, void *arg)
{
    if (stub->stopping)
        return SST_EBUSY;
    stub->stopping = true;
    stub->done = done;
    stub->done_arg = arg;
    uv_close((uv_handle_t *)&stub->listener, stub_on_listener_closed);
    for (stub_conn_t *c = stub->conns; c != NULL; c = c->next)
        stub_conn_close(c);
    return 0;
}
