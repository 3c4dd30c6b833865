/* Tests for the vSphere provider (providers/vsphere) against vcsim, the
 * vCenter simulator, started by the test through ../shared/vcsim. When the
 * simulator cannot be started every test here is skipped with the reason,
 * unless VMP_REQUIRE_VCSIM=1 (set by scripts/test.sh), which makes it a
 * failure. */
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

#include "err.h"
#include "util.h"
#include "vcsim.h"
#include "vsphere/soap.h"
#include "vsphere/vim.h"

#define VCSIM_DIR VMP_SOURCE_DIR "/../shared/vcsim"
#define TASK_TIMEOUT 30.0

static vmp_vcsim *sim;          /* the main simulator (credentials enforced) */
static char sim_why[512];

static bool require_vcsim(void)
{
    const char *e = getenv("VMP_REQUIRE_VCSIM");
    return e && strcmp(e, "1") == 0;
}

/* Skips (or, with VMP_REQUIRE_VCSIM=1, fails) when there is no simulator. */
#define NEED_SIM()                                                                               \
    do {                                                                                           \
        if (!sim) {                                                                                \
            if (require_vcsim())                                                                   \
                fail_msg("vcsim is required (VMP_REQUIRE_VCSIM=1) but did not start: %s",         \
                         sim_why);                                                                 \
            fprintf(stderr, "SKIP: vcsim unavailable: %s\n", sim_why);                           \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static int group_setup(void **state)
{
    (void)state;
    vmp_vcsim_opts o = {.script_dir = VCSIM_DIR, .username = "vmpool", .password = "s3cr&t<pw>"};
    if (vmp_vcsim_start(&o, &sim, sim_why, sizeof sim_why) != 0) {
        sim = NULL;
        fprintf(stderr, "vcsim did not start: %s\n", sim_why);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    vmp_vcsim_stop(sim);
    sim = NULL;
    return 0;
}

/* A logged-in client on the main simulator. */
static vmp_soap *client(vmp_soap_stats *st)
{
    vmp_soap_opts o = {.url = vmp_vcsim_url(sim),
                       .username = vmp_vcsim_username(sim),
                       .password = vmp_vcsim_password(sim),
                       .ca_file = vmp_vcsim_cacert(sim),
                       .stats = st};
    vmp_soap *s = NULL;
    vmp_err err = {0};
    if (vmp_soap_new(&o, &s, &err) != 0 || vmp_soap_connect(s, &err) != 0)
        fail_msg("client: %s", err.msg);
    return s;
}

static void control(const char *method, const char *what, const char *query)
{
    char out[512];
    int st = vmp_vcsim_control(sim, method, what, query, out, sizeof out);
    if (st != 200)
        fail_msg("vcsim control %s %s?%s: HTTP %d %s", method, what, query ? query : "", st, out);
}

/* ---- SOAP session ------------------------------------------------------ */

static void test_login_and_counters(void **state)
{
    (void)state;
    NEED_SIM();
    vmp_soap_stats *st = vmp_soap_stats_new();
    vmp_soap *s = client(st);
    assert_true(vmp_soap_logged_in(s));
    const vmp_soap_service *svc = vmp_soap_service_content(s);
    assert_non_null(svc);
    assert_string_equal(svc->api_type, "VirtualCenter");
    assert_string_equal(svc->root_folder.type, "Folder");
    vmp_soap_counters c;
    vmp_soap_counters_get(s, &c);
    assert_int_equal(c.round_trips, 2); /* RetrieveServiceContent + Login */
    assert_int_equal(c.logins, 1);
    assert_int_equal(c.relogins, 0);
    assert_true(c.bytes_sent > 500 && c.bytes_received > 1000);

    double now = 0;
    vmp_err err = {0};
    assert_int_equal(vmp_vim_current_time(s, &now, &err), 0);
    assert_true(now > vmp_now() - 3600 && now < vmp_now() + 3600);
    vmp_soap_counters_get(s, &c);
    assert_int_equal(c.round_trips, 3);
    vmp_soap_counters shared;
    vmp_soap_stats_get(st, &shared);
    assert_int_equal(shared.round_trips, 3);
    assert_int_equal(shared.bytes_received, c.bytes_received);

    assert_int_equal(vmp_soap_logout(s, &err), 0);
    assert_false(vmp_soap_logged_in(s));
    /* The next call logs in again by itself. */
    assert_int_equal(vmp_vim_current_time(s, &now, &err), 0);
    assert_true(vmp_soap_logged_in(s));
    vmp_soap_counters_get(s, &c);
    assert_int_equal(c.logins, 2);
    vmp_soap_free(s);
    vmp_soap_stats_free(st);
}

static void test_bad_credentials(void **state)
{
    (void)state;
    NEED_SIM();
    vmp_soap_opts o = {.url = vmp_vcsim_url(sim),
                       .username = vmp_vcsim_username(sim),
                       .password = "wrong-password",
                       .ca_file = vmp_vcsim_cacert(sim)};
    vmp_soap *s = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_soap_new(&o, &s, &err), 0);
    assert_int_equal(vmp_soap_connect(s, &err), VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "InvalidLogin"));
    assert_non_null(strstr(err.msg, "as vmpool"));
    assert_null(strstr(err.msg, "wrong-password"));
    assert_string_equal(vmp_soap_last_fault(s), "InvalidLogin");
    assert_false(vmp_soap_logged_in(s));
    /* A call needing a session fails the same way (no call is made). */
    double now;
    assert_int_equal(vmp_vim_current_time(s, &now, &err), VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "InvalidLogin"));
    vmp_soap_free(s);
}

static void test_tls(void **state)
{
    (void)state;
    NEED_SIM();
    vmp_err err = {0};
    vmp_soap *s = NULL;
    /* Without the CA the self-signed certificate is refused. */
    vmp_soap_opts o = {.url = vmp_vcsim_url(sim),
                       .username = vmp_vcsim_username(sim),
                       .password = vmp_vcsim_password(sim)};
    assert_int_equal(vmp_soap_new(&o, &s, &err), 0);
    assert_int_equal(vmp_soap_connect(s, &err), VMP_EIO);
    assert_non_null(strstr(err.msg, "certificate"));
    vmp_soap_free(s);
    s = NULL;
    /* A CA file that is not the issuer: refused too. */
    o.ca_file = "/etc/ssl/certs/ca-certificates.crt";
    assert_int_equal(vmp_soap_new(&o, &s, &err), 0);
    assert_int_equal(vmp_soap_connect(s, &err), VMP_EIO);
    vmp_soap_free(s);
    s = NULL;
    /* insecure: accepted without verification. */
    o.ca_file = NULL;
    o.insecure = true;
    assert_int_equal(vmp_soap_new(&o, &s, &err), 0);
    assert_int_equal(vmp_soap_connect(s, &err), 0);
    assert_true(vmp_soap_logged_in(s));
    vmp_soap_free(s);
    s = NULL;
    /* With the CA: verified and accepted. */
    o.insecure = false;
    o.ca_file = vmp_vcsim_cacert(sim);
    assert_int_equal(vmp_soap_new(&o, &s, &err), 0);
    assert_int_equal(vmp_soap_connect(s, &err), 0);
    vmp_soap_free(s);
}

/* A session the server no longer knows: the client logs in again, once, and
 * the call succeeds; with a property read vcsim answers 200 + missingSet. */
static void test_relogin_after_server_logout(void **state)
{
    (void)state;
    NEED_SIM();
    vmp_soap *s = client(NULL);
    vmp_err err = {0};
    /* End the session behind the client's back: Logout through the raw
     * call keeps the client's cookie and its idea that it is logged in. */
    const vmp_soap_service *svc = vmp_soap_service_content(s);
    assert_int_equal(vmp_soap_call(s, "Logout", &svc->session_manager, NULL, NULL, &err), 0);
    assert_true(vmp_soap_logged_in(s));
    vmp_moref vm;
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/vm/DC0_C0_RP0_VM0", &vm, &err), 0);
    vmp_soap_counters c;
    vmp_soap_counters_get(s, &c);
    assert_int_equal(c.relogins, 1);

    assert_int_equal(vmp_soap_call(s, "Logout", &svc->session_manager, NULL, NULL, &err), 0);
    static const char *const paths[] = {"name", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    assert_int_equal(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err), 0);
    char name[64];
    assert_int_equal(vmp_vim_prop_str(r, 0, "name", name, sizeof name), 0);
    assert_string_equal(name, "DC0_C0_RP0_VM0");
    vmp_vim_objects_free(r);
    vmp_soap_counters_get(s, &c);
    assert_int_equal(c.relogins, 2);
    vmp_soap_free(s);
}

/* A simulator whose idle sessions expire after 1 s (checked every second). */
static void test_session_expiry(void **state)
{
    (void)state;
    NEED_SIM();
    vmp_vcsim *v = NULL;
    char why[512];
    vmp_vcsim_opts o = {.script_dir = VCSIM_DIR, .args = "-session-timeout 1s"};
    if (vmp_vcsim_start(&o, &v, why, sizeof why) != 0)
        fail_msg("second vcsim: %s", why);
    vmp_soap_opts so = {.url = vmp_vcsim_url(v),
                        .username = "someone",
                        .password = "pw",
                        .ca_file = vmp_vcsim_cacert(v)};
    vmp_soap *s = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_soap_new(&so, &s, &err), 0);
    assert_int_equal(vmp_soap_connect(s, &err), 0);
    usleep(2600 * 1000);
    vmp_moref vm;
    /* FindByInventoryPath: a NotAuthenticated fault, then a new login. */
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/vm/DC0_H0_VM0", &vm, &err), 0);
    vmp_soap_counters c;
    vmp_soap_counters_get(s, &c);
    assert_int_equal(c.relogins, 1);
    usleep(2600 * 1000);
    /* A property read: the expiry only shows in missingSet. */
    static const char *const paths[] = {"name", "runtime.powerState", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    assert_int_equal(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err), 0);
    char ps[32];
    assert_int_equal(vmp_vim_prop_str(r, 0, "runtime.powerState", ps, sizeof ps), 0);
    assert_string_equal(ps, "poweredOn");
    vmp_vim_objects_free(r);
    vmp_soap_counters_get(s, &c);
    assert_int_equal(c.relogins, 2);
    vmp_soap_free(s);
    vmp_vcsim_stop(v);
}

static void test_soap_fault_injection(void **state)
{
    (void)state;
    NEED_SIM();
    vmp_soap *s = client(NULL);
    vmp_err err = {0};
    control("POST", "fault", "spec=FindByInventoryPath=soap:1");
    vmp_moref vm;
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/vm/DC0_H0_VM0", &vm, &err), VMP_EPROVIDER);
    assert_string_equal(err.msg, "FindByInventoryPath: SystemError: vcsim injected fault for "
                                 "FindByInventoryPath");
    assert_string_equal(vmp_soap_last_fault(s), "SystemError");
    /* Only once. */
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/vm/DC0_H0_VM0", &vm, &err), 0);
    assert_string_equal(vmp_soap_last_fault(s), "");
    /* A failing login is reported as such. */
    vmp_soap_free(s);
    control("POST", "fault", "spec=Login=soap:1");
    vmp_soap_opts o = {.url = vmp_vcsim_url(sim),
                       .username = vmp_vcsim_username(sim),
                       .password = vmp_vcsim_password(sim),
                       .ca_file = vmp_vcsim_cacert(sim)};
    s = NULL;
    assert_int_equal(vmp_soap_new(&o, &s, &err), 0);
    assert_int_equal(vmp_soap_connect(s, &err), VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "injected fault for Login"));
    assert_int_equal(vmp_soap_connect(s, &err), 0);
    vmp_soap_free(s);
}

/* ---- vim calls ---------------------------------------------------------- */

static void test_lookups(void **state)
{
    (void)state;
    NEED_SIM();
    vmp_soap *s = client(NULL);
    vmp_err err = {0};
    vmp_moref ref, folder;
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/host/DC0_C0", &ref, &err), 0);
    assert_string_equal(ref.type, "ClusterComputeResource");
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/vm", &folder, &err), 0);
    assert_string_equal(folder.type, "Folder");
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/vm/no such vm", &ref, &err), VMP_ENOENT);
    assert_string_equal(err.msg, "inventory path 'DC0/vm/no such vm' not found");
    assert_int_equal(vmp_vim_find_child(s, &folder, "DC0_H0_VM1", &ref, &err), 0);
    assert_string_equal(ref.type, "VirtualMachine");
    assert_int_equal(vmp_vim_find_child(s, &folder, "nope", &ref, &err), VMP_ENOENT);

    /* A folder whose name needs escaping; the same name twice is EEXIST. */
    vmp_moref f1;
    assert_int_equal(vmp_vim_create_folder(s, &folder, "a&b <c>", &f1, &err), 0);
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/vm/a&b <c>", &ref, &err), 0);
    assert_true(vmp_moref_equal(&ref, &f1));
    assert_int_equal(vmp_vim_create_folder(s, &folder, "a&b <c>", &ref, &err), VMP_EEXIST);
    assert_non_null(strstr(err.msg, "DuplicateName"));
    assert_int_equal(vmp_vim_run_task(s, "Destroy_Task", &f1, NULL, "destroy folder", TASK_TIMEOUT,
                                      NULL, &err),
                     0);
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/vm/a&b <c>", &ref, &err), VMP_ENOENT);
    vmp_soap_free(s);
}

static void test_retrieve(void **state)
{
    (void)state;
    NEED_SIM();
    vmp_soap *s = client(NULL);
    vmp_err err = {0};
    vmp_moref folder, cluster;
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/vm", &folder, &err), 0);
    static const char *const vm_paths[] = {"name", "config.template", "runtime.powerState",
                                           "runtime.host", "guest.ipAddress", NULL};
    const vmp_vim_propset vms = {"VirtualMachine", vm_paths};
    vmp_vim_objects *r = NULL;
    vmp_soap_counters before, after;
    vmp_soap_counters_get(s, &before);
    assert_int_equal(vmp_vim_retrieve(s, &folder, 1, VMP_VIM_CHILDREN, &vms, 1, &r, &err), 0);
    vmp_soap_counters_get(s, &after);
    assert_int_equal(after.round_trips - before.round_trips, 1);
    assert_true(vmp_vim_objects_count(r) >= 4);
    bool seen = false;
    for (size_t i = 0; i < vmp_vim_objects_count(r); i++) {
        char name[64], ps[32];
        vmp_moref host;
        bool tmpl = true;
        assert_int_equal(vmp_vim_prop_str(r, i, "name", name, sizeof name), 0);
        if (strcmp(name, "DC0_C0_RP0_VM0") != 0)
            continue;
        seen = true;
        assert_int_equal(vmp_vim_prop_bool(r, i, "config.template", &tmpl), 0);
        assert_false(tmpl);
        assert_int_equal(vmp_vim_prop_str(r, i, "runtime.powerState", ps, sizeof ps), 0);
        assert_string_equal(ps, "poweredOn");
        assert_int_equal(vmp_vim_prop_moref(r, i, "runtime.host", &host), 0);
        assert_string_equal(host.type, "HostSystem");
        /* Unset properties are absent. */
        assert_null(vmp_vim_objects_prop(r, i, "guest.ipAddress"));
        assert_int_equal(vmp_vim_prop_str(r, i, "guest.ipAddress", ps, sizeof ps), -1);
        assert_true(vmp_vim_objects_find(r, vmp_vim_objects_ref(r, i)) == (long)i);
    }
    assert_true(seen);
    vmp_vim_objects_free(r);

    /* The hosts of a cluster. */
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/host/DC0_C0", &cluster, &err), 0);
    static const char *const host_paths[] = {"name", "summary.hardware.numCpuCores", NULL};
    const vmp_vim_propset hosts = {"HostSystem", host_paths};
    r = NULL;
    assert_int_equal(vmp_vim_retrieve(s, &cluster, 1, VMP_VIM_HOSTS, &hosts, 1, &r, &err), 0);
    assert_int_equal(vmp_vim_objects_count(r), 3);
    long long cores = 0;
    assert_int_equal(vmp_vim_prop_ll(r, 0, "summary.hardware.numCpuCores", &cores), 0);
    assert_int_equal(cores, 2);
    vmp_vim_objects_free(r);

    /* An object that does not exist. */
    vmp_moref gone;
    vmp_moref_set(&gone, "VirtualMachine", "vm-99999");
    r = NULL;
    assert_int_equal(vmp_vim_retrieve(s, &gone, 1, VMP_VIM_SELF, &vms, 1, &r, &err), VMP_ENOENT);
    assert_null(r);
    vmp_soap_free(s);
}

static int clone_vm(vmp_soap *s, const char *src_path, const char *name, bool as_template,
                    vmp_moref *vm, vmp_err *err)
{
    vmp_moref src, folder, pool;
    int rc = vmp_vim_find_by_path(s, src_path, &src, err);
    if (rc == 0)
        rc = vmp_vim_find_by_path(s, "DC0/vm", &folder, err);
    if (rc == 0)
        rc = vmp_vim_find_by_path(s, "DC0/host/DC0_C0/Resources", &pool, err);
    if (rc != 0)
        return rc;
    vmp_vim_option extra[] = {{"guestinfo.hostname", name}};
    vmp_vim_clone c = {.location = {.pool = &pool},
                       .config = {.annotation = "made by a test", .extra = extra, .n_extra = 1},
                       .is_template = as_template,
                       .power_on = false};
    vmp_buf args = VMP_BUF_INIT;
    vmp_xml_moref(&args, "folder", &folder);
    vmp_xml_elem(&args, "name", name);
    vmp_vim_clone_xml(&args, "spec", &c);
    rc = vmp_vim_run_task(s, "CloneVM_Task", &src, args.s, "clone", TASK_TIMEOUT, vm, err);
    vmp_buf_free(&args);
    return rc;
}

static void test_tasks(void **state)
{
    (void)state;
    NEED_SIM();
    vmp_soap *s = client(NULL);
    vmp_err err = {0};
    vmp_moref vm, snap, snap2;
    assert_int_equal(clone_vm(s, "DC0/vm/DC0_C0_RP0_VM0", "vim-task-vm", false, &vm, &err), 0);
    assert_string_equal(vm.type, "VirtualMachine");

    /* Power on; powering on again fails with the task's fault. */
    assert_int_equal(vmp_vim_run_task(s, "PowerOnVM_Task", &vm, NULL, "power on", TASK_TIMEOUT,
                                      NULL, &err),
                     0);
    assert_int_equal(vmp_vim_run_task(s, "PowerOnVM_Task", &vm, NULL, "power on", TASK_TIMEOUT,
                                      NULL, &err),
                     VMP_ESTATE);
    assert_string_equal(err.msg, "power on failed: InvalidPowerState (requestedState: poweredOn, "
                                 "existingState: poweredOn)");

    /* Snapshots, found again by name in the tree. */
    vmp_buf args = VMP_BUF_INIT;
    vmp_xml_elem(&args, "name", "base");
    vmp_xml_elem(&args, "description", "first");
    vmp_xml_elem_bool(&args, "memory", false);
    vmp_xml_elem_bool(&args, "quiesce", false);
    assert_int_equal(vmp_vim_run_task(s, "CreateSnapshot_Task", &vm, args.s, "snapshot",
                                      TASK_TIMEOUT, &snap, &err),
                     0);
    assert_string_equal(snap.type, "VirtualMachineSnapshot");
    vmp_buf_reset(&args);
    vmp_xml_elem(&args, "name", "second & <last>");
    vmp_xml_elem_bool(&args, "memory", false);
    vmp_xml_elem_bool(&args, "quiesce", false);
    assert_int_equal(vmp_vim_run_task(s, "CreateSnapshot_Task", &vm, args.s, "snapshot",
                                      TASK_TIMEOUT, &snap2, &err),
                     0);
    static const char *const paths[] = {"snapshot", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    assert_int_equal(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err), 0);
    vmp_moref found;
    assert_int_equal(vmp_vim_snapshot_find(vmp_vim_objects_prop(r, 0, "snapshot"), "base", &found),
                     0);
    assert_true(vmp_moref_equal(&found, &snap));
    assert_int_equal(vmp_vim_snapshot_find(vmp_vim_objects_prop(r, 0, "snapshot"),
                                           "second & <last>", &found),
                     0);
    assert_true(vmp_moref_equal(&found, &snap2));
    assert_int_equal(
        vmp_vim_snapshot_find(vmp_vim_objects_prop(r, 0, "snapshot"), "other", &found),
        VMP_ENOENT);
    vmp_vim_objects_free(r);
    vmp_buf_reset(&args);
    vmp_xml_elem_bool(&args, "suppressPowerOn", false);
    assert_int_equal(vmp_vim_run_task(s, "RevertToSnapshot_Task", &snap, args.s, "revert",
                                      TASK_TIMEOUT, NULL, &err),
                     0);

    /* An injected task failure carries vcsim's reason. */
    control("POST", "fault", "spec=PowerOffVM_Task:1");
    assert_int_equal(vmp_vim_run_task(s, "PowerOffVM_Task", &vm, NULL, "power off", TASK_TIMEOUT,
                                      NULL, &err),
                     VMP_EPROVIDER);
    assert_string_equal(err.msg, "power off failed: SystemError (reason: vcsim injected fault for "
                                 "PowerOffVM_Task)");

    /* A slow task is waited for; a short deadline gives up with ETIMEDOUT. */
    control("POST", "task-delay", "spec=PowerOffVM_Task:600");
    double t0 = vmp_monotonic();
    assert_int_equal(vmp_vim_run_task(s, "PowerOffVM_Task", &vm, NULL, "power off", TASK_TIMEOUT,
                                      NULL, &err),
                     0);
    double waited = vmp_monotonic() - t0;
    assert_true(waited >= 0.5 && waited < 5);
    control("POST", "task-delay", "spec=Destroy_Task:3000");
    t0 = vmp_monotonic();
    assert_int_equal(vmp_vim_run_task(s, "Destroy_Task", &vm, NULL, "destroy", 0.4, NULL, &err),
                     VMP_ETIMEDOUT);
    assert_true(vmp_monotonic() - t0 < 2);
    assert_non_null(strstr(err.msg, "still running"));
    control("DELETE", "task-delay", NULL);
    vmp_buf_free(&args);
    vmp_soap_free(s);
}

static void test_devices_and_disks(void **state)
{
    (void)state;
    NEED_SIM();
    vmp_soap *s = client(NULL);
    vmp_err err = {0};
    vmp_moref vm;
    assert_int_equal(clone_vm(s, "DC0/vm/DC0_C0_RP0_VM0", "vim-disk-vm", false, &vm, &err), 0);
    static const char *const paths[] = {"config.hardware.device", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    assert_int_equal(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err), 0);
    vmp_vim_device *d = NULL;
    size_t n = 0;
    assert_int_equal(
        vmp_vim_devices_parse(vmp_vim_objects_prop(r, 0, "config.hardware.device"), &d, &n, &err),
        0);
    vmp_vim_objects_free(r);
    int disks = 0, nics = 0, ctrl = -1, unit = -1;
    for (size_t i = 0; i < n; i++) {
        disks += d[i].disk;
        nics += d[i].nic;
    }
    assert_int_equal(disks, 1);
    assert_int_equal(nics, 1);
    /* Unit 0 holds the cdrom on the model's pvscsi controller 202, unit 7 is
     * the controller's own. */
    assert_int_equal(vmp_vim_disk_slot(d, n, &ctrl, &unit), 0);
    assert_int_equal(ctrl, 202);
    assert_int_equal(unit, 1);
    vmp_buf spec = VMP_BUF_INIT;
    vmp_vim_add_disk_xml(&spec, ctrl, unit, 2 * 1024 * 1024, "");
    vmp_vim_config cfg = {.device_change = vmp_buf_str(&spec)};
    vmp_buf args = VMP_BUF_INIT;
    vmp_vim_config_xml(&args, "spec", &cfg);
    assert_int_equal(vmp_vim_run_task(s, "ReconfigVM_Task", &vm, args.s, "add disk", TASK_TIMEOUT,
                                      NULL, &err),
                     0);
    free(d);
    d = NULL;
    r = NULL;
    assert_int_equal(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err), 0);
    assert_int_equal(
        vmp_vim_devices_parse(vmp_vim_objects_prop(r, 0, "config.hardware.device"), &d, &n, &err),
        0);
    vmp_vim_objects_free(r);
    disks = 0;
    for (size_t i = 0; i < n; i++)
        if (d[i].disk) {
            disks++;
            if (d[i].unit == 1) {
                assert_int_equal(d[i].capacity_kb, 2 * 1024 * 1024);
                assert_non_null(strstr(d[i].file, "vim-disk-vm"));
            }
        }
    assert_int_equal(disks, 2);
    free(d);
    vmp_buf_free(&spec);
    vmp_buf_free(&args);
    vmp_soap_free(s);
}

static void test_relocate(void **state)
{
    (void)state;
    NEED_SIM();
    vmp_soap *s = client(NULL);
    vmp_err err = {0};
    vmp_moref vm, host, got;
    assert_int_equal(clone_vm(s, "DC0/vm/DC0_C0_RP0_VM0", "vim-move-vm", false, &vm, &err), 0);
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/host/DC0_C0/DC0_C0_H2", &host, &err), 0);
    vmp_vim_relocate rel = {.host = &host};
    vmp_buf args = VMP_BUF_INIT;
    vmp_vim_relocate_xml(&args, "spec", &rel);
    vmp_buf_puts(&args, "<priority>defaultPriority</priority>");
    assert_int_equal(vmp_vim_run_task(s, "RelocateVM_Task", &vm, args.s, "relocate", TASK_TIMEOUT,
                                      NULL, &err),
                     0);
    static const char *const paths[] = {"runtime.host", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    assert_int_equal(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err), 0);
    assert_int_equal(vmp_vim_prop_moref(r, 0, "runtime.host", &got), 0);
    assert_true(vmp_moref_equal(&got, &host));
    vmp_vim_objects_free(r);
    vmp_buf_free(&args);
    vmp_soap_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_and_counters),
        cmocka_unit_test(test_bad_credentials),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_relogin_after_server_logout),
        cmocka_unit_test(test_session_expiry),
        cmocka_unit_test(test_soap_fault_injection),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_retrieve),
        cmocka_unit_test(test_tasks),
        cmocka_unit_test(test_devices_and_disks),
        cmocka_unit_test(test_relocate),
    };
    return cmocka_run_group_tests_name("vsphere", tests, group_setup, group_teardown);
}
