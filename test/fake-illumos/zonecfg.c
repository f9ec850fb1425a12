/*
 * Fake libzonecfg.so.1: the symbols, prototypes, struct layouts and error semantics of
 * illumos-gate's libzonecfg (usr/src/head/libzonecfg.h, usr/src/lib/libzonecfg/common/
 * libzonecfg.c) for the calls the addon makes, keeping its state under
 * $FAKE_ILLUMOS_STATE/zones/ instead of /etc/zones and the kernel (see common.h and
 * the illumos-gate headers, as native/abi/ declares them). zonecfg_notify_bind/unbind live in
 * zonecfg_notify.c, linked into the same library.
 *
 * State (all files replaced atomically with fake_write_file, so readers never lock; writers
 * take fake_lock() around each read-modify-write, since the fake zoneadm is another process):
 *
 *   zones/index        like /etc/zones/index: one "name:state:path:uuid" line per zone, the
 *                      first one "global:installed:/:"; state is configured|incomplete|
 *                      installed; name and path are percent-encoded (so ':' never appears in
 *                      a field); uuid is 8-4-4-4-12 hex or empty (set by zoneadm install).
 *   zones/<name>.cfg   the configuration (the /etc/zones/<name>.xml of the real library), one
 *                      element per line, attributes as key=value with percent-encoded values:
 *                        zone name=.. zonepath=.. autoboot=true|false brand=.. ip-type=..
 *                        net address=.. allowed-address=.. physical=.. defrouter=..
 *                        device match=..
 *                        dataset name=..
 *                        fs special=.. raw=.. dir=.. type=.. option=.. option=.. (in order)
 *   zones/kernel       the fake kernel's zone table, kept by the fake zoneadm:
 *                        "nextid N" then one "zone <name> <id> <status>" line per zone that
 *                        exists in the kernel; status is ready|running|shutting_down|down.
 *
 * A missing index reads as just the global zone. zone_get_state asks the kernel table first,
 * then the index, like the real one. The fake zoneadm and zlogin #include this file (the real
 * ones link libzonecfg) and use the *_locked helpers under one fake_lock().
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- types and constants (illumos amd64; checked like native/abi/zonecfg.h) ---------------- */

typedef enum { B_FALSE = 0, B_TRUE = 1 } boolean_t;
typedef int32_t zoneid_t;
typedef unsigned int uint_t;
typedef unsigned char uuid_t[16];

#define ZONENAME_MAX 64
#define ZC_MAXPATHLEN 1024
#define ZC_MAXNAMELEN 256
#define ZC_LIFNAMSIZ 32
#define ZC_INET6_ADDRSTRLEN 46
#define ZC_FSTYPSZ 16
#define ZC_MAX_MNTOPT_STR 1024
#define GLOBAL_ZONENAME "global"
#define DEFAULT_BRAND "ipkg" /* what SUNWdefault names on Helios/OmniOS */

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
#define Z_SYSTEM 28
#define Z_INSUFFICIENT_SPEC 29
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
#define Z_INVALID_PROPERTY 50

typedef uint_t zone_state_t;
#define ZONE_STATE_CONFIGURED 0
#define ZONE_STATE_INCOMPLETE 1
#define ZONE_STATE_INSTALLED 2
#define ZONE_STATE_READY 3
#define ZONE_STATE_RUNNING 4
#define ZONE_STATE_SHUTTING_DOWN 5
#define ZONE_STATE_DOWN 6
#define ZONE_STATE_MOUNTED 7

typedef enum zone_iptype { ZS_SHARED, ZS_EXCLUSIVE } zone_iptype_t;

struct zoneent {
  char zone_name[ZONENAME_MAX];
  int zone_state;
  char zone_path[ZC_MAXPATHLEN];
  uuid_t zone_uuid;
  char zone_newname[ZONENAME_MAX];
};

typedef struct zone_fsopt {
  struct zone_fsopt *zone_fsopt_next;
  char zone_fsopt_opt[ZC_MAX_MNTOPT_STR];
} zone_fsopt_t;

struct zone_fstab {
  char zone_fs_special[ZC_MAXPATHLEN];
  char zone_fs_dir[ZC_MAXPATHLEN];
  char zone_fs_type[ZC_FSTYPSZ];
  zone_fsopt_t *zone_fs_options;
  char zone_fs_raw[ZC_MAXPATHLEN];
};

struct zone_nwiftab {
  char zone_nwif_address[ZC_INET6_ADDRSTRLEN];
  char zone_nwif_allowed_address[ZC_INET6_ADDRSTRLEN];
  char zone_nwif_physical[ZC_LIFNAMSIZ];
  char zone_nwif_defrouter[ZC_INET6_ADDRSTRLEN];
};

struct zone_devtab {
  char zone_dev_match[ZC_MAXPATHLEN];
};

struct zone_dstab {
  char zone_dataset_name[ZC_MAXNAMELEN];
};

_Static_assert(sizeof(boolean_t) == 4, "boolean_t is int-sized");
_Static_assert(sizeof(zone_iptype_t) == 4, "zone_iptype_t is int-sized");
_Static_assert(sizeof(struct zoneent) == 1172, "struct zoneent is 1172 bytes");
_Static_assert(sizeof(zone_fsopt_t) == 1032, "zone_fsopt_t is 1032 bytes");
_Static_assert(sizeof(struct zone_fstab) == 3096, "struct zone_fstab is 3096 bytes");
_Static_assert(offsetof(struct zone_fstab, zone_fs_options) == 2064, "zone_fs_options @2064");
_Static_assert(sizeof(struct zone_nwiftab) == 170, "struct zone_nwiftab is 170 bytes");
_Static_assert(sizeof(struct zone_devtab) == 1024, "struct zone_devtab is 1024 bytes");
_Static_assert(sizeof(struct zone_dstab) == 256, "struct zone_dstab is 256 bytes");

/* The exported prototypes, exactly as libzonecfg.h has them. */
typedef struct zone_dochandle *zone_dochandle_t;
zone_dochandle_t zonecfg_init_handle(void);
void zonecfg_fini_handle(zone_dochandle_t);
int zonecfg_check_handle(zone_dochandle_t);
int zonecfg_get_handle(const char *, zone_dochandle_t);
int zonecfg_get_template_handle(const char *, const char *, zone_dochandle_t);
int zonecfg_save(zone_dochandle_t);
int zonecfg_destroy(const char *, boolean_t);
char *zonecfg_strerror(int);
int zonecfg_validate_zonename(const char *);
int zonecfg_get_name(zone_dochandle_t, char *, size_t);
int zonecfg_get_zonepath(zone_dochandle_t, char *, size_t);
int zonecfg_set_zonepath(zone_dochandle_t, char *);
int zonecfg_get_brand(zone_dochandle_t, char *, size_t);
int zonecfg_set_brand(zone_dochandle_t, char *);
int zonecfg_get_autoboot(zone_dochandle_t, boolean_t *);
int zonecfg_set_autoboot(zone_dochandle_t, boolean_t);
int zonecfg_get_iptype(zone_dochandle_t, zone_iptype_t *);
int zonecfg_set_iptype(zone_dochandle_t, zone_iptype_t);
int zonecfg_add_nwif(zone_dochandle_t, struct zone_nwiftab *);
int zonecfg_add_dev(zone_dochandle_t, struct zone_devtab *);
int zonecfg_add_ds(zone_dochandle_t, struct zone_dstab *);
int zonecfg_add_filesystem(zone_dochandle_t, struct zone_fstab *);
int zonecfg_add_fs_option(struct zone_fstab *, char *);
void zonecfg_free_fs_option_list(zone_fsopt_t *);
int zonecfg_setnwifent(zone_dochandle_t);
int zonecfg_getnwifent(zone_dochandle_t, struct zone_nwiftab *);
int zonecfg_endnwifent(zone_dochandle_t);
int zonecfg_setdevent(zone_dochandle_t);
int zonecfg_getdevent(zone_dochandle_t, struct zone_devtab *);
int zonecfg_enddevent(zone_dochandle_t);
int zonecfg_setdsent(zone_dochandle_t);
int zonecfg_getdsent(zone_dochandle_t, struct zone_dstab *);
int zonecfg_enddsent(zone_dochandle_t);
int zonecfg_setfsent(zone_dochandle_t);
int zonecfg_getfsent(zone_dochandle_t, struct zone_fstab *);
int zonecfg_endfsent(zone_dochandle_t);
FILE *setzoneent(void);
char *getzoneent(FILE *);
struct zoneent *getzoneent_private(FILE *);
void endzoneent(FILE *);
int zone_get_state(char *, zone_state_t *);
int zone_set_state(char *, zone_state_t);
char *zone_state_str(zone_state_t);
int zone_get_zonepath(char *, char *, size_t);
int zone_get_brand(char *, char *, size_t);

/* ---- encoding -------------------------------------------------------------------------------- */

static int needs_escape(unsigned char c) {
  return c <= 0x20 || c >= 0x7f || c == '%' || c == '=' || c == ':' || c == '#';
}

/* Appends the percent-encoding of s to a growable buffer. Returns 0 or -1 (ENOMEM). */
struct sbuf {
  char *data;
  size_t len, cap;
};

static int sb_put(struct sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap == 0 ? 256 : b->cap;
    while (b->len + n + 1 > cap) cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static int sb_str(struct sbuf *b, const char *s) { return sb_put(b, s, strlen(s)); }

static int sb_enc(struct sbuf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
    if (needs_escape(*p)) {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 0xf]};
      if (sb_put(b, e, 3) != 0) return -1;
    } else if (sb_put(b, (const char *)p, 1) != 0) {
      return -1;
    }
  }
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes [s, s+n) into a malloc'd string; NULL on bad encoding, an embedded NUL, or ENOMEM. */
static char *dec_dup(const char *s, size_t n) {
  char *out = malloc(n + 1);
  if (out == NULL) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      if (i + 2 >= n) { /* need two more characters */
        free(out);
        return NULL;
      }
      int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
        free(out);
        return NULL;
      }
      out[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = '\0';
  return out;
}

/* Decodes into a fixed buffer; -1 if it does not fit or is malformed. */
static int dec_into(char *dst, size_t cap, const char *s, size_t n) {
  char *v = dec_dup(s, n);
  if (v == NULL) return -1;
  size_t len = strlen(v);
  if (len >= cap) {
    free(v);
    return -1;
  }
  memcpy(dst, v, len + 1);
  free(v);
  return 0;
}

/* Bounded strlen of a caller's fixed-size field; -1 if it is not NUL-terminated. */
static int field_ok(const char *f, size_t cap) { return memchr(f, '\0', cap) != NULL ? 0 : -1; }

/* ---- the document handle -------------------------------------------------------------------- */

struct fsent {
  struct zone_fstab tab; /* tab.zone_fs_options owned by the handle */
};

struct zone_dochandle {
  int loaded;       /* a document is present (zonecfg_check_handle) */
  int newzone;      /* from a template: saving adds (or overwrites) the index entry */
  char *name, *zonepath, *brand, *autoboot, *iptype; /* root attributes; NULL = absent */
  struct zone_nwiftab *nets;
  size_t nnets;
  struct zone_devtab *devs;
  size_t ndevs;
  struct zone_dstab *dss;
  size_t ndss;
  struct fsent *fss;
  size_t nfss;
  int cursor_valid; /* set*ent was called and the iteration has not ended */
  size_t cursor;
};

static void doc_clear(zone_dochandle_t h) {
  free(h->name);
  free(h->zonepath);
  free(h->brand);
  free(h->autoboot);
  free(h->iptype);
  free(h->nets);
  free(h->devs);
  free(h->dss);
  for (size_t i = 0; i < h->nfss; i++) zonecfg_free_fs_option_list(h->fss[i].tab.zone_fs_options);
  free(h->fss);
  memset(h, 0, sizeof(*h));
}

zone_dochandle_t zonecfg_init_handle(void) {
  zone_dochandle_t h = calloc(1, sizeof(*h));
  if (h == NULL) errno = Z_NOMEM; /* a Z_ value, as the real one does */
  return h;
}

int zonecfg_check_handle(zone_dochandle_t h) { return (h == NULL || !h->loaded) ? Z_BAD_HANDLE : Z_OK; }

void zonecfg_fini_handle(zone_dochandle_t h) {
  if (h == NULL) return;
  doc_clear(h);
  free(h);
}

static int set_attr(char **slot, const char *value) {
  char *v = value != NULL ? strdup(value) : NULL;
  if (value != NULL && v == NULL) return Z_NOMEM;
  free(*slot);
  *slot = v;
  return Z_OK;
}

/* getrootattr + fetchprop: Z_BAD_PROPERTY when absent, Z_TOO_BIG when it does not fit. */
static int get_attr(zone_dochandle_t h, const char *value, char *buf, size_t len) {
  if (zonecfg_check_handle(h) != Z_OK) return Z_BAD_HANDLE;
  if (value == NULL) return Z_BAD_PROPERTY;
  if (len == 0) return Z_TOO_BIG;
  size_t n = strlen(value);
  if (n >= len) {
    memcpy(buf, value, len - 1);
    buf[len - 1] = '\0';
    return Z_TOO_BIG;
  }
  memcpy(buf, value, n + 1);
  return Z_OK;
}

/* ---- paths ---------------------------------------------------------------------------------- */

/* "<state>/zones/<name>.cfg"; -1 if the name cannot be a file name here or the path is too long. */
static int cfg_path(char *buf, size_t len, const char *name) {
  if (name == NULL || name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL) return -1;
  char file[ZC_MAXPATHLEN];
  int n = snprintf(file, sizeof(file), "%s.cfg", name);
  if (n < 0 || (size_t)n >= sizeof(file)) return -1;
  return fake_path(buf, len, "zones", file);
}

/* ---- the configuration file ------------------------------------------------------------------ */

static int doc_write(zone_dochandle_t h, const char *path) {
  struct sbuf b = {0};
  int bad = 0;
  bad |= sb_str(&b, "# fake libzonecfg configuration; DO NOT EDIT (see test/fake-illumos/zonecfg.c)\nzone name=");
  bad |= sb_enc(&b, h->name != NULL ? h->name : "");
  bad |= sb_str(&b, " zonepath=");
  bad |= sb_enc(&b, h->zonepath != NULL ? h->zonepath : "");
  bad |= sb_str(&b, " autoboot=");
  bad |= sb_enc(&b, h->autoboot != NULL ? h->autoboot : "false");
  if (h->brand != NULL) {
    bad |= sb_str(&b, " brand=");
    bad |= sb_enc(&b, h->brand);
  }
  if (h->iptype != NULL) {
    bad |= sb_str(&b, " ip-type=");
    bad |= sb_enc(&b, h->iptype);
  }
  bad |= sb_str(&b, "\n");
  for (size_t i = 0; i < h->nnets; i++) {
    bad |= sb_str(&b, "net address=");
    bad |= sb_enc(&b, h->nets[i].zone_nwif_address);
    bad |= sb_str(&b, " allowed-address=");
    bad |= sb_enc(&b, h->nets[i].zone_nwif_allowed_address);
    bad |= sb_str(&b, " physical=");
    bad |= sb_enc(&b, h->nets[i].zone_nwif_physical);
    bad |= sb_str(&b, " defrouter=");
    bad |= sb_enc(&b, h->nets[i].zone_nwif_defrouter);
    bad |= sb_str(&b, "\n");
  }
  for (size_t i = 0; i < h->ndevs; i++) {
    bad |= sb_str(&b, "device match=");
    bad |= sb_enc(&b, h->devs[i].zone_dev_match);
    bad |= sb_str(&b, "\n");
  }
  for (size_t i = 0; i < h->ndss; i++) {
    bad |= sb_str(&b, "dataset name=");
    bad |= sb_enc(&b, h->dss[i].zone_dataset_name);
    bad |= sb_str(&b, "\n");
  }
  for (size_t i = 0; i < h->nfss; i++) {
    const struct zone_fstab *t = &h->fss[i].tab;
    bad |= sb_str(&b, "fs special=");
    bad |= sb_enc(&b, t->zone_fs_special);
    bad |= sb_str(&b, " raw=");
    bad |= sb_enc(&b, t->zone_fs_raw);
    bad |= sb_str(&b, " dir=");
    bad |= sb_enc(&b, t->zone_fs_dir);
    bad |= sb_str(&b, " type=");
    bad |= sb_enc(&b, t->zone_fs_type);
    for (const zone_fsopt_t *o = t->zone_fs_options; o != NULL; o = o->zone_fsopt_next) {
      bad |= sb_str(&b, " option=");
      bad |= sb_enc(&b, o->zone_fsopt_opt);
    }
    bad |= sb_str(&b, "\n");
  }
  if (bad) {
    free(b.data);
    return Z_NOMEM;
  }
  int rc = fake_write_file(path, b.data, b.len) == 0 ? Z_OK : (errno == EACCES ? Z_ACCES : Z_SAVING_FILE);
  free(b.data);
  return rc;
}

/* Finds "key=" among the space-separated attributes of a line; sets [*v, *v+*n). */
static int find_attr(const char *line, const char *key, const char **v, size_t *n) {
  size_t klen = strlen(key);
  const char *p = line;
  while (*p != '\0') {
    while (*p == ' ') p++;
    const char *end = p + strcspn(p, " ");
    if ((size_t)(end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
      *v = p + klen + 1;
      *n = (size_t)(end - *v);
      return 0;
    }
    p = end;
  }
  return -1;
}

static int attr_into(const char *line, const char *key, char *dst, size_t cap) {
  const char *v;
  size_t n;
  if (find_attr(line, key, &v, &n) != 0) {
    dst[0] = '\0'; /* the DTD's default for every optional attribute is "" */
    return 0;
  }
  return dec_into(dst, cap, v, n);
}

static int attr_dup(const char *line, const char *key, char **out) {
  const char *v;
  size_t n;
  *out = NULL;
  if (find_attr(line, key, &v, &n) != 0) return 0;
  *out = dec_dup(v, n);
  return *out == NULL ? -1 : 0;
}

#define GROW(arr, count)                                                 \
  do {                                                                   \
    void *grown_ = realloc((arr), ((count) + 1) * sizeof(*(arr)));      \
    if (grown_ == NULL) return Z_NOMEM;                                  \
    (arr) = grown_;                                                      \
    memset(&(arr)[(count)], 0, sizeof(*(arr)));                         \
  } while (0)

static int doc_parse_line(zone_dochandle_t h, char *line, int *seen_zone) {
  if (line[0] == '\0' || line[0] == '#') return Z_OK;
  if (strncmp(line, "zone ", 5) == 0) {
    if (attr_dup(line, "name", &h->name) != 0 || attr_dup(line, "zonepath", &h->zonepath) != 0 ||
        attr_dup(line, "autoboot", &h->autoboot) != 0 || attr_dup(line, "brand", &h->brand) != 0 ||
        attr_dup(line, "ip-type", &h->iptype) != 0)
      return Z_INVALID_DOCUMENT;
    if (h->name == NULL) return Z_INVALID_DOCUMENT;
    *seen_zone = 1;
    return Z_OK;
  }
  if (strncmp(line, "net ", 4) == 0) {
    GROW(h->nets, h->nnets);
    struct zone_nwiftab *t = &h->nets[h->nnets];
    if (attr_into(line, "address", t->zone_nwif_address, sizeof(t->zone_nwif_address)) != 0 ||
        attr_into(line, "allowed-address", t->zone_nwif_allowed_address, sizeof(t->zone_nwif_allowed_address)) != 0 ||
        attr_into(line, "physical", t->zone_nwif_physical, sizeof(t->zone_nwif_physical)) != 0 ||
        attr_into(line, "defrouter", t->zone_nwif_defrouter, sizeof(t->zone_nwif_defrouter)) != 0)
      return Z_INVALID_DOCUMENT;
    h->nnets++;
    return Z_OK;
  }
  if (strncmp(line, "device ", 7) == 0) {
    GROW(h->devs, h->ndevs);
    if (attr_into(line, "match", h->devs[h->ndevs].zone_dev_match, sizeof(h->devs[0].zone_dev_match)) != 0)
      return Z_INVALID_DOCUMENT;
    h->ndevs++;
    return Z_OK;
  }
  if (strncmp(line, "dataset ", 8) == 0) {
    GROW(h->dss, h->ndss);
    if (attr_into(line, "name", h->dss[h->ndss].zone_dataset_name, sizeof(h->dss[0].zone_dataset_name)) != 0)
      return Z_INVALID_DOCUMENT;
    h->ndss++;
    return Z_OK;
  }
  if (strncmp(line, "fs ", 3) == 0) {
    GROW(h->fss, h->nfss);
    struct zone_fstab *t = &h->fss[h->nfss].tab;
    h->nfss++; /* counted now, so doc_clear frees a partly read option list */
    if (attr_into(line, "special", t->zone_fs_special, sizeof(t->zone_fs_special)) != 0 ||
        attr_into(line, "raw", t->zone_fs_raw, sizeof(t->zone_fs_raw)) != 0 ||
        attr_into(line, "dir", t->zone_fs_dir, sizeof(t->zone_fs_dir)) != 0 ||
        attr_into(line, "type", t->zone_fs_type, sizeof(t->zone_fs_type)) != 0)
      return Z_INVALID_DOCUMENT;
    /* every "option=" attribute, in order (an option may be empty) */
    for (const char *p = line; *p != '\0';) {
      while (*p == ' ') p++;
      const char *end = p + strcspn(p, " ");
      if (strncmp(p, "option=", 7) == 0) {
        char opt[ZC_MAX_MNTOPT_STR];
        if (dec_into(opt, sizeof(opt), p + 7, (size_t)(end - p - 7)) != 0) return Z_INVALID_DOCUMENT;
        if (zonecfg_add_fs_option(t, opt) != Z_OK) return Z_NOMEM;
      }
      p = end;
    }
    return Z_OK;
  }
  return Z_INVALID_DOCUMENT;
}

/* Loads "<state>/zones/<name>.cfg" into h: Z_NO_ZONE if absent, Z_INVALID_DOCUMENT if garbled. */
static int doc_read(zone_dochandle_t h, const char *name) {
  char path[4096];
  if (cfg_path(path, sizeof(path), name) != 0) return Z_NO_ZONE;
  size_t len = 0;
  char *text = fake_read_file(path, &len);
  if (text == NULL) return errno == ENOENT ? Z_NO_ZONE : (errno == EACCES ? Z_ACCES : Z_MISC_FS);
  doc_clear(h);
  int rc = Z_OK, seen_zone = 0;
  if (memchr(text, '\0', len) != NULL) rc = Z_INVALID_DOCUMENT;
  for (char *line = text; rc == Z_OK && line != NULL && *line != '\0';) {
    char *nl = strchr(line, '\n');
    if (nl != NULL) *nl = '\0';
    rc = doc_parse_line(h, line, &seen_zone);
    line = nl != NULL ? nl + 1 : NULL;
  }
  free(text);
  if (rc == Z_OK && !seen_zone) rc = Z_EMPTY_DOCUMENT;
  if (rc != Z_OK) {
    doc_clear(h);
    return rc;
  }
  h->loaded = 1;
  return Z_OK;
}

/* ---- the index ------------------------------------------------------------------------------- */

static const char *state_word(int st) {
  switch (st) {
    case ZONE_STATE_CONFIGURED: return "configured";
    case ZONE_STATE_INCOMPLETE: return "incomplete";
    case ZONE_STATE_INSTALLED: return "installed";
    default: return NULL;
  }
}

static int parse_uuid(const char *s, uuid_t out) {
  memset(out, 0, sizeof(uuid_t));
  if (s[0] == '\0') return 0;
  int k = 0;
  for (const char *p = s; *p != '\0'; p++) {
    if (*p == '-') continue;
    int hi = hexval(p[0]), lo = p[1] != '\0' ? hexval(p[1]) : -1;
    if (hi < 0 || lo < 0 || k >= 16) return -1;
    out[k++] = (unsigned char)(hi * 16 + lo);
    p++;
  }
  return k == 16 ? 0 : -1;
}

static void format_uuid(const uuid_t u, char out[37]) {
  int zero = 1;
  for (int i = 0; i < 16; i++) zero = zero && u[i] == 0;
  out[0] = '\0';
  if (zero) return;
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
           u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* One index line into *ze; -1 if malformed (such lines are skipped, as the real parser does). */
static int index_parse_line(char *line, struct zoneent *ze) {
  memset(ze, 0, sizeof(*ze));
  char *f[4] = {0};
  int nf = 0;
  for (char *p = line; nf < 4;) {
    f[nf++] = p;
    char *c = strchr(p, ':');
    if (c == NULL) break;
    *c = '\0';
    p = c + 1;
  }
  if (nf < 3) return -1;
  if (dec_into(ze->zone_name, sizeof(ze->zone_name), f[0], strlen(f[0])) != 0) return -1;
  if (strcmp(f[1], "configured") == 0) ze->zone_state = ZONE_STATE_CONFIGURED;
  else if (strcmp(f[1], "incomplete") == 0) ze->zone_state = ZONE_STATE_INCOMPLETE;
  else if (strcmp(f[1], "installed") == 0) ze->zone_state = ZONE_STATE_INSTALLED;
  else return -1;
  if (dec_into(ze->zone_path, sizeof(ze->zone_path), f[2], strlen(f[2])) != 0) return -1;
  if (nf == 4 && parse_uuid(f[3], ze->zone_uuid) != 0) return -1;
  return 0;
}

static const char default_index[] = "global:installed:/:\n";

static int index_path(char *buf, size_t len) { return fake_path(buf, len, "zones", "index"); }

/* The whole index (including global); *n entries in a malloc'd array. */
static int index_read(struct zoneent **out, size_t *n) {
  *out = NULL;
  *n = 0;
  char path[4096];
  if (index_path(path, sizeof(path)) != 0) return Z_MISC_FS;
  char *text = fake_read_file(path, NULL);
  if (text == NULL) {
    if (errno != ENOENT) return Z_MISC_FS;
    text = strdup(default_index);
    if (text == NULL) return Z_NOMEM;
  }
  int rc = Z_OK;
  for (char *line = text; line != NULL && *line != '\0';) {
    char *nl = strchr(line, '\n');
    if (nl != NULL) *nl = '\0';
    struct zoneent ze;
    if (index_parse_line(line, &ze) == 0) {
      struct zoneent *grown = realloc(*out, (*n + 1) * sizeof(**out));
      if (grown == NULL) {
        rc = Z_NOMEM;
        break;
      }
      *out = grown;
      (*out)[(*n)++] = ze;
    }
    line = nl != NULL ? nl + 1 : NULL;
  }
  free(text);
  if (rc != Z_OK) {
    free(*out);
    *out = NULL;
    *n = 0;
  }
  return rc;
}

static int index_write(const struct zoneent *zes, size_t n) {
  char path[4096];
  if (fake_mkdir("zones") != 0 || index_path(path, sizeof(path)) != 0) return Z_UPDATING_INDEX;
  struct sbuf b = {0};
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    char uuid[37];
    format_uuid(zes[i].zone_uuid, uuid);
    const char *st = state_word(zes[i].zone_state);
    bad |= sb_enc(&b, zes[i].zone_name);
    bad |= sb_str(&b, ":");
    bad |= sb_str(&b, st != NULL ? st : "configured");
    bad |= sb_str(&b, ":");
    bad |= sb_enc(&b, zes[i].zone_path);
    bad |= sb_str(&b, ":");
    bad |= sb_str(&b, uuid);
    bad |= sb_str(&b, "\n");
  }
  if (bad) {
    free(b.data);
    return Z_NOMEM;
  }
  int rc = fake_write_file(path, b.data != NULL ? b.data : "", b.len) == 0 ? Z_OK : Z_UPDATING_INDEX;
  free(b.data);
  return rc;
}

enum { PZE_ADD, PZE_MODIFY, PZE_REMOVE };

/*
 * putzoneent (the real one is private to libzonecfg): with the fake lock held. A negative
 * ze->zone_state and an empty path mean "keep the existing one", as in the real index code.
 */
static int index_put_locked(const struct zoneent *ze, int op) {
  struct zoneent *zes;
  size_t n;
  int rc = index_read(&zes, &n);
  if (rc != Z_OK) return rc;
  size_t i = 0;
  for (; i < n && strcmp(zes[i].zone_name, ze->zone_name) != 0; i++) {
  }
  if (op == PZE_REMOVE) {
    if (i < n) {
      memmove(&zes[i], &zes[i + 1], (n - i - 1) * sizeof(*zes));
      n--;
    }
  } else if (i == n) {
    if (op == PZE_MODIFY) {
      free(zes);
      return Z_UPDATING_INDEX;
    }
    struct zoneent *grown = realloc(zes, (n + 1) * sizeof(*zes));
    if (grown == NULL) {
      free(zes);
      return Z_NOMEM;
    }
    zes = grown;
    zes[n] = *ze;
    if (zes[n].zone_state < 0) zes[n].zone_state = ZONE_STATE_CONFIGURED;
    n++;
  } else {
    if (ze->zone_state >= 0) zes[i].zone_state = ze->zone_state;
    if (ze->zone_path[0] != '\0') memcpy(zes[i].zone_path, ze->zone_path, sizeof(ze->zone_path));
  }
  rc = index_write(zes, n);
  free(zes);
  return rc;
}

/* For the fake zoneadm: set (or clear, with NULL) a zone's uuid, lock held. */
__attribute__((unused)) static int index_set_uuid_locked(const char *name, const uuid_t uuid) {
  struct zoneent *zes;
  size_t n;
  int rc = index_read(&zes, &n);
  if (rc != Z_OK) return rc;
  rc = Z_NO_ZONE;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(zes[i].zone_name, name) != 0) continue;
    if (uuid != NULL) memcpy(zes[i].zone_uuid, uuid, sizeof(uuid_t));
    else memset(zes[i].zone_uuid, 0, sizeof(uuid_t));
    rc = index_write(zes, n);
    break;
  }
  free(zes);
  return rc;
}

/* The index entry for name: Z_OK and *out, or Z_NO_ZONE. */
static int index_lookup(const char *name, struct zoneent *out) {
  struct zoneent *zes;
  size_t n;
  int rc = index_read(&zes, &n);
  if (rc != Z_OK) return rc;
  rc = Z_NO_ZONE;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(zes[i].zone_name, name) == 0) {
      *out = zes[i];
      rc = Z_OK;
      break;
    }
  }
  free(zes);
  return rc;
}

/* ---- the fake kernel's zone table ----------------------------------------------------------- */

struct kzone {
  char name[ZONENAME_MAX];
  int id;
  char status[16]; /* ready | running | shutting_down | down */
};

static int kernel_path(char *buf, size_t len) { return fake_path(buf, len, "zones", "kernel"); }

static int kernel_read(struct kzone **out, size_t *n, int *nextid) {
  *out = NULL;
  *n = 0;
  *nextid = 1;
  char path[4096];
  if (kernel_path(path, sizeof(path)) != 0) return -1;
  char *text = fake_read_file(path, NULL);
  if (text == NULL) return errno == ENOENT ? 0 : -1;
  for (char *line = text; line != NULL && *line != '\0';) {
    char *nl = strchr(line, '\n');
    if (nl != NULL) *nl = '\0';
    char enc[3 * ZONENAME_MAX + 1], status[16];
    int id;
    if (sscanf(line, "nextid %d", &id) == 1) {
      *nextid = id;
    } else if (sscanf(line, "zone %192s %d %15s", enc, &id, status) == 3) {
      struct kzone kz;
      memset(&kz, 0, sizeof(kz));
      if (dec_into(kz.name, sizeof(kz.name), enc, strlen(enc)) == 0) {
        kz.id = id;
        memcpy(kz.status, status, sizeof(kz.status));
        struct kzone *grown = realloc(*out, (*n + 1) * sizeof(**out));
        if (grown == NULL) {
          free(text);
          free(*out);
          *out = NULL;
          *n = 0;
          return -1;
        }
        *out = grown;
        (*out)[(*n)++] = kz;
      }
    }
    line = nl != NULL ? nl + 1 : NULL;
  }
  free(text);
  return 0;
}

__attribute__((unused)) static int kernel_write(const struct kzone *kz, size_t n, int nextid) {
  char path[4096];
  if (fake_mkdir("zones") != 0 || kernel_path(path, sizeof(path)) != 0) return -1;
  struct sbuf b = {0};
  char num[64];
  snprintf(num, sizeof(num), "nextid %d\n", nextid);
  int bad = sb_str(&b, num);
  for (size_t i = 0; i < n; i++) {
    bad |= sb_str(&b, "zone ");
    bad |= sb_enc(&b, kz[i].name);
    snprintf(num, sizeof(num), " %d %s\n", kz[i].id, kz[i].status);
    bad |= sb_str(&b, num);
  }
  int rc = bad ? -1 : fake_write_file(path, b.data, b.len);
  free(b.data);
  return rc;
}

/* The kernel's record of a zone: 1 and *out if it exists in the kernel, 0 if not. */
static int kernel_lookup(const char *name, struct kzone *out) {
  struct kzone *kz;
  size_t n;
  int nextid, found = 0;
  if (kernel_read(&kz, &n, &nextid) != 0) return 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(kz[i].name, name) == 0) {
      if (out != NULL) *out = kz[i];
      found = 1;
      break;
    }
  }
  free(kz);
  return found;
}

/* ---- zone names and errors ------------------------------------------------------------------- */

int zonecfg_validate_zonename(const char *zone) {
  if (zone == NULL) return Z_BOGUS_ZONE_NAME;
  if (strcmp(zone, GLOBAL_ZONENAME) == 0) return Z_BOGUS_ZONE_NAME;
  if (strlen(zone) >= ZONENAME_MAX) return Z_BOGUS_ZONE_NAME;
  /* not ctype(3C): locale-independent, as the real one */
  if (!((zone[0] >= 'a' && zone[0] <= 'z') || (zone[0] >= 'A' && zone[0] <= 'Z') || (zone[0] >= '0' && zone[0] <= '9')))
    return Z_BOGUS_ZONE_NAME;
  for (int i = 1; zone[i] != '\0'; i++) {
    char c = zone[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return Z_BOGUS_ZONE_NAME;
  }
  return Z_OK;
}

char *zonecfg_strerror(int errnum) {
  switch (errnum) {
    case Z_OK: return "OK";
    case Z_EMPTY_DOCUMENT: return "Empty document";
    case Z_WRONG_DOC_TYPE: return "Wrong document type";
    case Z_BAD_PROPERTY: return "Bad document property";
    case Z_TEMP_FILE: return "Problem creating temporary file";
    case Z_SAVING_FILE: return "Problem saving file";
    case Z_NO_ENTRY: return "No such entry";
    case Z_BOGUS_ZONE_NAME: return "Bogus zone name";
    case Z_REQD_RESOURCE_MISSING: return "Required resource missing";
    case Z_REQD_PROPERTY_MISSING: return "Required property missing";
    case Z_BAD_HANDLE: return "Bad handle";
    case Z_NOMEM: return "Out of memory";
    case Z_INVAL: return "Invalid argument";
    case Z_ACCES: return "Permission denied";
    case Z_TOO_BIG: return "Argument list too long";
    case Z_MISC_FS: return "Miscellaneous file system error";
    case Z_NO_ZONE: return "No such zone configured";
    case Z_NO_RESOURCE_TYPE: return "No such resource type";
    case Z_NO_RESOURCE_ID: return "No such resource with that id";
    case Z_NO_PROPERTY_TYPE: return "No such property type";
    case Z_NO_PROPERTY_ID: return "No such property with that id";
    case Z_BAD_ZONE_STATE: return "Zone state is invalid for the requested operation";
    case Z_INVALID_DOCUMENT: return "Invalid document";
    case Z_NAME_IN_USE: return "Zone name already in use";
    case Z_NO_SUCH_ID: return "No such zone ID";
    case Z_UPDATING_INDEX: return "Problem updating index file";
    case Z_LOCKING_FILE: return "Locking index file";
    case Z_UNLOCKING_FILE: return "Unlocking index file";
    case Z_INSUFFICIENT_SPEC: return "Insufficient specification";
    case Z_RESOLVED_PATH: return "Resolved path mismatch";
    case Z_IPV6_ADDR_PREFIX_LEN: return "IPv6 address missing required prefix length";
    case Z_BOGUS_ADDRESS: return "Neither an IPv4 nor an IPv6 address nor a host name";
    case Z_PRIV_PROHIBITED: return "Specified privilege is prohibited";
    case Z_PRIV_REQUIRED: return "Required privilege is missing";
    case Z_PRIV_UNKNOWN: return "Specified privilege is unknown";
    case Z_BRAND_ERROR: return "Brand-specific error";
    case Z_INCOMPATIBLE: return "Incompatible settings";
    case Z_ALIAS_DISALLOW: return "An incompatible rctl already exists for this property";
    case Z_CLEAR_DISALLOW: return "Clearing this property is not allowed";
    case Z_POOL: return "libpool(3LIB) error";
    case Z_POOLS_NOT_ACTIVE: return "Pools facility not active; zone will not be bound to pool";
    case Z_POOL_ENABLE: return "Could not enable pools facility";
    case Z_NO_POOL: return "Pool not found; using default pool";
    case Z_POOL_CREATE: return "Could not create a temporary pool";
    case Z_POOL_BIND: return "Could not bind zone to pool";
    case Z_INVALID_PROPERTY: return "Specified property is invalid";
    case Z_SYSTEM: return strerror(errno);
    default: return "Unknown error";
  }
}

char *zone_state_str(zone_state_t state) {
  switch (state) {
    case ZONE_STATE_CONFIGURED: return "configured";
    case ZONE_STATE_INCOMPLETE: return "incomplete";
    case ZONE_STATE_INSTALLED: return "installed";
    case ZONE_STATE_READY: return "ready";
    case ZONE_STATE_MOUNTED: return "mounted";
    case ZONE_STATE_RUNNING: return "running";
    case ZONE_STATE_SHUTTING_DOWN: return "shutting_down";
    case ZONE_STATE_DOWN: return "down";
    default: return "unknown";
  }
}

/* ---- handles ---------------------------------------------------------------------------------- */

int zonecfg_get_handle(const char *zonename, zone_dochandle_t h) {
  if (h == NULL) return Z_BAD_HANDLE;
  if (zonename == NULL) return Z_NO_ZONE;
  h->newzone = 0;
  return doc_read(h, zonename);
}

int zonecfg_get_template_handle(const char *template, const char *zonename, zone_dochandle_t h) {
  if (h == NULL || template == NULL) return Z_INVAL;
  /* /etc/zones/SUNWblank.xml and SUNWdefault.xml, built in; any other template is a zone's cfg */
  if (strcmp(template, "SUNWblank") == 0 || strcmp(template, "SUNWdefault") == 0) {
    doc_clear(h);
    if (set_attr(&h->name, template) != Z_OK || set_attr(&h->zonepath, "") != Z_OK ||
        set_attr(&h->autoboot, "false") != Z_OK ||
        (strcmp(template, "SUNWdefault") == 0 && set_attr(&h->brand, DEFAULT_BRAND) != Z_OK)) {
      doc_clear(h);
      return Z_NOMEM;
    }
    h->loaded = 1;
  } else {
    int rc = doc_read(h, template);
    if (rc != Z_OK) return rc;
  }
  h->newzone = 1;
  /* setrootattr(DTD_ATTR_NAME, zonename): no validation here, exactly like the real one */
  return set_attr(&h->name, zonename != NULL ? zonename : "");
}

int zonecfg_get_name(zone_dochandle_t h, char *name, size_t len) { return get_attr(h, h != NULL ? h->name : NULL, name, len); }

int zonecfg_get_zonepath(zone_dochandle_t h, char *path, size_t len) {
  return get_attr(h, h != NULL ? h->zonepath : NULL, path, len);
}

int zonecfg_set_zonepath(zone_dochandle_t h, char *zonepath) {
  if (zonecfg_check_handle(h) != Z_OK) return Z_BAD_HANDLE;
  if (zonepath == NULL || zonepath[0] != '/') return Z_BAD_PROPERTY; /* zonecfg_root "" + '/' */
  return set_attr(&h->zonepath, zonepath);
}

int zonecfg_get_brand(zone_dochandle_t h, char *brand, size_t len) {
  if (zonecfg_check_handle(h) != Z_OK) return Z_BAD_HANDLE;
  /* an absent or empty brand is the default brand (zonecfg_default_brand) */
  const char *b = (h->brand != NULL && h->brand[0] != '\0') ? h->brand : DEFAULT_BRAND;
  return get_attr(h, b, brand, len);
}

int zonecfg_set_brand(zone_dochandle_t h, char *brand) {
  if (zonecfg_check_handle(h) != Z_OK) return Z_BAD_HANDLE;
  return set_attr(&h->brand, brand);
}

int zonecfg_get_autoboot(zone_dochandle_t h, boolean_t *autoboot) {
  char buf[6]; /* DTD_ENTITY_BOOL_LEN */
  int rc = get_attr(h, h != NULL ? h->autoboot : NULL, buf, sizeof(buf));
  if (rc != Z_OK) return rc;
  if (strcmp(buf, "true") == 0) *autoboot = B_TRUE;
  else if (strcmp(buf, "false") == 0) *autoboot = B_FALSE;
  else return Z_BAD_PROPERTY;
  return Z_OK;
}

int zonecfg_set_autoboot(zone_dochandle_t h, boolean_t autoboot) {
  if (zonecfg_check_handle(h) != Z_OK) return Z_BAD_HANDLE;
  return set_attr(&h->autoboot, autoboot ? "true" : "false");
}

int zonecfg_get_iptype(zone_dochandle_t h, zone_iptype_t *iptype) {
  if (zonecfg_check_handle(h) != Z_OK) return Z_BAD_HANDLE;
  if (h->iptype == NULL || h->iptype[0] == '\0' || strcmp(h->iptype, "shared") == 0) *iptype = ZS_SHARED;
  else if (strcmp(h->iptype, "exclusive") == 0) *iptype = ZS_EXCLUSIVE;
  else return Z_INVAL;
  return Z_OK;
}

int zonecfg_set_iptype(zone_dochandle_t h, zone_iptype_t iptype) {
  if (h == NULL) return Z_INVAL;
  if (!h->loaded) return Z_EMPTY_DOCUMENT;
  switch (iptype) {
    case ZS_SHARED: /* the default is not written */
      return set_attr(&h->iptype, NULL);
    case ZS_EXCLUSIVE:
      return set_attr(&h->iptype, "exclusive");
  }
  return Z_OK; /* other values: ignored, as the real switch does */
}

/* ---- resources --------------------------------------------------------------------------------- */

int zonecfg_add_nwif(zone_dochandle_t h, struct zone_nwiftab *tab) {
  if (tab == NULL) return Z_INVAL;
  if (zonecfg_check_handle(h) != Z_OK) return Z_BAD_HANDLE;
  if (field_ok(tab->zone_nwif_address, sizeof(tab->zone_nwif_address)) != 0 ||
      field_ok(tab->zone_nwif_allowed_address, sizeof(tab->zone_nwif_allowed_address)) != 0 ||
      field_ok(tab->zone_nwif_physical, sizeof(tab->zone_nwif_physical)) != 0 ||
      field_ok(tab->zone_nwif_defrouter, sizeof(tab->zone_nwif_defrouter)) != 0)
    return Z_INVAL; /* the real one would read past the field */
  GROW(h->nets, h->nnets);
  h->nets[h->nnets++] = *tab;
  return Z_OK;
}

int zonecfg_add_dev(zone_dochandle_t h, struct zone_devtab *tab) {
  if (tab == NULL) return Z_INVAL;
  if (zonecfg_check_handle(h) != Z_OK) return Z_BAD_HANDLE;
  if (field_ok(tab->zone_dev_match, sizeof(tab->zone_dev_match)) != 0) return Z_INVAL;
  GROW(h->devs, h->ndevs);
  h->devs[h->ndevs++] = *tab;
  return Z_OK;
}

int zonecfg_add_ds(zone_dochandle_t h, struct zone_dstab *tab) {
  if (tab == NULL) return Z_INVAL;
  if (zonecfg_check_handle(h) != Z_OK) return Z_BAD_HANDLE;
  if (field_ok(tab->zone_dataset_name, sizeof(tab->zone_dataset_name)) != 0) return Z_INVAL;
  GROW(h->dss, h->ndss);
  h->dss[h->ndss++] = *tab;
  return Z_OK;
}

int zonecfg_add_fs_option(struct zone_fstab *tab, char *option) {
  zone_fsopt_t *last = tab->zone_fs_options;
  for (zone_fsopt_t *o = last; o != NULL; o = o->zone_fsopt_next) last = o;
  zone_fsopt_t *node = malloc(sizeof(*node));
  if (node == NULL) return Z_NOMEM;
  /* strlcpy: silently truncated to MAX_MNTOPT_STR - 1, as the real one does */
  size_t n = strnlen(option, sizeof(node->zone_fsopt_opt) - 1);
  memcpy(node->zone_fsopt_opt, option, n);
  node->zone_fsopt_opt[n] = '\0';
  node->zone_fsopt_next = NULL;
  if (last == NULL) tab->zone_fs_options = node;
  else last->zone_fsopt_next = node;
  return Z_OK;
}

void zonecfg_free_fs_option_list(zone_fsopt_t *list) {
  while (list != NULL) {
    zone_fsopt_t *next = list->zone_fsopt_next;
    free(list);
    list = next;
  }
}

int zonecfg_add_filesystem(zone_dochandle_t h, struct zone_fstab *tab) {
  if (tab == NULL) return Z_INVAL;
  if (zonecfg_check_handle(h) != Z_OK) return Z_BAD_HANDLE;
  if (field_ok(tab->zone_fs_special, sizeof(tab->zone_fs_special)) != 0 ||
      field_ok(tab->zone_fs_dir, sizeof(tab->zone_fs_dir)) != 0 ||
      field_ok(tab->zone_fs_type, sizeof(tab->zone_fs_type)) != 0 ||
      field_ok(tab->zone_fs_raw, sizeof(tab->zone_fs_raw)) != 0)
    return Z_INVAL;
  GROW(h->fss, h->nfss);
  struct zone_fstab *t = &h->fss[h->nfss].tab;
  *t = *tab;
  t->zone_fs_options = NULL; /* the document keeps its own copy; the caller frees its list */
  h->nfss++;
  for (const zone_fsopt_t *o = tab->zone_fs_options; o != NULL; o = o->zone_fsopt_next) {
    if (field_ok(o->zone_fsopt_opt, sizeof(o->zone_fsopt_opt)) != 0) return Z_INVAL;
    char opt[ZC_MAX_MNTOPT_STR];
    memcpy(opt, o->zone_fsopt_opt, sizeof(opt));
    if (zonecfg_add_fs_option(t, opt) != Z_OK) return Z_NOMEM;
  }
  return Z_OK;
}

/* ---- iterators: one cursor per handle, as the real zone_dh_cur --------------------------------- */

static int setent(zone_dochandle_t h) {
  if (h == NULL) return Z_INVAL;
  if (!h->loaded) {
    h->cursor_valid = 0;
    return Z_BAD_HANDLE;
  }
  h->cursor_valid = 1;
  h->cursor = 0;
  return Z_OK;
}

static int endent(zone_dochandle_t h) {
  if (h == NULL) return Z_INVAL;
  h->cursor_valid = 0;
  return Z_OK;
}

/* The next index of an array of n, or -1 (and the iteration ends) at its end. */
static long nextent(zone_dochandle_t h, size_t n) {
  if (!h->cursor_valid) return -1;
  if (h->cursor >= n) {
    h->cursor_valid = 0;
    return -1;
  }
  return (long)h->cursor++;
}

int zonecfg_setnwifent(zone_dochandle_t h) { return setent(h); }
int zonecfg_endnwifent(zone_dochandle_t h) { return endent(h); }
int zonecfg_getnwifent(zone_dochandle_t h, struct zone_nwiftab *tab) {
  if (h == NULL) return Z_INVAL;
  long i = nextent(h, h->nnets);
  if (i < 0) return Z_NO_ENTRY;
  zone_iptype_t ip = ZS_SHARED;
  (void)zonecfg_get_iptype(h, &ip);
  *tab = h->nets[i];
  /* address is fetched for shared-IP zones only, allowed-address for exclusive-IP only */
  if (ip == ZS_EXCLUSIVE) tab->zone_nwif_address[0] = '\0';
  else tab->zone_nwif_allowed_address[0] = '\0';
  return Z_OK;
}

int zonecfg_setdevent(zone_dochandle_t h) { return setent(h); }
int zonecfg_enddevent(zone_dochandle_t h) { return endent(h); }
int zonecfg_getdevent(zone_dochandle_t h, struct zone_devtab *tab) {
  if (h == NULL) return Z_INVAL;
  long i = nextent(h, h->ndevs);
  if (i < 0) return Z_NO_ENTRY;
  *tab = h->devs[i];
  return Z_OK;
}

int zonecfg_setdsent(zone_dochandle_t h) { return setent(h); }
int zonecfg_enddsent(zone_dochandle_t h) { return endent(h); }
int zonecfg_getdsent(zone_dochandle_t h, struct zone_dstab *tab) {
  if (h == NULL) return Z_INVAL;
  long i = nextent(h, h->ndss);
  if (i < 0) return Z_NO_ENTRY;
  *tab = h->dss[i];
  return Z_OK;
}

int zonecfg_setfsent(zone_dochandle_t h) { return setent(h); }
int zonecfg_endfsent(zone_dochandle_t h) { return endent(h); }
int zonecfg_getfsent(zone_dochandle_t h, struct zone_fstab *tab) {
  if (h == NULL) return Z_INVAL;
  long i = nextent(h, h->nfss);
  if (i < 0) return Z_NO_ENTRY;
  const struct zone_fstab *src = &h->fss[i].tab;
  memcpy(tab->zone_fs_special, src->zone_fs_special, sizeof(tab->zone_fs_special));
  memcpy(tab->zone_fs_raw, src->zone_fs_raw, sizeof(tab->zone_fs_raw));
  memcpy(tab->zone_fs_dir, src->zone_fs_dir, sizeof(tab->zone_fs_dir));
  memcpy(tab->zone_fs_type, src->zone_fs_type, sizeof(tab->zone_fs_type));
  tab->zone_fs_options = NULL; /* "OK for options to be NULL"; malloc'd for the caller */
  for (const zone_fsopt_t *o = src->zone_fs_options; o != NULL; o = o->zone_fsopt_next) {
    char opt[ZC_MAX_MNTOPT_STR];
    memcpy(opt, o->zone_fsopt_opt, sizeof(opt));
    if (zonecfg_add_fs_option(tab, opt) != Z_OK) break;
  }
  return Z_OK;
}

/* ---- save and destroy ---------------------------------------------------------------------------- */

int zonecfg_save(zone_dochandle_t h) {
  if (zonecfg_check_handle(h) != Z_OK) return Z_BAD_HANDLE;
  char name[ZONENAME_MAX];
  int rc = zonecfg_get_name(h, name, sizeof(name));
  if (rc != Z_OK) return rc;
  char zonepath[ZC_MAXPATHLEN];
  rc = zonecfg_get_zonepath(h, zonepath, sizeof(zonepath));
  if (rc != Z_OK) return rc;
  char path[4096];
  if (cfg_path(path, sizeof(path), name) != 0 || fake_mkdir("zones") != 0) return Z_MISC_FS;

  int lock = fake_lock();
  if (lock < 0) return Z_LOCKING_FILE;
  struct zoneent existing;
  int existed = index_lookup(name, &existing) == Z_OK;
  rc = doc_write(h, path);
  if (rc == Z_OK) {
    struct zoneent ze;
    memset(&ze, 0, sizeof(ze));
    memcpy(ze.zone_name, name, sizeof(ze.zone_name));
    memcpy(ze.zone_path, zonepath, sizeof(ze.zone_path));
    /* a new handle (re)creates the entry as configured, even over an existing zone ("create -F") */
    ze.zone_state = h->newzone ? ZONE_STATE_CONFIGURED : -1;
    rc = index_put_locked(&ze, existed ? PZE_MODIFY : PZE_ADD);
    if (rc != Z_OK) {
      if (!existed) unlink(path);
      rc = Z_UPDATING_INDEX;
    }
  }
  fake_unlock(lock);
  if (rc == Z_OK) h->newzone = 0;
  return rc;
}

/* zone_get_state without taking the lock (the kernel table first, then the index). */
int zone_get_state(char *zone_name, zone_state_t *state) {
  if (zone_name == NULL) return Z_INVAL;
  if (strcmp(zone_name, GLOBAL_ZONENAME) == 0) {
    *state = ZONE_STATE_RUNNING;
    return Z_OK;
  }
  struct kzone kz;
  if (kernel_lookup(zone_name, &kz)) {
    if (strcmp(kz.status, "running") == 0) *state = ZONE_STATE_RUNNING;
    else if (strcmp(kz.status, "ready") == 0) *state = ZONE_STATE_READY;
    else if (strcmp(kz.status, "shutting_down") == 0) *state = ZONE_STATE_SHUTTING_DOWN;
    else *state = ZONE_STATE_DOWN;
    return Z_OK;
  }
  struct zoneent ze;
  int rc = index_lookup(zone_name, &ze);
  if (rc != Z_OK) return rc == Z_NO_ZONE ? Z_NO_ZONE : rc;
  *state = (zone_state_t)ze.zone_state;
  return Z_OK;
}

/* With the fake lock held (the fake zoneadm's path). */
static int zone_set_state_locked(const char *zone, zone_state_t state) {
  if (state != ZONE_STATE_CONFIGURED && state != ZONE_STATE_INSTALLED && state != ZONE_STATE_INCOMPLETE)
    return Z_INVAL;
  struct zoneent ze;
  memset(&ze, 0, sizeof(ze));
  if (strlen(zone) >= sizeof(ze.zone_name)) return Z_TOO_BIG;
  strcpy(ze.zone_name, zone);
  ze.zone_state = (int)state;
  return index_put_locked(&ze, PZE_MODIFY);
}

int zone_set_state(char *zone, zone_state_t state) {
  if (zone == NULL) return Z_INVAL;
  int lock = fake_lock();
  if (lock < 0) return Z_LOCKING_FILE;
  int rc = zone_set_state_locked(zone, state);
  fake_unlock(lock);
  return rc;
}

int zonecfg_destroy(const char *zonename, boolean_t force) {
  if (zonename == NULL) return Z_INVAL;
  char path[4096];
  int have_path = cfg_path(path, sizeof(path), zonename) == 0;
  int lock = fake_lock();
  if (lock < 0) return Z_LOCKING_FILE;
  zone_state_t state = ZONE_STATE_CONFIGURED;
  int state_err = zone_get_state((char *)zonename, &state);
  int exists = have_path && access(path, F_OK) == 0;
  int rc = Z_OK;
  if (state_err == Z_NO_ZONE && !exists) {
    rc = Z_NO_ZONE;
  } else if (state_err == Z_OK && state > ZONE_STATE_INSTALLED) {
    rc = Z_BAD_ZONE_STATE;
  } else if (state_err == Z_OK && !force && state > ZONE_STATE_CONFIGURED) {
    rc = Z_BAD_ZONE_STATE;
  } else {
    struct zoneent ze;
    memset(&ze, 0, sizeof(ze));
    snprintf(ze.zone_name, sizeof(ze.zone_name), "%s", zonename);
    rc = index_put_locked(&ze, PZE_REMOVE);
    if (rc != Z_OK && force) rc = Z_OK;
    if (rc == Z_OK && exists && unlink(path) != 0 && errno != ENOENT) rc = errno == EACCES ? Z_ACCES : Z_MISC_FS;
  }
  fake_unlock(lock);
  return rc;
}

/* ---- the index iterator and per-zone lookups ------------------------------------------------------ */

FILE *setzoneent(void) {
  char path[4096];
  if (index_path(path, sizeof(path)) != 0) return NULL;
  FILE *f = fopen(path, "re");
  if (f == NULL && errno == ENOENT) f = fmemopen((void *)default_index, sizeof(default_index) - 1, "r");
  return f;
}

struct zoneent *getzoneent_private(FILE *cookie) {
  if (cookie == NULL) return NULL;
  char *line = NULL;
  size_t cap = 0;
  struct zoneent *ze = NULL;
  while (getline(&line, &cap, cookie) >= 0) {
    line[strcspn(line, "\n")] = '\0';
    struct zoneent parsed;
    if (index_parse_line(line, &parsed) != 0) continue;
    ze = malloc(sizeof(*ze));
    if (ze != NULL) *ze = parsed;
    break;
  }
  free(line);
  return ze;
}

char *getzoneent(FILE *cookie) {
  struct zoneent *ze = getzoneent_private(cookie);
  if (ze == NULL) return NULL;
  char *name = strdup(ze->zone_name);
  free(ze);
  return name;
}

void endzoneent(FILE *cookie) {
  if (cookie != NULL) fclose(cookie);
}

int zone_get_zonepath(char *zone_name, char *zonepath, size_t len) {
  if (zone_name == NULL) return Z_INVAL;
  if (strcmp(zone_name, GLOBAL_ZONENAME) == 0) {
    snprintf(zonepath, len, "/");
    return Z_OK;
  }
  struct zoneent ze;
  int rc = index_lookup(zone_name, &ze);
  if (rc != Z_OK) return rc;
  if (strlen(ze.zone_path) >= len) return Z_TOO_BIG;
  strcpy(zonepath, ze.zone_path);
  return Z_OK;
}

int zone_get_brand(char *zone_name, char *brand, size_t len) {
  if (zone_name == NULL) return Z_INVAL;
  if (strcmp(zone_name, GLOBAL_ZONENAME) == 0) {
    if (strlen(DEFAULT_BRAND) >= len) return Z_TOO_BIG;
    strcpy(brand, DEFAULT_BRAND);
    return Z_OK;
  }
  zone_dochandle_t h = zonecfg_init_handle();
  if (h == NULL) return Z_NOMEM;
  int rc = zonecfg_get_handle(zone_name, h);
  if (rc == Z_OK) rc = zonecfg_get_brand(h, brand, len);
  zonecfg_fini_handle(h);
  return rc;
}
