/*
 * lua (scripting): the `vmpool` Lua module and everything that runs Lua
 * inside vmpool — sandboxed interpreter states, protected calls with a
 * traceback and limits, configuration written in Lua, policy hooks for the
 * engine, and the adapter that makes a Lua table a provider.
 *
 * States. A vmp_lua is one lua_State with a role:
 *   CONFIG    runs the configuration's Lua files while the YAML is loaded;
 *             `vmpool.pool{...}`, `vmpool.provider_config{...}` and
 *             `vmpool.global{...}` edit the configuration tree.
 *   POLICY    the engine's policy state: `vmpool.policy{...}` hooks.
 *   PROVIDER  one of a Lua provider's states: `vmpool.provider(name, impl)`
 *             registers the implementation the adapter calls.
 *   PLAIN     nothing bound (tests, embedding).
 * Every state runs the same files (in order); calls that belong to another
 * role do nothing there, so one file may define pools, policies and
 * providers. Only plain data crosses states, never functions.
 *
 * Safety. Every C->Lua call goes through vmp_lua_pcall(): protected, with a
 * traceback, an instruction budget and (optionally) a wall-clock deadline
 * checked by a count hook, and a memory cap in the allocator. By default a
 * state is sandboxed: no io, no os.execute/exit/remove/rename, no
 * loadfile/dofile, `require` only of the modules compiled into vmpool,
 * `load` of text chunks only, no debug library beyond debug.traceback. The
 * configuration opts out with `:config: lua_sandbox: false`.
 *
 * Lua->C bindings check their arguments before they take a lock, allocate
 * or open a handle, and release everything before they raise an error.
 * Registry references are counted (vmp_lua_live_refs) so tests can assert
 * that none leak.
 */
#ifndef VMP_LUA_SCRIPT_H
#define VMP_LUA_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "config.h"
#include "config_node.h"
#include "engine/engine.h"
#include "err.h"
#include "metrics.h"
#include "provider.h"
#include "util.h"

/* ---- states -------------------------------------------------------------- */

typedef enum vmp_lua_role {
    VMP_LUA_PLAIN = 0,
    VMP_LUA_CONFIG,
    VMP_LUA_POLICY,
    VMP_LUA_PROVIDER,
} vmp_lua_role;

/* Defaults of the limits (per protected call). */
#define VMP_LUA_DEFAULT_INSTRUCTIONS 50000000LL /* about half a second of busy Lua */
#define VMP_LUA_DEFAULT_MEMORY (256u * 1024u * 1024u)

typedef struct vmp_lua_opts {
    vmp_lua_role role;
    bool unsandboxed;            /* true: the full standard library */
    long long instruction_limit; /* per vmp_lua_pcall; 0: default; < 0: none */
    double time_limit;           /* seconds per vmp_lua_pcall; <= 0: none */
    size_t memory_limit;         /* bytes for the whole state; 0: default */
    const char *subsys;          /* log subsystem of vmpool.log; NULL: "lua" (copied) */
    vmp_metrics *metrics;        /* vmpool.metrics sink; NULL: null sink (borrowed) */
    vmp_provider *provider;      /* PROVIDER: the instance (borrowed) */
    const vmp_config *config;    /* what vmpool.config() shows (borrowed; may be NULL) */
    /* The Lua files the state will run (may be NULL): when unsandboxed,
     * their directories go on package.path. */
    const vmp_strlist *lua_files;
} vmp_lua_opts;

typedef struct vmp_lua vmp_lua;

/* Makes a state: standard library (sandboxed unless opts->unsandboxed), the
 * `vmpool` module as global and in package.loaded, the Lua modules compiled
 * into vmpool in package.preload. *out must be NULL. */
int vmp_lua_new(const vmp_lua_opts *opts, vmp_lua **out, vmp_err *err);
/* Closes the state (every __gc runs). NULL is a no-op. */
void vmp_lua_free(vmp_lua *l);

lua_State *vmp_lua_state(vmp_lua *l);
/* The vmp_lua owning L, or NULL for a state vmpool did not make (a plain
 * lua5.4 that loaded vmpool.core). */
vmp_lua *vmp_lua_from(lua_State *L);
vmp_lua_role vmp_lua_role_of(const vmp_lua *l);

/* Calls the function below nargs arguments on L's stack, protected: errors
 * get a traceback; the call is bounded by the state's instruction budget,
 * deadline and memory cap (nested calls share the outer call's budget).
 * On success nresults values are left on the stack (LUA_MULTRET allowed).
 * On failure nothing is left, err holds the message's first line(s)
 * (truncated), and the whole message with its traceback is available from
 * vmp_lua_last_error() until the next call. Returns 0, VMP_ETIMEDOUT (limit
 * reached), VMP_ENOMEM, or VMP_EFAILED (the Lua code raised). L may be a
 * state vmpool did not make; then no limits apply. */
int vmp_lua_pcall(lua_State *L, int nargs, int nresults, vmp_err *err);
/* Full text (message and traceback) of the last failed vmp_lua_pcall on
 * this state, or "". */
const char *vmp_lua_last_error(vmp_lua *l);

/* Loads (text only) and runs a file / a string, protected. The chunk name
 * of a string is name (as "=name"). */
int vmp_lua_run_file(vmp_lua *l, const char *path, vmp_err *err);
int vmp_lua_run_string(vmp_lua *l, const char *code, const char *name, vmp_err *err);

/* Runs each file of files in order, stopping at the first failure. */
int vmp_lua_run_files(vmp_lua *l, const vmp_strlist *files, vmp_err *err);

/* Registry references for values C keeps (callbacks, provider objects).
 * vmp_lua_ref pops the value on top of the stack; each ref must be dropped
 * with vmp_lua_unref exactly once. LUA_NOREF/LUA_REFNIL are ignored. */
int vmp_lua_ref(lua_State *L);
void vmp_lua_unref(lua_State *L, int ref);
/* References taken and not yet dropped, over every state (tests). */
long vmp_lua_live_refs(void);

/* Test hook: the next n allocations of l's state succeed, the following
 * ones fail (n < 0: never fail). */
void vmp_lua_fail_alloc_after(vmp_lua *l, long n);
/* Bytes the state currently holds. */
size_t vmp_lua_memory(const vmp_lua *l);

/* Opens the `vmpool` module on L (luaopen_ form: pushes the table). Any
 * state may call it; without a vmp_lua behind L the role is PLAIN. */
int vmp_lua_open_vmpool(lua_State *L);
/* Puts the embedded Lua modules (vmpool.provider, ...) into
 * package.preload of L. */
void vmp_lua_preload(lua_State *L);

/* ---- configuration in Lua ------------------------------------------------ */

/* The configuration hook: runs the Lua files named by `:config: lua:` and
 * any extra files (--lua) over the parsed tree before the typed model is
 * built, so Lua can add, change or generate pools and providers. Keep one
 * for the whole life of the program: it also remembers the Lua provider
 * classes the files define. */
typedef struct vmp_lua_config vmp_lua_config;

/* extra_files (NULL-ended, may be NULL) run after the configured ones. */
int vmp_lua_config_new(const char *const *extra_files, vmp_lua_config **out, vmp_err *err);
void vmp_lua_config_free(vmp_lua_config *lc);
/* Points opts at this hook (edit_tree, edit_ud, provider_classes). */
void vmp_lua_config_apply(vmp_lua_config *lc, vmp_config_opts *opts);
/* The hook itself (vmp_config_opts.edit_tree; ud is the vmp_lua_config).
 * Messages (with file:line and traceback) are appended to errors. */
int vmp_lua_config_edit(vmp_cfg_node *root, const char *name, void *ud, vmp_strlist *errors,
                        vmp_err *err);
/* Registers (or updates) the provider classes the last successful edit
 * defined, so vmp_provider_open can make instances of them. Call after the
 * configuration loaded. Existing instances keep the version they were
 * opened with. */
int vmp_lua_config_register(vmp_lua_config *lc, vmp_err *err);
/* Files that ran in the last edit (resolved paths). */
const vmp_strlist *vmp_lua_config_files(const vmp_lua_config *lc);
/* Whether the last edit's configuration asked for unsandboxed Lua. */
bool vmp_lua_config_unsandboxed(const vmp_lua_config *lc);

/* ---- Lua provider classes ------------------------------------------------ */

/* Registers class `name` backed by the Lua files (which must call
 * vmpool.provider(name, impl)); methods lists the contract methods impl
 * implements (others are NULL ops). Re-registering a name replaces the
 * class for new instances. */
int vmp_lua_provider_register(const char *name, const vmp_strlist *files, bool unsandboxed,
                              const vmp_strlist *methods, vmp_err *err);
/* Unregisters every Lua class and frees them. Only when no instance of them
 * is open any more (end of program, tests). */
void vmp_lua_provider_shutdown(void);
/* Whether class name is a Lua class. */
bool vmp_lua_provider_is_lua(const char *name);

/* ---- policies ------------------------------------------------------------ */

typedef struct vmp_lua_policy vmp_lua_policy;

/* Makes the policy state: runs cfg->lua_files and extra_files (as the
 * configuration hook resolved them: pass vmp_lua_config_files) and collects
 * the `vmpool.policy{...}` hooks. metrics may be NULL. *out must be NULL. */
int vmp_lua_policy_new(const vmp_config *cfg, const vmp_strlist *files, bool unsandboxed,
                       vmp_metrics *metrics, vmp_lua_policy **out, vmp_err *err);
void vmp_lua_policy_free(vmp_lua_policy *p);
/* Fills hooks with the trampolines of the hooks some policy defines (the
 * others NULL); hooks->ud is p. */
void vmp_lua_policy_hooks(vmp_lua_policy *p, vmp_engine_hooks *hooks);
/* Replaces the policy state with one made from a new configuration. A hook
 * kind absent at creation stays off until a restart (the engine copied the
 * hooks); a removed one falls back to built-in behaviour. On failure the old
 * state stays. Thread-safe against hook calls. */
int vmp_lua_policy_reload(vmp_lua_policy *p, const vmp_config *cfg, const vmp_strlist *files,
                          bool unsandboxed, vmp_err *err);
/* Whether any policy hook is defined. */
bool vmp_lua_policy_any(const vmp_lua_policy *p);

#endif
