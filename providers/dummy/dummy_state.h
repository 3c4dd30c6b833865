/*
 * dummy_state: the dummy provider's in-memory inventory and its YAML form
 * (private to providers/dummy).
 *
 * The inventory mirrors vmpooler's `{"pool" => {<pool> => [vm, ...]}}`: an
 * ordered list of pools, each an ordered list of VM records. Every pool also
 * hashes its VMs by name, and the pools are hashed by name, so a lookup costs
 * O(1) whatever the number of VMs. Nothing here locks: the provider holds its
 * mutex around every call.
 *
 * The YAML form is what vmpooler's dummy provider writes with Ruby's
 * YAML.dump, so either program can read the other's backing file:
 *
 *   ---
 *   pool:
 *     debian-7:
 *     - name: poolvm-abc
 *       hostname: poolvm-abc
 *       ...
 *       boottime: 2026-11-25 12:00:00.123456789 +01:00
 *       snapshots: []
 *       disks: []
 */
#ifndef VMP_DUMMY_STATE_H
#define VMP_DUMMY_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "config_node.h"
#include "err.h"
#include "util.h"

typedef struct dummy_pool dummy_pool;

/* One VM record, with vmpooler's field names. */
typedef struct dummy_vm {
    char *name;
    char *hostname;
    char *domain;
    char *vm_template;   /* the pool's `template:` (NULL when it has none) */
    char *template_name; /* `template`: the pool name, as vmpooler's API calls it */
    char *poolname;
    bool ready;
    double boottime;   /* seconds since the epoch, 0 = unknown */
    char *powerstate;  /* "PoweredOn" / "PoweredOff" */
    char *vm_host;     /* "HOST1" ... */
    char *dummy_state; /* "UNKNOWN", "CLONING", "RUNNING" */
    vmp_strlist snapshots;
    vmp_strlist disks; /* sizes in GB, as written */

    dummy_pool *pool;
    struct dummy_vm *prev, *next; /* pool order */
    struct dummy_vm *hnext;       /* hash chain */
} dummy_vm;

struct dummy_pool {
    char *name;
    dummy_vm *head, *tail;
    size_t n;
    dummy_vm **buckets;
    size_t nbuckets;
    struct dummy_pool *next;  /* state order */
    struct dummy_pool *hnext; /* hash chain */
};

typedef struct dummy_state {
    dummy_pool *head, *tail;
    size_t n_pools;
    size_t n_vms;
    dummy_pool **buckets;
    size_t nbuckets;
} dummy_state;

void dummy_state_init(dummy_state *st);
void dummy_state_clear(dummy_state *st);
/* Moves src's contents into dst (emptied first); src ends up empty. */
void dummy_state_move(dummy_state *dst, dummy_state *src);

/* The pool called name; with create, made (at the end) when absent.
 * NULL when absent (or on allocation failure with create). */
dummy_pool *dummy_state_pool(dummy_state *st, const char *name, bool create);
/* The VM called vm in pool's list, or NULL. */
dummy_vm *dummy_state_find(const dummy_state *st, const char *pool, const char *vm);
dummy_vm *dummy_pool_find(const dummy_pool *pool, const char *vm);

/* A new record named name with every other field empty. */
dummy_vm *dummy_vm_new(const char *name);
void dummy_vm_free(dummy_vm *vm);
/* Replaces *field with a copy of value; returns 0 or VMP_ENOMEM. */
int dummy_vm_set(char **field, const char *value);
/* Appends vm (a new record) to pool's list, taking ownership; the caller
 * has checked that no VM of that name is in the pool. */
int dummy_state_append(dummy_state *st, dummy_pool *pool, dummy_vm *vm);
/* Unlinks vm from its pool and frees it. */
void dummy_state_remove(dummy_state *st, dummy_vm *vm);

/* Replaces st with the inventory described by root (the backing-file tree
 * or the `initial_state` option): a map with key `pool` mapping pool names
 * to lists of records. Liberal: keys may be written as symbols, missing
 * fields get defaults, malformed records are skipped with a warning through
 * log_subsys. origin names the source in messages. */
int dummy_state_from_tree(dummy_state *st, const vmp_cfg_node *root, const char *origin,
                          const char *log_subsys, vmp_err *err);

/* Parses YAML text into a config tree (aliases resolved, tags ignored).
 * An empty document gives a NULL-kind node. *out must be NULL. */
int dummy_yaml_parse(const char *text, size_t len, const char *name, vmp_cfg_node **out,
                     vmp_err *err);

/* Writes st as vmpooler's YAML into out. */
int dummy_state_dump(const dummy_state *st, vmp_buf *out, vmp_err *err);

/* Loads path into st. *found is false (and st untouched) when the file
 * does not exist. */
int dummy_state_load_file(dummy_state *st, const char *path, const char *log_subsys, bool *found,
                          vmp_err *err);
/* Writes st to path atomically. */
int dummy_state_save_file(const dummy_state *st, const char *path, vmp_err *err);

/* Ruby's Time as Psych writes it: "YYYY-MM-DD HH:MM:SS.NNNNNNNNN +HH:MM"
 * (local time). buf must hold at least 48 bytes. */
void dummy_format_ruby_time(double t, char *buf, size_t n);

#endif
