/*
 * api_token: /token routes. Listing and creating tokens need Basic auth as
 * in vmpooler. Safer than vmpooler: reading a token's details needs the
 * token itself (X-AUTH-TOKEN) or its owner's credentials, and a token can
 * only be deleted by its owner.
 */
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"

static void token_list(api_req *r)
{
    char *user = NULL;
    if (!api_need_auth(r, &user))
        return;
    vmp_store *s = api_store(r);
    vmp_strlist toks = {0};
    vmp_err err = {0};
    if (!s)
        goto out;
    if (vmp_store_token_list_by_user(s, user, &toks, &err) != 0) {
        api_reply_store_error(r, &err);
        goto out;
    }
    json_t *res = json_object();
    json_object_set_new(res, "ok", json_false());
    for (size_t i = 0; i < toks.n; i++) {
        vmp_strlist kv = {0};
        int rc = vmp_store_token_get(s, toks.v[i], &kv, &err);
        if (rc == VMP_ENOENT)
            continue;
        if (rc) {
            json_decref(res);
            api_reply_store_error(r, &err);
            goto out;
        }
        json_t *o = json_object();
        const char *created = vmp_store_kv_get(&kv, "created");
        const char *last = vmp_store_kv_get(&kv, "last");
        json_object_set_new(o, "created", created ? api_jstr(created) : json_null());
        json_object_set_new(o, "last", api_jstr(last ? last : "never"));
        json_object_set_new(res, toks.v[i], o);
        json_object_set_new(res, "ok", json_true());
        vmp_strlist_clear(&kv);
    }
    api_reply(r, json_is_true(json_object_get(res, "ok")) ? 200 : 404, res);
out:
    vmp_strlist_clear(&toks);
    free(user);
}

static void token_create(api_req *r)
{
    char *user = NULL;
    if (!api_need_auth(r, &user))
        return;
    vmp_store *s = api_store(r);
    if (!s) {
        free(user);
        return;
    }
    char tok[33];
    vmp_err err = {0};
    int rc;
    int tries = 0;
    do {
        api_random_name(tok);
        rc = vmp_store_token_create(s, tok, user, r->now, &err);
    } while (rc == VMP_EEXIST && ++tries < 5);
    free(user);
    if (rc) {
        api_reply_store_error(r, &err);
        return;
    }
    json_t *res = json_object();
    json_object_set_new(res, "ok", json_true());
    json_object_set_new(res, "token", json_string(tok));
    api_reply(r, 200, res);
}

/* The Basic-auth login when it is valid, else NULL (no reply set). */
static char *basic_login(api_req *r)
{
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(r->conn, &pass);
    char *res = NULL;
    if (user && pass && *user && api_authenticate(r->st, user, pass))
        res = vmp_strdup(user);
    if (user)
        MHD_free(user);
    if (pass) {
        memset(pass, 0, strlen(pass));
        MHD_free(pass);
    }
    return res;
}

static void token_show(api_req *r, const char *tok)
{
    vmp_store *s = api_store(r);
    if (!s)
        return;
    vmp_strlist kv = {0}, run = {0};
    vmp_err err = {0};
    char *login = NULL;
    int rc = vmp_store_token_get(s, tok, &kv, &err);
    if (rc == VMP_ENOENT || (rc == 0 && kv.n == 0)) {
        api_reply_fail(r, 404);
        goto out;
    }
    if (rc) {
        api_reply_store_error(r, &err);
        goto out;
    }
    /* Only the token's holder or its owner may read it. */
    const char *owner = vmp_store_kv_get(&kv, "user");
    bool allowed = r->token && !strcmp(r->token, tok);
    if (!allowed) {
        login = basic_login(r);
        allowed = login && owner && !strcmp(login, owner);
    }
    if (!allowed) {
        api_reply_fail(r, 401);
        r->www_auth = true;
        goto out;
    }
    json_t *o = json_object();
    for (size_t i = 0; i + 1 < kv.n; i += 2)
        json_object_set_new(o, kv.v[i], api_jstr(kv.v[i + 1]));
    json_t *running = NULL;
    for (size_t p = 0; p < r->cfg->n_pools; p++) {
        vmp_strlist_clear(&run);
        if (vmp_store_set_members(s, r->cfg->pools[p].name, VMP_VM_RUNNING, &run, &err) != 0) {
            json_decref(o);
            api_reply_store_error(r, &err);
            goto out;
        }
        for (size_t i = 0; i < run.n; i++) {
            char *t = NULL;
            if (vmp_store_vm_get(s, run.v[i], "token:token", &t, &err) != 0) {
                json_decref(o);
                api_reply_store_error(r, &err);
                goto out;
            }
            if (t && !strcmp(t, tok)) {
                if (!running) {
                    json_t *vms = json_object();
                    running = json_array();
                    json_object_set_new(vms, "running", running);
                    json_object_set_new(o, "vms", vms);
                }
                json_array_append_new(running, api_jstr(run.v[i]));
            }
            free(t);
        }
    }
    json_t *res = json_object();
    json_object_set_new(res, "ok", json_true());
    json_object_set_new(res, tok, o);
    api_reply(r, 200, res);
out:
    free(login);
    vmp_strlist_clear(&kv);
    vmp_strlist_clear(&run);
}

static void token_delete(api_req *r, const char *tok)
{
    char *user = NULL;
    if (!api_need_auth(r, &user))
        return;
    vmp_store *s = api_store(r);
    vmp_strlist kv = {0};
    vmp_err err = {0};
    if (!s)
        goto out;
    int rc = vmp_store_token_get(s, tok, &kv, &err);
    if (rc == VMP_ENOENT || (rc == 0 && kv.n == 0)) {
        api_reply_fail(r, 404);
        goto out;
    }
    if (rc) {
        api_reply_store_error(r, &err);
        goto out;
    }
    const char *owner = vmp_store_kv_get(&kv, "user");
    if (!owner || strcmp(owner, user) != 0) {
        api_reply_fail(r, 401);
        r->www_auth = true;
        goto out;
    }
    rc = vmp_store_token_delete(s, tok, &err);
    if (rc == VMP_ENOENT) {
        api_reply_fail(r, 404);
        goto out;
    }
    if (rc) {
        api_reply_store_error(r, &err);
        goto out;
    }
    json_t *res = json_object();
    json_object_set_new(res, "ok", json_true());
    api_reply(r, 200, res);
out:
    vmp_strlist_clear(&kv);
    free(user);
}

void api_route_token(api_req *r)
{
    size_t n = r->nsegs;
    api_method m = r->method;
    bool known = (n == 1 && (m == API_GET || m == API_POST)) ||
                 (n == 2 && (m == API_GET || m == API_DELETE));
    if (!known || !r->st->auth_configured) {
        api_reply_fail(r, 404);
        return;
    }
    if (n == 1 && m == API_GET)
        token_list(r);
    else if (n == 1)
        token_create(r);
    else if (m == API_GET)
        token_show(r, r->segs[1]);
    else
        token_delete(r, r->segs[1]);
}
