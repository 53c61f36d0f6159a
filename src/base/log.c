/* Diagnostics and the access/event stream: formatting, one write(2) per line, a per-process
 * rate limit for diagnostics. Owns no buffering of access lines (workers batch those). */
#include "sidestep/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = SST_LOG_INFO;
static atomic_int log_diag_fd = 2;
static atomic_int log_access_fd = 2;
static atomic_bool log_is_json = false;

/* Rate limit: at most LOG_BURST diagnostics per second across the process; the rest are counted
 * and reported, so a flood of bad clients cannot turn the log into the bottleneck. */
#define LOG_BURST 50
static atomic_uint_fast64_t log_window_sec;
static atomic_uint log_window_count;
static atomic_uint log_dropped;

static const char *const level_names[] = {
    [SST_LOG_DEBUG] = "debug",
    [SST_LOG_INFO] = "info",
    [SST_LOG_WARN] = "warn",
    [SST_LOG_ERROR] = "error",
};

void sst_log_setup(int level, int diag_fd, int access_fd, bool json)
{
    atomic_store(&log_level, level);
    atomic_store(&log_diag_fd, diag_fd);
    atomic_store(&log_access_fd, access_fd);
    atomic_store(&log_is_json, json);
}

int sst_log_level(void)
{
    return atomic_load_explicit(&log_level, memory_order_relaxed);
}

bool sst_log_json(void)
{
    return atomic_load_explicit(&log_is_json, memory_order_relaxed);
}

int sst_log_access_fd(void)
{
    return atomic_load_explicit(&log_access_fd, memory_order_relaxed);
}

uint64_t sst_log_epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

size_t sst_log_time(uint64_t epoch_ms, char *buf)
{
    time_t sec = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    int n =
        snprintf(buf, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(epoch_ms % 1000));
    return n > 0 && n < 32 ? (size_t)n : 0;
}

size_t sst_json_escape(char *buf, size_t size, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            if (o + 2 > size)
                return 0;
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            if (o + 6 > size)
                return 0;
            memcpy(buf + o, "\\u00", 4);
            buf[o + 4] = hex[c >> 4];
            buf[o + 5] = hex[c & 15];
            o += 6;
        } else {
            if (o + 1 > size)
                return 0;
            buf[o++] = (char)c;
        }
    }
    return o;
}

typedef struct lbuf_s {
    char *p;
    size_t len, cap; /* cap keeps one byte for the '\n' */
} lbuf_t;

static void lb_put(lbuf_t *b, const char *s, size_t len)
{
    size_t room = b->cap - b->len;
    if (len > room)
        len = room;
    memcpy(b->p + b->len, s, len);
    b->len += len;
}

static void lb_puts(lbuf_t *b, const char *s)
{
    lb_put(b, s, strlen(s));
}

static void lb_esc(lbuf_t *b, const char *s, size_t len)
{
    /* escaped byte by byte so that a long value is cut, not dropped */
    for (size_t i = 0; i < len && b->len < b->cap; i++) {
        char e[6];
        size_t el = sst_json_escape(e, sizeof(e), s + i, 1);
        if (el > b->cap - b->len)
            break;
        lb_put(b, e, el);
    }
}

static void lb_value(lbuf_t *b, const sst_log_field_t *f, bool json)
{
    char num[32];
    int n;
    switch (f->kind) {
    case SST_LF_RAW:
        lb_put(b, f->str, f->len);
        return;
    case SST_LF_ESC:
        lb_esc(b, f->str, f->len);
        return;
    case SST_LF_JSONESC:
        if (json)
            lb_esc(b, f->str, f->len);
        else
            lb_put(b, f->str, f->len);
        return;
    case SST_LF_UINT:
        n = snprintf(num, sizeof(num), "%llu", (unsigned long long)f->u);
        lb_put(b, num, n > 0 ? (size_t)n : 0);
        return;
    case SST_LF_MS3:
        n = snprintf(num, sizeof(num), "%.3f", f->d);
        lb_put(b, num, n > 0 && (size_t)n < sizeof(num) ? (size_t)n : 0);
        return;
    }
}

size_t sst_log_format(char *buf, size_t size, uint64_t epoch_ms, const sst_log_field_t *f, size_t n)
{
    char ts[32];
    lbuf_t b = {buf, 0, size - 1};
    bool json = sst_log_json();
    size_t tl = sst_log_time(epoch_ms, ts);

    if (json) {
        lb_puts(&b, "{\"time\":\"");
        lb_put(&b, ts, tl);
        lb_puts(&b, "\"");
        for (size_t i = 0; i < n; i++) {
            if (f[i].key == NULL)
                continue;
            bool quoted = f[i].kind != SST_LF_UINT && f[i].kind != SST_LF_MS3;
            lb_puts(&b, ",\"");
            lb_puts(&b, f[i].key);
            lb_puts(&b, quoted ? "\":\"" : "\":");
            lb_value(&b, &f[i], true);
            if (quoted)
                lb_puts(&b, "\"");
        }
        lb_puts(&b, "}");
    } else {
        lb_put(&b, ts, tl);
        for (size_t i = 0; i < n; i++) {
            if (f[i].pre == NULL)
                continue;
            lb_puts(&b, f[i].pre);
            lb_value(&b, &f[i], false);
            if (f[i].post != NULL)
                lb_puts(&b, f[i].post);
        }
    }
    buf[b.len++] = '\n';
    return b.len;
}

static void log_write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere to report a failing log sink */
        }
        p += n;
        len -= (size_t)n;
    }
}

void sst_log_access_write(const char *line, size_t len)
{
    int fd = sst_log_access_fd();
    if (fd >= 0)
        log_write_all(fd, line, len);
}

void sst_log_event_write(const char *line, size_t len)
{
    int fd = sst_log_access_fd();
    log_write_all(fd >= 0 ? fd : atomic_load(&log_diag_fd), line, len);
}

static bool log_rate_ok(uint64_t now_ms, unsigned *dropped)
{
    uint64_t sec = now_ms / 1000;
    uint64_t cur = atomic_load(&log_window_sec);
    if (cur != sec && atomic_compare_exchange_strong(&log_window_sec, &cur, sec))
        atomic_store(&log_window_count, 0);
    if (atomic_fetch_add(&log_window_count, 1) >= LOG_BURST) {
        atomic_fetch_add(&log_dropped, 1);
        return false;
    }
    *dropped = atomic_exchange(&log_dropped, 0);
    return true;
}

void sst_logv(int level, const char *fmt, va_list ap)
{
    char line[2048];
    char msg[1536];
    unsigned dropped = 0;

    if (level < sst_log_level())
        return;
    uint64_t now = sst_log_epoch_ms();
    if (level < SST_LOG_ERROR && !log_rate_ok(now, &dropped))
        return;
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (m < 0)
        return;
    size_t mlen = (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
    if (dropped > 0) {
        char note[96];
        int k = snprintf(note, sizeof(note), "%u log lines dropped by the rate limit", dropped);
        sst_log_field_t nf[] = {
            {.key = "type", .kind = SST_LF_RAW, .str = "log", .len = 3},
            {.key = "level", .pre = " ", .kind = SST_LF_RAW, .str = "warn", .len = 4},
            {.key = "msg", .pre = " ", .kind = SST_LF_JSONESC, .str = note, .len = (size_t)k},
        };
        if (k > 0 && (size_t)k < sizeof(note)) {
            size_t nl = sst_log_format(line, sizeof(line), now, nf, 3);
            log_write_all(atomic_load(&log_diag_fd), line, nl);
        }
    }
    const char *lv = level_names[level];
    sst_log_field_t f[] = {
        {.key = "type", .kind = SST_LF_RAW, .str = "log", .len = 3},
        {.key = "level", .pre = " ", .kind = SST_LF_RAW, .str = lv, .len = strlen(lv)},
        {.key = "msg", .pre = " ", .kind = SST_LF_JSONESC, .str = msg, .len = mlen},
    };
    size_t len = sst_log_format(line, sizeof(line), now, f, 3);
    log_write_all(atomic_load(&log_diag_fd), line, len);
}

void sst_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sst_logv(level, fmt, ap);
    va_end(ap);
}
