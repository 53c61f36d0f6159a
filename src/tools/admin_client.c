/* A blocking HTTP/1.1 client for the command-line tools (ctl, drill): one request per
 * connection, non-blocking socket driven by poll() against one deadline, response parsed by
 * http1.c. Never used inside the proxy's loops. */
#include "tools/admin_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http1.h"
#include "sidestep/error.h"

#define HC_MAX_RESPONSE_HEAD (64 * 1024)

static uint64_t hc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for `events` on fd until the deadline; EINTR is retried. Returns 0, SST_ETIMEDOUT or
 * a negative errno. */
static int hc_wait(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = hc_now_ms();
        if (now >= deadline)
            return SST_ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        uint64_t left = deadline - now;
        int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int hc_connect(const sst_addr_t *addr, uint64_t deadline, int *out)
{
    int fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc, soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (fd < 0)
        return -errno;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        rc = -errno;
        goto fail;
    }
    if (connect(fd, (const struct sockaddr *)&addr->sa, addr->salen) != 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            rc = -errno;
            goto fail;
        }
        if ((rc = hc_wait(fd, POLLOUT, deadline)) != 0)
            goto fail;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
            rc = -errno;
            goto fail;
        }
        if (soerr != 0) {
            rc = -soerr;
            goto fail;
        }
    }
    *out = fd;
    return 0;
fail:
    close(fd);
    return rc;
}

static int hc_send_all(int fd, const char *p, size_t len, uint64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = hc_wait(fd, POLLOUT, deadline);
            if (rc != 0)
                return rc;
            continue;
        }
        return n < 0 ? -errno : SST_EIO;
    }
    return 0;
}

typedef struct hc_body_s {
    sst_hc_reply_t *r;
    size_t cap;
    size_t max;
    bool too_big;
} hc_body_t;

static int hc_on_body(void *opaque, const char *at, size_t len)
{
    hc_body_t *b = opaque;
    sst_hc_reply_t *r = b->r;
    if (r->body_len + len > b->max) {
        b->too_big = true;
        return -1;
    }
    if (r->body_len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *p = realloc(r->body, cap);
        if (p == NULL)
            return -1;
        r->body = p;
        b->cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = 0;
    return 0;
}

static void hc_copy_header(const sst_head_t *h, const char *name, char *out, size_t size)
{
    int i = sst_head_find(h, name, 0);
    out[0] = 0;
    if (i < 0)
        return;
    sst_str_t v = sst_str_trim_ows(sst_hdr_value(h, &h->hdrs[i]));
    snprintf(out, size, "%.*s", (int)v.len, v.base);
}

static char *hc_build(const sst_hc_req_t *req, size_t *len)
{
    char head[1024 + 4096];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sidestep/" SST_VERSION
                     "\r\nAccept: */*\r\nConnection: close\r\n",
                     req->method, req->target, req->host);
    if (n < 0 || (size_t)n >= sizeof(head))
        return NULL;
    if (req->token != NULL) {
        int m = snprintf(head + n, sizeof(head) - (size_t)n, "Authorization: Bearer %s\r\n",
                         req->token);
        if (m < 0 || (size_t)m >= sizeof(head) - (size_t)n)
            return NULL;
        n += m;
    }
    if (req->body != NULL) {
        int m = snprintf(head + n, sizeof(head) - (size_t)n,
                         "Content-Type: %s\r\nContent-Length: %zu\r\n",
                         req->content_type ? req->content_type : "application/json", req->body_len);
        if (m < 0 || (size_t)m >= sizeof(head) - (size_t)n)
            return NULL;
        n += m;
    }
    if ((size_t)n + 2 >= sizeof(head))
        return NULL;
    memcpy(head + n, "\r\n", 2);
    n += 2;
    size_t blen = req->body != NULL ? req->body_len : 0;
    char *out = malloc((size_t)n + blen);
    if (out == NULL)
        return NULL;
    memcpy(out, head, (size_t)n);
    if (blen > 0)
        memcpy(out + n, req->body, blen);
    *len = (size_t)n + blen;
    return out;
}

/* Reads and parses the response. Returns 0 or a negative error with err filled. */
static int hc_read(int fd, const sst_hc_req_t *req, uint64_t deadline, sst_hc_reply_t *out,
                   char *err, size_t err_size)
{
    sst_h1_limits_t lim = {8192, HC_MAX_RESPONSE_HEAD, HC_MAX_RESPONSE_HEAD, 200, 0};
    hc_body_t body = {.r = out, .max = req->max_body ? req->max_body : 64u << 20};
    sst_h1_t h1;
    sst_head_t *head = sst_head_new();
    char buf[16384];
    int rc = 0;

    if (head == NULL)
        return SST_ENOMEM;
    sst_h1_init(&h1, true, &lim, hc_on_body, &body);
    h1.head = head;
    h1.head_request = strcmp(req->method, "HEAD") == 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if ((rc = hc_wait(fd, POLLIN, deadline)) != 0) {
                snprintf(err, err_size, "%s waiting for the response",
                         rc == SST_ETIMEDOUT ? "timed out" : sst_strerror(rc));
                break;
            }
            continue;
        }
        if (n < 0) {
            rc = -errno;
            snprintf(err, err_size, "reading the response: %s", sst_strerror(rc));
            break;
        }
        sst_h1_rc_t prc;
        size_t off = 0;
        if (n == 0) {
            prc = sst_h1_eof(&h1);
            if (prc == SST_H1_MORE) {
                rc = SST_ECONNRESET;
                snprintf(err, err_size, "connection closed before a complete response");
                break;
            }
        } else {
            do {
                size_t used = 0;
                prc = sst_h1_feed(&h1, buf + off, (size_t)n - off, &used);
                off += used;
                if (prc == SST_H1_HEAD) {
                    sst_h1_response_t resp;
                    const char *why = NULL;
                    if (sst_h1_check_response(&h1, &resp, &why) != 0) {
                        snprintf(err, err_size, "bad response: %s", why ? why : "?");
                        rc = SST_EPROTO;
                        goto done;
                    }
                    out->status = resp.status;
                    hc_copy_header(head, "x-sidestep-region", out->region, sizeof(out->region));
                    hc_copy_header(head, "content-type", out->content_type,
                                   sizeof(out->content_type));
                    sst_h1_resume(&h1);
                }
            } while (prc == SST_H1_HEAD);
        }
        if (prc == SST_H1_DONE)
            break;
        if (prc == SST_H1_ERROR) {
            rc = body.too_big ? SST_E2BIG : SST_EPROTO;
            if (body.too_big)
                snprintf(err, err_size, "response body larger than %zu bytes", body.max);
            else
                snprintf(err, err_size, "bad response: %s",
                         h1.err_reason ? h1.err_reason : "parse error");
            break;
        }
    }
done:
    sst_head_free(head);
    if (rc == 0 && out->body == NULL) {
        out->body = calloc(1, 1);
        if (out->body == NULL)
            rc = SST_ENOMEM;
    }
    return rc;
}

int sst__hc_request(const sst_hc_req_t *req, sst_hc_reply_t *out, char *err, size_t err_size)
{
    uint64_t deadline = hc_now_ms() + (req->timeout_ms ? req->timeout_ms : 5000);
    size_t len = 0;
    char *msg = NULL;
    int fd = -1, rc;

    memset(out, 0, sizeof(*out));
    err[0] = 0;
    if ((msg = hc_build(req, &len)) == NULL) {
        snprintf(err, err_size, "request too large");
        return SST_E2BIG;
    }
    if ((rc = hc_connect(req->addr, deadline, &fd)) != 0) {
        snprintf(err, err_size, "cannot connect to %s: %s", req->addr->text,
                 rc == SST_ETIMEDOUT ? "timed out" : sst_strerror(rc));
        goto fail;
    }
    if ((rc = hc_send_all(fd, msg, len, deadline)) != 0) {
        snprintf(err, err_size, "sending to %s: %s", req->addr->text,
                 rc == SST_ETIMEDOUT ? "timed out" : sst_strerror(rc));
        goto fail;
    }
    if ((rc = hc_read(fd, req, deadline, out, err, err_size)) != 0)
        goto fail;
    close(fd);
    free(msg);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(msg);
    sst__hc_reply_free(out);
    if (err[0] == 0)
        snprintf(err, err_size, "%s", sst_strerror(rc));
    return rc;
}

void sst__hc_reply_free(sst_hc_reply_t *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}
