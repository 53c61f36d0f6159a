/* The config loader: YAML text (libyaml document API) to one validated, immutable sst_config_t.
 * Owns the snapshot's lifetime, the node helpers and the top-level sections; regions, health
 * and routes live in config_regions.c. Never aborts on input: every failure fills sst_diag_t. */
#include "sidestep/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "sidestep/error.h"
#include "sidestep/str.h"

#include "config/config_internal.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

#define CONFIG_MAX_FILE  (4 * MIB) /* a config is a few KiB; anything this big is a mistake */
#define CONFIG_MAX_DEPTH 16        /* the schema nests 7 levels deep */
#define CONFIG_MAX_TOKEN 4096

/* Every string a config keeps is one allocation on this list, freed with the config. */
struct sst__cfg_str_s {
    sst__cfg_str_t *next;
    char text[];
};

/* The snapshot and what it owns; cfg comes first so a sst_config_t * is also the box. */
typedef struct config_box_s {
    sst_config_t cfg;
    sst__cfg_str_t *strings;
} config_box_t;

static void config_free(config_box_t *box)
{
    sst__cfg_str_t *s = box->strings;

    sst_diag_list_free(&box->cfg.warnings);
    while (s != NULL) {
        sst__cfg_str_t *next = s->next;
        free(s);
        s = next;
    }
    free(box);
}

sst_config_t *sst_config_ref(sst_config_t *cfg)
{
    if (cfg != NULL)
        atomic_fetch_add_explicit(&cfg->refcount, 1, memory_order_relaxed);
    return cfg;
}

void sst_config_unref(sst_config_t *cfg)
{
    if (cfg == NULL)
        return;
    /* acq_rel: the thread that frees must see every other thread's last use */
    if (atomic_fetch_sub_explicit(&cfg->refcount, 1, memory_order_acq_rel) == 1)
        config_free((config_box_t *)cfg);
}

char *sst__cfg_strdup(sst__cfg_ctx_t *c, sst_str_t s)
{
    sst__cfg_str_t *node;

    if (s.len > SIZE_MAX - sizeof *node - 1)
        return NULL;
    node = malloc(sizeof *node + s.len + 1);
    if (node == NULL)
        return NULL;
    if (s.len > 0)
        memcpy(node->text, s.base, s.len);
    node->text[s.len] = '\0';
    node->next = *c->strings;
    *c->strings = node;
    return node->text;
}

/* --- diagnostics ------------------------------------------------------------------------- */

static void config_append(char *buf, size_t size, size_t *o, const char *s)
{
    while (*s != '\0' && *o + 1 < size)
        buf[(*o)++] = *s++;
    buf[*o] = '\0';
}

const char *sst_diag_format(const sst_diag_t *diag, char *buf, size_t size)
{
    char pos[32];
    size_t o = 0;

    if (buf == NULL || size == 0)
        return buf;
    buf[0] = '\0';
    if (diag == NULL)
        return buf;
    if (diag->file[0] != '\0') {
        config_append(buf, size, &o, diag->file);
        if (diag->line > 0) {
            snprintf(pos, sizeof pos, ":%u:%u", diag->line, diag->column);
            config_append(buf, size, &o, pos);
        }
        config_append(buf, size, &o, ": ");
    }
    if (diag->key[0] != '\0') {
        config_append(buf, size, &o, diag->key);
        config_append(buf, size, &o, ": ");
    }
    config_append(buf, size, &o, diag->msg);
    return buf;
}

/* Copies src into a fixed field, cutting it when it does not fit. */
static void config_copy_field(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void config_diag_init(sst_diag_t *diag, const char *file)
{
    memset(diag, 0, sizeof *diag);
    config_copy_field(diag->file, sizeof diag->file, file);
}

__attribute__((format(printf, 4, 0))) static int
config_vfail(sst__cfg_ctx_t *c, unsigned line, unsigned column, const char *fmt, va_list ap)
{
    sst_diag_t *d = c->diag;
    d->line = line;
    d->column = column;
    config_copy_field(d->key, sizeof d->key, c->path);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    return SST_EINVAL;
}

int sst__cfg_fail(sst__cfg_ctx_t *c, const yaml_node_t *at, const char *fmt, ...)
{
    va_list ap;
    int rc;
    unsigned line = at ? (unsigned)at->start_mark.line + 1 : 0;
    unsigned column = at ? (unsigned)at->start_mark.column + 1 : 0;

    va_start(ap, fmt);
    rc = config_vfail(c, line, column, fmt, ap);
    va_end(ap);
    return rc;
}

__attribute__((format(printf, 3, 4))) static int config_fail_mark(sst__cfg_ctx_t *c, yaml_mark_t m,
                                                                  const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = config_vfail(c, (unsigned)m.line + 1, (unsigned)m.column + 1, fmt, ap);
    va_end(ap);
    return rc;
}

int sst__cfg_nomem(sst__cfg_ctx_t *c)
{
    sst__cfg_fail(c, NULL, "out of memory");
    return SST_ENOMEM;
}

static size_t config_path_append(sst__cfg_ctx_t *c, const char *text, size_t n)
{
    size_t mark = c->path_len;
    size_t room = sizeof c->path - 1 - c->path_len;
    if (n > room)
        n = room; /* a cut path still points the right way; the line number is exact */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        c->path[c->path_len++] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    c->path[c->path_len] = '\0';
    return mark;
}

static size_t config_push_str(sst__cfg_ctx_t *c, sst_str_t key)
{
    size_t mark = c->path_len;
    if (c->path_len > 0)
        config_path_append(c, ".", 1);
    config_path_append(c, key.base, key.len);
    return mark;
}

size_t sst__cfg_push_key(sst__cfg_ctx_t *c, const char *key)
{
    return config_push_str(c, sst_str_c(key));
}

size_t sst__cfg_push_index(sst__cfg_ctx_t *c, size_t i)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "[%zu]", i);
    return config_path_append(c, buf, (size_t)n);
}

void sst__cfg_pop(sst__cfg_ctx_t *c, size_t mark)
{
    c->path_len = mark;
    c->path[mark] = '\0';
}

void sst__suggest(sst_str_t got, const char *const *names, size_t n, char *buf, size_t size)
{
    size_t best = 3, pick = n;

    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t d = sst__edit_distance(got, sst_str_c(names[i]));
        if (d < best) {
            best = d;
            pick = i;
        }
    }
    /* A two-letter key is two edits from every other two-letter key: don't guess there */
    if (pick < n && best < got.len)
        snprintf(buf, size, " (did you mean \"%s\"?)", names[pick]);
}

/* --- YAML nodes -------------------------------------------------------------------------- */

yaml_node_t *sst__cfg_node(const sst__cfg_ctx_t *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

static sst_str_t config_scalar_str(const yaml_node_t *n)
{
    return sst_str((const char *)n->data.scalar.value, n->data.scalar.length);
}

bool sst__cfg_is_null(const yaml_node_t *n)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    sst_str_t s = config_scalar_str(n);
    return s.len == 0 || sst_str_eq(s, SST_STR_LIT("~")) || sst_str_eq(s, SST_STR_LIT("null")) ||
           sst_str_eq(s, SST_STR_LIT("Null")) || sst_str_eq(s, SST_STR_LIT("NULL"));
}

static const char *config_kind(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (sst__cfg_is_null(n))
        return "no value";
    return "a single value";
}

int sst__cfg_check_map(sst__cfg_ctx_t *c, const yaml_node_t *map, const char *const *keys,
                       size_t n_keys)
{
    char q[64], hint[80];

    if (sst__cfg_is_null(map))
        return 0;
    if (map->type != YAML_MAPPING_NODE)
        return sst__cfg_fail(c, map, "expected a mapping (key: value), found %s", config_kind(map));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *key = sst__cfg_node(c, p->key);
        if (key == NULL || key->type != YAML_SCALAR_NODE)
            return sst__cfg_fail(c, key, "mapping keys must be plain words");
        sst_str_t k = config_scalar_str(key);
        for (yaml_node_pair_t *o = map->data.mapping.pairs.start; o < p; o++) {
            yaml_node_t *prev = sst__cfg_node(c, o->key);
            if (prev->type == YAML_SCALAR_NODE && sst_str_eq(k, config_scalar_str(prev))) {
                config_push_str(c, k);
                return sst__cfg_fail(c, key, "duplicate key %s (first at line %u)",
                                     sst__quote(k, q, sizeof q),
                                     (unsigned)prev->start_mark.line + 1);
            }
        }
        bool known = false;
        for (size_t i = 0; i < n_keys && !known; i++)
            known = sst_str_eq(k, sst_str_c(keys[i]));
        if (!known && sst_str_eq(k, SST_STR_LIT("<<"))) {
            config_push_str(c, k);
            return sst__cfg_fail(c, key, "merge keys (<<) are not supported: write the values out");
        }
        if (!known) {
            sst__suggest(k, keys, n_keys, hint, sizeof hint);
            config_push_str(c, k);
            return sst__cfg_fail(c, key, "unknown key %s%s", sst__quote(k, q, sizeof q), hint);
        }
    }
    return 0;
}

yaml_node_t *sst__cfg_get(const sst__cfg_ctx_t *c, const yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    sst_str_t want = sst_str_c(key);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = sst__cfg_node(c, p->key);
        if (k != NULL && k->type == YAML_SCALAR_NODE && sst_str_eq(config_scalar_str(k), want))
            return sst__cfg_node(c, p->value);
    }
    return NULL;
}

int sst__cfg_seq(sst__cfg_ctx_t *c, const yaml_node_t *seq, size_t min, size_t max, size_t *n)
{
    size_t count = 0;

    if (seq->type == YAML_SEQUENCE_NODE)
        count = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    else if (!sst__cfg_is_null(seq))
        return sst__cfg_fail(c, seq, "expected a list ([a, b] or \"- item\" lines), found %s",
                             config_kind(seq));
    if (count < min)
        return sst__cfg_fail(c, seq, "needs at least %zu entr%s", min, min == 1 ? "y" : "ies");
    if (count > max)
        return sst__cfg_fail(c, seq, "at most %zu entries are allowed (found %zu)", max, count);
    *n = count;
    return 0;
}

yaml_node_t *sst__cfg_seq_item(const sst__cfg_ctx_t *c, const yaml_node_t *seq, size_t i)
{
    return sst__cfg_node(c, seq->data.sequence.items.start[i]);
}

int sst__cfg_scalar(sst__cfg_ctx_t *c, const yaml_node_t *n, const char *what, sst_str_t *out)
{
    if (n->type != YAML_SCALAR_NODE)
        return sst__cfg_fail(c, n, "expected %s, found %s", what, config_kind(n));
    if (sst__cfg_is_null(n))
        return sst__cfg_fail(c, n, "missing value (expected %s)", what);
    *out = config_scalar_str(n);
    return 0;
}

int sst__cfg_string(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t max_len, bool allow_empty,
                    char **out)
{
    sst_str_t s;

    if (n->type == YAML_SCALAR_NODE && allow_empty && sst__cfg_is_null(n))
        s = SST_STR_LIT("");
    else if (sst__cfg_scalar(c, n, "a string", &s) != 0)
        return SST_EINVAL;
    if (s.len == 0 && !allow_empty)
        return sst__cfg_fail(c, n, "must not be empty");
    if (s.len > max_len)
        return sst__cfg_fail(c, n, "longer than %zu bytes", max_len);
    if (memchr(s.base, '\0', s.len) != NULL)
        return sst__cfg_fail(c, n, "contains a NUL byte");
    *out = sst__cfg_strdup(c, s);
    return *out ? 0 : sst__cfg_nomem(c);
}

int sst__cfg_bool(sst__cfg_ctx_t *c, const yaml_node_t *n, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    sst_str_t s;
    char q[64];

    if (sst__cfg_scalar(c, n, "true or false", &s) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < 3; i++) {
        if (sst_str_ieq_c(s, yes[i]) || sst_str_ieq_c(s, no[i])) {
            *out = sst_str_ieq_c(s, yes[i]);
            return 0;
        }
    }
    return sst__cfg_fail(c, n, "invalid boolean %s (expected true or false)",
                         sst__quote(s, q, sizeof q));
}

int sst__cfg_uint(sst__cfg_ctx_t *c, const yaml_node_t *n, uint64_t lo, uint64_t hi, uint64_t *out)
{
    sst_str_t s;
    uint64_t v;
    char q[64];

    if (sst__cfg_scalar(c, n, "a number", &s) != 0)
        return SST_EINVAL;
    int rc = sst_str_to_u64(s, UINT64_MAX, &v);
    if (rc == SST_EINVAL && !(s.len > 1 && s.base[0] == '-'))
        return sst__cfg_fail(c, n, "invalid number %s (expected an integer, %llu..%llu)",
                             sst__quote(s, q, sizeof q), (unsigned long long)lo,
                             (unsigned long long)hi);
    if (rc != 0 || v < lo || v > hi)
        return sst__cfg_fail(c, n, "%s is out of range (%llu..%llu)", sst__quote(s, q, sizeof q),
                             (unsigned long long)lo, (unsigned long long)hi);
    *out = v;
    return 0;
}

int sst__cfg_duration(sst__cfg_ctx_t *c, const yaml_node_t *n, uint64_t lo, uint64_t hi,
                      uint64_t *out)
{
    sst_str_t s;
    uint64_t v;
    char q[64], why[SST__WHY_SIZE], a[32], b[32];

    if (sst__cfg_scalar(c, n, "a duration (250ms, 1s, 2m)", &s) != 0)
        return SST_EINVAL;
    if (sst__parse_duration(s, &v, why) != 0)
        return sst__cfg_fail(c, n, "invalid duration %s: %s", sst__quote(s, q, sizeof q), why);
    if (v < lo || v > hi)
        return sst__cfg_fail(c, n, "duration %s is out of range (%s..%s)",
                             sst__quote(s, q, sizeof q), sst__fmt_ms(lo, a, sizeof a),
                             sst__fmt_ms(hi, b, sizeof b));
    *out = v;
    return 0;
}

static const char *config_fmt_size(uint64_t v, char *buf, size_t size)
{
    if (v != 0 && v % GIB == 0)
        snprintf(buf, size, "%llug", (unsigned long long)(v / GIB));
    else if (v != 0 && v % MIB == 0)
        snprintf(buf, size, "%llum", (unsigned long long)(v / MIB));
    else if (v != 0 && v % KIB == 0)
        snprintf(buf, size, "%lluk", (unsigned long long)(v / KIB));
    else
        snprintf(buf, size, "%llu", (unsigned long long)v);
    return buf;
}

int sst__cfg_size(sst__cfg_ctx_t *c, const yaml_node_t *n, uint64_t lo, uint64_t hi, uint64_t *out)
{
    sst_str_t s;
    uint64_t v;
    char q[64], why[SST__WHY_SIZE], a[32], b[32];

    if (sst__cfg_scalar(c, n, "a size (512, 16k, 10m)", &s) != 0)
        return SST_EINVAL;
    if (sst__parse_size(s, &v, why) != 0)
        return sst__cfg_fail(c, n, "invalid size %s: %s", sst__quote(s, q, sizeof q), why);
    if (v < lo || v > hi)
        return sst__cfg_fail(c, n, "size %s is out of range (%s..%s)", sst__quote(s, q, sizeof q),
                             config_fmt_size(lo, a, sizeof a), config_fmt_size(hi, b, sizeof b));
    *out = v;
    return 0;
}

int sst__cfg_percent(sst__cfg_ctx_t *c, const yaml_node_t *n, uint32_t lo, uint32_t hi,
                     bool bare_ok, uint32_t *out)
{
    sst_str_t s, digits;
    uint64_t v;
    char q[64];

    if (sst__cfg_scalar(c, n, "a percentage (50%)", &s) != 0)
        return SST_EINVAL;
    digits = s;
    if (s.len > 0 && s.base[s.len - 1] == '%')
        digits.len--;
    else if (!bare_ok)
        return sst__cfg_fail(c, n, "invalid percentage %s (expected e.g. 50%%)",
                             sst__quote(s, q, sizeof q));
    int rc = sst_str_to_u64(digits, 1000, &v);
    if (rc == SST_EINVAL && !(digits.len > 1 && digits.base[0] == '-'))
        return sst__cfg_fail(c, n, "invalid percentage %s (expected e.g. 50%%)",
                             sst__quote(s, q, sizeof q));
    if (rc != 0 || v < lo || v > hi)
        return sst__cfg_fail(c, n, "%s is out of range (%u%%..%u%%)", sst__quote(s, q, sizeof q),
                             lo, hi);
    *out = (uint32_t)v;
    return 0;
}

int sst__cfg_enum(sst__cfg_ctx_t *c, const yaml_node_t *n, const char *const *names, size_t n_names,
                  int *out)
{
    sst_str_t s;
    char q[64], hint[80], list[128];
    size_t o = 0;

    if (sst__cfg_scalar(c, n, "a word", &s) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < n_names; i++) {
        if (sst_str_eq(s, sst_str_c(names[i]))) {
            *out = (int)i;
            return 0;
        }
    }
    list[0] = '\0';
    for (size_t i = 0; i < n_names && o < sizeof list; i++) {
        int w = snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    sst__suggest(s, names, n_names, hint, sizeof hint);
    return sst__cfg_fail(c, n, "invalid value %s: expected one of %s%s", sst__quote(s, q, sizeof q),
                         list, hint);
}

int sst__cfg_region_ref(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t *out)
{
    const sst_config_t *cfg = c->cfg;
    const char *names[SST_MAX_REGIONS];
    char q[64], hint[80];
    sst_str_t s;

    if (sst__cfg_scalar(c, n, "a region name", &s) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < cfg->n_regions; i++) {
        names[i] = cfg->regions[i].name;
        if (sst_str_eq(s, sst_str_c(names[i]))) {
            *out = i;
            return 0;
        }
    }
    sst__suggest(s, names, cfg->n_regions, hint, sizeof hint);
    return sst__cfg_fail(c, n, "unknown region %s%s", sst__quote(s, q, sizeof q), hint);
}

int sst__cfg_addr(sst__cfg_ctx_t *c, const yaml_node_t *n, bool allow_port0, sst_addr_t *out)
{
    sst_str_t s;
    char q[64], why[SST__WHY_SIZE];

    if (sst__cfg_scalar(c, n, "an address (host:port)", &s) != 0)
        return SST_EINVAL;
    if (sst__parse_addr(s, allow_port0, true, out, why) != 0)
        return sst__cfg_fail(c, n, "invalid address %s: %s", sst__quote(s, q, sizeof q), why);
    return 0;
}

/* --- top-level sections ------------------------------------------------------------------ */

static int config_parse_workers(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    const yaml_node_t *n = sst__cfg_get(c, root, "workers");
    uint64_t v;
    sst_str_t s;

    if (n == NULL)
        return 0;
    sst__cfg_push_key(c, "workers");
    if (sst__cfg_scalar(c, n, "\"auto\" or a number", &s) != 0)
        return SST_EINVAL;
    if (sst_str_eq(s, SST_STR_LIT("auto"))) {
        c->cfg->workers = 0;
    } else {
        if (sst__cfg_uint(c, n, 1, SST_MAX_WORKERS, &v) != 0)
            return SST_EINVAL;
        c->cfg->workers = (uint32_t)v;
    }
    sst__cfg_pop(c, 0);
    return 0;
}

static int config_parse_local_region(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    const yaml_node_t *n = sst__cfg_get(c, root, "local_region");

    if (n == NULL)
        return 0;
    sst__cfg_push_key(c, "local_region");
    if (sst__cfg_region_ref(c, n, &c->cfg->local_region) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, 0);
    return 0;
}

static bool config_is_wildcard(const sst_addr_t *a)
{
    if (a->sa.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->sa.ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
    return false;
}

static bool config_same_addr(const sst_addr_t *a, const sst_addr_t *b)
{
    if (a->salen == 0 || b->salen == 0 || a->sa.ss_family != b->sa.ss_family)
        return strcmp(a->text, b->text) == 0;
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->sa;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&b->sa;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->sa;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->sa;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return strcmp(a->text, b->text) == 0;
}

/* 301/302/303/307/308: the statuses that carry a Location. */
static int config_redirect_status(sst__cfg_ctx_t *c, const yaml_node_t *n, uint16_t *out)
{
    uint64_t v;

    if (sst__cfg_uint(c, n, 301, 308, &v) != 0)
        return SST_EINVAL;
    if (v != 301 && v != 302 && v != 303 && v != 307 && v != 308)
        return sst__cfg_fail(c, n, "status %llu is not a redirect (301, 302, 303, 307 or 308)",
                             (unsigned long long)v);
    *out = (uint16_t)v;
    return 0;
}

static int config_parse_https_redirect(sst__cfg_ctx_t *c, const yaml_node_t *n,
                                       sst_listener_cfg_t *l)
{
    static const char *const keys[] = {"get", "other", "port"};
    const yaml_node_t *v;
    uint64_t port;
    size_t mark;

    if (n->type == YAML_SCALAR_NODE)
        return sst__cfg_bool(c, n, &l->https_redirect);
    if (sst__cfg_check_map(c, n, keys, 3) != 0)
        return SST_EINVAL;
    l->https_redirect = true;
    if ((v = sst__cfg_get(c, n, "get")) != NULL) {
        mark = sst__cfg_push_key(c, "get");
        if (config_redirect_status(c, v, &l->https_status_get) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, n, "other")) != NULL) {
        mark = sst__cfg_push_key(c, "other");
        if (config_redirect_status(c, v, &l->https_status_other) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, n, "port")) != NULL) {
        mark = sst__cfg_push_key(c, "port");
        if (sst__cfg_uint(c, v, 1, 65535, &port) != 0)
            return SST_EINVAL;
        l->https_port = port == 443 ? 0 : (uint16_t)port; /* 443 is left out of Location */
        sst__cfg_pop(c, mark);
    }
    return 0;
}

/* A list of min..SST_MAX_TRUSTED addresses or CIDRs (trusted_proxies, proxy_protocol_from). */
static int config_parse_cidrs(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t min, sst_cidr_t *out,
                              size_t *n_out)
{
    char q[64], why[SST__WHY_SIZE];
    size_t count;

    if (sst__cfg_seq(c, n, min, SST_MAX_TRUSTED, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = sst__cfg_seq_item(c, n, i);
        size_t mark = sst__cfg_push_index(c, i);
        sst_str_t s;
        if (sst__cfg_scalar(c, item, "an address or CIDR", &s) != 0)
            return SST_EINVAL;
        if (sst__parse_cidr(s, &out[i], why) != 0)
            return sst__cfg_fail(c, item, "invalid network %s: %s", sst__quote(s, q, sizeof q),
                                 why);
        (*n_out)++;
        sst__cfg_pop(c, mark);
    }
    return 0;
}

/* proxy_protocol and proxy_protocol_from (issue 16). The list is required with the flag: a header
 * believed from anyone lets any client pick its address. It is refused without the flag: a list
 * that does nothing most likely means the flag was meant to be on. */
static int config_parse_proxy_protocol(sst__cfg_ctx_t *c, const yaml_node_t *n,
                                       sst_listener_cfg_t *l)
{
    const yaml_node_t *on = sst__cfg_get(c, n, "proxy_protocol");
    const yaml_node_t *from = sst__cfg_get(c, n, "proxy_protocol_from");
    size_t mark;

    if (on != NULL) {
        mark = sst__cfg_push_key(c, "proxy_protocol");
        if (sst__cfg_bool(c, on, &l->proxy_protocol) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    mark = sst__cfg_push_key(c, "proxy_protocol_from");
    if (from == NULL && l->proxy_protocol)
        return sst__cfg_fail(c, on,
                             "required when proxy_protocol is true: the peers allowed to send the "
                             "header, e.g. proxy_protocol_from: [10.0.0.0/8]");
    if (from != NULL && !l->proxy_protocol)
        return sst__cfg_fail(c, from,
                             "only used when proxy_protocol is true (set it, or remove this list)");
    if (from != NULL &&
        config_parse_cidrs(c, from, 1, l->proxy_protocol_from, &l->n_proxy_protocol_from) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, mark);
    return 0;
}

static int config_parse_listener(sst__cfg_ctx_t *c, const yaml_node_t *n, sst_listener_cfg_t *l)
{
    static const char *const keys[] = {
        "address", "proto", "https_redirect", "proxy_protocol", "proxy_protocol_from",
        "tls",     "hsts"};
    const yaml_node_t *addr = n, *v;
    size_t mark;

    l->https_status_get = 301;
    l->https_status_other = 307;
    l->proto = sst__cfg_strdup(c, SST_STR_LIT("http"));
    if (l->proto == NULL)
        return sst__cfg_nomem(c);
    if (n->type != YAML_SCALAR_NODE) {
        if (sst__cfg_check_map(c, n, keys, sizeof keys / sizeof keys[0]) != 0)
            return SST_EINVAL;
        addr = sst__cfg_get(c, n, "address");
        if (addr == NULL) {
            sst__cfg_push_key(c, "address");
            return sst__cfg_fail(c, n, "required (e.g. address: 127.0.0.1:8080)");
        }
    }
    mark = n == addr ? c->path_len : sst__cfg_push_key(c, "address");
    if (sst__cfg_addr(c, addr, true, &l->addr) != 0)
        return SST_EINVAL;
    l->pos.line = (unsigned)addr->start_mark.line + 1;
    l->pos.column = (unsigned)addr->start_mark.column + 1;
    sst__cfg_pop(c, mark);
    if (n == addr)
        return 0;
    if ((v = sst__cfg_get(c, n, "proto")) != NULL) {
        mark = sst__cfg_push_key(c, "proto");
        if (sst__cfg_string(c, v, 16, false, &l->proto) != 0)
            return SST_EINVAL;
        if (!sst_str_is_token(sst_str_c(l->proto)))
            return sst__cfg_fail(c, v, "expected a word such as http or https");
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, n, "https_redirect")) != NULL) {
        mark = sst__cfg_push_key(c, "https_redirect");
        if (config_parse_https_redirect(c, v, l) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    int rc = config_parse_proxy_protocol(c, n, l);
    if (rc != 0)
        return rc;
    return sst__cfg_parse_listener_tls(c, n, l);
}

static int config_parse_listen(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    sst_config_t *cfg = c->cfg;
    const yaml_node_t *n = sst__cfg_get(c, root, "listen");
    size_t count;

    sst__cfg_push_key(c, "listen");
    if (n == NULL)
        return sst__cfg_fail(c, root,
                             "required: where to accept connections, e.g. "
                             "listen: [127.0.0.1:8080]");
    if (sst__cfg_seq(c, n, 1, SST_MAX_LISTENERS, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = sst__cfg_seq_item(c, n, i);
        sst_listener_cfg_t *l = &cfg->listeners[i];
        size_t mark = sst__cfg_push_index(c, i);
        if (config_parse_listener(c, item, l) != 0)
            return SST_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (l->addr.port != 0 && config_same_addr(&l->addr, &cfg->listeners[j].addr))
                return sst__cfg_fail(c, item, "%s is already listed as listen[%zu]", l->addr.text,
                                     j);
        cfg->n_listeners++;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, 0);
    return sst__cfg_check_listeners_tls(c, n);
}

static int config_check_token(sst__cfg_ctx_t *c, const yaml_node_t *n, sst_str_t t)
{
    if (t.len == 0)
        return sst__cfg_fail(c, n, "the token is empty");
    if (t.len > CONFIG_MAX_TOKEN)
        return sst__cfg_fail(c, n, "the token is longer than %d bytes", CONFIG_MAX_TOKEN);
    for (size_t i = 0; i < t.len; i++) {
        unsigned char ch = (unsigned char)t.base[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return sst__cfg_fail(c, n,
                                 "the token may hold only visible ASCII characters "
                                 "(it travels in an Authorization header)");
    }
    return 0;
}

/* Reads token_file now, so a missing file fails the load rather than the first admin call. */
static int config_read_token_file(sst__cfg_ctx_t *c, const yaml_node_t *n, const char *path,
                                  char **out)
{
    char buf[CONFIG_MAX_TOKEN + 3], err[96], q[64];
    size_t len;
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        (void)strerror_r(errno, err, sizeof err);
        return sst__cfg_fail(c, n, "cannot read %s: %s", sst__quote(sst_str_c(path), q, sizeof q),
                             err);
    }
    len = fread(buf, 1, sizeof buf, f);
    if (ferror(f)) {
        (void)strerror_r(errno, err, sizeof err);
        fclose(f);
        return sst__cfg_fail(c, n, "cannot read %s: %s", sst__quote(sst_str_c(path), q, sizeof q),
                             err);
    }
    fclose(f);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (config_check_token(c, n, sst_str(buf, len)) != 0)
        return SST_EINVAL;
    *out = sst__cfg_strdup(c, sst_str(buf, len));
    return *out ? 0 : sst__cfg_nomem(c);
}

static int config_parse_admin(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    static const char *const keys[] = {"address", "token", "token_file"};
    sst_config_t *cfg = c->cfg;
    sst_admin_cfg_t *a = &cfg->admin;
    const yaml_node_t *n = sst__cfg_get(c, root, "admin"), *addr, *tok, *file;
    char why[SST__WHY_SIZE];
    size_t mark;

    if (n == NULL)
        return 0; /* no admin listener */
    sst__cfg_push_key(c, "admin");
    if (sst__cfg_check_map(c, n, keys, 3) != 0)
        return SST_EINVAL;
    a->enabled = true;
    addr = sst__cfg_get(c, n, "address");
    tok = sst__cfg_get(c, n, "token");
    file = sst__cfg_get(c, n, "token_file");
    if (addr != NULL) {
        mark = sst__cfg_push_key(c, "address");
        if (sst__cfg_addr(c, addr, true, &a->addr) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    } else if (sst__parse_addr(SST_STR_LIT("127.0.0.1:9901"), false, false, &a->addr, why) != 0) {
        return sst__cfg_fail(c, n, "%s", why);
    }
    if (tok != NULL && file != NULL) {
        sst__cfg_push_key(c, "token_file");
        return sst__cfg_fail(c, file, "give either token or token_file, not both");
    }
    if (tok != NULL) {
        mark = sst__cfg_push_key(c, "token");
        if (sst__cfg_string(c, tok, CONFIG_MAX_TOKEN, true, &a->token) != 0 ||
            config_check_token(c, tok, sst_str_c(a->token)) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    if (file != NULL) {
        char *path;
        mark = sst__cfg_push_key(c, "token_file");
        if (sst__cfg_string(c, file, 4096, false, &path) != 0 ||
            config_read_token_file(c, file, path, &a->token) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    if (a->token == NULL && !sst_addr_is_loopback(&a->addr)) {
        /* The admin API drains and forces regions: off loopback it must not be anonymous */
        sst__cfg_push_key(c, "address");
        return sst__cfg_fail(c, addr ? addr : n,
                             "admin address %s is not loopback: set token or token_file",
                             a->addr.text);
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const sst_addr_t *l = &cfg->listeners[i].addr;
        if (a->addr.port != 0 && config_same_addr(&a->addr, l)) {
            sst__cfg_push_key(c, "address");
            return sst__cfg_fail(c, addr ? addr : n, "%s is also listen[%zu]", a->addr.text, i);
        }
        /* a wildcard (0.0.0.0, or :: which listeners bind IPv6-only) on the same port holds
         * every address of its family: the other socket could not bind next to it */
        if (a->addr.port != 0 && a->addr.port == l->port && a->addr.salen != 0 && l->salen != 0 &&
            a->addr.sa.ss_family == l->sa.ss_family &&
            (config_is_wildcard(l) || config_is_wildcard(&a->addr))) {
            sst__cfg_push_key(c, "address");
            return sst__cfg_fail(c, addr ? addr : n, "%s overlaps listen[%zu] %s (same port)",
                                 a->addr.text, i, l->text);
        }
    }
    sst__cfg_pop(c, 0);
    return 0;
}

typedef enum config_num_kind_e {
    CONFIG_NUM_SIZE = 0,
    CONFIG_NUM_COUNT,
    CONFIG_NUM_DURATION,
} config_num_kind_t;

typedef struct config_num_key_s {
    const char *name;
    size_t offset;
    config_num_kind_t kind;
    uint64_t lo, hi, def;
} config_num_key_t;

#define LIMIT(name, kind, lo, hi, def)                                                             \
    {                                                                                              \
#name, offsetof(sst_limits_cfg_t, name), CONFIG_NUM_##kind, lo, hi, def                    \
    }
#define TIMEOUT(name, field, kind, lo, hi, def)                                                    \
    {                                                                                              \
#name, offsetof(sst_timeouts_cfg_t, field), CONFIG_NUM_##kind, lo, hi, def                 \
    }
#define S(n)   ((n)*1000ull)
#define DAY_MS SST__MAX_DURATION_MS

/* Bounds are documented in docs/configuration.md; keep the two in step. */
static const config_num_key_t config_limits[] = {
    LIMIT(request_line, SIZE, 64, MIB, 8 * KIB),
    LIMIT(header_field, SIZE, 64, MIB, 8 * KIB),
    LIMIT(header_bytes, SIZE, KIB, 16 * MIB, 32 * KIB),
    LIMIT(headers, COUNT, 1, 10000, 100),
    LIMIT(body, SIZE, 0, 1024 * GIB, 100 * MIB),
    LIMIT(connections, COUNT, 1, 1000000, 10000),
    LIMIT(upstream_connections, COUNT, 1, 100000, 1024),
    LIMIT(upstream_idle, COUNT, 0, 100000, 64),
    LIMIT(response_header_bytes, SIZE, KIB, 16 * MIB, 32 * KIB),
    LIMIT(response_headers, COUNT, 1, 10000, 100),
    LIMIT(buffer, SIZE, 4 * KIB, 64 * MIB, 64 * KIB),
};

static const config_num_key_t config_timeouts[] = {
    TIMEOUT(request_head, request_head_ms, DURATION, 1, DAY_MS, S(10)),
    TIMEOUT(idle, idle_ms, DURATION, 1, DAY_MS, S(60)),
    TIMEOUT(connect, connect_ms, DURATION, 1, DAY_MS, S(2)),
    TIMEOUT(upstream_response, upstream_response_ms, DURATION, 1, DAY_MS, S(30)),
    TIMEOUT(upstream_idle, upstream_idle_ms, DURATION, 1, DAY_MS, S(4)),
    TIMEOUT(body, body_ms, DURATION, 1, DAY_MS, S(30)),
    TIMEOUT(body_total, body_total_ms, DURATION, 0, DAY_MS, 0),
    TIMEOUT(body_min_rate, body_min_rate, SIZE, 0, GIB, 0),
    TIMEOUT(send, send_ms, DURATION, 1, DAY_MS, S(30)),
    TIMEOUT(linger, linger_ms, DURATION, 0, DAY_MS, S(2)),
    TIMEOUT(shutdown, shutdown_ms, DURATION, 0, DAY_MS, S(30)),
    TIMEOUT(tls_handshake, tls_handshake_ms, DURATION, 1, DAY_MS, S(10)),
};

#undef LIMIT
#undef TIMEOUT
#undef S
#undef DAY_MS

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(COUNT_OF(config_limits) <= 16 && COUNT_OF(config_timeouts) <= 16,
               "config_parse_numbers keeps at most 16 key names");

static void config_num_defaults(const config_num_key_t *keys, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++)
        *(uint64_t *)(void *)((char *)base + keys[i].offset) = keys[i].def;
}

/* A mapping of numbers described by `keys` into the struct at `base`. */
static int config_parse_numbers(sst__cfg_ctx_t *c, const yaml_node_t *root, const char *section,
                                const config_num_key_t *keys, size_t n, void *base)
{
    const yaml_node_t *map = sst__cfg_get(c, root, section);
    const char *names[16];

    if (map == NULL)
        return 0;
    sst__cfg_push_key(c, section);
    for (size_t i = 0; i < n; i++)
        names[i] = keys[i].name;
    if (sst__cfg_check_map(c, map, names, n) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *v = sst__cfg_get(c, map, keys[i].name);
        uint64_t *dst = (uint64_t *)(void *)((char *)base + keys[i].offset);
        int rc = 0;
        if (v == NULL)
            continue;
        size_t mark = sst__cfg_push_key(c, keys[i].name);
        switch (keys[i].kind) {
        case CONFIG_NUM_SIZE:
            rc = sst__cfg_size(c, v, keys[i].lo, keys[i].hi, dst);
            break;
        case CONFIG_NUM_COUNT:
            rc = sst__cfg_uint(c, v, keys[i].lo, keys[i].hi, dst);
            break;
        case CONFIG_NUM_DURATION:
            rc = sst__cfg_duration(c, v, keys[i].lo, keys[i].hi, dst);
            break;
        }
        if (rc != 0)
            return rc;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, 0);
    return 0;
}

static int config_parse_limits(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    sst_limits_cfg_t *l = &c->cfg->limits;
    const yaml_node_t *map = sst__cfg_get(c, root, "limits");
    char a[32], b[32];

    if (config_parse_numbers(c, root, "limits", config_limits, COUNT_OF(config_limits), l) != 0)
        return SST_EINVAL;
    if (l->header_field > l->header_bytes) {
        const yaml_node_t *at = sst__cfg_get(c, map, "header_field");
        sst__cfg_push_key(c, "limits");
        sst__cfg_push_key(c, at ? "header_field" : "header_bytes");
        return sst__cfg_fail(c, at ? at : sst__cfg_get(c, map, "header_bytes"),
                             "header_field (%s) must not exceed header_bytes (%s)",
                             config_fmt_size(l->header_field, a, sizeof a),
                             config_fmt_size(l->header_bytes, b, sizeof b));
    }
    if (l->upstream_idle > l->upstream_connections) {
        const yaml_node_t *at = sst__cfg_get(c, map, "upstream_idle");
        sst__cfg_push_key(c, "limits");
        sst__cfg_push_key(c, at ? "upstream_idle" : "upstream_connections");
        return sst__cfg_fail(c, at ? at : sst__cfg_get(c, map, "upstream_connections"),
                             "upstream_idle (%llu) must not exceed upstream_connections (%llu)",
                             (unsigned long long)l->upstream_idle,
                             (unsigned long long)l->upstream_connections);
    }
    return 0;
}

static int config_parse_timeouts(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    int rc = config_parse_numbers(c, root, "timeouts", config_timeouts, COUNT_OF(config_timeouts),
                                  &c->cfg->timeouts);
    return rc != 0 ? rc : sst__cfg_check_routes(c, root);
}

static int config_parse_log(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    static const char *const keys[] = {"access", "format", "level"};
    static const char *const formats[] = {[SST_LOG_TEXT] = "text", [SST_LOG_JSON] = "json"};
    /* index = SST_LOG_DEBUG .. SST_LOG_ERROR (0..3) as log.h numbers them */
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    sst_log_cfg_t *l = &c->cfg->log;
    const yaml_node_t *map = sst__cfg_get(c, root, "log"), *v;
    int idx;
    size_t mark;

    l->format = SST_LOG_TEXT;
    l->level = 1;
    if (map == NULL)
        return 0;
    sst__cfg_push_key(c, "log");
    if (sst__cfg_check_map(c, map, keys, 3) != 0)
        return SST_EINVAL;
    if ((v = sst__cfg_get(c, map, "access")) != NULL) {
        mark = sst__cfg_push_key(c, "access");
        if (sst__cfg_string(c, v, 4096, false, &l->access) != 0)
            return SST_EINVAL;
        l->access_pos.line = (unsigned)v->start_mark.line + 1;
        l->access_pos.column = (unsigned)v->start_mark.column + 1;
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, map, "format")) != NULL) {
        mark = sst__cfg_push_key(c, "format");
        if (sst__cfg_enum(c, v, formats, COUNT_OF(formats), &idx) != 0)
            return SST_EINVAL;
        l->format = (sst_log_format_t)idx;
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, map, "level")) != NULL) {
        mark = sst__cfg_push_key(c, "level");
        if (sst__cfg_enum(c, v, levels, COUNT_OF(levels), &l->level) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, 0);
    return 0;
}

static int config_parse_trusted(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    sst_config_t *cfg = c->cfg;
    const yaml_node_t *n = sst__cfg_get(c, root, "trusted_proxies");

    if (n == NULL)
        return 0;
    sst__cfg_push_key(c, "trusted_proxies");
    if (config_parse_cidrs(c, n, 0, cfg->trusted_proxies, &cfg->n_trusted_proxies) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, 0);
    return 0;
}

static const char *const config_top_keys[] = {
    "workers", "local_region", "listen", "admin",    "health",          "regions",
    "routes",  "limits",       "log",    "timeouts", "trusted_proxies", "fleet",
};

typedef int (*config_section_fn)(sst__cfg_ctx_t *c, const yaml_node_t *root);

/* In dependency order: routes need regions and local_region; admin checks the listeners;
 * fleet needs admin. */
static const config_section_fn config_sections[] = {
    config_parse_workers, sst__cfg_parse_regions, config_parse_local_region, config_parse_listen,
    config_parse_admin,   sst__cfg_parse_routes,  config_parse_limits,       config_parse_timeouts,
    config_parse_log,     config_parse_trusted,   sst__cfg_parse_fleet,
};

static int config_build(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    sst_config_t *cfg = c->cfg;

    if (root == NULL || sst__cfg_is_null(root)) {
        yaml_mark_t start = {.line = 0, .column = 0}; /* an empty file has no node to point at */
        return config_fail_mark(c, root != NULL ? root->start_mark : start,
                                "the config is empty: it needs at least listen: and regions:");
    }
    if (root->type != YAML_MAPPING_NODE)
        return sst__cfg_fail(c, root,
                             "expected a mapping at the top level (listen:, regions:, ...)");
    if (sst__cfg_check_map(c, root, config_top_keys, COUNT_OF(config_top_keys)) != 0)
        return SST_EINVAL;
    cfg->local_region = SIZE_MAX;
    config_num_defaults(config_limits, COUNT_OF(config_limits), &cfg->limits);
    config_num_defaults(config_timeouts, COUNT_OF(config_timeouts), &cfg->timeouts);
    cfg->log.access = sst__cfg_strdup(c, SST_STR_LIT("stderr"));
    if (cfg->log.access == NULL)
        return sst__cfg_nomem(c);
    for (size_t i = 0; i < COUNT_OF(config_sections); i++) {
        int rc = config_sections[i](c, root);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* --- YAML text --------------------------------------------------------------------------- */

static int config_yaml_error(sst__cfg_ctx_t *c, const yaml_parser_t *p, const char *text,
                             size_t len)
{
    const char *problem = p->problem ? p->problem : "unknown error";

    if (p->error == YAML_MEMORY_ERROR)
        return sst__cfg_nomem(c);
    c->path[0] = '\0';
    c->path_len = 0;
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors (bad UTF-8, control bytes) carry a byte offset, not a mark */
        yaml_mark_t m = {0, 0, 0};
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (text[i] == '\n') {
                m.line++;
                m.column = 0;
            } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
                m.column++;
            }
        }
        if (p->problem_value != -1)
            return config_fail_mark(c, m, "YAML: %s (byte 0x%02x)", problem,
                                    (unsigned)p->problem_value & 0xffu);
        return config_fail_mark(c, m, "YAML: %s", problem);
    }
    if (p->context != NULL)
        return config_fail_mark(c, p->problem_mark, "YAML syntax error: %s %s at line %u", problem,
                                p->context, (unsigned)p->context_mark.line + 1);
    return config_fail_mark(c, p->problem_mark, "YAML syntax error: %s", problem);
}

/* One pass over the events before loading: syntax errors, and the features the schema does
 * not use (anchors, aliases, several documents, deep nesting) rejected where they are written,
 * which the composed document can no longer tell. */
static int config_prescan(sst__cfg_ctx_t *c, const char *text, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    unsigned docs = 0, depth = 0;
    bool done = false;
    int rc = 0;

    if (!yaml_parser_initialize(&p))
        return sst__cfg_nomem(c);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (rc == 0 && !done) {
        const yaml_char_t *anchor = NULL;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = config_yaml_error(c, &p, text, len);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                rc = config_fail_mark(c, ev.start_mark, "only one YAML document per file");
            break;
        case YAML_ALIAS_EVENT:
            rc = config_fail_mark(c, ev.start_mark,
                                  "aliases (*%.40s) are not supported: write the value out",
                                  (const char *)ev.data.alias.anchor);
            break;
        case YAML_SCALAR_EVENT:
            anchor = ev.data.scalar.anchor;
            break;
        case YAML_SEQUENCE_START_EVENT:
            anchor = ev.data.sequence_start.anchor;
            depth++;
            break;
        case YAML_MAPPING_START_EVENT:
            anchor = ev.data.mapping_start.anchor;
            depth++;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        default:
            break;
        }
        if (rc == 0 && anchor != NULL)
            rc = config_fail_mark(c, ev.start_mark,
                                  "anchors (&%.40s) are not supported: write the value out",
                                  (const char *)anchor);
        if (rc == 0 && depth > CONFIG_MAX_DEPTH)
            rc = config_fail_mark(c, ev.start_mark, "nested deeper than %d levels",
                                  CONFIG_MAX_DEPTH);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return rc;
}

static int config_load_document(sst__cfg_ctx_t *c, const char *text, size_t len)
{
    yaml_parser_t p;
    yaml_document_t doc;
    int rc;

    if (!yaml_parser_initialize(&p))
        return sst__cfg_nomem(c);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        rc = config_yaml_error(c, &p, text, len);
        yaml_parser_delete(&p);
        return rc;
    }
    c->doc = &doc;
    rc = config_build(c, yaml_document_get_root_node(&doc));
    c->doc = NULL;
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return rc;
}

int sst_config_load_string(const char *name, const char *yaml, size_t len, sst_config_t **out,
                           sst_diag_t *diag)
{
    sst_diag_t scratch;
    sst__cfg_ctx_t c;
    config_box_t *box;
    int rc;

    if (diag == NULL)
        diag = &scratch;
    if (name == NULL)
        name = "<string>";
    config_diag_init(diag, name);
    if (out == NULL || (yaml == NULL && len > 0)) {
        config_copy_field(diag->msg, sizeof diag->msg, "invalid arguments");
        return SST_EINVAL;
    }
    box = calloc(1, sizeof *box);
    if (box == NULL) {
        config_copy_field(diag->msg, sizeof diag->msg, "out of memory");
        return SST_ENOMEM;
    }
    atomic_init(&box->cfg.refcount, 1);
    memset(&c, 0, sizeof c);
    c.cfg = &box->cfg;
    c.strings = &box->strings;
    c.diag = diag;
    box->cfg.source = sst__cfg_strdup(&c, sst_str_c(name));
    if (box->cfg.source == NULL)
        rc = sst__cfg_nomem(&c);
    else if ((rc = config_prescan(&c, yaml ? yaml : "", len)) == 0)
        rc = config_load_document(&c, yaml ? yaml : "", len);
    if (rc != 0) {
        config_free(box);
        return rc;
    }
    *out = &box->cfg;
    return 0;
}

static int config_errno_code(int err)
{
    switch (err) {
    case ENOENT:
        return SST_ENOENT;
    case EACCES:
        return SST_EACCES;
    case ENOMEM:
        return SST_ENOMEM;
    default:
        return SST_EIO;
    }
}

int sst_config_load(const char *path, sst_config_t **out, sst_diag_t *diag)
{
    sst_diag_t scratch;
    char *buf = NULL, err[96];
    size_t len = 0, cap = 0;
    FILE *f;
    int rc;

    if (diag == NULL)
        diag = &scratch;
    config_diag_init(diag, path ? path : "");
    if (path == NULL || out == NULL) {
        config_copy_field(diag->msg, sizeof diag->msg, "invalid arguments");
        return SST_EINVAL;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        rc = config_errno_code(errno);
        (void)strerror_r(errno, err, sizeof err);
        snprintf(diag->msg, sizeof diag->msg, "cannot open: %s", err);
        return rc;
    }
    for (;;) {
        if (len == cap) {
            char *grown;
            /* the buffer grows to one byte past the limit, so a file of exactly the limit
             * reads to its end and a longer one fills the buffer */
            if (len > CONFIG_MAX_FILE) {
                snprintf(diag->msg, sizeof diag->msg, "larger than %llu MiB: not a config file",
                         (unsigned long long)(CONFIG_MAX_FILE / MIB));
                rc = SST_E2BIG;
                goto fail;
            }
            cap = cap ? cap * 2 : 16 * KIB;
            if (cap > CONFIG_MAX_FILE + 1)
                cap = CONFIG_MAX_FILE + 1;
            grown = realloc(buf, cap + 1);
            if (grown == NULL) {
                config_copy_field(diag->msg, sizeof diag->msg, "out of memory");
                rc = SST_ENOMEM;
                goto fail;
            }
            buf = grown;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        rc = config_errno_code(errno);
        (void)strerror_r(errno, err, sizeof err);
        snprintf(diag->msg, sizeof diag->msg, "cannot read: %s", err);
        goto fail;
    }
    fclose(f);
    f = NULL;
    rc = sst_config_load_string(path, buf, len, out, diag);
fail:
    if (f != NULL)
        fclose(f);
    free(buf);
    return rc;
}

/* --- lookups ----------------------------------------------------------------------------- */

int sst_config_region_index(const sst_config_t *cfg, const char *name, size_t len)
{
    if (cfg == NULL || name == NULL)
        return -1;
    for (size_t i = 0; i < cfg->n_regions; i++)
        if (sst_str_eq(sst_str_c(cfg->regions[i].name), sst_str(name, len)))
            return (int)i;
    return -1;
}

int sst_config_backend_index(const sst_config_t *cfg, const char *addr, size_t len)
{
    if (cfg == NULL || addr == NULL)
        return -1;
    for (size_t i = 0; i < cfg->n_backends; i++)
        if (sst_str_eq(sst_str_c(cfg->backends[i].addr.text), sst_str(addr, len)))
            return (int)i;
    return -1;
}
