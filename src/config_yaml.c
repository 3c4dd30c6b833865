/*
 * YAML -> vmp_cfg_node, with libyaml's document API (which resolves anchors
 * and aliases for us). What we add on top, to read vmpooler's files as Ruby's
 * Psych does:
 *   - plain `~`, `null`, empty values become null nodes;
 *   - plain scalars starting with ':' are Ruby symbols: the colon goes, the
 *     node remembers it (keys: `:pools:` and `pools:` are the same key);
 *   - merge keys `<<: *anchor` (a map or a list of maps) copy entries in, in
 *     Psych's order: a merge overrides the keys before it, keys after it win;
 *   - a repeated key: the later value wins, with a warning;
 *   - only the first document counts (a warning names any more).
 * Aliases are expanded into copies, so a cap on the number of nodes guards
 * against "billion laughs" documents, and an alias inside its own anchor is
 * an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "config_priv.h"

#define MAX_DEPTH 200
#define MAX_NODES 1000000
#define MAX_FILE_SIZE (64L * 1024 * 1024)

typedef struct yconv {
    yaml_document_t *doc;
    const char *file;
    vmp_cfg_diag *d;
    unsigned char *visiting; /* per document node: being converted (cycle check) */
    size_t budget;           /* nodes we may still create */
    bool failed;             /* an error that stops the conversion */
} yconv;

static vmp_cfg_node *conv(yconv *c, int index, const char *path, int depth);

static vmp_cfg_mark ymark(const yconv *c, yaml_mark_t m)
{
    return (vmp_cfg_mark){c->file, (int)m.line + 1, (int)m.column + 1};
}

static bool plain_null(const char *s, size_t len)
{
    return len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

/* `:sym`, `:"sym"`, `:'sym'` -> "sym" (Psych's symbol forms). */
static char *symbol_text(const char *s, size_t len)
{
    s++;
    len--;
    if (len >= 2 && (s[0] == '"' || s[0] == '\'') && s[len - 1] == s[0]) {
        s++;
        len -= 2;
    }
    return strndup(s, len);
}

static bool is_symbol_text(const yaml_node_t *n)
{
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && n->data.scalar.length > 1 &&
           n->data.scalar.value[0] == ':';
}

static bool has_tag(const yaml_node_t *n, const char *tag)
{
    return n->tag && strcmp((const char *)n->tag, tag) == 0;
}

static vmp_cfg_node *conv_scalar(yconv *c, yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    bool plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    bool ruby_sym = has_tag(n, "!ruby/symbol") || has_tag(n, "!ruby/sym");
    vmp_cfg_node *out;
    if (plain && !ruby_sym && plain_null(s, len)) {
        out = vmp_cfg_null_new();
    } else if (is_symbol_text(n)) {
        char *t = symbol_text(s, len);
        out = t ? vmp_cfg_scalar_new(t) : NULL;
        free(t);
        vmp_cfg_set_symbol(out, true);
    } else {
        out = vmp_cfg_scalar_new(s);
        vmp_cfg_set_quoted(out, !plain);
        vmp_cfg_set_symbol(out, ruby_sym);
    }
    return out;
}

static void child_path(char *buf, size_t n, const char *path, const char *key)
{
    vmp_cfg_path(buf, n, path, key);
}

/* Copies every entry of src (a map) into dst, replacing existing keys. */
static int merge_entries(vmp_cfg_node *dst, const vmp_cfg_node *src)
{
    for (size_t i = 0; i < vmp_cfg_len(src); i++) {
        int rc =
            vmp_cfg_map_set_marked(dst, vmp_cfg_key_at(src, i), vmp_cfg_key_is_symbol(src, i),
                                   vmp_cfg_key_mark_at(src, i), vmp_cfg_clone(vmp_cfg_at(src, i)));
        if (rc)
            return rc;
    }
    return 0;
}

/* `<<: value`: value is a map, or a list of maps of which the earlier win. */
static int conv_merge(yconv *c, vmp_cfg_node *map, yaml_node_t *key, int value, const char *path,
                      int depth)
{
    char mpath[512];
    child_path(mpath, sizeof mpath, path, "<<");
    vmp_cfg_node *src = conv(c, value, mpath, depth + 1);
    if (!src)
        return VMP_EINVAL;
    int rc = 0;
    if (vmp_cfg_kind_of(src) == VMP_CFG_MAP) {
        rc = merge_entries(map, src);
    } else if (vmp_cfg_kind_of(src) == VMP_CFG_SEQ) {
        for (size_t i = vmp_cfg_len(src); i-- > 0 && !rc;) {
            const vmp_cfg_node *item = vmp_cfg_at(src, i);
            if (vmp_cfg_kind_of(item) != VMP_CFG_MAP) {
                vmp_cfg_diag_error(c->d, ymark(c, key->start_mark), mpath,
                                   "a merge key needs a map or a list of maps");
                rc = VMP_EINVAL;
                break;
            }
            rc = merge_entries(map, item);
        }
    } else {
        vmp_cfg_diag_error(c->d, ymark(c, key->start_mark), mpath,
                           "a merge key needs a map or a list of maps");
        rc = VMP_EINVAL;
    }
    vmp_cfg_free(src);
    if (rc == VMP_ENOMEM)
        c->d->oom = true;
    return rc;
}

/* One `key: value` pair; explicit holds the keys written (not merged) so far
 * in this map, to warn about repeats. */
static int conv_pair(yconv *c, vmp_cfg_node *map, yaml_node_pair_t *pair, vmp_strlist *explicit,
                     const char *path, int depth)
{
    yaml_node_t *key = yaml_document_get_node(c->doc, pair->key);
    if (!key || key->type != YAML_SCALAR_NODE) {
        vmp_cfg_diag_error(c->d, key ? ymark(c, key->start_mark) : (vmp_cfg_mark){c->file, 0, 0},
                           path, "map keys must be plain strings");
        return VMP_EINVAL;
    }
    const char *k = (const char *)key->data.scalar.value;
    if (key->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && strcmp(k, "<<") == 0)
        return conv_merge(c, map, key, pair->value, path, depth);

    bool symbol = is_symbol_text(key);
    const char *name = symbol ? k + 1 : k;
    char cpath[512];
    child_path(cpath, sizeof cpath, path, name);
    if (vmp_strlist_contains(explicit, name))
        vmp_cfg_diag_warn(c->d, ymark(c, key->start_mark), cpath,
                          "duplicate key (the later value is used)");
    else if (vmp_strlist_push(explicit, name))
        return c->d->oom = true, VMP_ENOMEM;
    vmp_cfg_node *value = conv(c, pair->value, cpath, depth + 1);
    if (!value)
        return VMP_EINVAL;
    int rc = vmp_cfg_map_set_marked(map, k, symbol, ymark(c, key->start_mark), value);
    if (rc)
        c->d->oom = true;
    return rc;
}

static vmp_cfg_node *conv_map(yconv *c, yaml_node_t *n, const char *path, int depth)
{
    vmp_cfg_node *map = vmp_cfg_map_new();
    vmp_strlist explicit = VMP_STRLIST_INIT;
    if (!map)
        goto fail;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        int rc = conv_pair(c, map, p, &explicit, path, depth);
        if (rc == VMP_ENOMEM || c->failed || c->d->oom)
            goto fail;
    }
    vmp_strlist_clear(&explicit);
    return map;
fail:
    vmp_strlist_clear(&explicit);
    vmp_cfg_free(map);
    return NULL;
}

static vmp_cfg_node *conv_seq(yconv *c, yaml_node_t *n, const char *path, int depth)
{
    vmp_cfg_node *seq = vmp_cfg_seq_new();
    if (!seq)
        return NULL;
    char ipath[512];
    size_t i = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++, i++)
    {
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        vmp_cfg_node *item = conv(c, *it, ipath, depth + 1);
        if (!item) {
            if (c->failed || c->d->oom)
                goto fail;
            item = vmp_cfg_null_new(); /* keep indexes stable after a bad item */
        }
        if (vmp_cfg_seq_push(seq, item)) {
            c->d->oom = true;
            goto fail;
        }
    }
    return seq;
fail:
    vmp_cfg_free(seq);
    return NULL;
}

static vmp_cfg_node *conv(yconv *c, int index, const char *path, int depth)
{
    yaml_node_t *n = yaml_document_get_node(c->doc, index);
    if (!n)
        return vmp_cfg_null_new();
    vmp_cfg_mark mark = ymark(c, n->start_mark);
    if (depth > MAX_DEPTH || c->budget == 0) {
        if (!c->failed)
            vmp_cfg_diag_error(c->d, mark, path,
                               depth > MAX_DEPTH ? "nested more than %d levels deep"
                                                 : "more than %d values after expanding aliases",
                               depth > MAX_DEPTH ? MAX_DEPTH : MAX_NODES);
        c->failed = true;
        return NULL;
    }
    size_t slot = (size_t)(n - c->doc->nodes.start);
    if (c->visiting[slot]) {
        vmp_cfg_diag_error(c->d, mark, path, "an alias refers to a node that contains it");
        c->failed = true;
        return NULL;
    }
    c->budget--;
    c->visiting[slot] = 1;
    vmp_cfg_node *out = NULL;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        out = conv_scalar(c, n);
        break;
    case YAML_MAPPING_NODE:
        out = conv_map(c, n, path, depth);
        break;
    case YAML_SEQUENCE_NODE:
        out = conv_seq(c, n, path, depth);
        break;
    default:
        out = vmp_cfg_null_new();
        break;
    }
    c->visiting[slot] = 0;
    if (!out && !c->failed)
        c->d->oom = true;
    vmp_cfg_set_mark(out, mark);
    return out;
}

static void parser_error(const yaml_parser_t *p, const char *file, vmp_cfg_diag *d, bool warn)
{
    vmp_cfg_mark m = {file, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1};
    const char *problem = p->problem ? p->problem : "unknown error";
    char ctx[160] = "";
    if (p->context)
        snprintf(ctx, sizeof ctx, " (%s at line %d, column %d)", p->context,
                 (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    if (p->error == YAML_MEMORY_ERROR)
        d->oom = true;
    else if (warn)
        vmp_cfg_diag_warn(d, m, NULL, "ignored after the first document: YAML syntax error: %s%s",
                          problem, ctx);
    else
        vmp_cfg_diag_error(d, m, NULL, "YAML syntax error: %s%s", problem, ctx);
}

/* Warns when a second document follows the first. */
static void check_more_documents(yaml_parser_t *p, const char *file, vmp_cfg_diag *d)
{
    yaml_document_t more;
    if (!yaml_parser_load(p, &more)) {
        parser_error(p, file, d, true);
        return;
    }
    if (yaml_document_get_root_node(&more)) {
        vmp_cfg_mark m = {file, (int)more.start_mark.line + 1, (int)more.start_mark.column + 1};
        vmp_cfg_diag_warn(d, m, NULL,
                          "the file holds more than one YAML document; only the first is used");
    }
    yaml_document_delete(&more);
}

static int convert_document(yaml_document_t *doc, const char *file, vmp_cfg_diag *d,
                            vmp_cfg_node **out)
{
    size_t n_nodes = (size_t)(doc->nodes.top - doc->nodes.start);
    yconv c = {doc, file, d, calloc(n_nodes ? n_nodes : 1, 1), MAX_NODES, false};
    if (!c.visiting)
        return d->oom = true, VMP_ENOMEM;
    vmp_cfg_node *root;
    if (!yaml_document_get_root_node(doc)) {
        vmp_cfg_diag_warn(d, (vmp_cfg_mark){file, 1, 1}, NULL, "the configuration is empty");
        root = vmp_cfg_map_new();
        if (!root)
            d->oom = true;
    } else {
        root = conv(&c, 1, "", 0);
    }
    free(c.visiting);
    if (!root || c.failed) {
        vmp_cfg_free(root);
        return d->oom ? VMP_ENOMEM : VMP_EINVAL;
    }
    *out = root;
    return 0;
}

int vmp_cfg_yaml_parse(const char *text, size_t len, const char *file, vmp_cfg_diag *d,
                       vmp_cfg_node **out)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    size_t errors_before = d->n_errors;
    int rc;
    if (!yaml_parser_initialize(&parser))
        return d->oom = true, VMP_ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        parser_error(&parser, file, d, false);
        rc = d->oom ? VMP_ENOMEM : VMP_EINVAL;
        goto out;
    }
    rc = convert_document(&doc, file, d, out);
    if (rc == 0)
        check_more_documents(&parser, file, d);
    yaml_document_delete(&doc);
    if (rc == 0 && d->n_errors > errors_before) {
        /* errors inside (bad keys, bad merges) that did not stop the walk */
        vmp_cfg_free(*out);
        *out = NULL;
        rc = VMP_EINVAL;
    }
out:
    yaml_parser_delete(&parser);
    return rc;
}

int vmp_cfg_read_file(const char *path, char **out, size_t *len, char *why, size_t why_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;
    char *buf = NULL;
    if (fd < 0) {
        snprintf(why, why_size, "%s", strerror(errno));
        return errno == ENOENT ? VMP_ENOENT : VMP_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(why, why_size, "%s", strerror(errno));
        rc = VMP_EIO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, why_size, "%s",
                 S_ISDIR(st.st_mode) ? "Is a directory" : "not a regular file");
        rc = VMP_EIO;
        goto out;
    }
    if (st.st_size > MAX_FILE_SIZE) {
        snprintf(why, why_size, "larger than %ld bytes", MAX_FILE_SIZE);
        rc = VMP_EIO;
        goto out;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    buf = malloc(cap);
    if (!buf) {
        rc = VMP_ENOMEM;
        snprintf(why, why_size, "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, why_size, "%s", strerror(errno));
            rc = VMP_EIO;
            goto out;
        }
        if (r == 0 || n + (size_t)r == cap - 1) {
            n += (size_t)r;
            break;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}
