/* libFuzzer target: the request side of http1.c. Each input is parsed whole, in pieces and byte
 * by byte; the runs must agree, and every accepted head must satisfy what conn.c relies on
 * (h1_fuzz.h), else the target aborts. */
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
    size_t step = (size_t)(data[0] & 0x3f) + 1;
    h1f_differential(data + 1, size - 1, step, false, false, &lim);
    return 0;
}
