/* The latency buckets of the worker counters (core/metrics.h) and the PROXY refusal labels: one
 * table each, shared by the request path that counts and the exposition that renders. */
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

const char *sst_m_pp_reason_name(unsigned reason)
{
    switch (reason) {
    case SST_M_PP_NOT_ALLOWED:
        return "not_allowed";
    case SST_M_PP_TIMEOUT:
        return "timeout";
    case SST_M_PP_EOF:
        return "eof";
    default:
        return sst_pp_error_name((sst_pp_error_t)reason);
    }
}
