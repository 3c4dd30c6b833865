/* Tests for src/lua: states, sandbox, protected calls and limits, references,
 * the configuration view, and the vmpool.log/metrics/exec/http/sleep bindings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lauxlib.h>

#include "log.h"
#include "lua/script.h"
#include "lua/script_internal.h"
#include "metrics.h"
#include "util.h"

/* ---- helpers ------------------------------------------------------------------- */

static vmp_lua *state(const vmp_lua_opts *o)
{
    vmp_lua_opts def = {0};
    vmp_lua *l = NULL;
    vmp_err err = {0};
    int rc = vmp_lua_new(o ? o : &def, &l, &err);
    if (rc != 0)
        fail_msg("vmp_lua_new: %s", err.msg);
    return l;
}

/* Runs code; returns its rc, err in *err. */
static int run(vmp_lua *l, const char *code, vmp_err *err)
{
    vmp_err_clear(err);
    return vmp_lua_run_string(l, code, "test", err);
}

/* Runs code that must succeed; `return x` leaves nothing (run_string drops results). */
static void ok(vmp_lua *l, const char *code)
{
    vmp_err err;
    if (run(l, code, &err) != 0)
        fail_msg("lua failed: %s\n%s", err.msg, vmp_lua_last_error(l));
}

/* Evaluates an expression to a string (tostring). */
static const char *eval(vmp_lua *l, const char *expr, char *buf, size_t len)
{
    lua_State *L = vmp_lua_state(l);
    char *code = vmp_asprintf("return tostring(%s)", expr);
    assert_int_equal(luaL_loadstring(L, code), LUA_OK);
    free(code);
    vmp_err err = {0};
    if (vmp_lua_pcall(L, 0, 1, &err) != 0)
        fail_msg("eval %s: %s", expr, err.msg);
    snprintf(buf, len, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return buf;
}

#define assert_eval(l, expr, want)                                                                 \
    do {                                                                                           \
        char b_[512];                                                                              \
        assert_string_equal(eval(l, expr, b_, sizeof b_), want);                                   \
    } while (0)

typedef struct captured {
    int n;
    vmp_log_level level[16];
    char subsys[16][64], pool[16][64], vm[16][64], msg[16][512];
} captured;

static void capture(vmp_log_level level, const char *subsys, const char *pool, const char *vm,
                    const char *msg, void *ud)
{
    captured *c = ud;
    if (c->n >= 16)
        return;
    c->level[c->n] = level;
    snprintf(c->subsys[c->n], 64, "%s", subsys);
    snprintf(c->pool[c->n], 64, "%s", pool ? pool : "-");
    snprintf(c->vm[c->n], 64, "%s", vm ? vm : "-");
    snprintf(c->msg[c->n], 512, "%s", msg);
    c->n++;
}

/* ---- states and sandbox -------------------------------------------------------------- */

static void test_sandbox(void **state_)
{
    (void)state_;
    vmp_lua *l = state(NULL);
    assert_eval(l, "io", "nil");
    assert_eval(l, "os.execute", "nil");
    assert_eval(l, "os.exit", "nil");
    assert_eval(l, "os.remove", "nil");
    assert_eval(l, "loadfile", "nil");
    assert_eval(l, "dofile", "nil");
    assert_eval(l, "string.dump", "nil");
    assert_eval(l, "debug.sethook", "nil");
    assert_eval(l, "type(debug.traceback)", "function");
    assert_eval(l, "type(os.time())", "number");
    assert_eval(l, "package.loadlib", "nil");
    /* require: the modules compiled in, nothing from the file system */
    assert_eval(l, "type(require('vmpool.provider'))", "table");
    assert_eval(l, "require('vmpool') == vmpool", "true");
    assert_eval(l, "pcall(require, 'socket')", "false");
    assert_eval(l, "select(2, pcall(require, 'io')):match('not found') ~= nil", "true");
    /* load: text yes, binary no (even when asked for) */
    assert_eval(l, "load('return 1 + 1')()", "2");
    assert_eval(l, "load('\\27Lua', 'x', 'b') == nil", "true");
    assert_eval(l, "select(2, load('\\27Lua', 'x', 'b'))",
                "attempt to load a binary chunk (mode is 't')");
    assert_eval(l, "vmpool.role", "plain");
    vmp_lua_free(l);

    vmp_lua_opts o = {.unsandboxed = true};
    l = state(&o);
    assert_eval(l, "type(io.open)", "function");
    assert_eval(l, "type(os.execute)", "function");
    assert_eval(l, "type(require('vmpool.policy'))", "table");
    vmp_lua_free(l);
}

static void test_pcall_errors(void **state_)
{
    (void)state_;
    vmp_lua *l = state(NULL);
    lua_State *L = vmp_lua_state(l);
    vmp_err err;
    int top = lua_gettop(L);
    assert_int_equal(run(l, "local function inner() error('boom') end\ninner()", &err),
                     VMP_EFAILED);
    assert_string_equal(err.msg, "test:1: boom");
    assert_non_null(strstr(vmp_lua_last_error(l), "stack traceback:"));
    assert_non_null(strstr(vmp_lua_last_error(l), "inner"));
    assert_int_equal(lua_gettop(L), top);

    /* a non-string error object */
    assert_int_equal(run(l, "error({})", &err), VMP_EFAILED);
    assert_string_equal(err.msg, "(error object is a table value)");
    assert_int_equal(run(l,
                         "error(setmetatable({}, {__tostring = function() return 'custom' "
                         "end}))",
                         &err),
                     VMP_EFAILED);
    assert_string_equal(err.msg, "custom");

    /* syntax errors name the chunk and line */
    assert_int_equal(run(l, "x = = 1", &err), VMP_EINVAL);
    assert_non_null(strstr(err.msg, "test:1:"));
    assert_int_equal(lua_gettop(L), top);

    /* files: missing, then a good one */
    assert_int_equal(vmp_lua_run_file(l, "/nonexistent/x.lua", &err), VMP_ENOENT);
    char path[] = "/tmp/vmp-lua-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *code = "answer = 42\n";
    assert_int_equal(write(fd, code, strlen(code)), (ssize_t)strlen(code));
    close(fd);
    assert_int_equal(vmp_lua_run_file(l, path, &err), 0);
    assert_eval(l, "answer", "42");
    unlink(path);
    assert_int_equal(lua_gettop(L), top);
    vmp_lua_free(l);
}

static void test_instruction_limit(void **state_)
{
    (void)state_;
    vmp_lua_opts o = {.instruction_limit = 100000};
    vmp_lua *l = state(&o);
    vmp_err err;
    assert_int_equal(run(l, "while true do end", &err), VMP_ETIMEDOUT);
    if (!strstr(err.msg, "instruction limit"))
        fail_msg("%s", err.msg);
    /* a script that catches the error cannot keep going */
    assert_int_equal(run(l, "while true do pcall(function() while true do end end) end", &err),
                     VMP_ETIMEDOUT);
    /* nor can a coroutine made before the call */
    ok(l, "co = coroutine.wrap(function() while true do end end)");
    assert_int_equal(run(l, "co()", &err), VMP_ETIMEDOUT);
    /* the budget is per call: the next call runs normally */
    ok(l, "local n = 0 for i = 1, 1000 do n = n + i end assert(n == 500500)");
    vmp_lua_free(l);
}

static void test_time_limit(void **state_)
{
    (void)state_;
    vmp_lua_opts o = {.instruction_limit = -1, .time_limit = 0.2};
    vmp_lua *l = state(&o);
    vmp_err err;
    double t0 = vmp_monotonic();
    assert_int_equal(run(l, "while true do end", &err), VMP_ETIMEDOUT);
    assert_non_null(strstr(err.msg, "time limit"));
    assert_true(vmp_monotonic() - t0 < 5);
    /* a sleep past the deadline is refused at once */
    t0 = vmp_monotonic();
    assert_int_equal(run(l, "vmpool.sleep(10)", &err), VMP_EFAILED);
    assert_non_null(strstr(err.msg, "time limit"));
    assert_true(vmp_monotonic() - t0 < 1);
    ok(l, "vmpool.sleep(0.01)");
    /* exec is cut at the deadline */
    t0 = vmp_monotonic();
    ok(l, "r = vmpool.exec({'sleep', '10'})");
    assert_eval(l, "r.timed_out", "true");
    assert_true(vmp_monotonic() - t0 < 2);
    vmp_lua_free(l);
}

static void test_memory_limit(void **state_)
{
    (void)state_;
    vmp_lua_opts o = {.memory_limit = 4u * 1024u * 1024u, .instruction_limit = -1};
    vmp_lua *l = state(&o);
    vmp_err err;
    assert_int_equal(run(l, "t = {} for i = 1, 1e9 do t[i] = ('x'):rep(100) .. i end", &err),
                     VMP_ENOMEM);
    ok(l, "t = nil collectgarbage()");
    assert_true(vmp_lua_memory(l) < 4u * 1024u * 1024u);
    ok(l, "x = ('y'):rep(1000)");
    vmp_lua_free(l);
}

/* Every allocation of a state's setup may fail: no crash, no leak (the
 * sanitizer build checks the latter). */
static void test_alloc_failures(void **state_)
{
    (void)state_;
    /* how many allocations a full setup takes */
    vmp_lua *l = state(NULL);
    vmp_lua_free(l);
    int failures = 0;
    for (long n = 0; n < 5000; n += 7) {
        vmp_lua *x = state(NULL);
        vmp_lua_fail_alloc_after(x, n);
        vmp_err err;
        int rc = run(x,
                     "local t = {} for i = 1, 50 do t[i] = {i, tostring(i)} end "
                     "local s = vmpool.exec({'true'}) vmpool.log.debug('x %d', 1) "
                     "local c = vmpool.config()",
                     &err);
        if (rc != 0) {
            failures++;
            assert_true(rc == VMP_ENOMEM || rc == VMP_EFAILED || rc == VMP_EINVAL);
        }
        vmp_lua_fail_alloc_after(x, -1);
        vmp_lua_free(x);
        if (rc == 0)
            break;
    }
    assert_true(failures > 0);
}

static void test_refs(void **state_)
{
    (void)state_;
    long before = vmp_lua_live_refs();
    vmp_lua *l = state(NULL);
    lua_State *L = vmp_lua_state(l);
    lua_newtable(L);
    int r1 = vmp_lua_ref(L);
    lua_pushnil(L);
    int r2 = vmp_lua_ref(L); /* nil: LUA_REFNIL, not counted */
    assert_int_equal(r2, LUA_REFNIL);
    assert_int_equal(vmp_lua_live_refs(), before + 1);
    vmp_lua_unref(L, r1);
    vmp_lua_unref(L, r2);
    vmp_lua_unref(L, LUA_NOREF);
    assert_int_equal(vmp_lua_live_refs(), before);
    assert_int_equal(lua_gettop(L), 0);
    vmp_lua_free(l);
}

/* ---- configuration view ------------------------------------------------------------------ */

static void test_config_view(void **state_)
{
    (void)state_;
    vmp_config *cfg = NULL;
    vmp_err err = {0};
    vmp_config_opts co = {.no_env = true};
    const char *yaml = ":config:\n  task_limit: 7\n  site_name: '5'\n  ratio: 1.5\n"
                       "  flag: true\n:pools:\n  - name: a\n    size: 2\n    alias: [x, y]\n"
                       "    provider: :dummy\n";
    assert_int_equal(vmp_config_load_string(yaml, "t.yaml", &co, &cfg, NULL, &err), 0);
    vmp_lua_opts o = {.config = cfg};
    vmp_lua *l = state(&o);
    assert_eval(l, "math.type(vmpool.config().config.task_limit)", "integer");
    assert_eval(l, "vmpool.config().config.task_limit", "7");
    assert_eval(l, "type(vmpool.config().config.site_name)", "string"); /* quoted */
    assert_eval(l, "vmpool.config().config.ratio", "1.5");
    assert_eval(l, "vmpool.config().config.flag", "true");
    assert_eval(l, "vmpool.pools()[1].alias[2]", "y");
    assert_eval(l, "#vmpool.pools()", "1");
    assert_eval(l, "vmpool.pools()[1].provider", "dummy");
    assert_eval(l,
                "(function() local n = 0 for k in pairs(vmpool.pools()[1]) do n = n + 1 end "
                "return n >= 4 end)()",
                "true");
    vmp_err e2;
    assert_int_equal(run(l, "vmpool.config().config.task_limit = 1", &e2), VMP_EFAILED);
    assert_non_null(strstr(e2.msg, "read-only"));
    assert_int_equal(run(l, "vmpool.pools()[2] = {}", &e2), VMP_EFAILED);
    assert_eval(l, "getmetatable(vmpool.config())", "read-only");
    vmp_lua_free(l);
    vmp_config_free(cfg);
}

static void test_to_node(void **state_)
{
    (void)state_;
    vmp_lua *l = state(NULL);
    lua_State *L = vmp_lua_state(l);
    char msg[256];
    vmp_cfg_mark mark = {"f.lua", 3, 0};
    static const struct {
        const char *expr;
        const char *error; /* NULL: converts */
    } cases[] = {
        {"{name = 'a', size = 3, ratio = 0.5, on = true, tags = {'x', 'y'}, n = vmpool.null}",
         NULL},
        {"{}", NULL},
        {"{1, 2, x = 3}", "either a list or a map"},
        {"{[1.5] = 1}", "either a list or a map"},
        {"{1, nil, 3}", "either a list or a map"},
        {"{f = print}", "f: a function value has no configuration form"},
        {"(function() local t = {} t.t = t return t end)()", "nested too deeply"},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(cases); i++) {
        char *code = vmp_asprintf("return %s", cases[i].expr);
        assert_int_equal(luaL_dostring(L, code), LUA_OK);
        free(code);
        vmp_cfg_node *n = vmp_lua_to_node(L, -1, mark, msg, sizeof msg);
        lua_pop(L, 1);
        if (cases[i].error) {
            assert_null(n);
            if (!strstr(msg, cases[i].error))
                fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, msg, cases[i].error);
        } else {
            assert_non_null(n);
            assert_int_equal(vmp_cfg_kind_of(n), VMP_CFG_MAP);
            if (i == 0) {
                assert_string_equal(vmp_cfg_key_at(n, 0), "name"); /* name first */
                assert_int_equal(vmp_cfg_get_int(n, "size", -1), 3);
                assert_false(vmp_cfg_scalar_quoted(vmp_cfg_get(n, "size")));
                assert_true(vmp_cfg_scalar_quoted(vmp_cfg_get(n, "name")));
                assert_true(vmp_cfg_get_bool(n, "on", false));
                assert_int_equal(vmp_cfg_len(vmp_cfg_get(n, "tags")), 2);
                assert_int_equal(vmp_cfg_kind_of(vmp_cfg_get(n, "n")), VMP_CFG_NULL);
                assert_int_equal(vmp_cfg_mark_of(vmp_cfg_get(n, "size")).line, 3);
            }
            vmp_cfg_free(n);
        }
    }
    assert_int_equal(lua_gettop(L), 0);
    vmp_lua_free(l);
}

/* ---- log, metrics, sleep --------------------------------------------------------------------- */

static void test_log(void **state_)
{
    (void)state_;
    captured c = {0};
    vmp_log_set_callback(capture, &c);
    vmp_log_set_level(VMP_LOG_INFO);
    vmp_lua_opts o = {.subsys = "lua.test"};
    vmp_lua *l = state(&o);
    ok(l, "vmpool.log.info('hello %s %d', 'world', 3)");
    ok(l, "vmpool.log.debug('dropped')");
    ok(l, "vmpool.log('warn', 'plain %d')"); /* one argument: not a format */
    ok(l, "vmpool.log.vm('error', 'p1', 'vm1', 'bad %s', 'thing')");
    ok(l, "vmpool.log.info({})");
    vmp_log_set_callback(NULL, NULL);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.subsys[0], "lua.test");
    assert_string_equal(c.msg[0], "hello world 3");
    assert_int_equal(c.level[1], VMP_LOG_WARN);
    assert_string_equal(c.msg[1], "plain %d");
    assert_int_equal(c.level[2], VMP_LOG_ERROR);
    assert_string_equal(c.pool[2], "p1");
    assert_string_equal(c.vm[2], "vm1");
    assert_string_equal(c.msg[2], "bad thing");
    assert_non_null(strstr(c.msg[3], "table: "));
    vmp_err err;
    assert_int_equal(run(l, "vmpool.log('loud', 'x')", &err), VMP_EFAILED);
    assert_non_null(strstr(err.msg, "expected debug, info, warn or error"));
    vmp_lua_free(l);
}

typedef struct recorder {
    char lines[8][128];
    int n;
} recorder;

static void rec_increment(void *ud, const char *name)
{
    recorder *r = ud;
    if (r->n < 8)
        snprintf(r->lines[r->n++], 128, "inc %s", name);
}

static void rec_gauge(void *ud, const char *name, double v)
{
    recorder *r = ud;
    if (r->n < 8)
        snprintf(r->lines[r->n++], 128, "gauge %s %g", name, v);
}

static void rec_timing(void *ud, const char *name, double ms)
{
    recorder *r = ud;
    if (r->n < 8)
        snprintf(r->lines[r->n++], 128, "timing %s %g", name, ms);
}

static void test_metrics(void **state_)
{
    (void)state_;
    static const vmp_metrics_ops ops = {rec_increment, rec_gauge, rec_timing, NULL};
    recorder r = {0};
    vmp_metrics *m = vmp_metrics_new(&ops, &r);
    vmp_lua_opts o = {.metrics = m};
    vmp_lua *l = state(&o);
    ok(l, "vmpool.metrics.increment('a.b') vmpool.metrics.gauge('g', 2.5) "
          "vmpool.metrics.timing('t', 12)");
    assert_int_equal(r.n, 3);
    assert_string_equal(r.lines[0], "inc a.b");
    assert_string_equal(r.lines[1], "gauge g 2.5");
    assert_string_equal(r.lines[2], "timing t 12");
    vmp_err err;
    assert_int_equal(run(l, "vmpool.metrics.gauge('g')", &err), VMP_EFAILED);
    assert_int_equal(r.n, 3);
    vmp_lua_free(l);
    vmp_metrics_free(m);
}

static void test_sleep_now(void **state_)
{
    (void)state_;
    vmp_lua *l = state(NULL);
    double t0 = vmp_monotonic();
    ok(l, "vmpool.sleep(0.05)");
    assert_true(vmp_monotonic() - t0 >= 0.05);
    vmp_err err;
    assert_int_equal(run(l, "vmpool.sleep(-1)", &err), VMP_EFAILED);
    assert_int_equal(run(l, "vmpool.sleep('x')", &err), VMP_EFAILED);
    ok(l, "assert(math.abs(vmpool.now() - os.time()) < 2)");
    vmp_lua_free(l);
}

/* ---- exec
 * ---------------------------------------------------------------------------------------- */

static void test_exec(void **state_)
{
    (void)state_;
    vmp_lua *l = state(NULL);
    ok(l, "r = vmpool.exec({'echo', 'hello', 'world'})");
    assert_eval(l, "r.stdout", "hello world\n");
    assert_eval(l, "r.status", "0");
    assert_eval(l, "r.ok", "true");
    assert_eval(l, "r.timed_out", "false");
    /* stdin, stderr, exit status; no shell: ';' is an argument */
    ok(l, "r = vmpool.exec({'cat'}, {stdin = 'data\\0with nul'})");
    assert_eval(l, "#r.stdout", "13");
    ok(l, "r = vmpool.exec({'sh', '-c', 'echo out; echo err >&2; exit 3'})");
    assert_eval(l, "r.stdout .. r.stderr .. r.status", "out\nerr\n3");
    assert_eval(l, "r.ok", "false");
    ok(l, "r = vmpool.exec({'echo', 'a;', 'rm', '-rf', '/'})");
    assert_eval(l, "r.stdout", "a; rm -rf /\n");
    /* numbers are arguments too */
    ok(l, "r = vmpool.exec({'echo', 42})");
    assert_eval(l, "r.stdout", "42\n");
    /* environment and directory */
    ok(l, "r = vmpool.exec({'sh', '-c', 'echo $VMP_X; pwd'}, {env = {VMP_X = 'yes'}, cwd = '/'})");
    assert_eval(l, "r.stdout", "yes\n/\n");
    /* killed at the timeout, with its children */
    double t0 = vmp_monotonic();
    ok(l, "r = vmpool.exec({'sh', '-c', 'sleep 30 & sleep 30'}, {timeout = 0.3})");
    assert_true(vmp_monotonic() - t0 < 5);
    assert_eval(l, "r.timed_out", "true");
    assert_eval(l, "r.signal", "9");
    assert_eval(l, "r.status", "nil");
    /* a signal */
    ok(l, "r = vmpool.exec({'sh', '-c', 'kill -TERM $$'})");
    assert_eval(l, "r.signal", "15");
    /* output cap */
    ok(l, "r = vmpool.exec({'head', '-c', '100000', '/dev/zero'}, {output_max = 1000})");
    assert_eval(l, "#r.stdout", "1000");
    assert_eval(l, "r.truncated", "true");
    /* cannot start: nil, message, code */
    ok(l, "r, msg, code = vmpool.exec({'vmp-no-such-command'})");
    assert_eval(l, "r", "nil");
    assert_eval(l, "code", "ENOENT");
    assert_eval(l, "msg", "vmp-no-such-command: command not found");
    ok(l, "r, msg, code = vmpool.exec({'/etc/passwd'})");
    assert_eval(l, "code", "EIO");
    /* bad arguments raise */
    vmp_err err;
    assert_int_equal(run(l, "vmpool.exec({})", &err), VMP_EFAILED);
    assert_int_equal(run(l, "vmpool.exec({'echo', {}})", &err), VMP_EFAILED);
    assert_non_null(strstr(err.msg, "argv[2]: expected a string"));
    assert_int_equal(run(l, "vmpool.exec('echo hi')", &err), VMP_EFAILED);
    assert_int_equal(run(l, "vmpool.exec({'echo'}, {env = {X = {}}})", &err), VMP_EFAILED);
    assert_int_equal(lua_gettop(vmp_lua_state(l)), 0);
    vmp_lua_free(l);
}

/* ---- http
 * ------------------------------------------------------------------------------------------ */

typedef struct server {
    int fd, port;
    pthread_t th;
    int mode; /* 0: answer, 1: accept and stay silent */
    char request[4096];
} server;

static void *serve(void *arg)
{
    server *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        ssize_t n = read(c, s->request, sizeof s->request - 1);
        s->request[n > 0 ? n : 0] = 0;
        if (s->mode == 1) {
            sleep(3);
            close(c);
            continue;
        }
        const char *body = "{\"ok\":true}";
        char resp[512];
        int len = snprintf(resp, sizeof resp,
                           "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                           "X-Twice: a\r\nX-Twice: b\r\nContent-Length: %zu\r\n"
                           "Connection: close\r\n\r\n%s",
                           strlen(body), body);
        ssize_t w = write(c, resp, (size_t)len);
        (void)w;
        close(c);
    }
}

static void server_start(server *s, int mode)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(listen(s->fd, 8), 0);
    assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void server_stop(server *s)
{
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->th, NULL);
}

static void test_http(void **state_)
{
    (void)state_;
    server s;
    server_start(&s, 0);
    vmp_lua *l = state(NULL);
    char code[512];
    snprintf(code, sizeof code,
             "r, msg, c = vmpool.http{url = 'http://127.0.0.1:%d/api/v3/x', method = 'POST', "
             "body = '{\"a\":1}', headers = {['Content-Type'] = 'application/json', "
             "['X-Token'] = 'abc'}}",
             s.port);
    ok(l, code);
    assert_eval(l, "msg", "nil");
    assert_eval(l, "r.status", "201");
    assert_eval(l, "r.body", "{\"ok\":true}");
    assert_eval(l, "r.headers['content-type']", "application/json");
    assert_eval(l, "r.headers['x-twice']", "a, b");
    assert_non_null(strstr(s.request, "POST /api/v3/x HTTP/1.1"));
    assert_non_null(strstr(s.request, "X-Token: abc"));
    assert_non_null(strstr(s.request, "{\"a\":1}"));
    snprintf(code, sizeof code, "r = vmpool.http('http://127.0.0.1:%d/get')", s.port);
    ok(l, code);
    assert_non_null(strstr(s.request, "GET /get HTTP/1.1"));
    server_stop(&s);

    /* nothing listening: nil, message, code */
    snprintf(code, sizeof code, "r, msg, c = vmpool.http{url = 'http://127.0.0.1:%d/'}", s.port);
    ok(l, code);
    assert_eval(l, "r", "nil");
    assert_eval(l, "c", "EIO");
    /* a silent server: the timeout */
    server_start(&s, 1);
    snprintf(code, sizeof code,
             "r, msg, c = vmpool.http{url = 'http://127.0.0.1:%d/', timeout = 0.3}", s.port);
    double t0 = vmp_monotonic();
    ok(l, code);
    assert_true(vmp_monotonic() - t0 < 2.5);
    assert_eval(l, "c", "ETIMEDOUT");
    server_stop(&s);
    /* argument errors raise */
    vmp_err err;
    assert_int_equal(run(l, "vmpool.http{url = 'file:///etc/passwd'}", &err), VMP_EFAILED);
    assert_non_null(strstr(err.msg, "http:// or https://"));
    assert_int_equal(
        run(l, "vmpool.http{url = 'http://x/', headers = {['A'] = 'b\\r\\nC: d'}}", &err),
        VMP_EFAILED);
    assert_int_equal(run(l, "vmpool.http{url = 'http://x/', method = 'get'}", &err), VMP_EFAILED);
    assert_int_equal(lua_gettop(vmp_lua_state(l)), 0);
    vmp_lua_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sandbox),
        cmocka_unit_test(test_pcall_errors),
        cmocka_unit_test(test_instruction_limit),
        cmocka_unit_test(test_time_limit),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_refs),
        cmocka_unit_test(test_config_view),
        cmocka_unit_test(test_to_node),
        cmocka_unit_test(test_log),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_sleep_now),
        cmocka_unit_test(test_exec),
        cmocka_unit_test(test_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
