#include "config_node.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

typedef struct map_entry {
    char *key;
    bool symbol;
    vmp_cfg_mark key_mark;
    vmp_cfg_node *value;
} map_entry;

struct vmp_cfg_node {
    vmp_cfg_kind kind;
    vmp_cfg_mark mark;
    bool quoted;
    bool symbol;          /* scalar written as a Ruby symbol */
    char *text;           /* scalar */
    map_entry *entries;   /* map */
    vmp_cfg_node **items; /* seq */
    size_t n, cap;
    vmp_strlist owned; /* strings kept alive with this node (file names) */
};

static vmp_cfg_node *node_new(vmp_cfg_kind kind)
{
    vmp_cfg_node *n = calloc(1, sizeof *n);
    if (n)
        n->kind = kind;
    return n;
}

vmp_cfg_node *vmp_cfg_null_new(void) { return node_new(VMP_CFG_NULL); }
vmp_cfg_node *vmp_cfg_map_new(void) { return node_new(VMP_CFG_MAP); }
vmp_cfg_node *vmp_cfg_seq_new(void) { return node_new(VMP_CFG_SEQ); }

vmp_cfg_node *vmp_cfg_scalar_new(const char *text)
{
    vmp_cfg_node *n = node_new(VMP_CFG_SCALAR);
    if (!n)
        return NULL;
    n->text = strdup(text ? text : "");
    if (!n->text) {
        free(n);
        return NULL;
    }
    return n;
}

void vmp_cfg_free(vmp_cfg_node *n)
{
    if (!n)
        return;
    free(n->text);
    for (size_t i = 0; i < n->n; i++) {
        if (n->kind == VMP_CFG_MAP) {
            free(n->entries[i].key);
            vmp_cfg_free(n->entries[i].value);
        } else if (n->kind == VMP_CFG_SEQ) {
            vmp_cfg_free(n->items[i]);
        }
    }
    free(n->entries);
    free(n->items);
    vmp_strlist_clear(&n->owned);
    free(n);
}

vmp_cfg_kind vmp_cfg_kind_of(const vmp_cfg_node *n) { return n ? n->kind : VMP_CFG_NULL; }

const char *vmp_cfg_kind_name(vmp_cfg_kind k)
{
    switch (k) {
    case VMP_CFG_SCALAR: return "scalar";
    case VMP_CFG_MAP: return "map";
    case VMP_CFG_SEQ: return "sequence";
    default: return "null";
    }
}

vmp_cfg_mark vmp_cfg_mark_of(const vmp_cfg_node *n)
{
    vmp_cfg_mark none = {NULL, 0, 0};
    return n ? n->mark : none;
}

const char *vmp_cfg_scalar(const vmp_cfg_node *n)
{
    return n && n->kind == VMP_CFG_SCALAR ? n->text : NULL;
}

bool vmp_cfg_scalar_quoted(const vmp_cfg_node *n) { return n && n->quoted; }

bool vmp_cfg_scalar_is_symbol(const vmp_cfg_node *n) { return n && n->symbol; }

size_t vmp_cfg_len(const vmp_cfg_node *n)
{
    return n && (n->kind == VMP_CFG_MAP || n->kind == VMP_CFG_SEQ) ? n->n : 0;
}

const vmp_cfg_node *vmp_cfg_at(const vmp_cfg_node *n, size_t i)
{
    return vmp_cfg_at_mut((vmp_cfg_node *)n, i);
}

vmp_cfg_node *vmp_cfg_at_mut(vmp_cfg_node *n, size_t i)
{
    if (!n || i >= n->n)
        return NULL;
    if (n->kind == VMP_CFG_SEQ)
        return n->items[i];
    if (n->kind == VMP_CFG_MAP)
        return n->entries[i].value;
    return NULL;
}

const char *vmp_cfg_key_at(const vmp_cfg_node *n, size_t i)
{
    return n && n->kind == VMP_CFG_MAP && i < n->n ? n->entries[i].key : NULL;
}

bool vmp_cfg_key_is_symbol(const vmp_cfg_node *n, size_t i)
{
    return n && n->kind == VMP_CFG_MAP && i < n->n && n->entries[i].symbol;
}

vmp_cfg_mark vmp_cfg_key_mark_at(const vmp_cfg_node *n, size_t i)
{
    vmp_cfg_mark none = {NULL, 0, 0};
    return n && n->kind == VMP_CFG_MAP && i < n->n ? n->entries[i].key_mark : none;
}

static long find_key(const vmp_cfg_node *map, const char *key)
{
    if (!map || map->kind != VMP_CFG_MAP || !key)
        return -1;
    if (key[0] == ':')
        key++;
    /* Last occurrence wins, as in Ruby's YAML. map_set replaces in place, so
     * duplicates exist only if the loader chose to keep them. */
    for (size_t i = map->n; i-- > 0;)
        if (strcmp(map->entries[i].key, key) == 0)
            return (long)i;
    return -1;
}

const vmp_cfg_node *vmp_cfg_get(const vmp_cfg_node *map, const char *key)
{
    return vmp_cfg_get_mut((vmp_cfg_node *)map, key);
}

vmp_cfg_node *vmp_cfg_get_mut(vmp_cfg_node *map, const char *key)
{
    long i = find_key(map, key);
    return i < 0 ? NULL : map->entries[i].value;
}

int vmp_cfg_as_int(const vmp_cfg_node *n, long long *out)
{
    const char *s = vmp_cfg_scalar(n);
    if (!s)
        return -1;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    return vmp_parse_long(s, out);
}

int vmp_cfg_as_double(const vmp_cfg_node *n, double *out)
{
    const char *s = vmp_cfg_scalar(n);
    if (!s || !*s)
        return -1;
    return vmp_parse_double(s, out);
}

int vmp_cfg_as_bool(const vmp_cfg_node *n, bool *out)
{
    const char *s = vmp_cfg_scalar(n);
    if (!s)
        return -1;
    static const char *yes[] = {"true", "yes", "on"};
    static const char *no[] = {"false", "no", "off"};
    for (size_t i = 0; i < VMP_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

const char *vmp_cfg_get_str(const vmp_cfg_node *map, const char *key, const char *def)
{
    const char *s = vmp_cfg_scalar(vmp_cfg_get(map, key));
    return s ? s : def;
}

long long vmp_cfg_get_int(const vmp_cfg_node *map, const char *key, long long def)
{
    long long v;
    return vmp_cfg_as_int(vmp_cfg_get(map, key), &v) == 0 ? v : def;
}

double vmp_cfg_get_double(const vmp_cfg_node *map, const char *key, double def)
{
    double v;
    return vmp_cfg_as_double(vmp_cfg_get(map, key), &v) == 0 ? v : def;
}

bool vmp_cfg_get_bool(const vmp_cfg_node *map, const char *key, bool def)
{
    bool v;
    return vmp_cfg_as_bool(vmp_cfg_get(map, key), &v) == 0 ? v : def;
}

void vmp_cfg_set_mark(vmp_cfg_node *n, vmp_cfg_mark mark)
{
    if (n)
        n->mark = mark;
}

void vmp_cfg_set_quoted(vmp_cfg_node *n, bool quoted)
{
    if (n)
        n->quoted = quoted;
}

void vmp_cfg_set_symbol(vmp_cfg_node *n, bool symbol)
{
    if (n)
        n->symbol = symbol;
}

static char *normalize_key(const char *key, bool *symbol)
{
    size_t len = strlen(key);
    bool sym = len > 0 && key[0] == ':';
    if (sym) {
        key++;
        len--;
    }
    if (symbol)
        *symbol = *symbol || sym;
    char *k = malloc(len + 1);
    if (k) {
        memcpy(k, key, len);
        k[len] = '\0';
    }
    return k;
}

int vmp_cfg_map_set_marked(vmp_cfg_node *map, const char *key, bool symbol, vmp_cfg_mark key_mark,
                           vmp_cfg_node *value)
{
    if (!map || map->kind != VMP_CFG_MAP || !key) {
        vmp_cfg_free(value);
        return VMP_EINVAL;
    }
    if (!value)
        return VMP_ENOMEM;
    char *k = normalize_key(key, &symbol);
    if (!k) {
        vmp_cfg_free(value);
        return VMP_ENOMEM;
    }
    long i = find_key(map, k);
    if (i >= 0) {
        free(k);
        vmp_cfg_free(map->entries[i].value);
        map->entries[i].value = value;
        map->entries[i].symbol = symbol;
        map->entries[i].key_mark = key_mark;
        return 0;
    }
    if (map->n == map->cap) {
        size_t cap = map->cap ? map->cap * 2 : 8;
        map_entry *e = realloc(map->entries, cap * sizeof *e);
        if (!e) {
            free(k);
            vmp_cfg_free(value);
            return VMP_ENOMEM;
        }
        map->entries = e;
        map->cap = cap;
    }
    map->entries[map->n++] = (map_entry){k, symbol, key_mark, value};
    return 0;
}

int vmp_cfg_map_set(vmp_cfg_node *map, const char *key, vmp_cfg_node *value)
{
    vmp_cfg_mark none = {NULL, 0, 0};
    return vmp_cfg_map_set_marked(map, key, false, none, value);
}

int vmp_cfg_map_remove(vmp_cfg_node *map, const char *key)
{
    long i = find_key(map, key);
    if (i < 0)
        return 0;
    free(map->entries[i].key);
    vmp_cfg_free(map->entries[i].value);
    memmove(map->entries + i, map->entries + i + 1, (map->n - (size_t)i - 1) * sizeof(map_entry));
    map->n--;
    return 1;
}

int vmp_cfg_seq_push(vmp_cfg_node *seq, vmp_cfg_node *value)
{
    if (!seq || seq->kind != VMP_CFG_SEQ) {
        vmp_cfg_free(value);
        return VMP_EINVAL;
    }
    if (!value)
        return VMP_ENOMEM;
    if (seq->n == seq->cap) {
        size_t cap = seq->cap ? seq->cap * 2 : 8;
        vmp_cfg_node **items = realloc(seq->items, cap * sizeof *items);
        if (!items) {
            vmp_cfg_free(value);
            return VMP_ENOMEM;
        }
        seq->items = items;
        seq->cap = cap;
    }
    seq->items[seq->n++] = value;
    return 0;
}

vmp_cfg_node *vmp_cfg_clone(const vmp_cfg_node *n)
{
    if (!n)
        return NULL;
    vmp_cfg_node *c = node_new(n->kind);
    if (!c)
        return NULL;
    c->mark = n->mark;
    c->quoted = n->quoted;
    c->symbol = n->symbol;
    if (n->text && !(c->text = strdup(n->text)))
        goto fail;
    for (size_t i = 0; i < n->n; i++) {
        if (n->kind == VMP_CFG_MAP) {
            const map_entry *e = &n->entries[i];
            if (vmp_cfg_map_set_marked(c, e->key, e->symbol, e->key_mark, vmp_cfg_clone(e->value)))
                goto fail;
        } else if (n->kind == VMP_CFG_SEQ) {
            if (vmp_cfg_seq_push(c, vmp_cfg_clone(n->items[i])))
                goto fail;
        }
    }
    return c;
fail:
    vmp_cfg_free(c);
    return NULL;
}

int vmp_cfg_merge(vmp_cfg_node *dst, const vmp_cfg_node *src)
{
    if (!dst || !src || dst->kind != VMP_CFG_MAP || src->kind != VMP_CFG_MAP)
        return VMP_EINVAL;
    for (size_t i = 0; i < src->n; i++) {
        const map_entry *e = &src->entries[i];
        vmp_cfg_node *existing = vmp_cfg_get_mut(dst, e->key);
        if (existing && existing->kind == VMP_CFG_MAP && e->value &&
            e->value->kind == VMP_CFG_MAP) {
            int rc = vmp_cfg_merge(existing, e->value);
            if (rc)
                return rc;
            continue;
        }
        int rc = vmp_cfg_map_set_marked(dst, e->key, e->symbol, e->key_mark, vmp_cfg_clone(e->value));
        if (rc)
            return rc;
    }
    return 0;
}

int vmp_cfg_set_file_owner(vmp_cfg_node *root, char *s)
{
    if (!root) {
        free(s);
        return VMP_EINVAL;
    }
    return vmp_strlist_push_owned(&root->owned, s);
}
