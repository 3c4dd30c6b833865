/*
 * api_auth: token checks (X-AUTH-TOKEN against `<prefix>__token__<t>`) and
 * Basic-auth logins through the configured provider (dummy or ldap).
 */
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "log.h"

static void unauthorized(api_req *r)
{
    api_reply_fail(r, 401);
    r->www_auth = true;
}

bool api_need_token(api_req *r, char **user_out)
{
    if (!r->token || !*r->token || strlen(r->token) > 256) {
        unauthorized(r);
        return false;
    }
    vmp_store *s = api_store(r);
    if (!s)
        return false;
    vmp_err err = {0};
    int rc = vmp_store_token_touch(s, r->token, r->now, user_out, &err);
    if (rc == VMP_ENOENT) {
        unauthorized(r);
        return false;
    }
    if (rc != 0) {
        api_reply_store_error(r, &err);
        return false;
    }
    return true;
}

bool api_authenticate(const api_cfgstate *st, const char *user, const char *password)
{
    switch (st->auth_kind) {
    case API_AUTH_DUMMY:
        return strcmp(user, password) != 0;
    case API_AUTH_LDAP:
        return api_ldap_authenticate(vmp_cfg_get(st->cfg->auth.node, "ldap"), user, password);
    case API_AUTH_NONE:
    case API_AUTH_REFUSE:
    default:
        return false;
    }
}

bool api_need_auth(api_req *r, char **user_out)
{
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(r->conn, &pass);
    bool ok = false;
    if (user && pass && *user)
        ok = api_authenticate(r->st, user, pass);
    if (ok && user_out)
        *user_out = vmp_strdup(user);
    if (user)
        MHD_free(user);
    if (pass) {
        memset(pass, 0, strlen(pass));
        MHD_free(pass);
    }
    if (!ok)
        unauthorized(r);
    return ok;
}
