/*
 * vcsim: starts and drives a private vCenter simulator for tests, through
 * the shared scripts in ../shared/vcsim (start-vcsim.sh builds it once and
 * starts it on a free loopback port; stop-vcsim.sh stops it by pid).
 *
 * Each instance gets its own run directory (a mkdtemp under TMPDIR), so
 * tests can run several simulators with different flags side by side. The
 * test controls (fault injection, slow tasks, host load) are HTTP calls to
 * the simulator's /vcsim endpoints.
 */
#ifndef VMP_TEST_VCSIM_H
#define VMP_TEST_VCSIM_H

#include <stddef.h>

typedef struct vmp_vcsim vmp_vcsim;

typedef struct vmp_vcsim_opts {
    const char *script_dir; /* directory holding start-vcsim.sh / stop-vcsim.sh */
    const char *username;   /* enforce these credentials (NULL: any non-empty) */
    const char *password;
    const char *args; /* extra vcsim flags, e.g. "-session-timeout 1s" */
    int plain_http;   /* 1: serve plain http (VCSIM_TLS=0); default https */
} vmp_vcsim_opts;

/* Starts a simulator. Returns 0 and sets *out, or -1 with a reason in why
 * (the script's last line of output). */
int vmp_vcsim_start(const vmp_vcsim_opts *opts, vmp_vcsim **out, char *why, size_t whylen);
/* Stops it (SIGTERM by pid via stop-vcsim.sh) and removes its run dir. */
void vmp_vcsim_stop(vmp_vcsim *v);

const char *vmp_vcsim_url(const vmp_vcsim *v);    /* https://127.0.0.1:PORT/sdk */
const char *vmp_vcsim_cacert(const vmp_vcsim *v); /* PEM file ("" with plain http) */
const char *vmp_vcsim_username(const vmp_vcsim *v);
const char *vmp_vcsim_password(const vmp_vcsim *v);
int vmp_vcsim_pid(const vmp_vcsim *v);

/* Calls a test control: method "POST"/"GET"/"DELETE", what "fault",
 * "task-delay" or "host-stats", query without '?' (may be NULL), e.g.
 * vmp_vcsim_control(v, "POST", "fault", "spec=PowerOnVM_Task:1", NULL, 0).
 * The answer body goes into out when given. Returns the HTTP status, or -1
 * when the request could not be made. */
int vmp_vcsim_control(vmp_vcsim *v, const char *method, const char *what, const char *query,
                      char *out, size_t outlen);

#endif
