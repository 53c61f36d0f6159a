/* sst_strerror: text for our negative error codes, falling back to libuv's table. */
#include "sidestep/error.h"

const char *sst_strerror(int err)
{
    switch (err) {
#define SST_ERR_CASE(name, code, text)                                                             \
    case code:                                                                                     \
        return text;
        SST_ERRNO_MAP(SST_ERR_CASE)
#undef SST_ERR_CASE
    case 0:
        return "success";
    default:
        return uv_strerror(err);
    }
}
