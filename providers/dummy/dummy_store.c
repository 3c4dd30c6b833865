/*
 * The dummy provider's inventory (hashed, ordered) and its backing file in
 * vmpooler's YAML format. See dummy_state.h.
 */
#include "dummy_state.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "log.h"

#define YAML_MAX_DEPTH 64

/* ---- hashing ------------------------------------------------------------ */

static size_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 29));
}

/* ---- records ------------------------------------------------------------ */

dummy_vm *dummy_vm_new(const char *name)
{
    dummy_vm *vm = calloc(1, sizeof *vm);
    if (!vm)
        return NULL;
    vm->name = strdup(name);
    if (!vm->name) {
        free(vm);
        return NULL;
    }
    return vm;
}

void dummy_vm_free(dummy_vm *vm)
{
    if (!vm)
        return;
    free(vm->name);
    free(vm->hostname);
    free(vm->domain);
    free(vm->vm_template);
    free(vm->template_name);
    free(vm->poolname);
    free(vm->powerstate);
    free(vm->vm_host);
    free(vm->dummy_state);
    vmp_strlist_clear(&vm->snapshots);
    vmp_strlist_clear(&vm->disks);
    free(vm);
}

int dummy_vm_set(char **field, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return VMP_ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

/* ---- pools and the state ------------------------------------------------ */

void dummy_state_init(dummy_state *st) { memset(st, 0, sizeof *st); }

static void pool_free(dummy_pool *pool)
{
    dummy_vm *vm = pool->head;
    while (vm) {
        dummy_vm *next = vm->next;
        dummy_vm_free(vm);
        vm = next;
    }
    free(pool->buckets);
    free(pool->name);
    free(pool);
}

void dummy_state_clear(dummy_state *st)
{
    dummy_pool *pool = st->head;
    while (pool) {
        dummy_pool *next = pool->next;
        pool_free(pool);
        pool = next;
    }
    free(st->buckets);
    dummy_state_init(st);
}

void dummy_state_move(dummy_state *dst, dummy_state *src)
{
    dummy_state_clear(dst);
    *dst = *src;
    dummy_state_init(src);
}

static int state_grow(dummy_state *st)
{
    size_t nb = st->nbuckets ? st->nbuckets * 2 : 16;
    dummy_pool **b = calloc(nb, sizeof *b);
    if (!b)
        return VMP_ENOMEM;
    for (dummy_pool *p = st->head; p; p = p->next) {
        size_t i = hash_str(p->name) & (nb - 1);
        p->hnext = b[i];
        b[i] = p;
    }
    free(st->buckets);
    st->buckets = b;
    st->nbuckets = nb;
    return 0;
}

dummy_pool *dummy_state_pool(dummy_state *st, const char *name, bool create)
{
    if (st->nbuckets) {
        for (dummy_pool *p = st->buckets[hash_str(name) & (st->nbuckets - 1)]; p; p = p->hnext)
            if (strcmp(p->name, name) == 0)
                return p;
    }
    if (!create)
        return NULL;
    if (st->n_pools >= st->nbuckets && state_grow(st) != 0)
        return NULL;
    dummy_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->name = strdup(name))) {
        free(p);
        return NULL;
    }
    size_t i = hash_str(name) & (st->nbuckets - 1);
    p->hnext = st->buckets[i];
    st->buckets[i] = p;
    if (st->tail)
        st->tail->next = p;
    else
        st->head = p;
    st->tail = p;
    st->n_pools++;
    return p;
}

dummy_vm *dummy_pool_find(const dummy_pool *pool, const char *vm)
{
    if (!pool || !pool->nbuckets)
        return NULL;
    for (dummy_vm *v = pool->buckets[hash_str(vm) & (pool->nbuckets - 1)]; v; v = v->hnext)
        if (strcmp(v->name, vm) == 0)
            return v;
    return NULL;
}

dummy_vm *dummy_state_find(const dummy_state *st, const char *pool, const char *vm)
{
    return dummy_pool_find(dummy_state_pool((dummy_state *)st, pool, false), vm);
}

static int pool_grow(dummy_pool *pool)
{
    size_t nb = pool->nbuckets ? pool->nbuckets * 2 : 16;
    dummy_vm **b = calloc(nb, sizeof *b);
    if (!b)
        return VMP_ENOMEM;
    for (dummy_vm *v = pool->head; v; v = v->next) {
        size_t i = hash_str(v->name) & (nb - 1);
        v->hnext = b[i];
        b[i] = v;
    }
    free(pool->buckets);
    pool->buckets = b;
    pool->nbuckets = nb;
    return 0;
}

int dummy_state_append(dummy_state *st, dummy_pool *pool, dummy_vm *vm)
{
    if (pool->n >= pool->nbuckets && pool_grow(pool) != 0) {
        dummy_vm_free(vm);
        return VMP_ENOMEM;
    }
    size_t i = hash_str(vm->name) & (pool->nbuckets - 1);
    vm->hnext = pool->buckets[i];
    pool->buckets[i] = vm;
    vm->pool = pool;
    vm->prev = pool->tail;
    vm->next = NULL;
    if (pool->tail)
        pool->tail->next = vm;
    else
        pool->head = vm;
    pool->tail = vm;
    pool->n++;
    st->n_vms++;
    return 0;
}

void dummy_state_remove(dummy_state *st, dummy_vm *vm)
{
    dummy_pool *pool = vm->pool;
    dummy_vm **pp = &pool->buckets[hash_str(vm->name) & (pool->nbuckets - 1)];
    while (*pp && *pp != vm)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = vm->hnext;
    if (vm->prev)
        vm->prev->next = vm->next;
    else
        pool->head = vm->next;
    if (vm->next)
        vm->next->prev = vm->prev;
    else
        pool->tail = vm->prev;
    pool->n--;
    st->n_vms--;
    dummy_vm_free(vm);
}

/* ---- reading the tree --------------------------------------------------- */

static const char *scalar_or_null(const vmp_cfg_node *n) { return vmp_cfg_scalar(n); }

static int strlist_from(vmp_strlist *out, const vmp_cfg_node *n)
{
    if (vmp_cfg_kind_of(n) == VMP_CFG_SEQ) {
        for (size_t i = 0; i < vmp_cfg_len(n); i++) {
            const char *s = vmp_cfg_scalar(vmp_cfg_at(n, i));
            if (s && vmp_strlist_push(out, s) != 0)
                return VMP_ENOMEM;
        }
    } else if (vmp_cfg_scalar(n)) {
        /* A single value where a list was expected: keep it. */
        if (vmp_strlist_push(out, vmp_cfg_scalar(n)) != 0)
            return VMP_ENOMEM;
    }
    return 0;
}

/* Builds one record of pool from a map node. Returns 0 and sets *out, or
 * 0 with *out NULL when the record is unusable (warned), or VMP_ENOMEM. */
static int record_from(const vmp_cfg_node *n, const char *pool, const char *origin,
                       const char *log_subsys, dummy_vm **out)
{
    *out = NULL;
    vmp_cfg_mark mark = vmp_cfg_mark_of(n);
    const char *name = vmp_cfg_kind_of(n) == VMP_CFG_MAP
                           ? scalar_or_null(vmp_cfg_get(n, "name"))
                           : vmp_cfg_scalar(n); /* a bare name is accepted too */
    if (!name || !name[0]) {
        vmp_log_vm(VMP_LOG_WARN, log_subsys, pool, NULL,
                   "%s:%d: skipping a VM record without a name", origin, mark.line);
        return 0;
    }
    dummy_vm *vm = dummy_vm_new(name);
    if (!vm)
        return VMP_ENOMEM;
    const char *s;
    int rc = 0;
#define FIELD(key, field, def)                                                                     \
    do {                                                                                           \
        s = scalar_or_null(vmp_cfg_get(n, key));                                                   \
        rc |= dummy_vm_set(&vm->field, s ? s : (def));                                             \
    } while (0)
    FIELD("hostname", hostname, name);
    FIELD("domain", domain, "dummy.local");
    FIELD("vm_template", vm_template, NULL);
    FIELD("template", template_name, pool);
    FIELD("poolname", poolname, pool);
    FIELD("powerstate", powerstate, "PoweredOn");
    FIELD("vm_host", vm_host, "HOST1");
    /* A hand-written record without a state is taken as a running VM. */
    FIELD("dummy_state", dummy_state, "RUNNING");
#undef FIELD
    bool b = false;
    vm->ready = vmp_cfg_as_bool(vmp_cfg_get(n, "ready"), &b) == 0 && b;
    const vmp_cfg_node *bt = vmp_cfg_get(n, "boottime");
    if (vmp_cfg_scalar(bt) && vmp_time_parse(vmp_cfg_scalar(bt), &vm->boottime) != 0) {
        vmp_log_vm(VMP_LOG_WARN, log_subsys, pool, name, "%s:%d: unreadable boottime '%s'", origin,
                   vmp_cfg_mark_of(bt).line, vmp_cfg_scalar(bt));
        vm->boottime = 0;
    }
    rc |= strlist_from(&vm->snapshots, vmp_cfg_get(n, "snapshots"));
    rc |= strlist_from(&vm->disks, vmp_cfg_get(n, "disks"));
    if (rc != 0) {
        dummy_vm_free(vm);
        return VMP_ENOMEM;
    }
    *out = vm;
    return 0;
}

int dummy_state_from_tree(dummy_state *st, const vmp_cfg_node *root, const char *origin,
                          const char *log_subsys, vmp_err *err)
{
    int rc = 0;
    dummy_state fresh;
    dummy_state_init(&fresh);
    if (vmp_cfg_kind_of(root) != VMP_CFG_MAP && vmp_cfg_kind_of(root) != VMP_CFG_NULL) {
        rc = vmp_err_set(err, VMP_EINVAL, "%s: expected a map with key 'pool', got a %s", origin,
                         vmp_cfg_kind_name(vmp_cfg_kind_of(root)));
        goto out;
    }
    const vmp_cfg_node *pools = vmp_cfg_get(root, "pool");
    if (pools && vmp_cfg_kind_of(pools) != VMP_CFG_MAP && vmp_cfg_kind_of(pools) != VMP_CFG_NULL) {
        vmp_cfg_mark m = vmp_cfg_mark_of(pools);
        rc = vmp_err_set(err, VMP_EINVAL, "%s:%d:%d: 'pool' must map pool names to VM lists",
                         origin, m.line, m.column);
        goto out;
    }
    for (size_t i = 0; i < vmp_cfg_len(pools); i++) {
        const char *pname = vmp_cfg_key_at(pools, i);
        const vmp_cfg_node *list = vmp_cfg_at(pools, i);
        dummy_pool *pool = dummy_state_pool(&fresh, pname, true);
        if (!pool)
            goto oom;
        if (vmp_cfg_kind_of(list) != VMP_CFG_SEQ) {
            if (vmp_cfg_kind_of(list) != VMP_CFG_NULL)
                vmp_log_vm(VMP_LOG_WARN, log_subsys, pname, NULL,
                           "%s:%d: pool entry is not a list of VMs, taken as empty", origin,
                           vmp_cfg_mark_of(list).line);
            continue;
        }
        for (size_t j = 0; j < vmp_cfg_len(list); j++) {
            dummy_vm *vm = NULL;
            if (record_from(vmp_cfg_at(list, j), pname, origin, log_subsys, &vm) != 0)
                goto oom;
            if (!vm)
                continue;
            if (dummy_pool_find(pool, vm->name)) {
                /* vmpooler would keep both; one name is one VM here. */
                vmp_log_vm(VMP_LOG_WARN, log_subsys, pname, vm->name,
                           "%s:%d: duplicate VM record ignored", origin,
                           vmp_cfg_mark_of(vmp_cfg_at(list, j)).line);
                dummy_vm_free(vm);
                continue;
            }
            if (dummy_state_append(&fresh, pool, vm) != 0)
                goto oom;
        }
    }
    dummy_state_move(st, &fresh);
    goto out;
oom:
    rc = vmp_err_set(err, VMP_ENOMEM, "%s: out of memory loading the dummy inventory", origin);
out:
    dummy_state_clear(&fresh);
    return rc;
}

/* ---- YAML parsing ------------------------------------------------------- */

static bool plain_null(const char *s)
{
    return !s[0] || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

static vmp_cfg_node *convert(yaml_document_t *doc, yaml_node_t *yn, const char *file, int depth,
                             vmp_err *err)
{
    if (depth > YAML_MAX_DEPTH) {
        vmp_err_set(err, VMP_EINVAL, "%s:%zu: nesting too deep", file, yn->start_mark.line + 1);
        return NULL;
    }
    vmp_cfg_node *n = NULL;
    vmp_cfg_mark mark = {file, (int)yn->start_mark.line + 1, (int)yn->start_mark.column + 1};
    switch (yn->type) {
    case YAML_SCALAR_NODE: {
        const char *text = (const char *)yn->data.scalar.value;
        bool plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n = plain && plain_null(text) ? vmp_cfg_null_new() : vmp_cfg_scalar_new(text);
        if (n)
            vmp_cfg_set_quoted(n, !plain);
        break;
    }
    case YAML_SEQUENCE_NODE:
        n = vmp_cfg_seq_new();
        for (yaml_node_item_t *it = yn->data.sequence.items.start;
             n && it < yn->data.sequence.items.top; it++)
        {
            vmp_cfg_node *c = convert(doc, yaml_document_get_node(doc, *it), file, depth + 1, err);
            if (!c || vmp_cfg_seq_push(n, c) != 0) {
                vmp_cfg_free(n);
                n = NULL;
            }
        }
        break;
    case YAML_MAPPING_NODE:
        n = vmp_cfg_map_new();
        for (yaml_node_pair_t *pr = yn->data.mapping.pairs.start;
             n && pr < yn->data.mapping.pairs.top; pr++)
        {
            yaml_node_t *k = yaml_document_get_node(doc, pr->key);
            if (k->type != YAML_SCALAR_NODE) {
                vmp_err_set(err, VMP_EINVAL, "%s:%zu:%zu: map keys must be scalars", file,
                            k->start_mark.line + 1, k->start_mark.column + 1);
                vmp_cfg_free(n);
                return NULL;
            }
            vmp_cfg_node *v =
                convert(doc, yaml_document_get_node(doc, pr->value), file, depth + 1, err);
            if (!v) {
                vmp_cfg_free(n);
                return NULL;
            }
            const char *key = (const char *)k->data.scalar.value;
            vmp_cfg_mark km = {file, (int)k->start_mark.line + 1, (int)k->start_mark.column + 1};
            if (vmp_cfg_map_set_marked(n, key, key[0] == ':', km, v) != 0) {
                vmp_cfg_free(n);
                n = NULL;
            }
        }
        break;
    default:
        n = vmp_cfg_null_new();
        break;
    }
    if (!n) {
        if (err && !err->code)
            vmp_err_set(err, VMP_ENOMEM, "%s: out of memory", file);
        return NULL;
    }
    vmp_cfg_set_mark(n, mark);
    return n;
}

int dummy_yaml_parse(const char *text, size_t len, const char *name, vmp_cfg_node **out,
                     vmp_err *err)
{
    int rc = 0;
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_doc = false;
    vmp_cfg_node *root = NULL;
    char *file = strdup(name ? name : "<yaml>");
    if (!file)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    if (!yaml_parser_initialize(&parser)) {
        free(file);
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = vmp_err_set(err, VMP_EINVAL, "%s:%zu:%zu: %s%s%s", file, parser.problem_mark.line + 1,
                         parser.problem_mark.column + 1,
                         parser.problem ? parser.problem : "invalid YAML",
                         parser.context ? " " : "", parser.context ? parser.context : "");
        goto out;
    }
    have_doc = true;
    yaml_node_t *top = yaml_document_get_root_node(&doc);
    root = top ? convert(&doc, top, file, 0, err) : vmp_cfg_null_new();
    if (!root) {
        rc = err && err->code ? err->code : VMP_ENOMEM;
        if (!err || !err->code)
            vmp_err_set(err, rc, "%s: out of memory", file);
        goto out;
    }
    /* The marks point at file: the tree keeps it alive (and frees it even
     * when this fails). */
    rc = vmp_cfg_set_file_owner(root, file);
    file = NULL;
    if (rc != 0) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    *out = root;
    root = NULL;
out:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    vmp_cfg_free(root);
    free(file);
    return rc;
}

/* ---- YAML writing ------------------------------------------------------- */

void dummy_format_ruby_time(double t, char *buf, size_t n)
{
    time_t secs = (time_t)t;
    if ((double)secs > t) /* before 1970: truncation went up */
        secs--;
    long nsec = (long)((t - (double)secs) * 1e9 + 0.5);
    if (nsec >= 1000000000L) {
        nsec -= 1000000000L;
        secs++;
    }
    struct tm tm;
    localtime_r(&secs, &tm);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    snprintf(buf, n, "%s.%09ld %c%02ld:%02ld", date, nsec, sign, off / 3600, (off % 3600) / 60);
}

static int buf_writer(void *data, unsigned char *buffer, size_t size)
{
    vmp_buf *b = data;
    vmp_buf_append(b, (const char *)buffer, size);
    return !b->oom;
}

static bool all_digits(const char *s, const char *extra)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s) && !strchr(extra, *s))
            return false;
    return true;
}

/* True when a plain scalar with this text would read back as something
 * other than a string (a number, boolean, null, time, symbol), so it must
 * be quoted to stay a string, as Ruby's YAML.dump does. */
static bool ambiguous(const char *s)
{
    static const char *const words[] = {"true", "false", "yes", "no", "on", "off", "null", "~"};
    if (!s[0])
        return true;
    for (size_t i = 0; i < VMP_ARRAY_LEN(words); i++)
        if (strcasecmp(s, words[i]) == 0)
            return true;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (all_digits(p, "_,:"))
        return true; /* integers, 1_000, sexagesimal 1:20 */
    if ((p[0] == '0' && (p[1] == 'x' || p[1] == 'o' || p[1] == 'b')) ||
        strcasecmp(p, ".inf") == 0 || strcasecmp(p, ".nan") == 0)
        return true;
    char *end = NULL;
    errno = 0;
    (void)strtod(s, &end);
    if (end != s && *end == '\0')
        return true;
    /* A date or time: YYYY-MM-DD... */
    if (strlen(s) >= 10 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[3]) &&
        s[4] == '-' && s[7] == '-')
        return true;
    return false;
}

static int emit(yaml_emitter_t *e, yaml_event_t *ev) { return yaml_emitter_emit(e, ev) ? 0 : -1; }

static int emit_scalar(yaml_emitter_t *e, const char *s, yaml_scalar_style_t style, bool plain_ok)
{
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), plain_ok,
                                      !plain_ok, style))
        return -1;
    return emit(e, &ev);
}

/* A string the way Ruby's YAML.dump writes one. */
static int emit_str(yaml_emitter_t *e, const char *s)
{
    if (!s) /* nil */
        return emit_scalar(e, "", YAML_PLAIN_SCALAR_STYLE, true);
    if (strcmp(s, "y") == 0 || strcmp(s, "Y") == 0 || strcmp(s, "n") == 0 || strcmp(s, "N") == 0)
        return emit_scalar(e, s, YAML_DOUBLE_QUOTED_SCALAR_STYLE, false);
    if (ambiguous(s))
        return emit_scalar(e, s, YAML_SINGLE_QUOTED_SCALAR_STYLE, false);
    return emit_scalar(e, s, YAML_ANY_SCALAR_STYLE, true);
}

static int emit_key_str(yaml_emitter_t *e, const char *key, const char *value)
{
    return emit_scalar(e, key, YAML_ANY_SCALAR_STYLE, true) || emit_str(e, value) ? -1 : 0;
}

static int emit_list(yaml_emitter_t *e, const char *key, const vmp_strlist *l, bool numbers)
{
    yaml_event_t ev;
    if (emit_scalar(e, key, YAML_ANY_SCALAR_STYLE, true) != 0)
        return -1;
    if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
        emit(e, &ev) != 0)
        return -1;
    for (size_t i = 0; i < l->n; i++) {
        long long v;
        /* Disk sizes are integers in vmpooler's file. */
        if (numbers && vmp_parse_long(l->v[i], &v) == 0) {
            char num[32];
            snprintf(num, sizeof num, "%lld", v);
            if (emit_scalar(e, num, YAML_PLAIN_SCALAR_STYLE, true) != 0)
                return -1;
        } else if (emit_str(e, l->v[i]) != 0) {
            return -1;
        }
    }
    if (!yaml_sequence_end_event_initialize(&ev) || emit(e, &ev) != 0)
        return -1;
    return 0;
}

static int emit_record(yaml_emitter_t *e, const dummy_vm *vm)
{
    yaml_event_t ev;
    if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
        emit(e, &ev) != 0)
        return -1;
    char when[64];
    if (vm->boottime > 0)
        dummy_format_ruby_time(vm->boottime, when, sizeof when);
    if (emit_key_str(e, "name", vm->name) || emit_key_str(e, "hostname", vm->hostname) ||
        emit_key_str(e, "domain", vm->domain) || emit_key_str(e, "vm_template", vm->vm_template) ||
        emit_key_str(e, "template", vm->template_name) ||
        emit_key_str(e, "poolname", vm->poolname) ||
        emit_scalar(e, "ready", YAML_ANY_SCALAR_STYLE, true) ||
        emit_scalar(e, vm->ready ? "true" : "false", YAML_PLAIN_SCALAR_STYLE, true) ||
        emit_scalar(e, "boottime", YAML_ANY_SCALAR_STYLE, true) ||
        emit_scalar(e, vm->boottime > 0 ? when : "", YAML_PLAIN_SCALAR_STYLE, true) ||
        emit_key_str(e, "powerstate", vm->powerstate) || emit_key_str(e, "vm_host", vm->vm_host) ||
        emit_key_str(e, "dummy_state", vm->dummy_state) ||
        emit_list(e, "snapshots", &vm->snapshots, false) || emit_list(e, "disks", &vm->disks, true))
        return -1;
    if (!yaml_mapping_end_event_initialize(&ev) || emit(e, &ev) != 0)
        return -1;
    return 0;
}

static int emit_state(yaml_emitter_t *e, const dummy_state *st)
{
    yaml_event_t ev;
    if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || emit(e, &ev) != 0)
        return -1;
    if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0) || emit(e, &ev) != 0)
        return -1;
    if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
        emit(e, &ev) != 0)
        return -1;
    if (emit_scalar(e, "pool", YAML_ANY_SCALAR_STYLE, true) != 0)
        return -1;
    if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
        emit(e, &ev) != 0)
        return -1;
    for (const dummy_pool *p = st->head; p; p = p->next) {
        if (emit_str(e, p->name) != 0)
            return -1;
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
            emit(e, &ev) != 0)
            return -1;
        for (const dummy_vm *vm = p->head; vm; vm = vm->next)
            if (emit_record(e, vm) != 0)
                return -1;
        if (!yaml_sequence_end_event_initialize(&ev) || emit(e, &ev) != 0)
            return -1;
    }
    if (!yaml_mapping_end_event_initialize(&ev) || emit(e, &ev) != 0)
        return -1;
    if (!yaml_mapping_end_event_initialize(&ev) || emit(e, &ev) != 0)
        return -1;
    if (!yaml_document_end_event_initialize(&ev, 1) || emit(e, &ev) != 0)
        return -1;
    if (!yaml_stream_end_event_initialize(&ev) || emit(e, &ev) != 0)
        return -1;
    return 0;
}

int dummy_state_dump(const dummy_state *st, vmp_buf *out, vmp_err *err)
{
    int rc = 0;
    yaml_emitter_t e;
    if (!yaml_emitter_initialize(&e))
        return vmp_err_set(err, VMP_ENOMEM, "out of memory writing the dummy inventory");
    yaml_emitter_set_output(&e, buf_writer, out);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_indent(&e, 2);
    yaml_emitter_set_width(&e, -1);
    if (emit_state(&e, st) != 0 || !yaml_emitter_flush(&e) || out->oom)
        rc = vmp_err_set(err, out->oom ? VMP_ENOMEM : VMP_EIO,
                         "cannot write the dummy inventory as YAML: %s",
                         e.problem ? e.problem : "out of memory");
    yaml_emitter_delete(&e);
    return rc;
}

int dummy_state_load_file(dummy_state *st, const char *path, const char *log_subsys, bool *found,
                          vmp_err *err)
{
    int rc = 0;
    char *text = NULL;
    size_t len = 0;
    vmp_cfg_node *root = NULL;
    *found = false;
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return 0;
    *found = true;
    rc = vmp_file_read(path, &text, &len, err);
    if (rc != 0)
        goto out;
    rc = dummy_yaml_parse(text, len, path, &root, err);
    if (rc != 0)
        goto out;
    rc = dummy_state_from_tree(st, root, path, log_subsys, err);
out:
    vmp_cfg_free(root);
    free(text);
    return rc;
}

int dummy_state_save_file(const dummy_state *st, const char *path, vmp_err *err)
{
    vmp_buf b = VMP_BUF_INIT;
    int rc = dummy_state_dump(st, &b, err);
    if (rc == 0)
        rc = vmp_file_write_atomic(path, vmp_buf_str(&b), b.len, err);
    vmp_buf_free(&b);
    return rc;
}
