/* The HTTP/1.1 writer (h1_write.h): pure functions from parsed heads to bytes. */
#include "http/h1_write.h"

const sst_str_t sst_h1_tails[SST_TAILS] = {
    [SST_TAIL_PLAIN] = {"\r\n", 2},
    [SST_TAIL_CLOSE] = {"Connection: close\r\n\r\n", 21},
    [SST_TAIL_KEEPALIVE10] = {"Connection: keep-alive\r\n\r\n", 26},
};
