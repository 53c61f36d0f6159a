/* PROXY protocol v1/v2 parsing and writing (see proxy_proto.h). Pure: values in, values out; no
 * libuv, no clock, no malloc. The parser rescans from the first byte on each call: a header is
 * at most a few KiB and a v2 header is only walked once its length is all in. */
#include "http/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "sidestep/error.h"

static const uint8_t pp_v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

#define PP_V1_SIG         "PROXY "
#define PP_V1_SIG_LEN     6
#define PP_V4_TEXT_MAX    15 /* 255.255.255.255 */
#define PP_V6_TEXT_MAX    45 /* INET6_ADDRSTRLEN - 1: ffff:...:255.255.255.255 */
#define PP_AUTHORITY_MAX  255
#define PP_UNIQUE_ID_MAX  128 /* spec 2.2.5 */
#define PP_V2_INET_BLOCK  12  /* 2 * 4 + 2 * 2 */
#define PP_V2_INET6_BLOCK 36  /* 2 * 16 + 2 * 2 */
#define PP_V2_UNIX_BLOCK  216 /* 2 * 108 */
#define PP_V2_SSL_FIXED   5   /* client (1) + verify (4) */
#define PP_V2_LEN_MAX     (SST_PP_V2_HEAD + 0xffff)

static const char *const pp_error_names[SST_PP_ERR_COUNT] = {[SST_PP_OK] = "ok",
#define PP_ERR_NAME(name, label) [SST_PP_ERR_##name] = label,
                                                             SST_PP_ERROR_MAP(PP_ERR_NAME)
#undef PP_ERR_NAME
};

const char *sst_pp_error_name(sst_pp_error_t err)
{
    if ((unsigned)err >= SST_PP_ERR_COUNT)
        return "unknown";
    return pp_error_names[err];
}

/* --- CRC32C: reflected Castagnoli polynomial 0x82F63B78, a nibble at a time --------------- */

static const uint32_t pp_crc32c_nibble[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3, 0x61c69362, 0x7198540d,
    0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9, 0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
};

uint32_t sst_pp_crc32c(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;

    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ pp_crc32c_nibble[crc & 0x0f];
        crc = (crc >> 4) ^ pp_crc32c_nibble[crc & 0x0f];
    }
    return ~crc;
}

/* --- parser ------------------------------------------------------------------------------ */

static sst_pp_status_t pp_fail(sst_pp_result_t *out, sst_pp_error_t err)
{
    out->error = err;
    return SST_PP_ERROR;
}

static sst_pp_status_t pp_more(sst_pp_result_t *out, size_t need)
{
    out->need = need;
    return SST_PP_NEED_MORE;
}

/* v1 bytes are read through this cursor: past the bytes received it asks for more, past 107
 * bytes the line is too long, so every early error is found before either. */
typedef struct pp_v1_s {
    const uint8_t *p;
    size_t len; /* bytes received, capped at SST_PP_V1_MAX */
    size_t pos;
    bool short_read; /* ran out before SST_PP_V1_MAX bytes */
} pp_v1_t;

static bool pp_v1_byte(pp_v1_t *v, uint8_t *c)
{
    if (v->pos >= v->len)
        return false;
    *c = v->p[v->pos++];
    return true;
}

/* The end of the line being out of reach: more bytes may bring it, unless 107 are in. */
static sst_pp_status_t pp_v1_short(const pp_v1_t *v, sst_pp_result_t *out)
{
    if (!v->short_read)
        return pp_fail(out, SST_PP_ERR_V1_TOO_LONG);
    return pp_more(out, v->pos + 1);
}

static bool pp_is_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* One address and the single space after it. Characters outside the family's alphabet, an
 * empty token or one longer than the longest text form fail before the space arrives.
 * Returns 1 when done, 0 when out of bytes, -1 on error. */
static int pp_v1_addr(pp_v1_t *v, int family, struct sockaddr_storage *ss)
{
    const size_t max = family == AF_INET ? PP_V4_TEXT_MAX : PP_V6_TEXT_MAX;
    char text[PP_V6_TEXT_MAX + 1];
    size_t n = 0;
    uint8_t c;

    for (;;) {
        if (!pp_v1_byte(v, &c))
            return 0;
        if (c == ' ')
            break;
        bool ok = (c >= '0' && c <= '9') || c == '.' ||
                  (family == AF_INET6 && (c == ':' || pp_is_hex(c)));
        if (!ok || n == max)
            return -1;
        text[n++] = (char)c;
    }
    if (n == 0)
        return -1;
    text[n] = '\0';
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        /* glibc's inet_pton takes exactly four decimal parts and refuses leading zeros */
        return inet_pton(AF_INET, text, &sin->sin_addr) == 1 ? 1 : -1;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1 ? 1 : -1;
}

/* One port and its terminator (' ', or '\r' for the last one). Returns as pp_v1_addr, or -2
 * for a bare LF where the last port's CR belongs. */
static int pp_v1_port(pp_v1_t *v, uint8_t term, uint16_t *port)
{
    uint32_t value = 0;
    size_t n = 0;
    uint8_t c;

    for (;;) {
        if (!pp_v1_byte(v, &c))
            return 0;
        if (c == term && n > 0)
            break;
        if (c == '\n' && term == '\r' && n > 0)
            return -2;
        /* a leading zero is only "0" itself (spec 2.1: no confusion with octal) */
        if (c < '0' || c > '9' || n == 5 || (n == 1 && value == 0))
            return -1;
        value = value * 10 + (uint32_t)(c - '0');
        n++;
    }
    if (value > 65535)
        return -1;
    *port = (uint16_t)value;
    return 1;
}

static void pp_set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* "UNKNOWN": the rest of the line is ignored, but it still ends with CRLF and nothing else. */
static sst_pp_status_t pp_v1_unknown(pp_v1_t *v, sst_pp_result_t *out)
{
    uint8_t c;

    out->command = SST_PP_UNKNOWN;
    out->family = AF_UNSPEC;
    if (!pp_v1_byte(v, &c))
        return pp_v1_short(v, out);
    if (c != ' ' && c != '\r' && c != '\n') /* a bare LF is a line-end error, below */
        return pp_fail(out, SST_PP_ERR_V1_BAD_PROTOCOL);
    for (;;) {
        if (c == '\n')
            return pp_fail(out, SST_PP_ERR_V1_BAD_CRLF);
        if (c == '\r') {
            if (!pp_v1_byte(v, &c))
                return pp_v1_short(v, out);
            if (c != '\n')
                return pp_fail(out, SST_PP_ERR_V1_BAD_CRLF);
            out->len = v->pos;
            return SST_PP_DONE;
        }
        if (!pp_v1_byte(v, &c))
            return pp_v1_short(v, out);
    }
}

static sst_pp_status_t pp_parse_v1(const uint8_t *p, size_t len, sst_pp_result_t *out)
{
    static const char *const protos[] = {"TCP4 ", "TCP6 ", "UNKNOWN"};
    pp_v1_t v = {p, len < SST_PP_V1_MAX ? len : SST_PP_V1_MAX, PP_V1_SIG_LEN, len < SST_PP_V1_MAX};
    size_t have, proto = 3;
    uint16_t sport, dport;
    uint8_t c;
    int rc;

    if (memcmp(p, PP_V1_SIG, len < PP_V1_SIG_LEN ? len : PP_V1_SIG_LEN) != 0)
        return pp_fail(out, SST_PP_ERR_BAD_SIGNATURE);
    if (len < PP_V1_SIG_LEN)
        return pp_more(out, PP_V1_SIG_LEN + 1);
    out->version = 1;

    /* the protocol word, matched while it arrives */
    have = v.len - v.pos;
    for (size_t i = 0; i < 3; i++) {
        size_t plen = strlen(protos[i]);
        if (memcmp(p + v.pos, protos[i], have < plen ? have : plen) == 0) {
            if (have < plen)
                return pp_more(out, v.pos + plen);
            proto = i;
            v.pos += plen;
            break;
        }
    }
    if (proto == 3)
        return pp_fail(out, SST_PP_ERR_V1_BAD_PROTOCOL);
    if (proto == 2)
        return pp_v1_unknown(&v, out);

    out->command = SST_PP_PROXY;
    out->family = proto == 0 ? AF_INET : AF_INET6;
    if ((rc = pp_v1_addr(&v, out->family, &out->src)) <= 0)
        return rc < 0 ? pp_fail(out, SST_PP_ERR_V1_BAD_ADDRESS) : pp_v1_short(&v, out);
    if ((rc = pp_v1_addr(&v, out->family, &out->dst)) <= 0)
        return rc < 0 ? pp_fail(out, SST_PP_ERR_V1_BAD_ADDRESS) : pp_v1_short(&v, out);
    if ((rc = pp_v1_port(&v, ' ', &sport)) <= 0)
        return rc < 0 ? pp_fail(out, SST_PP_ERR_V1_BAD_PORT) : pp_v1_short(&v, out);
    if ((rc = pp_v1_port(&v, '\r', &dport)) <= 0)
        return rc == -2 ? pp_fail(out, SST_PP_ERR_V1_BAD_CRLF)
               : rc < 0 ? pp_fail(out, SST_PP_ERR_V1_BAD_PORT)
                        : pp_v1_short(&v, out);
    if (!pp_v1_byte(&v, &c))
        return pp_v1_short(&v, out);
    if (c != '\n')
        return pp_fail(out, SST_PP_ERR_V1_BAD_CRLF);
    pp_set_port(&out->src, sport);
    pp_set_port(&out->dst, dport);
    out->len = v.pos;
    return SST_PP_DONE;
}

static uint16_t pp_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t pp_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Sets *slot to the value once: a repeated type would let two readers see two values. */
static bool pp_tlv_once(sst_str_t *slot, bool *seen, const uint8_t *v, size_t vlen)
{
    if (*seen)
        return false;
    *seen = true;
    *slot = sst_str((const char *)v, vlen);
    return true;
}

/* PP2_TYPE_SSL: client, verify, then sub-TLVs bounded by the SSL TLV's own length. */
static bool pp_v2_ssl(const uint8_t *v, size_t vlen, sst_pp_ssl_t *ssl)
{
    bool seen[5] = {false};
    size_t off = PP_V2_SSL_FIXED;

    if (vlen < PP_V2_SSL_FIXED)
        return false;
    ssl->present = true;
    ssl->client = v[0];
    ssl->verify = pp_be32(v + 1);
    while (off < vlen) {
        if (vlen - off < 3)
            return false;
        uint8_t type = v[off];
        size_t slen = pp_be16(v + off + 1);
        const uint8_t *s = v + off + 3;
        if (slen > vlen - off - 3)
            return false;
        sst_str_t *slots[5] = {&ssl->version, &ssl->cn, &ssl->cipher, &ssl->sig_alg, &ssl->key_alg};
        if (type >= SST_PP2_SUBTYPE_VERSION && type <= SST_PP2_SUBTYPE_KEY_ALG) {
            size_t k = (size_t)(type - SST_PP2_SUBTYPE_VERSION);
            if (!pp_tlv_once(slots[k], &seen[k], s, slen))
                return false;
        }
        off += 3 + slen;
    }
    return true;
}

static bool pp_is_ctl(uint8_t c)
{
    return c < 0x20 || c == 0x7f;
}

/* The TLVs of a PROXY header: p[start..total). Known types are checked and kept, the others
 * skipped; a CRC32C is verified over the whole header with its own four bytes zeroed. */
static sst_pp_status_t pp_v2_tlvs(const uint8_t *p, size_t start, size_t total,
                                  sst_pp_result_t *out)
{
    static const uint8_t zero[4] = {0};
    bool seen_alpn = false, seen_auth = false, seen_uid = false, seen_netns = false;
    size_t off = start, crc_at = 0;

    while (off < total) {
        if (total - off < 3)
            return pp_fail(out, SST_PP_ERR_V2_TLV);
        uint8_t type = p[off];
        size_t vlen = pp_be16(p + off + 1);
        const uint8_t *v = p + off + 3;
        if (vlen > total - off - 3)
            return pp_fail(out, SST_PP_ERR_V2_TLV);
        bool ok = true;
        switch (type) {
        case SST_PP2_TYPE_ALPN:
            ok = pp_tlv_once(&out->alpn, &seen_alpn, v, vlen);
            break;
        case SST_PP2_TYPE_AUTHORITY:
            /* an SNI host name: 1..255 bytes (RFC 6066), and it reaches the access log */
            ok = vlen > 0 && vlen <= PP_AUTHORITY_MAX &&
                 pp_tlv_once(&out->authority, &seen_auth, v, vlen);
            for (size_t i = 0; ok && i < vlen; i++)
                ok = !pp_is_ctl(v[i]);
            break;
        case SST_PP2_TYPE_CRC32C:
            ok = vlen == 4 && crc_at == 0;
            crc_at = off + 3;
            break;
        case SST_PP2_TYPE_UNIQUE_ID:
            ok = vlen > 0 && vlen <= PP_UNIQUE_ID_MAX &&
                 pp_tlv_once(&out->unique_id, &seen_uid, v, vlen);
            break;
        case SST_PP2_TYPE_SSL:
            ok = !out->ssl.present && pp_v2_ssl(v, vlen, &out->ssl);
            break;
        case SST_PP2_TYPE_NETNS:
            ok = pp_tlv_once(&out->netns, &seen_netns, v, vlen);
            break;
        default: /* NOOP, custom (0xE0-0xEF: AWS, GCP, Azure), experimental, future */
            break;
        }
        if (!ok)
            return pp_fail(out, SST_PP_ERR_V2_TLV);
        off += 3 + vlen;
    }
    if (crc_at != 0) {
        uint32_t crc = sst_pp_crc32c(0, p, crc_at);
        crc = sst_pp_crc32c(crc, zero, 4);
        crc = sst_pp_crc32c(crc, p + crc_at + 4, total - crc_at - 4);
        if (crc != pp_be32(p + crc_at))
            return pp_fail(out, SST_PP_ERR_V2_CRC32C);
        out->crc32c = true;
    }
    return SST_PP_DONE;
}

static sst_pp_status_t pp_parse_v2(const uint8_t *p, size_t len, size_t max_len,
                                   sst_pp_result_t *out)
{
    size_t block, total;
    uint8_t cmd, fam;

    if (memcmp(p, pp_v2_sig, len < sizeof pp_v2_sig ? len : sizeof pp_v2_sig) != 0)
        return pp_fail(out, SST_PP_ERR_BAD_SIGNATURE);
    if (len <= sizeof pp_v2_sig)
        return pp_more(out, SST_PP_V2_HEAD);
    out->version = 2;
    if ((p[12] >> 4) != 2)
        return pp_fail(out, SST_PP_ERR_V2_BAD_VERSION);
    cmd = p[12] & 0x0f;
    if (cmd > 1)
        return pp_fail(out, SST_PP_ERR_V2_BAD_COMMAND);
    if (len < 14)
        return pp_more(out, SST_PP_V2_HEAD);
    fam = p[13];
    /* LOCAL: "discard the protocol block including the family which is ignored" (spec 2.2) */
    switch (cmd == 0 ? 0x00 : fam) {
    case 0x00:
        block = 0;
        break;
    case 0x11:
        block = PP_V2_INET_BLOCK;
        break;
    case 0x21:
        block = PP_V2_INET6_BLOCK;
        break;
    case 0x31:
        block = PP_V2_UNIX_BLOCK;
        break;
    case 0x12:
    case 0x22:
    case 0x32:
        return pp_fail(out, SST_PP_ERR_V2_BAD_TRANSPORT);
    default:
        return pp_fail(out, SST_PP_ERR_V2_BAD_FAMILY);
    }
    if (len < SST_PP_V2_HEAD)
        return pp_more(out, SST_PP_V2_HEAD);
    total = SST_PP_V2_HEAD + (size_t)pp_be16(p + 14);
    if (max_len < SST_PP_V2_MAX_FLOOR)
        max_len = SST_PP_V2_MAX_FLOOR;
    if (total > max_len)
        return pp_fail(out, SST_PP_ERR_V2_TOO_LONG);
    if (total < SST_PP_V2_HEAD + block)
        return pp_fail(out, SST_PP_ERR_V2_LENGTH);
    if (len < total)
        return pp_more(out, total);

    out->len = total;
    if (cmd == 0 || fam == 0x00) {
        /* LOCAL, or PROXY over UNSPEC: "the receiver should ignore address information", which
         * may be there in a form we cannot know, so the TLVs cannot be found either */
        out->command = cmd == 0 ? SST_PP_LOCAL : SST_PP_UNKNOWN;
        out->family = AF_UNSPEC;
        return SST_PP_DONE;
    }
    const uint8_t *a = p + SST_PP_V2_HEAD;
    switch (fam) {
    case 0x11: {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
        struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2); /* both in network order already */
        memcpy(&d->sin_port, a + 10, 2);
        out->command = SST_PP_PROXY;
        out->family = AF_INET;
        break;
    }
    case 0x21: {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        out->command = SST_PP_PROXY;
        out->family = AF_INET6;
        break;
    }
    default: /* AF_UNIX stream: no IP address to use, keep the peer's */
        out->command = SST_PP_UNKNOWN;
        out->family = AF_UNIX;
        break;
    }
    return pp_v2_tlvs(p, SST_PP_V2_HEAD + block, total, out);
}

sst_pp_status_t sst_pp_parse(const void *buf, size_t len, size_t max_len, sst_pp_result_t *out)
{
    const uint8_t *p = buf;
    sst_pp_status_t st;

    memset(out, 0, sizeof *out);
    if (len == 0)
        return pp_more(out, 1);
    if (p[0] == 'P')
        st = pp_parse_v1(p, len, out);
    else if (p[0] == 0x0D)
        st = pp_parse_v2(p, len, max_len, out);
    else
        st = pp_fail(out, SST_PP_ERR_BAD_SIGNATURE);
    if (st != SST_PP_DONE) {
        /* only a whole header describes a connection: no half-filled addresses or slices */
        sst_pp_result_t keep = {.need = out->need, .error = out->error, .version = out->version};
        *out = keep;
    }
    return st;
}

/* --- writer ------------------------------------------------------------------------------ */

/* An IP endpoint: its family, 16 address bytes (IPv4 in the first 4) and port (host order). */
typedef struct pp_ep_s {
    int family;
    uint8_t addr[16];
    uint16_t port;
} pp_ep_t;

static bool pp_endpoint(const struct sockaddr *sa, pp_ep_t *ep)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    memset(ep, 0, sizeof *ep);
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        ep->family = AF_INET;
        memcpy(ep->addr, &sin->sin_addr, 4);
        ep->port = ntohs(sin->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        ep->port = ntohs(sin6->sin6_port);
        if (memcmp(sin6->sin6_addr.s6_addr, v4mapped, 12) == 0) {
            ep->family = AF_INET;
            memcpy(ep->addr, sin6->sin6_addr.s6_addr + 12, 4);
        } else {
            ep->family = AF_INET6;
            memcpy(ep->addr, sin6->sin6_addr.s6_addr, 16);
        }
        return true;
    }
    return false;
}

static void pp_to_v6(pp_ep_t *ep)
{
    if (ep->family == AF_INET6)
        return;
    memmove(ep->addr + 12, ep->addr, 4);
    memset(ep->addr, 0, 10);
    ep->addr[10] = ep->addr[11] = 0xff;
    ep->family = AF_INET6;
}

static int pp_emit(const void *src, size_t n, void *buf, size_t size)
{
    if (n > size)
        return SST_E2BIG;
    memcpy(buf, src, n);
    return (int)n;
}

static int pp_write_v1(const pp_ep_t *s, const pp_ep_t *d, void *buf, size_t size)
{
    char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN], line[SST_PP_WRITE_MAX + 1];
    int n;

    if (inet_ntop(s->family, s->addr, sa, sizeof sa) == NULL ||
        inet_ntop(d->family, d->addr, da, sizeof da) == NULL)
        return SST_EINVAL;
    n = snprintf(line, sizeof line, "PROXY %s %s %s %u %u\r\n",
                 s->family == AF_INET ? "TCP4" : "TCP6", sa, da, (unsigned)s->port,
                 (unsigned)d->port);
    /* the longest: TCP6, two 39-byte addresses (a mapped one is shorter), two 5-digit ports */
    if (n < 0 || (size_t)n > SST_PP_V1_MAX)
        return SST_EINVAL;
    return pp_emit(line, (size_t)n, buf, size);
}

static int pp_write_v2(int cmd, const pp_ep_t *s, const pp_ep_t *d, void *buf, size_t size)
{
    uint8_t h[SST_PP_V2_HEAD + PP_V2_INET6_BLOCK];
    size_t alen = 0, n = SST_PP_V2_HEAD;
    uint8_t fam = 0x00;

    if (s != NULL) {
        size_t asz = s->family == AF_INET ? 4 : 16;
        fam = s->family == AF_INET ? 0x11 : 0x21;
        alen = 2 * asz + 4;
        memcpy(h + n, s->addr, asz);
        memcpy(h + n + asz, d->addr, asz);
        h[n + 2 * asz] = (uint8_t)(s->port >> 8);
        h[n + 2 * asz + 1] = (uint8_t)s->port;
        h[n + 2 * asz + 2] = (uint8_t)(d->port >> 8);
        h[n + 2 * asz + 3] = (uint8_t)d->port;
        n += alen;
    }
    memcpy(h, pp_v2_sig, sizeof pp_v2_sig);
    h[12] = (uint8_t)(0x20 | cmd);
    h[13] = fam;
    h[14] = (uint8_t)(alen >> 8);
    h[15] = (uint8_t)alen;
    return pp_emit(h, n, buf, size);
}

int sst_pp_write(int version, const struct sockaddr *src, const struct sockaddr *dst, void *buf,
                 size_t size)
{
    static const char unknown[] = "PROXY UNKNOWN\r\n";
    pp_ep_t s, d;

    if (version != 1 && version != 2)
        return SST_EINVAL;
    if (!pp_endpoint(src, &s) || !pp_endpoint(dst, &d)) {
        /* as HAProxy does: every receiver must accept LOCAL and keep the real peer, while a
         * PROXY over UNSPEC may be refused (spec 2.2) */
        if (version == 1)
            return pp_emit(unknown, sizeof unknown - 1, buf, size);
        return pp_write_v2(0, NULL, NULL, buf, size);
    }
    if (s.family != d.family) {
        pp_to_v6(&s);
        pp_to_v6(&d);
    }
    if (version == 1)
        return pp_write_v1(&s, &d, buf, size);
    return pp_write_v2(1, &s, &d, buf, size);
}

int sst_pp_write_local(int version, void *buf, size_t size)
{
    static const char unknown[] = "PROXY UNKNOWN\r\n";

    if (version == 1)
        return pp_emit(unknown, sizeof unknown - 1, buf, size);
    if (version == 2)
        return pp_write_v2(0, NULL, NULL, buf, size);
    return SST_EINVAL;
}
