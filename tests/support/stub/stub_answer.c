/* What a stub request asks for (its path, the X-Stub-* headers, the start options) and the
 * answer: heads, echo listings, sized bodies, the scripted failures. */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "http/http1.h"
#include "sidestep/error.h"
#include "stub_internal.h"

/* Canned broken responses; each is followed by a FIN. */
static const char stub_garbage[] = "HELLO\r\n\r\n";
static const char stub_bad_status[] = "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n";
static const char stub_dup_cl[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
                                  "\r\nhello!";
static const char stub_cl_te[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
static const char stub_bad_chunk[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     "zz\r\nhello\r\n0\r\n\r\n";

/* --- responses ------------------------------------------------------------------------------ */

bool stub_starts_at_head(const stub_req_t *req)
{
    return req->kind == STUB_KIND_ECHO_BODY || req->fail == SST_STUB_FAIL_RESET ||
           req->fail == SST_STUB_FAIL_CLOSE || req->fail == SST_STUB_FAIL_STALL;
}

/* Formats the fixed part of a response head (no extra headers, no final CRLF) into buf. Returns
 * the length, or 0 when buf is too small. */
size_t stub_head(const sst_stub_t *o, char *buf, size_t cap, unsigned status, const char *ctype,
                 stub_framing_t framing, uint64_t length, const char *connection)
{
    size_t len = 0;
    bool ok = stub_fmt(buf, cap, &len, "HTTP/1.1 %u %s\r\n", status, sst_h1_status_text(status));

    if (ok && framing != STUB_FRAME_NONE && ctype != NULL)
        ok = stub_fmt(buf, cap, &len, "Content-Type: %s\r\n", ctype);
    if (ok && framing == STUB_FRAME_LENGTH)
        ok = stub_fmt(buf, cap, &len, "Content-Length: %" PRIu64 "\r\n", length);
    if (ok && framing == STUB_FRAME_CHUNKED)
        ok = stub_fmt(buf, cap, &len, "Transfer-Encoding: chunked\r\n");
    if (ok)
        ok = stub_fmt(buf, cap, &len, "X-Stub-Origin: %s\r\n", o->name);
    if (ok && connection != NULL)
        ok = stub_fmt(buf, cap, &len, "Connection: %s\r\n", connection);
    return ok ? len : 0;
}

/* Chooses framing, the `after` action and how much body is sent, for a body of `length`. */
static void stub_conn_decide(stub_conn_t *conn, uint64_t length)
{
    stub_req_t *req = &conn->req;
    bool allowed = req->status != 204 && req->status != 304;
    bool mid = req->fail == SST_STUB_FAIL_CLOSE_MID_BODY ||
               req->fail == SST_STUB_FAIL_RESET_MID_BODY || req->fail == SST_STUB_FAIL_STALL_BODY;

    conn->after = req->keep_alive ? STUB_AFTER_KEEP : STUB_AFTER_CLOSE;
    if (!allowed) {
        req->framing = STUB_FRAME_NONE;
    } else if (mid) {
        req->framing = STUB_FRAME_LENGTH; /* the peer must be able to see the truncation */
    } else if (req->no_length || (req->chunked && req->http10)) {
        req->framing = STUB_FRAME_CLOSE; /* HTTP/1.0 has no chunked coding */
        conn->after = STUB_AFTER_CLOSE;
    } else if (req->chunked) {
        req->framing = STUB_FRAME_CHUNKED;
    } else {
        req->framing = STUB_FRAME_LENGTH;
    }
    req->send_body = allowed && !req->is_head;
    req->body_limit = req->send_body ? length : 0;
    switch (req->fail) {
    case SST_STUB_FAIL_CLOSE_MID_BODY:
        conn->after = STUB_AFTER_CLOSE;
        req->body_limit /= 2;
        break;
    case SST_STUB_FAIL_RESET_MID_BODY:
        conn->after = STUB_AFTER_RESET;
        req->body_limit /= 2;
        break;
    case SST_STUB_FAIL_STALL_BODY:
        conn->after = STUB_AFTER_STALL;
        req->body_limit = 0;
        break;
    default:
        break;
    }
}

/* Queues the response head decided by conn_decide(), extra headers included. */
static void stub_conn_out_head(stub_conn_t *conn, const char *ctype, uint64_t length)
{
    sst_stub_t *o = conn->stub;
    stub_req_t *req = &conn->req;
    const char *connection = NULL;
    char buf[512];
    size_t len;

    if (conn->after != STUB_AFTER_KEEP)
        connection = "close";
    else if (req->http10)
        connection = "keep-alive";
    len = stub_head(o, buf, sizeof(buf), req->status, ctype, req->framing, length, connection);
    assert(len > 0); /* every field is bounded: name <= 63, status 3 digits */
    stub_out_copy(conn, buf, len);
    if (req->scripted) {
        for (size_t i = 0; i < req->ntrailer_start; i++) {
            const stub_hdr_t *h = &conn->hdrs[i];
            sst_str_t name, value;
            if (!sst_str_ieq_c(sst_str(conn->head + h->name_off, h->name_len), "x-stub-header"))
                continue;
            if (!stub_split_header(sst_str(conn->head + h->value_off, h->value_len), &name, &value))
                continue; /* validated when the head was read */
            stub_out_str(conn, name);
            stub_out_copy(conn, ": ", 2);
            stub_out_str(conn, value);
            stub_out_copy(conn, "\r\n", 2);
        }
    }
    if (req->fail == SST_STUB_FAIL_BIG_HEADER)
        stub_out_ref(conn, o->big, o->big_len);
    if (req->fail == SST_STUB_FAIL_MANY_HEADERS)
        for (unsigned i = 0; i < STUB_MANY_HEADERS; i++)
            stub_out_fmt(conn, "X-Stub-Many-%u: %u\r\n", i, i);
    stub_out_copy(conn, "\r\n", 2);
}

/* A response whose body is already in memory. */
static void stub_conn_answer(stub_conn_t *conn, const char *ctype, const char *body, size_t len)
{
    stub_conn_decide(conn, len);
    stub_conn_out_head(conn, ctype, len);
    if (conn->req.body_limit > 0) {
        size_t n = (size_t)conn->req.body_limit;
        if (conn->req.framing == STUB_FRAME_CHUNKED) {
            stub_out_fmt(conn, "%zx\r\n", n);
            stub_out_copy(conn, body, n);
            stub_out_copy(conn, "\r\n", 2);
        } else {
            stub_out_copy(conn, body, n);
        }
    }
    if (conn->req.send_body && conn->req.framing == STUB_FRAME_CHUNKED)
        stub_out_copy(conn, "0\r\n\r\n", 5);
    stub_conn_response_done(conn);
}

static void stub_scratch_put(stub_conn_t *conn, const char *data, size_t len)
{
    if (conn->oom)
        return;
    if (conn->scratch_len > SIZE_MAX - len ||
        stub_grow(&conn->scratch, &conn->scratch_cap, conn->scratch_len + len) != 0) {
        conn->oom = true;
        return;
    }
    memcpy(conn->scratch + conn->scratch_len, data, len);
    conn->scratch_len += len;
}

__attribute__((format(printf, 2, 3))) static void stub_scratch_fmt(stub_conn_t *conn,
                                                                   const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert(n >= 0 && (size_t)n < sizeof(buf));
    if (n > 0)
        stub_scratch_put(conn, buf, (size_t)n);
}

/* The digest of the body, or false when hashing failed. */
static bool stub_conn_digest(stub_conn_t *conn, char *hex, size_t cap)
{
    const sst_stub_hasher_t *h = conn->stub->hasher;

    if (conn->req.hash_failed)
        return false;
    if (!conn->req.hash_started) {
        memcpy(hex, conn->stub->empty_hex, sizeof(conn->stub->empty_hex));
        return true;
    }
    return h->final(conn->hash, hex, cap) > 0;
}

/* Builds the echo listing in scratch; false when the body hash failed. */
static bool stub_conn_build_echo(stub_conn_t *conn)
{
    const sst_stub_t *o = conn->stub;
    const llhttp_t *p = &conn->parser;
    char hex[SST_STUB_HEX_MAX + 1];

    conn->scratch_len = 0;
    stub_scratch_fmt(conn, "origin %s %u\n", o->name, o->port);
    stub_scratch_fmt(conn, "method %s\n", llhttp_method_name((llhttp_method_t)p->method));
    stub_scratch_put(conn, "target ", 7);
    stub_scratch_put(conn, conn->head + conn->url_off, conn->url_len);
    stub_scratch_fmt(conn, "\nhttp %u.%u\n", p->http_major, p->http_minor);
    for (size_t i = 0; i < conn->nhdrs; i++) {
        const stub_hdr_t *h = &conn->hdrs[i];
        if (i < conn->req.ntrailer_start)
            stub_scratch_put(conn, "header ", 7);
        else
            stub_scratch_put(conn, "trailer ", 8);
        stub_scratch_put(conn, conn->head + h->name_off, h->name_len);
        stub_scratch_put(conn, ": ", 2);
        stub_scratch_put(conn, conn->head + h->value_off, h->value_len);
        stub_scratch_put(conn, "\n", 1);
    }
    stub_scratch_fmt(conn, "body-bytes %" PRIu64 "\n", conn->req.body_bytes);
    if (o->hasher != NULL) {
        if (!stub_conn_digest(conn, hex, sizeof(hex)))
            return false;
        stub_scratch_fmt(conn, "body-%s ", o->hasher->label);
        stub_scratch_put(conn, hex, strlen(hex));
        stub_scratch_put(conn, "\n", 1);
    }
    return true;
}

static void stub_conn_answer_text(stub_conn_t *conn, unsigned status, const char *text)
{
    conn->req.status = status;
    stub_conn_answer(conn, "text/plain", text, strlen(text));
}

/* The canned broken answer of a failure mode, or NULL. */
static const char *stub_canned(sst_stub_fail_t fail, size_t *len)
{
    const char *text = NULL;

    switch (fail) {
    case SST_STUB_FAIL_GARBAGE:
        text = stub_garbage;
        break;
    case SST_STUB_FAIL_BAD_STATUS:
        text = stub_bad_status;
        break;
    case SST_STUB_FAIL_DUP_CL:
        text = stub_dup_cl;
        break;
    case SST_STUB_FAIL_CL_TE:
        text = stub_cl_te;
        break;
    case SST_STUB_FAIL_BAD_CHUNK:
        text = stub_bad_chunk;
        break;
    default:
        return NULL;
    }
    *len = strlen(text);
    return text;
}

/* The response at the message point: the request, body included, has been read. */
void stub_conn_respond(stub_conn_t *conn)
{
    sst_stub_t *o = conn->stub;
    stub_req_t *req = &conn->req;
    size_t canned_len = 0;
    const char *canned = stub_canned(req->fail, &canned_len);
    char text[512];
    size_t len = 0;

    if (canned != NULL) {
        stub_out_copy(conn, canned, canned_len);
        conn->after = STUB_AFTER_CLOSE;
        stub_conn_response_done(conn);
        return;
    }
    if (req->fail == SST_STUB_FAIL_FLOOD_1XX)
        stub_out_ref(conn, o->flood, o->flood_len);
    if (req->prepared) {
        stub_out_ref(conn, o->prepared, req->is_head ? o->prepared_head_len : o->prepared_len);
        return; /* keep-alive: nothing else to do */
    }

    switch (req->kind) {
    case STUB_KIND_ECHO:
        if (!stub_conn_build_echo(conn)) {
            stub_conn_answer_text(conn, 500, "stub: hashing the body failed\n");
            return;
        }
        if (conn->oom)
            return;
        stub_conn_answer(conn, "text/plain", conn->scratch, conn->scratch_len);
        break;
    case STUB_KIND_SIZED:
        stub_conn_decide(conn, req->size);
        stub_conn_out_head(conn, "text/plain", req->size);
        conn->prod_left = req->body_limit;
        conn->prod_pos = 0;
        conn->prod_chunked = req->framing == STUB_FRAME_CHUNKED;
        conn->prod_terminate = req->send_body && conn->prod_chunked;
        conn->producing = true;
        stub_conn_pump(conn);
        break;
    case STUB_KIND_HEALTH:
        stub_conn_answer_text(conn, req->status, req->status < 400 ? "ok\n" : "unhealthy\n");
        break;
    case STUB_KIND_STATS:
        (void)stub_fmt(text, sizeof(text), &len,
                       "{\"name\": \"%s\", \"requests\": %" PRIu64 ", \"health\": %" PRIu64
                       ", \"connections\": %" PRIu64 ", \"active\": %" PRIu64 "}\n",
                       o->name, o->stats.requests, o->stats.health, o->stats.connections,
                       o->nconns);
        req->status = 200;
        stub_conn_answer(conn, "application/json", text, len);
        break;
    case STUB_KIND_SET_HEALTH:
        o->health_status = req->health;
        (void)stub_fmt(text, sizeof(text), &len, "health %u\n", req->health);
        req->status = 200;
        stub_conn_answer(conn, "text/plain", text, len);
        break;
    case STUB_KIND_REJECT:
        (void)stub_fmt(text, sizeof(text), &len, "stub: %s\n", req->error);
        stub_conn_answer(conn, "text/plain", text, len);
        break;
    case STUB_KIND_ECHO_BODY:
        assert(!"ECHO_BODY answers at the head");
        break;
    }
}

/* The response at the head point: failures that do not wait for the body, and the body echo. */
void stub_conn_respond_head(stub_conn_t *conn)
{
    stub_req_t *req = &conn->req;
    uint64_t length = 0;

    switch (req->fail) {
    case SST_STUB_FAIL_RESET:
        stub_conn_reset(conn);
        return;
    case SST_STUB_FAIL_CLOSE:
        conn->after = STUB_AFTER_CLOSE;
        stub_conn_set_state(conn, STUB_CONN_FINISHING);
        return;
    case SST_STUB_FAIL_STALL:
        stub_conn_set_state(conn, STUB_CONN_STALLED);
        return;
    default:
        break;
    }
    assert(req->kind == STUB_KIND_ECHO_BODY);
    if (conn->parser.flags & F_CHUNKED)
        req->chunked = true;
    else
        length = conn->parser.content_length;
    if (req->fail == SST_STUB_FAIL_FLOOD_1XX)
        stub_out_ref(conn, conn->stub->flood, conn->stub->flood_len);
    stub_conn_decide(conn, length);
    stub_conn_out_head(conn, "application/octet-stream", length);
    req->head_sent = true;
}

/* --- request parsing ------------------------------------------------------------------------ */

static sst_str_t stub_conn_hdr_name(const stub_conn_t *conn, size_t i)
{
    return sst_str(conn->head + conn->hdrs[i].name_off, conn->hdrs[i].name_len);
}

static sst_str_t stub_conn_hdr_value(const stub_conn_t *conn, size_t i)
{
    return sst_str(conn->head + conn->hdrs[i].value_off, conn->hdrs[i].value_len);
}

/* Applies one X-Stub-* header; returns NULL or the error text. */
static const char *stub_conn_script(stub_conn_t *conn, sst_str_t name, sst_str_t value)
{
    stub_req_t *req = &conn->req;
    sst_str_t key = sst_str(name.base + 7, name.len - 7); /* after "x-stub-" */
    sst_str_t hname, hvalue;
    uint64_t n;
    bool b;

    if (sst_str_ieq_c(key, "status")) {
        if (sst_str_to_u64(value, 999, &n) != 0 || !stub_status_ok(n))
            return "bad X-Stub-Status (200-599)";
        req->status = (unsigned)n;
    } else if (sst_str_ieq_c(key, "size")) {
        if (sst_str_to_u64(value, STUB_MAX_SIZE, &n) != 0)
            return "bad X-Stub-Size";
        req->size = n;
        if (req->kind != STUB_KIND_ECHO_BODY)
            req->kind = STUB_KIND_SIZED;
    } else if (sst_str_ieq_c(key, "delay")) {
        if (sst_str_to_u64(value, STUB_MAX_DELAY_MS, &n) != 0)
            return "bad X-Stub-Delay (milliseconds)";
        req->delay_ms = n;
    } else if (sst_str_ieq_c(key, "chunked")) {
        if (stub_parse_bool(value, &b) != 0)
            return "bad X-Stub-Chunked (1 or 0)";
        req->chunked = b;
    } else if (sst_str_ieq_c(key, "no-length")) {
        if (stub_parse_bool(value, &b) != 0)
            return "bad X-Stub-No-Length (1 or 0)";
        req->no_length = b;
    } else if (sst_str_ieq_c(key, "echo-body")) {
        if (stub_parse_bool(value, &b) != 0)
            return "bad X-Stub-Echo-Body (1 or 0)";
        if (b)
            req->kind = STUB_KIND_ECHO_BODY;
    } else if (sst_str_ieq_c(key, "fail")) {
        if (sst_stub_fail_parse(value, &req->fail) != 0)
            return "unknown X-Stub-Fail mode";
    } else if (sst_str_ieq_c(key, "header")) {
        if (!stub_split_header(value, &hname, &hvalue))
            return "bad X-Stub-Header (Name: value)";
    } else {
        return "unknown X-Stub-* header";
    }
    return NULL;
}

/* Classifies the target's path and counts the request; returns NULL or an error text. */
static const char *stub_conn_plan_path(stub_conn_t *conn, bool *control)
{
    sst_stub_t *o = conn->stub;
    stub_req_t *req = &conn->req;
    sst_str_t path = sst_str(conn->head + conn->url_off, conn->url_len);
    const char *q = path.len ? memchr(path.base, '?', path.len) : NULL;
    uint64_t n;

    if (q != NULL)
        path.len = (size_t)(q - path.base);
    *control = false;
    if (sst_str_eq(path, SST_STR_LIT("/__stub/stats"))) {
        *control = true;
        req->kind = STUB_KIND_STATS;
    } else if (sst_str_has_prefix(path, SST_STR_LIT("/__stub/health/"))) {
        *control = true;
        req->kind = STUB_KIND_SET_HEALTH;
        if (sst_str_to_u64(sst_str(path.base + 15, path.len - 15), 999, &n) != 0 ||
            !stub_status_ok(n))
            return "bad health status (200-599)";
        req->health = (unsigned)n;
    } else if (sst_str_eq(path, SST_STR_LIT("/healthz"))) {
        req->kind = STUB_KIND_HEALTH;
        req->status = o->health_status;
        req->chunked = false;
        req->no_length = false;
        o->stats.health++;
    } else {
        o->stats.requests++;
    }
    if (*control) {
        /* Control paths ignore the defaults so a misbehaving stub can still be inspected. */
        req->status = 200;
        req->delay_ms = 0;
        req->chunked = false;
        req->no_length = false;
        req->fail = SST_STUB_FAIL_NONE;
    }
    return NULL;
}

/* Settles what the request asks for, from the defaults, the path and X-Stub-* headers. */
void stub_conn_plan(stub_conn_t *conn)
{
    sst_stub_t *o = conn->stub;
    stub_req_t *req = &conn->req;
    const llhttp_t *p = &conn->parser;
    const char *error;
    bool control;

    req->ntrailer_start = conn->nhdrs;
    req->is_head = p->method == HTTP_HEAD;
    req->http10 = p->http_major == 1 && p->http_minor == 0;
    req->keep_alive = llhttp_should_keep_alive(p) != 0;
    req->status = o->status;
    req->size = o->size;
    req->delay_ms = o->delay_ms;
    req->chunked = o->chunked;
    req->no_length = o->no_length;
    req->fail = o->fail;
    req->kind = o->fixed_size ? STUB_KIND_SIZED : STUB_KIND_ECHO;
    error = stub_conn_plan_path(conn, &control);

    for (size_t i = 0; i < conn->nhdrs; i++) {
        sst_str_t name = stub_conn_hdr_name(conn, i);
        sst_str_t value = stub_conn_hdr_value(conn, i);
        if (sst_str_ieq_c(name, "expect")) {
            req->expect_continue = sst_str_ieq_c(value, "100-continue");
        } else if (!control && name.len > 7 && sst_str_ieq_c(sst_str(name.base, 7), "x-stub-")) {
            req->scripted = true;
            if (error == NULL)
                error = stub_conn_script(conn, name, value);
        }
    }
    if (req->kind == STUB_KIND_ECHO_BODY && req->fail != SST_STUB_FAIL_NONE &&
        req->fail != SST_STUB_FAIL_NO_CONTINUE && req->fail != SST_STUB_FAIL_BIG_HEADER &&
        req->fail != SST_STUB_FAIL_MANY_HEADERS && req->fail != SST_STUB_FAIL_FLOOD_1XX &&
        !stub_starts_at_head(req))
        req->kind = STUB_KIND_ECHO; /* a failure that shapes the body wins over the echo */
    if (p->http_major != 1) {
        error = "unsupported HTTP version";
        req->status = 505;
        req->keep_alive = false;
    } else if (error != NULL) {
        req->status = 400;
    }
    if (error != NULL) {
        req->kind = STUB_KIND_REJECT;
        req->error = error;
        req->fail = SST_STUB_FAIL_NONE;
        req->delay_ms = 0;
        req->chunked = false;
        req->no_length = false;
    }
    req->prepared = o->prepared != NULL && req->kind == STUB_KIND_SIZED && !req->scripted &&
                    !req->http10 && req->keep_alive;
}
