/*
 * config_node: the generic configuration tree. The YAML loader turns a
 * vmpooler config file into this tree (maps, sequences, scalars, nulls), each
 * node remembering the file, line and column it came from, so that every
 * error can point at its source. Map keys are stored without vmpooler's
 * leading colon: `:pools:` and `pools:` both become "pools" (the node still
 * records that it was written as a symbol).
 *
 * Providers read their options through this API (their `:providers:` entry),
 * so it is deliberately small and read-mostly. Lua configuration builds
 * nodes with the constructors.
 */
#ifndef VMP_CONFIG_NODE_H
#define VMP_CONFIG_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef enum vmp_cfg_kind {
    VMP_CFG_NULL = 0, /* `~`, `null`, or an empty value */
    VMP_CFG_SCALAR,   /* any scalar, kept as its text */
    VMP_CFG_MAP,
    VMP_CFG_SEQ,
} vmp_cfg_kind;

typedef struct vmp_cfg_node vmp_cfg_node;

/* Where a node came from. file is shared by all nodes of one load (may be
 * NULL for nodes built in code); line and column are 1-based (0 = unknown). */
typedef struct vmp_cfg_mark {
    const char *file;
    int line;
    int column;
} vmp_cfg_mark;

/* ---- reading ----------------------------------------------------------- */

vmp_cfg_kind vmp_cfg_kind_of(const vmp_cfg_node *n); /* NULL node -> VMP_CFG_NULL */
const char *vmp_cfg_kind_name(vmp_cfg_kind k);       /* "null", "scalar", "map", "sequence" */
vmp_cfg_mark vmp_cfg_mark_of(const vmp_cfg_node *n);

/* A scalar's text, or NULL for other kinds. */
const char *vmp_cfg_scalar(const vmp_cfg_node *n);
/* True when the scalar was quoted in the source ('5' rather than 5), so the
 * loader can tell a string from a number where vmpooler (Ruby) would. */
bool vmp_cfg_scalar_quoted(const vmp_cfg_node *n);
/* True when the scalar was a Ruby symbol value (`provider: :dummy`); the
 * text is stored without the leading colon. */
bool vmp_cfg_scalar_is_symbol(const vmp_cfg_node *n);

/* Number of entries of a map or items of a sequence (0 for other kinds). */
size_t vmp_cfg_len(const vmp_cfg_node *n);
/* The i-th item of a sequence, or the i-th value of a map (in file order). */
const vmp_cfg_node *vmp_cfg_at(const vmp_cfg_node *n, size_t i);
/* The i-th key of a map (without a leading colon), or NULL. */
const char *vmp_cfg_key_at(const vmp_cfg_node *n, size_t i);
/* True when the i-th key of a map was written as a Ruby symbol (`:key:`). */
bool vmp_cfg_key_is_symbol(const vmp_cfg_node *n, size_t i);
/* The key node's own mark (where the key was written). */
vmp_cfg_mark vmp_cfg_key_mark_at(const vmp_cfg_node *n, size_t i);

/* The value for key in a map (key given without colon), or NULL when n is
 * not a map or has no such key. When a key appears twice the last wins, as in
 * Ruby's YAML. */
const vmp_cfg_node *vmp_cfg_get(const vmp_cfg_node *map, const char *key);

/* Typed getters over vmp_cfg_get. A missing key, a null value, or a value of
 * the wrong shape yields def. Integers accept optional sign and digits only;
 * booleans accept true/false/yes/no/on/off (any case). */
const char *vmp_cfg_get_str(const vmp_cfg_node *map, const char *key, const char *def);
long long vmp_cfg_get_int(const vmp_cfg_node *map, const char *key, long long def);
double vmp_cfg_get_double(const vmp_cfg_node *map, const char *key, double def);
bool vmp_cfg_get_bool(const vmp_cfg_node *map, const char *key, bool def);

/* Scalar conversions; return 0 and set *out, or -1 when the node is not a
 * scalar of that type. */
int vmp_cfg_as_int(const vmp_cfg_node *n, long long *out);
int vmp_cfg_as_double(const vmp_cfg_node *n, double *out);
int vmp_cfg_as_bool(const vmp_cfg_node *n, bool *out);

/* ---- building ---------------------------------------------------------- */

/* Constructors return a new owned node, or NULL on allocation failure. */
vmp_cfg_node *vmp_cfg_null_new(void);
vmp_cfg_node *vmp_cfg_scalar_new(const char *text);
vmp_cfg_node *vmp_cfg_map_new(void);
vmp_cfg_node *vmp_cfg_seq_new(void);

/* Sets a node's source mark; file must outlive the node (the loader keeps
 * one copy of the file name per tree via vmp_cfg_set_file_owner). */
void vmp_cfg_set_mark(vmp_cfg_node *n, vmp_cfg_mark mark);
void vmp_cfg_set_quoted(vmp_cfg_node *n, bool quoted);
void vmp_cfg_set_symbol(vmp_cfg_node *n, bool symbol);

/* Sets map[key] = value, taking ownership of value (freed on failure). A
 * leading ':' and, for symbol keys, a trailing one are stripped from key; an
 * existing entry with the same key is replaced in place. Returns 0 or
 * VMP_ENOMEM / VMP_EINVAL (not a map). */
int vmp_cfg_map_set(vmp_cfg_node *map, const char *key, vmp_cfg_node *value);
/* Same, also recording the key's mark and whether it was a symbol. */
int vmp_cfg_map_set_marked(vmp_cfg_node *map, const char *key, bool symbol, vmp_cfg_mark key_mark,
                           vmp_cfg_node *value);
/* Removes map[key] if present. Returns 1 if removed, 0 if absent. */
int vmp_cfg_map_remove(vmp_cfg_node *map, const char *key);
/* Appends value to a sequence, taking ownership. */
int vmp_cfg_seq_push(vmp_cfg_node *seq, vmp_cfg_node *value);

/* Mutable access for the loader and Lua config (same rules as the const
 * versions). */
vmp_cfg_node *vmp_cfg_get_mut(vmp_cfg_node *map, const char *key);
vmp_cfg_node *vmp_cfg_at_mut(vmp_cfg_node *n, size_t i);

/* Deep copy (marks kept; file names still point at the original's
 * storage). NULL on failure. */
vmp_cfg_node *vmp_cfg_clone(const vmp_cfg_node *n);

/* Deep merge of src into dst (both maps): maps merge recursively, anything
 * else in src replaces dst's value (vmpooler's extra_config merge). src is
 * not consumed. */
int vmp_cfg_merge(vmp_cfg_node *dst, const vmp_cfg_node *src);

/* Keeps a string alive as long as the tree whose root is n (used for the
 * file name shared by marks). Takes ownership of s. */
int vmp_cfg_set_file_owner(vmp_cfg_node *root, char *s);

void vmp_cfg_free(vmp_cfg_node *n);

#endif
