/* Tests for src/util.c, src/err.c and src/clock.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "clock.h"
#include "err.h"
#include "util.h"

static void test_strlist(void **state)
{
    (void)state;
    vmp_strlist l = VMP_STRLIST_INIT;
    for (int i = 0; i < 20; i++) {
        char s[8];
        snprintf(s, sizeof s, "v%02d", 19 - i);
        assert_int_equal(vmp_strlist_push(&l, s), 0);
    }
    assert_int_equal(l.n, 20);
    assert_int_equal(vmp_strlist_find(&l, "v19"), 0);
    assert_int_equal(vmp_strlist_find(&l, "nope"), -1);
    vmp_strlist_sort(&l);
    assert_string_equal(l.v[0], "v00");
    assert_string_equal(l.v[19], "v19");
    vmp_strlist_remove(&l, 0);
    assert_int_equal(l.n, 19);
    assert_string_equal(l.v[0], "v01");
    assert_false(vmp_strlist_contains(&l, "v00"));
    vmp_strlist_clear(&l);
    assert_int_equal(l.n, 0);
    assert_null(l.v);
}

static void test_buf(void **state)
{
    (void)state;
    vmp_buf b = VMP_BUF_INIT;
    assert_string_equal(vmp_buf_str(&b), "");
    for (int i = 0; i < 1000; i++)
        vmp_buf_printf(&b, "%d,", i % 10);
    assert_int_equal(b.len, 2000);
    assert_memory_equal(b.s, "0,1,2,", 6);
    vmp_buf_reset(&b);
    vmp_buf_puts(&b, "abc");
    char *s = vmp_buf_take(&b);
    assert_string_equal(s, "abc");
    assert_null(b.s);
    free(s);
    vmp_buf_free(&b);
}

static void test_parse_numbers(void **state)
{
    (void)state;
    long long v;
    double d;
    assert_int_equal(vmp_parse_long(" 42 ", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(vmp_parse_long("-7", &v), 0);
    assert_int_equal(v, -7);
    assert_int_equal(vmp_parse_long("4x", &v), -1);
    assert_int_equal(vmp_parse_long("", &v), -1);
    assert_int_equal(vmp_parse_long(NULL, &v), -1);
    assert_int_equal(vmp_parse_long("99999999999999999999999", &v), -1);
    assert_int_equal(vmp_parse_double("2.5", &d), 0);
    assert_true(d == 2.5);
    assert_int_equal(vmp_parse_double("two", &d), -1);
}

static void test_time_formats(void **state)
{
    (void)state;
    setenv("TZ", "America/Los_Angeles", 1);
    tzset();
    /* 2017-05-17 17:11:12 UTC = 10:11:12 PDT (-0700). */
    double t = 1495041072;
    char buf[VMP_TIME_STR_MAX];
    vmp_time_format(t, buf, sizeof buf);
    assert_string_equal(buf, "2017-05-17 10:11:12 -0700");
    vmp_time_format_rfc3339(t, buf, sizeof buf);
    assert_string_equal(buf, "2017-05-17T10:11:12-07:00");
    vmp_date_format(t, buf, sizeof buf);
    assert_string_equal(buf, "2017-05-17");
    vmp_duration_format(12.345, buf, sizeof buf);
    assert_string_equal(buf, "12.35");
    vmp_duration_format(3, buf, sizeof buf);
    assert_string_equal(buf, "3.00");

    double back;
    assert_int_equal(vmp_time_parse("2017-05-17 10:11:12 -0700", &back), 0);
    assert_true(back == t);
    assert_int_equal(vmp_time_parse("2017-05-17T17:11:12Z", &back), 0);
    assert_true(back == t);
    assert_int_equal(vmp_time_parse("2017-05-17T19:11:12+02:00", &back), 0);
    assert_true(back == t);
    assert_int_equal(vmp_time_parse("2017-05-17 10:11:12", &back), 0); /* local */
    assert_true(back == t);
    assert_int_equal(vmp_time_parse("1495041072", &back), 0);
    assert_true(back == t);
    assert_int_equal(vmp_time_parse("yesterday", &back), -1);
    assert_int_equal(vmp_time_parse("2017-13-01 00:00:00 +0000", &back), -1);
    assert_int_equal(vmp_time_parse("2017-05-17 10:11:12 +07x", &back), -1);

    /* Round trip through local formatting in another zone. */
    setenv("TZ", "UTC", 1);
    tzset();
    vmp_time_format(t, buf, sizeof buf);
    assert_string_equal(buf, "2017-05-17 17:11:12 +0000");
    assert_int_equal(vmp_time_parse(buf, &back), 0);
    assert_true(back == t);
}

static void test_err(void **state)
{
    (void)state;
    vmp_err err;
    vmp_err_clear(&err);
    assert_int_equal(err.code, 0);
    assert_int_equal(vmp_err_set(&err, VMP_ENOENT, "pool %s", "x"), VMP_ENOENT);
    assert_string_equal(err.msg, "pool x");
    vmp_err_prefix(&err, "checkout");
    assert_string_equal(err.msg, "checkout: pool x");
    assert_int_equal(err.code, VMP_ENOENT);
    assert_int_equal(vmp_err_set(NULL, VMP_EIO, "ignored"), VMP_EIO);
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    vmp_err_set(&err, VMP_EINVAL, "%s", big);
    assert_int_equal(strlen(err.msg), VMP_ERR_MSG_MAX - 1);
    assert_string_equal(vmp_strerror(VMP_ETIMEDOUT), "timed out");
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/vmp-util-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], nested[256];
    snprintf(path, sizeof path, "%s/f.yaml", dir);
    snprintf(nested, sizeof nested, "%s/a/b/c", dir);
    vmp_err err;
    assert_int_equal(vmp_mkdir_p(nested, 0700, &err), 0);
    struct stat st;
    assert_int_equal(stat(nested, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    assert_int_equal(vmp_file_write_atomic(path, "one\n", 4, &err), 0);
    assert_int_equal(vmp_file_write_atomic(path, "two\n", 4, &err), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(vmp_file_read(path, &data, &len, &err), 0);
    assert_int_equal(len, 4);
    assert_string_equal(data, "two\n");
    free(data);

    /* No temporary file is left behind. */
    DIR *d = opendir(dir);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            entries++;
    closedir(d);
    assert_int_equal(entries, 2); /* f.yaml and a/ */

    data = NULL;
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(vmp_file_read(path, &data, &len, &err), VMP_ENOENT);
    assert_non_null(strstr(err.msg, "missing"));
    snprintf(path, sizeof path, "%s/nodir/x", dir);
    assert_int_equal(vmp_file_write_atomic(path, "x", 1, &err), VMP_EIO);

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_clock(void **state)
{
    (void)state;
    vmp_clock *c = vmp_clock_manual_new(1000);
    assert_true(vmp_clock_now(c) == 1000);
    vmp_clock_advance(c, 60.5);
    assert_true(vmp_clock_now(c) == 1060.5);
    vmp_clock_set(c, 5);
    assert_true(vmp_clock_now(c) == 5);
    vmp_clock_free(c);
    double sys = vmp_clock_now(vmp_clock_system());
    assert_true(sys > 1.7e9);
    vmp_clock_set(vmp_clock_system(), 0); /* ignored */
    assert_true(vmp_clock_now(vmp_clock_system()) >= sys);
    vmp_clock_free(vmp_clock_system()); /* ignored */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strlist),      cmocka_unit_test(test_buf),
        cmocka_unit_test(test_parse_numbers), cmocka_unit_test(test_time_formats),
        cmocka_unit_test(test_err),           cmocka_unit_test(test_files),
        cmocka_unit_test(test_clock),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
