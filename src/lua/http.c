/* vmpool.http: one HTTP(S) request through libcurl. */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "lua/script_internal.h"

#define BODY_MAX_DEFAULT (64u * 1024u * 1024u)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void init_curl(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct http_call {
    /* request (strings borrowed from the Lua stack) */
    const char *url, *method, *body, *ca_file;
    size_t body_len, body_max;
    const char **headers; /* "Name: value", NULL-ended */
    double timeout;
    bool insecure, follow;
    /* response */
    long status;
    vmp_buf resp, resp_headers;
    bool too_big;
    char error[CURL_ERROR_SIZE];
} http_call;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    http_call *c = ud;
    size_t len = size * n;
    if (c->resp.len + len > c->body_max) {
        c->too_big = true;
        return 0; /* aborts the transfer */
    }
    vmp_buf_append(&c->resp, data, len);
    return c->resp.oom ? 0 : len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    http_call *c = ud;
    size_t len = size * n;
    /* a new status line (redirect, 100-continue) starts the headers over */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
        vmp_buf_reset(&c->resp_headers);
    vmp_buf_append(&c->resp_headers, data, len);
    return c->resp_headers.oom ? 0 : len;
}

/* No Lua call in here: the handle and header list are freed on every path. */
static int perform(http_call *c, vmp_err *err)
{
    int rc = 0;
    struct curl_slist *hl = NULL;
    pthread_once(&curl_once, init_curl);
    if (curl_init_rc != CURLE_OK)
        return vmp_err_set(err, VMP_EIO, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    CURL *h = curl_easy_init();
    if (!h)
        return vmp_err_set(err, VMP_ENOMEM, "libcurl: cannot make a handle");
    for (const char **p = c->headers; p && *p; p++) {
        struct curl_slist *n = curl_slist_append(hl, *p);
        if (!n) {
            rc = vmp_err_set(err, VMP_ENOMEM, "http: out of memory");
            goto out;
        }
        hl = n;
    }
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->error);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, c->follow ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "vmpool/" VMP_VERSION);
    if (c->timeout > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)ceil(c->timeout * 1000));
    if (hl)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    if (c->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    }
    if (strcmp(c->method, "GET") == 0 && !c->body)
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    else if (strcmp(c->method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (strcmp(c->method, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);

    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        int code = cc == CURLE_OPERATION_TIMEDOUT ? VMP_ETIMEDOUT : VMP_EIO;
        if (c->too_big)
            rc = vmp_err_set(err, VMP_EIO, "%s: response body larger than %zu bytes", c->url,
                             c->body_max);
        else
            rc = vmp_err_set(err, code, "%s: %s", c->url,
                             c->error[0] ? c->error : curl_easy_strerror(cc));
        goto out;
    }
    if (c->resp.oom || c->resp_headers.oom) {
        rc = vmp_err_set(err, VMP_ENOMEM, "http: out of memory");
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
out:
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return rc;
}

static int push_response(lua_State *L)
{
    http_call *c = lua_touserdata(L, 1);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, c->status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, vmp_buf_str(&c->resp), c->resp.len);
    lua_setfield(L, -2, "body");
    lua_newtable(L); /* headers, names in lower case; repeated ones joined with ", " */
    const char *p = vmp_buf_str(&c->resp_headers);
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        if (colon && strncmp(p, "HTTP/", 5) != 0) {
            luaL_Buffer name;
            luaL_buffinit(L, &name);
            for (const char *q = p; q < colon; q++)
                luaL_addchar(&name, (char)tolower((unsigned char)*q));
            luaL_pushresult(&name);
            const char *v = colon + 1;
            while (v < p + n && (*v == ' ' || *v == '\t'))
                v++;
            size_t vlen = (size_t)(p + n - v);
            lua_pushvalue(L, -1);
            lua_rawget(L, -3);
            if (lua_isstring(L, -1)) {
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, vlen);
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, vlen);
            }
            lua_rawset(L, -3);
        }
        p += n;
        if (eol)
            p += 2;
    }
    lua_setfield(L, -2, "headers");
    return 1;
}

/* vmpool.http{url=, method="GET", headers={}, body=, timeout=30, insecure=false,
 *             ca_file=, follow=false, max_body=} -> {status, body, headers} | nil, msg, code */
static int l_http(lua_State *L)
{
    http_call c;
    memset(&c, 0, sizeof c);
    luaL_checkstack(L, 24, NULL);
    if (lua_type(L, 1) == LUA_TSTRING) { /* vmpool.http(url) */
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, 1);
        lua_setfield(L, -2, "url");
        lua_replace(L, 1);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "url");
    c.url = luaL_checkstring(L, -1);
    luaL_argcheck(L, strncmp(c.url, "http://", 7) == 0 || strncmp(c.url, "https://", 8) == 0, 1,
                  "url must be http:// or https://");
    lua_getfield(L, 1, "method");
    c.method = luaL_optstring(L, -1, "GET");
    for (const char *m = c.method; *m; m++)
        luaL_argcheck(L, isupper((unsigned char)*m), 1,
                      "method must be upper case (GET, POST, ...)");
    lua_getfield(L, 1, "body");
    c.body = luaL_optlstring(L, -1, NULL, &c.body_len);
    lua_getfield(L, 1, "timeout");
    c.timeout = luaL_optnumber(L, -1, 30);
    lua_getfield(L, 1, "insecure");
    c.insecure = lua_toboolean(L, -1);
    lua_getfield(L, 1, "follow");
    c.follow = lua_toboolean(L, -1);
    lua_getfield(L, 1, "ca_file");
    c.ca_file = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 1, "max_body");
    lua_Integer max = luaL_optinteger(L, -1, BODY_MAX_DEFAULT);
    luaL_argcheck(L, max > 0, 1, "max_body must be > 0");
    c.body_max = (size_t)max;

    lua_getfield(L, 1, "headers");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        int ht = lua_gettop(L);
        lua_newtable(L); /* anchor of the "Name: value" strings */
        int anchor = lua_gettop(L);
        lua_Integer n = 0;
        lua_pushnil(L);
        while (lua_next(L, ht)) {
            if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
                return luaL_error(L, "headers: expected string names and string values");
            const char *name = lua_tostring(L, -2);
            if (strpbrk(name, "\r\n:") || strpbrk(lua_tostring(L, -1), "\r\n"))
                return luaL_error(L, "headers: a name or value holds a line break or colon");
            lua_pushfstring(L, "%s: %s", name, lua_tostring(L, -1));
            lua_rawseti(L, anchor, ++n);
            lua_pop(L, 1);
        }
        c.headers = lua_newuserdatauv(L, ((size_t)n + 1) * sizeof *c.headers, 0);
        for (lua_Integer i = 0; i < n; i++) {
            lua_rawgeti(L, anchor, i + 1);
            c.headers[i] = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        c.headers[n] = NULL;
    }
    double left = vmp_lua_time_left(L);
    if (left < HUGE_VAL && (c.timeout <= 0 || c.timeout > left))
        c.timeout = left > 0.001 ? left : 0.001;

    /* Nothing below raises until the buffers are freed. */
    vmp_err err = {0};
    int rc = perform(&c, &err);
    int st = LUA_OK;
    if (rc == 0)
        st = vmp_lua_protect(L, push_response, &c, 1);
    vmp_buf_free(&c.resp);
    vmp_buf_free(&c.resp_headers);
    if (st != LUA_OK)
        return lua_error(L);
    if (rc != 0)
        return vmp_lua_fail(L, rc, &err);
    return 1;
}

void vmp_lua_open_http(lua_State *L)
{
    lua_pushcfunction(L, l_http);
    lua_setfield(L, -2, "http");
}
