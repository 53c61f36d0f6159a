/* Checks of a head http1.c has parsed: the validated request and response views (Host and
 * authority, framing, Connection tokens) and the hop-by-hop rule. Reads the parser's head, never
 * feeds llhttp nor changes the parser's state. No sockets, no clock. */
#include "http/http1.h"

#include <stddef.h>
#include <string.h>

#include "sidestep/error.h"

/* ---- head checks ------------------------------------------------------------------------ */

/* RFC 3986 reg-name characters, conservatively: only the unreserved ones. Sub-delims and
 * pct-encoded are legal there but no real host name uses them, and "a,b" is what two Host
 * fields look like once an intermediary folded them: routing on one host while the backend
 * reads another is the confusion to avoid (found by fuzz_http1_request). */
static const uint8_t h1_regname[256] = {
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1,
    ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1,
    ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['-'] = 1, ['.'] = 1,
    ['_'] = 1, ['~'] = 1,
};

/* RFC 3986 host: reg-name / IPv4 / IP-literal, optional ":port". */
static bool h1_valid_authority(sst_str_t a)
{
    size_t i = 0;
    if (a.len > 255)
        return false;
    if (a.len > 0 && a.base[0] == '[') {
        for (i = 1; i < a.len && a.base[i] != ']'; i++) {
            unsigned char c = (unsigned char)a.base[i];
            if (!(c == ':' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                  (c >= 'A' && c <= 'F')))
                return false;
        }
        if (i == a.len)
            return false;
        i++;
    } else {
        while (i < a.len && h1_regname[(unsigned char)a.base[i]])
            i++;
    }
    if (i < a.len) {
        if (a.base[i] != ':')
            return false;
        uint64_t port;
        sst_str_t p = sst_str(a.base + i + 1, a.len - i - 1);
        if (p.len > 0 && sst_str_to_u64(p, 65535, &port) != 0)
            return false;
    }
    return true;
}

static bool h1_connection_has(const sst_head_t *head, const char *token)
{
    for (int i = sst_head_find(head, "connection", 0); i >= 0;
         i = sst_head_find(head, "connection", (uint32_t)i + 1))
        if (sst_str_list_has(sst_hdr_value(head, &head->hdrs[i]), token))
            return true;
    return false;
}

static int h1_check_names(const sst_head_t *head)
{
    for (uint32_t i = 0; i < head->n_hdrs; i++)
        if (!sst_str_is_token(sst_hdr_name(head, &head->hdrs[i])))
            return -1;
    return 0;
}

/* Fields sst_h1_check_request looks at, found in one pass over the head. */
typedef struct h1_known_s {
    int host, host2, te, te2, expect, expect2, origin, connection;
    bool conn_close, conn_keep_alive;
} h1_known_t;

static void h1_classify(const sst_head_t *head, h1_known_t *k, bool *bad_name)
{
    memset(k, 0xff, offsetof(h1_known_t, conn_close)); /* every index -1 */
    k->conn_close = k->conn_keep_alive = false;
    *bad_name = false;
    for (uint32_t i = 0; i < head->n_hdrs; i++) {
        sst_str_t n = sst_hdr_name(head, &head->hdrs[i]);
        if (!sst_str_is_token(n)) {
            *bad_name = true;
            return;
        }
        int *slot = NULL, *slot2 = NULL;
        switch (n.len) {
        case 4:
            if (sst_str_ieq_c(n, "host"))
                slot = &k->host, slot2 = &k->host2;
            break;
        case 6:
            if (sst_str_ieq_c(n, "expect"))
                slot = &k->expect, slot2 = &k->expect2;
            else if (sst_str_ieq_c(n, "origin") && k->origin < 0)
                k->origin = (int)i;
            break;
        case 10:
            if (sst_str_ieq_c(n, "connection")) {
                sst_str_t v = sst_hdr_value(head, &head->hdrs[i]);
                if (k->connection < 0)
                    k->connection = (int)i;
                k->conn_close = k->conn_close || sst_str_list_has(v, "close");
                k->conn_keep_alive = k->conn_keep_alive || sst_str_list_has(v, "keep-alive");
            }
            break;
        case 17:
            if (sst_str_ieq_c(n, "transfer-encoding"))
                slot = &k->te, slot2 = &k->te2;
            break;
        default:
            break;
        }
        if (slot != NULL) {
            if (*slot < 0)
                *slot = (int)i;
            else if (*slot2 < 0)
                *slot2 = (int)i;
        }
    }
}

int sst_h1_check_request(const sst_h1_t *h, sst_h1_request_t *out, const char **reason)
{
    const sst_head_t *head = h->head;
    const llhttp_t *p = &h->p;
    h1_known_t k;
    bool bad_name;

    memset(out, 0, sizeof(*out));
    out->connection_idx = -1;
    if (p->http_major != 1 || p->http_minor > 1) {
        *reason = p->http_major == 0 ? "HTTP/0.9 is not supported" : "HTTP version not supported";
        return p->http_major == 0 ? 400 : 505;
    }
    out->minor = p->http_minor;
    out->method = p->method;
    out->method_name = sst_str_c(llhttp_method_name((llhttp_method_t)p->method));
    if (p->method == HTTP_CONNECT) {
        *reason = "CONNECT is not supported";
        return 405;
    }
    if (p->method == HTTP_PRI) {
        *reason = "HTTP/2 connection preface on an HTTP/1.1 port";
        return 505;
    }
    h1_classify(head, &k, &bad_name);
    if (bad_name) {
        *reason = "invalid header name";
        return 400;
    }

    out->target = sst_head_url(head);
    if (out->target.len == 0) {
        *reason = "empty request-target";
        return 400;
    }
    for (size_t i = 0; i < out->target.len; i++) {
        unsigned char c = (unsigned char)out->target.base[i];
        /* RFC 9112 §3.2: no fragment, no raw non-ASCII (llhttp 8.1 lets 0x80-0xff through) */
        if (c >= 0x80 || c <= 0x20 || c == 0x7f || c == '#') {
            *reason = "invalid character in request-target";
            return 400;
        }
    }
    sst_str_t authority = SST_STR_NULL;
    if (out->target.base[0] == '/') {
        /* origin-form */
    } else if (out->target.len == 1 && out->target.base[0] == '*') {
        if (p->method != HTTP_OPTIONS) {
            *reason = "asterisk-form is only for OPTIONS";
            return 400;
        }
    } else {
        size_t skip = 0;
        if (out->target.len > 7 &&
            sst_str_ieq(sst_str(out->target.base, 7), SST_STR_LIT("http://")))
            skip = 7;
        else if (out->target.len > 8 &&
                 sst_str_ieq(sst_str(out->target.base, 8), SST_STR_LIT("https://")))
            skip = 8;
        if (skip == 0) {
            *reason = "unsupported request-target form";
            return 400;
        }
        size_t end = skip;
        while (end < out->target.len && out->target.base[end] != '/' &&
               out->target.base[end] != '?')
            end++;
        authority = sst_str(out->target.base + skip, end - skip);
        if (authority.len == 0 || memchr(authority.base, '@', authority.len) != NULL ||
            !h1_valid_authority(authority)) {
            *reason = "invalid authority in request-target";
            return 400;
        }
        out->absolute_form = true;
    }

    if (k.host2 >= 0) {
        *reason = "repeated Host header";
        return 400;
    }
    if (k.host < 0 && out->minor == 1) {
        *reason = "missing Host header"; /* RFC 9112 §3.2 */
        return 400;
    }
    if (k.host >= 0) {
        /* llhttp 8.1 keeps trailing OWS in values (RFC 9110 §5.5 excludes it). An empty host
         * makes the target URI invalid for http (RFC 9110 §4.2.1), and a proxy that routes and
         * forwards by Host has nothing to go on. */
        sst_str_t hv = sst_str_trim_ows(sst_hdr_value(head, &head->hdrs[k.host]));
        if (hv.len == 0) {
            *reason = "empty Host header";
            return 400;
        }
        if (!h1_valid_authority(hv)) {
            *reason = "invalid Host header";
            return 400;
        }
        out->host = hv;
    }
    if (out->absolute_form)
        out->host = authority; /* RFC 9112 §3.2.2: the target's authority wins over Host */

    if (k.te >= 0) {
        if (out->minor == 0) {
            /* RFC 9112 §6.1: a 1.0 message with Transfer-Encoding cannot be trusted */
            *reason = "Transfer-Encoding in an HTTP/1.0 request";
            return 400;
        }
        if (k.te2 >= 0) {
            *reason = "repeated Transfer-Encoding";
            return 400;
        }
        sst_str_t te = sst_hdr_value(head, &head->hdrs[k.te]);
        sst_str_t item, last = SST_STR_NULL;
        size_t pos = 0, n = 0, commas = 0;
        while (sst_str_next_list_item(te, &pos, &item)) {
            last = item;
            n++;
        }
        for (size_t i = 0; i < te.len; i++)
            commas += te.base[i] == ',';
        if (commas + 1 != n) {
            /* ", chunked": RFC 9110 §5.6.1 lets a recipient skip empty elements, but nginx
             * (501) and HAProxy (422) refuse this framing field; an ambiguous one is a 400. */
            *reason = "empty element in Transfer-Encoding";
            return 400;
        }
        if (!sst_str_ieq(last, SST_STR_LIT("chunked"))) {
            /* RFC 9112 §6.3: chunked must be the final coding, else the length is unknown */
            *reason = "Transfer-Encoding does not end in chunked";
            return 400;
        }
        if (n > 1) {
            /* sidestep re-frames bodies and implements no other coding (RFC 9112 §6.1) */
            *reason = "unsupported transfer coding";
            return 501;
        }
        out->chunked = true;
    }
    if (p->flags & F_CONTENT_LENGTH) {
        out->has_length = true;
        out->content_length = p->content_length;
    }
    out->has_body = out->chunked || (out->has_length && out->content_length > 0);
    if (out->has_length && h->lim.body != 0 && out->content_length > h->lim.body) {
        *reason = "request body too large";
        return 413;
    }

    if (k.expect >= 0) {
        sst_str_t ev = sst_str_trim_ows(sst_hdr_value(head, &head->hdrs[k.expect]));
        if (!sst_str_ieq(ev, SST_STR_LIT("100-continue")) || k.expect2 >= 0) {
            *reason = "unsupported expectation"; /* RFC 9110 §10.1.1 */
            return 417;
        }
        /* A 1.0 client cannot handle 100 Continue; the expectation is ignored for it. */
        out->expect_continue = out->minor == 1 && out->has_body;
    }
    if (k.origin >= 0)
        out->origin = sst_hdr_value(head, &head->hdrs[k.origin]);
    out->connection_idx = k.connection;
    if (out->minor == 1)
        out->keep_alive = !k.conn_close;
    else
        out->keep_alive = k.conn_keep_alive && !k.conn_close;
    return 0;
}

int sst_h1_check_response(const sst_h1_t *h, sst_h1_response_t *out, const char **reason)
{
    const sst_head_t *head = h->head;
    const llhttp_t *p = &h->p;

    memset(out, 0, sizeof(*out));
    out->connection_idx = -1;
    if (p->http_major != 1 || p->http_minor > 1) {
        *reason = "backend answered with an unsupported HTTP version";
        return 502;
    }
    out->minor = p->http_minor;
    int status = llhttp_get_status_code((llhttp_t *)p);
    if (status < 200 || status > 599) {
        *reason = status == 101 ? "backend switched protocols unasked" : "invalid status code";
        return 502;
    }
    out->status = (uint16_t)status;
    if (h1_check_names(head) != 0) {
        *reason = "invalid header name from backend";
        return 502;
    }
    int te_idx = sst_head_find(head, "transfer-encoding", 0);
    if (te_idx >= 0) {
        sst_str_t te = sst_str_trim_ows(sst_hdr_value(head, &head->hdrs[te_idx]));
        if (!sst_str_ieq(te, SST_STR_LIT("chunked")) ||
            sst_head_find(head, "transfer-encoding", (uint32_t)te_idx + 1) >= 0) {
            *reason = "unsupported transfer coding from backend";
            return 502;
        }
        out->chunked = true;
    }
    if (sst_head_find(head, "content-length", 0) >= 0) {
        if (out->chunked) {
            /* RFC 9112 §6.3: a sender must not send both; treat it as an attack */
            *reason = "Content-Length with Transfer-Encoding from backend";
            return 502;
        }
        out->has_length = true;
        out->content_length = p->content_length;
    }
    out->no_body = h->head_request || status == 204 || status == 304;
    out->until_close = !out->no_body && !out->chunked && !out->has_length;
    out->connection_idx = sst_head_find(head, "connection", 0);
    if (out->minor == 1)
        out->keep_alive = !h1_connection_has(head, "close");
    else
        out->keep_alive =
            h1_connection_has(head, "keep-alive") && !h1_connection_has(head, "close");
    if (out->until_close)
        out->keep_alive = false;
    return 0;
}

bool sst_h1_is_hop_by_hop(const sst_head_t *head, sst_str_t name)
{
    static const char *const fixed[] = {
        "connection", "keep-alive",        "proxy-connection", "te",
        "trailer",    "transfer-encoding", "upgrade",          "content-length",
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (sst_str_ieq_c(name, fixed[i]))
            return true;
    for (int i = sst_head_find(head, "connection", 0); i >= 0;
         i = sst_head_find(head, "connection", (uint32_t)i + 1)) {
        size_t pos = 0;
        sst_str_t item;
        sst_str_t list = sst_hdr_value(head, &head->hdrs[i]);
        while (sst_str_next_list_item(list, &pos, &item))
            if (sst_str_ieq(item, name))
                return true;
    }
    return false;
}

/* The one reason-phrase table (RFC 9110 §15): sidestep's own answers, the admin API, the
 * redirect status lines and the test stub all take their phrases from here. */
