/* libFuzzer target: the response side of http1.c (status-line, 1xx heads, framing, bodies
 * delimited by the close, the response check). Parsed whole, in pieces and byte by byte as in
 * fuzz_http1_request.c; bit 6 of the first byte says the request was HEAD. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h1_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    sst_h1_limits_t lim;
    h1f_limits(data[0], &lim);
    lim.body = 0; /* upstream.c sets no body limit on responses */
    bool head_request = (data[0] & 0x40) != 0;
    size_t step = (size_t)(data[0] & 0x3f) + 1;
    h1f_differential(data + 1, size - 1, step, true, head_request, &lim);
    return 0;
}
