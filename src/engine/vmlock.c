/*
 * vmlock: the per-pool table of VM records and per-VM exclusivity.
 *
 * A record's busy flag is vmpooler's per-VM mutex: a task that holds it is
 * the only one touching the VM. Checks and destroys that find a VM busy are
 * skipped (the next pass tries again); tasks that must not be lost (disk,
 * snapshot) wait in the record's waiter list and are queued when it frees.
 * Everything here runs with e->lock held.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"

/* A deleted slot: keeps probe chains intact. */
static eng_vm tombstone_rec;
#define TOMB (&tombstone_rec)

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

eng_vm *eng_vmtab_get(eng_vmtab *t, const char *name)
{
    if (!t->cap)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
        eng_vm *r = t->slot[i];
        if (!r)
            return NULL;
        if (r != TOMB && strcmp(r->name, name) == 0)
            return r;
    }
}

static int grow(eng_vmtab *t)
{
    size_t ncap = t->cap ? t->cap : 16;
    while (ncap < (t->n + 1) * 2)
        ncap *= 2;
    eng_vm **ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        eng_vm *r = t->slot[i];
        if (!r || r == TOMB)
            continue;
        size_t j = hash_name(r->name) & (ncap - 1);
        while (ns[j])
            j = (j + 1) & (ncap - 1);
        ns[j] = r;
    }
    free(t->slot);
    t->slot = ns;
    t->cap = ncap;
    t->used = t->n;
    return 0;
}

eng_vm *eng_vmtab_add(eng_vmtab *t, const char *name)
{
    eng_vm *r = eng_vmtab_get(t, name);
    if (r)
        return r;
    if ((t->used + 1) * 4 >= t->cap * 3 && grow(t) != 0)
        return NULL;
    r = calloc(1, sizeof *r);
    if (!r || !(r->name = strdup(name))) {
        free(r);
        return NULL;
    }
    r->state = -1;
    size_t mask = t->cap - 1;
    size_t i = hash_name(name) & mask;
    while (t->slot[i] && t->slot[i] != TOMB)
        i = (i + 1) & mask;
    if (!t->slot[i])
        t->used++;
    t->slot[i] = r;
    t->n++;
    return r;
}

void eng_vmtab_del(eng_vmtab *t, eng_vm *rec)
{
    if (!t->cap || !rec)
        return;
    size_t mask = t->cap - 1;
    for (size_t i = hash_name(rec->name) & mask;; i = (i + 1) & mask) {
        eng_vm *r = t->slot[i];
        if (!r)
            return;
        if (r == rec) {
            t->slot[i] = TOMB;
            t->n--;
            free(rec->name);
            free(rec);
            return;
        }
    }
}

void eng_vmtab_each(eng_vmtab *t, void (*fn)(eng_vm *rec, void *ud), void *ud)
{
    for (size_t i = 0; i < t->cap; i++) {
        eng_vm *r = t->slot[i];
        if (r && r != TOMB)
            fn(r, ud);
    }
}

void eng_vmtab_clear(eng_vmtab *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        eng_vm *r = t->slot[i];
        if (r && r != TOMB) {
            free(r->name);
            free(r);
        }
    }
    free(t->slot);
    memset(t, 0, sizeof *t);
}

bool eng_vm_trylock(eng_vm *rec)
{
    if (!rec || rec->busy)
        return false;
    rec->busy = true;
    return true;
}

void eng_vm_unlock(vmp_engine *e, eng_pool *pool, eng_vm *rec)
{
    if (!rec)
        return;
    eng_task *w = rec->waiters;
    if (w && !e->stopping) {
        /* hand the VM straight to the next waiter: it stays busy */
        rec->waiters = w->next;
        w->next = NULL;
        eng_task_push(e, w);
        return;
    }
    rec->busy = false;
}

void eng_vm_run_when_free(vmp_engine *e, eng_vm *rec, eng_task *t)
{
    if (!rec->busy) {
        rec->busy = true;
        eng_task_push(e, t);
        return;
    }
    eng_task **pp = &rec->waiters;
    while (*pp)
        pp = &(*pp)->next;
    t->next = NULL;
    *pp = t;
}
