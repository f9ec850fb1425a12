// libzfs declarations: see ../abi.h and illumos-abi.md §4.
//
// What was confirmed, and where (read through the `search` tool's copies of illumos-gate):
//  - Prototypes: usr/src/lib/libzfs/common/libzfs.h in illumos/illumos-gate (2014 copy) and
//    tsoome/illumos-gate (2020, "Copyright 2020 Joyent"): every function in LibzfsApi below has
//    the same signature in both, and all are exported (SUNWprivate_1.1) by
//    usr/src/lib/libzfs/common/mapfile-vers. zfs_prop_set_list appeared in 2014 and is in both.
//  - ABI drift seen in the same headers (functions we therefore do NOT call): zpool_get_status
//    gained a third argument (zpool_errata_t *), zfs_iter_snapshots gained a boolean_t,
//    zfs_valid_proplist grew from 6 to 8 arguments, zpool_destroy/zpool_export gained a
//    log-string argument. OpenZFS (not illumos) renamed the iterators to *_v2 with flags.
//  - zfs_error_t: EZFS_NOMEM = 2000 and then consecutive. The 2012 header still had
//    EZFS_PROPCACHED (2006), removed by 2014, which moved every value from EZFS_BADTYPE on; since
//    then values were only appended before EZFS_UNKNOWN. The list below is the 2020 illumos one
//    (identical in a DTrace helper listing illumos' enum, which ends ... EZFS_NO_RESILVER_DEFER,
//    EZFS_IOC_NOTSUPPORTED, EZFS_UNKNOWN). OpenZFS's order differs after EZFS_SCRUB_PAUSED.
//    ZfsErrorName() maps numbers to names; an unknown number becomes "EZFS_<n>", never a lie.
//  - zfs_prop_t: usr/src/uts/common/sys/fs/zfs.h. Values 0..25 (TYPE..ACLINHERIT) are identical
//    in the 2014 illumos copy and the 2026 oxidecomputer/illumos-gate copy, but the rest moved
//    twice: ZFS_PROP_DNODESIZE was inserted before REFRATIO (about 2017), and
//    ZFS_PROP_ACLIMPLICIT after ACLINHERIT (upstream illumos-gate since 2023, so Helios and
//    every current illumos have it), so e.g. CANMOUNT is 28 on an image older than that and 29
//    on a current one. The addon therefore never uses a zfs_prop_t constant: it resolves every
//    property name at run time with zfs_name_to_prop() (exported, SUNWprivate_1.1), which is
//    compiled from the same table as the library. The constants below are for reference and
//    for scripts/selfcheck-illumos.ts only.
//  - zpool_prop_t: NAME 0, SIZE 1, CAPACITY 2, ALTROOT 3, HEALTH 4, ..., FREE 16, ALLOCATED 17,
//    identical in the 2014, 2020 and 2026 copies (the enum only ever grew at its end; newer
//    headers add ZPOOL_PROP_INVAL = -1 in the enum, older ones #define ZPROP_INVAL -1). The
//    addon uses these four constants directly.
//  - zfs_type_t bits, ZFS_MAX_DATASET_NAME_LEN 256, ZAP_MAXNAMELEN 256, ZFS_MAXPROPLEN =
//    MAXPATHLEN (1024), zprop_source_t bits, "value"/"source" keys of zfs_get_user_props()
//    entries: same headers.
//  - Error model (usr/src/lib/libzfs/common/libzfs_util.c): calls return -1 (or NULL) after
//    zfs_error_aux() + zfs_verror(); libzfs_errno() is the EZFS_ number,
//    libzfs_error_description() the aux text if one was set ("dataset already exists", "parent
//    does not exist", ...), else a generic text per code; libzfs_error_action() the "cannot
//    create 'x'" part. Errors live in the libzfs_handle_t, which is not thread-safe: one handle
//    per thread (zfs.cc keeps exactly one, on its own thread).
#pragma once

#include "../abi.h"

extern "C" {

typedef struct libzfs_handle libzfs_handle_t;
typedef struct zfs_handle zfs_handle_t;
typedef struct zpool_handle zpool_handle_t;

typedef enum {
  ZFS_TYPE_FILESYSTEM = (1 << 0),
  ZFS_TYPE_SNAPSHOT = (1 << 1),
  ZFS_TYPE_VOLUME = (1 << 2),
  ZFS_TYPE_POOL = (1 << 3),
  ZFS_TYPE_BOOKMARK = (1 << 4)
} zfs_type_t;
#define ZFS_TYPE_DATASET (ZFS_TYPE_FILESYSTEM | ZFS_TYPE_VOLUME | ZFS_TYPE_SNAPSHOT)
static_assert(sizeof(zfs_type_t) == 4, "zfs_type_t must be int-sized");

// zfs_prop_t is an int-sized enum; only the stable prefix is named (see above). Always resolve
// names with zfs_name_to_prop(); ZPROP_INVAL means "not a native property".
typedef int zfs_prop_t;
#define ZPROP_CONT (-2)
#define ZPROP_INVAL (-1)
#define ZFS_PROP_TYPE 0
#define ZFS_PROP_CREATION 1
#define ZFS_PROP_USED 2
#define ZFS_PROP_AVAILABLE 3
#define ZFS_PROP_REFERENCED 4
#define ZFS_PROP_COMPRESSRATIO 5
#define ZFS_PROP_MOUNTED 6
#define ZFS_PROP_ORIGIN 7
#define ZFS_PROP_QUOTA 8
#define ZFS_PROP_RESERVATION 9
#define ZFS_PROP_VOLSIZE 10
#define ZFS_PROP_VOLBLOCKSIZE 11
#define ZFS_PROP_RECORDSIZE 12
#define ZFS_PROP_MOUNTPOINT 13
#define ZFS_PROP_SHARENFS 14
#define ZFS_PROP_CHECKSUM 15
#define ZFS_PROP_COMPRESSION 16
#define ZFS_PROP_ATIME 17
#define ZFS_PROP_DEVICES 18
#define ZFS_PROP_EXEC 19
#define ZFS_PROP_SETUID 20
#define ZFS_PROP_READONLY 21
#define ZFS_PROP_ZONED 22
#define ZFS_PROP_SNAPDIR 23
#define ZFS_PROP_ACLMODE 24
#define ZFS_PROP_ACLINHERIT 25
// 26 on: ZFS_PROP_ACLIMPLICIT (illumos-gate since 2023), CREATETXG, NAME, CANMOUNT, ... (drifts;
// see above)

typedef enum {
  ZPOOL_PROP_INVAL = -1,
  ZPOOL_PROP_NAME = 0,
  ZPOOL_PROP_SIZE = 1,
  ZPOOL_PROP_CAPACITY = 2,
  ZPOOL_PROP_ALTROOT = 3,
  ZPOOL_PROP_HEALTH = 4,
  ZPOOL_PROP_GUID = 5,
  ZPOOL_PROP_FREE = 16,
  ZPOOL_PROP_ALLOCATED = 17
} zpool_prop_t;
static_assert(sizeof(zpool_prop_t) == 4, "zpool_prop_t must be int-sized");

typedef enum {
  ZPROP_SRC_NONE = 0x1,
  ZPROP_SRC_DEFAULT = 0x2,
  ZPROP_SRC_TEMPORARY = 0x4,
  ZPROP_SRC_LOCAL = 0x8,
  ZPROP_SRC_INHERITED = 0x10,
  ZPROP_SRC_RECEIVED = 0x20
} zprop_source_t;
static_assert(sizeof(zprop_source_t) == 4, "zprop_source_t must be int-sized");

#define ZPROP_VALUE "value"
#define ZPROP_SOURCE "source"

#define ZFS_MAX_DATASET_NAME_LEN 256  // including the NUL: names are at most 255 bytes
#define ZAP_MAXNAMELEN 256
#define ZAP_MAXVALUELEN (1024 * 8)
#define ZFS_MAXPROPLEN 1024  // MAXPATHLEN
#define ZPOOL_MAXPROPLEN 1024
#define MS_FORCE 0x400
#define ZFS_MOUNTPOINT_NONE "none"
#define ZFS_MOUNTPOINT_LEGACY "legacy"

// zfs_error_t (illumos, 2014 onwards; see the note above on EZFS_PROPCACHED).
typedef enum zfs_error {
  EZFS_SUCCESS = 0,
  EZFS_NOMEM = 2000,
  EZFS_BADPROP,
  EZFS_PROPREADONLY,
  EZFS_PROPTYPE,
  EZFS_PROPNONINHERIT,
  EZFS_PROPSPACE,
  EZFS_BADTYPE,
  EZFS_BUSY,
  EZFS_EXISTS,
  EZFS_NOENT,
  EZFS_BADSTREAM,
  EZFS_DSREADONLY,
  EZFS_VOLTOOBIG,
  EZFS_INVALIDNAME,
  EZFS_BADRESTORE,
  EZFS_BADBACKUP,
  EZFS_BADTARGET,
  EZFS_NODEVICE,
  EZFS_BADDEV,
  EZFS_NOREPLICAS,
  EZFS_RESILVERING,
  EZFS_BADVERSION,
  EZFS_POOLUNAVAIL,
  EZFS_DEVOVERFLOW,
  EZFS_BADPATH,
  EZFS_CROSSTARGET,
  EZFS_ZONED,
  EZFS_MOUNTFAILED,
  EZFS_UMOUNTFAILED,
  EZFS_UNSHARENFSFAILED,
  EZFS_SHARENFSFAILED,
  EZFS_PERM,
  EZFS_NOSPC,
  EZFS_FAULT,
  EZFS_IO,
  EZFS_INTR,
  EZFS_ISSPARE,
  EZFS_INVALCONFIG,
  EZFS_RECURSIVE,
  EZFS_NOHISTORY,
  EZFS_POOLPROPS,
  EZFS_POOL_NOTSUP,
  EZFS_POOL_INVALARG,
  EZFS_NAMETOOLONG,
  EZFS_OPENFAILED,
  EZFS_NOCAP,
  EZFS_LABELFAILED,
  EZFS_BADWHO,
  EZFS_BADPERM,
  EZFS_BADPERMSET,
  EZFS_NODELEGATION,
  EZFS_UNSHARESMBFAILED,
  EZFS_SHARESMBFAILED,
  EZFS_BADCACHE,
  EZFS_ISL2CACHE,
  EZFS_VDEVNOTSUP,
  EZFS_NOTSUP,
  EZFS_ACTIVE_SPARE,
  EZFS_UNPLAYED_LOGS,
  EZFS_REFTAG_RELE,
  EZFS_REFTAG_HOLD,
  EZFS_TAGTOOLONG,
  EZFS_PIPEFAILED,
  EZFS_THREADCREATEFAILED,
  EZFS_POSTSPLIT_ONLINE,
  EZFS_SCRUBBING,
  EZFS_NO_SCRUB,
  EZFS_DIFF,
  EZFS_DIFFDATA,
  EZFS_POOLREADONLY,
  EZFS_SCRUB_PAUSED,
  EZFS_ACTIVE_POOL,
  EZFS_CRYPTOFAILED,
  EZFS_NO_PENDING,
  EZFS_CHECKPOINT_EXISTS,
  EZFS_DISCARDING_CHECKPOINT,
  EZFS_NO_CHECKPOINT,
  EZFS_DEVRM_IN_PROGRESS,
  EZFS_VDEV_TOO_BIG,
  EZFS_TOOMANY,
  EZFS_INITIALIZING,
  EZFS_NO_INITIALIZE,
  EZFS_WRONG_PARENT,
  EZFS_TRIMMING,
  EZFS_NO_TRIM,
  EZFS_TRIM_NOTSUP,
  EZFS_NO_RESILVER_DEFER,
  EZFS_IOC_NOTSUPPORTED,
  EZFS_UNKNOWN
} zfs_error_t;
static_assert(EZFS_EXISTS == 2008 && EZFS_NOENT == 2009 && EZFS_INVALIDNAME == 2013, "zfs_error_t values");
static_assert(EZFS_ZONED == 2026 && EZFS_MOUNTFAILED == 2027 && EZFS_UNKNOWN == 2088, "zfs_error_t values");

typedef int (*zfs_iter_f)(zfs_handle_t*, void*);
typedef int (*zpool_iter_f)(zpool_handle_t*, void*);

}  // extern "C"

namespace sled {

// One pointer per libzfs function the addon calls, with the exact illumos prototype.
struct LibzfsApi {
  libzfs_handle_t* (*libzfs_init)(void);
  void (*libzfs_fini)(libzfs_handle_t*);
  int (*libzfs_errno)(libzfs_handle_t*);
  const char* (*libzfs_error_description)(libzfs_handle_t*);
  const char* (*libzfs_error_action)(libzfs_handle_t*);
  void (*libzfs_print_on_error)(libzfs_handle_t*, boolean_t);

  zfs_handle_t* (*zfs_open)(libzfs_handle_t*, const char*, int types);
  void (*zfs_close)(zfs_handle_t*);
  const char* (*zfs_get_name)(const zfs_handle_t*);
  zfs_type_t (*zfs_get_type)(const zfs_handle_t*);
  int (*zfs_create)(libzfs_handle_t*, const char*, zfs_type_t, nvlist_t*);
  int (*zfs_destroy)(zfs_handle_t*, boolean_t defer);
  int (*zfs_mount)(zfs_handle_t*, const char* options, int flags);
  int (*zfs_unmount)(zfs_handle_t*, const char* mountpoint, int flags);
  boolean_t (*zfs_is_mounted)(zfs_handle_t*, char** where);  // *where is malloc'd
  int (*zfs_prop_get)(zfs_handle_t*, zfs_prop_t, char* buf, size_t len, zprop_source_t* src,
                      char* statbuf, size_t statlen, boolean_t literal);
  int (*zfs_prop_set)(zfs_handle_t*, const char* prop, const char* value);
  int (*zfs_prop_set_list)(zfs_handle_t*, nvlist_t* props);
  nvlist_t* (*zfs_get_user_props)(zfs_handle_t*);  // owned by the handle: never free it
  zfs_prop_t (*zfs_name_to_prop)(const char*);
  boolean_t (*zfs_prop_user)(const char*);
  int (*zfs_iter_filesystems)(zfs_handle_t*, zfs_iter_f, void*);

  int (*zpool_iter)(libzfs_handle_t*, zpool_iter_f, void*);
  void (*zpool_close)(zpool_handle_t*);
  const char* (*zpool_get_name)(zpool_handle_t*);
  int (*zpool_get_prop)(zpool_handle_t*, zpool_prop_t, char* buf, size_t len, zprop_source_t* src,
                        boolean_t literal);
  uint64_t (*zpool_get_prop_int)(zpool_handle_t*, zpool_prop_t, zprop_source_t* src);
};

// The constant's name for a libzfs_errno() value ("EZFS_EXISTS"), or "EZFS_<n>" if unknown.
const char* ZfsErrorName(int code);

}  // namespace sled
