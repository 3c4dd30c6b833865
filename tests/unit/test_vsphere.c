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
#include "log.h"
#include "util.h"
#include "config.h"
#include "metrics.h"
#include "provider.h"
#include "vcsim.h"
#include "vsphere/soap.h"
#include "vsphere/hostsel.h"
#include "vsphere/vim.h"
#include "vsphere/vsphere.h"

#define VCSIM_DIR VMP_SOURCE_DIR "/../shared/vcsim"
#define TASK_TIMEOUT 30.0

static vmp_vcsim *sim; /* the main simulator (credentials enforced) */
static char sim_why[512];

static bool require_vcsim(void)
{
    const char *e = getenv("VMP_REQUIRE_VCSIM");
    return e && strcmp(e, "1") == 0;
}

/* Skips (or, with VMP_REQUIRE_VCSIM=1, fails) when there is no simulator. */
#define NEED_SIM()                                                                                 \
    do {                                                                                           \
        if (!sim) {                                                                                \
            if (require_vcsim())                                                                   \
                fail_msg("vcsim is required (VMP_REQUIRE_VCSIM=1) but did not start: %s",          \
                         sim_why);                                                                 \
            fprintf(stderr, "SKIP: vcsim unavailable: %s\n", sim_why);                             \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* Asserts that a call filling `err` succeeded, showing its message if not. */
#define ASSERT_OK(call)                                                                            \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("%s: %d: %s", #call, rc_, err.msg);                                           \
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
    ASSERT_OK(vmp_vim_current_time(s, &now, &err));
    assert_true(now > vmp_now() - 3600 && now < vmp_now() + 3600);
    vmp_soap_counters_get(s, &c);
    assert_int_equal(c.round_trips, 3);
    vmp_soap_counters shared;
    vmp_soap_stats_get(st, &shared);
    assert_int_equal(shared.round_trips, 3);
    assert_int_equal(shared.bytes_received, c.bytes_received);

    ASSERT_OK(vmp_soap_logout(s, &err));
    assert_false(vmp_soap_logged_in(s));
    /* The next call logs in again by itself. */
    ASSERT_OK(vmp_vim_current_time(s, &now, &err));
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
    ASSERT_OK(vmp_soap_new(&o, &s, &err));
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
    ASSERT_OK(vmp_soap_new(&o, &s, &err));
    assert_int_equal(vmp_soap_connect(s, &err), VMP_EIO);
    assert_non_null(strstr(err.msg, "certificate"));
    vmp_soap_free(s);
    s = NULL;
    /* A CA file that is not the issuer: refused too. */
    o.ca_file = "/etc/ssl/certs/ca-certificates.crt";
    ASSERT_OK(vmp_soap_new(&o, &s, &err));
    assert_int_equal(vmp_soap_connect(s, &err), VMP_EIO);
    vmp_soap_free(s);
    s = NULL;
    /* insecure: accepted without verification. */
    o.ca_file = NULL;
    o.insecure = true;
    ASSERT_OK(vmp_soap_new(&o, &s, &err));
    ASSERT_OK(vmp_soap_connect(s, &err));
    assert_true(vmp_soap_logged_in(s));
    vmp_soap_free(s);
    s = NULL;
    /* With the CA: verified and accepted. */
    o.insecure = false;
    o.ca_file = vmp_vcsim_cacert(sim);
    ASSERT_OK(vmp_soap_new(&o, &s, &err));
    ASSERT_OK(vmp_soap_connect(s, &err));
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
    ASSERT_OK(vmp_soap_call(s, "Logout", &svc->session_manager, NULL, NULL, &err));
    assert_true(vmp_soap_logged_in(s));
    vmp_moref vm;
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/DC0_C0_RP0_VM0", &vm, &err));
    vmp_soap_counters c;
    vmp_soap_counters_get(s, &c);
    assert_int_equal(c.relogins, 1);

    ASSERT_OK(vmp_soap_call(s, "Logout", &svc->session_manager, NULL, NULL, &err));
    static const char *const paths[] = {"name", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    ASSERT_OK(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err));
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
    ASSERT_OK(vmp_soap_new(&so, &s, &err));
    ASSERT_OK(vmp_soap_connect(s, &err));
    usleep(2600 * 1000);
    vmp_moref vm;
    /* FindByInventoryPath: a NotAuthenticated fault, then a new login. */
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/DC0_H0_VM0", &vm, &err));
    vmp_soap_counters c;
    vmp_soap_counters_get(s, &c);
    assert_int_equal(c.relogins, 1);
    usleep(2600 * 1000);
    /* A property read: the expiry only shows in missingSet. */
    static const char *const paths[] = {"name", "runtime.powerState", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    ASSERT_OK(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err));
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
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/DC0_H0_VM0", &vm, &err));
    assert_string_equal(vmp_soap_last_fault(s), "");
    /* A failing login is reported as such. */
    vmp_soap_free(s);
    control("POST", "fault", "spec=Login=soap:1");
    vmp_soap_opts o = {.url = vmp_vcsim_url(sim),
                       .username = vmp_vcsim_username(sim),
                       .password = vmp_vcsim_password(sim),
                       .ca_file = vmp_vcsim_cacert(sim)};
    s = NULL;
    ASSERT_OK(vmp_soap_new(&o, &s, &err));
    assert_int_equal(vmp_soap_connect(s, &err), VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "injected fault for Login"));
    ASSERT_OK(vmp_soap_connect(s, &err));
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
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/host/DC0_C0", &ref, &err));
    assert_string_equal(ref.type, "ClusterComputeResource");
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm", &folder, &err));
    assert_string_equal(folder.type, "Folder");
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/vm/no such vm", &ref, &err), VMP_ENOENT);
    assert_string_equal(err.msg, "inventory path 'DC0/vm/no such vm' not found");
    ASSERT_OK(vmp_vim_find_child(s, &folder, "DC0_H0_VM1", &ref, &err));
    assert_string_equal(ref.type, "VirtualMachine");
    assert_int_equal(vmp_vim_find_child(s, &folder, "nope", &ref, &err), VMP_ENOENT);

    /* A folder whose name needs escaping; the same name twice is EEXIST. */
    vmp_moref f1;
    ASSERT_OK(vmp_vim_create_folder(s, &folder, "a&b <c>", &f1, &err));
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/a&b <c>", &ref, &err));
    assert_true(vmp_moref_equal(&ref, &f1));
    assert_int_equal(vmp_vim_create_folder(s, &folder, "a&b <c>", &ref, &err), VMP_EEXIST);
    assert_non_null(strstr(err.msg, "DuplicateName"));
    ASSERT_OK(
        vmp_vim_run_task(s, "Destroy_Task", &f1, NULL, "destroy folder", TASK_TIMEOUT, NULL, &err));
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
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm", &folder, &err));
    static const char *const vm_paths[] = {"name",         "config.template", "runtime.powerState",
                                           "runtime.host", "guest.ipAddress", NULL};
    const vmp_vim_propset vms = {"VirtualMachine", vm_paths};
    vmp_vim_objects *r = NULL;
    vmp_soap_counters before, after;
    vmp_soap_counters_get(s, &before);
    ASSERT_OK(vmp_vim_retrieve(s, &folder, 1, VMP_VIM_CHILDREN, &vms, 1, &r, &err));
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
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/host/DC0_C0", &cluster, &err));
    static const char *const host_paths[] = {"name", "summary.hardware.numCpuCores", NULL};
    const vmp_vim_propset hosts = {"HostSystem", host_paths};
    r = NULL;
    ASSERT_OK(vmp_vim_retrieve(s, &cluster, 1, VMP_VIM_HOSTS, &hosts, 1, &r, &err));
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
    ASSERT_OK(
        vmp_vim_run_task(s, "PowerOnVM_Task", &vm, NULL, "power on", TASK_TIMEOUT, NULL, &err));
    assert_int_equal(
        vmp_vim_run_task(s, "PowerOnVM_Task", &vm, NULL, "power on", TASK_TIMEOUT, NULL, &err),
        VMP_ESTATE);
    assert_string_equal(err.msg, "power on failed: InvalidPowerState (requestedState: poweredOn, "
                                 "existingState: poweredOn)");

    /* Snapshots, found again by name in the tree. */
    vmp_buf args = VMP_BUF_INIT;
    vmp_xml_elem(&args, "name", "base");
    vmp_xml_elem(&args, "description", "first");
    vmp_xml_elem_bool(&args, "memory", false);
    vmp_xml_elem_bool(&args, "quiesce", false);
    ASSERT_OK(vmp_vim_run_task(s, "CreateSnapshot_Task", &vm, args.s, "snapshot", TASK_TIMEOUT,
                               &snap, &err));
    assert_string_equal(snap.type, "VirtualMachineSnapshot");
    vmp_buf_reset(&args);
    vmp_xml_elem(&args, "name", "second & <last>");
    vmp_xml_elem_bool(&args, "memory", false);
    vmp_xml_elem_bool(&args, "quiesce", false);
    ASSERT_OK(vmp_vim_run_task(s, "CreateSnapshot_Task", &vm, args.s, "snapshot", TASK_TIMEOUT,
                               &snap2, &err));
    static const char *const paths[] = {"snapshot", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    ASSERT_OK(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err));
    vmp_moref found;
    assert_int_equal(vmp_vim_snapshot_find(vmp_vim_objects_prop(r, 0, "snapshot"), "base", &found),
                     0);
    assert_true(vmp_moref_equal(&found, &snap));
    assert_int_equal(
        vmp_vim_snapshot_find(vmp_vim_objects_prop(r, 0, "snapshot"), "second & <last>", &found),
        0);
    assert_true(vmp_moref_equal(&found, &snap2));
    assert_int_equal(vmp_vim_snapshot_find(vmp_vim_objects_prop(r, 0, "snapshot"), "other", &found),
                     VMP_ENOENT);
    vmp_vim_objects_free(r);
    vmp_buf_reset(&args);
    vmp_xml_elem_bool(&args, "suppressPowerOn", false);
    ASSERT_OK(vmp_vim_run_task(s, "RevertToSnapshot_Task", &snap, args.s, "revert", TASK_TIMEOUT,
                               NULL, &err));

    /* An injected task failure carries vcsim's reason. */
    control("POST", "fault", "spec=PowerOffVM_Task:1");
    assert_int_equal(
        vmp_vim_run_task(s, "PowerOffVM_Task", &vm, NULL, "power off", TASK_TIMEOUT, NULL, &err),
        VMP_EPROVIDER);
    assert_string_equal(err.msg, "power off failed: SystemError (reason: vcsim injected fault for "
                                 "PowerOffVM_Task)");

    /* A slow task is waited for; a short deadline gives up with ETIMEDOUT. */
    control("POST", "task-delay", "spec=PowerOffVM_Task:600");
    double t0 = vmp_monotonic();
    ASSERT_OK(
        vmp_vim_run_task(s, "PowerOffVM_Task", &vm, NULL, "power off", TASK_TIMEOUT, NULL, &err));
    double waited = vmp_monotonic() - t0;
    assert_true(waited >= 0.5 && waited < 5);
    /* A long task costs few round trips (call, first read, filter, a few
     * waits, with a read after each wait that ran out, filter removal, last
     * read). */
    vmp_soap_counters c0, c1;
    control("POST", "task-delay", "spec=PowerOnVM_Task:3000");
    vmp_soap_counters_get(s, &c0);
    ASSERT_OK(
        vmp_vim_run_task(s, "PowerOnVM_Task", &vm, NULL, "power on", TASK_TIMEOUT, NULL, &err));
    vmp_soap_counters_get(s, &c1);
    if (c1.round_trips - c0.round_trips > 12)
        fail_msg("%llu round trips", c1.round_trips - c0.round_trips);
    /* Without property filters (CreateFilter refused), it polls. */
    control("POST", "fault", "spec=CreateFilter=soap:1");
    control("POST", "task-delay", "spec=PowerOffVM_Task:600");
    t0 = vmp_monotonic();
    ASSERT_OK(
        vmp_vim_run_task(s, "PowerOffVM_Task", &vm, NULL, "power off", TASK_TIMEOUT, NULL, &err));
    waited = vmp_monotonic() - t0;
    assert_true(waited >= 0.5 && waited < 5);
    char faults[256];
    vmp_vcsim_control(sim, "GET", "fault", NULL, faults, sizeof faults);
    assert_null(strstr(faults, "CreateFilter")); /* the injected fault was used */
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
    ASSERT_OK(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err));
    vmp_vim_device *d = NULL;
    size_t n = 0;
    ASSERT_OK(
        vmp_vim_devices_parse(vmp_vim_objects_prop(r, 0, "config.hardware.device"), &d, &n, &err));
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
    ASSERT_OK(
        vmp_vim_run_task(s, "ReconfigVM_Task", &vm, args.s, "add disk", TASK_TIMEOUT, NULL, &err));
    free(d);
    d = NULL;
    r = NULL;
    ASSERT_OK(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err));
    ASSERT_OK(
        vmp_vim_devices_parse(vmp_vim_objects_prop(r, 0, "config.hardware.device"), &d, &n, &err));
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
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/host/DC0_C0/DC0_C0_H2", &host, &err));
    vmp_vim_relocate rel = {.host = &host};
    vmp_buf args = VMP_BUF_INIT;
    vmp_vim_relocate_xml(&args, "spec", &rel);
    vmp_buf_puts(&args, "<priority>defaultPriority</priority>");
    ASSERT_OK(
        vmp_vim_run_task(s, "RelocateVM_Task", &vm, args.s, "relocate", TASK_TIMEOUT, NULL, &err));
    static const char *const paths[] = {"runtime.host", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    ASSERT_OK(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err));
    assert_int_equal(vmp_vim_prop_moref(r, 0, "runtime.host", &got), 0);
    assert_true(vmp_moref_equal(&got, &host));
    vmp_vim_objects_free(r);
    vmp_buf_free(&args);
    vmp_soap_free(s);
}

/* ---- provider ops --------------------------------------------------------- */

/* Metrics recorder: counts increments by name. */
typedef struct rec {
    pthread_mutex_t mu;
    char names[64][96];
    int counts[64];
    int n;
} rec;

static void rec_inc(void *ud, const char *name)
{
    rec *r = ud;
    pthread_mutex_lock(&r->mu);
    int i;
    for (i = 0; i < r->n; i++)
        if (strcmp(r->names[i], name) == 0)
            break;
    if (i == r->n && r->n < 64)
        snprintf(r->names[r->n++], sizeof r->names[0], "%s", name);
    if (i < 64)
        r->counts[i]++;
    pthread_mutex_unlock(&r->mu);
}

static void rec_gauge(void *ud, const char *name, double v) { (void)ud, (void)name, (void)v; }
static void rec_timing(void *ud, const char *name, double v) { (void)ud, (void)name, (void)v; }

static int rec_count(rec *r, const char *name)
{
    pthread_mutex_lock(&r->mu);
    int c = 0;
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->names[i], name) == 0)
            c = r->counts[i];
    pthread_mutex_unlock(&r->mu);
    return c;
}

static const vmp_metrics_ops rec_ops = {rec_inc, rec_gauge, rec_timing, NULL};

/* A provider instance over a configuration made from the YAML template;
 * "%URL%", "%CA%", "%USER%", "%PASS%" are filled in. */
typedef struct inst {
    vmp_config *cfg;
    vmp_provider *p;
    vmp_metrics *m;
    rec r;
} inst;

static char *subst(const char *tmpl)
{
    vmp_buf b = VMP_BUF_INIT;
    for (const char *p = tmpl; *p;) {
        const char *k = strchr(p, '%');
        if (!k) {
            vmp_buf_puts(&b, p);
            break;
        }
        vmp_buf_append(&b, p, (size_t)(k - p));
        const char *val = NULL;
        size_t kl = 0;
        static const char *keys[] = {"%URL%", "%CA%", "%USER%", "%PASS%"};
        for (size_t i = 0; i < 4 && !val; i++)
            if (strncmp(k, keys[i], strlen(keys[i])) == 0) {
                kl = strlen(keys[i]);
                val = i == 0   ? vmp_vcsim_url(sim)
                      : i == 1 ? vmp_vcsim_cacert(sim)
                      : i == 2 ? vmp_vcsim_username(sim)
                               : vmp_vcsim_password(sim);
            }
        if (val) {
            vmp_buf_puts(&b, val);
            p = k + kl;
        } else {
            vmp_buf_puts(&b, "%");
            p = k + 1;
        }
    }
    return vmp_buf_take(&b);
}

static int inst_open(inst *in, const char *yaml_tmpl, vmp_err *err)
{
    memset(in, 0, sizeof *in);
    pthread_mutex_init(&in->r.mu, NULL);
    char *yaml = subst(yaml_tmpl);
    vmp_config_opts co = {.no_env = true};
    int rc = vmp_config_load_string(yaml, "<test>", &co, &in->cfg, NULL, err);
    free(yaml);
    if (rc != 0)
        return rc;
    in->m = vmp_metrics_new(&rec_ops, &in->r);
    return vmp_provider_open(in->cfg, "vsphere", NULL, in->m, &in->p, err);
}

static void inst_close(inst *in)
{
    vmp_provider_close(in->p);
    vmp_metrics_free(in->m);
    vmp_config_free(in->cfg);
    pthread_mutex_destroy(&in->r.mu);
}

#define BASE_YAML                                                                                  \
    "---\n"                                                                                        \
    ":config:\n"                                                                                   \
    "  task_limit: 4\n"                                                                            \
    "  max_tries: 2\n"                                                                             \
    "  retry_factor: 0\n"                                                                          \
    "  create_folders: true\n"                                                                     \
    ":providers:\n"                                                                                \
    "  :vsphere:\n"                                                                                \
    "    server: '%URL%'\n"                                                                        \
    "    username: '%USER%'\n"                                                                     \
    "    password: '%PASS%'\n"                                                                     \
    "    ca_file: '%CA%'\n"                                                                        \
    "    datacenter: 'DC0'\n"                                                                      \
    "    connection_pool_size: 3\n"                                                                \
    "    connection_pool_timeout: 5\n"                                                             \
    "    task_timeout: 30\n"                                                                       \
    "    ready_timeout: 2\n"                                                                       \
    ":pools:\n"                                                                                    \
    "  - name: 'pool1'\n"                                                                          \
    "    template: 'templates/base'\n"                                                             \
    "    folder: 'vmpool/pool1'\n"                                                                 \
    "    datastore: 'LocalDS_0'\n"                                                                 \
    "    clone_target: 'DC0_C0'\n"                                                                 \
    "    size: 2\n"                                                                                \
    "    provider: vsphere\n"                                                                      \
    "  - name: 'pool2'\n"                                                                          \
    "    template: 'templates/base'\n"                                                             \
    "    folder: 'vmpool/pool2'\n"                                                                 \
    "    clone_target: 'DC0_C0'\n"                                                                 \
    "    network: 'VM Network'\n"                                                                  \
    "    snapshot_mainMem_ioBlockPages: '2048'\n"                                                  \
    "    snapshot_mainMem_iowait: '0'\n"                                                           \
    "    create_linked_clone: false\n"                                                             \
    "    size: 1\n"                                                                                \
    "    provider: vsphere\n"                                                                      \
    "    ready_check: ip\n"                                                                        \
    "    extra_config:\n"                                                                          \
    "      SET.guest.ipAddress: '127.0.0.1'\n"                                                     \
    "      SET.guest.hostName: 'localhost'\n"                                                      \
    "  - name: 'pool3'\n"                                                                          \
    "    template: 'templates/base'\n"                                                             \
    "    folder: 'vmpool/pool3'\n"                                                                 \
    "    network: 'DC0_DVPG0'\n"                                                                   \
    "    size: 1\n"                                                                                \
    "    provider: vsphere\n"                                                                      \
    "  - name: 'other'\n"                                                                          \
    "    template: 'base'\n"                                                                       \
    "    size: 1\n"

static bool fixtures_made;

/* The template the pools clone: a copy of a model VM, powered off, marked
 * as a template, in DC0/vm/templates. */
static void make_fixtures(void)
{
    if (fixtures_made)
        return;
    vmp_soap *s = client(NULL);
    vmp_err err = {0};
    vmp_moref vmroot, tfolder, vm, pool;
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm", &vmroot, &err));
    ASSERT_OK(vmp_vim_create_folder(s, &vmroot, "templates", &tfolder, &err));
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/DC0_C0_RP0_VM0", &vm, &err));
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/host/DC0_C0/Resources", &pool, &err));
    vmp_vim_clone c = {.location = {.pool = &pool}, .is_template = true};
    vmp_buf args = VMP_BUF_INIT;
    vmp_xml_moref(&args, "folder", &tfolder);
    vmp_xml_elem(&args, "name", "base");
    vmp_vim_clone_xml(&args, "spec", &c);
    ASSERT_OK(
        vmp_vim_run_task(s, "CloneVM_Task", &vm, args.s, "template", TASK_TIMEOUT, NULL, &err));
    vmp_buf_free(&args);
    vmp_soap_free(s);
    fixtures_made = true;
}

static void open_base(inst *in)
{
    NEED_SIM();
    make_fixtures();
    vmp_err err = {0};
    if (inst_open(in, BASE_YAML, &err) != 0)
        fail_msg("open: %s", err.msg);
}

/* A copy of base with the first `find` replaced by `repl` (fails the test
 * when find is not there). */
static char *yaml_edit(const char *base, const char *find, const char *repl)
{
    const char *at = strstr(base, find);
    if (!at)
        fail_msg("yaml_edit: '%s' not found", find);
    vmp_buf b = VMP_BUF_INIT;
    vmp_buf_append(&b, base, (size_t)(at - base));
    vmp_buf_puts(&b, repl);
    vmp_buf_puts(&b, at + strlen(find));
    return vmp_buf_take(&b);
}

static void open_edited(inst *in, const char *find, const char *repl)
{
    NEED_SIM();
    make_fixtures();
    char *yaml = yaml_edit(BASE_YAML, find, repl);
    vmp_err err = {0};
    if (inst_open(in, yaml, &err) != 0)
        fail_msg("open: %s", err.msg);
    free(yaml);
}

static bool list_has(const vmp_strlist *l, const char *s) { return vmp_strlist_contains(l, s); }

static void test_provider_config_errors(void **state)
{
    (void)state;
    NEED_SIM();
    inst in;
    vmp_err err = {0};
    assert_int_equal(inst_open(&in,
                               "---\n:providers:\n  :vsphere:\n    username: u\n:pools:\n"
                               "  - name: p\n    template: t/x\n    size: 1\n"
                               "    provider: vsphere\n",
                               &err),
                     VMP_EINVAL);
    assert_non_null(strstr(err.msg, "needs server, username and password"));
    inst_close(&in);
    assert_int_equal(inst_open(&in,
                               "---\n:providers:\n  :vsphere:\n    server: 'ftp://x'\n"
                               "    username: u\n    password: p\n",
                               &err),
                     VMP_EINVAL);
    assert_non_null(strstr(err.msg, "https://"));
    inst_close(&in);
    assert_int_equal(inst_open(&in,
                               "---\n:providers:\n  :vsphere:\n    server: 'https://u:pw@vc/sdk'\n"
                               "    username: u\n    password: p\n",
                               &err),
                     VMP_EINVAL);
    assert_null(strstr(err.msg, "pw"));
    inst_close(&in);
}

static void test_provider_lifecycle(void **state)
{
    (void)state;
    inst in;
    open_base(&in);
    vmp_err err = {0};
    vmp_vm_info info = {0};
    /* The pool folder does not exist yet: no VMs, no error. */
    vmp_strlist names = VMP_STRLIST_INIT;
    ASSERT_OK(vmp_provider_vms_in_pool(in.p, "pool1", &names, &err));
    assert_int_equal(names.n, 0);

    ASSERT_OK(vmp_provider_create_vm(in.p, "pool1", "p1-life", &info, &err));
    assert_string_equal(info.name, "p1-life");
    assert_string_equal(info.poolname, "pool1");
    assert_string_equal(info.template_path, "templates/base");
    assert_string_equal(info.powerstate, "poweredOn");
    assert_true(strncmp(info.host, "DC0_C0_H", 8) == 0);
    assert_true(info.boottime > vmp_now() - 600 && info.boottime <= vmp_now() + 5);
    vmp_vm_info_clear(&info);

    /* create_folders made vmpool/pool1; the template is not listed. */
    ASSERT_OK(vmp_provider_vms_in_pool(in.p, "pool1", &names, &err));
    assert_int_equal(names.n, 1);
    assert_string_equal(names.v[0], "p1-life");
    vmp_strlist_clear(&names);

    /* One inventory pass is one round trip once the folder is known. */
    vmp_soap_counters c0, c1;
    vmp_vsphere_counters(in.p, &c0);
    ASSERT_OK(vmp_provider_vms_in_pool(in.p, "pool1", &names, &err));
    vmp_vsphere_counters(in.p, &c1);
    assert_int_equal(c1.round_trips - c0.round_trips, 1);
    vmp_strlist_clear(&names);

    bool exists = false;
    ASSERT_OK(vmp_provider_vm_exists(in.p, "pool1", "p1-life", &exists, &err));
    assert_true(exists);
    ASSERT_OK(vmp_provider_get_vm(in.p, "pool1", "p1-life", &info, &err));
    assert_string_equal(info.powerstate, "poweredOn");
    char host[VMP_HOST_MAX];
    ASSERT_OK(vmp_provider_get_vm_host(in.p, "pool1", "p1-life", host, sizeof host, &err));
    assert_string_equal(host, info.host);
    vmp_vm_info_clear(&info);
    /* No guest IP in this pool's clones: an empty answer. */
    char ip[64] = "stale";
    ASSERT_OK(vmp_provider_get_vm_ip_address(in.p, "pool1", "p1-life", ip, sizeof ip, &err));
    assert_string_equal(ip, "");

    /* The clone carries vmpooler's annotation and guestinfo.hostname. */
    vmp_soap *s = client(NULL);
    vmp_moref vm;
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/vmpool/pool1/p1-life", &vm, &err));
    static const char *const paths[] = {"config.extraConfig", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    ASSERT_OK(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err));
    char *xc = vmp_xml_text_dup(vmp_vim_objects_prop(r, 0, "config.extraConfig"));
    assert_non_null(strstr(xc, "guestinfo.hostnamep1-life"));
    free(xc);
    vmp_vim_objects_free(r);

    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "p1-life", &err));
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/vm/vmpool/pool1/p1-life", &vm, &err), VMP_ENOENT);
    ASSERT_OK(vmp_provider_vm_exists(in.p, "pool1", "p1-life", &exists, &err));
    assert_false(exists);
    /* Already gone is success. */
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "p1-life", &err));
    assert_int_equal(vmp_provider_get_vm(in.p, "pool1", "p1-life", &info, &err), VMP_ENOENT);
    assert_non_null(strstr(err.msg, "p1-life"));
    ASSERT_OK(vmp_provider_vms_in_pool(in.p, "pool1", &names, &err));
    assert_int_equal(names.n, 0);
    vmp_soap_free(s);
    assert_true(rec_count(&in.r, "connect.open") >= 1);
    assert_int_equal(rec_count(&in.r, "connect.fail"), 0);
    inst_close(&in);
}

static void test_provider_unknowns(void **state)
{
    (void)state;
    inst in;
    open_base(&in);
    vmp_err err = {0};
    vmp_vm_info info = {0};
    vmp_strlist names = VMP_STRLIST_INIT;
    bool b = true;
    char buf[64];
    /* Unknown pool. */
    ASSERT_OK(vmp_provider_vms_in_pool(in.p, "nope", &names, &err));
    assert_int_equal(names.n, 0);
    assert_int_equal(vmp_provider_create_vm(in.p, "nope", "x", &info, &err), VMP_ENOENT);
    assert_non_null(strstr(err.msg, "pool 'nope' is not configured"));
    assert_int_equal(vmp_provider_get_vm(in.p, "nope", "x", &info, &err), VMP_ENOENT);
    assert_int_equal(vmp_provider_vm_ready(in.p, "nope", "x", &b, &err), VMP_ENOENT);
    assert_false(b);
    /* Unknown VM. */
    assert_int_equal(vmp_provider_get_vm(in.p, "pool1", "ghost", &info, &err), VMP_ENOENT);
    assert_string_equal(err.msg, "VM ghost does not exist in pool pool1");
    ASSERT_OK(vmp_provider_vm_exists(in.p, "pool1", "ghost", &b, &err));
    assert_false(b);
    assert_int_equal(vmp_provider_get_vm_host(in.p, "pool1", "ghost", buf, sizeof buf, &err),
                     VMP_ENOENT);
    assert_int_equal(vmp_provider_get_vm_ip_address(in.p, "pool1", "ghost", buf, sizeof buf, &err),
                     VMP_ENOENT);
    assert_int_equal(vmp_provider_create_disk(in.p, "pool1", "ghost", 1, &err), VMP_ENOENT);
    assert_int_equal(vmp_provider_create_snapshot(in.p, "pool1", "ghost", "s", &err), VMP_ENOENT);
    assert_int_equal(vmp_provider_revert_snapshot(in.p, "pool1", "ghost", "s", &err), VMP_ENOENT);
    assert_int_equal(
        vmp_provider_find_least_used_compatible_host(in.p, "pool1", "ghost", buf, sizeof buf, &err),
        VMP_ENOENT);
    assert_int_equal(vmp_provider_migrate_vm_to_host(in.p, "pool1", "ghost", "DC0_C0_H1", &err),
                     VMP_ENOENT);
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "ghost", &err));
    /* A pool of another provider and no folder: its template is a bare
     * name, which is refused before anything is cloned. */
    assert_int_equal(vmp_provider_create_vm(in.p, "other", "x", &info, &err), VMP_EINVAL);
    assert_non_null(strstr(err.msg, "inventory path"));
    inst_close(&in);
}

static void test_provider_snapshots_and_disks(void **state)
{
    (void)state;
    inst in;
    open_base(&in);
    vmp_err err = {0};
    ASSERT_OK(vmp_provider_create_vm(in.p, "pool1", "p1-snap", NULL, &err));
    ASSERT_OK(vmp_provider_create_snapshot(in.p, "pool1", "p1-snap", "clean", &err));
    assert_int_equal(vmp_provider_create_snapshot(in.p, "pool1", "p1-snap", "clean", &err),
                     VMP_EEXIST);
    assert_non_null(strstr(err.msg, "already exists"));
    ASSERT_OK(vmp_provider_create_snapshot(in.p, "pool1", "p1-snap", "second", &err));
    ASSERT_OK(vmp_provider_revert_snapshot(in.p, "pool1", "p1-snap", "clean", &err));
    assert_int_equal(vmp_provider_revert_snapshot(in.p, "pool1", "p1-snap", "missing", &err),
                     VMP_ENOENT);
    assert_string_equal(err.msg, "snapshot 'missing' does not exist on VM p1-snap");

    /* Disks: sizes must be positive; each lands on the next free unit of
     * the SCSI controller, in the VM's directory. */
    /* (The call wrapper refuses 0 itself; the op says "false" too.) */
    assert_int_equal(
        vmp_vsphere_provider_ops.create_disk(vmp_provider_self(in.p), "pool1", "p1-snap", 0, &err),
        VMP_EFAILED);
    ASSERT_OK(vmp_provider_create_disk(in.p, "pool1", "p1-snap", 3, &err));
    ASSERT_OK(vmp_provider_create_disk(in.p, "pool1", "p1-snap", 1, &err));
    vmp_soap *s = client(NULL);
    vmp_moref vm;
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/vmpool/pool1/p1-snap", &vm, &err));
    static const char *const paths[] = {"config.hardware.device", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    ASSERT_OK(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err));
    vmp_vim_device *d = NULL;
    size_t n = 0;
    ASSERT_OK(
        vmp_vim_devices_parse(vmp_vim_objects_prop(r, 0, "config.hardware.device"), &d, &n, &err));
    int disks = 0;
    bool three = false, one = false;
    for (size_t i = 0; i < n; i++) {
        if (!d[i].disk)
            continue;
        disks++;
        three |= d[i].unit == 1 && d[i].capacity_kb == 3LL * 1024 * 1024;
        one |= d[i].unit == 2 && d[i].capacity_kb == 1LL * 1024 * 1024;
        if (d[i].unit > 0)
            assert_non_null(strstr(d[i].file, "[LocalDS_0] p1-snap/"));
    }
    assert_int_equal(disks, 3);
    assert_true(three && one);
    free(d);
    vmp_vim_objects_free(r);
    vmp_soap_free(s);

    /* Injected failures come back with vcsim's text. */
    control("POST", "fault", "spec=CreateSnapshot_Task:1");
    assert_int_equal(vmp_provider_create_snapshot(in.p, "pool1", "p1-snap", "third", &err),
                     VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "vcsim injected fault for CreateSnapshot_Task"));
    control("POST", "fault", "spec=RevertToSnapshot_Task:1");
    assert_int_equal(vmp_provider_revert_snapshot(in.p, "pool1", "p1-snap", "second", &err),
                     VMP_EPROVIDER);
    control("POST", "fault", "spec=ReconfigVM_Task:1");
    assert_int_equal(vmp_provider_create_disk(in.p, "pool1", "p1-snap", 1, &err), VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "injected fault for ReconfigVM_Task"));
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "p1-snap", &err));
    inst_close(&in);
}

static void test_provider_failures(void **state)
{
    (void)state;
    inst in;
    open_base(&in);
    vmp_err err = {0};
    vmp_strlist names = VMP_STRLIST_INIT;
    /* A failed clone: the error carries the fault; no VM is left. */
    control("POST", "fault", "spec=CloneVM_Task:1");
    assert_int_equal(vmp_provider_create_vm(in.p, "pool1", "p1-fail", NULL, &err), VMP_EPROVIDER);
    assert_string_equal(err.msg, "clone of templates/base to p1-fail failed: SystemError (reason: "
                                 "vcsim injected fault for CloneVM_Task)");
    /* A failed power-on after the clone. */
    control("POST", "fault", "spec=PowerOnVM_Task:1");
    assert_int_equal(vmp_provider_create_vm(in.p, "pool1", "p1-nopower", NULL, &err),
                     VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "power on of p1-nopower failed"));
    /* ... and the half-made clone was taken away again. */
    bool exists = true;
    ASSERT_OK(vmp_provider_vm_exists(in.p, "pool1", "p1-nopower", &exists, &err));
    assert_false(exists);
    /* A failing destroy is an error, and a retry succeeds. */
    ASSERT_OK(vmp_provider_create_vm(in.p, "pool1", "p1-del", NULL, &err));
    control("POST", "fault", "spec=Destroy_Task:1");
    assert_int_equal(vmp_provider_destroy_vm(in.p, "pool1", "p1-del", &err), VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "destroy of p1-del failed"));
    ASSERT_OK(vmp_provider_vm_exists(in.p, "pool1", "p1-del", &exists, &err));
    assert_true(exists);
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "p1-del", &err));
    /* A SOAP fault on the property read of an inventory pass. */
    control("POST", "fault", "spec=RetrievePropertiesEx=soap:1");
    assert_int_equal(vmp_provider_vms_in_pool(in.p, "pool1", &names, &err), VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "RetrievePropertiesEx: SystemError"));
    /* A power-off that fails during destroy. */
    ASSERT_OK(vmp_provider_create_vm(in.p, "pool1", "p1-stuck", NULL, &err));
    control("POST", "fault", "spec=PowerOffVM_Task:1");
    assert_int_equal(vmp_provider_destroy_vm(in.p, "pool1", "p1-stuck", &err), VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "power off of p1-stuck failed"));
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "p1-stuck", &err));
    inst_close(&in);

    /* A slow clone against a short task_timeout. */
    open_edited(&in, "task_timeout: 30", "task_timeout: 0.5");
    control("POST", "task-delay", "spec=CloneVM_Task:3000");
    double t0 = vmp_monotonic();
    assert_int_equal(vmp_provider_create_vm(in.p, "pool1", "p1-slow", NULL, &err), VMP_ETIMEDOUT);
    assert_true(vmp_monotonic() - t0 < 2.5);
    assert_non_null(strstr(err.msg, "still running"));
    control("DELETE", "task-delay", NULL);
    usleep(3000 * 1000); /* let the clone finish, then clean up */
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "p1-slow", &err));
    inst_close(&in);
}

static void test_provider_bad_credentials(void **state)
{
    (void)state;
    inst in;
    vmp_err err = {0};
    open_edited(&in, "password: '%PASS%'", "password: 'xxxxxx'");
    vmp_strlist names = VMP_STRLIST_INIT;
    assert_int_equal(vmp_provider_vms_in_pool(in.p, "pool1", &names, &err), VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "InvalidLogin"));
    assert_null(strstr(err.msg, "xxxxxx"));
    /* A rejected password is not retried (max_tries 2). */
    assert_int_equal(rec_count(&in.r, "connect.fail"), 1);
    assert_int_equal(rec_count(&in.r, "connect.open"), 0);
    inst_close(&in);
}

/* A TCP listener on a free loopback port. */
static int listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0)
        fail_msg("listener");
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_provider_readiness(void **state)
{
    (void)state;
    NEED_SIM();
    make_fixtures();
    int port = 0;
    int fd = listener(&port);
    /* A port nobody listens on: bind and close. */
    int dead = 0;
    close(listener(&dead));
    char line[96];
    snprintf(line, sizeof line, "    ready_timeout: 2\n    ready_port: %d\n", port);
    inst in;
    vmp_err err = {0};
    open_edited(&in, "    ready_timeout: 2\n", line);
    bool ready = false;
    vmp_vm_info info = {0};

    /* pool2 reads the IP that VMware Tools reports (vcsim: set through
     * extra_config), and puts the clone on the standard network. */
    ASSERT_OK(vmp_provider_create_vm(in.p, "pool2", "p2-ready", &info, &err));
    assert_string_equal(info.ip, "127.0.0.1");
    assert_string_equal(info.hostname, "localhost");
    vmp_vm_info_clear(&info);
    char ip[64];
    ASSERT_OK(vmp_provider_get_vm_ip_address(in.p, "pool2", "p2-ready", ip, sizeof ip, &err));
    assert_string_equal(ip, "127.0.0.1");
    ASSERT_OK(vmp_provider_vm_ready(in.p, "pool2", "p2-ready", &ready, &err));
    assert_true(ready);
    assert_int_equal(vmp_provider_vm_ready(in.p, "pool2", "ghost", &ready, &err), VMP_ENOENT);
    assert_false(ready);

    vmp_soap *s = client(NULL);
    vmp_moref vm;
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/vmpool/pool2/p2-ready", &vm, &err));
    static const char *const paths[] = {"config.hardware.device", "config.extraConfig", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    ASSERT_OK(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err));
    char *dev = vmp_xml_text_dup(vmp_vim_objects_prop(r, 0, "config.hardware.device"));
    char *xc = vmp_xml_text_dup(vmp_vim_objects_prop(r, 0, "config.extraConfig"));
    assert_non_null(strstr(dev, "VM Network"));
    assert_non_null(strstr(xc, "mainMem.ioBlockPages2048"));
    assert_non_null(strstr(xc, "mainMem.iowait0"));
    free(dev);
    free(xc);
    vmp_vim_objects_free(r);
    vmp_soap_free(s);

    /* Powered off: not ready, whatever the port says. */
    ASSERT_OK(vmp_provider_create_vm(in.p, "pool2", "p2-off", NULL, &err));
    s = client(NULL);
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/vmpool/pool2/p2-off", &vm, &err));
    ASSERT_OK(vmp_vim_run_task(s, "PowerOffVM_Task", &vm, NULL, "off", TASK_TIMEOUT, NULL, &err));
    vmp_soap_free(s);
    ASSERT_OK(vmp_provider_vm_ready(in.p, "pool2", "p2-off", &ready, &err));
    assert_false(ready);
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool2", "p2-off", &err));

    /* vmpooler's way (pool1): TCP to the VM's name. "localhost" resolves. */
    ASSERT_OK(vmp_provider_vm_ready(in.p, "pool1", "localhost", &ready, &err));
    assert_true(ready);
    ASSERT_OK(vmp_provider_vm_ready(in.p, "pool1", "no-such-host.invalid", &ready, &err));
    assert_false(ready);
    inst_close(&in);

    /* Nothing listening: not ready. */
    snprintf(line, sizeof line, "    ready_timeout: 2\n    ready_port: %d\n", dead);
    open_edited(&in, "    ready_timeout: 2\n", line);
    ASSERT_OK(vmp_provider_vm_ready(in.p, "pool2", "p2-ready", &ready, &err));
    assert_false(ready);
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool2", "p2-ready", &err));

    /* pool3: a distributed port group. */
    ASSERT_OK(vmp_provider_create_vm(in.p, "pool3", "p3-dv", NULL, &err));
    s = client(NULL);
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/vmpool/pool3/p3-dv", &vm, &err));
    static const char *const dpaths[] = {"config.hardware.device", NULL};
    const vmp_vim_propset dset = {"VirtualMachine", dpaths};
    r = NULL;
    ASSERT_OK(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &dset, 1, &r, &err));
    dev = vmp_xml_text_dup(vmp_vim_objects_prop(r, 0, "config.hardware.device"));
    assert_non_null(strstr(dev, "dvportgroup-"));
    free(dev);
    vmp_vim_objects_free(r);
    vmp_soap_free(s);
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool3", "p3-dv", &err));
    inst_close(&in);
    close(fd);
}

static void host_load(const char *name, int cpu, int mem)
{
    char q[128];
    snprintf(q, sizeof q, "name=%s&cpu=%d&mem=%d", name, cpu, mem);
    control("POST", "host-stats", q);
}

static void test_provider_hosts_and_migration(void **state)
{
    (void)state;
    inst in;
    open_base(&in);
    vmp_err err = {0};
    char host[VMP_HOST_MAX];
    ASSERT_OK(vmp_provider_create_vm(in.p, "pool1", "p1-move", NULL, &err));
    /* Hosts have 2 x 2294 MHz and 4 GB. */
    host_load("DC0_C0_H0", 3000, 1404); /* 65 % CPU */
    host_load("DC0_C0_H1", 500, 1404);  /* 11 % */
    host_load("DC0_C0_H2", 1000, 1404); /* 22 % */
    ASSERT_OK(vmp_provider_find_least_used_compatible_host(in.p, "pool1", "p1-move", host,
                                                           sizeof host, &err));
    assert_string_equal(host, "DC0_C0_H1");
    /* Memory above utilization_limit (90 %) disqualifies the host. */
    host_load("DC0_C0_H1", 500, 3900);
    ASSERT_OK(vmp_provider_find_least_used_compatible_host(in.p, "pool1", "p1-move", host,
                                                           sizeof host, &err));
    assert_string_equal(host, "DC0_C0_H2");
    /* Zero usage counts as "no statistics". */
    host_load("DC0_C0_H2", 0, 1404);
    ASSERT_OK(vmp_provider_find_least_used_compatible_host(in.p, "pool1", "p1-move", host,
                                                           sizeof host, &err));
    assert_string_equal(host, "DC0_C0_H0");
    /* Nobody below the limit. */
    host_load("DC0_C0_H0", 4500, 1404);
    assert_int_equal(vmp_provider_find_least_used_compatible_host(in.p, "pool1", "p1-move", host,
                                                                  sizeof host, &err),
                     VMP_EFAILED);
    assert_non_null(strstr(err.msg, "utilization limit"));

    /* Migration to a named host of the pool's cluster. */
    ASSERT_OK(vmp_provider_migrate_vm_to_host(in.p, "pool1", "p1-move", "DC0_C0_H2", &err));
    ASSERT_OK(vmp_provider_get_vm_host(in.p, "pool1", "p1-move", host, sizeof host, &err));
    assert_string_equal(host, "DC0_C0_H2");
    ASSERT_OK(vmp_provider_migrate_vm_to_host(in.p, "pool1", "p1-move", "DC0_C0_H0", &err));
    ASSERT_OK(vmp_provider_get_vm_host(in.p, "pool1", "p1-move", host, sizeof host, &err));
    assert_string_equal(host, "DC0_C0_H0");
    assert_int_equal(vmp_provider_migrate_vm_to_host(in.p, "pool1", "p1-move", "DC0_H0", &err),
                     VMP_EFAILED);
    assert_non_null(strstr(err.msg, "not in cluster DC0_C0"));
    control("POST", "fault", "spec=RelocateVM_Task:1");
    assert_int_equal(vmp_provider_migrate_vm_to_host(in.p, "pool1", "p1-move", "DC0_C0_H1", &err),
                     VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "migration of p1-move to DC0_C0_H1 failed"));
    /* pool3 has no cluster. */
    assert_int_equal(vmp_provider_migrate_vm_to_host(in.p, "pool3", "p1-move", "DC0_C0_H1", &err),
                     VMP_EINVAL);
    host_load("DC0_C0_H0", 67, 1404);
    host_load("DC0_C0_H1", 67, 1404);
    host_load("DC0_C0_H2", 67, 1404);
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "p1-move", &err));
    inst_close(&in);
}

/* manage_host_selection: clones go round the least used hosts. vcsim
 * ignores the clone's host, so this checks the request is accepted and the
 * rotation through the unit-tested lists. */
static void test_provider_managed_hosts(void **state)
{
    (void)state;
    inst in;
    vmp_err err = {0};
    open_edited(&in, "  create_folders: true\n",
                "  create_folders: true\n  manage_host_selection: true\n"
                "  host_selection_max_age: 600\n");
    host_load("DC0_C0_H0", 3000, 1404);
    ASSERT_OK(vmp_provider_create_vm(in.p, "pool1", "p1-rr1", NULL, &err));
    ASSERT_OK(vmp_provider_create_vm(in.p, "pool1", "p1-rr2", NULL, &err));
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "p1-rr1", &err));
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "p1-rr2", &err));
    host_load("DC0_C0_H0", 67, 1404);
    inst_close(&in);
}

/* Remembered lookups that went stale: the folder is removed behind the
 * provider's back. */
static void test_provider_stale_inventory(void **state)
{
    (void)state;
    inst in;
    open_base(&in);
    vmp_err err = {0};
    vmp_strlist names = VMP_STRLIST_INIT;
    ASSERT_OK(vmp_provider_create_vm(in.p, "pool3", "p3-stale", NULL, &err));
    ASSERT_OK(vmp_provider_vms_in_pool(in.p, "pool3", &names, &err));
    assert_int_equal(names.n, 1);
    vmp_strlist_clear(&names);
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool3", "p3-stale", &err));
    vmp_soap *s = client(NULL);
    vmp_moref folder;
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/vmpool/pool3", &folder, &err));
    ASSERT_OK(vmp_vim_run_task(s, "Destroy_Task", &folder, NULL, "rm", TASK_TIMEOUT, NULL, &err));
    vmp_soap_free(s);
    /* A clone fails once on the remembered folder (vCenter answers
     * ManagedObjectNotFound; vcsim drops the connection), and the next one
     * makes the folder again. */
    int rc = vmp_provider_create_vm(in.p, "pool3", "p3-again", NULL, &err);
    if (rc != 0) {
        assert_true(rc == VMP_ENOENT || rc == VMP_EIO);
        ASSERT_OK(vmp_provider_create_vm(in.p, "pool3", "p3-again", NULL, &err));
    }
    ASSERT_OK(vmp_provider_vms_in_pool(in.p, "pool3", &names, &err));
    assert_int_equal(names.n, 1);
    assert_string_equal(names.v[0], "p3-again");
    vmp_strlist_clear(&names);
    /* The inventory pass notices a vanished folder at once: no VMs, no
     * error. */
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool3", "p3-again", &err));
    s = client(NULL);
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/vmpool/pool3", &folder, &err));
    ASSERT_OK(vmp_vim_run_task(s, "Destroy_Task", &folder, NULL, "rm", TASK_TIMEOUT, NULL, &err));
    vmp_soap_free(s);
    ASSERT_OK(vmp_provider_vms_in_pool(in.p, "pool3", &names, &err));
    assert_int_equal(names.n, 0);
    inst_close(&in);
}

static void test_provider_template_delta_disks(void **state)
{
    (void)state;
    inst in;
    open_base(&in);
    vmp_err err = {0};
    ASSERT_OK(vmp_provider_create_template_delta_disks(in.p, "pool1", &err));
    vmp_soap *s = client(NULL);
    vmp_moref t;
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/templates/base", &t, &err));
    static const char *const paths[] = {"config.hardware.device", "config.template", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    ASSERT_OK(vmp_vim_retrieve(s, &t, 1, VMP_VIM_SELF, &set, 1, &r, &err));
    bool tmpl = false;
    assert_int_equal(vmp_vim_prop_bool(r, 0, "config.template", &tmpl), 0);
    assert_true(tmpl); /* still a template */
    xmlNode *devs = vmp_vim_objects_prop(r, 0, "config.hardware.device");
    bool layered = false;
    for (xmlNode *d = vmp_xml_child(devs, NULL); d; d = vmp_xml_next(d, NULL)) {
        /* A new top file in the template's directory, whose parent is the
         * old disk (vcsim shares one disk object between a source and its
         * clones, so the parent's name is not checked). */
        char f[256], pf[256];
        xmlNode *backing = vmp_xml_child(d, "backing");
        if (vmp_xml_child_text(backing, "fileName", f, sizeof f) == 0 &&
            vmp_xml_child_text(vmp_xml_child(backing, "parent"), "fileName", pf, sizeof pf) == 0)
            layered = strstr(f, "[LocalDS_0] base/base_") == f && pf[0];
    }
    assert_true(layered);
    vmp_vim_objects_free(r);
    vmp_soap_free(s);
    /* Clones of the layered template still work. */
    ASSERT_OK(vmp_provider_create_vm(in.p, "pool1", "p1-linked", NULL, &err));
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "p1-linked", &err));
    /* Unknown pool. */
    assert_int_equal(vmp_provider_create_template_delta_disks(in.p, "nope", &err), VMP_ENOENT);
    inst_close(&in);
}

static void test_provider_purge(void **state)
{
    (void)state;
    inst in;
    open_base(&in);
    vmp_err err = {0};
    /* Make pool1's folder, then two stray folders beside it. */
    ASSERT_OK(vmp_provider_create_vm(in.p, "pool1", "p1-keep", NULL, &err));
    vmp_soap *s = client(NULL);
    vmp_moref base, stray, kept, vm;
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/vmpool", &base, &err));
    ASSERT_OK(vmp_vim_create_folder(s, &base, "stray", &stray, &err));
    ASSERT_OK(vmp_vim_create_folder(s, &base, "allowed", &kept, &err));
    assert_int_equal(clone_vm(s, "DC0/vm/DC0_C0_RP0_VM0", "stray-vm", false, &vm, &err), 0);
    /* Move the VM into the stray folder. */
    vmp_buf mv = VMP_BUF_INIT;
    vmp_xml_moref(&mv, "list", &vm);
    ASSERT_OK(
        vmp_vim_run_task(s, "MoveIntoFolder_Task", &stray, mv.s, "move", TASK_TIMEOUT, NULL, &err));
    vmp_buf_free(&mv);
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/vmpool/stray/stray-vm", &vm, &err));

    vmp_strlist allow = VMP_STRLIST_INIT;
    vmp_strlist_push(&allow, "allowed");
    ASSERT_OK(vmp_provider_purge_unconfigured_resources(in.p, &allow, &err));
    vmp_strlist_clear(&allow);
    vmp_moref x;
    assert_int_equal(vmp_vim_find_by_path(s, "DC0/vm/vmpool/stray", &x, &err), VMP_ENOENT);
    static const char *const paths[] = {"name", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    assert_int_equal(vmp_vim_retrieve(s, &vm, 1, VMP_VIM_SELF, &set, 1, &r, &err), VMP_ENOENT);
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/vmpool/allowed", &x, &err));
    ASSERT_OK(vmp_vim_find_by_path(s, "DC0/vm/vmpool/pool1/p1-keep", &x, &err));
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "p1-keep", &err));
    vmp_soap_free(s);
    inst_close(&in);
}

typedef struct worker_arg {
    vmp_provider *p;
    char name[32];
    int rc;
    char msg[256];
} worker_arg;

static void *create_worker(void *ud)
{
    worker_arg *a = ud;
    vmp_err err = {0};
    a->rc = vmp_provider_create_vm(a->p, "pool1", a->name, NULL, &err);
    snprintf(a->msg, sizeof a->msg, "%s", err.msg);
    return NULL;
}

static void test_provider_session_pool(void **state)
{
    (void)state;
    inst in;
    open_base(&in);
    vmp_err err = {0};
    /* Six clones at once through three sessions. */
    worker_arg a[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        a[i].p = in.p;
        snprintf(a[i].name, sizeof a[i].name, "p1-par%d", i);
        pthread_create(&th[i], NULL, create_worker, &a[i]);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        if (a[i].rc != 0)
            fail_msg("%s: %s", a[i].name, a[i].msg);
    }
    int created = 0, size = 0;
    assert_int_equal(vmp_vsphere_sessions(in.p, &created, &size), 0);
    assert_int_equal(size, 3);
    assert_true(created >= 1 && created <= 3);
    vmp_strlist names = VMP_STRLIST_INIT;
    ASSERT_OK(vmp_provider_vms_in_pool(in.p, "pool1", &names, &err));
    for (int i = 0; i < 6; i++)
        assert_true(list_has(&names, a[i].name));
    vmp_strlist_clear(&names);
    for (int i = 0; i < 6; i++)
        ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", a[i].name, &err));
    inst_close(&in);

    /* One session and a slow clone: a second borrower gives up after
     * connection_pool_timeout. */
    open_edited(&in, "connection_pool_size: 3\n    connection_pool_timeout: 5",
                "connection_pool_size: 1\n    connection_pool_timeout: 0.3");
    control("POST", "task-delay", "spec=CloneVM_Task:1500");
    worker_arg slow = {.p = in.p};
    snprintf(slow.name, sizeof slow.name, "p1-hog");
    pthread_t t;
    pthread_create(&t, NULL, create_worker, &slow);
    usleep(400 * 1000);
    vmp_strlist_clear(&names);
    double t0 = vmp_monotonic();
    assert_int_equal(vmp_provider_vms_in_pool(in.p, "pool1", &names, &err), VMP_ETIMEDOUT);
    assert_true(vmp_monotonic() - t0 < 1.5);
    assert_non_null(strstr(err.msg, "connection_pool_size 1"));
    pthread_join(t, NULL);
    control("DELETE", "task-delay", NULL);
    assert_int_equal(slow.rc, 0);
    ASSERT_OK(vmp_provider_destroy_vm(in.p, "pool1", "p1-hog", &err));
    inst_close(&in);
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
        cmocka_unit_test(test_provider_config_errors),
        cmocka_unit_test(test_provider_lifecycle),
        cmocka_unit_test(test_provider_unknowns),
        cmocka_unit_test(test_provider_snapshots_and_disks),
        cmocka_unit_test(test_provider_failures),
        cmocka_unit_test(test_provider_bad_credentials),
        cmocka_unit_test(test_provider_readiness),
        cmocka_unit_test(test_provider_hosts_and_migration),
        cmocka_unit_test(test_provider_managed_hosts),
        cmocka_unit_test(test_provider_stale_inventory),
        cmocka_unit_test(test_provider_template_delta_disks),
        cmocka_unit_test(test_provider_purge),
        cmocka_unit_test(test_provider_session_pool),
    };
    vmp_err err = {0};
    if (vmp_vsphere_register(&err) != 0) {
        fprintf(stderr, "register: %s\n", err.msg);
        return 1;
    }
    return cmocka_run_group_tests_name("vsphere", tests, group_setup, group_teardown);
}
