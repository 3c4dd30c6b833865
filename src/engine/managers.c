/*
 * managers: this manager's heartbeat in Redis, the in-flight clone counts
 * derived from all heartbeats, and the takeover of managers on this host
 * that died without a graceful stop.
 *
 * Each manager publishes its own clone counts in its heartbeat (renewed
 * with the leases, and whenever its counts change); `tasks__clone` and
 * `tasks__ondemandclone` are rewritten by every beat as the sum over the
 * managers whose heartbeat is still there. Absolute values, not deltas: a
 * count can never drift, and a dead manager's clones stop counting when
 * its heartbeat goes away.
 *
 * A heartbeat expires with the lease TTL. A manager on the same node (same
 * host, same boot, same pid namespace) need not wait that long: a peer
 * whose pid no longer exists, is a zombie, or now belongs to a process
 * started at another time (pid reuse) is dead, and is reaped at once: its
 * heartbeat, its migration entries and the leases it held on our pools are
 * removed, so its pools are taken over at the next lease round.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "engine/engine_internal.h"
#include "log.h"

#define OD_LEASE "@ondemand"

/* State letter and start time (clock ticks since boot) of pid from
 * /proc/<pid>/stat. 0, or -1 when it cannot be read. */
static int proc_stat(pid_t pid, char *state, char *start, size_t len)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name may hold spaces and parentheses: fields follow the
     * last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    int field = 2; /* p is just after field 2 (comm) */
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 3 && state)
            *state = tok[0];
        if (field == 22) {
            vmp_strlcpy(start, tok, len);
            return 0;
        }
    }
    return -1;
}

void eng_node_init(vmp_engine *e)
{
    char host[128] = "";
    char boot[64] = "";
    char ns[64] = "";
    gethostname(host, sizeof host - 1);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f))
            boot[0] = '\0';
        fclose(f);
        boot[strcspn(boot, "\r\n")] = '\0';
    }
    ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    ns[n > 0 ? n : 0] = '\0';
    e->node[0] = '\0';
    /* without a boot id and a pid namespace, pids cannot be compared
     * safely: leave the node empty and rely on the TTL alone */
    if (boot[0] && ns[0])
        snprintf(e->node, sizeof e->node, "%s/%s/%s", host, boot, ns);
    e->start_mark[0] = '\0';
    proc_stat(getpid(), NULL, e->start_mark, sizeof e->start_mark);
}

bool eng_peer_dead(const vmp_engine *e, const char *node, const char *pid_s, const char *start)
{
    long long pid = 0;
    if (!e->node[0] || !node || strcmp(node, e->node) != 0)
        return false;
    if (!pid_s || vmp_parse_long(pid_s, &pid) != 0 || pid <= 0)
        return false;
    if (kill((pid_t)pid, 0) != 0)
        return errno == ESRCH;
    char state = '?', now_start[32] = "";
    if (proc_stat((pid_t)pid, &state, now_start, sizeof now_start) != 0)
        return false; /* cannot tell: wait for the TTL */
    if (state == 'Z' || state == 'X')
        return true; /* killed, not yet reaped by its parent */
    return start && start[0] && strcmp(now_start, start) != 0;
}

/* One beat; *peers receives the other live managers. */
static int beat(vmp_engine *e, vmp_store *st, unsigned flags, vmp_strlist *peers, vmp_err *err)
{
    pthread_mutex_lock(&e->lock);
    vmp_store_manager m = {
        .owner = e->owner,
        .node = e->node,
        .pid = (long long)getpid(),
        .start = e->start_mark,
        .clones = e->clones,
        .ondemand_clones = e->od_clones,
    };
    e->mirror_delta[0] = e->mirror_delta[1] = 0;
    pthread_mutex_unlock(&e->lock);
    int rc = vmp_store_manager_beat(st, &m, e->lease_ttl_ms, flags, NULL, NULL, peers, err);
    if (rc != 0) {
        pthread_mutex_lock(&e->lock);
        e->mirror_delta[0]++; /* try again later */
        pthread_mutex_unlock(&e->lock);
    }
    return rc;
}

long long eng_managers_sync(vmp_engine *e, vmp_store *st, unsigned flags)
{
    vmp_strlist peers = VMP_STRLIST_INIT, leases = VMP_STRLIST_INIT;
    vmp_err err = {0};
    long long freed_total = 0;
    pthread_mutex_lock(&e->beat_lock);
    e->last_beat = vmp_monotonic();
    int rc = beat(e, st, flags, (flags & VMP_STORE_BEAT_FINAL) ? NULL : &peers, &err);
    if (rc != 0) {
        vmp_log(VMP_LOG_DEBUG, ENG_SUBSYS, "heartbeat: %s", err.msg);
        goto out;
    }
    bool reaped = false;
    for (size_t i = 0; i + 3 < peers.n; i += 4) {
        const char *owner = peers.v[i];
        if (!eng_peer_dead(e, peers.v[i + 1], peers.v[i + 2], peers.v[i + 3]))
            continue;
        if (!leases.n) {
            pthread_mutex_lock(&e->lock);
            for (size_t j = 0; j < e->npools; j++)
                if (e->pools[j]->configured)
                    vmp_strlist_push(&leases, e->pools[j]->name);
            pthread_mutex_unlock(&e->lock);
            vmp_strlist_push(&leases, OD_LEASE);
        }
        long long freed = 0;
        if (vmp_store_manager_reap(st, owner, (const char *const *)leases.v, leases.n, &freed,
                                   &err) != 0) {
            vmp_log(VMP_LOG_WARN, ENG_SUBSYS, "forgetting dead manager %s: %s", owner, err.msg);
            continue;
        }
        reaped = true;
        freed_total += freed;
        vmp_log(VMP_LOG_INFO, ENG_SUBSYS,
                "manager %s (pid %s on this host) is gone: its clone counts are dropped and "
                "%lld of its leases freed",
                owner, peers.v[i + 2], freed);
    }
    if (reaped)
        beat(e, st, flags, NULL, &err); /* sums without the dead */
out:
    pthread_mutex_unlock(&e->beat_lock);
    vmp_strlist_clear(&peers);
    vmp_strlist_clear(&leases);
    return freed_total;
}
