/* The latency buckets of the worker counters (core/metrics.h): one table, shared by the request
 * path that counts and the exposition that renders. */
#include "core/metrics.h"

const uint64_t sst_m_lat_bounds_us[SST_M_LAT_BUCKETS] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
};

unsigned sst_m_lat_bucket(uint64_t us)
{
    unsigned i = 0;
    while (i < SST_M_LAT_BUCKETS && us > sst_m_lat_bounds_us[i])
        i++;
    return i; /* SST_M_LAT_BUCKETS is +Inf */
}
