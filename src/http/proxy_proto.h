/* PROXY protocol v1 and v2 (HAProxy's doc/proxy-protocol.txt): a pure, incremental parser for
 * the header a listener receives and a writer for the header sent to a backend. No sockets, no
 * clock, no allocation: the caller owns every buffer, and parsing keeps no state between calls. */
#ifndef SST_HTTP_PROXY_PROTO_H
#define SST_HTTP_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sidestep/str.h"

#define SST_PP_V1_MAX         107  /* longest v1 line, CRLF included (spec 2.1) */
#define SST_PP_V2_HEAD        16   /* signature, version/command, family, length */
#define SST_PP_V2_MAX_FLOOR   232  /* 16 + the AF_UNIX address block: any family fits */
#define SST_PP_V2_MAX_DEFAULT 4096 /* nginx's bound on a whole header; see docs/security.md */
#define SST_PP_WRITE_MAX      108  /* room for anything the writer produces */

/* v2 TLV types (spec 2.2) and the SSL client bits. */
#define SST_PP2_TYPE_ALPN        0x01
#define SST_PP2_TYPE_AUTHORITY   0x02
#define SST_PP2_TYPE_CRC32C      0x03
#define SST_PP2_TYPE_NOOP        0x04
#define SST_PP2_TYPE_UNIQUE_ID   0x05
#define SST_PP2_TYPE_SSL         0x20
#define SST_PP2_SUBTYPE_VERSION  0x21
#define SST_PP2_SUBTYPE_CN       0x22
#define SST_PP2_SUBTYPE_CIPHER   0x23
#define SST_PP2_SUBTYPE_SIG_ALG  0x24
#define SST_PP2_SUBTYPE_KEY_ALG  0x25
#define SST_PP2_TYPE_NETNS       0x30
#define SST_PP2_CLIENT_SSL       0x01
#define SST_PP2_CLIENT_CERT_CONN 0x02
#define SST_PP2_CLIENT_CERT_SESS 0x04

/* Why a header was refused: the enumerator and its metric label. */
#define SST_PP_ERROR_MAP(XX)                                                                       \
    XX(BAD_SIGNATURE, "bad_signature")       /* neither "PROXY " nor the v2 signature */           \
    XX(V1_TOO_LONG, "v1_too_long")           /* no CRLF within 107 bytes */                        \
    XX(V1_BAD_PROTOCOL, "v1_bad_protocol")   /* not TCP4, TCP6 or UNKNOWN */                       \
    XX(V1_BAD_ADDRESS, "v1_bad_address")     /* not an address of the family, or not one space */  \
    XX(V1_BAD_PORT, "v1_bad_port")           /* not 0..65535 without leading zeros */              \
    XX(V1_BAD_CRLF, "v1_bad_crlf")           /* a bare CR or LF */                                 \
    XX(V2_BAD_VERSION, "v2_bad_version")     /* version nibble not 2 */                            \
    XX(V2_BAD_COMMAND, "v2_bad_command")     /* neither LOCAL nor PROXY */                         \
    XX(V2_BAD_FAMILY, "v2_bad_family")       /* a family/transport byte the spec does not list */  \
    XX(V2_BAD_TRANSPORT, "v2_bad_transport") /* DGRAM: cannot describe a TCP connection */         \
    XX(V2_TOO_LONG, "v2_too_long")           /* longer than the caller's max_len */                \
    XX(V2_LENGTH, "v2_length")               /* shorter than the family's address block */         \
    XX(V2_TLV, "v2_tlv")                     /* a TLV that overruns, repeats or breaks its rule */ \
    XX(V2_CRC32C, "v2_crc32c")               /* PP2_TYPE_CRC32C does not match */

typedef enum sst_pp_error_e {
    SST_PP_OK = 0,
#define SST_PP_ERR_ENUM(name, label) SST_PP_ERR_##name,
    SST_PP_ERROR_MAP(SST_PP_ERR_ENUM)
#undef SST_PP_ERR_ENUM
} sst_pp_error_t;

/* SST_PP_OK plus every reason: per-reason counters are arrays of this size. */
#define SST_PP_ERR_ONE(name, label) +1
enum { SST_PP_ERR_COUNT = 1 SST_PP_ERROR_MAP(SST_PP_ERR_ONE) };
#undef SST_PP_ERR_ONE

typedef enum sst_pp_status_e {
    SST_PP_NEED_MORE = 0, /* valid so far: read more, then call again with every byte so far */
    SST_PP_DONE,          /* a whole header: out->len bytes, the rest is the first request */
    SST_PP_ERROR,         /* out->error says why: close the connection without an answer */
} sst_pp_status_t;

typedef enum sst_pp_command_e {
    SST_PP_LOCAL = 0, /* v2 LOCAL: the balancer's own connection (health check): keep the peer */
    SST_PP_PROXY,     /* relayed: src and dst hold the client's connection */
    SST_PP_UNKNOWN,   /* relayed, but no IP addresses (v1 UNKNOWN, v2 PROXY over UNSPEC or
                         AF_UNIX): keep the peer, as the spec recommends */
} sst_pp_command_t;

/* PP2_TYPE_SSL: what the balancer knew of the client's TLS session. */
typedef struct sst_pp_ssl_s {
    bool present;
    uint8_t client;  /* SST_PP2_CLIENT_* bits */
    uint32_t verify; /* 0 when a client certificate was presented and verified */
    sst_str_t version, cn, cipher, sig_alg, key_alg;
} sst_pp_ssl_t;

/* One parse's outcome. Slices point into the caller's buffer and live as long as it does; they
 * are bytes from the network (UNIQUE_ID is binary): escape them before logging. */
typedef struct sst_pp_result_s {
    size_t len;           /* DONE: header bytes consumed */
    size_t need;          /* NEED_MORE: no whole header is shorter (exact for v2 once its 16
                             fixed bytes are in). Calling sooner is harmless and finds a broken
                             prefix sooner: call on every read. */
    sst_pp_error_t error; /* ERROR: the reason; SST_PP_OK otherwise */
    uint8_t version;      /* 1 or 2 once the signature told; 0 before */
    sst_pp_command_t command;
    int family;                       /* PROXY: AF_INET or AF_INET6; UNKNOWN: AF_UNSPEC or AF_UNIX;
                                         LOCAL: AF_UNSPEC */
    struct sockaddr_storage src, dst; /* PROXY only (ports included); zero (AF_UNSPEC) else */
    /* v2 TLVs of PROXY over AF_INET, AF_INET6 or AF_UNIX; empty slices when absent. LOCAL and
     * UNSPEC headers are skipped unread (their address block's size is unknown). */
    sst_str_t alpn;      /* PP2_TYPE_ALPN, as sent */
    sst_str_t authority; /* PP2_TYPE_AUTHORITY (SNI): 1..255 bytes, no CTL */
    sst_str_t unique_id; /* PP2_TYPE_UNIQUE_ID: 1..128 opaque bytes */
    sst_str_t netns;     /* PP2_TYPE_NETNS */
    bool crc32c;         /* a PP2_TYPE_CRC32C was present and matched */
    sst_pp_ssl_t ssl;    /* PP2_TYPE_SSL */
} sst_pp_result_t;

/* Parses the bytes a connection has received so far, buf[0..len), from the first byte on.
 * max_len bounds a v2 header (16 + its length field); values below SST_PP_V2_MAX_FLOOR count as
 * the floor. A v1 line is always bounded by SST_PP_V1_MAX.
 * Returns NEED_MORE, DONE or ERROR and fills *out (cleared first). A prefix that no valid header
 * starts with is an ERROR at once, so a client speaking HTTP fails on its first byte or two.
 * Never reads buf[len] or past the header. Strictness (one reading only): single spaces,
 * CRLF, no leading zeros, addresses of the announced family, TLVs within the header and each
 * known type at most once. The same bytes give the same answer however they were split. */
sst_pp_status_t sst_pp_parse(const void *buf, size_t len, size_t max_len, sst_pp_result_t *out);

/* The metric label of an error ("bad_signature", ...); "ok" for SST_PP_OK, "unknown" outside. */
const char *sst_pp_error_name(sst_pp_error_t err);

/* Writes the header announcing a connection from src to dst into buf[0..size).
 * version is 1 or 2. Addresses are AF_INET or AF_INET6 (ports included); a v4-mapped IPv6
 * address (a dual-stack socket's view of an IPv4 peer) is written as IPv4. Both IPv4: TCP4 /
 * AF_INET; otherwise both as IPv6, an IPv4 one mapped (::ffff:a.b.c.d), as HAProxy does. When
 * either is NULL or of another family: v1 "PROXY UNKNOWN", v2 LOCAL (as HAProxy does: every
 * receiver must accept LOCAL, a PROXY over UNSPEC may be refused), so the receiver keeps the
 * real peer. v2 headers carry no TLV.
 * Returns the length written (never more than SST_PP_WRITE_MAX), or SST_EINVAL (bad version)
 * or SST_E2BIG (size too small; nothing useful is in buf then). No NUL is appended. */
int sst_pp_write(int version, const struct sockaddr *src, const struct sockaddr *dst, void *buf,
                 size_t size);

/* A health probe's header: v2 LOCAL, or v1 "PROXY UNKNOWN\r\n" (the receiver keeps the real
 * peer either way). Same returns as sst_pp_write. */
int sst_pp_write_local(int version, void *buf, size_t size);

/* CRC32C (Castagnoli, RFC 4960 appendix B) of data[0..len), continuing from crc (start at 0). */
uint32_t sst_pp_crc32c(uint32_t crc, const void *data, size_t len);

#endif
