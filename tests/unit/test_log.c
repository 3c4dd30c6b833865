/* Tests for src/log.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

typedef struct captured {
    int calls;
    vmp_log_level level;
    char subsys[32], pool[64], vm[64], msg[256];
} captured;

static void capture(vmp_log_level level, const char *subsys, const char *pool, const char *vm,
                    const char *msg, void *ud)
{
    captured *c = ud;
    c->calls++;
    c->level = level;
    snprintf(c->subsys, sizeof c->subsys, "%s", subsys);
    snprintf(c->pool, sizeof c->pool, "%s", pool ? pool : "-");
    snprintf(c->vm, sizeof c->vm, "%s", vm ? vm : "-");
    snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static void test_levels_and_callback(void **state)
{
    (void)state;
    captured c = {0};
    vmp_log_set_callback(capture, &c);
    vmp_log_set_level(VMP_LOG_WARN);
    vmp_log(VMP_LOG_INFO, "engine", "dropped %d", 1);
    assert_int_equal(c.calls, 0);
    unsigned long errors = vmp_log_error_count();
    vmp_log_vm(VMP_LOG_ERROR, "engine", "debian", "vm1", "clone failed: %s", "boom");
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.level, VMP_LOG_ERROR);
    assert_string_equal(c.subsys, "engine");
    assert_string_equal(c.pool, "debian");
    assert_string_equal(c.vm, "vm1");
    assert_string_equal(c.msg, "clone failed: boom");
    assert_int_equal(vmp_log_error_count(), errors + 1);
    vmp_log_set_callback(NULL, NULL);
    vmp_log_set_level(VMP_LOG_INFO);
}

static void test_parse(void **state)
{
    (void)state;
    vmp_log_level l;
    assert_int_equal(vmp_log_level_parse("DEBUG", &l), 0);
    assert_int_equal(l, VMP_LOG_DEBUG);
    assert_int_equal(vmp_log_level_parse("warning", &l), 0);
    assert_int_equal(l, VMP_LOG_WARN);
    assert_int_equal(vmp_log_level_parse("loud", &l), -1);
    assert_string_equal(vmp_log_level_name(VMP_LOG_ERROR), "ERROR");
}

static void *writer(void *arg)
{
    for (int i = 0; i < 200; i++)
        vmp_log_vm(VMP_LOG_INFO, "t", "pool", "vm", "line %ld %d", (long)(intptr_t)arg, i);
    return NULL;
}

static void test_file_lines_whole(void **state)
{
    (void)state;
    char path[] = "/tmp/vmp-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(vmp_log_open_file(path), 0);
    pthread_t th[4];
    for (intptr_t i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, writer, (void *)i);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    vmp_log_close();

    char *data = NULL;
    size_t len;
    assert_int_equal(vmp_file_read(path, &data, &len, NULL), 0);
    int lines = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        /* [YYYY-MM-DD HH:MM:SS] INFO  t: pool=pool vm=vm line N M */
        assert_int_equal(line[0], '[');
        assert_int_equal(line[20], ']');
        assert_non_null(strstr(line, "INFO  t: pool=pool vm=vm line "));
    }
    assert_int_equal(lines, 800);
    free(data);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_and_callback),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_file_lines_whole),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
