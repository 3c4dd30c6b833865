/*
 * store_engine.c: what the lifecycle engine needs beyond the lifecycle
 * moves: manager heartbeats with their in-flight clone counts (from which
 * `tasks__clone` and `tasks__ondemandclone` are rewritten as the sum of the
 * live managers' counts), taking over what a dead manager held, and the
 * global migration set with the owner of each entry.
 *
 * Keys (vmpool extensions):
 *   <prefix>__managers            set of manager owner ids that beat
 *   <prefix>__manager__<owner>    hash node, pid, start, clone,
 *                                 ondemandclone; expires unless renewed
 *   <prefix>__migration__owner    hash vm -> owner of each entry of
 *                                 `<prefix>__migration`
 *
 * The scripts here have their own SHA cache (the SHA of a script is the
 * same on every server), loaded on first use and reloaded on NOSCRIPT.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define PRE                                                                                        \
    "local P = ARGV[1]\n"                                                                          \
    "local function k(kind, name) return P .. '__' .. kind .. '__' .. name end\n"

/* Drops the migration entries whose owner no longer beats. */
#define MIG_PRUNE                                                                                  \
    "local function mig_prune(only)\n"                                                             \
    "  local mig, mo = P .. '__migration', P .. '__migration__owner'\n"                            \
    "  local owners = redis.call('HGETALL', mo)\n"                                                 \
    "  for i = 1, #owners, 2 do\n"                                                                 \
    "    local ow = owners[i + 1]\n"                                                               \
    "    if (only and ow == only) or\n"                                                            \
    "       (not only and redis.call('EXISTS', k('manager', ow)) == 0) then\n"                     \
    "      redis.call('HDEL', mo, owners[i])\n"                                                    \
    "      redis.call('SREM', mig, owners[i])\n"                                                   \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "end\n"

enum { SE_BEAT = 0, SE_REAP, SE_MIG_CLAIM, SE_MIG_RELEASE, SE_COUNT };

typedef struct se_script {
    const char *name;
    const char *src;
} se_script;

/* clang-format off */
static const se_script se_scripts[SE_COUNT] = {
    [SE_BEAT] = {
        "manager_beat",
        /* owner, ttl_ms, node, pid, start, clone, ondemandclone, final, reset_legacy
         * -> {clone total, ondemandclone total, (owner, node, pid, start) per other manager} */
        PRE MIG_PRUNE
        "local owner = ARGV[2]\n"
        "local reg = P .. '__managers'\n"
        "local me = k('manager', owner)\n"
        "if ARGV[9] == '1' then\n"
        "  redis.call('DEL', me)\n"
        "  redis.call('SREM', reg, owner)\n"
        "else\n"
        "  redis.call('HSET', me, 'node', ARGV[4], 'pid', ARGV[5], 'start', ARGV[6],\n"
        "             'clone', ARGV[7], 'ondemandclone', ARGV[8])\n"
        "  redis.call('PEXPIRE', me, ARGV[3])\n"
        "  redis.call('SADD', reg, owner)\n"
        "end\n"
        "local c, o, out = 0, 0, {'', ''}\n"
        "for _, m in ipairs(redis.call('SMEMBERS', reg)) do\n"
        "  local v = redis.call('HMGET', k('manager', m), 'clone', 'ondemandclone', 'node',\n"
        "                       'pid', 'start')\n"
        "  if not v[3] then\n"
        "    redis.call('SREM', reg, m)\n"
        "  else\n"
        "    c = c + (tonumber(v[1]) or 0)\n"
        "    o = o + (tonumber(v[2]) or 0)\n"
        "    if m ~= owner then\n"
        "      out[#out + 1] = m\n"
        "      out[#out + 1] = v[3]\n"
        "      out[#out + 1] = v[4] or ''\n"
        "      out[#out + 1] = v[5] or ''\n"
        "    end\n"
        "  end\n"
        "end\n"
        "redis.call('SET', k('tasks', 'clone'), string.format('%d', c))\n"
        "redis.call('SET', k('tasks', 'ondemandclone'), string.format('%d', o))\n"
        "mig_prune(nil)\n"
        "if ARGV[10] == '1' and #out == 2 then\n"
        "  local mig, mo = P .. '__migration', P .. '__migration__owner'\n"
        "  for _, vm in ipairs(redis.call('SMEMBERS', mig)) do\n"
        "    if redis.call('HEXISTS', mo, vm) == 0 then redis.call('SREM', mig, vm) end\n"
        "  end\n"
        "end\n"
        "out[1] = string.format('%d', c)\n"
        "out[2] = string.format('%d', o)\n"
        "return out\n"},
    [SE_REAP] = {
        "manager_reap",
        /* owner, lease names... -> leases freed */
        PRE MIG_PRUNE
        "local dead = ARGV[2]\n"
        "redis.call('DEL', k('manager', dead))\n"
        "redis.call('SREM', P .. '__managers', dead)\n"
        "local n = 0\n"
        "for i = 3, #ARGV do\n"
        "  local lk = k('lease', ARGV[i])\n"
        "  if redis.call('GET', lk) == dead then\n"
        "    redis.call('DEL', lk)\n"
        "    n = n + 1\n"
        "  end\n"
        "end\n"
        "mig_prune(dead)\n"
        "return n\n"},
    [SE_MIG_CLAIM] = {
        "migration_claim",
        /* vm, owner, limit -> 1 taken, 0 limit reached */
        PRE
        "local mig = P .. '__migration'\n"
        "if redis.call('SISMEMBER', mig, ARGV[2]) == 0 and\n"
        "   redis.call('SCARD', mig) >= tonumber(ARGV[4]) then return 0 end\n"
        "redis.call('SADD', mig, ARGV[2])\n"
        "redis.call('HSET', P .. '__migration__owner', ARGV[2], ARGV[3])\n"
        "return 1\n"},
    [SE_MIG_RELEASE] = {
        "migration_release",
        /* vm */
        PRE
        "redis.call('SREM', P .. '__migration', ARGV[2])\n"
        "redis.call('HDEL', P .. '__migration__owner', ARGV[2])\n"
        "return 1\n"},
};
/* clang-format on */

static pthread_mutex_t se_lock = PTHREAD_MUTEX_INITIALIZER;
static char se_sha[SE_COUNT][41];

/* EVALSHA of script id (loading it first when its SHA is not known yet),
 * EVAL on NOSCRIPT. */
static int se_eval(vmp_store *s, int id, const st_args *args, redisReply **out, vmp_err *err)
{
    char sha[41];
    pthread_mutex_lock(&se_lock);
    memcpy(sha, se_sha[id], sizeof sha);
    pthread_mutex_unlock(&se_lock);
    int rc;
    if (!sha[0]) {
        st_args a = {0};
        st_args_add(&a, "SCRIPT");
        st_args_add(&a, "LOAD");
        st_args_add(&a, se_scripts[id].src);
        char *got = NULL;
        rc = st_run_str(s, true, &a, &got, err);
        st_args_free(&a);
        if (rc < 0)
            return rc;
        if (!got || strlen(got) != 40) {
            free(got);
            return vmp_err_set(err, VMP_EREDIS, "redis %s: loading script %s failed", s->addr,
                               se_scripts[id].name);
        }
        memcpy(sha, got, 41);
        free(got);
        pthread_mutex_lock(&se_lock);
        memcpy(se_sha[id], sha, sizeof sha);
        pthread_mutex_unlock(&se_lock);
    }
    redisReply *r = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = st_eval_send(s, attempt == 0 ? "EVALSHA" : "EVAL",
                          attempt == 0 ? sha : se_scripts[id].src, args, &r, err);
        if (rc < 0)
            return rc;
        if (r)
            break;
    }
    return st_eval_reply(s, se_scripts[id].name, r, out, err);
}

static int se_eval_int(vmp_store *s, int id, const st_args *args, long long *out, vmp_err *err)
{
    redisReply *r = NULL;
    int rc = se_eval(s, id, args, &r, err);
    if (rc < 0)
        return rc;
    return st_take_int(s, r, out, err);
}

int vmp_store_manager_beat(vmp_store *s, const vmp_store_manager *m, long long ttl_ms,
                           unsigned flags, long long *clones_total, long long *od_total,
                           vmp_strlist *peers, vmp_err *err)
{
    if (!s || !m || !m->owner || !m->owner[0] || ttl_ms <= 0)
        return vmp_err_set(err, VMP_EINVAL, "vmp_store_manager_beat: bad arguments");
    st_args a = {0};
    st_args_add(&a, m->owner);
    st_args_addf(&a, "%lld", ttl_ms);
    st_args_add(&a, m->node ? m->node : "");
    st_args_addf(&a, "%lld", m->pid);
    st_args_add(&a, m->start ? m->start : "");
    st_args_addf(&a, "%lld", m->clones > 0 ? m->clones : 0);
    st_args_addf(&a, "%lld", m->ondemand_clones > 0 ? m->ondemand_clones : 0);
    st_args_add(&a, (flags & VMP_STORE_BEAT_FINAL) ? "1" : "0");
    st_args_add(&a, (flags & VMP_STORE_BEAT_RESET_LEGACY) ? "1" : "0");
    redisReply *r = NULL;
    int rc = se_eval(s, SE_BEAT, &a, &r, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    vmp_strlist l = VMP_STRLIST_INIT;
    rc = st_reply_list(s, r, &l, err);
    freeReplyObject(r);
    if (rc == 0 && (l.n < 2 || (l.n - 2) % 4 != 0))
        rc = st_bad_reply(s, "manager_beat", err);
    if (rc == 0) {
        long long c = 0, o = 0;
        vmp_parse_long(l.v[0], &c);
        vmp_parse_long(l.v[1], &o);
        if (clones_total)
            *clones_total = c;
        if (od_total)
            *od_total = o;
        for (size_t i = 2; peers && i < l.n; i++)
            vmp_strlist_push(peers, l.v[i]);
    }
    vmp_strlist_clear(&l);
    return rc;
}

int vmp_store_manager_reap(vmp_store *s, const char *owner, const char *const *leases,
                           size_t nleases, long long *freed, vmp_err *err)
{
    if (!s || !owner || !owner[0])
        return vmp_err_set(err, VMP_EINVAL, "vmp_store_manager_reap: bad arguments");
    st_args a = {0};
    st_args_add(&a, owner);
    for (size_t i = 0; i < nleases; i++)
        st_args_add(&a, leases[i]);
    int rc = se_eval_int(s, SE_REAP, &a, freed, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_migration_claim(vmp_store *s, const char *vm, const char *owner, long long limit,
                              bool *taken, vmp_err *err)
{
    if (!s || !vm || !owner || !taken)
        return vmp_err_set(err, VMP_EINVAL, "vmp_store_migration_claim: bad arguments");
    st_args a = {0};
    st_args_add(&a, vm);
    st_args_add(&a, owner);
    st_args_addf(&a, "%lld", limit);
    long long v = 0;
    int rc = se_eval_int(s, SE_MIG_CLAIM, &a, &v, err);
    st_args_free(&a);
    if (rc == 0)
        *taken = v == 1;
    return rc;
}

int vmp_store_migration_release(vmp_store *s, const char *vm, vmp_err *err)
{
    if (!s || !vm)
        return vmp_err_set(err, VMP_EINVAL, "vmp_store_migration_release: bad arguments");
    st_args a = {0};
    st_args_add(&a, vm);
    int rc = se_eval_int(s, SE_MIG_RELEASE, &a, NULL, err);
    st_args_free(&a);
    return rc;
}

/* ---- a clone's bookkeeping in one round trip ---------------------------------- */

static void add_evalsha(st_args *a, const vmp_store *s, st_script id)
{
    st_args_add(a, "EVALSHA");
    st_args_add(a, s->sha[id]);
    st_args_add(a, "0");
    st_args_add(a, s->prefix);
}

/* The pending_ready reply: 0, VMP_ESTATE, or a bad-reply error. */
static int parse_ready(vmp_store *s, vmp_store_clone_step *c, const redisReply *r, vmp_err *err)
{
    long long code = 0;
    int rc = st_reply_code(s, r, "pending_ready", &code, err);
    if (rc < 0)
        return rc;
    if (code < 0)
        return vmp_err_set(err, VMP_ESTATE, "pool %s: vm %s: not pending", c->pool, c->vm);
    if (r->elements < 2 || r->element[1]->type != REDIS_REPLY_STRING)
        return st_bad_reply(s, "pending_ready", err);
    c->outcome = code == 1 ? VMP_READY_ONDEMAND : code == 2 ? VMP_READY_ABANDONED : VMP_READY_POOL;
    double b = -1;
    if (vmp_parse_double(r->element[1]->str, &b) < 0)
        b = -1;
    c->boot = b;
    return 0;
}

/* An integer script reply: its value, or an error (VMP_EREDIS). */
static int reply_code(vmp_store *s, const char *what, const redisReply *r, long long *v,
                      vmp_err *err)
{
    if (r->type == REDIS_REPLY_ERROR)
        return vmp_err_set(err, VMP_EREDIS, "redis %s: script %s: %s", s->addr, what, r->str);
    return st_reply_int(s, r, v, err);
}

static void err_copy(vmp_err *dst, const vmp_err *src)
{
    if (dst)
        *dst = *src;
}

static bool noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

int vmp_store_clone_step_run(vmp_store *s, vmp_store_clone_step *c, vmp_err *err)
{
    if (!s || !c || !c->pool || !c->vm)
        return vmp_err_set(err, VMP_EINVAL, "vmp_store_clone_step_run: bad arguments");
    c->done_rc = c->ready_rc = 0;
    c->outcome = VMP_READY_POOL;
    c->boot = -1;
    st_sigpipe g;
    st_sigpipe_enter(&g);
    int rc = st_ensure(s, err); /* loads the scripts: their SHAs are known after */
    st_sigpipe_leave(&g);
    if (rc < 0)
        return rc;

    st_args cmds[2];
    memset(cmds, 0, sizeof cmds);
    size_t n = 0;
    char date[16], secs[32], ts[VMP_TIME_STR_MAX];
    st_date(c->now, date);
    st_time(c->now, ts);
    vmp_duration_format(c->seconds, secs, sizeof secs);
    /* clone done */
    add_evalsha(&cmds[n], s, SCR_CLONE_DONE);
    st_args_add(&cmds[n], c->pool);
    st_args_add(&cmds[n], c->vm);
    st_args_add(&cmds[n], date);
    st_args_add(&cmds[n], secs);
    st_args_add(&cmds[n], c->ip);
    n++;
    int i_ready = -1;
    if (c->ready) {
        i_ready = (int)n;
        add_evalsha(&cmds[n], s, SCR_PENDING_READY);
        st_args_add(&cmds[n], c->pool);
        st_args_add(&cmds[n], c->vm);
        st_args_add(&cmds[n], ts);
        st_args_addf(&cmds[n], "%.6f", c->now);
        st_args_add(&cmds[n], date);
        st_args_addf(&cmds[n], "%lld", c->lifetime_auth);
        n++;
    }
    redisReply *rep[2] = {NULL, NULL};
    rc = st_pipeline(s, false, cmds, n, rep, err);
    for (size_t i = 0; i < n; i++)
        st_args_free(&cmds[i]);
    if (rc < 0)
        return rc;

    /* each step on its own: a server that lost its script cache runs it
     * again through the ordinary call (which loads it) */
    long long v = 0;
    vmp_err e1 = {0};
    if (noscript(rep[0]))
        c->done_rc = vmp_store_clone_done(s, c->pool, c->vm, c->seconds, c->ip, c->now, &e1);
    else if ((c->done_rc = reply_code(s, "clone_done", rep[0], &v, &e1)) == 0 && v == 0)
        c->done_rc = vmp_err_set(&e1, VMP_ESTATE, "pool %s: vm %s: no VM hash", c->pool, c->vm);
    if (c->done_rc)
        err_copy(err, &e1);
    if (i_ready >= 0) {
        vmp_err e2 = {0};
        if (noscript(rep[i_ready]))
            c->ready_rc = vmp_store_pending_ready(s, c->pool, c->vm, c->lifetime_auth, c->now,
                                                  &c->outcome, &c->boot, &e2);
        else if (rep[i_ready]->type == REDIS_REPLY_ERROR)
            c->ready_rc = vmp_err_set(&e2, VMP_EREDIS, "redis %s: script pending_ready: %s",
                                      s->addr, rep[i_ready]->str);
        else
            c->ready_rc = parse_ready(s, c, rep[i_ready], &e2);
        if (c->ready_rc && !c->done_rc)
            err_copy(err, &e2);
    }
    for (size_t i = 0; i < n; i++)
        if (rep[i])
            freeReplyObject(rep[i]);
    return 0;
}
