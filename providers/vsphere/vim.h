/*
 * vim: typed vim25 calls on top of the SOAP client — inventory lookups,
 * property collection, the *_Task methods a pool manager needs and waiting
 * for their tasks — plus the builders for the specs those methods take and
 * the parsers for the structures they answer with (device lists, snapshot
 * trees, task errors).
 *
 * Property collection is the workhorse: one RetrievePropertiesEx (followed
 * by ContinueRetrievePropertiesEx while the server pages) answers for a
 * whole set of objects reached by a traversal, e.g. every VM of a pool
 * folder or every host of a cluster, so one inventory pass of a pool is one
 * round trip however many VMs it holds.
 *
 * Tasks are waited for until a deadline: one read at once (short tasks have
 * often ended by then), then a property filter on the task's state and
 * WaitForUpdatesEx, which answers as soon as the state changes, and a last
 * read of the outcome; a server without filters is polled instead (50 ms
 * doubling to 1 s). A task that ends in error gives the fault's type and
 * fields in err.
 *
 * Element order in the specs follows the vim25 schema (servers validate it).
 */
#ifndef VMP_VSPHERE_VIM_H
#define VMP_VSPHERE_VIM_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "soap.h"
#include "util.h"
#include "xml.h"

/* ---- lookups ----------------------------------------------------------- */

/* SearchIndex.FindByInventoryPath ("DC0/vm/pool1/vm1"). VMP_ENOENT when
 * nothing is there. */
int vmp_vim_find_by_path(vmp_soap *s, const char *path, vmp_moref *out, vmp_err *err);
/* SearchIndex.FindChild: the child `name` of a folder/datacenter. */
int vmp_vim_find_child(vmp_soap *s, const vmp_moref *parent, const char *name, vmp_moref *out,
                       vmp_err *err);
/* Folder.CreateFolder; VMP_EEXIST when the name is taken. */
int vmp_vim_create_folder(vmp_soap *s, const vmp_moref *parent, const char *name, vmp_moref *out,
                          vmp_err *err);
/* ServiceInstance.CurrentTime (needs a session: a cheap health check). */
int vmp_vim_current_time(vmp_soap *s, double *out, vmp_err *err);

/* ---- property collection ------------------------------------------------ */

typedef enum vmp_vim_traverse {
    VMP_VIM_SELF,        /* just the given objects */
    VMP_VIM_CHILDREN,    /* the direct children of the given folders */
    VMP_VIM_FOLDER_TREE, /* everything below the given folders, recursively */
    VMP_VIM_HOSTS,       /* the hosts of the given compute resources / clusters */
} vmp_vim_traverse;

/* Which properties to read from objects of one type. */
typedef struct vmp_vim_propset {
    const char *type;         /* "VirtualMachine" */
    const char *const *paths; /* NULL-terminated list of property paths */
} vmp_vim_propset;

typedef struct vmp_vim_objects vmp_vim_objects;

/* Reads the properties of the objects reached from objs (n of them) by
 * traverse. VMP_ENOENT when a starting object no longer exists. */
int vmp_vim_retrieve(vmp_soap *s, const vmp_moref *objs, size_t n, vmp_vim_traverse traverse,
                     const vmp_vim_propset *sets, size_t nsets, vmp_vim_objects **out,
                     vmp_err *err);
/* Builds the RetrievePropertiesEx arguments (exposed for tests). */
void vmp_vim_retrieve_args(vmp_buf *b, const vmp_moref *objs, size_t n, vmp_vim_traverse traverse,
                           const vmp_vim_propset *sets, size_t nsets);
/* Makes a result set from one RetrievePropertiesEx answer (takes ownership
 * of reply, also on failure); *token receives the paging token ("" when
 * none) if token is non-NULL. Exposed for tests. */
int vmp_vim_objects_from_reply(vmp_soap_reply *reply, vmp_vim_objects **out, char *token,
                               size_t tokenlen, vmp_err *err);
void vmp_vim_objects_free(vmp_vim_objects *r);

size_t vmp_vim_objects_count(const vmp_vim_objects *r);
const vmp_moref *vmp_vim_objects_ref(const vmp_vim_objects *r, size_t i);
/* Index of the object ref, or -1. */
long vmp_vim_objects_find(const vmp_vim_objects *r, const vmp_moref *ref);
/* The <val> of property path of object i, or NULL when the server left it
 * out (unset properties are omitted). */
xmlNode *vmp_vim_objects_prop(const vmp_vim_objects *r, size_t i, const char *path);
/* Typed reads of a property; -1 when absent or malformed (buf gets ""). */
int vmp_vim_prop_str(const vmp_vim_objects *r, size_t i, const char *path, char *buf, size_t len);
int vmp_vim_prop_bool(const vmp_vim_objects *r, size_t i, const char *path, bool *out);
int vmp_vim_prop_ll(const vmp_vim_objects *r, size_t i, const char *path, long long *out);
int vmp_vim_prop_moref(const vmp_vim_objects *r, size_t i, const char *path, vmp_moref *out);
int vmp_vim_prop_time(const vmp_vim_objects *r, size_t i, const char *path, double *out);

/* ---- tasks -------------------------------------------------------------- */

/* Waits until task ends or timeout_s passes (VMP_ETIMEDOUT). what names the
 * operation in messages ("CloneVM_Task of pool1/vm1"). On success *result
 * (may be NULL) receives info.result when it is an object reference. */
int vmp_vim_task_wait(vmp_soap *s, const vmp_moref *task, const char *what, double timeout_s,
                      vmp_moref *result, vmp_err *err);
/* Calls a *_Task method and waits for its task. */
int vmp_vim_run_task(vmp_soap *s, const char *method, const vmp_moref *self, const char *args,
                     const char *what, double timeout_s, vmp_moref *result, vmp_err *err);
/* Fills err from a task's info.error value (a LocalizedMethodFault) and
 * returns the fault's code (vmp_soap_fault_code). */
int vmp_vim_task_error(const xmlNode *error_val, const char *what, vmp_err *err);

/* ---- specs -------------------------------------------------------------- */

typedef struct vmp_vim_option {
    const char *key;
    const char *value;
} vmp_vim_option;

/* VirtualMachineRelocateSpec; NULL members are left out. */
typedef struct vmp_vim_relocate {
    const vmp_moref *folder;
    const vmp_moref *datastore;
    const char *disk_move_type; /* "moveChildMostDiskBacking" for linked clones */
    const vmp_moref *pool;
    const vmp_moref *host;
} vmp_vim_relocate;

/* VirtualMachineConfigSpec; NULL / empty members are left out. */
typedef struct vmp_vim_config {
    const char *annotation;
    const char *device_change;   /* ready XML: one or more <deviceChange> elements */
    const vmp_vim_option *extra; /* extraConfig entries */
    size_t n_extra;
} vmp_vim_config;

typedef struct vmp_vim_clone {
    vmp_vim_relocate location;
    vmp_vim_config config;
    bool is_template;
    bool power_on;
} vmp_vim_clone;

/* <elem>...</elem> for each spec. */
void vmp_vim_relocate_xml(vmp_buf *b, const char *elem, const vmp_vim_relocate *r);
void vmp_vim_config_xml(vmp_buf *b, const char *elem, const vmp_vim_config *c);
void vmp_vim_clone_xml(vmp_buf *b, const char *elem, const vmp_vim_clone *c);

/* ---- devices ------------------------------------------------------------ */

typedef struct vmp_vim_device {
    int key;
    char xsi_type[64];    /* "VirtualDisk", "ParaVirtualSCSIController", ... */
    char label[80];       /* deviceInfo.label ("ethernet-0") */
    char summary[160];    /* deviceInfo.summary */
    int controller_key;   /* -1 when absent */
    int unit;             /* -1 when absent */
    bool scsi_controller; /* has scsiCtlrUnitNumber */
    int scsi_unit;        /* the controller's own unit (7) */
    bool disk;
    bool nic;              /* an ethernet card (has macAddress or addressType) */
    char mac[32];          /* NIC macAddress */
    char address_type[16]; /* NIC addressType ("generated", "manual", ...) */
    char file[512];        /* disk backing fileName */
    vmp_moref datastore;   /* disk backing datastore */
    char disk_mode[32];
    bool thin;
    long long capacity_kb;
} vmp_vim_device;

/* Parses a config.hardware.device value (ArrayOfVirtualDevice) into a new
 * array (*out must be NULL; free with free()). */
int vmp_vim_devices_parse(const xmlNode *val, vmp_vim_device **out, size_t *n, vmp_err *err);
/* Picks where a new disk goes: the first SCSI controller (lowest key) with
 * fewer than 15 devices, and the lowest unit 0..15 that neither its devices
 * nor the controller itself use. -1 when no controller has room. */
int vmp_vim_disk_slot(const vmp_vim_device *d, size_t n, int *controller_key, int *unit);
/* A <deviceChange> adding a new thin disk of capacity_kb created by the
 * server (file: "" = in the VM's directory on its datastore). */
void vmp_vim_add_disk_xml(vmp_buf *b, int controller_key, int unit, long long capacity_kb,
                          const char *file);
/* <deviceChange>s that put a delta disk layer on top of every disk (remove
 * the disk, add it back with a new backing whose parent is the old one).
 * Returns the number of disks. */
int vmp_vim_delta_disks_xml(vmp_buf *b, const vmp_vim_device *d, size_t n,
                            const char *datastore_name);
/* A <deviceChange> editing NIC d to use a standard network (dvs_uuid NULL:
 * network_name + network) or a distributed port group (dvs_uuid +
 * portgroup_key). */
void vmp_vim_nic_network_xml(vmp_buf *b, const vmp_vim_device *d, const char *network_name,
                             const vmp_moref *network, const char *dvs_uuid,
                             const char *portgroup_key);

/* ---- snapshots ---------------------------------------------------------- */

/* Finds a snapshot by name in a VM's `snapshot` value (depth first through
 * rootSnapshotList / childSnapshotList). VMP_ENOENT when absent. */
int vmp_vim_snapshot_find(const xmlNode *snapshot_val, const char *name, vmp_moref *out);

#endif
