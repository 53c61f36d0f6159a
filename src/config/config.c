/* The config loader: YAML text (libyaml document API) to one validated, immutable sst_config_t.
 * Owns the snapshot, diagnostics, node helpers and YAML text; sections live in config_top.c,
 * config_regions.c, config_routes.c and beside. Never aborts: every failure fills sst_diag_t. */
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

__attribute__((format(printf, 3, 4))) int sst__cfg_fail_mark(sst__cfg_ctx_t *c, yaml_mark_t m,
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

const char *sst__cfg_fmt_size(uint64_t v, char *buf, size_t size)
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
                             sst__cfg_fmt_size(lo, a, sizeof a),
                             sst__cfg_fmt_size(hi, b, sizeof b));
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
            return sst__cfg_fail_mark(c, m, "YAML: %s (byte 0x%02x)", problem,
                                      (unsigned)p->problem_value & 0xffu);
        return sst__cfg_fail_mark(c, m, "YAML: %s", problem);
    }
    if (p->context != NULL)
        return sst__cfg_fail_mark(c, p->problem_mark, "YAML syntax error: %s %s at line %u",
                                  problem, p->context, (unsigned)p->context_mark.line + 1);
    return sst__cfg_fail_mark(c, p->problem_mark, "YAML syntax error: %s", problem);
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
                rc = sst__cfg_fail_mark(c, ev.start_mark, "only one YAML document per file");
            break;
        case YAML_ALIAS_EVENT:
            rc = sst__cfg_fail_mark(c, ev.start_mark,
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
            rc = sst__cfg_fail_mark(c, ev.start_mark,
                                    "anchors (&%.40s) are not supported: write the value out",
                                    (const char *)anchor);
        if (rc == 0 && depth > CONFIG_MAX_DEPTH)
            rc = sst__cfg_fail_mark(c, ev.start_mark, "nested deeper than %d levels",
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
    rc = sst__cfg_build(c, yaml_document_get_root_node(&doc));
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
