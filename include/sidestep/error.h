/* Error codes shared by every module: negative errno values, identical to libuv's UV_E* so a libuv
 * return can be passed through unchanged. No module defines codes of its own outside this list. */
#ifndef SST_ERROR_H
#define SST_ERROR_H

#include <uv.h>

/* X-macro: name, libuv code, text. */
#define SST_ERRNO_MAP(XX)                                                                          \
    XX(EINVAL, UV_EINVAL, "invalid argument")                                                      \
    XX(ENOMEM, UV_ENOMEM, "out of memory")                                                         \
    XX(ENOENT, UV_ENOENT, "no such entry")                                                         \
    XX(EEXIST, UV_EEXIST, "already exists")                                                        \
    XX(ERANGE, UV_ERANGE, "value out of range")                                                    \
    XX(E2BIG, UV_E2BIG, "too large")                                                               \
    XX(EAGAIN, UV_EAGAIN, "try again")                                                             \
    XX(EBUSY, UV_EBUSY, "busy")                                                                    \
    XX(ECANCELED, UV_ECANCELED, "canceled")                                                        \
    XX(ETIMEDOUT, UV_ETIMEDOUT, "timed out")                                                       \
    XX(ECONNREFUSED, UV_ECONNREFUSED, "connection refused")                                        \
    XX(ECONNRESET, UV_ECONNRESET, "connection reset")                                              \
    XX(EPROTO, UV_EPROTO, "protocol error")                                                        \
    XX(EIO, UV_EIO, "i/o error")                                                                   \
    XX(ENOTSUP, UV_ENOTSUP, "not supported")                                                       \
    XX(EACCES, UV_EACCES, "permission denied")

enum {
#define SST_ERR_ENUM(name, code, text) SST_##name = code,
    SST_ERRNO_MAP(SST_ERR_ENUM)
#undef SST_ERR_ENUM
};

/* Text for a negative SST_E* or UV_E* code; never NULL. */
const char *sst_strerror(int err);

#endif
