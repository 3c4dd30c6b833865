/* Tests for the vSphere SOAP/XML layer (providers/vsphere/xml.c, soap.c)
 * without a server: envelope building, escaping, answer and fault parsing. */
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
#include "vsphere/soap.h"
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
    doc = ENV_OPEN "<FindByInventoryPathResponse xmlns=\"urn:vim25\"></FindByInventoryPathResponse>"
                   ENV_CLOSE;
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
         ENV_OPEN "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>vcsim "
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
         "MarkAsTemplate: InvalidPowerState (requestedState: poweredOff, existingState: poweredOn)"},
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
         ENV_OPEN "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>no"
                  "</faultstring><detail><NoPermissionFault xmlns=\"urn:vim25\" "
                  "xsi:type=\"NoPermission\"></NoPermissionFault></detail></soapenv:Fault>" ENV_CLOSE,
         200, VMP_EPROVIDER, "NoPermission", "Destroy_Task: NoPermission: no"},
        {"missingSet NotAuthenticated (vcsim, no session)",
         ENV_OPEN "<RetrievePropertiesExResponse xmlns=\"urn:vim25\"><returnval><objects><obj "
                  "type=\"VirtualMachine\">vm-63</obj><missingSet><path>name</path><fault><fault "
                  XSI "XMLSchema-instance:type=\"NotAuthenticated\"><object type=\"VirtualMachine\">"
                  "vm-63</object><privilegeId>System.Read</privilegeId></fault></fault>"
                  "</missingSet></objects></returnval></RetrievePropertiesExResponse>" ENV_CLOSE,
         200, VMP_EPROVIDER, "NotAuthenticated",
         "RetrievePropertiesEx: NotAuthenticated (reported in missingSet)"},
        {"missingSet NotAuthenticated (RetrieveProperties shape)",
         ENV_OPEN "<RetrievePropertiesResponse xmlns=\"urn:vim25\"><returnval><obj "
                  "type=\"VirtualMachine\">vm-63</obj><missingSet><path>name</path><fault><fault "
                  XSI "XMLSchema-instance:type=\"NotAuthenticated\"></fault></fault></missingSet>"
                  "</returnval></RetrievePropertiesResponse>" ENV_CLOSE,
         200, VMP_EPROVIDER, "NotAuthenticated",
         "RetrieveProperties: NotAuthenticated (reported in missingSet)"},
        {"proxy error page",
         "<html><body>503 Service Unavailable</body></html>", 503, VMP_EPROVIDER, "",
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
        const char *method = strncmp(cases[i].msg, "CurrentTime", 11) == 0 ? "CurrentTime"
                                                                             : NULL;
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
    doc = "<val xmlns:q=\"http://www.w3.org/2001/XMLSchema-instance\" q:type=\"xsd:string\">x</val>";
    d = xmlReadMemory(doc, (int)strlen(doc), "x.xml", NULL, XML_PARSE_NONET);
    assert_int_equal(vmp_xml_read_moref(xmlDocGetRootElement(d), &ref), -1);
    vmp_xml_xsi_type(xmlDocGetRootElement(d), t, sizeof t);
    assert_string_equal(t, "string");
    xmlFreeDoc(d);
}

static void test_service_content(void **state)
{
    (void)state;
    const char *doc =
        ENV_OPEN "<RetrieveServiceContentResponse xmlns=\"urn:vim25\"><returnval>"
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
    };
    int rc = cmocka_run_group_tests_name("soap", tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
