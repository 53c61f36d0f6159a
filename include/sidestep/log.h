/* Leveled, rate-limited diagnostics and the access/event stream. One process-wide sink (a
 * departure from STYLE §12's "no mutable globals": the log is the one thing every thread shares,
 * like nginx's error_log). Lines are written whole with one write(2) each, so threads never
 * interleave inside a line. */
#ifndef SST_LOG_H
#define SST_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    SST_LOG_DEBUG = 0,
    SST_LOG_INFO = 1,
    SST_LOG_WARN = 2,
    SST_LOG_ERROR = 3,
};

#define SST_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Configures the sinks. `diag_fd` receives diagnostics (stderr); `access_fd` receives access
 * and event lines (-1: off). json selects the JSON format for both streams. Not thread-safe
 * with concurrent logging of the previous fds: call before workers start or from the control
 * thread during reload (old fds are closed by the caller after workers moved on). */
void sst_log_setup(int level, int diag_fd, int access_fd, bool json);
int sst_log_level(void);
bool sst_log_json(void);
int sst_log_access_fd(void);

/* A diagnostic line: "2026-11-25T16:41:54.123Z warn msg". Lines below error are limited to 50
 * per second process-wide; the excess is counted and reported by the next line that passes. */
void sst_log(int level, const char *fmt, ...) SST_PRINTF(2, 3);
void sst_logv(int level, const char *fmt, va_list ap) SST_PRINTF(2, 0);

#define SST_LOG_ON(lvl) ((lvl) >= sst_log_level())
#define sst_debug(...)                                                                             \
    do {                                                                                           \
        if (SST_LOG_ON(SST_LOG_DEBUG))                                                             \
            sst_log(SST_LOG_DEBUG, __VA_ARGS__);                                                   \
    } while (0)
#define sst_info(...)  sst_log(SST_LOG_INFO, __VA_ARGS__)
#define sst_warn(...)  sst_log(SST_LOG_WARN, __VA_ARGS__)
#define sst_error(...) sst_log(SST_LOG_ERROR, __VA_ARGS__)

/* Writes one pre-formatted line (with its '\n') to the access/event stream. */
void sst_log_access_write(const char *line, size_t len);
/* An event line (health, operator): to the access stream, or to the diagnostics stream when
 * the access log is off, so events are never lost. */
void sst_log_event_write(const char *line, size_t len);

/* Formats wall-clock time `ms` (Unix epoch ms) as "2026-11-25T16:41:54.123Z" into buf (>= 32
 * bytes); returns the length. */
size_t sst_log_time(uint64_t epoch_ms, char *buf);
uint64_t sst_log_epoch_ms(void);

/* One field of an access, event or diagnostic line, for sst_log_format. A field appears in the
 * JSON format when `key` is set ("key":value) and in the text format when `pre` is set
 * (pre value post), so one list describes both formats even where their orders differ. */
typedef enum sst_log_kind_e {
    SST_LF_RAW = 0, /* str as is: text the program made (names, codes, addresses) */
    SST_LF_ESC,     /* str escaped as in JSON, in both formats (bytes from the network) */
    SST_LF_JSONESC, /* str escaped in JSON, as is in text (diagnostic messages) */
    SST_LF_UINT,    /* u in decimal; a number in JSON */
    SST_LF_MS3,     /* d with three decimals ("1.250"); a number in JSON */
} sst_log_kind_t;

typedef struct sst_log_field_s {
    const char *key;  /* JSON member name; NULL: text only */
    const char *pre;  /* text before the value in the text format; NULL: JSON only */
    const char *post; /* text after it (text format); NULL: nothing */
    sst_log_kind_t kind;
    const char *str;
    size_t len;
    uint64_t u;
    double d;
} sst_log_field_t;

/* The one formatter of log lines: "TIME f1 f2 ...\n" or {"time":"TIME","k1":v1,...}\n in the
 * configured format (sst_log_json), TIME from `epoch_ms`. Returns the length; a line longer
 * than `size` is cut short and still ends with '\n' (size must be at least 2). */
size_t sst_log_format(char *buf, size_t size, uint64_t epoch_ms, const sst_log_field_t *f,
                      size_t n);

/* Appends `s` to buf as the inside of a JSON string (escapes quotes, backslashes, controls and
 * bytes >= 0x80 as \u00XX); returns bytes written, or 0 if it did not fit. */
size_t sst_json_escape(char *buf, size_t size, const char *s, size_t len);

#endif
