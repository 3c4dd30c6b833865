/*
 * Tests for src/store/: against a private redis-server on a unix socket.
 * Every move is checked by reading Redis with raw hiredis: exact keys,
 * fields and value formats; a move whose precondition fails must leave a
 * dump of the whole database unchanged.
 *
 * Time: TZ is fixed to UTC-7 and "now" is 2023-11-15 01:13:20 UTC, which is
 * 2023-11-14 18:13:20 local, so vmpooler's local-time formats and local
 * dates are checked against literal strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "redis_server.h"
#include "store/store.h"
#include "util.h"

#define NOW 1700010800.0
#define NOW_STR "2023-11-14 18:13:20 -0700"
#define TODAY "2023-11-14"
#define DATA_TTL_SECS (168 * 3600)

static vmp_test_redis *srv;
static redisContext *raw;
static vmp_store *st;
static char skip_msg[256];

/* ---- raw inspection helpers ---- */

static void raw_connect(void)
{
    if (raw)
        redisFree(raw);
    struct timeval tv = {5, 0};
    raw = redisConnectUnixWithTimeout(vmp_test_redis_socket(srv), tv);
    assert_non_null(raw);
    assert_int_equal(raw->err, 0);
}

static redisReply *R(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(raw, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static void Rdo(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(raw, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis error: %s", r->str);
    freeReplyObject(r);
}

/* HGET as a static string ("<nil>" when absent). */
static const char *hget(const char *key, const char *field)
{
    static char buf[512];
    redisReply *r = R("HGET %s %s", key, field);
    if (r->type == REDIS_REPLY_NIL)
        snprintf(buf, sizeof buf, "<nil>");
    else
        snprintf(buf, sizeof buf, "%s", r->str);
    freeReplyObject(r);
    return buf;
}

static long long rint_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(raw, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -999;
    if (r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

static bool ismember(const char *key, const char *m)
{
    return rint_("SISMEMBER %s %s", key, m) == 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted elements of an array reply, joined with ",". */
static void join_sorted(redisReply *r, vmp_buf *b, bool pairs)
{
    size_t n = r->elements;
    char **v = calloc(n + 1, sizeof *v);
    size_t m = 0;
    for (size_t i = 0; i < n; i += pairs ? 2 : 1) {
        if (pairs)
            v[m++] = vmp_asprintf("%s=%s", r->element[i]->str, r->element[i + 1]->str);
        else
            v[m++] = vmp_strdup(r->element[i]->str);
    }
    qsort(v, m, sizeof *v, cmp_str);
    for (size_t i = 0; i < m; i++) {
        vmp_buf_printf(b, "%s%s", i ? "," : "", v[i]);
        free(v[i]);
    }
    free(v);
}

/* Every key with its type, content and whether it has a TTL. */
static char *dump(void)
{
    redisReply *keys = R("KEYS *");
    vmp_buf b = VMP_BUF_INIT;
    char **names = calloc(keys->elements + 1, sizeof *names);
    for (size_t i = 0; i < keys->elements; i++)
        names[i] = keys->element[i]->str;
    qsort(names, keys->elements, sizeof *names, cmp_str);
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = names[i];
        redisReply *t = R("TYPE %s", k);
        vmp_buf_printf(&b, "%s [%s%s] ", k, t->str, rint_("TTL %s", k) >= 0 ? " ttl" : "");
        redisReply *c = NULL;
        if (strcmp(t->str, "string") == 0) {
            c = R("GET %s", k);
            vmp_buf_puts(&b, c->str);
        } else if (strcmp(t->str, "hash") == 0) {
            c = R("HGETALL %s", k);
            join_sorted(c, &b, true);
        } else if (strcmp(t->str, "set") == 0) {
            c = R("SMEMBERS %s", k);
            join_sorted(c, &b, false);
        } else if (strcmp(t->str, "zset") == 0) {
            c = R("ZRANGE %s 0 -1 WITHSCORES", k);
            join_sorted(c, &b, true);
        }
        if (c)
            freeReplyObject(c);
        freeReplyObject(t);
        vmp_buf_puts(&b, "\n");
    }
    free(names);
    freeReplyObject(keys);
    vmp_buf_puts(&b, "");
    return vmp_buf_take(&b);
}

#define ASSERT_UNCHANGED(before)                                                                   \
    do {                                                                                           \
        char *after_ = dump();                                                                     \
        assert_string_equal(before, after_);                                                       \
        free(after_);                                                                              \
    } while (0)

static vmp_store_opts sock_opts(void)
{
    vmp_store_opts o = {0};
    o.socket = vmp_test_redis_socket(srv);
    o.reconnect_attempts = 3;
    o.reconnect_delay = 0.01;
    o.reconnect_delay_max = 0.05;
    o.timeout = 5;
    return o;
}

/* ---- fixtures ---- */

static int group_setup(void **state)
{
    (void)state;
    setenv("TZ", "UTC+7", 1);
    tzset();
    /* SIGPIPE is left at its default: the store must guard itself. */
    srv = vmp_test_redis_start(false, skip_msg, sizeof skip_msg);
    if (!srv)
        return 0;
    raw_connect();
    vmp_store_opts o = sock_opts();
    vmp_err err = {0};
    if (vmp_store_open(&o, &st, &err) < 0) {
        snprintf(skip_msg, sizeof skip_msg, "open: %s", err.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    vmp_store_free(st);
    if (raw)
        redisFree(raw);
    vmp_test_redis_stop(srv);
    return 0;
}

static int flush(void **state)
{
    (void)state;
    if (!srv)
        return 0;
    if (!raw || raw->err)
        raw_connect();
    Rdo("FLUSHALL");
    return 0;
}

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        if (!srv) {                                                                                \
            print_message("redis-server unavailable: %s\n", skip_msg);                             \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* A VM recorded as pending at NOW. */
static void mk_pending(const char *pool, const char *vm)
{
    vmp_err err = {0};
    assert_int_equal(vmp_store_clone_start(st, pool, vm, NULL, NULL, NULL, NOW, &err), 0);
}

/* ---- tests ---- */

static void test_formats(void **state)
{
    (void)state;
    NEED_REDIS();
    char buf[VMP_TIME_STR_MAX];
    vmp_time_format(NOW, buf, sizeof buf);
    assert_string_equal(buf, NOW_STR);
    assert_string_equal(vmp_vm_state_name(VMP_VM_MIGRATING), "migrating");
    vmp_vm_state s;
    assert_int_equal(vmp_vm_state_parse("completed", &s), 0);
    assert_int_equal(s, VMP_VM_COMPLETED);
    assert_int_equal(vmp_vm_state_parse("gone", &s), -1);
    assert_string_equal(vmp_store_prefix(st), "vmpooler");
    assert_int_equal(vmp_store_data_ttl(st), 168);
}

static void test_clone_start(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    assert_int_equal(
        vmp_store_clone_start(st, "debian-7", "vm1", "example.com", NULL, NULL, NOW, &err), 0);
    assert_true(ismember("vmpooler__pending__debian-7", "vm1"));
    assert_string_equal(hget("vmpooler__vm__vm1", "clone"), NOW_STR);
    assert_string_equal(hget("vmpooler__vm__vm1", "template"), "debian-7");
    assert_string_equal(hget("vmpooler__vm__vm1", "pool"), "debian-7");
    assert_string_equal(hget("vmpooler__vm__vm1", "domain"), "example.com");
    assert_string_equal(hget("vmpooler__vm__vm1", "request_id"), "<nil>");
    assert_int_equal(rint_("HLEN vmpooler__vm__vm1"), 4);
    assert_int_equal(rint_("TTL vmpooler__vm__vm1"), -1);

    assert_int_equal(vmp_store_clone_start(st, "debian-7", "vm2", NULL, "req-1", "deb", NOW, &err),
                     0);
    assert_string_equal(hget("vmpooler__vm__vm2", "request_id"), "req-1");
    assert_string_equal(hget("vmpooler__vm__vm2", "pool_alias"), "deb");
    assert_string_equal(hget("vmpooler__vm__vm2", "domain"), "<nil>");

    /* The name is taken: nothing changes. */
    char *before = dump();
    assert_int_equal(vmp_store_clone_start(st, "other", "vm1", NULL, NULL, NULL, NOW + 5, &err),
                     VMP_EEXIST);
    assert_non_null(strstr(err.msg, "vm1"));
    ASSERT_UNCHANGED(before);
    free(before);
}

static void test_clone_done_failed(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    mk_pending("p", "vm1");
    assert_int_equal(vmp_store_clone_done(st, "p", "vm1", 12.5, "10.0.0.7", NOW + 13, &err), 0);
    assert_string_equal(hget("vmpooler__clone__" TODAY, "p:vm1"), "12.50");
    assert_string_equal(hget("vmpooler__vm__vm1", "clone_time"), "12.50");
    assert_string_equal(hget("vmpooler__vm__vm1", "ip"), "10.0.0.7");
    assert_true(ismember("vmpooler__pending__p", "vm1"));

    mk_pending("p", "vm2");
    assert_int_equal(
        vmp_store_clone_failed(st, "p", "vm2", "template not found", "RuntimeError", &err), 0);
    assert_false(ismember("vmpooler__pending__p", "vm2"));
    assert_string_equal(hget("vmpooler__vm__vm2", "clone_error"), "template not found");
    assert_string_equal(hget("vmpooler__vm__vm2", "clone_error_class"), "RuntimeError");
    long long ttl = rint_("TTL vmpooler__vm__vm2");
    assert_true(ttl > DATA_TTL_SECS - 5 && ttl <= DATA_TTL_SECS);

    /* Unknown VM: nothing changes, distinct code. */
    char *before = dump();
    assert_int_equal(vmp_store_clone_done(st, "p", "ghost", 1, NULL, NOW, &err), VMP_ESTATE);
    assert_int_equal(vmp_store_clone_failed(st, "p", "ghost", "x", "y", &err), VMP_ESTATE);
    ASSERT_UNCHANGED(before);
    free(before);
}

static void test_pending_ready(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    mk_pending("p", "vm1");
    vmp_ready_outcome oc = 99;
    double boot = 0;
    assert_int_equal(vmp_store_pending_ready(st, "p", "vm1", 0, NOW + 90.25, &oc, &boot, &err), 0);
    assert_int_equal(oc, VMP_READY_POOL);
    assert_true(boot > 90.2 && boot < 90.3);
    assert_false(ismember("vmpooler__pending__p", "vm1"));
    assert_true(ismember("vmpooler__ready__p", "vm1"));
    assert_string_equal(hget("vmpooler__boot__" TODAY, "p:vm1"), "90.25");
    assert_string_equal(hget("vmpooler__vm__vm1", "ready"), "2023-11-14 18:14:50 -0700");
    assert_string_equal(hget("vmpooler__lastboot", "p"), "2023-11-14 18:14:50 -0700");

    /* Clone times written by other tools: another zone, ISO-8601, epoch. */
    const char *clones[] = {"2023-11-15 06:43:20 +0530", "2023-11-15T01:13:20Z", "1700010800"};
    for (size_t i = 0; i < 3; i++) {
        char vm[16];
        snprintf(vm, sizeof vm, "x%zu", i);
        mk_pending("p", vm);
        char key[64];
        snprintf(key, sizeof key, "vmpooler__vm__%s", vm);
        Rdo("HSET %s clone %s", key, clones[i]);
        assert_int_equal(vmp_store_pending_ready(st, "p", vm, 0, NOW + 7, NULL, &boot, &err), 0);
        snprintf(key, sizeof key, "p:%s", vm);
        assert_string_equal(hget("vmpooler__boot__" TODAY, key), "7.00");
    }
    /* No clone time: moved, no boot entry. */
    mk_pending("p", "noclone");
    Rdo("HDEL vmpooler__vm__noclone clone");
    assert_int_equal(vmp_store_pending_ready(st, "p", "noclone", 0, NOW, NULL, &boot, &err), 0);
    assert_true(boot < 0);
    assert_string_equal(hget("vmpooler__boot__" TODAY, "p:noclone"), "<nil>");
    assert_true(ismember("vmpooler__ready__p", "noclone"));

    char *before = dump();
    assert_int_equal(vmp_store_pending_ready(st, "p", "vm1", 0, NOW, NULL, NULL, &err), VMP_ESTATE);
    assert_int_equal(vmp_store_pending_ready(st, "p", "ghost", 0, NOW, NULL, NULL, &err),
                     VMP_ESTATE);
    ASSERT_UNCHANGED(before);
    free(before);
}

static void test_pending_ready_ondemand(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    assert_int_equal(
        vmp_store_od_request_create(st, "r1", "deb:debian-7:1", "tok", "alice", NOW, &err), 0);
    assert_int_equal(vmp_store_clone_start(st, "debian-7", "od1", NULL, "r1", "deb", NOW, &err), 0);
    vmp_ready_outcome oc = 99;
    assert_int_equal(vmp_store_pending_ready(st, "debian-7", "od1", 12, NOW + 60, &oc, NULL, &err),
                     0);
    assert_int_equal(oc, VMP_READY_ONDEMAND);
    assert_true(ismember("vmpooler__running__debian-7", "od1"));
    assert_false(ismember("vmpooler__pending__debian-7", "od1"));
    assert_false(ismember("vmpooler__ready__debian-7", "od1"));
    assert_string_equal(hget("vmpooler__active__debian-7", "od1"), "2023-11-14 18:14:20 -0700");
    assert_string_equal(hget("vmpooler__vm__od1", "checkout"), "2023-11-14 18:14:20 -0700");
    assert_string_equal(hget("vmpooler__vm__od1", "token:token"), "tok");
    assert_string_equal(hget("vmpooler__vm__od1", "token:user"), "alice");
    assert_string_equal(hget("vmpooler__vm__od1", "lifetime"), "12");
    assert_true(ismember("vmpooler__r1__deb__debian-7", "od1"));
    assert_string_equal(hget("vmpooler__boot__" TODAY, "debian-7:od1"), "60.00");

    /* The request was given up: the VM goes to completed, no boot entry. */
    assert_int_equal(vmp_store_clone_start(st, "debian-7", "od2", NULL, "r1", "deb", NOW, &err), 0);
    assert_int_equal(vmp_store_od_request_fail(st, "r1", "timed out", &err), 0);
    assert_int_equal(vmp_store_pending_ready(st, "debian-7", "od2", 12, NOW + 60, &oc, NULL, &err),
                     0);
    assert_int_equal(oc, VMP_READY_ABANDONED);
    assert_true(ismember("vmpooler__completed__debian-7", "od2"));
    assert_false(ismember("vmpooler__r1__deb__debian-7", "od2"));
    assert_string_equal(hget("vmpooler__boot__" TODAY, "debian-7:od2"), "<nil>");
}

static void test_moves(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    mk_pending("p", "vm1");
    assert_int_equal(vmp_store_move(st, "p", "vm1", VMP_VM_PENDING, VMP_VM_COMPLETED, &err), 0);
    assert_true(ismember("vmpooler__completed__p", "vm1"));
    assert_false(ismember("vmpooler__pending__p", "vm1"));
    Rdo("SADD vmpooler__ready__p vm2");
    assert_int_equal(vmp_store_move(st, "p", "vm2", VMP_VM_READY, VMP_VM_COMPLETED, &err), 0);
    Rdo("SADD vmpooler__running__p vm3");
    assert_int_equal(vmp_store_move(st, "p", "vm3", VMP_VM_RUNNING, VMP_VM_COMPLETED, &err), 0);
    assert_int_equal(rint_("SCARD vmpooler__completed__p"), 3);

    char *before = dump();
    assert_int_equal(vmp_store_move(st, "p", "vm3", VMP_VM_RUNNING, VMP_VM_COMPLETED, &err),
                     VMP_ESTATE);
    assert_non_null(strstr(err.msg, "not running"));
    assert_int_equal(vmp_store_move(st, "p", "vm1", VMP_VM_READY, VMP_VM_READY, &err), VMP_EINVAL);
    assert_int_equal(vmp_store_remove(st, "p", "ghost", VMP_VM_PENDING, &err), VMP_ESTATE);
    ASSERT_UNCHANGED(before);
    free(before);

    Rdo("SADD vmpooler__migrating__p vm3");
    assert_int_equal(vmp_store_remove(st, "p", "vm3", VMP_VM_MIGRATING, &err), 0);
    assert_false(ismember("vmpooler__migrating__p", "vm3"));

    assert_int_equal(vmp_store_vm_mark_checked(st, "vm1", NOW, &err), 0);
    assert_string_equal(hget("vmpooler__vm__vm1", "check"), NOW_STR);
}

static void test_reads(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    Rdo("SADD vmpooler__pending__p a b");
    Rdo("SADD vmpooler__ready__p c");
    Rdo("SADD vmpooler__running__p d e f");
    Rdo("SADD vmpooler__completed__p g");
    Rdo("SADD vmpooler__discovered__p h");
    Rdo("SADD vmpooler__migrating__p d");
    Rdo("SADD vmpooler__ready__q z");
    vmp_store_pool_sets sets = {0};
    assert_int_equal(vmp_store_pool_sets_get(st, "p", &sets, &err), 0);
    size_t want[] = {2, 1, 3, 1, 1, 1};
    for (int i = 0; i < VMP_VM_NSTATES; i++)
        assert_int_equal(sets.set[i].n, want[i]);
    assert_true(vmp_strlist_contains(&sets.set[VMP_VM_RUNNING], "e"));
    assert_string_equal(sets.set[VMP_VM_DISCOVERED].v[0], "h");
    vmp_store_pool_sets_clear(&sets);

    vmp_store_pool_counts c[2];
    const char *pools[] = {"p", "q"};
    assert_int_equal(vmp_store_pools_counts_get(st, pools, 2, c, &err), 0);
    for (int i = 0; i < VMP_VM_NSTATES; i++)
        assert_int_equal(c[0].n[i], (long long)want[i]);
    assert_int_equal(c[1].n[VMP_VM_READY], 1);
    assert_int_equal(c[1].n[VMP_VM_PENDING], 0);

    bool m = false;
    assert_int_equal(vmp_store_is_member(st, "p", VMP_VM_RUNNING, "f", &m, &err), 0);
    assert_true(m);
    vmp_strlist l = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_set_members(st, "p", VMP_VM_PENDING, &l, &err), 0);
    vmp_strlist_sort(&l);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[1], "b");
    vmp_strlist_clear(&l);

    Rdo("HSET vmpooler__vm__d clone %s template p", NOW_STR);
    Rdo("HSET vmpooler__active__p d %s", NOW_STR);
    char *s = NULL;
    assert_int_equal(vmp_store_vm_get(st, "d", "template", &s, &err), 0);
    assert_string_equal(s, "p");
    free(s);
    s = NULL;
    assert_int_equal(vmp_store_vm_get(st, "d", "nope", &s, &err), 0);
    assert_null(s);
    assert_int_equal(vmp_store_vm_getall(st, "d", &l, &err), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(vmp_store_kv_get(&l, "clone"), NOW_STR);
    assert_null(vmp_store_kv_get(&l, "zzz"));
    vmp_strlist_clear(&l);
    double t = 0;
    bool found = false;
    assert_int_equal(vmp_store_vm_get_time(st, "d", "clone", &t, &found, &err), 0);
    assert_true(found);
    assert_true(t == NOW);
    assert_int_equal(vmp_store_active_get_time(st, "p", "d", &t, &found, &err), 0);
    assert_true(found && t == NOW);
    assert_int_equal(vmp_store_active_get_time(st, "p", "e", &t, &found, &err), 0);
    assert_false(found);
    bool ex = true;
    assert_int_equal(vmp_store_vm_exists(st, "nobody", &ex, &err), 0);
    assert_false(ex);
    assert_int_equal(vmp_store_vm_set(st, "d", "user_tagged", "true", &err), 0);
    assert_string_equal(hget("vmpooler__vm__d", "user_tagged"), "true");
    assert_int_equal(vmp_store_vm_del_field(st, "d", "user_tagged", &err), 0);
    assert_string_equal(hget("vmpooler__vm__d", "user_tagged"), "<nil>");
}

static void test_discover(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    assert_int_equal(vmp_store_discover(st, "p", "new1", &err), 0);
    assert_true(ismember("vmpooler__discovered__p", "new1"));
    Rdo("SADD vmpooler__migrating__p known");
    char *before = dump();
    assert_int_equal(vmp_store_discover(st, "p", "known", &err), VMP_ESTATE);
    assert_int_equal(vmp_store_discover(st, "p", "new1", &err), VMP_ESTATE);
    bool completed = true;
    assert_int_equal(vmp_store_discovered_resolve(st, "p", "ghost", &completed, &err), VMP_ESTATE);
    ASSERT_UNCHANGED(before);
    free(before);

    assert_int_equal(vmp_store_discovered_resolve(st, "p", "new1", &completed, &err), 0);
    assert_true(completed);
    assert_true(ismember("vmpooler__completed__p", "new1"));
    assert_false(ismember("vmpooler__discovered__p", "new1"));

    Rdo("SADD vmpooler__discovered__p dup");
    Rdo("SADD vmpooler__ready__p dup");
    assert_int_equal(vmp_store_discovered_resolve(st, "p", "dup", &completed, &err), 0);
    assert_false(completed);
    assert_false(ismember("vmpooler__discovered__p", "dup"));
    assert_true(ismember("vmpooler__ready__p", "dup"));
    assert_false(ismember("vmpooler__completed__p", "dup"));
}

static void test_destroy_forget(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    mk_pending("p", "vm1");
    Rdo("SMOVE vmpooler__pending__p vmpooler__completed__p vm1");
    Rdo("HSET vmpooler__active__p vm1 x");
    assert_int_equal(vmp_store_destroy_start(st, "p", "vm1", NOW, &err), 0);
    assert_string_equal(hget("vmpooler__active__p", "vm1"), "<nil>");
    assert_string_equal(hget("vmpooler__vm__vm1", "destroy"), NOW_STR);
    long long ttl = rint_("TTL vmpooler__vm__vm1");
    assert_true(ttl > DATA_TTL_SECS - 5 && ttl <= DATA_TTL_SECS);
    assert_true(ismember("vmpooler__completed__p", "vm1"));
    assert_int_equal(vmp_store_destroy_done(st, "p", "vm1", &err), 0);
    assert_false(ismember("vmpooler__completed__p", "vm1"));

    char *before = dump();
    assert_int_equal(vmp_store_destroy_start(st, "p", "vm1", NOW, &err), VMP_ESTATE);
    assert_int_equal(vmp_store_destroy_done(st, "p", "vm1", &err), VMP_ESTATE);
    assert_int_equal(vmp_store_forget(st, "p", "vm1", &err), VMP_ESTATE);
    ASSERT_UNCHANGED(before);
    free(before);

    mk_pending("p", "vm2");
    Rdo("SMOVE vmpooler__pending__p vmpooler__completed__p vm2");
    Rdo("HSET vmpooler__active__p vm2 x");
    assert_int_equal(vmp_store_forget(st, "p", "vm2", &err), 0);
    assert_int_equal(rint_("EXISTS vmpooler__vm__vm2"), 0);
    assert_string_equal(hget("vmpooler__active__p", "vm2"), "<nil>");
    assert_false(ismember("vmpooler__completed__p", "vm2"));
}

static void test_drain_excess(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    Rdo("SADD vmpooler__ready__p r1 r2 r3");
    Rdo("SADD vmpooler__pending__p p1 p2");
    Rdo("SADD vmpooler__running__p u1");
    long long moved = 0;
    assert_int_equal(vmp_store_drain(st, "p", &moved, &err), 0);
    assert_int_equal(moved, 5);
    assert_int_equal(rint_("SCARD vmpooler__completed__p"), 5);
    assert_int_equal(rint_("EXISTS vmpooler__ready__p"), 0);
    assert_int_equal(rint_("EXISTS vmpooler__pending__p"), 0);
    assert_int_equal(rint_("SCARD vmpooler__running__p"), 1);
    assert_int_equal(vmp_store_drain(st, "p", &moved, &err), 0);
    assert_int_equal(moved, 0);

    Rdo("DEL vmpooler__completed__p");
    Rdo("SADD vmpooler__ready__p r1 r2 r3 r4 r5");
    assert_int_equal(vmp_store_remove_excess(st, "p", 2, false, &moved, &err), 0);
    assert_int_equal(moved, 2);
    assert_int_equal(rint_("SCARD vmpooler__ready__p"), 3);
    assert_int_equal(rint_("SCARD vmpooler__completed__p"), 2);
    Rdo("SADD vmpooler__pending__p p1 p2");
    assert_int_equal(vmp_store_remove_excess(st, "p", 1, true, &moved, &err), 0);
    assert_int_equal(moved, 3);
    assert_int_equal(rint_("SCARD vmpooler__ready__p"), 2);
    assert_int_equal(rint_("SCARD vmpooler__pending__p"), 0);
    assert_int_equal(rint_("SCARD vmpooler__completed__p"), 5);
    /* More than there is: takes what exists. */
    assert_int_equal(vmp_store_remove_excess(st, "p", 10, false, &moved, &err), 0);
    assert_int_equal(moved, 2);
}

static void test_checkout(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    Rdo("SADD vmpooler__ready__a a1 a2");
    Rdo("SADD vmpooler__ready__b b1");
    const char *pa[] = {"a"}, *pb[] = {"b"}, *alias[] = {"b", "a"};
    vmp_store_want wants[] = {{"a", pa, 1}, {"b", pb, 1}, {"both", alias, 2}};
    vmp_store_checkout_opts o = {.token = "tok1", .user = "bob", .lifetime = 4, .now = NOW};
    vmp_store_checkout_result res = {0};
    assert_int_equal(vmp_store_checkout(st, wants, 3, &o, &res, &err), 0);
    assert_int_equal(res.nvms, 3);
    assert_string_equal(res.vms[0].pool, "a");
    assert_string_equal(res.vms[1].pool, "b");
    assert_string_equal(res.vms[1].vm, "b1");
    /* b was empty by then: the alias fell through to a. */
    assert_string_equal(res.vms[2].pool, "a");
    assert_string_not_equal(res.vms[0].vm, res.vms[2].vm);
    assert_int_equal(res.vms[2].want, 2);
    for (size_t i = 0; i < res.nvms; i++) {
        char k[64];
        const char *pool = res.vms[i].pool, *vm = res.vms[i].vm;
        snprintf(k, sizeof k, "vmpooler__running__%s", pool);
        assert_true(ismember(k, vm));
        snprintf(k, sizeof k, "vmpooler__migrating__%s", pool);
        assert_true(ismember(k, vm));
        snprintf(k, sizeof k, "vmpooler__active__%s", pool);
        assert_string_equal(hget(k, vm), NOW_STR);
        snprintf(k, sizeof k, "vmpooler__vm__%s", vm);
        assert_string_equal(hget(k, "checkout"), NOW_STR);
        assert_string_equal(hget(k, "token:token"), "tok1");
        assert_string_equal(hget(k, "token:user"), "bob");
        assert_string_equal(hget(k, "lifetime"), "4");
    }
    assert_int_equal(rint_("SCARD vmpooler__ready__a"), 0);
    vmp_store_checkout_result_clear(&res);

    /* Shortage: all or nothing, and which want was short. */
    Rdo("SADD vmpooler__ready__a a3");
    Rdo("SADD vmpooler__ready__b b2");
    vmp_store_want w2[] = {{"b", pb, 1}, {"a", pa, 1}, {"a", pa, 1}};
    char *before = dump();
    assert_int_equal(vmp_store_checkout(st, w2, 3, &o, &res, &err), VMP_EAGAIN);
    assert_int_equal(res.empty_want, 2);
    assert_int_equal(res.nvms, 0);
    assert_non_null(strstr(err.msg, "a"));
    ASSERT_UNCHANGED(before);
    free(before);

    /* Without a token: no token fields, no lifetime. */
    vmp_store_checkout_opts o2 = {.now = NOW};
    assert_int_equal(vmp_store_checkout(st, w2, 2, &o2, &res, &err), 0);
    assert_string_equal(hget("vmpooler__vm__b2", "token:token"), "<nil>");
    assert_string_equal(hget("vmpooler__vm__b2", "lifetime"), "<nil>");
    assert_string_equal(hget("vmpooler__vm__b2", "checkout"), NOW_STR);
    vmp_store_checkout_result_clear(&res);

    /* Rollback of one checkout. */
    Rdo("HSET vmpooler__vm__b2 token:token t token:user u");
    assert_int_equal(vmp_store_checkout_rollback(st, "b", "b2", &err), 0);
    assert_true(ismember("vmpooler__ready__b", "b2"));
    assert_false(ismember("vmpooler__running__b", "b2"));
    assert_false(ismember("vmpooler__migrating__b", "b2"));
    assert_string_equal(hget("vmpooler__active__b", "b2"), "<nil>");
    assert_string_equal(hget("vmpooler__vm__b2", "checkout"), "<nil>");
    assert_string_equal(hget("vmpooler__vm__b2", "token:token"), "<nil>");
    before = dump();
    assert_int_equal(vmp_store_checkout_rollback(st, "b", "b2", &err), VMP_ESTATE);
    ASSERT_UNCHANGED(before);
    free(before);
}

static void test_vm_return(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    Rdo("HSET vmpooler__vm__v1 template p");
    Rdo("SADD vmpooler__running__p v1");
    char *pool = NULL;
    assert_int_equal(vmp_store_vm_return(st, "v1", &pool, &err), 0);
    assert_string_equal(pool, "p");
    free(pool);
    assert_true(ismember("vmpooler__completed__p", "v1"));
    char *before = dump();
    assert_int_equal(vmp_store_vm_return(st, "v1", NULL, &err), VMP_ESTATE);
    assert_int_equal(vmp_store_vm_return(st, "nohash", NULL, &err), VMP_ENOENT);
    ASSERT_UNCHANGED(before);
    free(before);
}

/* ---- batches ---- */

/* What a batch callback saw, in call order. */
typedef struct batch_seen {
    int n;
    int rc[8];
    char what[8][64]; /* "pool vm" of a checkout, "pool user" of a return */
    long empty[8];
} batch_seen;

static void seen_checkout(void *ud, int rc, vmp_store_checkout_result *res, const vmp_err *err)
{
    (void)err;
    batch_seen *s = ud;
    assert_true(s->n < 8);
    s->rc[s->n] = rc;
    s->empty[s->n] = res->empty_want;
    if (rc == 0) {
        assert_int_equal(res->nvms, 1);
        snprintf(s->what[s->n], sizeof s->what[0], "%s %s", res->vms[0].pool, res->vms[0].vm);
    }
    vmp_store_checkout_result_clear(res);
    s->n++;
}

static void seen_return(void *ud, int rc, const char *pool, const char *user, const vmp_err *err)
{
    (void)err;
    batch_seen *s = ud;
    assert_true(s->n < 8);
    s->rc[s->n] = rc;
    snprintf(s->what[s->n], sizeof s->what[0], "%s %s", pool ? pool : "-", user ? user : "-");
    s->n++;
}

static void test_batch(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    Rdo("SADD vmpooler__ready__a a1");
    Rdo("HSET vmpooler__vm__a1 template a");
    Rdo("HSET vmpooler__vm__r1 template a token:token t1 token:user bob");
    Rdo("SADD vmpooler__running__a r1");
    Rdo("HSET vmpooler__token__t1 user bob");
    Rdo("HSET vmpooler__vm__r2 template a token:token t1");
    Rdo("SADD vmpooler__running__a r2");
    const char *pa[] = {"a"};
    vmp_store_want want = {"a", pa, 1};
    vmp_store_checkout_opts o = {.now = NOW};
    vmp_store_batch *b = vmp_store_batch_new();
    assert_non_null(b);
    batch_seen seen = {0};

    /* Five ops from "five requests", one round trip, run in queue order:
     * the second checkout finds the pool empty; the returns check the
     * token rule; a VM with no hash is unknown. */
    assert_int_equal(vmp_store_batch_checkout(b, &want, 1, &o, seen_checkout, &seen, &err), 0);
    assert_int_equal(vmp_store_batch_checkout(b, &want, 1, &o, seen_checkout, &seen, &err), 0);
    assert_int_equal(vmp_store_batch_vm_return_checked(b, "r1", "t1", NOW, seen_return, &seen, &err),
                     0);
    assert_int_equal(vmp_store_batch_vm_return_checked(b, "r2", "nope", NOW, seen_return, &seen,
                                                       &err),
                     0);
    assert_int_equal(vmp_store_batch_vm_return_checked(b, "ghost", NULL, NOW, seen_return, &seen,
                                                       &err),
                     0);
    assert_int_equal(vmp_store_batch_size(b), 5);
    vmp_store_batch_send(st, b);
    /* In flight: nothing called yet, a new op waits for the next send. */
    assert_int_equal(seen.n, 0);
    assert_int_equal(vmp_store_batch_size(b), 0);
    assert_int_equal(vmp_store_batch_in_flight(b), 5);
    assert_int_equal(vmp_store_batch_vm_return_checked(b, "a1", NULL, NOW, seen_return, &seen, &err),
                     0);
    vmp_store_batch_send(st, b); /* a group is in flight: does nothing */
    assert_int_equal(vmp_store_batch_in_flight(b), 5);
    vmp_store_batch_finish(st, b);
    assert_int_equal(seen.n, 5);
    assert_int_equal(seen.rc[0], 0);
    assert_string_equal(seen.what[0], "a a1");
    assert_int_equal(seen.rc[1], VMP_EAGAIN);
    assert_int_equal(seen.empty[1], 0);
    assert_int_equal(seen.rc[2], 0);
    assert_string_equal(seen.what[2], "a bob");
    assert_int_equal(seen.rc[3], VMP_EFAILED);
    assert_int_equal(seen.rc[4], VMP_ENOENT);
    assert_true(ismember("vmpooler__running__a", "a1"));
    assert_true(ismember("vmpooler__migrating__a", "a1"));
    assert_string_equal(hget("vmpooler__vm__a1", "checkout"), NOW_STR);
    assert_true(ismember("vmpooler__completed__a", "r1"));
    assert_string_equal(hget("vmpooler__token__t1", "last"), NOW_STR);
    assert_true(ismember("vmpooler__running__a", "r2"));
    /* The op queued meanwhile goes with the next group. */
    assert_int_equal(vmp_store_batch_size(b), 1);
    vmp_store_batch_run(st, b);
    assert_int_equal(seen.n, 6);
    assert_int_equal(seen.rc[5], 0);
    assert_string_equal(seen.what[5], "a -");
    assert_true(ismember("vmpooler__completed__a", "a1"));

    /* Script cache flushed: each op runs again on its own, once. */
    memset(&seen, 0, sizeof seen);
    Rdo("SADD vmpooler__ready__a a2");
    Rdo("SCRIPT FLUSH");
    assert_int_equal(vmp_store_batch_checkout(b, &want, 1, &o, seen_checkout, &seen, &err), 0);
    assert_int_equal(vmp_store_batch_checkout(b, &want, 1, &o, seen_checkout, &seen, &err), 0);
    vmp_store_batch_run(st, b);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.rc[0], 0);
    assert_string_equal(seen.what[0], "a a2");
    assert_int_equal(seen.rc[1], VMP_EAGAIN);

    /* Freed with ops queued: each is told it did not run. */
    memset(&seen, 0, sizeof seen);
    assert_int_equal(vmp_store_batch_checkout(b, &want, 1, &o, seen_checkout, &seen, &err), 0);
    char *before = dump();
    vmp_store_batch_free(b);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.rc[0], VMP_EREDIS);
    ASSERT_UNCHANGED(before);
    free(before);
}

static void test_counters_globals(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    long long v = -1;
    assert_int_equal(vmp_store_counter_get(st, VMP_COUNTER_CLONE, &v, &err), 0);
    assert_int_equal(v, 0);
    assert_int_equal(vmp_store_counter_set(st, VMP_COUNTER_CLONE, 0, &err), 0);
    assert_string_equal(hget("x", "y"), "<nil>");
    assert_int_equal(rint_("GET vmpooler__tasks__clone"), 0);
    assert_int_equal(vmp_store_counter_incr(st, VMP_COUNTER_CLONE, &v, &err), 0);
    assert_int_equal(vmp_store_counter_incr(st, VMP_COUNTER_CLONE, &v, &err), 0);
    assert_int_equal(v, 2);
    assert_int_equal(vmp_store_counter_decr(st, VMP_COUNTER_CLONE, &v, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(rint_("GET vmpooler__tasks__clone"), 1);
    bool taken = false;
    assert_int_equal(vmp_store_counter_take(st, VMP_COUNTER_ONDEMAND_CLONE, 2, &taken, &err), 0);
    assert_true(taken);
    assert_int_equal(vmp_store_counter_take(st, VMP_COUNTER_ONDEMAND_CLONE, 2, &taken, &err), 0);
    assert_true(taken);
    assert_int_equal(vmp_store_counter_take(st, VMP_COUNTER_ONDEMAND_CLONE, 2, &taken, &err), 0);
    assert_false(taken);
    assert_int_equal(rint_("GET vmpooler__tasks__ondemandclone"), 2);

    Rdo("SADD vmpooler__migration m1 m2");
    assert_int_equal(vmp_store_migration_count(st, &v, &err), 0);
    assert_int_equal(v, 2);
    assert_int_equal(vmp_store_migration_remove(st, "m1", &err), 0);
    assert_int_equal(vmp_store_migration_add(st, "m3", &err), 0);
    assert_true(ismember("vmpooler__migration", "m3"));
    assert_int_equal(vmp_store_migration_reset(st, &err), 0);
    assert_int_equal(rint_("EXISTS vmpooler__migration"), 0);

    bool changed = false;
    assert_int_equal(vmp_store_pool_empty_mark(st, "p", true, &changed, &err), 0);
    assert_true(changed);
    assert_int_equal(rint_("EXISTS vmpooler__empty__p"), 1);
    redisReply *r = R("GET vmpooler__empty__p");
    assert_string_equal(r->str, "true");
    freeReplyObject(r);
    assert_int_equal(vmp_store_pool_empty_mark(st, "p", true, &changed, &err), 0);
    assert_false(changed);
    assert_int_equal(vmp_store_pool_empty_mark(st, "p", false, &changed, &err), 0);
    assert_true(changed);
    assert_int_equal(rint_("EXISTS vmpooler__empty__p"), 0);
    assert_int_equal(vmp_store_pool_empty_mark(st, "p", false, &changed, &err), 0);
    assert_false(changed);

    Rdo("HSET vmpooler__lastboot p %s", NOW_STR);
    char *s = NULL;
    assert_int_equal(vmp_store_lastboot_get(st, "p", &s, &err), 0);
    assert_string_equal(s, NOW_STR);
    free(s);
    vmp_strlist kv = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_lastboot_all(st, &kv, &err), 0);
    assert_int_equal(kv.n, 2);
    vmp_strlist_clear(&kv);
    Rdo("HSET vmpooler__boot__2023-11-14 p:a 1.00 p:b 2.00");
    assert_int_equal(vmp_store_daily_get(st, VMP_DAILY_BOOT, "2023-11-14", &kv, &err), 0);
    assert_int_equal(kv.n, 4);
    assert_string_equal(vmp_store_kv_get(&kv, "p:b"), "2.00");
    vmp_strlist_clear(&kv);
}

static void test_pools_publish(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    vmp_strlist a = VMP_STRLIST_INIT, b = VMP_STRLIST_INIT;
    const char *akv[] = {"name", "a", "template", "t/a", "size", "3", "alias", "x,y"};
    for (size_t i = 0; i < 8; i++)
        vmp_strlist_push(&a, akv[i]);
    vmp_strlist_push(&b, "size");
    vmp_strlist_push(&b, "1");
    vmp_store_pool_pub pools[] = {{"a", &a}, {"b", &b}};
    Rdo("SADD vmpooler__pools stale");
    Rdo("HSET vmpooler__pool__stale size 9");
    Rdo("HSET vmpooler__pool__a leftover 1");
    assert_int_equal(vmp_store_pools_publish(st, pools, 2, &err), 0);
    assert_int_equal(rint_("SCARD vmpooler__pools"), 2);
    assert_true(ismember("vmpooler__pools", "a"));
    assert_int_equal(rint_("EXISTS vmpooler__pool__stale"), 0);
    assert_string_equal(hget("vmpooler__pool__a", "alias"), "x,y");
    assert_string_equal(hget("vmpooler__pool__a", "template"), "t/a");
    assert_string_equal(hget("vmpooler__pool__a", "leftover"), "<nil>");
    assert_int_equal(rint_("HLEN vmpooler__pool__a"), 4);
    assert_string_equal(hget("vmpooler__pool__b", "size"), "1");

    assert_int_equal(vmp_store_pools_publish(st, pools, 1, &err), 0);
    assert_int_equal(rint_("EXISTS vmpooler__pool__b"), 0);
    vmp_strlist l = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_pools_list(st, &l, &err), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0], "a");
    vmp_strlist_clear(&l);
    assert_int_equal(vmp_store_pool_config_get(st, "a", &l, &err), 0);
    assert_string_equal(vmp_store_kv_get(&l, "size"), "3");
    vmp_strlist_clear(&l);
    vmp_strlist_clear(&a);
    vmp_strlist_clear(&b);
}

static void test_overrides(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    const struct {
        vmp_store_override kind;
        const char *key;
    } kinds[] = {
        {VMP_OVERRIDE_POOLSIZE, "vmpooler__config__poolsize"},
        {VMP_OVERRIDE_TEMPLATE, "vmpooler__config__template"},
        {VMP_OVERRIDE_CLONE_TARGET, "vmpooler__config__clone_target"},
        {VMP_TEMPLATE_PREPARED, "vmpooler__template__prepared"},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(kinds); i++) {
        char *s = NULL;
        assert_int_equal(vmp_store_override_get(st, kinds[i].kind, "p", &s, &err), 0);
        assert_null(s);
        assert_int_equal(vmp_store_override_set(st, kinds[i].kind, "p", "v1", &err), 0);
        assert_string_equal(hget(kinds[i].key, "p"), "v1");
        assert_int_equal(vmp_store_override_get(st, kinds[i].kind, "p", &s, &err), 0);
        assert_string_equal(s, "v1");
        free(s);
        vmp_strlist kv = VMP_STRLIST_INIT;
        assert_int_equal(vmp_store_override_all(st, kinds[i].kind, &kv, &err), 0);
        assert_int_equal(kv.n, 2);
        vmp_strlist_clear(&kv);
        bool existed = false;
        assert_int_equal(vmp_store_override_del(st, kinds[i].kind, "p", &existed, &err), 0);
        assert_true(existed);
        assert_int_equal(vmp_store_override_del(st, kinds[i].kind, "p", &existed, &err), 0);
        assert_false(existed);
    }
    bool has = true;
    assert_int_equal(vmp_store_template_delta_has(st, "t/x", &has, &err), 0);
    assert_false(has);
    assert_int_equal(vmp_store_template_delta_add(st, "t/x", &err), 0);
    assert_true(ismember("vmpooler__template__deltas", "t/x"));
    assert_int_equal(vmp_store_template_delta_has(st, "t/x", &has, &err), 0);
    assert_true(has);

    const struct {
        vmp_store_pool_request kind;
        const char *key;
    } reqs[] = {
        {VMP_POOLREQ_RESET, "vmpooler__poolreset"},
        {VMP_POOLREQ_UNDO_TEMPLATE, "vmpooler__pool__undo_template_override"},
        {VMP_POOLREQ_UNDO_SIZE, "vmpooler__pool__undo_size_override"},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(reqs); i++) {
        bool present = true;
        assert_int_equal(vmp_store_pool_request_take(st, reqs[i].kind, "p", &present, &err), 0);
        assert_false(present);
        assert_int_equal(vmp_store_pool_request_add(st, reqs[i].kind, "p", &err), 0);
        assert_true(ismember(reqs[i].key, "p"));
        assert_int_equal(vmp_store_pool_request_has(st, reqs[i].kind, "p", &has, &err), 0);
        assert_true(has);
        assert_int_equal(vmp_store_pool_request_take(st, reqs[i].kind, "p", &present, &err), 0);
        assert_true(present);
        assert_false(ismember(reqs[i].key, "p"));
    }
}

static void test_vm_details_tasks(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    mk_pending("p", "vm1");
    assert_int_equal(vmp_store_vm_lifetime_set(st, "vm1", 48, &err), 0);
    assert_string_equal(hget("vmpooler__vm__vm1", "lifetime"), "48");
    assert_int_equal(vmp_store_vm_tag_set(st, "vm1", "project", "infra", NOW, &err), 0);
    assert_string_equal(hget("vmpooler__vm__vm1", "tag:project"), "infra");
    assert_string_equal(hget("vmpooler__tag__" TODAY, "vm1:project"), "infra");
    assert_int_equal(vmp_store_vm_disk_add(st, "vm1", 8, &err), 0);
    assert_string_equal(hget("vmpooler__vm__vm1", "disk"), "+8gb");
    assert_int_equal(vmp_store_vm_disk_add(st, "vm1", 16, &err), 0);
    assert_string_equal(hget("vmpooler__vm__vm1", "disk"), "+8gb:+16gb");
    assert_int_equal(vmp_store_vm_snapshot_set(st, "vm1", "abc123", NOW, &err), 0);
    assert_string_equal(hget("vmpooler__vm__vm1", "snapshot:abc123"), NOW_STR);

    char *before = dump();
    assert_int_equal(vmp_store_vm_lifetime_set(st, "ghost", 1, &err), VMP_ENOENT);
    assert_int_equal(vmp_store_vm_tag_set(st, "ghost", "a", "b", NOW, &err), VMP_ENOENT);
    assert_int_equal(vmp_store_vm_disk_add(st, "ghost", 8, &err), VMP_ENOENT);
    assert_int_equal(vmp_store_vm_snapshot_set(st, "ghost", "s", NOW, &err), VMP_ENOENT);
    ASSERT_UNCHANGED(before);
    free(before);

    const struct {
        vmp_store_task q;
        const char *key;
    } qs[] = {
        {VMP_TASK_DISK, "vmpooler__tasks__disk"},
        {VMP_TASK_SNAPSHOT, "vmpooler__tasks__snapshot"},
        {VMP_TASK_SNAPSHOT_REVERT, "vmpooler__tasks__snapshot-revert"},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(qs); i++) {
        char *vm = NULL, *arg = NULL;
        assert_int_equal(vmp_store_task_pop(st, qs[i].q, &vm, &arg, &err), 0);
        assert_null(vm);
        assert_null(arg);
        assert_int_equal(vmp_store_task_push(st, qs[i].q, "vm1", "32", &err), 0);
        assert_true(ismember(qs[i].key, "vm1:32"));
        assert_int_equal(vmp_store_task_pop(st, qs[i].q, &vm, &arg, &err), 0);
        assert_string_equal(vm, "vm1");
        assert_string_equal(arg, "32");
        free(vm);
        free(arg);
        assert_int_equal(rint_("SCARD %s", qs[i].key), 0);
    }
}

static void test_tokens(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    assert_int_equal(vmp_store_token_create(st, "t1", "alice", NOW, &err), 0);
    assert_int_equal(vmp_store_token_create(st, "t2", "alice", NOW, &err), 0);
    assert_int_equal(vmp_store_token_create(st, "t3", "bob", NOW, &err), 0);
    assert_string_equal(hget("vmpooler__token__t1", "user"), "alice");
    assert_string_equal(hget("vmpooler__token__t1", "created"), NOW_STR);
    assert_string_equal(hget("vmpooler__token__t1", "last"), "<nil>");
    assert_int_equal(vmp_store_token_create(st, "t1", "eve", NOW, &err), VMP_EEXIST);
    assert_string_equal(hget("vmpooler__token__t1", "user"), "alice");

    char *user = NULL;
    assert_int_equal(vmp_store_token_touch(st, "t1", NOW + 60, &user, &err), 0);
    assert_string_equal(user, "alice");
    free(user);
    assert_string_equal(hget("vmpooler__token__t1", "last"), "2023-11-14 18:14:20 -0700");
    char *before = dump();
    assert_int_equal(vmp_store_token_touch(st, "nope", NOW, NULL, &err), VMP_ENOENT);
    ASSERT_UNCHANGED(before);
    free(before);

    vmp_strlist kv = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_token_get(st, "t1", &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "user"), "alice");
    vmp_strlist_clear(&kv);
    assert_int_equal(vmp_store_token_get(st, "nope", &kv, &err), VMP_ENOENT);

    /* Many keys, so SCAN takes several rounds. */
    for (int i = 0; i < 1200; i++)
        Rdo("SET vmpooler__filler__%d x", i);
    vmp_strlist l = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_token_list_by_user(st, "alice", &l, &err), 0);
    vmp_strlist_sort(&l);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0], "t1");
    assert_string_equal(l.v[1], "t2");
    vmp_strlist_clear(&l);

    assert_int_equal(vmp_store_token_delete(st, "t2", &err), 0);
    assert_int_equal(rint_("EXISTS vmpooler__token__t2"), 0);
    assert_int_equal(vmp_store_token_delete(st, "t2", &err), VMP_ENOENT);
}

static void test_ondemand(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    assert_int_equal(vmp_store_od_request_create(st, "r1", "deb:debian-7:2,cent:centos:1", "tk",
                                                 "carol", NOW, &err),
                     0);
    assert_string_equal(hget("vmpooler__odrequest__r1", "requested"),
                        "deb:debian-7:2,cent:centos:1");
    assert_string_equal(hget("vmpooler__odrequest__r1", "token:token"), "tk");
    assert_string_equal(hget("vmpooler__odrequest__r1", "token:user"), "carol");
    assert_int_equal(rint_("ZSCORE vmpooler__provisioning__request r1"), 1700010800);
    char *before = dump();
    assert_int_equal(vmp_store_od_request_create(st, "r1", "x:y:1", NULL, NULL, NOW, &err),
                     VMP_EEXIST);
    ASSERT_UNCHANGED(before);
    free(before);

    vmp_strlist kv = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_od_request_get(st, "r1", &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "token:user"), "carol");
    vmp_strlist_clear(&kv);
    assert_int_equal(vmp_store_od_request_get(st, "r9", &kv, &err), VMP_ENOENT);
    assert_non_null(strstr(err.msg, "no request found for request_id 'r9'"));

    long long n = 0;
    assert_int_equal(vmp_store_od_zcard(st, VMP_OD_REQUEST, &n, &err), 0);
    assert_int_equal(n, 1);
    const char *tasks[] = {"deb:debian-7:2:r1", "cent:centos:1:r1"};
    assert_int_equal(vmp_store_od_request_start(st, "r1", tasks, 2, NOW + 5, &err), 0);
    assert_int_equal(rint_("ZCARD vmpooler__provisioning__request"), 0);
    assert_int_equal(rint_("ZSCORE vmpooler__provisioning__processing r1"), 1700010800);
    assert_int_equal(rint_("ZSCORE vmpooler__odcreate__task deb:debian-7:2:r1"), 1700010805);
    before = dump();
    assert_int_equal(vmp_store_od_request_start(st, "r1", tasks, 2, NOW, &err), VMP_ESTATE);
    ASSERT_UNCHANGED(before);
    free(before);

    vmp_store_zlist zl = {0};
    assert_int_equal(vmp_store_od_zrange(st, VMP_OD_TASK, &zl, &err), 0);
    assert_int_equal(zl.n, 2);
    assert_true(zl.v[0].score == 1700010805.0);
    vmp_store_zlist_clear(&zl);

    assert_int_equal(vmp_store_od_task_replace(st, "deb:debian-7:2:r1", "deb:debian-7:1:r1", &err),
                     0);
    assert_int_equal(rint_("ZSCORE vmpooler__odcreate__task deb:debian-7:1:r1"), 1700010805);
    assert_int_equal(rint_("ZSCORE vmpooler__odcreate__task deb:debian-7:2:r1"), -999);
    assert_int_equal(vmp_store_od_task_replace(st, "nope", "x", &err), VMP_ESTATE);
    assert_int_equal(vmp_store_od_task_add(st, 1, "cent:centos:1:r1", &err), 0);
    assert_int_equal(rint_("ZSCORE vmpooler__odcreate__task cent:centos:1:r1"), 1);
    assert_int_equal(vmp_store_od_zrem(st, VMP_OD_TASK, "cent:centos:1:r1", &err), 0);
    assert_int_equal(vmp_store_od_zrem(st, VMP_OD_TASK, "cent:centos:1:r1", &err), VMP_ESTATE);

    long long rc = 0;
    assert_int_equal(vmp_store_od_request_retry(st, "r1", &rc, &err), 0);
    assert_int_equal(vmp_store_od_request_retry(st, "r1", &rc, &err), 0);
    assert_int_equal(rc, 2);
    assert_string_equal(hget("vmpooler__odrequest__r1", "retry_count"), "2");

    /* Filling the request. */
    bool ready = true;
    assert_int_equal(vmp_store_od_vms_add(st, "r1", "deb", "debian-7", "d1", &err), 0);
    assert_int_equal(vmp_store_od_vms_add(st, "r1", "deb", "debian-7", "d2", &err), 0);
    assert_int_equal(vmp_store_od_request_check_ready(st, "r1", &ready, &err), 0);
    assert_false(ready);
    assert_int_equal(vmp_store_od_vms_add(st, "r1", "cent", "centos", "c1", &err), 0);
    assert_int_equal(vmp_store_od_vms_count(st, "r1", "deb", "debian-7", &n, &err), 0);
    assert_int_equal(n, 2);
    vmp_strlist l = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_od_vms_members(st, "r1", "cent", "centos", &l, &err), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0], "c1");
    vmp_strlist_clear(&l);
    assert_true(ismember("vmpooler__r1__deb__debian-7", "d1"));
    assert_int_equal(vmp_store_od_request_check_ready(st, "r1", &ready, &err), 0);
    assert_true(ready);
    assert_string_equal(hget("vmpooler__odrequest__r1", "status"), "ready");
    long long ttl = rint_("TTL vmpooler__odrequest__r1");
    assert_true(ttl > 2592000 - 5 && ttl <= 2592000);
    assert_int_equal(rint_("ZCARD vmpooler__provisioning__processing"), 0);
    assert_int_equal(vmp_store_od_request_check_ready(st, "r9", &ready, &err), VMP_ENOENT);

    /* Timeout of a request with VMs already handed to it. */
    assert_int_equal(vmp_store_od_request_create(st, "r2", "deb:debian-7:2", NULL, NULL, NOW, &err),
                     0);
    assert_string_equal(hget("vmpooler__odrequest__r2", "token:token"), "<nil>");
    assert_int_equal(vmp_store_od_request_start(st, "r2", NULL, 0, NOW, &err), 0);
    Rdo("SADD vmpooler__running__debian-7 e1");
    assert_int_equal(vmp_store_od_vms_add(st, "r2", "deb", "debian-7", "e1", &err), 0);
    assert_int_equal(vmp_store_od_request_expire(st, "r2", &err), 0);
    assert_string_equal(hget("vmpooler__odrequest__r2", "status"), "failed");
    ttl = rint_("TTL vmpooler__odrequest__r2");
    assert_true(ttl > DATA_TTL_SECS - 5 && ttl <= DATA_TTL_SECS);
    ttl = rint_("TTL vmpooler__r2__deb__debian-7");
    assert_true(ttl > DATA_TTL_SECS - 5 && ttl <= DATA_TTL_SECS);
    assert_true(ismember("vmpooler__completed__debian-7", "e1"));
    assert_false(ismember("vmpooler__running__debian-7", "e1"));
    assert_int_equal(rint_("ZCARD vmpooler__provisioning__processing"), 0);
    assert_int_equal(vmp_store_od_request_expire(st, "r9", &err), VMP_ENOENT);

    /* API delete. */
    assert_int_equal(vmp_store_od_request_create(st, "r3", "deb:debian-7:1", NULL, NULL, NOW, &err),
                     0);
    const char *t3[] = {"deb:debian-7:1:r3"};
    assert_int_equal(vmp_store_od_request_start(st, "r3", t3, 1, NOW, &err), 0);
    Rdo("SADD vmpooler__running__debian-7 f1");
    assert_int_equal(vmp_store_od_vms_add(st, "r3", "deb", "debian-7", "f1", &err), 0);
    bool already = true;
    assert_int_equal(vmp_store_od_request_delete(st, "r3", &already, &err), 0);
    assert_false(already);
    assert_string_equal(hget("vmpooler__odrequest__r3", "status"), "deleted");
    ttl = rint_("TTL vmpooler__odrequest__r3");
    assert_true(ttl > 1296000 - 5 && ttl <= 1296000);
    assert_true(ismember("vmpooler__completed__debian-7", "f1"));
    assert_int_equal(rint_("EXISTS vmpooler__r3__deb__debian-7"), 0);
    assert_int_equal(rint_("ZSCORE vmpooler__odcreate__task deb:debian-7:1:r3"), -999);
    assert_int_equal(rint_("ZSCORE vmpooler__provisioning__processing r3"), -999);
    before = dump();
    assert_int_equal(vmp_store_od_request_delete(st, "r3", &already, &err), 0);
    assert_true(already);
    assert_int_equal(vmp_store_od_request_delete(st, "r9", &already, &err), VMP_ENOENT);
    ASSERT_UNCHANGED(before);
    free(before);

    assert_int_equal(vmp_store_od_request_fail(st, "r9", "x", &err), VMP_ENOENT);
    assert_int_equal(rint_("EXISTS vmpooler__odrequest__r9"), 0);
}

static void test_ratelimit(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    bool allowed = false;
    long long ttl = -5;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            vmp_store_ratelimit_hit(st, "vm_creation", "ip:127.0.0.1", 3, 60, &allowed, &ttl, &err),
            0);
        assert_true(allowed);
    }
    redisReply *r = R("GET vmpooler__ratelimit__vm_creation__ip:127.0.0.1");
    assert_string_equal(r->str, "3");
    freeReplyObject(r);
    long long t = rint_("TTL vmpooler__ratelimit__vm_creation__ip:127.0.0.1");
    assert_true(t > 55 && t <= 60);
    assert_int_equal(
        vmp_store_ratelimit_hit(st, "vm_creation", "ip:127.0.0.1", 3, 60, &allowed, &ttl, &err), 0);
    assert_false(allowed);
    assert_true(ttl > 55 && ttl <= 60);
    assert_int_equal(rint_("GET vmpooler__ratelimit__vm_creation__ip:127.0.0.1"), 3);
    /* Another client has its own counter. */
    assert_int_equal(
        vmp_store_ratelimit_hit(st, "vm_creation", "token:abc", 3, 60, &allowed, &ttl, &err), 0);
    assert_true(allowed);
}

static void test_events(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    vmp_store_opts o = sock_opts();
    vmp_store_sub *sub = NULL;
    assert_int_equal(vmp_store_sub_open(&o, &sub, &err), 0);
    char *type = NULL, *pool = NULL;
    double t0 = vmp_monotonic();
    assert_int_equal(vmp_store_sub_wait(sub, 0.2, &type, &pool, &err), VMP_ETIMEDOUT);
    assert_true(vmp_monotonic() - t0 >= 0.15);
    assert_null(type);

    assert_int_equal(vmp_store_publish(st, "checkout", "debian-7", &err), 0);
    assert_int_equal(vmp_store_publish(st, "config", NULL, &err), 0);
    assert_int_equal(vmp_store_publish(st, "two words", "p", &err), VMP_EINVAL);
    assert_int_equal(vmp_store_sub_wait(sub, 2, &type, &pool, &err), 0);
    assert_string_equal(type, "checkout");
    assert_string_equal(pool, "debian-7");
    free(type);
    free(pool);
    type = pool = NULL;
    assert_int_equal(vmp_store_sub_wait(sub, 2, &type, &pool, &err), 0);
    assert_string_equal(type, "config");
    assert_string_equal(pool, "");
    free(type);
    free(pool);
    type = pool = NULL;
    /* Raw publishers (another vmpool process) reach it too. */
    Rdo("PUBLISH vmpooler__events %s", "return p2");
    assert_int_equal(vmp_store_sub_wait(sub, 2, &type, &pool, &err), 0);
    assert_string_equal(type, "return");
    assert_string_equal(pool, "p2");
    free(type);
    free(pool);
    vmp_store_sub_free(sub);
}

static void test_leases(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    bool held = false;
    assert_int_equal(vmp_store_lease_acquire(st, "p", "mgr-a", 5000, &held, &err), 0);
    assert_true(held);
    redisReply *r = R("GET vmpooler__lease__p");
    assert_string_equal(r->str, "mgr-a");
    freeReplyObject(r);
    long long pttl = rint_("PTTL vmpooler__lease__p");
    assert_true(pttl > 4000 && pttl <= 5000);
    assert_int_equal(vmp_store_lease_acquire(st, "p", "mgr-b", 5000, &held, &err), 0);
    assert_false(held);
    assert_int_equal(vmp_store_lease_renew(st, "p", "mgr-b", 5000, &held, &err), 0);
    assert_false(held);
    bool released = true;
    assert_int_equal(vmp_store_lease_release(st, "p", "mgr-b", &released, &err), 0);
    assert_false(released);
    char *owner = NULL;
    assert_int_equal(vmp_store_lease_owner(st, "p", &owner, &err), 0);
    assert_string_equal(owner, "mgr-a");
    free(owner);
    owner = NULL;
    assert_int_equal(vmp_store_lease_renew(st, "p", "mgr-a", 60000, &held, &err), 0);
    assert_true(held);
    assert_true(rint_("PTTL vmpooler__lease__p") > 50000);
    assert_int_equal(vmp_store_lease_acquire(st, "p", "mgr-a", 60000, &held, &err), 0);
    assert_true(held);
    assert_int_equal(vmp_store_lease_release(st, "p", "mgr-a", &released, &err), 0);
    assert_true(released);
    assert_int_equal(vmp_store_lease_owner(st, "p", &owner, &err), 0);
    assert_null(owner);
    assert_int_equal(vmp_store_lease_acquire(st, "p", "mgr-b", 100, &held, &err), 0);
    assert_true(held);
    /* A lapsed lease is taken over. */
    usleep(200 * 1000);
    assert_int_equal(vmp_store_lease_acquire(st, "p", "mgr-a", 5000, &held, &err), 0);
    assert_true(held);
    assert_int_equal(vmp_store_lease_acquire(st, "p", "mgr-a", 0, &held, &err), VMP_EINVAL);
}

static void test_prefix_db_auth(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    vmp_store_opts o = sock_opts();
    o.prefix = "vmpx";
    o.db = 3;
    o.data_ttl_hours = 2;
    vmp_store *s2 = NULL;
    assert_int_equal(vmp_store_open(&o, &s2, &err), 0);
    assert_int_equal(vmp_store_clone_start(s2, "p", "vm1", NULL, NULL, NULL, NOW, &err), 0);
    assert_int_equal(vmp_store_clone_failed(s2, "p", "vm1", NULL, NULL, &err), 0);
    assert_int_equal(rint_("EXISTS vmpx__vm__vm1"), 0); /* not in db 0 */
    Rdo("SELECT 3");
    assert_int_equal(rint_("EXISTS vmpx__vm__vm1"), 1);
    long long ttl = rint_("TTL vmpx__vm__vm1");
    assert_true(ttl > 7200 - 5 && ttl <= 7200);
    assert_string_equal(hget("vmpx__vm__vm1", "clone_error"), "<nil>");
    Rdo("FLUSHDB");
    Rdo("SELECT 0");
    vmp_store_free(s2);

    /* Password: right one works, a wrong one fails at once with the
     * server's message. */
    Rdo("CONFIG SET requirepass s3cret");
    Rdo("AUTH s3cret");
    o = sock_opts();
    o.password = "s3cret";
    s2 = NULL;
    int rc = vmp_store_open(&o, &s2, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(vmp_store_ping(s2, &err), 0);
    vmp_store_free(s2);
    s2 = NULL;
    o.password = "wrong";
    o.reconnect_attempts = 50;
    o.reconnect_delay = 0.2;
    double t0 = vmp_monotonic();
    assert_int_equal(vmp_store_open(&o, &s2, &err), VMP_EREDIS);
    assert_true(vmp_monotonic() - t0 < 2); /* not retried */
    assert_null(s2);
    assert_non_null(strstr(err.msg, "AUTH"));
    assert_non_null(strstr(err.msg, vmp_test_redis_socket(srv)));
    o.password = NULL;
    o.reconnect_attempts = 1;
    assert_int_equal(vmp_store_open(&o, &s2, &err), VMP_EREDIS);
    Rdo("CONFIG SET requirepass %s", "");
}

static void test_noscript(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    Rdo("SCRIPT FLUSH");
    mk_pending("p", "vm1");
    assert_true(ismember("vmpooler__pending__p", "vm1"));
    /* Reloaded by the fallback: EVALSHA works again. */
    assert_int_equal(vmp_store_drain(st, "p", NULL, &err), 0);
    assert_true(ismember("vmpooler__completed__p", "vm1"));
}

static void test_refused(void **state)
{
    (void)state;
    NEED_REDIS();
    /* A TCP port with nobody listening. */
    vmp_test_redis *tmp = vmp_test_redis_start(true, skip_msg, sizeof skip_msg);
    assert_non_null(tmp);
    int port = vmp_test_redis_port(tmp);
    vmp_test_redis_stop(tmp);
    vmp_store_opts o = {0};
    o.host = "127.0.0.1";
    o.port = port;
    o.reconnect_attempts = 2;
    o.reconnect_delay = 0.01;
    vmp_store *s2 = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_store_open(&o, &s2, &err), VMP_EREDIS);
    char want[80];
    snprintf(want, sizeof want, "redis 127.0.0.1:%d: Connection refused", port);
    assert_string_equal(err.msg, want);
    assert_null(s2);
}

static void test_tcp(void **state)
{
    (void)state;
    NEED_REDIS();
    char msg[256];
    vmp_test_redis *tmp = vmp_test_redis_start(true, msg, sizeof msg);
    assert_non_null(tmp);
    vmp_store_opts o = {0};
    o.host = "127.0.0.1";
    o.port = vmp_test_redis_port(tmp);
    vmp_store *s2 = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_store_open(&o, &s2, &err), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", o.port);
    assert_string_equal(vmp_store_address(s2), addr);
    assert_int_equal(vmp_store_ping(s2, &err), 0);
    vmp_store_free(s2);
    vmp_test_redis_stop(tmp);
}

/* A server that stops answering: the call ends at the timeout with a clear
 * error, and works again once the server is back. */
static void test_hung_server(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    vmp_store_opts o = sock_opts();
    o.timeout = 0.3;
    o.reconnect_attempts = 2;
    vmp_store *s2 = NULL;
    assert_int_equal(vmp_store_open(&o, &s2, &err), 0);
    pid_t pid = vmp_test_redis_pid(srv);
    kill(pid, SIGSTOP);
    double t0 = vmp_monotonic();
    int rc = vmp_store_ping(s2, &err);
    double took = vmp_monotonic() - t0;
    long long moved = 0;
    int rc2 = vmp_store_drain(s2, "p", &moved, &err);
    kill(pid, SIGCONT);
    assert_int_equal(rc, VMP_EREDIS);
    assert_int_equal(rc2, VMP_EREDIS);
    assert_true(took < 5);
    char want[300];
    snprintf(want, sizeof want, "redis %s: ", vmp_test_redis_socket(srv));
    assert_memory_equal(err.msg, want, strlen(want));
    assert_int_equal(vmp_store_ping(s2, &err), 0);
    vmp_store_free(s2);
}

static void *kill_later(void *arg)
{
    usleep(200 * 1000);
    kill(*(pid_t *)arg, SIGKILL);
    return NULL;
}

/* The server dies while a script is in flight. */
static void test_killed_mid_command(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    mk_pending("p", "vm1");
    pid_t pid = vmp_test_redis_pid(srv);
    kill(pid, SIGSTOP);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kill_later, &pid), 0);
    int rc = vmp_store_pending_ready(st, "p", "vm1", 0, NOW, NULL, NULL, &err);
    pthread_join(th, NULL);
    assert_int_equal(rc, VMP_EREDIS);
    char want[300];
    snprintf(want, sizeof want, "redis %s: ", vmp_test_redis_socket(srv));
    assert_memory_equal(err.msg, want, strlen(want));
    /* Writes are not retried: the next call reconnects. */
    rc = vmp_store_ping(st, &err);
    assert_int_equal(rc, VMP_EREDIS);
    char msg[256];
    assert_int_equal(vmp_test_redis_restart(srv, msg, sizeof msg), 0);
    raw_connect();
    assert_int_equal(vmp_store_ping(st, &err), 0);
}

/* Redis dies under a store and a subscriber: clear errors, no crash, and
 * both work again once it is back. Runs last (it restarts the server). */
static void test_redis_killed(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_err err = {0};
    vmp_store_opts o = sock_opts();
    vmp_store_sub *sub = NULL;
    assert_int_equal(vmp_store_sub_open(&o, &sub, &err), 0);
    mk_pending("p", "vm1");

    pid_t pid = vmp_test_redis_pid(srv);
    vmp_test_redis_kill(srv);
    assert_false(vmp_test_pid_alive(pid));

    char want[300];
    snprintf(want, sizeof want, "redis %s: ", vmp_test_redis_socket(srv));
    /* Writes, reads, scripts, pipelines: all fail cleanly. */
    assert_int_equal(vmp_store_move(st, "p", "vm1", VMP_VM_PENDING, VMP_VM_READY, &err),
                     VMP_EREDIS);
    assert_memory_equal(err.msg, want, strlen(want));
    vmp_store_pool_sets sets = {0};
    assert_int_equal(vmp_store_pool_sets_get(st, "p", &sets, &err), VMP_EREDIS);
    vmp_store_pool_sets_clear(&sets);
    assert_int_equal(vmp_store_pending_ready(st, "p", "vm1", 0, NOW, NULL, NULL, &err), VMP_EREDIS);
    assert_int_equal(vmp_store_ping(st, &err), VMP_EREDIS);
    assert_memory_equal(err.msg, want, strlen(want));
    /* The socket file outlives a SIGKILLed server: refused, not missing. */
    assert_non_null(strstr(err.msg, "Connection refused"));
    char *type = NULL, *pool = NULL;
    assert_int_equal(vmp_store_sub_wait(sub, 1, &type, &pool, &err), VMP_EREDIS);
    assert_int_equal(vmp_store_sub_wait(sub, 1, &type, &pool, &err), VMP_EREDIS);

    char msg[256];
    assert_int_equal(vmp_test_redis_restart(srv, msg, sizeof msg), 0);
    raw_connect();
    /* Reconnects, reloads its scripts (the new server has none). */
    assert_int_equal(vmp_store_clone_start(st, "p", "vm2", NULL, NULL, NULL, NOW, &err), 0);
    assert_true(ismember("vmpooler__pending__p", "vm2"));
    assert_int_equal(vmp_store_pending_ready(st, "p", "vm2", 0, NOW, NULL, NULL, &err), 0);
    assert_true(ismember("vmpooler__ready__p", "vm2"));
    /* The subscriber resubscribes on its next wait. */
    assert_int_equal(vmp_store_sub_wait(sub, 0.1, &type, &pool, &err), VMP_ETIMEDOUT);
    assert_int_equal(vmp_store_publish(st, "return", "p", &err), 0);
    assert_int_equal(vmp_store_sub_wait(sub, 2, &type, &pool, &err), 0);
    assert_string_equal(type, "return");
    free(type);
    free(pool);

    /* Killed between two calls on a live connection: the next call finds
     * the dead connection, and a restarted server is picked up. */
    vmp_test_redis_kill(srv);
    assert_int_equal(vmp_test_redis_restart(srv, msg, sizeof msg), 0);
    raw_connect();
    long long moved = -1;
    assert_int_equal(vmp_store_drain(st, "p", &moved, &err), 0);
    assert_int_equal(moved, 0);
    vmp_store_sub_free(sub);

    /* A batch on a server that is gone: every op fails with VMP_EREDIS,
     * none twice; with the server back, the next batch reconnects. */
    const char *pa[] = {"a"};
    vmp_store_want bw = {"a", pa, 1};
    vmp_store_checkout_opts bo = {.now = NOW};
    vmp_store_batch *b = vmp_store_batch_new();
    batch_seen seen = {0};
    vmp_test_redis_kill(srv);
    assert_int_equal(vmp_store_batch_checkout(b, &bw, 1, &bo, seen_checkout, &seen, &err), 0);
    assert_int_equal(vmp_store_batch_vm_return_checked(b, "x", NULL, NOW, seen_return, &seen, &err),
                     0);
    vmp_store_batch_run(st, b);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.rc[0], VMP_EREDIS);
    assert_int_equal(seen.rc[1], VMP_EREDIS);
    assert_int_equal(vmp_test_redis_restart(srv, msg, sizeof msg), 0);
    raw_connect();
    Rdo("SADD vmpooler__ready__a a9");
    memset(&seen, 0, sizeof seen);
    assert_int_equal(vmp_store_batch_checkout(b, &bw, 1, &bo, seen_checkout, &seen, &err), 0);
    vmp_store_batch_run(st, b);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.rc[0], 0);
    assert_string_equal(seen.what[0], "a a9");
    vmp_store_batch_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_formats, flush),
        cmocka_unit_test_setup(test_clone_start, flush),
        cmocka_unit_test_setup(test_clone_done_failed, flush),
        cmocka_unit_test_setup(test_pending_ready, flush),
        cmocka_unit_test_setup(test_pending_ready_ondemand, flush),
        cmocka_unit_test_setup(test_moves, flush),
        cmocka_unit_test_setup(test_reads, flush),
        cmocka_unit_test_setup(test_discover, flush),
        cmocka_unit_test_setup(test_destroy_forget, flush),
        cmocka_unit_test_setup(test_drain_excess, flush),
        cmocka_unit_test_setup(test_checkout, flush),
        cmocka_unit_test_setup(test_vm_return, flush),
        cmocka_unit_test_setup(test_counters_globals, flush),
        cmocka_unit_test_setup(test_pools_publish, flush),
        cmocka_unit_test_setup(test_overrides, flush),
        cmocka_unit_test_setup(test_vm_details_tasks, flush),
        cmocka_unit_test_setup(test_tokens, flush),
        cmocka_unit_test_setup(test_ondemand, flush),
        cmocka_unit_test_setup(test_ratelimit, flush),
        cmocka_unit_test_setup(test_events, flush),
        cmocka_unit_test_setup(test_leases, flush),
        cmocka_unit_test_setup(test_prefix_db_auth, flush),
        cmocka_unit_test_setup(test_noscript, flush),
        cmocka_unit_test_setup(test_batch, flush),
        cmocka_unit_test_setup(test_refused, flush),
        cmocka_unit_test_setup(test_tcp, flush),
        cmocka_unit_test_setup(test_hung_server, flush),
        cmocka_unit_test_setup(test_killed_mid_command, flush),
        cmocka_unit_test_setup(test_redis_killed, flush),
    };
    return cmocka_run_group_tests_name("store", tests, group_setup, group_teardown);
}
