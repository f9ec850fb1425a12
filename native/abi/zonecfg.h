// libzonecfg declarations: see ../abi.h and illumos-abi.md §1.
//
// Confirmed against illumos-gate usr/src/head/libzonecfg.h (current: "Copyright (c) 2003, 2010,
// Oracle", read through the `search` tool's copy of illumos/illumos-gate, commit d2a70789):
//   - every Z_* value below, including Z_INVALID_PROPERTY 50 (a 2009 header had Z_HOSTID_FUBAR
//     there; we never depend on codes >= 50);
//   - ZONE_STATE_* 0..7 and ZONE_STATE_MAXSTRLEN 14; `typedef uint_t zone_state_t`;
//   - `typedef enum zone_iptype { ZS_SHARED, ZS_EXCLUSIVE } zone_iptype_t`;
//   - the field order of struct zoneent, zone_fsopt_t, zone_fstab, zone_nwiftab (the current one,
//     with zone_nwif_allowed_address between address and physical: the 2009 header lacks it and
//     is 124 bytes), zone_devtab and zone_dstab;
//   - every prototype in ZonecfgApi, including which arguments are `char *` and which are
//     `const char *` (zone_get_state and zone_get_brand take a plain `char *` name;
//     zonecfg_set_zonepath/set_brand and zonecfg_add_fs_option take `char *`).
// Confirmed against usr/src/lib/libzonecfg/common/libzonecfg.c (same copy):
//   - zonecfg_init_handle() returns NULL with errno = Z_NOMEM (a Z_ value, not an errno);
//   - zonecfg_get_template_handle() neither validates nor checks the new name, and
//     zonecfg_save() of a "new" handle whose name exists silently overwrites that zone (it is
//     how `zonecfg create -F` works), resetting its index state to configured; so the binding
//     checks zonecfg_validate_zonename() and zone_get_state() itself before creating;
//   - zonecfg_validate_zonename(): not "global", strlen < ZONENAME_MAX, [a-zA-Z0-9] then
//     [-_.a-zA-Z0-9]*; it does not reject SUNW* (zonecfg_set_name and zoneadm do);
//   - zonecfg_set_zonepath() returns Z_BAD_PROPERTY unless the path starts with '/';
//   - zonecfg_add_fs_option() strlcpy's into a 1024-byte node (silently truncating), so the
//     binding bounds options itself; zonecfg_getfsent() mallocs the option list, freed by the
//     caller with zonecfg_free_fs_option_list();
//   - the get*ent iterators return Z_NO_ENTRY at the end, and Z_TOO_BIG when a stored value
//     does not fit the struct field;
//   - zonecfg_destroy(): Z_NO_ZONE when neither index entry nor XML exists, Z_BAD_ZONE_STATE when
//     the state is above installed, or above configured without `force`;
//   - getzoneent_private() returns a malloc'd struct zoneent the caller free()s; zone_get_state()
//     asks the kernel first, then the index; zonecfg_strerror() returns static text (for
//     Z_SYSTEM, strerror(errno)).
#pragma once

#include "../abi.h"

#include <cstdio>

extern "C" {

// Sizes (illumos, amd64), under our own names: Linux's <sys/param.h> has MAXPATHLEN 4096.
#define ZC_ZONENAME_MAX 64         // ZONENAME_MAX, sys/zone.h
#define ZC_MAXPATHLEN 1024         // MAXPATHLEN, sys/param.h
#define ZC_MAXNAMELEN 256          // MAXNAMELEN, sys/param.h
#define ZC_LIFNAMSIZ 32            // LIFNAMSIZ, net/if.h
#define ZC_INET6_ADDRSTRLEN 46     // INET6_ADDRSTRLEN, netinet/in.h
#define ZC_FSTYPSZ 16              // FSTYPSZ, sys/fstyp.h
#define ZC_MAX_MNTOPT_STR 1024     // MAX_MNTOPT_STR, sys/mnttab.h

#define ZONE_ID_UNDEFINED -1

// Error codes (int), libzonecfg.h.
#define Z_OK 0
#define Z_EMPTY_DOCUMENT 1
#define Z_WRONG_DOC_TYPE 2
#define Z_BAD_PROPERTY 3
#define Z_TEMP_FILE 4
#define Z_SAVING_FILE 5
#define Z_NO_ENTRY 6
#define Z_BOGUS_ZONE_NAME 7
#define Z_REQD_RESOURCE_MISSING 8
#define Z_REQD_PROPERTY_MISSING 9
#define Z_BAD_HANDLE 10
#define Z_NOMEM 11
#define Z_INVAL 12
#define Z_ACCES 13
#define Z_TOO_BIG 14
#define Z_MISC_FS 15
#define Z_NO_ZONE 16
#define Z_NO_RESOURCE_TYPE 17
#define Z_NO_RESOURCE_ID 18
#define Z_NO_PROPERTY_TYPE 19
#define Z_NO_PROPERTY_ID 20
#define Z_BAD_ZONE_STATE 21
#define Z_INVALID_DOCUMENT 22
#define Z_NAME_IN_USE 23
#define Z_NO_SUCH_ID 24
#define Z_UPDATING_INDEX 25
#define Z_LOCKING_FILE 26
#define Z_UNLOCKING_FILE 27
#define Z_SYSTEM 28  // consult errno (zonecfg_strerror gives strerror(errno))
#define Z_INSUFFICIENT_SPEC 29
// 30-33 unused
#define Z_RESOLVED_PATH 34
#define Z_IPV6_ADDR_PREFIX_LEN 35
#define Z_BOGUS_ADDRESS 36
#define Z_PRIV_PROHIBITED 37
#define Z_PRIV_REQUIRED 38
#define Z_PRIV_UNKNOWN 39
#define Z_BRAND_ERROR 40
#define Z_INCOMPATIBLE 41
#define Z_ALIAS_DISALLOW 42
#define Z_CLEAR_DISALLOW 43
#define Z_POOL 44
#define Z_POOLS_NOT_ACTIVE 45
#define Z_POOL_ENABLE 46
#define Z_NO_POOL 47
#define Z_POOL_CREATE 48
#define Z_POOL_BIND 49
#define Z_INVALID_PROPERTY 50  // Z_HOSTID_FUBAR in the 2009 header

// Zone states (libzonecfg.h). Ordered: range comparisons are part of the interface.
typedef uint_t zone_state_t;
#define ZONE_STATE_CONFIGURED 0
#define ZONE_STATE_INCOMPLETE 1
#define ZONE_STATE_INSTALLED 2
#define ZONE_STATE_READY 3
#define ZONE_STATE_RUNNING 4
#define ZONE_STATE_SHUTTING_DOWN 5
#define ZONE_STATE_DOWN 6
#define ZONE_STATE_MOUNTED 7
#define ZONE_STATE_MAXSTRLEN 14
// zone_state_str() strings (ZONE_STATE_STR_*, sys/zone.h); "unknown" for anything else.
#define ZONE_STATE_STR_CONFIGURED "configured"
#define ZONE_STATE_STR_INCOMPLETE "incomplete"
#define ZONE_STATE_STR_INSTALLED "installed"
#define ZONE_STATE_STR_READY "ready"
#define ZONE_STATE_STR_RUNNING "running"
#define ZONE_STATE_STR_SHUTTING_DOWN "shutting_down"
#define ZONE_STATE_STR_DOWN "down"
#define ZONE_STATE_STR_MOUNTED "mounted"

typedef enum zone_iptype { ZS_SHARED = 0, ZS_EXCLUSIVE = 1 } zone_iptype_t;
static_assert(sizeof(zone_iptype_t) == 4, "zone_iptype_t must be int-sized");
static_assert(sizeof(zone_state_t) == 4, "zone_state_t is a uint_t");

typedef struct zone_dochandle* zone_dochandle_t;  // opaque

struct zoneent {
  char zone_name[ZC_ZONENAME_MAX];  // @0
  int zone_state;                   // @64: configured | incomplete | installed (index only)
  char zone_path[ZC_MAXPATHLEN];    // @68
  uuid_t zone_uuid;                 // @1092
  char zone_newname[ZC_ZONENAME_MAX];  // @1108, for renames
};
static_assert(sizeof(struct zoneent) == 1172, "struct zoneent is 1172 bytes");
static_assert(offsetof(struct zoneent, zone_state) == 64, "zoneent.zone_state @64");
static_assert(offsetof(struct zoneent, zone_path) == 68, "zoneent.zone_path @68");
static_assert(offsetof(struct zoneent, zone_uuid) == 1092, "zoneent.zone_uuid @1092");
static_assert(offsetof(struct zoneent, zone_newname) == 1108, "zoneent.zone_newname @1108");

typedef struct zone_fsopt {
  struct zone_fsopt* zone_fsopt_next;       // @0
  char zone_fsopt_opt[ZC_MAX_MNTOPT_STR];  // @8
} zone_fsopt_t;
static_assert(sizeof(zone_fsopt_t) == 1032, "zone_fsopt_t is 1032 bytes");
static_assert(offsetof(zone_fsopt_t, zone_fsopt_opt) == 8, "zone_fsopt_opt @8");

struct zone_fstab {
  char zone_fs_special[ZC_MAXPATHLEN];  // @0
  char zone_fs_dir[ZC_MAXPATHLEN];      // @1024, mount point in the zone
  char zone_fs_type[ZC_FSTYPSZ];        // @2048, "lofs", "zfs", ...
  zone_fsopt_t* zone_fs_options;        // @2064, malloc'd list
  char zone_fs_raw[ZC_MAXPATHLEN];      // @2072, device to fsck
};
static_assert(sizeof(struct zone_fstab) == 3096, "struct zone_fstab is 3096 bytes");
static_assert(offsetof(struct zone_fstab, zone_fs_dir) == 1024, "zone_fs_dir @1024");
static_assert(offsetof(struct zone_fstab, zone_fs_type) == 2048, "zone_fs_type @2048");
static_assert(offsetof(struct zone_fstab, zone_fs_options) == 2064, "zone_fs_options @2064");
static_assert(offsetof(struct zone_fstab, zone_fs_raw) == 2072, "zone_fs_raw @2072");

struct zone_nwiftab {
  char zone_nwif_address[ZC_INET6_ADDRSTRLEN];          // @0, shared-IP only
  char zone_nwif_allowed_address[ZC_INET6_ADDRSTRLEN];  // @46, exclusive-IP only
  char zone_nwif_physical[ZC_LIFNAMSIZ];                // @92, the link (a VNIC)
  char zone_nwif_defrouter[ZC_INET6_ADDRSTRLEN];        // @124
};
static_assert(sizeof(struct zone_nwiftab) == 170, "struct zone_nwiftab is 170 bytes");
static_assert(alignof(struct zone_nwiftab) == 1, "struct zone_nwiftab is byte-aligned");
static_assert(offsetof(struct zone_nwiftab, zone_nwif_allowed_address) == 46, "allowed_address @46");
static_assert(offsetof(struct zone_nwiftab, zone_nwif_physical) == 92, "physical @92");
static_assert(offsetof(struct zone_nwiftab, zone_nwif_defrouter) == 124, "defrouter @124");

struct zone_devtab {
  char zone_dev_match[ZC_MAXPATHLEN];  // e.g. "/dev/vmm/*"
};
static_assert(sizeof(struct zone_devtab) == 1024, "struct zone_devtab is 1024 bytes");

struct zone_dstab {
  char zone_dataset_name[ZC_MAXNAMELEN];  // a delegated dataset
};
static_assert(sizeof(struct zone_dstab) == 256, "struct zone_dstab is 256 bytes");

}  // extern "C"

namespace sled {

// One pointer per libzonecfg function the addon calls, with the exact illumos prototype.
struct ZonecfgApi {
  // handles
  zone_dochandle_t (*zonecfg_init_handle)(void);
  void (*zonecfg_fini_handle)(zone_dochandle_t);
  int (*zonecfg_get_handle)(const char* zonename, zone_dochandle_t);
  int (*zonecfg_get_template_handle)(const char* templ, const char* zonename, zone_dochandle_t);
  int (*zonecfg_save)(zone_dochandle_t);
  int (*zonecfg_destroy)(const char* zonename, boolean_t force);
  char* (*zonecfg_strerror)(int);
  int (*zonecfg_validate_zonename)(const char*);
  // global properties
  int (*zonecfg_get_name)(zone_dochandle_t, char*, size_t);
  int (*zonecfg_get_zonepath)(zone_dochandle_t, char*, size_t);
  int (*zonecfg_set_zonepath)(zone_dochandle_t, char*);
  int (*zonecfg_get_brand)(zone_dochandle_t, char*, size_t);
  int (*zonecfg_set_brand)(zone_dochandle_t, char*);
  int (*zonecfg_get_autoboot)(zone_dochandle_t, boolean_t*);
  int (*zonecfg_set_autoboot)(zone_dochandle_t, boolean_t);
  int (*zonecfg_get_iptype)(zone_dochandle_t, zone_iptype_t*);
  int (*zonecfg_set_iptype)(zone_dochandle_t, zone_iptype_t);
  // resources
  int (*zonecfg_add_nwif)(zone_dochandle_t, struct zone_nwiftab*);
  int (*zonecfg_add_dev)(zone_dochandle_t, struct zone_devtab*);
  int (*zonecfg_add_ds)(zone_dochandle_t, struct zone_dstab*);
  int (*zonecfg_add_filesystem)(zone_dochandle_t, struct zone_fstab*);
  int (*zonecfg_add_fs_option)(struct zone_fstab*, char*);
  void (*zonecfg_free_fs_option_list)(zone_fsopt_t*);
  // iterators: set, get (Z_NO_ENTRY at the end), end
  int (*zonecfg_setnwifent)(zone_dochandle_t);
  int (*zonecfg_getnwifent)(zone_dochandle_t, struct zone_nwiftab*);
  int (*zonecfg_endnwifent)(zone_dochandle_t);
  int (*zonecfg_setdevent)(zone_dochandle_t);
  int (*zonecfg_getdevent)(zone_dochandle_t, struct zone_devtab*);
  int (*zonecfg_enddevent)(zone_dochandle_t);
  int (*zonecfg_setdsent)(zone_dochandle_t);
  int (*zonecfg_getdsent)(zone_dochandle_t, struct zone_dstab*);
  int (*zonecfg_enddsent)(zone_dochandle_t);
  int (*zonecfg_setfsent)(zone_dochandle_t);
  int (*zonecfg_getfsent)(zone_dochandle_t, struct zone_fstab*);
  int (*zonecfg_endfsent)(zone_dochandle_t);
  // the index and zone state (no handle)
  FILE* (*setzoneent)(void);
  struct zoneent* (*getzoneent_private)(FILE*);  // malloc'd; the caller free()s it
  void (*endzoneent)(FILE*);
  int (*zone_get_state)(char* zonename, zone_state_t*);
  char* (*zone_state_str)(zone_state_t);
  int (*zone_get_brand)(char* zonename, char* buf, size_t);
};

}  // namespace sled
