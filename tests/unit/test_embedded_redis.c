/*
 * Tests for src/store/redis_embedded.c: vmpool's own redis-server in a
 * state directory: start, reuse by a second opener, stop by its owner,
 * adoption of an unused leftover, persistence, clear errors, and no stray
 * process (every pid is checked to be gone).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_server.h"
#include "store/redis_embedded.h"
#include "store/store.h"
#include "util.h"

static char base[64];
static char statedir[128];
static bool have_redis;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof base, "/tmp/vmp-test-embedded-XXXXXX");
    if (!mkdtemp(base))
        return -1;
    /* Not created yet: start must create it 0700. */
    snprintf(statedir, sizeof statedir, "%s/state/redis", base);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(base, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    /* SIGPIPE is left at its default: the store must guard itself. */
    have_redis = system("command -v redis-server >/dev/null 2>&1") == 0;
    return 0;
}

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        if (!have_redis) {                                                                         \
            print_message("redis-server not installed\n");                                         \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static vmp_redis_embedded *start_ok(void)
{
    vmp_redis_embedded_opts o = {.state_dir = statedir, .stop_timeout = 5};
    vmp_redis_embedded *e = NULL;
    vmp_err err = {0};
    int rc = vmp_redis_embedded_start(&o, &e, &err);
    if (rc < 0)
        fail_msg("start: %s", err.msg);
    return e;
}

static vmp_store *open_store(const vmp_redis_embedded *e)
{
    vmp_store_opts o = {0};
    o.socket = vmp_redis_embedded_socket(e);
    o.reconnect_attempts = 2;
    o.reconnect_delay = 0.01;
    vmp_store *s = NULL;
    vmp_err err = {0};
    if (vmp_store_open(&o, &s, &err) < 0)
        fail_msg("open: %s", err.msg);
    return s;
}

static bool wait_dead(pid_t pid, double timeout)
{
    double deadline = vmp_monotonic() + timeout;
    while (vmp_test_pid_alive(pid)) {
        if (vmp_monotonic() > deadline)
            return false;
        usleep(20 * 1000);
    }
    return true;
}

static void test_start_reuse_stop(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_redis_embedded *a = start_ok();
    assert_true(vmp_redis_embedded_owned(a));
    pid_t pid = vmp_redis_embedded_pid(a);
    assert_true(pid > 0);
    assert_true(vmp_test_pid_alive(pid));

    struct stat sb;
    assert_int_equal(stat(statedir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    char path[256];
    snprintf(path, sizeof path, "%s/redis.sock", statedir);
    assert_string_equal(vmp_redis_embedded_socket(a), path);
    snprintf(path, sizeof path, "%s/redis.conf", statedir);
    char *conf = NULL;
    size_t len = 0;
    assert_int_equal(vmp_file_read(path, &conf, &len, NULL), 0);
    assert_non_null(strstr(conf, "port 0\n"));
    assert_non_null(strstr(conf, "appendonly yes\n"));
    assert_non_null(strstr(conf, "daemonize no\n"));
    free(conf);

    vmp_store *s = open_store(a);
    vmp_err err = {0};
    assert_int_equal(vmp_store_token_create(s, "tok", "alice", 1700000000, &err), 0);
    vmp_store_free(s);

    /* A second opener reuses the running server and does not own it. */
    vmp_redis_embedded *b = start_ok();
    assert_false(vmp_redis_embedded_owned(b));
    assert_int_equal(vmp_redis_embedded_pid(b), pid);
    assert_string_equal(vmp_redis_embedded_socket(b), vmp_redis_embedded_socket(a));
    vmp_redis_embedded_stop(b);
    assert_true(vmp_test_pid_alive(pid));
    s = open_store(a);
    assert_int_equal(vmp_store_ping(s, &err), 0);
    vmp_store_free(s);

    /* The owner stops it: process gone, socket gone. */
    vmp_redis_embedded_stop(a);
    assert_false(vmp_test_pid_alive(pid));
    assert_int_equal(access(path, F_OK), 0); /* the conf stays */
    snprintf(path, sizeof path, "%s/redis.sock", statedir);
    assert_int_equal(access(path, F_OK), -1);

    /* Append-only persistence: the data survives a restart. */
    a = start_ok();
    assert_true(vmp_redis_embedded_owned(a));
    assert_int_not_equal(vmp_redis_embedded_pid(a), pid);
    pid = vmp_redis_embedded_pid(a);
    s = open_store(a);
    vmp_strlist kv = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_token_get(s, "tok", &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "user"), "alice");
    vmp_strlist_clear(&kv);
    vmp_store_free(s);
    vmp_redis_embedded_stop(a);
    assert_false(vmp_test_pid_alive(pid));
}

static void test_owner_leaves_it_to_users_then_adopted(void **state)
{
    (void)state;
    NEED_REDIS();
    vmp_redis_embedded *a = start_ok();
    pid_t pid = vmp_redis_embedded_pid(a);
    vmp_redis_embedded *b = start_ok();
    assert_false(vmp_redis_embedded_owned(b));
    /* The owner closes while b still uses the server: it stays up. */
    vmp_redis_embedded_stop(a);
    assert_true(vmp_test_pid_alive(pid));
    vmp_store *s = open_store(b);
    vmp_err err = {0};
    assert_int_equal(vmp_store_ping(s, &err), 0);
    vmp_store_free(s);
    /* b never owned it: it stays up after b too ... */
    vmp_redis_embedded_stop(b);
    assert_true(vmp_test_pid_alive(pid));
    /* ... until an opener that is its only user adopts and stops it. */
    vmp_redis_embedded *c = start_ok();
    assert_true(vmp_redis_embedded_owned(c));
    assert_int_equal(vmp_redis_embedded_pid(c), pid);
    vmp_redis_embedded_stop(c);
    assert_true(wait_dead(pid, 5));
}

static void test_dies_with_parent(void **state)
{
    (void)state;
    NEED_REDIS();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(fds[0]);
        vmp_redis_embedded_opts o = {.state_dir = statedir};
        vmp_redis_embedded *e = NULL;
        pid_t p = -1;
        if (vmp_redis_embedded_start(&o, &e, NULL) == 0)
            p = vmp_redis_embedded_pid(e);
        if (write(fds[1], &p, sizeof p) != sizeof p)
            _exit(2);
        for (;;)
            pause();
    }
    close(fds[1]);
    pid_t server = -1;
    assert_int_equal(read(fds[0], &server, sizeof server), (ssize_t)sizeof server);
    close(fds[0]);
    assert_true(server > 0);
    assert_true(vmp_test_pid_alive(server));
    /* vmpool is SIGKILLed: its server must not be left behind. */
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    assert_true(wait_dead(server, 10));
}

static void test_missing_binary(void **state)
{
    (void)state;
    vmp_redis_embedded_opts o = {.state_dir = statedir, .server_path = "/nonexistent/redis-server"};
    vmp_redis_embedded *e = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_redis_embedded_start(&o, &e, &err), VMP_EIO);
    assert_null(e);
    assert_string_equal(err.msg, "embedded redis: cannot run /nonexistent/redis-server: No such "
                                 "file or directory");
}

static void test_failing_server_log_tail(void **state)
{
    (void)state;
    char script[256];
    snprintf(script, sizeof script, "%s/fake-redis-server", base);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\necho \"starting\"\necho \"FATAL CONFIG FILE ERROR: boom\" >&2\nexit 1\n", f);
    fclose(f);
    chmod(script, 0700);
    vmp_redis_embedded_opts o = {.state_dir = statedir, .server_path = script};
    vmp_redis_embedded *e = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_redis_embedded_start(&o, &e, &err), VMP_EIO);
    assert_null(e);
    assert_non_null(strstr(err.msg, "exited during start"));
    assert_non_null(strstr(err.msg, "starting | FATAL CONFIG FILE ERROR: boom"));
}

static void test_server_never_answers(void **state)
{
    (void)state;
    char script[256];
    snprintf(script, sizeof script, "%s/silent-redis-server", base);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\necho \"waiting forever\"\nexec sleep 60\n", f);
    fclose(f);
    chmod(script, 0700);
    vmp_redis_embedded_opts o = {
        .state_dir = statedir, .server_path = script, .start_timeout = 0.5};
    vmp_redis_embedded *e = NULL;
    vmp_err err = {0};
    double t0 = vmp_monotonic();
    assert_int_equal(vmp_redis_embedded_start(&o, &e, &err), VMP_ETIMEDOUT);
    assert_true(vmp_monotonic() - t0 < 5);
    assert_non_null(strstr(err.msg, "no answer"));
    assert_non_null(strstr(err.msg, "waiting forever"));
}

static void test_bad_args(void **state)
{
    (void)state;
    vmp_redis_embedded *e = NULL;
    vmp_err err = {0};
    vmp_redis_embedded_opts o = {0};
    assert_int_equal(vmp_redis_embedded_start(&o, &e, &err), VMP_EINVAL);
    char longdir[200];
    memset(longdir, 'x', sizeof longdir);
    int n = snprintf(longdir, sizeof longdir, "%s/", base);
    memset(longdir + n, 'd', sizeof longdir - (size_t)n - 1);
    longdir[sizeof longdir - 1] = '\0';
    o.state_dir = longdir;
    assert_int_equal(vmp_redis_embedded_start(&o, &e, &err), VMP_EINVAL);
    assert_non_null(strstr(err.msg, "too long"));
    vmp_redis_embedded_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_reuse_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_leaves_it_to_users_then_adopted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dies_with_parent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_server_log_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_never_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
    };
    return cmocka_run_group_tests_name("embedded_redis", tests, group_setup, NULL);
}
