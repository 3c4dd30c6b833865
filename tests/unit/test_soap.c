/* Tests for the vSphere layers that need no server (providers/vsphere/xml.c,
 * soap.c, vim.c builders and parsers, hostsel.c): envelope building,
 * escaping, answer and fault parsing, specs, device lists, host selection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libxml/parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "util.h"
#include "vsphere/hostsel.h"
#include "vsphere/soap.h"
#include "vsphere/vim.h"
#include "vsphere/xml.h"

#define ENV_OPEN                                                                                   \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"                                                   \
    "<soapenv:Envelope xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\" "               \
    "xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" "                                 \
    "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "                                              \
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>"
#define ENV_CLOSE "</soapenv:Body></soapenv:Envelope>"
#define XSI "xmlns:XMLSchema-instance=\"http://www.w3.org/2001/XMLSchema-instance\" "

static int parse(const char *doc, long status, const char *method, vmp_soap_reply **out,
                 char *fault, vmp_err *err)
{
    return vmp_soap_reply_parse(doc, strlen(doc), status, method, out, fault, 64, err);
}

static void test_escape(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"a&b", "a&amp;b"},
        {"<vm>", "&lt;vm&gt;"},
        {"say \"hi\" 'there'", "say &quot;hi&quot; &apos;there&apos;"},
        {"tab\there\nnl\rcr", "tab&#9;here&#10;nl&#13;cr"},
        {"bell\a-esc\x1b-del\x7f.", "bell-esc-del."},
        {"caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac"}, /* UTF-8 passes through */
        {"", ""},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(cases); i++) {
        vmp_buf b = VMP_BUF_INIT;
        vmp_xml_escape(&b, cases[i].in);
        assert_string_equal(vmp_buf_str(&b), cases[i].out);
        vmp_buf_free(&b);
    }
    vmp_buf b = VMP_BUF_INIT;
    vmp_xml_escape(&b, NULL);
    assert_string_equal(vmp_buf_str(&b), "");
    vmp_xml_elem(&b, "name", "a<b");
    vmp_xml_elem_int(&b, "capacityInKB", 1048576);
    vmp_xml_elem_bool(&b, "template", false);
    vmp_moref r;
    assert_int_equal(vmp_moref_set(&r, "Datastore", "/tmp/x&y@folder-5"), 0);
    vmp_xml_moref(&b, "datastore", &r);
    assert_string_equal(vmp_buf_str(&b),
                        "<name>a&lt;b</name><capacityInKB>1048576</capacityInKB>"
                        "<template>false</template>"
                        "<datastore type=\"Datastore\">/tmp/x&amp;y@folder-5</datastore>");
    vmp_buf_free(&b);
}

static void test_moref(void **state)
{
    (void)state;
    vmp_moref a, b;
    assert_int_equal(vmp_moref_set(&a, "VirtualMachine", "vm-63"), 0);
    assert_true(vmp_moref_is_set(&a));
    assert_int_equal(vmp_moref_set(&b, "VirtualMachine", "vm-63"), 0);
    assert_true(vmp_moref_equal(&a, &b));
    assert_int_equal(vmp_moref_set(&b, "VirtualMachine", "vm-66"), 0);
    assert_false(vmp_moref_equal(&a, &b));
    char big[VMP_MOREF_VALUE_MAX + 10];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(vmp_moref_set(&b, "Datastore", big), -1);
    assert_false(vmp_moref_is_set(&b));
    assert_false(vmp_moref_is_set(NULL));
}

/* The envelope is well-formed XML whose body is the method in the vim25
 * namespace, with _this first and names escaped so they read back intact. */
static void test_envelope(void **state)
{
    (void)state;
    vmp_buf args = VMP_BUF_INIT;
    vmp_moref folder;
    vmp_moref_set(&folder, "Folder", "group-v3");
    vmp_xml_moref(&args, "entity", &folder);
    vmp_xml_elem(&args, "name", "web & <db> \"01\"");
    vmp_buf b = VMP_BUF_INIT;
    vmp_moref si;
    vmp_moref_set(&si, "SearchIndex", "SearchIndex");
    vmp_soap_envelope(&b, "FindChild", &si, vmp_buf_str(&args));
    assert_false(b.oom);

    xmlDoc *doc = xmlReadMemory(b.s, (int)b.len, "req.xml", NULL, XML_PARSE_NONET);
    assert_non_null(doc);
    xmlNode *root = xmlDocGetRootElement(doc);
    assert_true(vmp_xml_is(root, "Envelope"));
    assert_string_equal((const char *)root->ns->href, "http://schemas.xmlsoap.org/soap/envelope/");
    xmlNode *call = vmp_xml_path(root, "Body/FindChild");
    assert_non_null(call);
    assert_string_equal((const char *)call->ns->href, "urn:vim25");
    xmlNode *first = vmp_xml_child(call, NULL);
    assert_true(vmp_xml_is(first, "_this"));
    vmp_moref got;
    assert_int_equal(vmp_xml_read_moref(first, &got), 0);
    assert_string_equal(got.type, "SearchIndex");
    char text[64];
    assert_int_equal(vmp_xml_child_text(call, "name", text, sizeof text), 0);
    assert_string_equal(text, "web & <db> \"01\"");
    assert_int_equal(vmp_xml_read_moref(vmp_xml_child(call, "entity"), &got), 0);
    assert_string_equal(got.value, "group-v3");
    xmlFreeDoc(doc);

    /* No _this and no arguments. */
    vmp_buf_reset(&b);
    vmp_soap_envelope(&b, "CurrentTime", NULL, NULL);
    assert_non_null(strstr(vmp_buf_str(&b), "<CurrentTime xmlns=\"urn:vim25\"></CurrentTime>"));
    vmp_buf_free(&b);
    vmp_buf_free(&args);
}

static void test_reply_ok(void **state)
{
    (void)state;
    const char *doc = ENV_OPEN "<FindByInventoryPathResponse xmlns=\"urn:vim25\">"
                               "<returnval type=\"VirtualMachine\">vm-63</returnval>"
                               "</FindByInventoryPathResponse>" ENV_CLOSE;
    vmp_soap_reply *r = NULL;
    vmp_err err = {0};
    char fault[64] = "stale";
    assert_int_equal(parse(doc, 200, "FindByInventoryPath", &r, fault, &err), 0);
    assert_string_equal(fault, "");
    assert_true(vmp_xml_is(vmp_soap_reply_body(r), "FindByInventoryPathResponse"));
    vmp_moref ref;
    assert_int_equal(vmp_xml_read_moref(vmp_soap_reply_returnval(r), &ref), 0);
    assert_string_equal(ref.type, "VirtualMachine");
    assert_string_equal(ref.value, "vm-63");
    vmp_soap_reply_free(r);

    /* Not found: an empty answer, no returnval. */
    r = NULL;
    doc = ENV_OPEN
        "<FindByInventoryPathResponse xmlns=\"urn:vim25\"></FindByInventoryPathResponse>" ENV_CLOSE;
    assert_int_equal(parse(doc, 200, "FindByInventoryPath", &r, fault, &err), 0);
    assert_null(vmp_soap_reply_returnval(r));
    vmp_soap_reply_free(r);
    vmp_soap_reply_free(NULL);

    /* The caller may not want the answer. */
    assert_int_equal(parse(doc, 200, "FindByInventoryPath", NULL, NULL, &err), 0);
}

static void test_faults(void **state)
{
    (void)state;
    static const struct {
        const char *name, *doc;
        long status;
        int code;
        const char *fault, *msg;
    } cases[] = {
        {"invalid login",
         ENV_OPEN "<soapenv:Fault><faultcode>ServerFaultCode</faultcode>"
                  "<faultstring>Login failure</faultstring><detail><InvalidLoginFault "
                  "xmlns=\"urn:vim25\" xsi:type=\"InvalidLogin\"></InvalidLoginFault></detail>"
                  "</soapenv:Fault>" ENV_CLOSE,
         500, VMP_EPROVIDER, "InvalidLogin", "Login: InvalidLogin: Login failure"},
        {"not authenticated, empty faultstring",
         ENV_OPEN "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>"
                  "</faultstring><detail><NotAuthenticatedFault xmlns=\"urn:vim25\" "
                  "xsi:type=\"NotAuthenticated\"><object type=\"ServiceInstance\">"
                  "ServiceInstance</object><privilegeId>System.View</privilegeId>"
                  "</NotAuthenticatedFault></detail></soapenv:Fault>" ENV_CLOSE,
         500, VMP_EPROVIDER, "NotAuthenticated",
         "CurrentTime: NotAuthenticated (object: ServiceInstance, privilegeId: System.View)"},
        {"object gone",
         ENV_OPEN "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>The "
                  "object has already been deleted or has not been completely created"
                  "</faultstring><detail><ManagedObjectNotFoundFault xmlns=\"urn:vim25\" "
                  "xsi:type=\"ManagedObjectNotFound\"><obj type=\"VirtualMachine\">vm-73</obj>"
                  "</ManagedObjectNotFoundFault></detail></soapenv:Fault>" ENV_CLOSE,
         500, VMP_ENOENT, "ManagedObjectNotFound",
         "RetrievePropertiesEx: ManagedObjectNotFound: The object has already been deleted or "
         "has not been completely created (obj: vm-73)"},
        {"injected system error, reason equal to the text",
         ENV_OPEN
         "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>vcsim "
         "injected fault for PowerOnVM_Task</faultstring><detail><SystemErrorFault "
         "xmlns=\"urn:vim25\" xsi:type=\"SystemError\"><reason>vcsim injected fault "
         "for PowerOnVM_Task</reason></SystemErrorFault></detail></soapenv:Fault>" ENV_CLOSE,
         500, VMP_EPROVIDER, "SystemError",
         "PowerOnVM_Task: SystemError: vcsim injected fault for PowerOnVM_Task"},
        {"duplicate name, prefixed xsi and no xsi:type (type from the element name)",
         ENV_OPEN "<soapenv:Fault><faultcode>soapenv:Server</faultcode><faultstring>The name "
                  "'pool1' already exists.</faultstring><detail><DuplicateNameFault "
                  "xmlns=\"urn:vim25\"><name>pool1</name></DuplicateNameFault></detail>"
                  "</soapenv:Fault>" ENV_CLOSE,
         500, VMP_EEXIST, "DuplicateName",
         "CreateFolder: DuplicateName: The name 'pool1' already exists. (name: pool1)"},
        {"power state",
         ENV_OPEN "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>"
                  "</faultstring><detail><InvalidPowerStateFault xmlns=\"urn:vim25\" "
                  "xsi:type=\"InvalidPowerState\"><requestedState>poweredOff</requestedState>"
                  "<existingState>poweredOn</existingState></InvalidPowerStateFault></detail>"
                  "</soapenv:Fault>" ENV_CLOSE,
         500, VMP_ESTATE, "InvalidPowerState",
         "MarkAsTemplate: InvalidPowerState (requestedState: poweredOff, existingState: "
         "poweredOn)"},
        {"method not found",
         ENV_OPEN "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>"
                  "VirtualMachine:vm-73 does not implement: MigrateVM_Task</faultstring><detail>"
                  "<MethodNotFoundFault xmlns=\"urn:vim25\" xsi:type=\"MethodNotFound\">"
                  "<receiver type=\"VirtualMachine\">vm-73</receiver><method>MigrateVM_Task"
                  "</method></MethodNotFoundFault></detail></soapenv:Fault>" ENV_CLOSE,
         500, VMP_ENOTSUP, "MethodNotFound",
         "MigrateVM_Task: MethodNotFound: VirtualMachine:vm-73 does not implement: "
         "MigrateVM_Task (receiver: vm-73, method: MigrateVM_Task)"},
        {"fault without detail keeps the faultcode",
         ENV_OPEN "<soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>Unable to "
                  "parse request</faultstring></soapenv:Fault>" ENV_CLOSE,
         500, VMP_EPROVIDER, "Client", "Login: Client: Unable to parse request"},
        {"fault in an HTTP 200 answer is still a fault",
         ENV_OPEN
         "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>no"
         "</faultstring><detail><NoPermissionFault xmlns=\"urn:vim25\" "
         "xsi:type=\"NoPermission\"></NoPermissionFault></detail></soapenv:Fault>" ENV_CLOSE,
         200, VMP_EPROVIDER, "NoPermission", "Destroy_Task: NoPermission: no"},
        {"missingSet NotAuthenticated (vcsim, no session)",
         ENV_OPEN
         "<RetrievePropertiesExResponse xmlns=\"urn:vim25\"><returnval><objects><obj "
         "type=\"VirtualMachine\">vm-63</obj><missingSet><path>name</path><fault><fault " XSI
         "XMLSchema-instance:type=\"NotAuthenticated\"><object type=\"VirtualMachine\">"
         "vm-63</object><privilegeId>System.Read</privilegeId></fault></fault>"
         "</missingSet></objects></returnval></RetrievePropertiesExResponse>" ENV_CLOSE,
         200, VMP_EPROVIDER, "NotAuthenticated",
         "RetrievePropertiesEx: NotAuthenticated (reported in missingSet)"},
        {"missingSet NotAuthenticated (RetrieveProperties shape)",
         ENV_OPEN
         "<RetrievePropertiesResponse xmlns=\"urn:vim25\"><returnval><obj "
         "type=\"VirtualMachine\">vm-63</obj><missingSet><path>name</path><fault><fault " XSI
         "XMLSchema-instance:type=\"NotAuthenticated\"></fault></fault></missingSet>"
         "</returnval></RetrievePropertiesResponse>" ENV_CLOSE,
         200, VMP_EPROVIDER, "NotAuthenticated",
         "RetrieveProperties: NotAuthenticated (reported in missingSet)"},
        {"proxy error page", "<html><body>503 Service Unavailable</body></html>", 503,
         VMP_EPROVIDER, "",
         "CurrentTime: HTTP 503: <html><body>503 Service Unavailable</body></html>"},
        {"non-200 SOAP answer without fault",
         ENV_OPEN "<CurrentTimeResponse xmlns=\"urn:vim25\"/>" ENV_CLOSE, 502, VMP_EPROVIDER, "",
         "CurrentTime: HTTP 502 without a SOAP fault"},
        {"garbage with 200", "not xml at all", 200, VMP_EPROVIDER, "",
         "CurrentTime: malformed SOAP answer: not xml at all"},
        {"empty 200", "", 200, VMP_EPROVIDER, "", "CurrentTime: malformed SOAP answer: (empty)"},
        {"XML that is not an envelope", "<a><b/></a>", 200, VMP_EPROVIDER, "",
         "CurrentTime: malformed SOAP answer: <a><b/></a>"},
        {"empty body", ENV_OPEN ENV_CLOSE, 200, VMP_EPROVIDER, "", "CurrentTime: empty SOAP body"},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(cases); i++) {
        const char *method = strncmp(cases[i].msg, "CurrentTime", 11) == 0 ? "CurrentTime" : NULL;
        char m[64];
        if (!method) {
            const char *colon = strchr(cases[i].msg, ':');
            snprintf(m, sizeof m, "%.*s", (int)(colon - cases[i].msg), cases[i].msg);
            method = m;
        }
        vmp_soap_reply *r = NULL;
        vmp_err err = {0};
        char fault[64];
        int rc = parse(cases[i].doc, cases[i].status, method, &r, fault, &err);
        if (rc != cases[i].code || strcmp(fault, cases[i].fault) != 0 ||
            strcmp(err.msg, cases[i].msg) != 0)
            fail_msg("case '%s': rc %d fault '%s' msg '%s'", cases[i].name, rc, fault, err.msg);
        assert_int_equal(err.code, cases[i].code);
        assert_null(r);
    }
}

/* A missingSet for another reason (e.g. a property the object lacks) is
 * not a session problem. */
static void test_missingset_other(void **state)
{
    (void)state;
    const char *doc =
        ENV_OPEN "<RetrievePropertiesExResponse xmlns=\"urn:vim25\"><returnval><objects><obj "
                 "type=\"VirtualMachine\">vm-63</obj><missingSet><path>guest.ipAddress</path>"
                 "<fault><fault " XSI "XMLSchema-instance:type=\"NoPermission\"></fault></fault>"
                 "</missingSet></objects></returnval></RetrievePropertiesExResponse>" ENV_CLOSE;
    vmp_soap_reply *r = NULL;
    vmp_err err = {0};
    char fault[64];
    assert_int_equal(parse(doc, 200, "RetrievePropertiesEx", &r, fault, &err), 0);
    assert_non_null(r);
    vmp_soap_reply_free(r);
}

static void test_fault_codes(void **state)
{
    (void)state;
    assert_int_equal(vmp_soap_fault_code("ManagedObjectNotFound"), VMP_ENOENT);
    assert_int_equal(vmp_soap_fault_code("DuplicateName"), VMP_EEXIST);
    assert_int_equal(vmp_soap_fault_code("AlreadyExists"), VMP_EEXIST);
    assert_int_equal(vmp_soap_fault_code("InvalidPowerState"), VMP_ESTATE);
    assert_int_equal(vmp_soap_fault_code("InvalidState"), VMP_ESTATE);
    assert_int_equal(vmp_soap_fault_code("NotSupported"), VMP_ENOTSUP);
    assert_int_equal(vmp_soap_fault_code("SystemError"), VMP_EPROVIDER);
    assert_int_equal(vmp_soap_fault_code(""), VMP_EPROVIDER);
    assert_int_equal(vmp_soap_fault_code(NULL), VMP_EPROVIDER);
}

/* Task errors come as a LocalizedMethodFault whose <fault> has an xsi:type
 * with whatever prefix the server chose. */
static void test_fault_describe(void **state)
{
    (void)state;
    const char *doc =
        "<val xmlns=\"urn:vim25\" " XSI "XMLSchema-instance:type=\"LocalizedMethodFault\">"
        "<fault XMLSchema-instance:type=\"InvalidPowerState\"><requestedState>poweredOn"
        "</requestedState><existingState>poweredOn</existingState></fault>"
        "<localizedMessage>*types.InvalidPowerState</localizedMessage></val>";
    xmlDoc *d = xmlReadMemory(doc, (int)strlen(doc), "x.xml", NULL, XML_PARSE_NONET);
    assert_non_null(d);
    xmlNode *val = xmlDocGetRootElement(d);
    char t[64];
    vmp_xml_xsi_type(val, t, sizeof t);
    assert_string_equal(t, "LocalizedMethodFault");
    vmp_buf b = VMP_BUF_INIT;
    vmp_soap_fault_describe(vmp_xml_child(val, "fault"), &b);
    assert_string_equal(vmp_buf_str(&b),
                        "InvalidPowerState (requestedState: poweredOn, existingState: poweredOn)");
    vmp_buf_reset(&b);
    vmp_soap_fault_describe(NULL, &b);
    assert_string_equal(vmp_buf_str(&b), "unknown fault");
    vmp_buf_free(&b);
    xmlFreeDoc(d);
}

/* A value carrying both a moref `type` and an xsi:type (as vCenter and vcsim
 * send them): each reader picks its own attribute. */
static void test_moref_vs_xsi_type(void **state)
{
    (void)state;
    const char *doc =
        "<val " XSI "XMLSchema-instance:type=\"ManagedObjectReference\" type=\"HostSystem\">"
        "host-42</val>";
    xmlDoc *d = xmlReadMemory(doc, (int)strlen(doc), "x.xml", NULL, XML_PARSE_NONET);
    xmlNode *val = xmlDocGetRootElement(d);
    vmp_moref ref;
    assert_int_equal(vmp_xml_read_moref(val, &ref), 0);
    assert_string_equal(ref.type, "HostSystem");
    assert_string_equal(ref.value, "host-42");
    char t[64];
    vmp_xml_xsi_type(val, t, sizeof t);
    assert_string_equal(t, "ManagedObjectReference");
    xmlFreeDoc(d);

    /* The other attribute order, and no moref type at all. */
    doc = "<val type=\"Datastore\" xmlns:q=\"http://www.w3.org/2001/XMLSchema-instance\" "
          "q:type=\"ManagedObjectReference\">/tmp/ds@folder-5</val>";
    d = xmlReadMemory(doc, (int)strlen(doc), "x.xml", NULL, XML_PARSE_NONET);
    assert_int_equal(vmp_xml_read_moref(xmlDocGetRootElement(d), &ref), 0);
    assert_string_equal(ref.type, "Datastore");
    assert_string_equal(ref.value, "/tmp/ds@folder-5");
    xmlFreeDoc(d);
    doc =
        "<val xmlns:q=\"http://www.w3.org/2001/XMLSchema-instance\" q:type=\"xsd:string\">x</val>";
    d = xmlReadMemory(doc, (int)strlen(doc), "x.xml", NULL, XML_PARSE_NONET);
    assert_int_equal(vmp_xml_read_moref(xmlDocGetRootElement(d), &ref), -1);
    vmp_xml_xsi_type(xmlDocGetRootElement(d), t, sizeof t);
    assert_string_equal(t, "string");
    xmlFreeDoc(d);
}

static void test_service_content(void **state)
{
    (void)state;
    const char *doc = ENV_OPEN
        "<RetrieveServiceContentResponse xmlns=\"urn:vim25\"><returnval>"
        "<rootFolder type=\"Folder\">group-d1</rootFolder>"
        "<propertyCollector type=\"PropertyCollector\">propertyCollector</propertyCollector>"
        "<viewManager type=\"ViewManager\">ViewManager</viewManager>"
        "<about><fullName>VMware vCenter Server 6.5.0</fullName><apiType>VirtualCenter"
        "</apiType><apiVersion>6.5</apiVersion></about>"
        "<sessionManager type=\"SessionManager\">SessionManager</sessionManager>"
        "<searchIndex type=\"SearchIndex\">SearchIndex</searchIndex>"
        "<virtualDiskManager type=\"VirtualDiskManager\">virtualDiskManager"
        "</virtualDiskManager></returnval></RetrieveServiceContentResponse>" ENV_CLOSE;
    vmp_soap_reply *r = NULL;
    vmp_err err = {0};
    assert_int_equal(parse(doc, 200, "RetrieveServiceContent", &r, NULL, &err), 0);
    vmp_soap_service svc;
    assert_int_equal(vmp_soap_parse_service(vmp_soap_reply_returnval(r), &svc, &err), 0);
    assert_string_equal(svc.root_folder.value, "group-d1");
    assert_string_equal(svc.property_collector.type, "PropertyCollector");
    assert_string_equal(svc.session_manager.value, "SessionManager");
    assert_string_equal(svc.search_index.value, "SearchIndex");
    assert_string_equal(svc.virtual_disk_manager.value, "virtualDiskManager");
    assert_false(vmp_moref_is_set(&svc.file_manager));
    assert_string_equal(svc.api_version, "6.5");
    assert_string_equal(svc.api_type, "VirtualCenter");
    vmp_soap_reply_free(r);

    /* Without a session manager the client cannot log in: an error. */
    r = NULL;
    doc = ENV_OPEN "<RetrieveServiceContentResponse xmlns=\"urn:vim25\"><returnval><rootFolder "
                   "type=\"Folder\">group-d1</rootFolder><propertyCollector type=\""
                   "PropertyCollector\">pc</propertyCollector><searchIndex type=\"SearchIndex\">"
                   "si</searchIndex></returnval></RetrieveServiceContentResponse>" ENV_CLOSE;
    assert_int_equal(parse(doc, 200, "RetrieveServiceContent", &r, NULL, &err), 0);
    assert_int_equal(vmp_soap_parse_service(vmp_soap_reply_returnval(r), &svc, &err),
                     VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "sessionManager"));
    vmp_soap_reply_free(r);
}

static void test_xml_reading(void **state)
{
    (void)state;
    const char *doc = "<a><b><c>one</c><c>two</c><d>  spaced  </d></b><e>true</e><f>-42</f>"
                      "<g>2.5</g><h>maybe</h><i></i></a>";
    xmlDoc *d = xmlReadMemory(doc, (int)strlen(doc), "x.xml", NULL, XML_PARSE_NONET);
    xmlNode *a = xmlDocGetRootElement(d);
    char buf[16];
    assert_int_equal(vmp_xml_text(vmp_xml_path(a, "b/c"), buf, sizeof buf), 0);
    assert_string_equal(buf, "one");
    xmlNode *c2 = vmp_xml_next(vmp_xml_path(a, "b/c"), "c");
    assert_int_equal(vmp_xml_text(c2, buf, sizeof buf), 0);
    assert_string_equal(buf, "two");
    assert_null(vmp_xml_next(c2, "c"));
    assert_int_equal(vmp_xml_child_text(vmp_xml_child(a, "b"), "d", buf, sizeof buf), 0);
    assert_string_equal(buf, "  spaced  ");
    assert_null(vmp_xml_path(a, "b/x"));
    assert_null(vmp_xml_path(a, "b//c"));
    assert_int_equal(vmp_xml_child_text(a, "zz", buf, sizeof buf), -1);
    assert_string_equal(buf, "");
    assert_int_equal(vmp_xml_text(NULL, buf, sizeof buf), -1);
    char tiny[3];
    assert_int_equal(vmp_xml_text(vmp_xml_path(a, "b/c"), tiny, sizeof tiny), -1);
    assert_string_equal(tiny, "on");
    bool bv = false;
    long long ll = 0;
    double dv = 0;
    assert_int_equal(vmp_xml_node_bool(vmp_xml_child(a, "e"), &bv), 0);
    assert_true(bv);
    assert_int_equal(vmp_xml_node_bool(vmp_xml_child(a, "h"), &bv), -1);
    assert_int_equal(vmp_xml_node_ll(vmp_xml_child(a, "f"), &ll), 0);
    assert_int_equal(ll, -42);
    assert_int_equal(vmp_xml_node_ll(vmp_xml_child(a, "g"), &ll), -1);
    assert_int_equal(vmp_xml_node_double(vmp_xml_child(a, "g"), &dv), 0);
    assert_true(dv == 2.5);
    assert_int_equal(vmp_xml_node_ll(vmp_xml_child(a, "i"), &ll), -1);
    char *dup = vmp_xml_text_dup(vmp_xml_child(a, "i"));
    assert_string_equal(dup, "");
    free(dup);
    assert_null(vmp_xml_text_dup(NULL));
    xmlFreeDoc(d);
}

static void test_datetime(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int rc;
        double out;
    } cases[] = {
        {"1970-01-01T00:00:00Z", 0, 0},
        {"2026-11-25T09:59:30Z", 0, 1795600770},
        {"2026-11-25T09:59:30.25Z", 0, 1795600770.25},
        {"2026-11-25T10:59:30+01:00", 0, 1795600770},
        {"2026-11-25T04:59:30.5-05:00", 0, 1795600770.5},
        {"2026-11-25T09:59:30", 0, 1795600770}, /* no zone: UTC */
        {"2026-11-25 09:59:30Z", -1, 0},
        {"2026-13-25T09:59:30Z", -1, 0},
        {"2026-11-25T09:59:30Zjunk", -1, 0},
        {"2026-11-25T09:59:30.Z", -1, 0},
        {"", -1, 0},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(cases); i++) {
        double t = -1;
        int rc = vmp_xml_parse_datetime(cases[i].in, &t);
        if (rc != cases[i].rc || (rc == 0 && t != cases[i].out))
            fail_msg("'%s': rc %d t %.3f", cases[i].in, rc, t);
    }
    double t;
    assert_int_equal(vmp_xml_parse_datetime(NULL, &t), -1);
}

/* A client refuses URLs it cannot use and keeps its counters at zero until
 * it talks to someone. */
static void test_client_new(void **state)
{
    (void)state;
    vmp_soap *s = NULL;
    vmp_err err = {0};
    vmp_soap_opts o = {.url = "ftp://vc/sdk"};
    assert_int_equal(vmp_soap_new(&o, &s, &err), VMP_EINVAL);
    assert_null(s);
    o.url = NULL;
    assert_int_equal(vmp_soap_new(&o, &s, &err), VMP_EINVAL);
    o.url = "https://127.0.0.1:1/sdk";
    o.username = "u";
    o.password = "secret";
    vmp_soap_stats *st = vmp_soap_stats_new();
    o.stats = st;
    o.connect_timeout_ms = 2000;
    assert_int_equal(vmp_soap_new(&o, &s, &err), 0);
    assert_string_equal(vmp_soap_url(s), "https://127.0.0.1:1/sdk");
    assert_false(vmp_soap_logged_in(s));
    assert_null(vmp_soap_service_content(s));
    /* Nothing listens on port 1: a transport error naming the method, and
     * never the password. */
    assert_int_equal(vmp_soap_connect(s, &err), VMP_EIO);
    assert_non_null(strstr(err.msg, "RetrieveServiceContent"));
    assert_null(strstr(err.msg, "secret"));
    vmp_soap_counters c;
    vmp_soap_counters_get(s, &c);
    assert_int_equal(c.round_trips, 0);
    vmp_soap_stats_get(st, &c);
    assert_int_equal(c.bytes_sent, 0);
    vmp_soap_free(s);
    vmp_soap_free(NULL);
    vmp_soap_stats_free(st);
}

/* Parses a whole document and returns its root (caller frees doc). */
static xmlNode *root_of(const char *xml, xmlDoc **doc)
{
    *doc = xmlReadMemory(xml, (int)strlen(xml), "x.xml", NULL, XML_PARSE_NONET);
    assert_non_null(*doc);
    return xmlDocGetRootElement(*doc);
}

/* Element names of n's children, space-separated. */
static void child_names(const xmlNode *n, char *buf, size_t len)
{
    buf[0] = '\0';
    for (xmlNode *c = vmp_xml_child(n, NULL); c; c = vmp_xml_next(c, NULL)) {
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, "%s%s", l ? " " : "", (const char *)c->name);
    }
}

static void test_retrieve_args(void **state)
{
    (void)state;
    static const char *const paths[] = {"name", "a&b", NULL};
    const vmp_vim_propset sets[] = {{"VirtualMachine", paths}, {"Folder", NULL}};
    vmp_moref objs[2];
    vmp_moref_set(&objs[0], "Folder", "group-v3");
    vmp_moref_set(&objs[1], "Folder", "group-v4");
    const struct {
        vmp_vim_traverse t;
        const char *skip, *select;
    } cases[] = {
        {VMP_VIM_SELF, "false", NULL},
        {VMP_VIM_CHILDREN, "true", "<path>childEntity</path>"},
        {VMP_VIM_FOLDER_TREE, "true", "<selectSet><name>tree</name></selectSet>"},
        {VMP_VIM_HOSTS, "true", "<type>ComputeResource</type><path>host</path>"},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(cases); i++) {
        vmp_buf b = VMP_BUF_INIT, env = VMP_BUF_INIT;
        vmp_vim_retrieve_args(&b, objs, 2, cases[i].t, sets, 2);
        vmp_moref pc;
        vmp_moref_set(&pc, "PropertyCollector", "propertyCollector");
        vmp_soap_envelope(&env, "RetrievePropertiesEx", &pc, vmp_buf_str(&b));
        xmlDoc *doc;
        xmlNode *root = root_of(vmp_buf_str(&env), &doc);
        xmlNode *spec = vmp_xml_path(root, "Body/RetrievePropertiesEx/specSet");
        assert_non_null(spec);
        char names[256];
        child_names(spec, names, sizeof names);
        assert_string_equal(names, "propSet propSet objectSet objectSet");
        char text[64];
        assert_int_equal(
            vmp_xml_child_text(vmp_xml_child(spec, "objectSet"), "skip", text, sizeof text), 0);
        assert_string_equal(text, cases[i].skip);
        xmlNode *ps = vmp_xml_child(spec, "propSet");
        xmlNode *second = vmp_xml_next(vmp_xml_child(ps, "pathSet"), "pathSet");
        assert_int_equal(vmp_xml_text(second, text, sizeof text), 0);
        assert_string_equal(text, "a&b");
        if (cases[i].select)
            assert_non_null(strstr(vmp_buf_str(&b), cases[i].select));
        else
            assert_null(strstr(vmp_buf_str(&b), "selectSet"));
        xmlFreeDoc(doc);
        vmp_buf_free(&b);
        vmp_buf_free(&env);
    }
}

/* Result sets: objects indexed from one or more pages, absent properties,
 * typed reads, the paging token. */
static void test_objects(void **state)
{
    (void)state;
    const char *page1 =
        ENV_OPEN "<RetrievePropertiesExResponse xmlns=\"urn:vim25\"><returnval>"
                 "<token>tok-1</token>"
                 "<objects><obj type=\"VirtualMachine\">vm-1</obj>"
                 "<propSet><name>name</name><val " XSI "XMLSchema-instance:type=\"xsd:string\">"
                 "web &amp; db</val></propSet>"
                 "<propSet><name>config.template</name><val " XSI
                 "XMLSchema-instance:type=\"xsd:boolean\">false</val></propSet>"
                 "<propSet><name>runtime.host</name><val " XSI
                 "XMLSchema-instance:type=\"ManagedObjectReference\" type=\"HostSystem\">host-9"
                 "</val></propSet>"
                 "<propSet><name>runtime.bootTime</name><val " XSI
                 "XMLSchema-instance:type=\"xsd:dateTime\">2026-11-25T09:59:30Z</val></propSet>"
                 "<propSet><name>summary.hardware.memorySize</name><val " XSI
                 "XMLSchema-instance:type=\"xsd:long\">4294430720</val></propSet>"
                 "</objects>"
                 "<objects><obj type=\"Folder\">group-v3</obj></objects>"
                 "<objects><propSet><name>name</name><val>no obj</val></propSet></objects>"
                 "</returnval></RetrievePropertiesExResponse>" ENV_CLOSE;
    vmp_soap_reply *r = NULL;
    vmp_err err = {0};
    assert_int_equal(parse(page1, 200, "RetrievePropertiesEx", &r, NULL, &err), 0);
    vmp_vim_objects *o = NULL;
    char token[64];
    assert_int_equal(vmp_vim_objects_from_reply(r, &o, token, sizeof token, &err), 0);
    assert_string_equal(token, "tok-1");
    assert_int_equal(vmp_vim_objects_count(o), 2); /* the one without <obj> is skipped */
    char buf[64];
    assert_int_equal(vmp_vim_prop_str(o, 0, "name", buf, sizeof buf), 0);
    assert_string_equal(buf, "web & db");
    bool b = true;
    assert_int_equal(vmp_vim_prop_bool(o, 0, "config.template", &b), 0);
    assert_false(b);
    vmp_moref h;
    assert_int_equal(vmp_vim_prop_moref(o, 0, "runtime.host", &h), 0);
    assert_string_equal(h.value, "host-9");
    double t;
    assert_int_equal(vmp_vim_prop_time(o, 0, "runtime.bootTime", &t), 0);
    assert_true(t == 1795600770);
    long long ll;
    assert_int_equal(vmp_vim_prop_ll(o, 0, "summary.hardware.memorySize", &ll), 0);
    assert_true(ll == 4294430720LL);
    assert_int_equal(vmp_vim_prop_str(o, 0, "guest.ipAddress", buf, sizeof buf), -1);
    assert_string_equal(buf, "");
    assert_null(vmp_vim_objects_prop(o, 1, "name"));
    assert_null(vmp_vim_objects_prop(o, 7, "name"));
    assert_int_equal(vmp_vim_objects_find(o, &h), -1);
    vmp_moref f;
    vmp_moref_set(&f, "Folder", "group-v3");
    assert_int_equal(vmp_vim_objects_find(o, &f), 1);
    assert_string_equal(vmp_vim_objects_ref(o, 1)->type, "Folder");
    vmp_vim_objects_free(o);

    /* An answer matching nothing. */
    r = NULL;
    o = NULL;
    const char *empty = ENV_OPEN "<RetrievePropertiesExResponse "
                                 "xmlns=\"urn:vim25\"></RetrievePropertiesExResponse>" ENV_CLOSE;
    assert_int_equal(parse(empty, 200, "RetrievePropertiesEx", &r, NULL, &err), 0);
    assert_int_equal(vmp_vim_objects_from_reply(r, &o, token, sizeof token, &err), 0);
    assert_int_equal(vmp_vim_objects_count(o), 0);
    assert_string_equal(token, "");
    vmp_vim_objects_free(o);
    vmp_vim_objects_free(NULL);
}

static void test_task_error(void **state)
{
    (void)state;
    static const struct {
        const char *xml;
        int code;
        const char *msg;
    } cases[] = {
        {"<val " XSI "XMLSchema-instance:type=\"LocalizedMethodFault\"><fault "
         "XMLSchema-instance:type=\"SystemError\"><reason>vcsim injected fault for "
         "CloneVM_Task</reason></fault><localizedMessage>*types.SystemError</localizedMessage>"
         "</val>",
         VMP_EPROVIDER,
         "clone of t to v failed: SystemError (reason: vcsim injected fault for "
         "CloneVM_Task)"},
        /* vCenter's localizedMessage is a sentence worth keeping. */
        {"<val " XSI "XMLSchema-instance:type=\"LocalizedMethodFault\"><fault "
         "XMLSchema-instance:type=\"InsufficientResourcesFault\"></fault><localizedMessage>"
         "Insufficient resources to satisfy configured failover level for vSphere HA."
         "</localizedMessage></val>",
         VMP_EPROVIDER,
         "clone of t to v failed: InsufficientResourcesFault: Insufficient "
         "resources to satisfy configured failover level for vSphere HA."},
        {"<val " XSI "XMLSchema-instance:type=\"LocalizedMethodFault\"><fault "
         "XMLSchema-instance:type=\"InvalidPowerState\"><existingState>poweredOn</existingState>"
         "</fault></val>",
         VMP_ESTATE, "clone of t to v failed: InvalidPowerState (existingState: poweredOn)"},
        {"<val/>", VMP_EPROVIDER, "clone of t to v failed: unknown fault"},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(cases); i++) {
        xmlDoc *doc;
        xmlNode *val = root_of(cases[i].xml, &doc);
        vmp_err err = {0};
        assert_int_equal(vmp_vim_task_error(val, "clone of t to v", &err), cases[i].code);
        assert_string_equal(err.msg, cases[i].msg);
        xmlFreeDoc(doc);
    }
}

/* The clone spec's elements are in the order the vim25 schema requires. */
static void test_clone_spec(void **state)
{
    (void)state;
    vmp_moref ds, pool, host, folder;
    vmp_moref_set(&ds, "Datastore", "datastore-1");
    vmp_moref_set(&pool, "ResourcePool", "resgroup-26");
    vmp_moref_set(&host, "HostSystem", "host-34");
    vmp_moref_set(&folder, "Folder", "group-v9");
    vmp_vim_option extra[] = {{"guestinfo.hostname", "vm<1>"}, {"mainMem.iowait", "0"}};
    vmp_vim_clone c = {
        .location = {.folder = &folder,
                     .datastore = &ds,
                     .disk_move_type = "moveChildMostDiskBacking",
                     .pool = &pool,
                     .host = &host},
        .config = {.annotation = "{\n  \"name\": \"vm\"\n}",
                   .device_change = "<deviceChange><operation>edit</operation></deviceChange>",
                   .extra = extra,
                   .n_extra = 2},
        .is_template = false,
        .power_on = true,
    };
    vmp_buf b = VMP_BUF_INIT;
    vmp_buf_puts(&b, "<x xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">");
    vmp_vim_clone_xml(&b, "spec", &c);
    vmp_buf_puts(&b, "</x>");
    xmlDoc *doc;
    xmlNode *spec = vmp_xml_child(root_of(vmp_buf_str(&b), &doc), "spec");
    char names[256];
    child_names(spec, names, sizeof names);
    assert_string_equal(names, "location template config powerOn");
    child_names(vmp_xml_child(spec, "location"), names, sizeof names);
    assert_string_equal(names, "folder datastore diskMoveType pool host");
    child_names(vmp_xml_child(spec, "config"), names, sizeof names);
    assert_string_equal(names, "annotation deviceChange extraConfig extraConfig");
    char text[64];
    xmlNode *xc = vmp_xml_path(spec, "config/extraConfig");
    assert_int_equal(vmp_xml_child_text(xc, "value", text, sizeof text), 0);
    assert_string_equal(text, "vm<1>");
    vmp_xml_xsi_type(vmp_xml_child(xc, "value"), text, sizeof text);
    assert_string_equal(text, "string");
    assert_int_equal(vmp_xml_child_text(spec, "powerOn", text, sizeof text), 0);
    assert_string_equal(text, "true");
    xmlFreeDoc(doc);

    /* A bare spec leaves everything unset out. */
    vmp_buf_reset(&b);
    vmp_vim_clone bare = {.is_template = true};
    vmp_vim_clone_xml(&b, "spec", &bare);
    assert_string_equal(vmp_buf_str(&b), "<spec><location></location><template>true</template>"
                                         "<powerOn>false</powerOn></spec>");
    vmp_buf_free(&b);
}

#define DEV(type, body)                                                                            \
    "<VirtualDevice XMLSchema-instance:type=\"" type "\">" body "</VirtualDevice>"

static void test_devices(void **state)
{
    (void)state;
    const char *xml = "<val " XSI "XMLSchema-instance:type=\"ArrayOfVirtualDevice\">" DEV(
        "VirtualPCIController",
        "<key>100</key><busNumber>0</busNumber>") DEV("VirtualLsiLogicController",
                                                      "<key>1001</key><busNumber>1</busNumber>"
                                                      "<scsiCtlrUnitNumber>7</scsiCtlrUnitNumber>")
        DEV("ParaVirtualSCSIController", "<key>1000</key><busNumber>0</busNumber>"
                                         "<scsiCtlrUnitNumber>7</scsiCtlrUnitNumber>")
            DEV("VirtualDisk",
                "<key>2000</key><deviceInfo><label>Hard disk 1</label></deviceInfo>"
                "<backing XMLSchema-instance:type=\"VirtualDiskFlatVer2BackingInfo\"><fileName>"
                "[ds1] vm/vm.vmdk</fileName><datastore type=\"Datastore\">datastore-1</datastore>"
                "<diskMode>persistent</diskMode><thinProvisioned>true</thinProvisioned></backing>"
                "<controllerKey>1000</controllerKey><unitNumber>0</unitNumber>"
                "<capacityInKB>1048576</capacityInKB>")
                DEV("VirtualVmxnet3",
                    "<key>4000</key><deviceInfo><label>Network adapter 1</label>"
                    "<summary>VM Network</summary></deviceInfo><controllerKey>100</controllerKey>"
                    "<unitNumber>7</unitNumber><addressType>assigned</addressType>"
                    "<macAddress>00:50:56:aa:bb:cc</macAddress>") "</val>";
    xmlDoc *doc;
    xmlNode *val = root_of(xml, &doc);
    vmp_vim_device *d = NULL;
    size_t n = 0;
    vmp_err err = {0};
    assert_int_equal(vmp_vim_devices_parse(val, &d, &n, &err), 0);
    assert_int_equal(n, 5);
    assert_true(d[1].scsi_controller && d[2].scsi_controller && !d[0].scsi_controller);
    assert_true(d[3].disk);
    assert_string_equal(d[3].file, "[ds1] vm/vm.vmdk");
    assert_string_equal(d[3].datastore.value, "datastore-1");
    assert_true(d[3].thin);
    assert_int_equal(d[3].capacity_kb, 1048576);
    assert_true(d[4].nic && !d[3].nic);
    assert_string_equal(d[4].mac, "00:50:56:aa:bb:cc");
    assert_string_equal(d[4].label, "Network adapter 1");
    assert_string_equal(d[4].xsi_type, "VirtualVmxnet3");

    /* The lowest-keyed SCSI controller (1000, not 1001) and its lowest free
     * unit. */
    int ctrl = 0, unit = 0;
    assert_int_equal(vmp_vim_disk_slot(d, n, &ctrl, &unit), 0);
    assert_int_equal(ctrl, 1000);
    assert_int_equal(unit, 1);

    /* Delta disks: remove the disk, add it back over a new file whose
     * parent is the old backing. */
    vmp_buf b = VMP_BUF_INIT;
    vmp_buf_puts(&b, "<x xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">");
    assert_int_equal(vmp_vim_delta_disks_xml(&b, d, n, "ds1"), 1);
    vmp_vim_nic_network_xml(&b, &d[4], "VM & Network", NULL, NULL, NULL);
    vmp_vim_nic_network_xml(&b, &d[4], NULL, NULL, "50 1a uu", "dvportgroup-13");
    vmp_vim_add_disk_xml(&b, 1000, 1, 2097152, "");
    vmp_buf_puts(&b, "</x>");
    xmlDoc *d2;
    xmlNode *x = root_of(vmp_buf_str(&b), &d2);
    xmlNode *rm = vmp_xml_child(x, "deviceChange");
    xmlNode *add = vmp_xml_next(rm, "deviceChange");
    char t[128];
    vmp_xml_child_text(rm, "operation", t, sizeof t);
    assert_string_equal(t, "remove");
    vmp_xml_child_text(add, "operation", t, sizeof t);
    assert_string_equal(t, "add");
    vmp_xml_child_text(add, "fileOperation", t, sizeof t);
    assert_string_equal(t, "create");
    vmp_xml_child_text(vmp_xml_path(add, "device/backing"), "fileName", t, sizeof t);
    assert_string_equal(t, "[ds1]");
    vmp_xml_child_text(vmp_xml_path(add, "device/backing/parent"), "fileName", t, sizeof t);
    assert_string_equal(t, "[ds1] vm/vm.vmdk");
    char names[256];
    child_names(vmp_xml_child(add, "device"), names, sizeof names);
    assert_string_equal(names, "key backing controllerKey unitNumber capacityInKB");
    xmlNode *nic1 = vmp_xml_next(add, "deviceChange");
    child_names(vmp_xml_child(nic1, "device"), names, sizeof names);
    assert_string_equal(names,
                        "key deviceInfo backing controllerKey unitNumber addressType macAddress");
    vmp_xml_child_text(vmp_xml_path(nic1, "device/backing"), "deviceName", t, sizeof t);
    assert_string_equal(t, "VM & Network");
    xmlNode *nic2 = vmp_xml_next(nic1, "deviceChange");
    vmp_xml_child_text(vmp_xml_path(nic2, "device/backing/port"), "portgroupKey", t, sizeof t);
    assert_string_equal(t, "dvportgroup-13");
    vmp_xml_xsi_type(vmp_xml_path(nic2, "device/backing"), t, sizeof t);
    assert_string_equal(t, "VirtualEthernetCardDistributedVirtualPortBackingInfo");
    xmlNode *nd = vmp_xml_next(nic2, "deviceChange");
    vmp_xml_child_text(vmp_xml_child(nd, "device"), "capacityInKB", t, sizeof t);
    assert_string_equal(t, "2097152");
    xmlFreeDoc(d2);
    vmp_buf_free(&b);
    free(d);
    xmlFreeDoc(doc);
}

/* Disk slots: unit 7 is the controller's own, a full controller (15
 * devices) is skipped, no SCSI controller means no slot. */
static void test_disk_slot(void **state)
{
    (void)state;
    vmp_vim_device d[20];
    memset(d, 0, sizeof d);
    d[0].key = 1000;
    d[0].scsi_controller = true;
    d[0].scsi_unit = 7;
    d[0].controller_key = d[0].unit = -1;
    int n = 1;
    for (int u = 0; u < 7; u++, n++) {
        d[n].key = 2000 + u;
        d[n].controller_key = 1000;
        d[n].unit = u;
    }
    int ctrl, unit;
    assert_int_equal(vmp_vim_disk_slot(d, (size_t)n, &ctrl, &unit), 0);
    assert_int_equal(ctrl, 1000);
    assert_int_equal(unit, 8);
    /* Fill it to 15 devices: the second controller is used. */
    for (int u = 8; u < 16; u++, n++) {
        d[n].key = 2000 + u;
        d[n].controller_key = 1000;
        d[n].unit = u;
    }
    assert_int_equal(vmp_vim_disk_slot(d, (size_t)n, &ctrl, &unit), -1);
    d[n].key = 1001;
    d[n].scsi_controller = true;
    d[n].scsi_unit = 7;
    d[n].controller_key = d[n].unit = -1;
    n++;
    assert_int_equal(vmp_vim_disk_slot(d, (size_t)n, &ctrl, &unit), 0);
    assert_int_equal(ctrl, 1001);
    assert_int_equal(unit, 0);
    assert_int_equal(vmp_vim_disk_slot(d + 1, 7, &ctrl, &unit), -1);
}

static void test_snapshot_find(void **state)
{
    (void)state;
    const char *xml =
        "<val><currentSnapshot type=\"VirtualMachineSnapshot\">snapshot-3</currentSnapshot>"
        "<rootSnapshotList><snapshot type=\"VirtualMachineSnapshot\">snapshot-1</snapshot>"
        "<name>base</name><childSnapshotList><snapshot type=\"VirtualMachineSnapshot\">"
        "snapshot-2</snapshot><name>child</name><childSnapshotList><snapshot "
        "type=\"VirtualMachineSnapshot\">snapshot-3</snapshot><name>grand &amp; child</name>"
        "</childSnapshotList></childSnapshotList></rootSnapshotList>"
        "<rootSnapshotList><snapshot type=\"VirtualMachineSnapshot\">snapshot-4</snapshot>"
        "<name>second root</name></rootSnapshotList></val>";
    xmlDoc *doc;
    xmlNode *val = root_of(xml, &doc);
    static const struct {
        const char *name, *id;
    } cases[] = {
        {"base", "snapshot-1"},        {"child", "snapshot-2"}, {"grand & child", "snapshot-3"},
        {"second root", "snapshot-4"}, {"missing", NULL},       {"", NULL}};
    for (size_t i = 0; i < VMP_ARRAY_LEN(cases); i++) {
        vmp_moref r;
        int rc = vmp_vim_snapshot_find(val, cases[i].name, &r);
        if (cases[i].id) {
            assert_int_equal(rc, 0);
            assert_string_equal(r.value, cases[i].id);
        } else {
            assert_int_equal(rc, VMP_ENOENT);
        }
    }
    vmp_moref r;
    assert_int_equal(vmp_vim_snapshot_find(NULL, "base", &r), VMP_ENOENT);
    xmlFreeDoc(doc);
}

/* ---- host selection --------------------------------------------------- */

static vmp_host_facts host(const char *name, const char *model, double cpu_used, double mem_used)
{
    vmp_host_facts h = {.connected = true,
                        .cpu_mhz = 2000,
                        .cores = 4,
                        .mem_bytes = 8.0 * 1024 * 1024 * 1024,
                        .have_stats = true};
    snprintf(h.name, sizeof h.name, "%s", name);
    snprintf(h.cpu_model, sizeof h.cpu_model, "%s", model);
    snprintf(h.status, sizeof h.status, "green");
    h.cpu_used_mhz = cpu_used; /* of 8000 MHz */
    h.mem_used_mb = mem_used;  /* of 8192 MB */
    return h;
}

static void test_hostsel_rules(void **state)
{
    (void)state;
    char model[64];
    /* The fifth word: the generation of a Xeon ("v2"), "0" for vcsim's. */
    vmp_hostsel_cpu_model("Intel(R) Xeon(R) CPU E5-2650 v2 @ 2.60GHz", model, sizeof model);
    assert_string_equal(model, "v2");
    vmp_hostsel_cpu_model("Intel(R) Xeon(R) CPU           E5-1620 0 @ 3.60GHz", model,
                          sizeof model);
    assert_string_equal(model, "0");
    vmp_hostsel_cpu_model("  AMD  EPYC 7302   16-Core Processor ", model, sizeof model);
    assert_string_equal(model, "Processor");
    vmp_hostsel_cpu_model("too short", model, sizeof model);
    assert_string_equal(model, "");
    vmp_hostsel_cpu_model(NULL, model, sizeof model);
    assert_string_equal(model, "");

    double cpu = 0, mem = 0;
    char why[64];
    vmp_host_facts h = host("h", "X", 2000, 4096);
    assert_true(vmp_hostsel_candidate(&h, 90, &cpu, &mem, why, sizeof why));
    assert_true(cpu == 25.0 && mem == 50.0);
    vmp_host_facts bad;
    bad = h, bad.maintenance = true;
    assert_false(vmp_hostsel_candidate(&bad, 90, NULL, NULL, why, sizeof why));
    assert_string_equal(why, "in maintenance mode");
    bad = h, snprintf(bad.status, sizeof bad.status, "yellow");
    assert_false(vmp_hostsel_candidate(&bad, 90, NULL, NULL, why, sizeof why));
    bad = h, bad.config_issue = true;
    assert_false(vmp_hostsel_candidate(&bad, 90, NULL, NULL, why, sizeof why));
    bad = h, bad.connected = false;
    assert_false(vmp_hostsel_candidate(&bad, 90, NULL, NULL, why, sizeof why));
    bad = h, bad.have_stats = false;
    assert_false(vmp_hostsel_candidate(&bad, 90, NULL, NULL, why, sizeof why));
    assert_string_equal(why, "no usage statistics");
    bad = h, bad.cpu_used_mhz = 0;
    assert_false(vmp_hostsel_candidate(&bad, 90, NULL, NULL, why, sizeof why));
    assert_string_equal(why, "usage statistics are zero");
    bad = h, bad.cpu_used_mhz = 7300; /* 91.25 % */
    assert_false(vmp_hostsel_candidate(&bad, 90, NULL, NULL, why, sizeof why));
    assert_string_equal(why, "CPU use above the utilization limit");
    assert_true(vmp_hostsel_candidate(&bad, 95, NULL, NULL, why, sizeof why));
    bad = h, bad.mem_used_mb = 7500; /* 91.6 % */
    assert_false(vmp_hostsel_candidate(&bad, 90, NULL, NULL, why, sizeof why));
    assert_string_equal(why, "memory use above the utilization limit");
    bad = h, bad.cpu_used_mhz = 7200; /* exactly 90 %: allowed */
    assert_true(vmp_hostsel_candidate(&bad, 90, NULL, NULL, NULL, 0));

    vmp_host_facts hosts[] = {
        host("a", "E5", 4000, 4096), host("b", "E5", 1000, 8000), /* b: memory over */
        host("c", "E5", 2000, 1000), host("d", "X9", 400, 1000),  host("e", "E5", 2000, 2000),
    };
    assert_int_equal(vmp_hostsel_least_used(hosts, 5, NULL, 90), 3);
    assert_int_equal(vmp_hostsel_least_used(hosts, 5, "", 90), 3);
    assert_int_equal(vmp_hostsel_least_used(hosts, 5, "E5", 90), 2); /* tie c/e: first */
    assert_int_equal(vmp_hostsel_least_used(hosts, 5, "Z1", 90), -1);
    assert_int_equal(vmp_hostsel_least_used(hosts, 0, NULL, 90), -1);
}

static void test_hostsel_round_robin(void **state)
{
    (void)state;
    /* Scores (CPU %): a 50, b 10, c 25, d 5 (other model), e 25; average 23. */
    vmp_host_facts hosts[] = {
        host("a", "E5", 4000, 4096), host("b", "E5", 800, 4096),  host("c", "E5", 2000, 4096),
        host("d", "X9", 400, 4096),  host("e", "E5", 2000, 4096),
    };
    vmp_hostsel_rr rr = {0};
    assert_int_equal(vmp_hostsel_rr_build(&rr, hosts, 5, 90, 100.0), 0);
    assert_true(rr.built_at == 100.0);
    /* Only hosts at or below the average, least used first. */
    assert_int_equal(rr.hosts.n, 2);
    assert_string_equal(rr.hosts.v[0], "d");
    assert_string_equal(rr.hosts.v[1], "b");
    assert_true(vmp_hostsel_rr_contains(&rr, NULL, "b"));
    assert_false(vmp_hostsel_rr_contains(&rr, NULL, "a"));
    assert_true(vmp_hostsel_rr_contains(&rr, "E5", "b"));
    assert_false(vmp_hostsel_rr_contains(&rr, "E5", "d"));
    assert_false(vmp_hostsel_rr_contains(&rr, "Z", "d"));
    char name[32];
    const char *order[] = {"d", "b", "d", "b"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vmp_hostsel_rr_next(&rr, NULL, name, sizeof name), 0);
        assert_string_equal(name, order[i]);
    }
    /* Per model: E5 has only b; taking it also moves b to the end of the
     * main list. */
    assert_string_equal(rr.hosts.v[0], "d");
    assert_int_equal(vmp_hostsel_rr_next(&rr, "X9", name, sizeof name), 0);
    assert_string_equal(name, "d");
    assert_string_equal(rr.hosts.v[0], "b");
    assert_int_equal(vmp_hostsel_rr_next(&rr, "Z", name, sizeof name), VMP_ENOENT);

    /* Equal scores all stay; rebuilding replaces the lists. */
    vmp_host_facts same[] = {host("x", "M", 1000, 100), host("y", "M", 1000, 100),
                             host("z", "M", 1000, 100)};
    assert_int_equal(vmp_hostsel_rr_build(&rr, same, 3, 90, 200.0), 0);
    assert_int_equal(rr.hosts.n, 3);
    assert_string_equal(rr.hosts.v[0], "x");
    assert_int_equal(rr.models.n, 1);
    /* No candidate at all. */
    same[0].maintenance = same[1].maintenance = same[2].maintenance = true;
    assert_int_equal(vmp_hostsel_rr_build(&rr, same, 3, 90, 300.0), 0);
    assert_int_equal(vmp_hostsel_rr_next(&rr, NULL, name, sizeof name), VMP_ENOENT);
    vmp_hostsel_rr_clear(&rr);
    vmp_hostsel_rr_clear(&rr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_moref),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_reply_ok),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_missingset_other),
        cmocka_unit_test(test_fault_codes),
        cmocka_unit_test(test_fault_describe),
        cmocka_unit_test(test_moref_vs_xsi_type),
        cmocka_unit_test(test_service_content),
        cmocka_unit_test(test_xml_reading),
        cmocka_unit_test(test_datetime),
        cmocka_unit_test(test_client_new),
        cmocka_unit_test(test_retrieve_args),
        cmocka_unit_test(test_objects),
        cmocka_unit_test(test_task_error),
        cmocka_unit_test(test_clone_spec),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_disk_slot),
        cmocka_unit_test(test_snapshot_find),
        cmocka_unit_test(test_hostsel_rules),
        cmocka_unit_test(test_hostsel_round_robin),
    };
    int rc = cmocka_run_group_tests_name("soap", tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
