/* Length-delimited string slices and the few helpers every parser needs. A slice never owns its
 * bytes and is never NUL-terminated; compare with the helpers, never with strcmp. */
#ifndef SST_STR_H
#define SST_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sst_str_s {
    const char *base;
    size_t len;
} sst_str_t;

#define SST_STR_LIT(s) ((sst_str_t){(s), sizeof(s) - 1})
#define SST_STR_NULL   ((sst_str_t){NULL, 0})

static inline sst_str_t sst_str(const char *base, size_t len)
{
    return (sst_str_t){base, len};
}

/* Slice over a NUL-terminated C string (NULL gives an empty slice). */
sst_str_t sst_str_c(const char *s);

bool sst_str_eq(sst_str_t a, sst_str_t b);
/* ASCII case-insensitive equality (header names, tokens). */
bool sst_str_ieq(sst_str_t a, sst_str_t b);
bool sst_str_ieq_c(sst_str_t a, const char *b);
bool sst_str_has_prefix(sst_str_t s, sst_str_t prefix);
/* Removes leading and trailing SP and HTAB (RFC 9110 §5.5 OWS). */
sst_str_t sst_str_trim_ows(sst_str_t s);
/* RFC 9110 §5.6.2 token characters. */
bool sst_is_tchar(unsigned char c);
bool sst_str_is_token(sst_str_t s);
/* Iterates a comma-separated list (RFC 9110 §5.6.1): sets *item to the next non-empty, OWS-trimmed
 * element and returns true, or returns false at the end. *pos starts at 0. */
bool sst_str_next_list_item(sst_str_t list, size_t *pos, sst_str_t *item);
/* True when the comma-separated list `list` contains `token`, case-insensitively. */
bool sst_str_list_has(sst_str_t list, const char *token);
/* Parses a non-empty run of decimal digits that must span the whole slice into *out.
 * Returns 0, or SST_EINVAL (empty, non-digit) or SST_ERANGE (greater than max). */
int sst_str_to_u64(sst_str_t s, uint64_t max, uint64_t *out);
/* Formats v in decimal into buf (at least 21 bytes); returns the length. */
size_t sst_u64_to_dec(uint64_t v, char *buf);

#endif
