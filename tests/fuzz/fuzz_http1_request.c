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
    static h1f_outcome_t whole, pieces, bytes; /* large: not on the stack */

    h1f_run(data + 1, size - 1, 0, false, false, &lim, true, &whole);
    h1f_run(data + 1, size - 1, step, false, false, &lim, true, &pieces);
    h1f_compare(&whole, &pieces);
    if (size <= 1024) {
        h1f_run(data + 1, size - 1, 1, false, false, &lim, true, &bytes);
        h1f_compare(&whole, &bytes);
    }
    return 0;
}
