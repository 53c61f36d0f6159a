/* The fuzz targets' invariant check: libFuzzer reports an abort(), with this line saying which
 * invariant broke. */
#ifndef SST_TESTS_FUZZ_CHECK_H
#define SST_TESTS_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant broken: %s (%s:%d)\n", #cond, __FILE__, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
