/*
 * xml: the small XML toolkit the vSphere client is built on. Writing side:
 * escaping text for element content and attributes, and emitting the
 * recurring vim25 shapes (a text element, a managed object reference).
 * Reading side: walking a libxml2 tree by local element name (vim25 answers
 * use a default namespace, so names are matched without prefixes), reading
 * text, and reading the two different `type` attributes vim25 puts on a
 * value: the managed object type (`type="HostSystem"`, no namespace) and the
 * XML Schema instance type (`xsi:type`, matched by namespace URI because
 * servers pick arbitrary prefixes for it).
 *
 * Nothing here talks to the network; it is used by soap.c and vim.c and
 * tested on its own.
 */
#ifndef VMP_VSPHERE_XML_H
#define VMP_VSPHERE_XML_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define VMP_XSI_NS "http://www.w3.org/2001/XMLSchema-instance"

/* A managed object reference: its type ("VirtualMachine") and its id
 * ("vm-63"). Ids are opaque strings (a vcsim datastore id is a file system
 * path), so the value field is generous. Empty type = no reference. */
#define VMP_MOREF_TYPE_MAX 64
#define VMP_MOREF_VALUE_MAX 512
typedef struct vmp_moref {
    char type[VMP_MOREF_TYPE_MAX];
    char value[VMP_MOREF_VALUE_MAX];
} vmp_moref;

/* Sets ref from type and value; returns 0, or -1 when either does not fit
 * (ref is then cleared). */
int vmp_moref_set(vmp_moref *ref, const char *type, const char *value);
bool vmp_moref_is_set(const vmp_moref *ref);
bool vmp_moref_equal(const vmp_moref *a, const vmp_moref *b);

/* ---- writing ----------------------------------------------------------- */

/* Appends s with &, <, >, " and ' escaped, usable both as element text and
 * as an attribute value. Tab, newline and carriage return are written as
 * character references; other control characters, which XML 1.0 cannot
 * carry at all, are dropped. s NULL appends nothing. */
void vmp_xml_escape(vmp_buf *b, const char *s);
/* <name>escaped text</name> (text NULL: an empty element). */
void vmp_xml_elem(vmp_buf *b, const char *name, const char *text);
/* <name>%lld</name> and <name>true|false</name>. */
void vmp_xml_elem_int(vmp_buf *b, const char *name, long long v);
void vmp_xml_elem_bool(vmp_buf *b, const char *name, bool v);
/* <name type="Type">value</name>, both escaped. */
void vmp_xml_moref(vmp_buf *b, const char *name, const vmp_moref *ref);

/* ---- reading ----------------------------------------------------------- */

/* True when n is an element with local name `name`. */
bool vmp_xml_is(const xmlNode *n, const char *name);
/* The first element child of n named name (any name when name is NULL), or
 * NULL. */
xmlNode *vmp_xml_child(const xmlNode *n, const char *name);
/* The next element sibling after n named name (any when NULL), or NULL. */
xmlNode *vmp_xml_next(const xmlNode *n, const char *name);
/* Follows a path of child names separated by '/' ("info/error/fault"); the
 * first match at each step. NULL when a step is missing. */
xmlNode *vmp_xml_path(const xmlNode *n, const char *path);

/* Copies n's text content into buf (size len, always terminated). Returns 0,
 * -1 when n is NULL (buf gets "") or the text was truncated. */
int vmp_xml_text(const xmlNode *n, char *buf, size_t len);
/* n's text content as a new string ("" for an empty element), NULL when n is
 * NULL or on allocation failure. */
char *vmp_xml_text_dup(const xmlNode *n);
/* Text of the child `name` of n into buf; -1 when absent or truncated. */
int vmp_xml_child_text(const xmlNode *n, const char *name, char *buf, size_t len);

/* The xsi:type of n without its prefix ("VirtualDisk" for
 * XMLSchema-instance:type="VirtualDisk", "string" for xsd:string) into buf;
 * "" when absent. */
void vmp_xml_xsi_type(const xmlNode *n, char *buf, size_t len);
/* Reads a managed object reference element (<x type="T">id</x>); -1 when n
 * is NULL, has no plain `type` attribute, or does not fit. */
int vmp_xml_read_moref(const xmlNode *n, vmp_moref *out);

/* Parses text as a boolean / integer / double; -1 on anything else. */
int vmp_xml_parse_bool(const char *text, bool *out);
int vmp_xml_node_bool(const xmlNode *n, bool *out);
int vmp_xml_node_ll(const xmlNode *n, long long *out);
int vmp_xml_node_double(const xmlNode *n, double *out);

/* Parses an xsd:dateTime ("2026-11-25T09:59:30.73Z", offsets allowed) into
 * seconds since the epoch; -1 when malformed. */
int vmp_xml_parse_datetime(const char *text, double *out);

#endif
