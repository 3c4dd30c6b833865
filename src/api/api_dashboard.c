/*
 * api_dashboard: the status page (`GET /dashboard/`) and its two JSON feeds
 * (reference §9.5). The page is static HTML with a little JavaScript that
 * polls /api/v3/status; history comes from no graph server, so `history`
 * holds the current value only, as vmpooler does without graphite.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"

static const char page_head[] =
    "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>vmpool</title>\n"
    "<style>\n"
    "body{font-family:sans-serif;margin:2em;color:#222}\n"
    "table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;"
    "text-align:right}\n"
    "td:first-child,th:first-child{text-align:left}.empty{color:#b00}\n"
    "#msg{margin:1em 0}\n"
    "</style>\n</head>\n<body>\n<h1>";

static const char page_tail[] =
    "</h1>\n<div id=\"msg\">loading...</div>\n"
    "<table id=\"pools\"><thead><tr><th>pool</th><th>ready</th><th>running</th>"
    "<th>pending</th><th>size</th></tr></thead><tbody></tbody></table>\n"
    "<script>\n"
    "function esc(s){return String(s).replace(/[&<>\"']/g,function(c){return "
    "'&#'+c.charCodeAt(0)+';';});}\n"
    "function refresh(){\n"
    " fetch('/api/v3/status').then(function(r){return r.json();}).then(function(s){\n"
    "  document.getElementById('msg').textContent=s.status.message+' (uptime '+s.status.uptime+' "
    "s, '+\n"
    "   s.capacity.current+' of '+s.capacity.total+' ready)';\n"
    "  var rows='';\n"
    "  Object.keys(s.pools).forEach(function(n){var p=s.pools[n];\n"
    "   rows+='<tr "
    "class=\"'+(p.ready==0&&p.max!=0?'empty':'')+'\"><td>'+esc(n)+'</td><td>'+p.ready+\n"
    "    '</td><td>'+p.running+'</td><td>'+p.pending+'</td><td>'+p.max+'</td></tr>';});\n"
    "  document.querySelector('#pools tbody').innerHTML=rows;\n"
    " }).catch(function(e){document.getElementById('msg').textContent='status unavailable';});\n"
    "}\nrefresh();setInterval(refresh,5000);\n"
    "</script>\n</body>\n</html>\n";

static void page(api_req *r)
{
    const char *site = r->cfg->global.site_name ? r->cfg->global.site_name : "<b>vmpooler</b>";
    vmp_buf b = VMP_BUF_INIT;
    vmp_buf_puts(&b, page_head);
    /* site_name is the operator's HTML, shown as vmpooler shows it */
    vmp_buf_puts(&b, site);
    vmp_buf_puts(&b, page_tail);
    r->status = 200;
    r->text = vmp_buf_take(&b);
    vmp_buf_free(&b);
    r->content_type = "text/html;charset=utf-8";
}

static int counts_of(api_req *r, vmp_store_pool_counts **out)
{
    size_t np = r->cfg->n_pools;
    vmp_store *s = api_store(r);
    if (!s)
        return -1;
    const char **names = calloc(np + 1, sizeof(*names));
    vmp_store_pool_counts *c = calloc(np + 1, sizeof(*c));
    vmp_err err = {0};
    int rc = VMP_ENOMEM;
    if (names && c) {
        for (size_t i = 0; i < np; i++)
            names[i] = r->cfg->pools[i].name;
        rc = np ? vmp_store_pools_counts_get(s, names, np, c, &err) : 0;
    }
    free(names);
    if (rc) {
        free(c);
        api_reply_store_error(r, &err);
        return -1;
    }
    *out = c;
    return 0;
}

static void stats_pool(api_req *r, bool history)
{
    vmp_store_pool_counts *c = NULL;
    if (counts_of(r, &c) != 0)
        return;
    vmp_strlist kv = {0};
    vmp_err err = {0};
    if (vmp_store_override_all(api_store(r), VMP_OVERRIDE_POOLSIZE, &kv, &err) != 0) {
        free(c);
        api_reply_store_error(r, &err);
        return;
    }
    json_t *o = json_object();
    for (size_t i = 0; i < r->cfg->n_pools; i++) {
        const vmp_pool_cfg *p = &r->cfg->pools[i];
        const char *ov = vmp_store_kv_get(&kv, p->name);
        json_t *e = json_object();
        json_object_set_new(e, "size", json_integer(ov ? strtoll(ov, NULL, 10) : p->size));
        json_object_set_new(e, "ready", json_integer(c[i].n[VMP_VM_READY]));
        if (history) {
            json_t *h = json_array();
            json_array_append_new(h, json_integer(c[i].n[VMP_VM_READY]));
            json_object_set_new(e, "history", h);
        }
        json_object_set_new(o, p->name, e);
    }
    vmp_strlist_clear(&kv);
    free(c);
    api_reply(r, 200, o);
}

static void stats_running(api_req *r, bool history)
{
    vmp_store_pool_counts *c = NULL;
    if (counts_of(r, &c) != 0)
        return;
    json_t *o = json_object();
    for (size_t i = 0; i < r->cfg->n_pools; i++) {
        char major[256];
        const char *name = r->cfg->pools[i].name;
        size_t l = strcspn(name, "-");
        if (l >= sizeof(major))
            l = sizeof(major) - 1;
        memcpy(major, name, l);
        major[l] = '\0';
        json_t *e = json_object_get(o, major);
        if (!e) {
            e = json_object();
            json_object_set_new(e, "running", json_integer(0));
            json_object_set_new(o, major, e);
        }
        long long run = json_integer_value(json_object_get(e, "running")) + c[i].n[VMP_VM_RUNNING];
        json_object_set_new(e, "running", json_integer(run));
        if (history) {
            json_t *h = json_array();
            json_array_append_new(h, json_integer(run));
            json_object_set_new(e, "history", h);
        }
    }
    free(c);
    api_reply(r, 200, o);
}

void api_route_dashboard(api_req *r, const char *rest)
{
    if (r->method != API_GET) {
        api_reply_fail(r, 404);
        return;
    }
    char hb[16];
    bool hist = api_query(r, "history", hb, sizeof(hb), NULL) != NULL;
    if (!strcmp(rest, "") || !strcmp(rest, "/"))
        page(r);
    else if (!strcmp(rest, "/stats/vmpooler/pool") || !strcmp(rest, "/stats/vmpooler/pool/"))
        stats_pool(r, hist);
    else if (!strcmp(rest, "/stats/vmpooler/running") || !strcmp(rest, "/stats/vmpooler/running/"))
        stats_running(r, hist);
    else
        api_reply_fail(r, 404);
}
