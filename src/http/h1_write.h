/* The HTTP/1.1 writer: heads sidestep sends, built from parsed heads (never from raw bytes)
 * into a caller's buffer. Pure: no libuv, no allocation, no clock; tested byte by byte. */
#ifndef SST_HTTP_H1_WRITE_H
#define SST_HTTP_H1_WRITE_H

#include "sidestep/str.h"

/* How a generated head ends: the connection field, then the blank line. */
typedef enum sst_tail_e {
    SST_TAIL_PLAIN = 0,   /* "\r\n": HTTP/1.1 keep-alive */
    SST_TAIL_CLOSE,       /* "Connection: close\r\n\r\n" */
    SST_TAIL_KEEPALIVE10, /* "Connection: keep-alive\r\n\r\n": HTTP/1.0 keep-alive */
    SST_TAILS
} sst_tail_t;

extern const sst_str_t sst_h1_tails[SST_TAILS];

#endif
