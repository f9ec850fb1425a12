/*
 * Fake libzfs.so.1 (see native/abi/zfs.h): the
 * same symbols and prototypes as illumos' libzfs for what the addon uses (and a few neighbours),
 * linked against the fake libnvpair.so.1, keeping its state under $FAKE_ILLUMOS_STATE/zfs/.
 *
 * State (all read-modify-write under fake_lock(), so concurrent processes agree):
 *   zfs/pools                    one line per pool: "<name>\t<size>\t<health>\t<guid>\n",
 *                                seeded on first use from $FAKE_ILLUMOS_POOLS
 *                                ("name:size[:health],..."; default below), each pool getting
 *                                its root dataset.
 *   zfs/ds/<escaped name>        one flat file per dataset, all in one directory (the name with
 *                                '/' as '!' and other bytes outside [A-Za-z0-9-_.: ] as %XX, so
 *                                "rpool/a/b" is "rpool!a!b"; children are found by name, from
 *                                the cache or one readdir; a create is a temp file "@tmp.<pid>"
 *                                renamed to a new name, a destroy one unlink):
 *                                "key=value\n" lines, value %-escaped ('%', '\n', '\r'). Keys are
 *                                locally set properties (canonical form: numbers in bytes,
 *                                index values spelled as zfs prints them) and user properties
 *                                ("module:name"), plus the fake's own "@creation", "@guid",
 *                                "@mounted" ("yes"/"no") and "@mountedat".
 * Each process keeps pools and datasets in memory, and reloads them only when the token in slot
 * FAKE_GEN_ZFS of $FAKE_ILLUMOS_STATE/.lock (fake_gen_bump, replaced on every change) is not the one it
 * loaded at.
 * Space: every filesystem "uses" 24 KiB; a pool's allocated = 24 KiB x its datasets; a
 * dataset's used = 24 KiB x (itself + descendants); available = pool free, capped by a quota.
 * Nothing is really mounted: mount state is recorded, and mountpoints are not created.
 *
 * Reproduced semantics (from illumos-gate usr/src/lib/libzfs/common/libzfs_dataset.c,
 * libzfs_mount.c, libzfs_util.c, usr/src/common/zfs/zfs_namecheck.c, zfs_prop.c):
 *   - errors: functions return -1/NULL after zfs_error_aux() + zfs_error(); libzfs_errno() is
 *     the EZFS_ number, libzfs_error_description() the aux text or the generic text, the
 *     action "cannot create 'x'" etc. Same texts as the real library.
 *   - names: entity_namecheck + zfs_validate_name ("snapshot delimiter '@' is not expected
 *     here", "invalid character '%c' in name", "name is too long" at >= 256, "leading slash in
 *     name", "empty component in name", "trailing slash in name", "self reference, '.' is found
 *     in name", "parent reference, '..' is found in name"; '%' only refused when creating).
 *   - zfs_create: invalid name -> EZFS_INVALIDNAME; a pool name alone -> "missing dataset name";
 *     missing pool -> EZFS_NOENT "no such pool 'p'"; missing parent -> EZFS_NOENT "parent does
 *     not exist"; existing -> EZFS_EXISTS "dataset already exists"; then zfs_valid_proplist:
 *     unknown -> EZFS_BADPROP "invalid property 'x'", readonly -> EZFS_PROPREADONLY "'x' is
 *     readonly", bad index value -> "'x' must be one of 'on | off'", bad number ->
 *     zfs_nicestrtonum's texts, mountpoint -> "'mountpoint' must be an absolute path, 'none', or
 *     'legacy'", user props need lowercase [a-z0-9-_.:] with a ':' (zfs_prop_user), name < 256,
 *     value < 1024 ("property value '...' is too long"); mountpoint/sharenfs on a zoned
 *     dataset from the global zone -> EZFS_ZONED "'mountpoint' cannot be set on dataset in a
 *     non-global zone" (zoned = the parent's when creating, the dataset's when setting).
 *   - zfs_mount: like zfs_is_mountable, returns 0 WITHOUT mounting when mountpoint is
 *     none/legacy, canmount=off, or zoned=on (we are always the global zone); an already
 *     mounted dataset -> EZFS_MOUNTFAILED "mountpoint or dataset is busy".
 *   - zfs_destroy: not recursive; children -> kernel EEXIST -> EZFS_EXISTS "dataset already
 *     exists"; mounted -> EBUSY -> EZFS_BUSY "dataset is busy"; already gone (ENOENT) -> 0;
 *     defer on a filesystem -> returns EINVAL (a positive value, as the real one does).
 *   - quota below used -> EZFS_PROPSPACE "size is less than current used or reserved space";
 *     reservation above available -> EZFS_PROPSPACE "size is greater than available space".
 *   - zfs_prop_t values are Helios' (oxidecomputer/illumos-gate, with ZFS_PROP_ACLIMPLICIT at
 *     26), deliberately not upstream's: the addon must resolve names with zfs_name_to_prop.
 * Not modelled: snapshots, volumes, bookmarks, clones, userquota@/written@ properties,
 * inheritance via zfs_prop_inherit, non-global zones.
 */
#define _GNU_SOURCE
#include "common.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef enum { B_FALSE = 0, B_TRUE = 1 } boolean_t;

/* libnvpair (the fake one, same prototypes as illumos sys/nvpair.h). */
typedef struct nvlist nvlist_t;
typedef struct nvpair nvpair_t;
typedef enum { DATA_TYPE_STRING_ = 9, DATA_TYPE_UINT64_ = 8 } fake_data_type_t;
int nvlist_alloc(nvlist_t **, unsigned int, int);
void nvlist_free(nvlist_t *);
int nvlist_add_string(nvlist_t *, const char *, const char *);
int nvlist_add_nvlist(nvlist_t *, const char *, nvlist_t *);
nvpair_t *nvlist_next_nvpair(nvlist_t *, nvpair_t *);
char *nvpair_name(nvpair_t *);
int nvpair_type(nvpair_t *); /* data_type_t: an int-sized enum */
int nvpair_value_string(nvpair_t *, char **);
int nvpair_value_uint64(nvpair_t *, uint64_t *);
#define NV_UNIQUE_NAME 0x1

typedef enum {
  ZFS_TYPE_FILESYSTEM = (1 << 0),
  ZFS_TYPE_SNAPSHOT = (1 << 1),
  ZFS_TYPE_VOLUME = (1 << 2),
  ZFS_TYPE_POOL = (1 << 3),
  ZFS_TYPE_BOOKMARK = (1 << 4)
} zfs_type_t;

typedef enum {
  ZPROP_SRC_NONE = 0x1,
  ZPROP_SRC_DEFAULT = 0x2,
  ZPROP_SRC_TEMPORARY = 0x4,
  ZPROP_SRC_LOCAL = 0x8,
  ZPROP_SRC_INHERITED = 0x10,
  ZPROP_SRC_RECEIVED = 0x20
} zprop_source_t;

typedef int zfs_prop_t;
#define ZPROP_INVAL (-1)

typedef enum {
  ZPOOL_PROP_INVAL = -1,
  ZPOOL_PROP_NAME,
  ZPOOL_PROP_SIZE,
  ZPOOL_PROP_CAPACITY,
  ZPOOL_PROP_ALTROOT,
  ZPOOL_PROP_HEALTH,
  ZPOOL_PROP_GUID,
  ZPOOL_PROP_VERSION,
  ZPOOL_PROP_BOOTFS,
  ZPOOL_PROP_DELEGATION,
  ZPOOL_PROP_AUTOREPLACE,
  ZPOOL_PROP_CACHEFILE,
  ZPOOL_PROP_FAILUREMODE,
  ZPOOL_PROP_LISTSNAPS,
  ZPOOL_PROP_AUTOEXPAND,
  ZPOOL_PROP_DEDUPDITTO,
  ZPOOL_PROP_DEDUPRATIO,
  ZPOOL_PROP_FREE,
  ZPOOL_PROP_ALLOCATED
} zpool_prop_t;

/* zfs_error_t (illumos). Only the ones the fake raises are used, all are listed for the texts. */
enum {
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
  EZFS_UNKNOWN = 2088
};

#define ZFS_MAX_DATASET_NAME_LEN 256
#define ZAP_MAXNAMELEN 256
#define ZFS_MAXPROPLEN 1024
#define FAKE_DS_BYTES 24576ULL
#define DEFAULT_POOLS "rpool:107374182400,oxp_d462a7f7-b628-40fe-80ff-4e4189e2d62b:1099511627776"

struct libzfs_handle {
  int error;
  char action[1024];
  char desc[1024];
  int desc_active;
  boolean_t printerr;
};
typedef struct libzfs_handle libzfs_handle_t;

struct zfs_handle {
  libzfs_handle_t *hdl;
  char name[ZFS_MAX_DATASET_NAME_LEN];
  zfs_type_t type;
  nvlist_t *user_props;
};
typedef struct zfs_handle zfs_handle_t;

struct zpool_handle {
  libzfs_handle_t *hdl;
  char name[ZFS_MAX_DATASET_NAME_LEN];
};
typedef struct zpool_handle zpool_handle_t;

typedef int (*zfs_iter_f)(zfs_handle_t *, void *);
typedef int (*zpool_iter_f)(zpool_handle_t *, void *);

/* ------------------------------------------------------------------------------------------ */
/* Errors, as libzfs_util.c                                                                    */

static const char *generic_description(int error) {
  switch (error) {
    case EZFS_NOMEM: return "out of memory";
    case EZFS_BADPROP: return "invalid property value";
    case EZFS_PROPREADONLY: return "read only property";
    case EZFS_PROPTYPE: return "property doesn't apply to datasets of this type";
    case EZFS_PROPNONINHERIT: return "property cannot be inherited";
    case EZFS_PROPSPACE: return "invalid quota or reservation";
    case EZFS_BADTYPE: return "operation not applicable to datasets of this type";
    case EZFS_BUSY: return "pool or dataset is busy";
    case EZFS_EXISTS: return "pool or dataset exists";
    case EZFS_NOENT: return "no such pool or dataset";
    case EZFS_INVALIDNAME: return "invalid name";
    case EZFS_BADVERSION: return "unsupported version";
    case EZFS_POOLUNAVAIL: return "pool is unavailable";
    case EZFS_BADPATH: return "must be an absolute path";
    case EZFS_ZONED: return "dataset in use by local zone";
    case EZFS_MOUNTFAILED: return "mount failed";
    case EZFS_UMOUNTFAILED: return "umount failed";
    case EZFS_PERM: return "permission denied";
    case EZFS_NOSPC: return "out of space";
    case EZFS_IO: return "I/O error";
    case EZFS_INTR: return "signal received";
    case EZFS_UNKNOWN: return "unknown error";
    default: return "no error";
  }
}

int libzfs_errno(libzfs_handle_t *hdl) { return hdl->error; }

const char *libzfs_error_action(libzfs_handle_t *hdl) { return hdl->action; }

const char *libzfs_error_description(libzfs_handle_t *hdl) {
  if (hdl->desc[0] != '\0') return hdl->desc;
  return generic_description(hdl->error);
}

void libzfs_print_on_error(libzfs_handle_t *hdl, boolean_t printerr) { hdl->printerr = printerr; }

__attribute__((format(printf, 2, 3))) static void zfs_error_aux(libzfs_handle_t *hdl, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(hdl->desc, sizeof(hdl->desc), fmt, ap);
  va_end(ap);
  hdl->desc_active = 1;
}

__attribute__((format(printf, 3, 4))) static int zfs_error_fmt(libzfs_handle_t *hdl, int error, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(hdl->action, sizeof(hdl->action), fmt, ap);
  va_end(ap);
  hdl->error = error;
  if (hdl->desc_active) hdl->desc_active = 0;
  else hdl->desc[0] = '\0';
  if (hdl->printerr) (void)fprintf(stderr, "%s: %s\n", hdl->action, libzfs_error_description(hdl));
  return -1;
}

static int zfs_error(libzfs_handle_t *hdl, int error, const char *msg) { return zfs_error_fmt(hdl, error, "%s", msg); }

/* zfs_standard_error, for the errno values the fake produces. */
static int zfs_standard_error(libzfs_handle_t *hdl, int error, const char *msg) {
  switch (error) {
    case EPERM:
    case EACCES: return zfs_error(hdl, EZFS_PERM, msg);
    case EIO: return zfs_error(hdl, EZFS_IO, msg);
    case ENOENT: zfs_error_aux(hdl, "dataset does not exist"); return zfs_error(hdl, EZFS_NOENT, msg);
    case ENOSPC: return zfs_error(hdl, EZFS_NOSPC, msg);
    case EEXIST: zfs_error_aux(hdl, "dataset already exists"); return zfs_error(hdl, EZFS_EXISTS, msg);
    case EBUSY: zfs_error_aux(hdl, "dataset is busy"); return zfs_error(hdl, EZFS_BUSY, msg);
    default: zfs_error_aux(hdl, "%s", strerror(error)); return zfs_error(hdl, EZFS_UNKNOWN, msg);
  }
}

/* A failure of the fake's own storage (no state directory, a full disk): an I/O error. */
static int state_error(libzfs_handle_t *hdl, const char *msg) {
  if (fake_state_dir() == NULL) zfs_error_aux(hdl, "fake libzfs: FAKE_ILLUMOS_STATE is not set");
  else zfs_error_aux(hdl, "fake libzfs state: %s", strerror(errno));
  return zfs_error(hdl, EZFS_IO, msg);
}

/* ------------------------------------------------------------------------------------------ */
/* Names, as zfs_namecheck.c and zfs_validate_name                                             */

static int valid_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == ':' || c == ' ';
}

/* Returns 1 if valid; else 0 with the aux message set (if hdl). Filesystems only. */
static int validate_name(libzfs_handle_t *hdl, const char *path, int modifying) {
  if (strchr(path, '@') != NULL) {
    if (hdl) zfs_error_aux(hdl, "snapshot delimiter '@' is not expected here");
    return 0;
  }
  if (strchr(path, '#') != NULL) {
    if (hdl) zfs_error_aux(hdl, "bookmark delimiter '#' is not expected here");
    return 0;
  }
  if (modifying && strchr(path, '%') != NULL) {
    if (hdl) zfs_error_aux(hdl, "invalid character %c in name", '%');
    return 0;
  }
  if (strlen(path) >= ZFS_MAX_DATASET_NAME_LEN) {
    if (hdl) zfs_error_aux(hdl, "name is too long");
    return 0;
  }
  if (path[0] == '/') {
    if (hdl) zfs_error_aux(hdl, "leading slash in name");
    return 0;
  }
  if (path[0] == '\0') {
    if (hdl) zfs_error_aux(hdl, "empty component in name");
    return 0;
  }
  const char *start = path;
  for (;;) {
    const char *end = start;
    while (*end != '/' && *end != '\0') end++;
    if (*end == '\0' && end[-1] == '/') {
      if (hdl) zfs_error_aux(hdl, "trailing slash in name");
      return 0;
    }
    for (const char *loc = start; loc != end; loc++) {
      if (!valid_char(*loc) && *loc != '%') {
        if (hdl) zfs_error_aux(hdl, "invalid character '%c' in name", *loc);
        return 0;
      }
    }
    if (end - start == 1 && start[0] == '.') {
      if (hdl) zfs_error_aux(hdl, "self reference, '.' is found in name");
      return 0;
    }
    if (end - start == 2 && start[0] == '.' && start[1] == '.') {
      if (hdl) zfs_error_aux(hdl, "parent reference, '..' is found in name");
      return 0;
    }
    if (start == end) {
      if (hdl) zfs_error_aux(hdl, "empty component in name");
      return 0;
    }
    if (*end == '\0') return 1;
    start = end + 1;
  }
}

int zfs_name_valid(const char *name, zfs_type_t type) {
  if (type != ZFS_TYPE_FILESYSTEM) return 0;
  return validate_name(NULL, name, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Properties, as zfs_prop.c (Helios numbering)                                                */

typedef enum { PT_STRING, PT_NUMBER, PT_INDEX } ptype_t;

typedef struct {
  const char *name;
  int id;
  ptype_t type;
  int readonly;
  int inherit;
  const char *def;    /* literal default (NULL: computed) */
  const char *values; /* index values, as zfs_prop_values() prints them */
  const char *alias;  /* the column name, which zfs_name_to_prop also accepts */
} prop_desc_t;

enum {
  P_TYPE = 0, P_CREATION = 1, P_USED = 2, P_AVAILABLE = 3, P_REFERENCED = 4, P_COMPRESSRATIO = 5,
  P_MOUNTED = 6, P_ORIGIN = 7, P_QUOTA = 8, P_RESERVATION = 9, P_RECORDSIZE = 12, P_MOUNTPOINT = 13,
  P_SHARENFS = 14, P_ZONED = 22, P_NAME = 28, P_CANMOUNT = 29, P_REFQUOTA = 41, P_REFRESERVATION = 42,
  P_GUID = 43
};

static const prop_desc_t props_table[] = {
    {"type", P_TYPE, PT_STRING, 1, 0, NULL, NULL, NULL},
    {"creation", P_CREATION, PT_NUMBER, 1, 0, NULL, NULL, NULL},
    {"used", P_USED, PT_NUMBER, 1, 0, NULL, NULL, NULL},
    {"available", P_AVAILABLE, PT_NUMBER, 1, 0, NULL, NULL, "avail"},
    {"referenced", P_REFERENCED, PT_NUMBER, 1, 0, NULL, NULL, "refer"},
    {"compressratio", P_COMPRESSRATIO, PT_NUMBER, 1, 0, NULL, NULL, "ratio"},
    {"mounted", P_MOUNTED, PT_INDEX, 1, 0, NULL, "yes | no", NULL},
    {"origin", P_ORIGIN, PT_STRING, 1, 0, NULL, NULL, NULL},
    {"quota", P_QUOTA, PT_NUMBER, 0, 0, "0", NULL, NULL},
    {"reservation", P_RESERVATION, PT_NUMBER, 0, 0, "0", NULL, "reserv"},
    {"recordsize", P_RECORDSIZE, PT_NUMBER, 0, 1, "131072", NULL, "recsize"},
    {"mountpoint", P_MOUNTPOINT, PT_STRING, 0, 1, NULL, NULL, NULL},
    {"sharenfs", P_SHARENFS, PT_STRING, 0, 1, "off", NULL, NULL},
    {"checksum", 15, PT_INDEX, 0, 1, "on", "on | off | fletcher2 | fletcher4 | sha256 | noparity | sha512 | skein | edonr", NULL},
    {"compression", 16, PT_INDEX, 0, 1, "off", "on | off | lzjb | gzip | gzip-[1-9] | zle | lz4", "compress"},
    {"atime", 17, PT_INDEX, 0, 1, "on", "on | off", NULL},
    {"devices", 18, PT_INDEX, 0, 1, "on", "on | off", NULL},
    {"exec", 19, PT_INDEX, 0, 1, "on", "on | off", NULL},
    {"setuid", 20, PT_INDEX, 0, 1, "on", "on | off", NULL},
    {"readonly", 21, PT_INDEX, 0, 1, "off", "on | off", "rdonly"},
    {"zoned", P_ZONED, PT_INDEX, 0, 1, "off", "on | off", NULL},
    {"snapdir", 23, PT_INDEX, 0, 1, "hidden", "hidden | visible", NULL},
    {"aclmode", 24, PT_INDEX, 0, 1, "discard", "discard | groupmask | passthrough | restricted", NULL},
    {"aclinherit", 25, PT_INDEX, 0, 1, "restricted",
     "discard | noallow | restricted | passthrough | passthrough-x", NULL},
    {"name", P_NAME, PT_STRING, 1, 0, NULL, NULL, NULL},
    {"canmount", P_CANMOUNT, PT_INDEX, 0, 0, "on", "on | off | noauto", NULL},
    {"xattr", 31, PT_INDEX, 0, 1, "on", "on | off", NULL},
    {"copies", 33, PT_INDEX, 0, 1, "1", "1 | 2 | 3", NULL},
    {"refquota", P_REFQUOTA, PT_NUMBER, 0, 0, "0", NULL, NULL},
    {"refreservation", P_REFRESERVATION, PT_NUMBER, 0, 0, "0", NULL, "refreserv"},
    {"guid", P_GUID, PT_NUMBER, 1, 0, NULL, NULL, NULL},
    {"logbias", 54, PT_INDEX, 0, 1, "latency", "latency | throughput", NULL},
    {"sync", 59, PT_INDEX, 0, 1, "standard", "standard | always | disabled", NULL},
};
#define NPROPS (sizeof(props_table) / sizeof(props_table[0]))

static const prop_desc_t *prop_by_id(int id) {
  for (size_t i = 0; i < NPROPS; i++) {
    if (props_table[i].id == id) return &props_table[i];
  }
  return NULL;
}

static const prop_desc_t *prop_by_name(const char *name) {
  for (size_t i = 0; i < NPROPS; i++) {
    if (strcmp(props_table[i].name, name) == 0) return &props_table[i];
    if (props_table[i].alias != NULL && strcmp(props_table[i].alias, name) == 0) return &props_table[i];
  }
  return NULL;
}

zfs_prop_t zfs_name_to_prop(const char *propname) {
  if (propname == NULL) return ZPROP_INVAL;
  const prop_desc_t *p = prop_by_name(propname);
  return p != NULL ? p->id : ZPROP_INVAL;
}

const char *zfs_prop_to_name(zfs_prop_t prop) {
  const prop_desc_t *p = prop_by_id(prop);
  return p != NULL ? p->name : NULL;
}

/* As zfs_prop.c: lowercase letters, digits, '-', '_', '.', ':' and at least one ':'. */
boolean_t zfs_prop_user(const char *name) {
  boolean_t foundsep = B_FALSE;
  for (size_t i = 0; name[i] != '\0'; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == ':'))
      return B_FALSE;
    if (c == ':') foundsep = B_TRUE;
  }
  return foundsep;
}

/* The index value `value` among "a | b | c" (with "gzip-[1-9]" standing for gzip-1..gzip-9). */
static int index_valid(const char *values, const char *value) {
  if (value[0] == '\0') return 0;
  const char *p = values;
  size_t vlen = strlen(value);
  while (*p != '\0') {
    const char *end = strstr(p, " | ");
    size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
    if (len == vlen && strncmp(p, value, len) == 0) return 1;
    if (len == 10 && strncmp(p, "gzip-[1-9]", 10) == 0 && vlen == 6 && strncmp(value, "gzip-", 5) == 0 &&
        value[5] >= '1' && value[5] <= '9')
      return 1;
    if (end == NULL) break;
    p = end + 3;
  }
  return 0;
}

/* zfs_nicestrtonum (libzfs_util.c), with its error texts. */
static int str2shift(libzfs_handle_t *hdl, const char *buf) {
  const char *ends = "BKMGTPEZ";
  size_t i;
  if (buf[0] == '\0') return 0;
  for (i = 0; i < strlen(ends); i++) {
    if (toupper((unsigned char)buf[0]) == ends[i]) break;
  }
  if (i == strlen(ends)) {
    if (hdl) zfs_error_aux(hdl, "invalid numeric suffix '%s'", buf);
    return -1;
  }
  if (buf[1] == '\0' || (toupper((unsigned char)buf[1]) == 'B' && buf[2] == '\0' && toupper((unsigned char)buf[0]) != 'B'))
    return (int)(10 * i);
  if (hdl) zfs_error_aux(hdl, "invalid numeric suffix '%s'", buf);
  return -1;
}

int zfs_nicestrtonum(libzfs_handle_t *hdl, const char *value, uint64_t *num) {
  char *end;
  int shift;
  *num = 0;
  if ((value[0] < '0' || value[0] > '9') && value[0] != '.') {
    if (hdl) zfs_error_aux(hdl, "bad numeric value '%s'", value);
    return -1;
  }
  errno = 0;
  *num = strtoull(value, &end, 10);
  if (errno == ERANGE) {
    if (hdl) zfs_error_aux(hdl, "numeric value is too large");
    return -1;
  }
  if (*end == '.') {
    double fval = strtod(value, &end);
    if ((shift = str2shift(hdl, end)) == -1) return -1;
    for (int i = 0; i < shift; i++) fval *= 2.0;
    if (fval >= 18446744073709551616.0) {
      if (hdl) zfs_error_aux(hdl, "numeric value is too large");
      return -1;
    }
    *num = (uint64_t)fval;
  } else {
    if ((shift = str2shift(hdl, end)) == -1) return -1;
    if (shift >= 64 || (*num << shift) >> shift != *num) {
      if (hdl) zfs_error_aux(hdl, "numeric value is too large");
      return -1;
    }
    *num <<= shift;
  }
  return 0;
}

static void zfs_nicenum(uint64_t num, char *buf, size_t buflen) {
  uint64_t n = num;
  int index = 0;
  while (n >= 1024 && index < 6) {
    n /= 1024;
    index++;
  }
  char u = " KMGTPE"[index];
  if (index == 0) {
    (void)snprintf(buf, buflen, "%llu", (unsigned long long)n);
  } else if ((num & ((1ULL << 10 * index) - 1)) == 0) {
    (void)snprintf(buf, buflen, "%llu%c", (unsigned long long)n, u);
  } else {
    for (int i = 2; i >= 0; i--) {
      if (snprintf(buf, buflen, "%.*f%c", i, (double)num / (double)(1ULL << 10 * index), u) <= 5) break;
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Stored state                                                                                */

typedef struct {
  char *key;
  char *val;
} kv_t;

typedef struct {
  kv_t *kv;
  size_t n, cap;
} kvs_t;

static void kvs_free(kvs_t *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->kv[i].key);
    free(p->kv[i].val);
  }
  free(p->kv);
  p->kv = NULL;
  p->n = p->cap = 0;
}

static const char *kvs_get(const kvs_t *p, const char *key) {
  for (size_t i = 0; i < p->n; i++) {
    if (strcmp(p->kv[i].key, key) == 0) return p->kv[i].val;
  }
  return NULL;
}

static int kvs_set(kvs_t *p, const char *key, const char *val) {
  for (size_t i = 0; i < p->n; i++) {
    if (strcmp(p->kv[i].key, key) == 0) {
      char *v = strdup(val);
      if (v == NULL) return -1;
      free(p->kv[i].val);
      p->kv[i].val = v;
      return 0;
    }
  }
  if (p->n == p->cap) {
    size_t cap = p->cap == 0 ? 16 : p->cap * 2;
    kv_t *bigger = realloc(p->kv, cap * sizeof(kv_t));
    if (bigger == NULL) return -1;
    p->kv = bigger;
    p->cap = cap;
  }
  char *k = strdup(key), *v = strdup(val);
  if (k == NULL || v == NULL) {
    free(k);
    free(v);
    return -1;
  }
  p->kv[p->n].key = k;
  p->kv[p->n].val = v;
  p->n++;
  return 0;
}

typedef struct {
  char name[ZFS_MAX_DATASET_NAME_LEN];
  uint64_t size;
  char health[32];
  uint64_t guid;
} pool_t;

/*
 * This process's copy of zfs/pools and every zfs/ds/<escaped name>, good while the lock file's
 * FAKE_GEN_ZFS token is `token` and the state directory is still `dir`. When not `valid`, every function
 * goes to the files as before. Only touched between zlock() and zunlock() (fake_lock() already
 * excludes other threads; the mutex makes that plain to the compiler). `changed`: this locked
 * section wrote something, so the token is replaced when it ends.
 */
typedef struct {
  char *name;
  kvs_t rec;
} ds_ent_t;

static struct {
  int valid;
  uint64_t token;
  char dir[4096];
  int have_pools; /* zfs/pools exists */
  pool_t *pools;
  size_t npools;
  ds_ent_t *ds;
  size_t nds, cap;
  int changed;
} zc;
static pthread_mutex_t zc_mu = PTHREAD_MUTEX_INITIALIZER;

static void zc_clear(void) {
  for (size_t i = 0; i < zc.nds; i++) {
    free(zc.ds[i].name);
    kvs_free(&zc.ds[i].rec);
  }
  free(zc.ds);
  free(zc.pools);
  zc.ds = NULL;
  zc.pools = NULL;
  zc.nds = zc.cap = zc.npools = 0;
  zc.have_pools = 0;
  zc.valid = 0;
}

static int kvs_copy(const kvs_t *src, kvs_t *dst) {
  memset(dst, 0, sizeof(*dst));
  for (size_t i = 0; i < src->n; i++) {
    if (kvs_set(dst, src->kv[i].key, src->kv[i].val) != 0) {
      kvs_free(dst);
      errno = ENOMEM;
      return -1;
    }
  }
  return 0;
}

static ds_ent_t *zc_find(const char *name) {
  for (size_t i = 0; i < zc.nds; i++) {
    if (strcmp(zc.ds[i].name, name) == 0) return &zc.ds[i];
  }
  return NULL;
}

/* Adds or replaces a dataset in the cache (taking a copy); drops the cache if out of memory. */
static void zc_put(const char *name, const kvs_t *rec) {
  kvs_t copy;
  if (kvs_copy(rec, &copy) != 0) {
    zc_clear();
    return;
  }
  ds_ent_t *e = zc_find(name);
  if (e != NULL) {
    kvs_free(&e->rec);
    e->rec = copy;
    return;
  }
  if (zc.nds == zc.cap) {
    size_t cap = zc.cap == 0 ? 16 : zc.cap * 2;
    ds_ent_t *bigger = realloc(zc.ds, cap * sizeof(ds_ent_t));
    if (bigger == NULL) {
      kvs_free(&copy);
      zc_clear();
      return;
    }
    zc.ds = bigger;
    zc.cap = cap;
  }
  char *n = strdup(name);
  if (n == NULL) {
    kvs_free(&copy);
    zc_clear();
    return;
  }
  zc.ds[zc.nds].name = n;
  zc.ds[zc.nds].rec = copy;
  zc.nds++;
}

static void zc_remove(const char *name) {
  ds_ent_t *e = zc_find(name);
  if (e == NULL) return;
  free(e->name);
  kvs_free(&e->rec);
  *e = zc.ds[--zc.nds];
}

/* A dataset's file name in zfs/ds: its name with '/' as '!' and any other byte outside
 * [A-Za-z0-9-_.: ] (such as '!' or '%') as %XX, so a stored name (which has none of those) keeps
 * its length, under NAME_MAX. Never starts with '.' or '@' (a pool name starts with a letter). */
static int ds_escape(char *buf, size_t len, const char *name) {
  size_t j = 0;
  for (const char *c = name; *c != '\0'; c++) {
    int plain = valid_char(*c) || *c == '/';
    if (j + (plain ? 1 : 3) >= len) {
      errno = ENAMETOOLONG;
      return -1;
    }
    if (plain) buf[j++] = *c == '/' ? '!' : *c;
    else j += (size_t)sprintf(buf + j, "%%%02X", (unsigned char)*c);
  }
  buf[j] = '\0';
  return 0;
}

/* The dataset name of a file in zfs/ds (malloc'd), or NULL. */
static char *ds_unescape(const char *file) {
  char *out = malloc(strlen(file) + 1);
  if (out == NULL) return NULL;
  size_t j = 0;
  for (size_t i = 0; file[i] != '\0'; i++) {
    if (file[i] == '%' && isxdigit((unsigned char)file[i + 1]) && isxdigit((unsigned char)file[i + 2])) {
      char hex[3] = {file[i + 1], file[i + 2], '\0'};
      out[j++] = (char)strtol(hex, NULL, 16);
      i += 2;
    } else {
      out[j++] = file[i] == '!' ? '/' : file[i];
    }
  }
  out[j] = '\0';
  return out;
}

static int ds_file(char *buf, size_t len, const char *name) {
  char esc[ZFS_MAX_DATASET_NAME_LEN * 3 + 1];
  if (ds_escape(esc, sizeof(esc), name) != 0) return -1;
  return fake_path(buf, len, "zfs/ds", esc);
}

static char *unescape(const char *s) {
  char *out = malloc(strlen(s) + 1);
  if (out == NULL) return NULL;
  size_t j = 0;
  for (size_t i = 0; s[i] != '\0'; i++) {
    if (s[i] == '%' && isxdigit((unsigned char)s[i + 1]) && isxdigit((unsigned char)s[i + 2])) {
      char hex[3] = {s[i + 1], s[i + 2], '\0'};
      out[j++] = (char)strtol(hex, NULL, 16);
      i += 2;
    } else {
      out[j++] = s[i];
    }
  }
  out[j] = '\0';
  return out;
}

/* Parses a record file's text (consumed) into *out. */
static int ds_parse(char *data, kvs_t *out) {
  memset(out, 0, sizeof(*out));
  char *save = NULL;
  for (char *line = strtok_r(data, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    char *eq = strchr(line, '=');
    if (eq == NULL) continue;
    *eq = '\0';
    char *val = unescape(eq + 1);
    if (val == NULL || kvs_set(out, line, val) != 0) {
      free(val);
      free(data);
      kvs_free(out);
      errno = ENOMEM;
      return -1;
    }
    free(val);
  }
  free(data);
  return 0;
}

/* Loads a dataset's record. -1 with errno ENOENT if it does not exist. Lock held. */
static int ds_load(const char *name, kvs_t *out) {
  char path[4200];
  memset(out, 0, sizeof(*out));
  if (zc.valid) {
    const ds_ent_t *e = zc_find(name);
    if (e == NULL) {
      errno = ENOENT;
      return -1;
    }
    return kvs_copy(&e->rec, out);
  }
  if (ds_file(path, sizeof(path), name) != 0) return -1;
  char *data = fake_read_file(path, NULL);
  if (data == NULL) return -1;
  return ds_parse(data, out);
}

static int ds_exists(const char *name) {
  char path[4200];
  struct stat st;
  if (zc.valid) return zc_find(name) != NULL;
  if (ds_file(path, sizeof(path), name) != 0) return 0;
  return stat(path, &st) == 0;
}

/* Writes `len` bytes to a new temp file in zfs/ds (named with '@', which no dataset file has) and
 * renames it to `path`: a rename to a name not yet there (a create) costs no flush on ext4. */
static int ds_write(const char *path, const char *data, size_t len) {
  char tmp[4200];
  if (fake_path(tmp, sizeof(tmp), "zfs/ds", "@tmp") != 0) return -1;
  size_t n = strlen(tmp);
  if (snprintf(tmp + n, sizeof(tmp) - n, ".%ld", (long)getpid()) >= (int)(sizeof(tmp) - n)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  if (fake_write_via(tmp, path, data, len) == 0) return 0;
  if (errno != ENOENT || fake_mkdir("zfs/ds") != 0) return -1; /* zfs/ds not there yet */
  return fake_write_via(tmp, path, data, len);
}

/* Writes a dataset's record. Lock held. */
static int ds_save(const char *name, const kvs_t *p) {
  char path[4200];
  if (ds_file(path, sizeof(path), name) != 0) return -1;
  size_t cap = 256, len = 0;
  for (size_t i = 0; i < p->n; i++) cap += strlen(p->kv[i].key) + 3 * strlen(p->kv[i].val) + 2;
  char *buf = malloc(cap);
  if (buf == NULL) {
    errno = ENOMEM;
    return -1;
  }
  for (size_t i = 0; i < p->n; i++) {
    len += (size_t)sprintf(buf + len, "%s=", p->kv[i].key);
    for (const char *c = p->kv[i].val; *c != '\0'; c++) {
      if (*c == '%' || *c == '\n' || *c == '\r') len += (size_t)sprintf(buf + len, "%%%02X", (unsigned char)*c);
      else buf[len++] = *c;
    }
    buf[len++] = '\n';
  }
  zc.changed = 1;
  int rc = ds_write(path, buf, len);
  free(buf);
  if (rc != 0) zc_clear();
  else if (zc.valid) zc_put(name, p);
  return rc;
}

static uint64_t fake_guid(void) {
  uint64_t g = (uint64_t)fake_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)rand();
  g *= 0x9E3779B97F4A7C15ULL;
  return g != 0 ? g : 1;
}

static int pools_path(char *buf, size_t len) { return fake_path(buf, len, "zfs", "pools"); }

static int valid_pool_name(const char *s) {
  if (!isalpha((unsigned char)s[0]) || strlen(s) >= ZFS_MAX_DATASET_NAME_LEN) return 0;
  for (const char *c = s; *c != '\0'; c++) {
    if (!valid_char(*c) || *c == ' ') return 0;
  }
  return 1;
}

/* Seeds zfs/pools (and each pool's root dataset) on first use. Lock held. */
static int ensure_pools(void) {
  char path[4096];
  struct stat st;
  if (pools_path(path, sizeof(path)) != 0) return -1;
  if (zc.valid && zc.have_pools) return 0;
  if (stat(path, &st) == 0) return 0;
  /* Seeding: the files change, so this process reloads them next time. */
  zc_clear();
  zc.changed = 1;
  if (fake_mkdir("zfs/ds") != 0) return -1;
  const char *spec = getenv("FAKE_ILLUMOS_POOLS");
  if (spec == NULL || spec[0] == '\0') spec = DEFAULT_POOLS;
  char *copy = strdup(spec);
  if (copy == NULL) return -1;
  size_t cap = strlen(spec) * 2 + 256, len = 0;
  char *out = malloc(cap);
  if (out == NULL) {
    free(copy);
    return -1;
  }
  char *save = NULL;
  for (char *item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
    char *name = item, *size = strchr(item, ':');
    if (size == NULL) continue;
    *size++ = '\0';
    char *health = strchr(size, ':');
    if (health != NULL) *health++ = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long long bytes = strtoull(size, &end, 10);
    if (errno != 0 || end == size || *end != '\0' || !valid_pool_name(name)) continue;
    if (health == NULL || health[0] == '\0' || strlen(health) >= 32) health = "ONLINE";
    len += (size_t)snprintf(out + len, cap - len, "%s\t%llu\t%s\t%llu\n", name, bytes, health,
                            (unsigned long long)fake_guid());
    kvs_t root = {0};
    char num[32];
    (void)snprintf(num, sizeof(num), "%lld", (long long)time(NULL));
    if (kvs_set(&root, "@creation", num) != 0) continue;
    (void)snprintf(num, sizeof(num), "%llu", (unsigned long long)fake_guid());
    if (kvs_set(&root, "@guid", num) == 0 && !ds_exists(name)) (void)ds_save(name, &root);
    kvs_free(&root);
  }
  free(copy);
  int rc = fake_write_file(path, out, len);
  free(out);
  return rc;
}

/* Reads the pools. Returns a malloc'd array (count in *n), NULL on failure. Lock held. */
static pool_t *pools_parse(char *data, size_t *n);

static pool_t *pools_load(size_t *n) {
  char path[4096];
  *n = 0;
  if (ensure_pools() != 0 || pools_path(path, sizeof(path)) != 0) return NULL;
  if (zc.valid && zc.have_pools) {
    pool_t *copy = malloc((zc.npools > 0 ? zc.npools : 1) * sizeof(pool_t));
    if (copy == NULL) return NULL;
    if (zc.npools > 0) memcpy(copy, zc.pools, zc.npools * sizeof(pool_t));
    *n = zc.npools;
    return copy;
  }
  char *data = fake_read_file(path, NULL);
  if (data == NULL) return NULL;
  return pools_parse(data, n);
}

/* Parses the pools file's text (consumed). */
static pool_t *pools_parse(char *data, size_t *n) {
  *n = 0;
  size_t cap = 8;
  pool_t *pools = calloc(cap, sizeof(pool_t));
  if (pools == NULL) {
    free(data);
    return NULL;
  }
  char *save = NULL;
  for (char *line = strtok_r(data, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    pool_t p;
    memset(&p, 0, sizeof(p));
    unsigned long long size = 0, guid = 0;
    char name[ZFS_MAX_DATASET_NAME_LEN], health[32];
    if (sscanf(line, "%255[^\t]\t%llu\t%31[^\t]\t%llu", name, &size, health, &guid) != 4) continue;
    if (*n == cap) {
      cap *= 2;
      pool_t *bigger = realloc(pools, cap * sizeof(pool_t));
      if (bigger == NULL) {
        free(pools);
        free(data);
        return NULL;
      }
      pools = bigger;
    }
    (void)snprintf(p.name, sizeof(p.name), "%s", name);
    (void)snprintf(p.health, sizeof(p.health), "%s", health);
    p.size = size;
    p.guid = guid;
    pools[(*n)++] = p;
  }
  free(data);
  return pools;
}

static int pool_find(const char *name, pool_t *out) {
  size_t n = 0;
  pool_t *pools = pools_load(&n);
  if (pools == NULL) return -1;
  int found = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(pools[i].name, name) == 0) {
      *out = pools[i];
      found = 1;
    }
  }
  free(pools);
  if (!found) errno = ENOENT;
  return found ? 0 : -1;
}

/* Names of the direct children of `name` (sorted, malloc'd). Lock held. */
static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Whether `c` is a direct child of `name` (of length len). */
static int is_child(const char *c, const char *name, size_t len) {
  return strncmp(c, name, len) == 0 && c[len] == '/' && c[len + 1] != '\0' && strchr(c + len + 1, '/') == NULL;
}

static char **ds_children(const char *name, size_t *count) {
  char dir[4096];
  size_t len = strlen(name);
  *count = 0;
  if (fake_path(dir, sizeof(dir), "zfs/ds", NULL) != 0) return NULL;
  char **out = calloc(1, sizeof(char *));
  if (out == NULL) return NULL;
  if (zc.valid) {
    for (size_t i = 0; i < zc.nds; i++) {
      const char *c = zc.ds[i].name;
      if (!is_child(c, name, len)) continue;
      char **bigger = realloc(out, (*count + 2) * sizeof(char *));
      if (bigger == NULL) break;
      out = bigger;
      out[*count] = strdup(c);
      if (out[*count] != NULL) (*count)++;
    }
  } else {
    DIR *d = opendir(dir);
    if (d == NULL) {
      free(out);
      return NULL;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.' || e->d_name[0] == '@') continue;
      char *child = ds_unescape(e->d_name);
      if (child == NULL) break;
      if (!is_child(child, name, len)) {
        free(child);
        continue;
      }
      char **bigger = realloc(out, (*count + 2) * sizeof(char *));
      if (bigger == NULL) {
        free(child);
        break;
      }
      out = bigger;
      out[(*count)++] = child;
    }
    closedir(d);
  }
  if (*count > 1) qsort(out, *count, sizeof(char *), cmp_names);
  return out;
}

static void free_names(char **names, size_t n) {
  if (names == NULL) return;
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

/* The dataset and its descendants. Lock held. */
static uint64_t ds_count(const char *name) {
  size_t n = 0;
  char **kids = ds_children(name, &n);
  uint64_t total = 1;
  for (size_t i = 0; i < n; i++) total += ds_count(kids[i]);
  free_names(kids, n);
  return total;
}

static void pool_of(const char *name, char *pool, size_t len) {
  size_t n = strcspn(name, "/");
  if (n >= len) n = len - 1;
  memcpy(pool, name, n);
  pool[n] = '\0';
}

static int parent_name(const char *name, char *parent, size_t len) {
  const char *slash = strrchr(name, '/');
  if (slash == NULL || (size_t)(slash - name) >= len) return -1;
  memcpy(parent, name, (size_t)(slash - name));
  parent[slash - name] = '\0';
  return 0;
}

/* A property's effective value (literal form) and its source. Lock held; `self` loaded. */
static int ds_prop(const char *name, const kvs_t *self, const prop_desc_t *pd, char *buf, size_t len,
                   zprop_source_t *src, char *statbuf, size_t statlen) {
  char pool[ZFS_MAX_DATASET_NAME_LEN];
  pool_t p;
  if (src) *src = ZPROP_SRC_NONE;
  if (statbuf && statlen > 0) statbuf[0] = '\0';
  switch (pd->id) {
    case P_TYPE: (void)snprintf(buf, len, "filesystem"); return 0;
    case P_NAME: (void)snprintf(buf, len, "%s", name); return 0;
    case P_CREATION: (void)snprintf(buf, len, "%s", kvs_get(self, "@creation") ? kvs_get(self, "@creation") : "0"); return 0;
    case P_GUID: (void)snprintf(buf, len, "%s", kvs_get(self, "@guid") ? kvs_get(self, "@guid") : "0"); return 0;
    case P_COMPRESSRATIO: (void)snprintf(buf, len, "1.00x"); return 0;
    case P_ORIGIN: return -1; /* not a clone */
    case P_MOUNTED: {
      const char *m = kvs_get(self, "@mounted");
      (void)snprintf(buf, len, "%s", m != NULL && strcmp(m, "yes") == 0 ? "yes" : "no");
      return 0;
    }
    case P_USED:
    case P_REFERENCED:
    case P_AVAILABLE: {
      uint64_t used = FAKE_DS_BYTES * ds_count(name);
      if (pd->id == P_USED) {
        (void)snprintf(buf, len, "%llu", (unsigned long long)used);
        return 0;
      }
      if (pd->id == P_REFERENCED) {
        (void)snprintf(buf, len, "%llu", FAKE_DS_BYTES);
        return 0;
      }
      pool_of(name, pool, sizeof(pool));
      if (pool_find(pool, &p) != 0) return -1;
      uint64_t alloc = FAKE_DS_BYTES * ds_count(pool);
      uint64_t avail = p.size > alloc ? p.size - alloc : 0;
      const char *q = kvs_get(self, "quota");
      uint64_t quota = q != NULL ? strtoull(q, NULL, 10) : 0;
      if (quota != 0) {
        uint64_t room = quota > used ? quota - used : 0;
        if (room < avail) avail = room;
      }
      (void)snprintf(buf, len, "%llu", (unsigned long long)avail);
      return 0;
    }
    default: break;
  }
  /* Stored properties: local, else inherited from the nearest ancestor, else the default. */
  const char *v = kvs_get(self, pd->name);
  if (v != NULL) {
    if (src) *src = ZPROP_SRC_LOCAL;
    (void)snprintf(buf, len, "%s", v);
    return 0;
  }
  if (pd->inherit) {
    char anc[ZFS_MAX_DATASET_NAME_LEN];
    (void)snprintf(anc, sizeof(anc), "%s", name);
    while (parent_name(anc, anc, sizeof(anc)) == 0) {
      kvs_t a;
      if (ds_load(anc, &a) != 0) break;
      const char *av = kvs_get(&a, pd->name);
      if (av != NULL) {
        if (pd->id == P_MOUNTPOINT && av[0] == '/') {
          const char *rel = name + strlen(anc) + 1;
          (void)snprintf(buf, len, "%s/%s", strcmp(av, "/") == 0 ? "" : av, rel);
        } else {
          (void)snprintf(buf, len, "%s", av);
        }
        if (src) *src = ZPROP_SRC_INHERITED;
        if (statbuf && statlen > 0) (void)snprintf(statbuf, statlen, "%s", anc);
        kvs_free(&a);
        return 0;
      }
      kvs_free(&a);
    }
  }
  if (src) *src = ZPROP_SRC_DEFAULT;
  if (pd->id == P_MOUNTPOINT) (void)snprintf(buf, len, "/%s", name);
  else (void)snprintf(buf, len, "%s", pd->def != NULL ? pd->def : "");
  return 0;
}

static int ds_prop_is(const char *name, const kvs_t *self, int id, const char *want) {
  char buf[ZFS_MAXPROPLEN];
  const prop_desc_t *pd = prop_by_id(id);
  return pd != NULL && ds_prop(name, self, pd, buf, sizeof(buf), NULL, NULL, 0) == 0 && strcmp(buf, want) == 0;
}

/* zfs_is_mountable: a mountpoint that is a path, canmount != off, not zoned (global zone). */
static int ds_mountable(const char *name, const kvs_t *self, char *mp, size_t mplen) {
  const prop_desc_t *pd = prop_by_id(P_MOUNTPOINT);
  if (ds_prop(name, self, pd, mp, mplen, NULL, NULL, 0) != 0) return 0;
  if (strcmp(mp, "none") == 0 || strcmp(mp, "legacy") == 0) return 0;
  if (ds_prop_is(name, self, P_CANMOUNT, "off")) return 0;
  if (ds_prop_is(name, self, P_ZONED, "on")) return 0;
  return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* zfs_valid_proplist                                                                          */

/*
 * Checks `props` (string values, or uint64 for numeric properties) and adds each, in canonical
 * literal form, to `out`. `zoned`: the parent's zoned when creating, the dataset's when setting.
 * Returns 0, or -1 with the handle's error set (action `errbuf`).
 */
static int valid_proplist(libzfs_handle_t *hdl, nvlist_t *props, int zoned, const char *errbuf, kvs_t *out) {
  for (nvpair_t *elem = nvlist_next_nvpair(props, NULL); elem != NULL; elem = nvlist_next_nvpair(props, elem)) {
    const char *propname = nvpair_name(elem);
    const prop_desc_t *pd = prop_by_name(propname);
    char *strval = NULL;
    if (pd == NULL && zfs_prop_user(propname)) {
      if (nvpair_type(elem) != DATA_TYPE_STRING_) {
        zfs_error_aux(hdl, "'%s' must be a string", propname);
        return zfs_error(hdl, EZFS_BADPROP, errbuf);
      }
      if (strlen(propname) >= ZAP_MAXNAMELEN) {
        zfs_error_aux(hdl, "property name '%s' is too long", propname);
        return zfs_error(hdl, EZFS_BADPROP, errbuf);
      }
      (void)nvpair_value_string(elem, &strval);
      if (strlen(strval) >= ZFS_MAXPROPLEN) {
        zfs_error_aux(hdl, "property value '%s' is too long", strval);
        return zfs_error(hdl, EZFS_BADPROP, errbuf);
      }
      if (kvs_set(out, propname, strval) != 0) return zfs_error(hdl, EZFS_NOMEM, "internal error");
      continue;
    }
    if (pd == NULL) {
      zfs_error_aux(hdl, "invalid property '%s'", propname);
      return zfs_error(hdl, EZFS_BADPROP, errbuf);
    }
    if (pd->readonly) {
      zfs_error_aux(hdl, "'%s' is readonly", pd->name);
      return zfs_error(hdl, EZFS_PROPREADONLY, errbuf);
    }
    char canon[ZFS_MAXPROPLEN + 32];
    if (pd->type == PT_NUMBER) {
      uint64_t num = 0;
      if (nvpair_type(elem) == DATA_TYPE_UINT64_) {
        (void)nvpair_value_uint64(elem, &num);
      } else if (nvpair_type(elem) != DATA_TYPE_STRING_) {
        zfs_error_aux(hdl, "'%s' must be a number", pd->name);
        return zfs_error(hdl, EZFS_BADPROP, errbuf);
      } else {
        (void)nvpair_value_string(elem, &strval);
        int noneable = pd->id == P_QUOTA || pd->id == P_RESERVATION || pd->id == P_REFQUOTA || pd->id == P_REFRESERVATION;
        if (noneable && strcmp(strval, "none") == 0) num = 0;
        else if (zfs_nicestrtonum(hdl, strval, &num) != 0) return zfs_error(hdl, EZFS_BADPROP, errbuf);
      }
      if (pd->id == P_RECORDSIZE && (num < 512 || num > 1048576 || (num & (num - 1)) != 0)) {
        zfs_error_aux(hdl, "'%s' must be power of 2 from 512B to 1M", pd->name);
        return zfs_error(hdl, EZFS_BADPROP, errbuf);
      }
      (void)snprintf(canon, sizeof(canon), "%llu", (unsigned long long)num);
    } else {
      if (nvpair_type(elem) != DATA_TYPE_STRING_) {
        if (pd->type == PT_INDEX) zfs_error_aux(hdl, "'%s' must be one of '%s'", pd->name, pd->values);
        else zfs_error_aux(hdl, "'%s' must be a string", pd->name);
        return zfs_error(hdl, EZFS_BADPROP, errbuf);
      }
      (void)nvpair_value_string(elem, &strval);
      if (pd->type == PT_INDEX) {
        if (!index_valid(pd->values, strval)) {
          zfs_error_aux(hdl, "'%s' must be one of '%s'", pd->name, pd->values);
          return zfs_error(hdl, EZFS_BADPROP, errbuf);
        }
      } else if (strlen(strval) >= ZFS_MAXPROPLEN) {
        zfs_error_aux(hdl, "'%s' is too long", pd->name);
        return zfs_error(hdl, EZFS_BADPROP, errbuf);
      }
      if (pd->id == P_MOUNTPOINT) {
        if (strcmp(strval, "none") != 0 && strcmp(strval, "legacy") != 0) {
          if (strval[0] != '/') {
            zfs_error_aux(hdl, "'%s' must be an absolute path, 'none', or 'legacy'", pd->name);
            return zfs_error(hdl, EZFS_BADPROP, errbuf);
          }
          for (const char *c = strval; *c != '\0';) {
            size_t comp = strcspn(c, "/");
            if (comp >= 256) {
              zfs_error_aux(hdl, "component of '%s' is too long", pd->name);
              return zfs_error(hdl, EZFS_BADPROP, errbuf);
            }
            c += comp;
            if (*c == '/') c++;
          }
        }
      }
      (void)snprintf(canon, sizeof(canon), "%s", strval);
    }
    if ((pd->id == P_MOUNTPOINT || pd->id == P_SHARENFS) && zoned) {
      /* getzoneid() == GLOBAL_ZONEID: the fake is always the global zone. */
      zfs_error_aux(hdl, "'%s' cannot be set on dataset in a non-global zone", pd->name);
      return zfs_error(hdl, EZFS_ZONED, errbuf);
    }
    if (kvs_set(out, pd->name, canon) != 0) return zfs_error(hdl, EZFS_NOMEM, "internal error");
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The library                                                                                 */

/* Reads every dataset record in the directory `dir` (zfs/ds: one flat file per dataset). */
static int zc_load_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return errno == ENOENT ? 0 : -1;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || e->d_name[0] == '@') continue; /* ".", "..", temp files */
    char file[4500];
    int k = snprintf(file, sizeof(file), "%s/%s", dir, e->d_name);
    char *name = ds_unescape(e->d_name);
    if (k < 0 || (size_t)k >= sizeof(file) || name == NULL) {
      free(name);
      rc = -1;
      break;
    }
    char *data = fake_read_file(file, NULL);
    if (data != NULL) {
      kvs_t rec;
      if (ds_parse(data, &rec) != 0) {
        free(name);
        rc = -1;
        break;
      }
      zc_put(name, &rec);
      kvs_free(&rec);
      if (!zc.valid) rc = -1;
    } else if (errno != ENOENT) {
      rc = -1;
    }
    free(name);
  }
  closedir(d);
  return rc;
}

/* Fills the cache from the files. Lock held. */
static int zc_load(void) {
  char path[4096];
  zc_clear();
  zc.valid = 1; /* so zc_put keeps what it is given */
  if (pools_path(path, sizeof(path)) != 0) goto fail;
  char *data = fake_read_file(path, NULL);
  if (data != NULL) {
    zc.pools = pools_parse(data, &zc.npools);
    if (zc.pools == NULL) goto fail;
    zc.have_pools = 1;
  } else if (errno != ENOENT) {
    goto fail;
  }
  if (fake_path(path, sizeof(path), "zfs/ds", NULL) != 0 || zc_load_dir(path) != 0 || !zc.valid) goto fail;
  return 0;
fail:
  zc_clear();
  return -1;
}

/* fake_lock(), and the cache brought up to date (or left invalid: the files are used). */
static int zlock(void) {
  int lk = fake_lock();
  if (lk < 0) return -1;
  pthread_mutex_lock(&zc_mu);
  zc.changed = 0;
  const char *dir = fake_state_dir();
  uint64_t tok = fake_gen_read(lk, FAKE_GEN_ZFS);
  if (!zc.valid || tok == 0 || tok != zc.token || dir == NULL || strcmp(dir, zc.dir) != 0) {
    if (dir != NULL && zc_load() == 0) {
      (void)snprintf(zc.dir, sizeof(zc.dir), "%s", dir);
      zc.token = tok;
      if (tok == 0) zc.changed = 1; /* no token yet: make one now */
    }
  }
  return lk;
}

/* Replaces the token if this locked section wrote anything, then fake_unlock(). */
static void zunlock(int lk) {
  if (zc.changed) {
    uint64_t tok = fake_gen_bump(lk, FAKE_GEN_ZFS);
    if (tok == 0) zc_clear();
    zc.token = tok;
    zc.changed = 0;
  }
  pthread_mutex_unlock(&zc_mu);
  fake_unlock(lk);
}

libzfs_handle_t *libzfs_init(void) {
  /* The real one opens /dev/zfs and /etc/mnttab; the fake needs its state directory. */
  if (fake_state_dir() == NULL) {
    errno = ENOENT;
    return NULL;
  }
  libzfs_handle_t *hdl = calloc(1, sizeof(*hdl));
  if (hdl == NULL) errno = ENOMEM;
  return hdl;
}

void libzfs_fini(libzfs_handle_t *hdl) { free(hdl); }

libzfs_handle_t *zfs_get_handle(zfs_handle_t *zhp) { return zhp->hdl; }
libzfs_handle_t *zpool_get_handle(zpool_handle_t *zhp) { return zhp->hdl; }

static zfs_handle_t *new_handle(libzfs_handle_t *hdl, const char *name) {
  zfs_handle_t *zhp = calloc(1, sizeof(*zhp));
  if (zhp == NULL) {
    (void)zfs_error(hdl, EZFS_NOMEM, "internal error");
    return NULL;
  }
  zhp->hdl = hdl;
  (void)snprintf(zhp->name, sizeof(zhp->name), "%s", name);
  zhp->type = ZFS_TYPE_FILESYSTEM;
  return zhp;
}

zfs_handle_t *zfs_open(libzfs_handle_t *hdl, const char *path, int types) {
  char errbuf[1024];
  (void)snprintf(errbuf, sizeof(errbuf), "cannot open '%s'", path);
  if (!validate_name(hdl, path, 0)) {
    (void)zfs_error(hdl, EZFS_INVALIDNAME, errbuf);
    return NULL;
  }
  int lk = zlock();
  if (lk < 0) {
    (void)state_error(hdl, errbuf);
    return NULL;
  }
  int exists = ensure_pools() == 0 && ds_exists(path);
  zunlock(lk);
  if (!exists) {
    (void)zfs_standard_error(hdl, ENOENT, errbuf);
    return NULL;
  }
  if (!(types & ZFS_TYPE_FILESYSTEM)) {
    (void)zfs_error(hdl, EZFS_BADTYPE, errbuf);
    return NULL;
  }
  return new_handle(hdl, path);
}

void zfs_close(zfs_handle_t *zhp) {
  if (zhp == NULL) return;
  nvlist_free(zhp->user_props);
  free(zhp);
}

const char *zfs_get_name(const zfs_handle_t *zhp) { return zhp->name; }

zfs_type_t zfs_get_type(const zfs_handle_t *zhp) { return zhp->type; }

boolean_t zfs_dataset_exists(libzfs_handle_t *hdl, const char *path, zfs_type_t types) {
  (void)hdl;
  if (!(types & ZFS_TYPE_FILESYSTEM) || !validate_name(NULL, path, 0)) return B_FALSE;
  int lk = zlock();
  if (lk < 0) return B_FALSE;
  int exists = ensure_pools() == 0 && ds_exists(path);
  zunlock(lk);
  return exists ? B_TRUE : B_FALSE;
}

int zfs_create(libzfs_handle_t *hdl, const char *path, zfs_type_t type, nvlist_t *props) {
  char errbuf[1024];
  (void)snprintf(errbuf, sizeof(errbuf), "cannot create '%s'", path);
  if (type == ZFS_TYPE_VOLUME) {
    zfs_error_aux(hdl, "volumes are not supported by the fake libzfs");
    return zfs_error(hdl, EZFS_BADTYPE, errbuf);
  }
  if (type != ZFS_TYPE_FILESYSTEM) return zfs_error(hdl, EZFS_BADTYPE, errbuf);
  if (!validate_name(hdl, path, 1)) return zfs_error(hdl, EZFS_INVALIDNAME, errbuf);

  int lk = zlock();
  if (lk < 0) return state_error(hdl, errbuf);
  int rc = -1;
  kvs_t parent_rec = {0}, rec = {0};
  char parent[ZFS_MAX_DATASET_NAME_LEN], pool[ZFS_MAX_DATASET_NAME_LEN];
  pool_t p;

  if (ensure_pools() != 0) {
    rc = state_error(hdl, errbuf);
    goto out;
  }
  /* check_parents() */
  if (parent_name(path, parent, sizeof(parent)) != 0) {
    zfs_error_aux(hdl, "missing dataset name");
    rc = zfs_error(hdl, EZFS_INVALIDNAME, errbuf);
    goto out;
  }
  pool_of(path, pool, sizeof(pool));
  if (pool_find(pool, &p) != 0) {
    zfs_error_aux(hdl, "no such pool '%s'", pool);
    rc = zfs_error(hdl, EZFS_NOENT, errbuf);
    goto out;
  }
  if (ds_load(parent, &parent_rec) != 0) {
    zfs_error_aux(hdl, "parent does not exist");
    rc = zfs_error(hdl, EZFS_NOENT, errbuf);
    goto out;
  }
  int zoned = ds_prop_is(parent, &parent_rec, P_ZONED, "on");
  if (ds_exists(path)) {
    zfs_error_aux(hdl, "dataset already exists");
    rc = zfs_error(hdl, EZFS_EXISTS, errbuf);
    goto out;
  }
  if (props != NULL && valid_proplist(hdl, props, zoned, errbuf, &rec) != 0) goto out;
  /* A reservation must fit in what the pool has left. */
  const char *resv = kvs_get(&rec, "reservation");
  uint64_t alloc = FAKE_DS_BYTES * ds_count(pool);
  if (resv != NULL && strtoull(resv, NULL, 10) > (p.size > alloc ? p.size - alloc : 0)) {
    zfs_error_aux(hdl, "size is greater than available space");
    rc = zfs_error(hdl, EZFS_PROPSPACE, errbuf);
    goto out;
  }
  char num[32];
  (void)snprintf(num, sizeof(num), "%lld", (long long)time(NULL));
  if (kvs_set(&rec, "@creation", num) != 0) goto nomem;
  (void)snprintf(num, sizeof(num), "%llu", (unsigned long long)fake_guid());
  if (kvs_set(&rec, "@guid", num) != 0 || kvs_set(&rec, "@mounted", "no") != 0) goto nomem;
  if (ds_save(path, &rec) != 0) {
    rc = state_error(hdl, errbuf);
    goto out;
  }
  rc = 0;
  goto out;
nomem:
  rc = zfs_error(hdl, EZFS_NOMEM, "internal error");
out:
  kvs_free(&parent_rec);
  kvs_free(&rec);
  zunlock(lk);
  return rc;
}

int zfs_destroy(zfs_handle_t *zhp, boolean_t defer) {
  libzfs_handle_t *hdl = zhp->hdl;
  char errbuf[1024];
  if (defer) return EINVAL; /* defer applies to snapshots only; the real one returns EINVAL */
  (void)snprintf(errbuf, sizeof(errbuf), "cannot destroy '%s'", zhp->name);
  int lk = zlock();
  if (lk < 0) return state_error(hdl, errbuf);
  int rc = 0;
  kvs_t rec = {0};
  if (ds_load(zhp->name, &rec) != 0) goto out; /* lzc_destroy's ENOENT is not an error */
  size_t nkids = 0;
  char **kids = ds_children(zhp->name, &nkids);
  free_names(kids, nkids);
  if (nkids > 0) {
    rc = zfs_standard_error(hdl, EEXIST, errbuf);
    goto out;
  }
  const char *m = kvs_get(&rec, "@mounted");
  if (m != NULL && strcmp(m, "yes") == 0) {
    rc = zfs_standard_error(hdl, EBUSY, errbuf);
    goto out;
  }
  if (strchr(zhp->name, '/') == NULL) {
    /* A pool's root dataset (the kernel refuses; this errno is the fake's guess). */
    rc = zfs_standard_error(hdl, EINVAL, errbuf);
    goto out;
  }
  char path[4200];
  if (ds_file(path, sizeof(path), zhp->name) != 0) {
    rc = state_error(hdl, errbuf);
    goto out;
  }
  zc.changed = 1;
  if (unlink(path) != 0) {
    int saved = errno;
    zc_clear();
    errno = saved;
    rc = state_error(hdl, errbuf);
    goto out;
  }
  zc_remove(zhp->name);
out:
  kvs_free(&rec);
  zunlock(lk);
  return rc;
}

boolean_t zfs_is_mounted(zfs_handle_t *zhp, char **where) {
  int lk = zlock();
  if (lk < 0) return B_FALSE;
  kvs_t rec;
  boolean_t mounted = B_FALSE;
  if (ds_load(zhp->name, &rec) == 0) {
    const char *m = kvs_get(&rec, "@mounted");
    if (m != NULL && strcmp(m, "yes") == 0) {
      mounted = B_TRUE;
      if (where != NULL) {
        const char *at = kvs_get(&rec, "@mountedat");
        *where = strdup(at != NULL ? at : "");
      }
    }
    kvs_free(&rec);
  }
  zunlock(lk);
  return mounted;
}

int zfs_mount(zfs_handle_t *zhp, const char *options, int flags) {
  (void)options;
  (void)flags;
  libzfs_handle_t *hdl = zhp->hdl;
  char errbuf[1024];
  (void)snprintf(errbuf, sizeof(errbuf), "cannot mount '%s'", zhp->name);
  int lk = zlock();
  if (lk < 0) return state_error(hdl, errbuf);
  int rc = 0;
  kvs_t rec;
  char mp[ZFS_MAXPROPLEN];
  if (ds_load(zhp->name, &rec) != 0) {
    zunlock(lk);
    return zfs_standard_error(hdl, ENOENT, errbuf);
  }
  if (!ds_mountable(zhp->name, &rec, mp, sizeof(mp))) goto out; /* nothing to do: 0 */
  const char *m = kvs_get(&rec, "@mounted");
  if (m != NULL && strcmp(m, "yes") == 0) {
    zfs_error_aux(hdl, "mountpoint or dataset is busy");
    rc = zfs_error(hdl, EZFS_MOUNTFAILED, errbuf);
    goto out;
  }
  if (kvs_set(&rec, "@mounted", "yes") != 0 || kvs_set(&rec, "@mountedat", mp) != 0) {
    rc = zfs_error(hdl, EZFS_NOMEM, "internal error");
    goto out;
  }
  if (ds_save(zhp->name, &rec) != 0) rc = state_error(hdl, errbuf);
out:
  kvs_free(&rec);
  zunlock(lk);
  return rc;
}

int zfs_unmount(zfs_handle_t *zhp, const char *mountpoint, int flags) {
  (void)mountpoint;
  (void)flags;
  libzfs_handle_t *hdl = zhp->hdl;
  char errbuf[1024];
  (void)snprintf(errbuf, sizeof(errbuf), "cannot unmount '%s'", zhp->name);
  int lk = zlock();
  if (lk < 0) return state_error(hdl, errbuf);
  int rc = 0;
  kvs_t rec;
  if (ds_load(zhp->name, &rec) == 0) {
    const char *m = kvs_get(&rec, "@mounted");
    if (m != NULL && strcmp(m, "yes") == 0) {
      if (kvs_set(&rec, "@mounted", "no") != 0 || ds_save(zhp->name, &rec) != 0) rc = state_error(hdl, errbuf);
    }
    kvs_free(&rec);
  }
  zunlock(lk);
  return rc;
}

int zfs_prop_get(zfs_handle_t *zhp, zfs_prop_t prop, char *propbuf, size_t proplen, zprop_source_t *src,
                 char *statbuf, size_t statlen, boolean_t literal) {
  const prop_desc_t *pd = prop_by_id(prop);
  if (pd == NULL || propbuf == NULL || proplen == 0) return -1;
  int lk = zlock();
  if (lk < 0) return -1;
  kvs_t rec;
  int rc = -1;
  char value[ZFS_MAXPROPLEN + 64];
  if (ds_load(zhp->name, &rec) == 0) {
    rc = ds_prop(zhp->name, &rec, pd, value, sizeof(value), src, statbuf, statlen);
    kvs_free(&rec);
  }
  zunlock(lk);
  if (rc != 0) return -1;
  if (!literal && pd->type == PT_NUMBER && pd->id != P_CREATION && pd->id != P_GUID && pd->id != P_COMPRESSRATIO) {
    uint64_t n = strtoull(value, NULL, 10);
    if (n == 0 && (pd->id == P_QUOTA || pd->id == P_RESERVATION || pd->id == P_REFQUOTA || pd->id == P_REFRESERVATION))
      (void)snprintf(propbuf, proplen, "none");
    else
      zfs_nicenum(n, propbuf, proplen);
  } else {
    (void)snprintf(propbuf, proplen, "%s", value);
  }
  return 0;
}

int zfs_prop_set_list(zfs_handle_t *zhp, nvlist_t *props) {
  libzfs_handle_t *hdl = zhp->hdl;
  char errbuf[1024];
  (void)snprintf(errbuf, sizeof(errbuf), "cannot set property for '%s'", zhp->name);
  int lk = zlock();
  if (lk < 0) return state_error(hdl, errbuf);
  int rc = -1;
  kvs_t rec = {0}, changes = {0};
  if (ds_load(zhp->name, &rec) != 0) {
    rc = zfs_standard_error(hdl, ENOENT, errbuf);
    goto out;
  }
  int zoned = ds_prop_is(zhp->name, &rec, P_ZONED, "on");
  if (valid_proplist(hdl, props, zoned, errbuf, &changes) != 0) goto out;
  /* What the kernel checks when setting space properties (zfs_setprop_error texts). */
  char buf[64];
  (void)ds_prop(zhp->name, &rec, prop_by_id(P_USED), buf, sizeof(buf), NULL, NULL, 0);
  uint64_t used = strtoull(buf, NULL, 10);
  (void)ds_prop(zhp->name, &rec, prop_by_id(P_AVAILABLE), buf, sizeof(buf), NULL, NULL, 0);
  uint64_t avail = strtoull(buf, NULL, 10);
  const char *q = kvs_get(&changes, "quota");
  if (q != NULL && strtoull(q, NULL, 10) != 0 && strtoull(q, NULL, 10) < used) {
    zfs_error_aux(hdl, "size is less than current used or reserved space");
    rc = zfs_error(hdl, EZFS_PROPSPACE, errbuf);
    goto out;
  }
  const char *r = kvs_get(&changes, "reservation");
  if (r != NULL && strtoull(r, NULL, 10) > avail) {
    zfs_error_aux(hdl, "size is greater than available space");
    rc = zfs_error(hdl, EZFS_PROPSPACE, errbuf);
    goto out;
  }
  for (size_t i = 0; i < changes.n; i++) {
    if (kvs_set(&rec, changes.kv[i].key, changes.kv[i].val) != 0) {
      rc = zfs_error(hdl, EZFS_NOMEM, "internal error");
      goto out;
    }
  }
  /* The changelist: a mounted dataset follows a new mountpoint, or is unmounted if it no
   * longer may be mounted here (mountpoint none/legacy, canmount=off, zoned=on). */
  const char *m = kvs_get(&rec, "@mounted");
  if (m != NULL && strcmp(m, "yes") == 0) {
    char mp[ZFS_MAXPROPLEN];
    if (ds_mountable(zhp->name, &rec, mp, sizeof(mp))) {
      if (kvs_set(&rec, "@mountedat", mp) != 0) goto out;
    } else if (kvs_set(&rec, "@mounted", "no") != 0) {
      goto out;
    }
  }
  rc = ds_save(zhp->name, &rec) == 0 ? 0 : state_error(hdl, errbuf);
out:
  kvs_free(&rec);
  kvs_free(&changes);
  zunlock(lk);
  return rc;
}

int zfs_prop_set(zfs_handle_t *zhp, const char *propname, const char *propval) {
  nvlist_t *nvl = NULL;
  if (nvlist_alloc(&nvl, NV_UNIQUE_NAME, 0) != 0 || nvlist_add_string(nvl, propname, propval) != 0) {
    nvlist_free(nvl);
    return zfs_error(zhp->hdl, EZFS_NOMEM, "internal error");
  }
  int rc = zfs_prop_set_list(zhp, nvl);
  nvlist_free(nvl);
  return rc;
}

/* User properties, inherited ones included: name -> { "value": v, "source": dataset }. */
nvlist_t *zfs_get_user_props(zfs_handle_t *zhp) {
  nvlist_free(zhp->user_props);
  zhp->user_props = NULL;
  if (nvlist_alloc(&zhp->user_props, NV_UNIQUE_NAME, 0) != 0) return NULL;
  int lk = zlock();
  if (lk < 0) return zhp->user_props;
  /* From the pool's root down to the dataset, so nearer settings replace farther ones. */
  char anc[ZFS_MAX_DATASET_NAME_LEN];
  size_t len = strlen(zhp->name);
  for (size_t end = 0; end <= len; end++) {
    if (zhp->name[end] != '/' && zhp->name[end] != '\0') continue;
    memcpy(anc, zhp->name, end);
    anc[end] = '\0';
    kvs_t rec;
    if (ds_load(anc, &rec) != 0) continue;
    for (size_t i = 0; i < rec.n; i++) {
      if (rec.kv[i].key[0] == '@' || !zfs_prop_user(rec.kv[i].key)) continue;
      nvlist_t *entry = NULL;
      if (nvlist_alloc(&entry, NV_UNIQUE_NAME, 0) == 0 && nvlist_add_string(entry, "value", rec.kv[i].val) == 0 &&
          nvlist_add_string(entry, "source", anc) == 0)
        (void)nvlist_add_nvlist(zhp->user_props, rec.kv[i].key, entry);
      nvlist_free(entry);
    }
    kvs_free(&rec);
  }
  zunlock(lk);
  return zhp->user_props;
}

int zfs_iter_filesystems(zfs_handle_t *zhp, zfs_iter_f func, void *data) {
  int lk = zlock();
  if (lk < 0) return state_error(zhp->hdl, "cannot iterate filesystems");
  size_t n = 0;
  char **kids = ds_children(zhp->name, &n);
  zunlock(lk); /* never hold the lock across the callback: it may call back into us */
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    zfs_handle_t *child = new_handle(zhp->hdl, kids[i]);
    if (child == NULL) {
      rc = -1;
      break;
    }
    rc = func(child, data);
  }
  free_names(kids, n);
  return rc;
}

int zfs_iter_children(zfs_handle_t *zhp, zfs_iter_f func, void *data) { return zfs_iter_filesystems(zhp, func, data); }

int zfs_iter_root(libzfs_handle_t *hdl, zfs_iter_f func, void *data) {
  int lk = zlock();
  if (lk < 0) return state_error(hdl, "cannot iterate filesystems");
  size_t n = 0;
  pool_t *pools = pools_load(&n);
  zunlock(lk);
  int rc = 0;
  for (size_t i = 0; pools != NULL && i < n && rc == 0; i++) {
    zfs_handle_t *root = new_handle(hdl, pools[i].name);
    rc = root != NULL ? func(root, data) : -1;
  }
  free(pools);
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Pools                                                                                       */

static zpool_handle_t *pool_handle(libzfs_handle_t *hdl, const char *name) {
  zpool_handle_t *zhp = calloc(1, sizeof(*zhp));
  if (zhp == NULL) {
    (void)zfs_error(hdl, EZFS_NOMEM, "internal error");
    return NULL;
  }
  zhp->hdl = hdl;
  (void)snprintf(zhp->name, sizeof(zhp->name), "%s", name);
  return zhp;
}

zpool_handle_t *zpool_open_canfail(libzfs_handle_t *hdl, const char *pool) {
  char errbuf[1024];
  (void)snprintf(errbuf, sizeof(errbuf), "cannot open '%s'", pool);
  if (!valid_pool_name(pool)) {
    (void)zfs_error(hdl, EZFS_INVALIDNAME, errbuf);
    return NULL;
  }
  int lk = zlock();
  if (lk < 0) {
    (void)state_error(hdl, errbuf);
    return NULL;
  }
  pool_t p;
  int found = pool_find(pool, &p) == 0;
  zunlock(lk);
  if (!found) {
    zfs_error_aux(hdl, "no such pool");
    (void)zfs_error(hdl, EZFS_NOENT, errbuf);
    return NULL;
  }
  return pool_handle(hdl, pool);
}

zpool_handle_t *zpool_open(libzfs_handle_t *hdl, const char *pool) { return zpool_open_canfail(hdl, pool); }

void zpool_close(zpool_handle_t *zhp) { free(zhp); }

const char *zpool_get_name(zpool_handle_t *zhp) { return zhp->name; }

int zpool_get_state(zpool_handle_t *zhp) {
  (void)zhp;
  return 0; /* POOL_STATE_ACTIVE */
}

int zpool_iter(libzfs_handle_t *hdl, zpool_iter_f func, void *data) {
  int lk = zlock();
  if (lk < 0) return state_error(hdl, "cannot iterate pools");
  size_t n = 0;
  pool_t *pools = pools_load(&n);
  zunlock(lk);
  if (pools == NULL) return state_error(hdl, "cannot iterate pools");
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    zpool_handle_t *zhp = pool_handle(hdl, pools[i].name);
    rc = zhp != NULL ? func(zhp, data) : -1;
  }
  free(pools);
  return rc;
}

/* Size figures of a pool; -1 if it is gone. */
static int pool_figures(const char *name, pool_t *p, uint64_t *alloc) {
  int lk = zlock();
  if (lk < 0) return -1;
  int rc = pool_find(name, p);
  if (rc == 0) *alloc = FAKE_DS_BYTES * ds_count(name);
  zunlock(lk);
  return rc;
}

uint64_t zpool_get_prop_int(zpool_handle_t *zhp, zpool_prop_t prop, zprop_source_t *src) {
  pool_t p;
  uint64_t alloc = 0;
  if (src) *src = ZPROP_SRC_NONE;
  if (pool_figures(zhp->name, &p, &alloc) != 0) return 0;
  if (alloc > p.size) alloc = p.size;
  switch (prop) {
    case ZPOOL_PROP_SIZE: return p.size;
    case ZPOOL_PROP_ALLOCATED: return alloc;
    case ZPOOL_PROP_FREE: return p.size - alloc;
    case ZPOOL_PROP_CAPACITY: return p.size != 0 ? alloc * 100 / p.size : 0;
    case ZPOOL_PROP_GUID: return p.guid;
    default: return 0;
  }
}

int zpool_get_prop(zpool_handle_t *zhp, zpool_prop_t prop, char *buf, size_t len, zprop_source_t *src,
                   boolean_t literal) {
  pool_t p;
  uint64_t alloc = 0;
  if (src) *src = ZPROP_SRC_NONE;
  if (buf == NULL || len == 0 || pool_figures(zhp->name, &p, &alloc) != 0) return -1;
  if (alloc > p.size) alloc = p.size;
  uint64_t v;
  switch (prop) {
    case ZPOOL_PROP_NAME: (void)snprintf(buf, len, "%s", p.name); return 0;
    case ZPOOL_PROP_HEALTH: (void)snprintf(buf, len, "%s", p.health); return 0;
    case ZPOOL_PROP_GUID: (void)snprintf(buf, len, "%llu", (unsigned long long)p.guid); return 0;
    case ZPOOL_PROP_ALTROOT: (void)snprintf(buf, len, "-"); return 0;
    case ZPOOL_PROP_CAPACITY:
      v = p.size != 0 ? alloc * 100 / p.size : 0;
      (void)snprintf(buf, len, literal ? "%llu" : "%llu%%", (unsigned long long)v);
      return 0;
    case ZPOOL_PROP_SIZE: v = p.size; break;
    case ZPOOL_PROP_ALLOCATED: v = alloc; break;
    case ZPOOL_PROP_FREE: v = p.size - alloc; break;
    default: return -1;
  }
  if (literal) (void)snprintf(buf, len, "%llu", (unsigned long long)v);
  else zfs_nicenum(v, buf, len);
  return 0;
}
