// libscf declarations: see ../abi.h and illumos-abi.md §6.2.
//
// Confirmed against illumos-gate (read through the `search` tool's copy of illumos/illumos-gate):
//   - usr/src/lib/libscf/inc/libscf.h: the opaque handle types, `typedef unsigned long
//     scf_version_t` with SCF_VERSION 1UL, SCF_SUCCESS 0 / SCF_COMPLETE 1 / SCF_FAILED -1, the scf_error_t
//     values (NONE = 1000 and consecutive up to TEMPLATE_INVALID 1020, CALLBACK_FAILED 1080,
//     INTERNAL 1101), SCF_DECODE_FMRI_* flags, and every prototype below (note the `const` on the
//     object arguments of the getters, and ssize_t returns of the string getters).
//   - usr/src/lib/libscf/inc/libscf_priv.h: `int _scf_pg_wait(scf_propertygroup_t *, int)`
//     (SUNWprivate_1.1): "wait for a change to the propertygroup -- may return early ... The
//     second argument is how long, in seconds ... Returns SCF_COMPLETE on timeout, -1 on error,
//     and SCF_SUCCESS in every other case. You must call scf_pg_update() to see if the object
//     has actually changed."
//   - usr/src/lib/libscf/common/lowlevel.c: _scf_pg_wait asks svc.configd for a notification fd
//     (returns SCF_SUCCESS at once if the pg is no longer the latest version), then poll()s it
//     with events = 0 and timeout * 1000 ms, so it wakes on POLLHUP only; the rh_lock is NOT
//     held across the poll. scf_pg_update returns SCF_COMPLETE (1) when the pg moved to a newer
//     version, SCF_SUCCESS (0) when it already was the latest (configd rc_node_update: DONE vs
//     SUCCESS), -1 with SCF_ERROR_DELETED when the pg is gone. scf_handle_unbind sends
//     REP_PROTOCOL_CLOSE; configd's client_destroy then runs rc_pg_notify_fini, which closes the
//     notification pipe, so a _scf_pg_wait blocked in another thread returns; after that every
//     call on the handle fails with SCF_ERROR_NOT_BOUND (or CONNECTION_BROKEN). That is how a
//     wait is cancelled: unbind from another thread.
//   - scf_handle_decorate(h, "zone", v) must precede scf_handle_bind (IN_USE otherwise); it
//     dlopen()s libzonecfg for zone_get_rootpath and fails with SCF_ERROR_NOT_FOUND for an
//     unknown zone (other than "global"); scf_handle_bind fails with SCF_ERROR_NO_SERVER when the
//     zone's repository door cannot be opened (zone not running).
//   - usr/src/lib/libscf/common/error.c: the scf_strerror texts (used by the fake verbatim).
//   - usr/src/cmd/svcprop/svcprop.c do_wait(): the _scf_pg_wait / scf_pg_update loop we mirror.
#pragma once

#include "../abi.h"

#include <sys/types.h>

extern "C" {

typedef unsigned long scf_version_t;
#define SCF_VERSION 1UL

typedef struct scf_handle scf_handle_t;
typedef struct scf_scope scf_scope_t;
typedef struct scf_service scf_service_t;
typedef struct scf_instance scf_instance_t;
typedef struct scf_propertygroup scf_propertygroup_t;
typedef struct scf_property scf_property_t;
typedef struct scf_value scf_value_t;

#define SCF_SUCCESS 0
#define SCF_COMPLETE 1
#define SCF_FAILED -1

typedef enum scf_error {
  SCF_ERROR_NONE = 1000,
  SCF_ERROR_NOT_BOUND,
  SCF_ERROR_NOT_SET,
  SCF_ERROR_NOT_FOUND,
  SCF_ERROR_TYPE_MISMATCH,
  SCF_ERROR_IN_USE,
  SCF_ERROR_CONNECTION_BROKEN,
  SCF_ERROR_INVALID_ARGUMENT,
  SCF_ERROR_NO_MEMORY,
  SCF_ERROR_CONSTRAINT_VIOLATED,
  SCF_ERROR_EXISTS,
  SCF_ERROR_NO_SERVER,
  SCF_ERROR_NO_RESOURCES,
  SCF_ERROR_PERMISSION_DENIED,
  SCF_ERROR_BACKEND_ACCESS,
  SCF_ERROR_HANDLE_MISMATCH,
  SCF_ERROR_HANDLE_DESTROYED,
  SCF_ERROR_VERSION_MISMATCH,
  SCF_ERROR_BACKEND_READONLY,
  SCF_ERROR_DELETED,
  SCF_ERROR_TEMPLATE_INVALID,
  SCF_ERROR_CALLBACK_FAILED = 1080,
  SCF_ERROR_INTERNAL = 1101
} scf_error_t;
static_assert(sizeof(scf_error_t) == 4, "scf_error_t must be int-sized");
static_assert(SCF_ERROR_TEMPLATE_INVALID == 1020, "scf_error_t values are consecutive from 1000");

#define SCF_DECODE_FMRI_EXACT 0x00000001
#define SCF_DECODE_FMRI_TRUNCATE 0x00000002
#define SCF_DECODE_FMRI_REQUIRE_INSTANCE 0x00000004
#define SCF_DECODE_FMRI_REQUIRE_NO_INSTANCE 0x00000008

#define SCF_PG_RESTARTER "restarter"
#define SCF_PROPERTY_STATE "state"
#define SCF_PROPERTY_NEXT_STATE "next_state"
// MAX_SCF_STATE_STRING_SZ is 14 (incl. NUL); we read into a larger buffer and check the length.
#define MAX_SCF_STATE_STRING_SZ 14

}  // extern "C"

namespace sled {

// One pointer per function the addon calls, with the exact illumos prototype.
struct ScfApi {
  scf_error_t (*scf_error)(void);
  const char* (*scf_strerror)(scf_error_t);
  scf_handle_t* (*scf_handle_create)(scf_version_t);
  int (*scf_handle_decorate)(scf_handle_t*, const char*, scf_value_t*);
  int (*scf_handle_bind)(scf_handle_t*);
  int (*scf_handle_unbind)(scf_handle_t*);
  void (*scf_handle_destroy)(scf_handle_t*);
  scf_value_t* (*scf_value_create)(scf_handle_t*);
  void (*scf_value_destroy)(scf_value_t*);
  int (*scf_value_set_astring)(scf_value_t*, const char*);
  ssize_t (*scf_value_get_astring)(const scf_value_t*, char*, size_t);
  scf_instance_t* (*scf_instance_create)(scf_handle_t*);
  void (*scf_instance_destroy)(scf_instance_t*);
  scf_propertygroup_t* (*scf_pg_create)(scf_handle_t*);
  void (*scf_pg_destroy)(scf_propertygroup_t*);
  scf_property_t* (*scf_property_create)(scf_handle_t*);
  void (*scf_property_destroy)(scf_property_t*);
  int (*scf_handle_decode_fmri)(scf_handle_t*, const char*, scf_scope_t*, scf_service_t*, scf_instance_t*,
                                scf_propertygroup_t*, scf_property_t*, int);
  int (*scf_instance_get_pg)(const scf_instance_t*, const char*, scf_propertygroup_t*);
  int (*scf_pg_get_property)(const scf_propertygroup_t*, const char*, scf_property_t*);
  int (*scf_property_get_value)(const scf_property_t*, scf_value_t*);
  int (*scf_pg_update)(scf_propertygroup_t*);
  int (*_scf_pg_wait)(scf_propertygroup_t*, int timeout_secs);  // SUNWprivate_1.1
};

}  // namespace sled
