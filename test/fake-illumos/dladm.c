/*
 * Fake libdladm.so.1: the calls native/dladm.cc makes, with the real prototypes, status codes,
 * message texts and argument checks (illumos-gate libdladm.c, libdllink.c, libdlvnic.c, the
 * vnic driver), over a fake host's links kept in files so that another process sees them.
 *
 * State, under $FAKE_ILLUMOS_STATE/links/ (written, and its files read, only under fake_lock()):
 *   seeded          created once the initial links exist
 *   next-id         the next datalink_id_t to hand out (ids are never reused; rewritten in place)
 *   by-id/<id>      one file per link, "key=value" lines, name= first (the fake in-zone commands
 *                   read them too, under the lock):
 *                     name=oxFoo0  class=phys|etherstub|vnic|vlan|misc  flags=<DLMGMT_* bits>
 *                     over=<link id or 0>  mactype=fixed|random|primary  mac=xx:xx:xx:xx:xx:xx
 *                     vid=<0..4094>  mtu=<bytes>
 *                     zone=<zone> zoneid=<id>  (only while given to a zone: the `zone` property)
 *                   class=misc links are OPTE (xde) ports: the fake opteadm (opteadm.c, which
 *                   includes this file) makes and removes them, as the real one has dlmgmtd
 *                   allocate a DATALINK_CLASS_MISC link id for each port.
 *                   A new link's file is made with one write (its id was never used, and readers
 *                   hold the lock; one a crash left empty does not parse and is skipped); a
 *                   changed link's is replaced (temp + rename). Nothing is fsync'd: the fake host
 *                   need not survive a power cut, and another process reads what was written.
 * Each process keeps the links in memory and reloads them only when the token in slot
 * FAKE_GEN_LINKS of $FAKE_ILLUMOS_STATE/.lock (fake_gen_bump, replaced on every change) is not
 * the one it loaded at. Calls that only read (name2info, id2info, vnic_info, get_linkprop, the
 * walk) answer from that copy without taking the lock while the token is unchanged: a writer
 * replaces the token after its files and before it unlocks, so such a read sees the links as
 * they were before or after a whole change, as a door call to dlmgmtd would.
 * Seeding (on the first call that finds no "seeded"): physical links from FAKE_ILLUMOS_PHYS_LINKS
 * (comma-separated, default "net0,net1"; ids from 1, flags ACTIVE|PERSIST, MAC a8:40:25:00:00:<id>,
 * MTU from FAKE_ILLUMOS_PHYS_MTU, default 9000), then etherstubs from FAKE_ILLUMOS_ETHERSTUBS
 * (default none; MTU 9000).
 *
 * dladm_vnic_create has the current illumos-gate form, 15 arguments with `dladm_errlist_t *errs`
 * before `flags`. With FAKE_ILLUMOS_DLADM_ABI=14 it behaves as the older 14-argument form
 * instead: it takes its 14th argument as the flags and never reads a 15th (what a 14-argument
 * library does when called either way), so the addon's arity probe can be tested both ways.
 *
 * A handle used from two threads at once, or after dladm_close, aborts the process with a message
 * on stderr: the real library would corrupt its door/ioctl state instead.
 *
 * Not modelled: persistent configuration (PERSIST is accepted and only recorded in the flags),
 * factory MAC slots (DLADM_STATUS_MACFACTORYNOTSUP), VRRP VNICs (DLADM_STATUS_NOTSUP), link
 * properties other than mtu and zone (DLADM_STATUS_NOTFOUND), the zone's ip-type (check_zone's
 * ZF_NET_EXCL test: every fake zone counts as exclusive-IP).
 *
 * The `zone` property (libdladm linkprop.c: check_zone, set_zone, get_zone; PD_TEMPONLY): a link
 * records the zone it was given to AND the kernel id of that boot of the zone. It is in that zone
 * only while zones/kernel (the fake zoneadm's table) still has the zone under that id, ready or
 * running; otherwise it is back in the global zone. That is how a halt gives links back (the
 * kernel's dls zone-shutdown callback on illumos) without the fake zoneadm touching links.
 */
#define _GNU_SOURCE
#include "common.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- declarations (ours, written from the illumos headers, not shared with the addon) ---- */

typedef enum { B_FALSE = 0, B_TRUE = 1 } boolean_t;
typedef uint32_t datalink_id_t;
typedef unsigned int uint_t;
typedef unsigned char uchar_t;
typedef uint32_t vrid_t;
typedef uint64_t datalink_media_t;

#define MAXLINKNAMELEN 32
#define MAXMACADDRLEN 20
#define ETHERADDRL 6
#define DLADM_STRSIZE 256
#define DLADM_PROP_VAL_MAX 128
#ifndef ZONENAME_MAX
#define ZONENAME_MAX 64
#endif

#define DLADM_OPT_ACTIVE 0x01u
#define DLADM_OPT_PERSIST 0x02u
#define DLADM_OPT_PREFIX 0x10u
#define DLADM_OPT_ANCHOR 0x20u
#define DLADM_OPT_VLAN 0x40u
#define DLADM_WALK_TERMINATE 0

#define DLMGMT_ACTIVE 0x01u
#define DLMGMT_PERSIST 0x02u

#define DATALINK_INVALID_LINKID 0u
#define DL_ETHER 4u
#define VRRP_VRID_NONE 0u

typedef enum {
  DATALINK_CLASS_PHYS = 0x01,
  DATALINK_CLASS_VLAN = 0x02,
  DATALINK_CLASS_AGGR = 0x04,
  DATALINK_CLASS_VNIC = 0x08,
  DATALINK_CLASS_ETHERSTUB = 0x10,
  DATALINK_CLASS_MISC = 0x400
} datalink_class_t;

typedef enum {
  VNIC_MAC_ADDR_TYPE_UNKNOWN = -1,
  VNIC_MAC_ADDR_TYPE_FIXED,
  VNIC_MAC_ADDR_TYPE_RANDOM,
  VNIC_MAC_ADDR_TYPE_FACTORY,
  VNIC_MAC_ADDR_TYPE_AUTO,
  VNIC_MAC_ADDR_TYPE_PRIMARY,
  VNIC_MAC_ADDR_TYPE_VRID
} vnic_mac_addr_type_t;

typedef enum {
  DLADM_PROP_VAL_CURRENT = 1,
  DLADM_PROP_VAL_DEFAULT,
  DLADM_PROP_VAL_PERM,
  DLADM_PROP_VAL_MODIFIABLE,
  DLADM_PROP_VAL_PERSISTENT
} dladm_prop_type_t;

typedef enum {
  DLADM_STATUS_OK = 0,
  DLADM_STATUS_BADARG = 1,
  DLADM_STATUS_FAILED = 2,
  DLADM_STATUS_TOOSMALL = 3,
  DLADM_STATUS_NOTSUP = 4,
  DLADM_STATUS_NOTFOUND = 5,
  DLADM_STATUS_BADVAL = 6,
  DLADM_STATUS_NOMEM = 7,
  DLADM_STATUS_EXIST = 8,
  DLADM_STATUS_LINKINVAL = 9,
  DLADM_STATUS_PROPRDONLY = 10,
  DLADM_STATUS_BADVALCNT = 11,
  DLADM_STATUS_DBNOTFOUND = 12,
  DLADM_STATUS_DENIED = 13,
  DLADM_STATUS_IOERR = 14,
  DLADM_STATUS_TEMPONLY = 15,
  DLADM_STATUS_TIMEDOUT = 16,
  DLADM_STATUS_ISCONN = 17,
  DLADM_STATUS_NOTCONN = 18,
  DLADM_STATUS_REPOSITORYINVAL = 19,
  DLADM_STATUS_MACADDRINVAL = 20,
  DLADM_STATUS_KEYINVAL = 21,
  DLADM_STATUS_INVALIDMACADDRLEN = 22,
  DLADM_STATUS_INVALIDMACADDRTYPE = 23,
  DLADM_STATUS_LINKBUSY = 24,
  DLADM_STATUS_VIDINVAL = 25,
  DLADM_STATUS_NONOTIF = 26,
  DLADM_STATUS_TRYAGAIN = 27,
  DLADM_STATUS_INVALIDMACADDR = 34,
  DLADM_STATUS_INVALIDMACADDRNIC = 35,
  DLADM_STATUS_INVALIDMACADDRINUSE = 36,
  DLADM_STATUS_MACFACTORYNOTSUP = 40,
  DLADM_STATUS_INVALID_MTU = 84,
  DLADM_STATUS_PERSIST_ON_TEMP = 85
} dladm_status_t;

_Static_assert(sizeof(boolean_t) == 4, "boolean_t is int-sized");
_Static_assert(sizeof(dladm_status_t) == 4, "dladm_status_t is int-sized");
_Static_assert(sizeof(vnic_mac_addr_type_t) == 4, "vnic_mac_addr_type_t is int-sized");

struct dladm_handle {
  uint32_t magic;
  _Atomic unsigned long owner; /* pthread_self() of the thread inside a call, or 0 */
  int depth;                   /* nesting on that thread (walk callbacks call back in) */
};
typedef struct dladm_handle *dladm_handle_t;
typedef struct dladm_arg_list dladm_arg_list_t;
typedef struct dladm_errlist dladm_errlist_t;

#define HANDLE_MAGIC 0x444c4144u /* "DLAD" */
#define HANDLE_FREED 0xdeadbeefu

/*
 * dladm_vnic_attr_t (libdlvnic.h): these fields, then mac_resource_props_t va_resource_props at
 * offset 60, 15480 bytes in all with MRP_NCPUS 256 (illumos-gate 367731f049bf).
 * dladm_vnic_info(ACTIVE) writes the whole struct, as a libdlvnic that copies va_resource_props
 * back from VNIC_IOC_INFO does (no resource controls: zeroes), so a caller's buffer that is too
 * small shows up under the sanitizers.
 */
#define FAKE_VNIC_ATTR_SIZE 15480
typedef struct fake_vnic_attr_head {
  datalink_id_t va_vnic_id;
  datalink_id_t va_link_id;
  vnic_mac_addr_type_t va_mac_addr_type;
  uint_t va_mac_len;
  uchar_t va_mac_addr[MAXMACADDRLEN];
  int va_mac_slot;
  uint_t va_mac_prefix_len;
  uint16_t va_vid;
  boolean_t va_force;
  vrid_t va_vrid;
  int va_af;
} fake_vnic_attr_head_t;

_Static_assert(offsetof(fake_vnic_attr_head_t, va_mac_addr_type) == 8, "va_mac_addr_type");
_Static_assert(offsetof(fake_vnic_attr_head_t, va_mac_addr) == 16, "va_mac_addr");
_Static_assert(offsetof(fake_vnic_attr_head_t, va_mac_slot) == 36, "va_mac_slot");
_Static_assert(offsetof(fake_vnic_attr_head_t, va_vid) == 44, "va_vid");
_Static_assert(offsetof(fake_vnic_attr_head_t, va_force) == 48, "va_force");
_Static_assert(offsetof(fake_vnic_attr_head_t, va_af) == 56, "va_af");
_Static_assert(sizeof(fake_vnic_attr_head_t) == 60, "head of dladm_vnic_attr_t");

/* The exported functions (prototypes as in libdladm.h / libdllink.h / libdlvnic.h). */
dladm_status_t dladm_open(dladm_handle_t *);
void dladm_close(dladm_handle_t);
const char *dladm_status2str(dladm_status_t, char *);
boolean_t dladm_valid_linkname(const char *);
dladm_status_t dladm_name2info(dladm_handle_t, const char *, datalink_id_t *, uint32_t *, datalink_class_t *,
                               uint32_t *);
dladm_status_t dladm_datalink_id2info(dladm_handle_t, datalink_id_t, uint32_t *, datalink_class_t *, uint32_t *,
                                      char *, size_t);
dladm_status_t dladm_walk_datalink_id(int (*)(dladm_handle_t, datalink_id_t, void *), dladm_handle_t, void *,
                                      datalink_class_t, datalink_media_t, uint32_t);
dladm_status_t dladm_vnic_create(dladm_handle_t, const char *, datalink_id_t, vnic_mac_addr_type_t, uchar_t *,
                                 uint_t, int *, uint_t, uint16_t, vrid_t, int, datalink_id_t *, dladm_arg_list_t *,
                                 dladm_errlist_t *, uint32_t);
dladm_status_t dladm_vnic_delete(dladm_handle_t, datalink_id_t, uint32_t);
dladm_status_t dladm_vnic_info(dladm_handle_t, datalink_id_t, void *, uint32_t);
dladm_status_t dladm_set_linkprop(dladm_handle_t, datalink_id_t, const char *, char **, uint_t, uint_t);
dladm_status_t dladm_get_linkprop(dladm_handle_t, datalink_id_t, dladm_prop_type_t, const char *, char **,
                                  uint_t *);

/* ---- the handle ---------------------------------------------------------------------------- */

static void die(const char *what, const void *h) {
  fprintf(stderr, "fake libdladm: %s (handle %p)\n", what, h);
  abort();
}

/* Marks the handle in use by this thread; aborts if another thread is inside a call with it. */
static void enter(dladm_handle_t h) {
  if (h->magic != HANDLE_MAGIC) die(h->magic == HANDLE_FREED ? "handle used after dladm_close" : "not a handle", h);
  unsigned long self = (unsigned long)pthread_self();
  unsigned long expected = 0;
  if (atomic_compare_exchange_strong(&h->owner, &expected, self)) {
    h->depth = 1;
  } else if (expected == self) {
    h->depth++;
  } else {
    die("handle used from two threads at once", h);
  }
}

static void leave(dladm_handle_t h) {
  if (--h->depth == 0) atomic_store(&h->owner, 0UL);
}

/* ---- links on disk --------------------------------------------------------------------------- */

typedef struct {
  datalink_id_t id;
  char name[MAXLINKNAMELEN];
  uint32_t cls;
  uint32_t flags;
  datalink_id_t over;
  int mactype;
  uchar_t mac[ETHERADDRL];
  uint16_t vid;
  uint32_t mtu;
  char zone[ZONENAME_MAX]; /* "" unless given to a zone; see zone_of */
  int zoneid;
} link_t;

typedef struct {
  link_t *v;
  size_t n;
} links_t;

/*
 * This process's copy of links/by-id, good while the lock file's FAKE_GEN_LINKS token is `token`
 * and the state directory is still `dir`. Only touched with `cache_mu` held, and changed only with
 * fake_lock() held too (fake_lock() already excludes other threads; the mutex makes that plain to
 * the compiler, and is all that the lock-free reads of open_view take).
 * `changed`: this locked section wrote something; the token is replaced when it ends.
 */
static struct {
  int valid;
  uint64_t token;
  char dir[4096];
  links_t links;
  unsigned long next_id; /* links/next-id as read or last written; 0: not known */
  int next_fd;           /* links/next-id, open while the cache is good; -1: not open */
  int peek_fd;           /* <dir>/.lock, read-only, for the token check of lock-free reads */
  int changed;
} cache = {.next_fd = -1, .peek_fd = -1};
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *class_str(uint32_t c) {
  switch (c) {
    case DATALINK_CLASS_PHYS: return "phys";
    case DATALINK_CLASS_VLAN: return "vlan";
    case DATALINK_CLASS_VNIC: return "vnic";
    case DATALINK_CLASS_ETHERSTUB: return "etherstub";
    case DATALINK_CLASS_MISC: return "misc";
    default: return "unknown";
  }
}

static uint32_t str_class(const char *s) {
  if (strcmp(s, "phys") == 0) return DATALINK_CLASS_PHYS;
  if (strcmp(s, "vlan") == 0) return DATALINK_CLASS_VLAN;
  if (strcmp(s, "vnic") == 0) return DATALINK_CLASS_VNIC;
  if (strcmp(s, "etherstub") == 0) return DATALINK_CLASS_ETHERSTUB;
  if (strcmp(s, "misc") == 0) return DATALINK_CLASS_MISC;
  return 0;
}

static const char *mactype_str(int t) {
  switch (t) {
    case VNIC_MAC_ADDR_TYPE_FIXED: return "fixed";
    case VNIC_MAC_ADDR_TYPE_RANDOM: return "random";
    case VNIC_MAC_ADDR_TYPE_PRIMARY: return "primary";
    default: return "unknown";
  }
}

static int str_mactype(const char *s) {
  if (strcmp(s, "fixed") == 0) return VNIC_MAC_ADDR_TYPE_FIXED;
  if (strcmp(s, "random") == 0) return VNIC_MAC_ADDR_TYPE_RANDOM;
  if (strcmp(s, "primary") == 0) return VNIC_MAC_ADDR_TYPE_PRIMARY;
  return VNIC_MAC_ADDR_TYPE_UNKNOWN;
}

/* strlcpy into a MAXLINKNAMELEN buffer: what the door arguments do to a longer name. */
static void copy_name(char dst[MAXLINKNAMELEN], const char *src) {
  size_t n = strnlen(src, MAXLINKNAMELEN - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static int parse_link(const char *text, link_t *l) {
  memset(l, 0, sizeof(*l));
  l->mactype = VNIC_MAC_ADDR_TYPE_UNKNOWN;
  const char *p = text;
  while (*p != '\0') {
    const char *eol = strchr(p, '\n');
    size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
    char line[128];
    if (len < sizeof(line)) {
      memcpy(line, p, len);
      line[len] = '\0';
      char *eq = strchr(line, '=');
      if (eq != NULL) {
        *eq = '\0';
        const char *k = line, *v = eq + 1;
        if (strcmp(k, "name") == 0) copy_name(l->name, v);
        else if (strcmp(k, "class") == 0) l->cls = str_class(v);
        else if (strcmp(k, "flags") == 0) l->flags = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "over") == 0) l->over = (datalink_id_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "mactype") == 0) l->mactype = str_mactype(v);
        else if (strcmp(k, "vid") == 0) l->vid = (uint16_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "mtu") == 0) l->mtu = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "zone") == 0) snprintf(l->zone, sizeof(l->zone), "%s", v);
        else if (strcmp(k, "zoneid") == 0) l->zoneid = (int)strtol(v, NULL, 10);
        else if (strcmp(k, "mac") == 0) {
          unsigned b[ETHERADDRL];
          if (sscanf(v, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) == ETHERADDRL) {
            for (int i = 0; i < ETHERADDRL; i++) l->mac[i] = (uchar_t)b[i];
          }
        }
      }
    }
    if (eol == NULL) break;
    p = eol + 1;
  }
  return l->name[0] != '\0' && l->cls != 0 ? 0 : -1;
}

/* Puts (or replaces) a link in the cache, keeping id order; drops the cache if out of memory. */
static void cache_put(const link_t *l) {
  links_t *c = &cache.links;
  size_t i = 0;
  while (i < c->n && c->v[i].id < l->id) i++;
  if (i < c->n && c->v[i].id == l->id) {
    c->v[i] = *l;
    return;
  }
  link_t *bigger = realloc(c->v, (c->n + 1) * sizeof(link_t));
  if (bigger == NULL) {
    cache.valid = 0;
    return;
  }
  c->v = bigger;
  memmove(&c->v[i + 1], &c->v[i], (c->n - i) * sizeof(link_t));
  c->v[i] = *l;
  c->n++;
}

static void cache_drop(datalink_id_t id) {
  links_t *c = &cache.links;
  for (size_t i = 0; i < c->n; i++) {
    if (c->v[i].id == id) {
      memmove(&c->v[i], &c->v[i + 1], (c->n - i - 1) * sizeof(link_t));
      c->n--;
      return;
    }
  }
}

/* A new link's file: O_EXCL, one write (see the top). 0, or -1 with errno (EEXIST: it is there). */
static int create_file(const char *path, const char *text, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  ssize_t w;
  do {
    w = write(fd, text, n);
  } while (w < 0 && errno == EINTR);
  int ok = w == (ssize_t)n;
  int saved = w < 0 ? errno : EIO;
  if (close(fd) != 0 && ok) ok = 0, saved = errno;
  if (ok) return 0;
  unlink(path);
  errno = saved;
  return -1;
}

/* Writes a link's file: `fresh` for an id handed out just now, else it replaces the file. */
static int write_link(const link_t *l, int fresh) {
  char name[32], path[4096], text[512];
  snprintf(name, sizeof(name), "%u", l->id);
  if (fake_path(path, sizeof(path), "links/by-id", name) != 0) return -1;
  int n = snprintf(text, sizeof(text),
                   "name=%s\nclass=%s\nflags=%u\nover=%u\nmactype=%s\nmac=%02x:%02x:%02x:%02x:%02x:%02x\nvid=%u\nmtu=%u\n",
                   l->name, class_str(l->cls), l->flags, l->over, mactype_str(l->mactype), l->mac[0], l->mac[1],
                   l->mac[2], l->mac[3], l->mac[4], l->mac[5], (unsigned)l->vid, l->mtu);
  if (n < 0 || (size_t)n >= sizeof(text)) return -1;
  if (l->zone[0] != '\0') {
    int m = snprintf(text + n, sizeof(text) - (size_t)n, "zone=%s\nzoneid=%d\n", l->zone, l->zoneid);
    if (m < 0 || (size_t)m >= sizeof(text) - (size_t)n) return -1;
    n += m;
  }
  cache.changed = 1;
  /* links/by-id is there but when the state directory was just made (no stat each time). */
  int rc = fresh ? create_file(path, text, (size_t)n) : fake_write_file(path, text, (size_t)n);
  if (rc != 0 && errno == ENOENT && fake_mkdir("links/by-id") == 0) rc = fake_write_file(path, text, (size_t)n);
  if (rc != 0 && fresh && errno == EEXIST) rc = fake_write_file(path, text, (size_t)n); /* a stray file */
  if (rc != 0) {
    cache.valid = 0;
    return -1;
  }
  if (cache.valid) cache_put(l);
  return 0;
}

static int remove_link(datalink_id_t id) {
  char name[32], path[4096];
  snprintf(name, sizeof(name), "%u", id);
  if (fake_path(path, sizeof(path), "links/by-id", name) != 0) return -1;
  cache.changed = 1;
  if (unlink(path) == 0 || errno == ENOENT) {
    if (cache.valid) cache_drop(id);
    return 0;
  }
  cache.valid = 0;
  return -1;
}

static int cmp_link(const void *a, const void *b) {
  datalink_id_t x = ((const link_t *)a)->id, y = ((const link_t *)b)->id;
  return x < y ? -1 : x > y;
}

static void free_links(links_t *ls) {
  free(ls->v);
  ls->v = NULL;
  ls->n = 0;
}

/* Every link, in id order. */
static int load_links(links_t *ls) {
  ls->v = NULL;
  ls->n = 0;
  char dirpath[4096];
  if (fake_path(dirpath, sizeof(dirpath), "links/by-id", NULL) != 0) return -1;
  DIR *d = opendir(dirpath);
  if (d == NULL) return errno == ENOENT ? 0 : -1;
  size_t cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *s = e->d_name;
    if (s[0] == '\0' || strspn(s, "0123456789") != strlen(s)) continue; /* ".", temp files */
    char file[4400];
    snprintf(file, sizeof(file), "%s/%s", dirpath, s);
    char *text = fake_read_file(file, NULL);
    if (text == NULL) continue;
    link_t l;
    int ok = parse_link(text, &l);
    free(text);
    if (ok != 0) continue;
    l.id = (datalink_id_t)strtoul(s, NULL, 10);
    if (ls->n == cap) {
      cap = cap == 0 ? 16 : cap * 2;
      link_t *bigger = realloc(ls->v, cap * sizeof(link_t));
      if (bigger == NULL) {
        closedir(d);
        free_links(ls);
        return -1;
      }
      ls->v = bigger;
    }
    ls->v[ls->n++] = l;
  }
  closedir(d);
  if (ls->n > 1) qsort(ls->v, ls->n, sizeof(link_t), cmp_link);
  return 0;
}

static link_t *by_name(links_t *ls, const char *name) {
  for (size_t i = 0; i < ls->n; i++)
    if (strcmp(ls->v[i].name, name) == 0) return &ls->v[i];
  return NULL;
}

static link_t *by_id(links_t *ls, datalink_id_t id) {
  for (size_t i = 0; i < ls->n; i++)
    if (ls->v[i].id == id) return &ls->v[i];
  return NULL;
}

static datalink_id_t alloc_id(void) {
  /* Rewritten in place (read only under the lock): a rename over it costs a data flush on ext4.
   * Kept open while the cache is good: a reload, which a new state directory or lock file always
   * causes, closes it. */
  if (cache.next_fd < 0) {
    char path[4096];
    if (fake_path(path, sizeof(path), "links", "next-id") != 0) return 0;
    if ((cache.next_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) return 0;
    cache.next_id = 0;
  }
  int fd = cache.next_fd;
  unsigned long next = cache.valid ? cache.next_id : 0;
  int known = next != 0; /* the file holds exactly "<next>\n", written by this process */
  if (next == 0) {
    char text[32];
    ssize_t r;
    do {
      r = pread(fd, text, sizeof(text) - 1, 0);
    } while (r < 0 && errno == EINTR);
    text[r > 0 ? r : 0] = '\0';
    next = strtoul(text, NULL, 10);
  }
  if (next == 0) next = 1;
  cache.next_id = 0;
  cache.changed = 1;
  char buf[32];
  int n = snprintf(buf, sizeof(buf), "%lu\n", next + 1);
  ssize_t w;
  do {
    w = pwrite(fd, buf, (size_t)n, 0);
  } while (w < 0 && errno == EINTR);
  /* The number only grows, so a text this process wrote (cache.next_id) is never longer. */
  int ok = w == n && (known || ftruncate(fd, n) == 0);
  if (ok) cache.next_id = next + 1;
  return ok ? (datalink_id_t)next : 0;
}

static uint32_t env_u32(const char *name, uint32_t fallback) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') return fallback;
  char *end = NULL;
  unsigned long n = strtoul(v, &end, 10);
  return end != v && *end == '\0' && n > 0 && n <= 65535 ? (uint32_t)n : fallback;
}

static void seed_list(const char *list, uint32_t cls, uint32_t mtu) {
  char buf[1024];
  snprintf(buf, sizeof(buf), "%s", list);
  char *save = NULL;
  for (char *tok = strtok_r(buf, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
    if (!dladm_valid_linkname(tok)) continue;
    link_t l;
    memset(&l, 0, sizeof(l));
    if ((l.id = alloc_id()) == 0) return;
    copy_name(l.name, tok);
    l.cls = cls;
    l.flags = DLMGMT_ACTIVE | DLMGMT_PERSIST;
    l.mactype = VNIC_MAC_ADDR_TYPE_FIXED;
    uchar_t mac[ETHERADDRL] = {0xa8, 0x40, 0x25, 0x00, (uchar_t)(l.id >> 8), (uchar_t)l.id};
    if (cls == DATALINK_CLASS_ETHERSTUB) mac[0] = 0x02, mac[1] = 0x08, mac[2] = 0x20;
    memcpy(l.mac, mac, sizeof(mac));
    l.mtu = mtu;
    (void)write_link(&l, 1);
  }
}

/* Under fake_lock(): creates the initial links once per fake host. */
static int ensure_seeded(void) {
  char path[4096];
  if (fake_mkdir("links/by-id") != 0 || fake_path(path, sizeof(path), "links", "seeded") != 0) return -1;
  if (access(path, F_OK) == 0) return 0;
  const char *phys = getenv("FAKE_ILLUMOS_PHYS_LINKS");
  const char *stubs = getenv("FAKE_ILLUMOS_ETHERSTUBS");
  seed_list(phys != NULL ? phys : "net0,net1", DATALINK_CLASS_PHYS, env_u32("FAKE_ILLUMOS_PHYS_MTU", 9000));
  seed_list(stubs != NULL ? stubs : "", DATALINK_CLASS_ETHERSTUB, 9000);
  return fake_write_file(path, "1\n", 2);
}

/* Ends a locked section: replaces the token if anything was written, then unlocks. */
static void unlock_state(int fd) {
  if (cache.changed) {
    uint64_t tok = fake_gen_bump(fd, FAKE_GEN_LINKS);
    if (tok == 0) cache.valid = 0;
    cache.token = tok;
    cache.changed = 0;
  }
  pthread_mutex_unlock(&cache_mu);
  fake_unlock(fd);
}

/* Locks, seeds and loads every link (from the cache when still good); returns the lock fd (>= 0)
 * or -1. */
static int open_state(links_t *ls) {
  ls->v = NULL;
  ls->n = 0;
  int fd = fake_lock();
  if (fd < 0) return -1;
  pthread_mutex_lock(&cache_mu);
  cache.changed = 0;
  const char *dir = fake_state_dir();
  uint64_t tok = fake_gen_read(fd, FAKE_GEN_LINKS);
  if (!cache.valid || tok == 0 || tok != cache.token || dir == NULL || strcmp(dir, cache.dir) != 0) {
    cache.valid = 0;
    cache.next_id = 0;
    free_links(&cache.links);
    if (cache.next_fd >= 0) close(cache.next_fd);
    cache.next_fd = -1;
    /* The lock file fake_lock just checked is the one at its path (we hold it): the token check
     * of lock-free reads looks at it from now on. */
    if (cache.peek_fd >= 0) close(cache.peek_fd);
    char lockpath[4096];
    cache.peek_fd = fake_path(lockpath, sizeof(lockpath), "", ".lock") == 0 ? open(lockpath, O_RDONLY | O_CLOEXEC) : -1;
    links_t fresh;
    if (ensure_seeded() != 0 || load_links(&fresh) != 0) {
      unlock_state(fd);
      return -1;
    }
    cache.links = fresh;
    snprintf(cache.dir, sizeof(cache.dir), "%s", dir);
    cache.valid = 1;
    cache.token = tok;
    if (tok == 0) cache.changed = 1; /* no token yet: make one now */
  }
  if (cache.links.n > 0) {
    ls->v = malloc(cache.links.n * sizeof(link_t));
    if (ls->v == NULL) {
      unlock_state(fd);
      return -1;
    }
    memcpy(ls->v, cache.links.v, cache.links.n * sizeof(link_t));
    ls->n = cache.links.n;
  }
  return fd;
}

static void close_state(int fd, links_t *ls) {
  free_links(ls);
  unlock_state(fd);
}

/* What open_view returns when it answers from the cache without the lock. */
#define VIEW_UNLOCKED (-2)

/*
 * For calls that only read. Returns VIEW_UNLOCKED, with cache_mu held and *ls = the cached links
 * themselves (not a copy: neither change them nor call back into the library), when the cache is
 * for this state directory and the token in its lock file is still the one it was loaded or last
 * written at: no other process has changed a link since (writers replace the token before they
 * unlock), and the lock file is still linked (a state directory removed and made again has a new
 * one). That is two syscalls instead of the lock's five. Otherwise what open_state returns: a lock
 * fd and a copy, or -1. Either way, end with close_view.
 */
static int open_view(links_t *ls) {
  pthread_mutex_lock(&cache_mu);
  const char *dir = fake_state_dir();
  if (cache.valid && cache.token != 0 && cache.peek_fd >= 0 && dir != NULL && strcmp(dir, cache.dir) == 0) {
    struct stat st;
    if (fstat(cache.peek_fd, &st) == 0 && st.st_nlink > 0 && fake_gen_read(cache.peek_fd, FAKE_GEN_LINKS) == cache.token) {
      *ls = cache.links;
      return VIEW_UNLOCKED;
    }
  }
  pthread_mutex_unlock(&cache_mu);
  return open_state(ls);
}

static void close_view(int fd, links_t *ls) {
  if (fd == VIEW_UNLOCKED) {
    ls->v = NULL;
    ls->n = 0;
    pthread_mutex_unlock(&cache_mu);
  } else {
    close_state(fd, ls);
  }
}

static uint32_t lower_mtu(links_t *ls, const link_t *l) {
  if (l->cls == DATALINK_CLASS_ETHERSTUB || l->cls == DATALINK_CLASS_PHYS) return l->mtu;
  const link_t *over = by_id(ls, l->over);
  return over != NULL ? over->mtu : 9000;
}

static int abi14(void) {
  const char *v = getenv("FAKE_ILLUMOS_DLADM_ABI");
  return v != NULL && strcmp(v, "14") == 0;
}

/* ---- the API --------------------------------------------------------------------------------- */

dladm_status_t dladm_open(dladm_handle_t *hp) {
  if (hp == NULL) return DLADM_STATUS_BADARG;
  /* The real one opens /dev/dld; here the fake host's state directory must exist. */
  if (fake_state_dir() == NULL) return DLADM_STATUS_NOTFOUND;
  dladm_handle_t h = calloc(1, sizeof(*h));
  if (h == NULL) return DLADM_STATUS_NOMEM;
  h->magic = HANDLE_MAGIC;
  atomic_init(&h->owner, 0UL);
  *hp = h;
  return DLADM_STATUS_OK;
}

void dladm_close(dladm_handle_t h) {
  if (h == NULL) return;
  if (h->magic != HANDLE_MAGIC) die("dladm_close of a closed or bad handle", h);
  if (atomic_load(&h->owner) != 0) die("dladm_close while a call is using the handle", h);
  h->magic = HANDLE_FREED;
  free(h);
}

const char *dladm_status2str(dladm_status_t status, char *buf) {
  const char *s;
  switch (status) {
    case DLADM_STATUS_OK: s = "ok"; break;
    case DLADM_STATUS_BADARG: s = "invalid argument"; break;
    case DLADM_STATUS_FAILED: s = "operation failed"; break;
    case DLADM_STATUS_TOOSMALL: s = "buffer size too small"; break;
    case DLADM_STATUS_NOTSUP: s = "operation not supported"; break;
    case DLADM_STATUS_NOTFOUND: s = "object not found"; break;
    case DLADM_STATUS_BADVAL: s = "invalid value"; break;
    case DLADM_STATUS_NOMEM: s = "insufficient memory"; break;
    case DLADM_STATUS_EXIST: s = "object already exists"; break;
    case DLADM_STATUS_LINKINVAL: s = "invalid link"; break;
    case DLADM_STATUS_PROPRDONLY: s = "read-only property"; break;
    case DLADM_STATUS_BADVALCNT: s = "invalid number of values"; break;
    case DLADM_STATUS_DBNOTFOUND: s = "database not found"; break;
    case DLADM_STATUS_DENIED: s = "permission denied"; break;
    case DLADM_STATUS_IOERR: s = "I/O error"; break;
    case DLADM_STATUS_TEMPONLY: s = "change cannot be persistent"; break;
    case DLADM_STATUS_TIMEDOUT: s = "operation timed out"; break;
    case DLADM_STATUS_ISCONN: s = "already connected"; break;
    case DLADM_STATUS_NOTCONN: s = "not connected"; break;
    case DLADM_STATUS_REPOSITORYINVAL: s = "invalid configuration repository"; break;
    case DLADM_STATUS_MACADDRINVAL: s = "invalid MAC address"; break;
    case DLADM_STATUS_KEYINVAL: s = "invalid key"; break;
    case DLADM_STATUS_INVALIDMACADDRLEN: s = "invalid MAC address length"; break;
    case DLADM_STATUS_INVALIDMACADDRTYPE: s = "invalid MAC address type"; break;
    case DLADM_STATUS_LINKBUSY: s = "link busy"; break;
    case DLADM_STATUS_VIDINVAL: s = "invalid VLAN identifier"; break;
    case DLADM_STATUS_TRYAGAIN: s = "try again later"; break;
    case DLADM_STATUS_NONOTIF: s = "link notification is not supported"; break;
    case DLADM_STATUS_INVALIDMACADDR: s = "invalid MAC address value"; break;
    case DLADM_STATUS_INVALIDMACADDRNIC: s = "MAC address reserved for use by underlying data-link"; break;
    case DLADM_STATUS_INVALIDMACADDRINUSE: s = "MAC address is already in use"; break;
    case DLADM_STATUS_MACFACTORYNOTSUP: s = "factory MAC address slots not supported"; break;
    case DLADM_STATUS_INVALID_MTU: s = "MTU check failed, MTU outside of device's supported range"; break;
    case DLADM_STATUS_PERSIST_ON_TEMP: s = "can't create persistent object on top of temporary object"; break;
    default: s = "<unknown error>"; break;
  }
  (void)snprintf(buf, DLADM_STRSIZE, "%s", s);
  return buf;
}

/* libdladm.c: shorter than MAXLINKNAMELEN, no leading digit, ends in a number without leading
 * zeroes, only [A-Za-z0-9_.]. (The real one reads link[-1] for "" and passes plain chars to
 * isdigit; here both are guarded.) */
boolean_t dladm_valid_linkname(const char *link) {
  if (link == NULL) return B_FALSE;
  size_t len = strlen(link);
  if (len == 0 || len >= MAXLINKNAMELEN) return B_FALSE;
  if (isdigit((unsigned char)link[0])) return B_FALSE;
  const char *cp = link + len - 1;
  int nd = 0;
  while (cp >= link && isdigit((unsigned char)*cp)) {
    cp--;
    nd++;
  }
  if (nd == 0 || (nd > 1 && cp[1] == '0')) return B_FALSE;
  for (cp = link; *cp != '\0'; cp++) {
    unsigned char c = (unsigned char)*cp;
    if (c >= 0x80 || (!isalnum(c) && c != '_' && c != '.')) return B_FALSE;
  }
  return B_TRUE;
}

dladm_status_t dladm_name2info(dladm_handle_t h, const char *link, datalink_id_t *linkidp, uint32_t *flagp,
                               datalink_class_t *classp, uint32_t *mediap) {
  if (h == NULL || link == NULL) return DLADM_STATUS_BADARG;
  enter(h);
  char name[MAXLINKNAMELEN];
  copy_name(name, link);
  links_t ls;
  dladm_status_t st = DLADM_STATUS_OK;
  int fd = open_view(&ls);
  if (fd == -1) {
    st = DLADM_STATUS_FAILED;
  } else {
    link_t *l = by_name(&ls, name);
    if (l == NULL) {
      st = DLADM_STATUS_NOTFOUND;
    } else {
      if (linkidp != NULL) *linkidp = l->id;
      if (flagp != NULL) *flagp = l->flags;
      if (classp != NULL) *classp = (datalink_class_t)l->cls;
      if (mediap != NULL) *mediap = DL_ETHER;
    }
    close_view(fd, &ls);
  }
  leave(h);
  return st;
}

dladm_status_t dladm_datalink_id2info(dladm_handle_t h, datalink_id_t id, uint32_t *flagp,
                                      datalink_class_t *classp, uint32_t *mediap, char *link, size_t len) {
  if (h == NULL) return DLADM_STATUS_BADARG;
  enter(h);
  links_t ls;
  dladm_status_t st = DLADM_STATUS_OK;
  int fd = open_view(&ls);
  if (fd == -1) {
    st = DLADM_STATUS_FAILED;
  } else {
    link_t *l = by_id(&ls, id);
    if (l == NULL) {
      st = DLADM_STATUS_NOTFOUND;
    } else if (link != NULL && len != 0 && strlen(l->name) + 1 > len) {
      st = DLADM_STATUS_TOOSMALL;
    } else {
      if (flagp != NULL) *flagp = l->flags;
      if (classp != NULL) *classp = (datalink_class_t)l->cls;
      if (mediap != NULL) *mediap = DL_ETHER;
      if (link != NULL && len != 0) snprintf(link, len, "%s", l->name);
    }
    close_view(fd, &ls);
  }
  leave(h);
  return st;
}

dladm_status_t dladm_walk_datalink_id(int (*fn)(dladm_handle_t, datalink_id_t, void *), dladm_handle_t h, void *arg,
                                      datalink_class_t cls, datalink_media_t dmedia, uint32_t flags) {
  if (h == NULL || fn == NULL) return DLADM_STATUS_BADARG;
  enter(h);
  links_t ls;
  int fd = open_view(&ls);
  if (fd == -1) {
    leave(h);
    return DLADM_STATUS_FAILED;
  }
  /* The callback calls back into the library, which takes cache_mu (and maybe the lock) again:
   * walk a copy, with neither held. */
  if (fd == VIEW_UNLOCKED) {
    links_t view = ls;
    ls.v = view.n > 0 ? malloc(view.n * sizeof(link_t)) : NULL;
    ls.n = ls.v != NULL ? view.n : 0;
    if (ls.n > 0) memcpy(ls.v, view.v, ls.n * sizeof(link_t));
    int nomem = view.n > 0 && ls.v == NULL;
    close_view(fd, &view);
    if (nomem) {
      leave(h);
      return DLADM_STATUS_NOMEM;
    }
  } else {
    unlock_state(fd); /* open_state's copy stays */
  }
  int any_media = ((dmedia >> 32) & 1) != 0;
  for (size_t i = 0; i < ls.n; i++) {
    const link_t *l = &ls.v[i];
    if ((l->cls & (uint32_t)cls) == 0 || (l->flags & flags) == 0) continue;
    if (!any_media && (uint32_t)dmedia != DL_ETHER) continue;
    if (fn(h, l->id, arg) == DLADM_WALK_TERMINATE) break;
  }
  free_links(&ls);
  leave(h);
  return DLADM_STATUS_OK;
}

/* The random part of a RANDOM VNIC's MAC: splitmix64 from a per-process getrandom seed (the
 * vnic driver takes the kernel's pseudo-random bytes; a syscall per VNIC buys nothing more). A
 * forked child seeds its own. Called with cache_mu held. */
static uint64_t mac_rng;
static int mac_rng_seeded;
static pthread_once_t mac_rng_once = PTHREAD_ONCE_INIT;
static void mac_rng_child(void) { mac_rng_seeded = 0; }
static void mac_rng_init(void) { (void)pthread_atfork(NULL, NULL, mac_rng_child); }

static int random_bytes(uchar_t *buf, size_t n) {
  (void)pthread_once(&mac_rng_once, mac_rng_init);
  if (!mac_rng_seeded) {
    ssize_t r;
    do {
      r = getrandom(&mac_rng, sizeof(mac_rng), 0);
    } while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof(mac_rng)) return -1;
    mac_rng_seeded = 1;
  }
  for (size_t i = 0; i < n; i++) {
    uint64_t z = (mac_rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    buf[i] = (uchar_t)((z ^ (z >> 31)) >> 56);
  }
  return 0;
}

static int mac_in_use(links_t *ls, datalink_id_t over, const uchar_t *mac) {
  for (size_t i = 0; i < ls->n; i++) {
    const link_t *l = &ls->v[i];
    if ((l->cls == DATALINK_CLASS_VNIC || l->cls == DATALINK_CLASS_VLAN) && l->over == over &&
        memcmp(l->mac, mac, ETHERADDRL) == 0)
      return 1;
  }
  return 0;
}

/* The body of dladm_vnic_create, after the checks that need no state. Called under the lock. */
static dladm_status_t vnic_create_locked(links_t *ls, const char *vnic, datalink_id_t linkid,
                                         vnic_mac_addr_type_t type, const uchar_t *mac_addr, uint_t mac_len,
                                         uint_t prefix_len, const uchar_t *prefix, uint16_t vid, vrid_t vrid, int af,
                                         datalink_id_t *vnic_id_out, uint32_t flags) {
  int is_etherstub = linkid == DATALINK_INVALID_LINKID;
  int is_vlan = (flags & DLADM_OPT_VLAN) != 0;
  link_t *over = NULL;
  if (!is_etherstub) {
    over = by_id(ls, linkid);
    if (over == NULL) return DLADM_STATUS_NOTFOUND;
    if ((flags & DLADM_OPT_PERSIST) != 0 && (over->flags & DLMGMT_PERSIST) == 0) return DLADM_STATUS_PERSIST_ON_TEMP;
    if (over->cls == DATALINK_CLASS_VNIC || over->cls == DATALINK_CLASS_VLAN) return DLADM_STATUS_BADARG;
  }
  if (type != VNIC_MAC_ADDR_TYPE_VRID && (af != 0 || vrid != VRRP_VRID_NONE)) return DLADM_STATUS_BADARG;
  if (type == VNIC_MAC_ADDR_TYPE_VRID) return DLADM_STATUS_NOTSUP; /* not modelled */
  if (mac_len > MAXMACADDRLEN) return DLADM_STATUS_INVALIDMACADDRLEN;

  /* dladm_create_datalink_id -> dlmgmtd */
  link_t l;
  memset(&l, 0, sizeof(l));
  if (vnic != NULL) {
    copy_name(l.name, vnic);
    if (!dladm_valid_linkname(l.name)) return DLADM_STATUS_BADARG; /* dlmgmtd: EINVAL */
    if (by_name(ls, l.name) != NULL) return DLADM_STATUS_EXIST;
  }

  /* VNIC_IOC_CREATE -> the vnic driver */
  if (!is_etherstub) {
    if (vid > 4094) return DLADM_STATUS_BADARG; /* EINVAL from mac_unicast_add */
    switch (type) {
      case VNIC_MAC_ADDR_TYPE_FIXED:
        if (mac_len != ETHERADDRL) return DLADM_STATUS_INVALIDMACADDRLEN;
        if (mac_addr == NULL) return DLADM_STATUS_BADARG;
        if ((mac_addr[0] & 0x01) != 0 || memcmp(mac_addr, "\0\0\0\0\0\0", ETHERADDRL) == 0)
          return DLADM_STATUS_INVALIDMACADDR;
        /* An xde port's primary address is its guest's MAC (xde registers it as m_src_addr), and
         * omicron made vopteN over opteN with that same MAC: the refusal is not modelled there. */
        if (over->cls != DATALINK_CLASS_MISC && memcmp(mac_addr, over->mac, ETHERADDRL) == 0)
          return DLADM_STATUS_INVALIDMACADDRNIC;
        if (mac_in_use(ls, linkid, mac_addr)) return DLADM_STATUS_INVALIDMACADDRINUSE;
        memcpy(l.mac, mac_addr, ETHERADDRL);
        break;
      case VNIC_MAC_ADDR_TYPE_RANDOM:
      case VNIC_MAC_ADDR_TYPE_AUTO: {
        if (prefix_len > ETHERADDRL - 1 || prefix == NULL) return DLADM_STATUS_BADARG;
        int tries = 0;
        do {
          memcpy(l.mac, prefix, prefix_len);
          if (random_bytes(l.mac + prefix_len, ETHERADDRL - prefix_len) != 0) return DLADM_STATUS_FAILED;
        } while (mac_in_use(ls, linkid, l.mac) && ++tries < 64);
        if (tries == 64) return DLADM_STATUS_INVALIDMACADDRINUSE;
        type = VNIC_MAC_ADDR_TYPE_RANDOM;
        break;
      }
      case VNIC_MAC_ADDR_TYPE_PRIMARY:
        if (!is_vlan) return DLADM_STATUS_BADARG;
        memcpy(l.mac, over->mac, ETHERADDRL);
        break;
      case VNIC_MAC_ADDR_TYPE_FACTORY:
        return DLADM_STATUS_MACFACTORYNOTSUP;
      default:
        return DLADM_STATUS_INVALIDMACADDRTYPE;
    }
    l.mtu = over->mtu;
  } else {
    static const uchar_t stub_prefix[3] = {0x02, 0x08, 0x20};
    memcpy(l.mac, stub_prefix, sizeof(stub_prefix));
    if (random_bytes(l.mac + 3, ETHERADDRL - 3) != 0) return DLADM_STATUS_FAILED;
    type = VNIC_MAC_ADDR_TYPE_RANDOM;
    l.mtu = 9000;
  }

  if ((l.id = alloc_id()) == 0) return DLADM_STATUS_FAILED;
  if (vnic == NULL) snprintf(l.name, sizeof(l.name), "vnic%u", l.id);
  l.cls = is_vlan ? DATALINK_CLASS_VLAN : is_etherstub ? DATALINK_CLASS_ETHERSTUB : DATALINK_CLASS_VNIC;
  l.flags = DLMGMT_ACTIVE | ((flags & DLADM_OPT_PERSIST) != 0 ? DLMGMT_PERSIST : 0);
  l.over = linkid;
  l.mactype = type;
  l.vid = vid;
  if (write_link(&l, 1) != 0) return DLADM_STATUS_IOERR;
  if (vnic_id_out != NULL) *vnic_id_out = l.id;
  return DLADM_STATUS_OK;
}

dladm_status_t dladm_vnic_create(dladm_handle_t h, const char *vnic, datalink_id_t linkid,
                                 vnic_mac_addr_type_t mac_addr_type, uchar_t *mac_addr, uint_t mac_len, int *mac_slot,
                                 uint_t mac_prefix_len, uint16_t vid, vrid_t vrid, int af, datalink_id_t *vnic_id_out,
                                 dladm_arg_list_t *proplist, dladm_errlist_t *errs, uint32_t flags) {
  (void)proplist;
  if (abi14()) {
    /* The 14-argument library: the caller's 14th argument is `flags`; there is no 15th. */
    flags = (uint32_t)(uintptr_t)errs;
  }
  if (h == NULL) return DLADM_STATUS_BADARG;

  /* The argument checks of libdlvnic.c, in its order; none touches the handle. */
  if ((flags & DLADM_OPT_ACTIVE) == 0) return DLADM_STATUS_NOTSUP;
  if ((flags & DLADM_OPT_ANCHOR) != 0 && (linkid != DATALINK_INVALID_LINKID || vid != 0)) return DLADM_STATUS_BADARG;
  if ((flags & DLADM_OPT_VLAN) != 0 && (vid < 1 || vid > 4094)) return DLADM_STATUS_VIDINVAL;
  if (mac_addr_type < VNIC_MAC_ADDR_TYPE_FIXED || mac_addr_type > VNIC_MAC_ADDR_TYPE_VRID)
    return DLADM_STATUS_INVALIDMACADDRTYPE;

  static const uchar_t def_prefix[3] = {0x02, 0x08, 0x20};
  const uchar_t *prefix = mac_addr;
  if ((mac_addr_type == VNIC_MAC_ADDR_TYPE_RANDOM || mac_addr_type == VNIC_MAC_ADDR_TYPE_AUTO) && mac_prefix_len == 0) {
    mac_prefix_len = sizeof(def_prefix);
    prefix = def_prefix;
  }

  enter(h);
  links_t ls;
  dladm_status_t st;
  int fd = open_state(&ls);
  if (fd < 0) {
    st = DLADM_STATUS_FAILED;
  } else {
    st = vnic_create_locked(&ls, vnic, linkid, mac_addr_type, mac_addr, mac_len, mac_prefix_len, prefix, vid, vrid,
                            af, vnic_id_out, flags);
    close_state(fd, &ls);
  }
  (void)mac_slot; /* unchanged: no factory slots */
  leave(h);
  return st;
}

dladm_status_t dladm_vnic_delete(dladm_handle_t h, datalink_id_t linkid, uint32_t flags) {
  if (h == NULL) return DLADM_STATUS_BADARG;
  if (flags == 0) return DLADM_STATUS_BADARG;
  enter(h);
  links_t ls;
  dladm_status_t st = DLADM_STATUS_OK;
  int fd = open_state(&ls);
  if (fd < 0) {
    st = DLADM_STATUS_FAILED;
  } else {
    link_t *l = by_id(&ls, linkid);
    if (l == NULL) {
      st = DLADM_STATUS_BADARG; /* libdlvnic.c: dladm_datalink_id2info failing is BADARG */
    } else if ((flags & DLADM_OPT_VLAN) != 0 ? l->cls != DATALINK_CLASS_VLAN
                                              : l->cls != DATALINK_CLASS_VNIC && l->cls != DATALINK_CLASS_ETHERSTUB) {
      st = DLADM_STATUS_BADARG;
    } else if ((flags & DLADM_OPT_ACTIVE) != 0) {
      for (size_t i = 0; i < ls.n; i++) {
        if (ls.v[i].over == linkid && ls.v[i].id != linkid) st = DLADM_STATUS_LINKBUSY; /* EBUSY */
      }
      if (st == DLADM_STATUS_OK && remove_link(linkid) != 0) st = DLADM_STATUS_IOERR;
    }
    close_state(fd, &ls);
  }
  leave(h);
  return st;
}

dladm_status_t dladm_vnic_info(dladm_handle_t h, datalink_id_t linkid, void *attrp, uint32_t flags) {
  if (h == NULL || attrp == NULL) return DLADM_STATUS_BADARG;
  if (flags != DLADM_OPT_ACTIVE && flags != DLADM_OPT_PERSIST) return DLADM_STATUS_BADARG;
  enter(h);
  links_t ls;
  dladm_status_t st = DLADM_STATUS_OK;
  int fd = open_view(&ls);
  if (fd == -1) {
    st = DLADM_STATUS_FAILED;
  } else {
    link_t *l = by_id(&ls, linkid);
    if (l == NULL || (l->cls != DATALINK_CLASS_VNIC && l->cls != DATALINK_CLASS_VLAN && l->cls != DATALINK_CLASS_ETHERSTUB)) {
      st = DLADM_STATUS_NOTFOUND; /* VNIC_IOC_INFO: ENOENT */
    } else if (flags == DLADM_OPT_PERSIST && (l->flags & DLMGMT_PERSIST) == 0) {
      st = DLADM_STATUS_NOTFOUND; /* no persistent configuration */
    } else {
      /* Field by field into the caller's struct, as i_dladm_vnic_info_active does. */
      fake_vnic_attr_head_t *a = attrp;
      memset((char *)attrp + sizeof(*a), 0, FAKE_VNIC_ATTR_SIZE - sizeof(*a));
      a->va_vnic_id = l->id;
      a->va_link_id = l->over;
      a->va_mac_addr_type = (vnic_mac_addr_type_t)l->mactype;
      memset(a->va_mac_addr, 0, sizeof(a->va_mac_addr));
      memcpy(a->va_mac_addr, l->mac, ETHERADDRL);
      a->va_mac_len = ETHERADDRL;
      a->va_mac_slot = -1;
      a->va_mac_prefix_len = l->mactype == VNIC_MAC_ADDR_TYPE_RANDOM ? 3 : 0;
      a->va_vid = l->vid;
      a->va_vrid = VRRP_VRID_NONE;
      a->va_af = 0;
      a->va_force = B_FALSE;
    }
    close_view(fd, &ls);
  }
  leave(h);
  return st;
}

/* ---- the zone property ------------------------------------------------------------------------- */

/* "%XX" escapes of the fake zonecfg's files undone in place. */
static void pct_decode(char *s) {
  char *w = s;
  for (const char *r = s; *r != '\0'; r++) {
    unsigned v;
    if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2]) && sscanf(r + 1, "%2x", &v) == 1) {
      *w++ = (char)v;
      r += 2;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
}

/*
 * getzoneidbyname over the fake kernel's table (zones/kernel, "zone <name> <id> <status>"): the
 * zone's id while it is ready or running, else -1. A zone on its way down is refused too: the
 * agent only ever gives links to a zone it is about to use.
 */
static int kernel_zone_id(const char *zone) {
  char path[4096];
  if (fake_path(path, sizeof(path), "zones", "kernel") != 0) return -1;
  char *text = fake_read_file(path, NULL);
  if (text == NULL) return -1;
  int found = -1;
  for (char *line = text; line != NULL && *line != '\0' && found < 0;) {
    char *nl = strchr(line, '\n');
    if (nl != NULL) *nl = '\0';
    char name[3 * ZONENAME_MAX + 1], status[16];
    int id;
    if (sscanf(line, "zone %192s %d %15s", name, &id, status) == 3) {
      pct_decode(name);
      if (strcmp(name, zone) == 0 && (strcmp(status, "ready") == 0 || strcmp(status, "running") == 0)) found = id;
    }
    line = nl != NULL ? nl + 1 : NULL;
  }
  free(text);
  return found;
}

/* The zone a link is in now: its recorded zone while that boot of it is in the kernel, else NULL (global). */
static const char *zone_of(const link_t *l) {
  if (l->zone[0] == '\0') return NULL;
  return kernel_zone_id(l->zone) == l->zoneid ? l->zone : NULL;
}

/*
 * set_zone: check_zone's getzoneidbyname (BADVAL for a zone not in the kernel), no change when
 * the link is already there, and the link recorded with that boot's id. Moving a link straight
 * from one non-global zone to another is refused with LINKBUSY: our choice, not confirmed
 * against the kernel's dls_devnet_setzid.
 */
static dladm_status_t set_zone_locked(link_t *l, const char *zone) {
  const char *now = zone_of(l);
  if (zone == NULL || strcmp(zone, "global") == 0) {
    if (l->zone[0] == '\0') return DLADM_STATUS_OK;
    l->zone[0] = '\0';
    l->zoneid = 0;
    return write_link(l, 0) == 0 ? DLADM_STATUS_OK : DLADM_STATUS_IOERR;
  }
  int id = kernel_zone_id(zone);
  if (id < 0) return DLADM_STATUS_BADVAL;
  if (now != NULL && strcmp(now, zone) == 0) return DLADM_STATUS_OK;
  if (now != NULL) return DLADM_STATUS_LINKBUSY;
  snprintf(l->zone, sizeof(l->zone), "%s", zone);
  l->zoneid = id;
  return write_link(l, 0) == 0 ? DLADM_STATUS_OK : DLADM_STATUS_IOERR;
}

static int parse_mtu(const char *s, uint32_t *out) {
  if (s == NULL || *s == '\0') return -1;
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || *end != '\0' || !isdigit((unsigned char)s[0]) || v > UINT32_MAX) return -1;
  *out = (uint32_t)v;
  return 0;
}

dladm_status_t dladm_set_linkprop(dladm_handle_t h, datalink_id_t linkid, const char *prop_name, char **prop_val,
                                  uint_t val_cnt, uint_t flags) {
  if (h == NULL) return DLADM_STATUS_BADARG;
  if ((flags & (DLADM_OPT_ACTIVE | DLADM_OPT_PERSIST)) == 0) return DLADM_STATUS_BADARG;
  int is_zone = prop_name != NULL && strcmp(prop_name, "zone") == 0;
  if (prop_name != NULL && strcmp(prop_name, "mtu") != 0 && !is_zone) return DLADM_STATUS_NOTFOUND;
  if (is_zone && (flags & DLADM_OPT_PERSIST) != 0) return DLADM_STATUS_TEMPONLY; /* PD_TEMPONLY */
  if (val_cnt > 1) return DLADM_STATUS_BADVALCNT;
  if (val_cnt == 1 && (prop_val == NULL || prop_val[0] == NULL)) return DLADM_STATUS_BADARG;
  enter(h);
  links_t ls;
  dladm_status_t st = DLADM_STATUS_OK;
  int fd = open_state(&ls);
  if (fd < 0) {
    st = DLADM_STATUS_FAILED;
  } else {
    link_t *l = by_id(&ls, linkid);
    if (l == NULL) {
      st = DLADM_STATUS_NOTFOUND;
    } else if ((flags & DLADM_OPT_PERSIST) != 0 && (l->flags & DLMGMT_PERSIST) == 0) {
      st = DLADM_STATUS_TEMPONLY;
    } else if (is_zone) {
      st = set_zone_locked(l, val_cnt == 0 ? NULL : prop_val[0]);
    } else if (prop_name == NULL || val_cnt == 0) {
      l->mtu = l->cls == DATALINK_CLASS_PHYS ? env_u32("FAKE_ILLUMOS_PHYS_MTU", 9000)
               : l->cls == DATALINK_CLASS_ETHERSTUB ? 9000
                                                   : lower_mtu(&ls, l);
      if (write_link(l, 0) != 0) st = DLADM_STATUS_IOERR;
    } else {
      uint32_t mtu = 0;
      uint32_t max = l->cls == DATALINK_CLASS_VNIC || l->cls == DATALINK_CLASS_VLAN ? lower_mtu(&ls, l) : 9000;
      if (parse_mtu(prop_val[0], &mtu) != 0 || mtu < 576 || mtu > max) {
        st = DLADM_STATUS_BADVAL; /* outside the property's range */
      } else {
        l->mtu = mtu;
        if (write_link(l, 0) != 0) st = DLADM_STATUS_IOERR;
      }
    }
    close_state(fd, &ls);
  }
  leave(h);
  return st;
}

dladm_status_t dladm_get_linkprop(dladm_handle_t h, datalink_id_t linkid, dladm_prop_type_t type,
                                  const char *prop_name, char **prop_val, uint_t *val_cntp) {
  if (h == NULL || prop_name == NULL || prop_val == NULL || val_cntp == NULL) return DLADM_STATUS_BADARG;
  int is_zone = strcmp(prop_name, "zone") == 0;
  if (strcmp(prop_name, "mtu") != 0 && !is_zone) return DLADM_STATUS_NOTFOUND;
  if (*val_cntp < 1) return DLADM_STATUS_TOOSMALL;
  if (prop_val[0] == NULL) return DLADM_STATUS_BADARG;
  enter(h);
  links_t ls;
  dladm_status_t st = DLADM_STATUS_OK;
  int fd = open_view(&ls);
  if (fd == -1) {
    st = DLADM_STATUS_FAILED;
  } else {
    link_t *l = by_id(&ls, linkid);
    if (l == NULL) {
      st = DLADM_STATUS_NOTFOUND;
    } else if (is_zone) {
      /* get_zone: the zone's name, "" in the global zone; the default is "" (pd_defval). */
      const char *z = zone_of(l);
      switch (type) {
        case DLADM_PROP_VAL_CURRENT: snprintf(prop_val[0], DLADM_PROP_VAL_MAX, "%s", z != NULL ? z : ""); break;
        case DLADM_PROP_VAL_DEFAULT: prop_val[0][0] = '\0'; break;
        case DLADM_PROP_VAL_PERM: snprintf(prop_val[0], DLADM_PROP_VAL_MAX, "rw"); break;
        default: st = DLADM_STATUS_NOTFOUND; break;
      }
      if (st == DLADM_STATUS_OK) *val_cntp = 1;
    } else {
      switch (type) {
        case DLADM_PROP_VAL_CURRENT: snprintf(prop_val[0], DLADM_PROP_VAL_MAX, "%u", l->mtu); break;
        case DLADM_PROP_VAL_DEFAULT: snprintf(prop_val[0], DLADM_PROP_VAL_MAX, "%u", lower_mtu(&ls, l)); break;
        case DLADM_PROP_VAL_PERM: snprintf(prop_val[0], DLADM_PROP_VAL_MAX, "rw"); break;
        case DLADM_PROP_VAL_MODIFIABLE: snprintf(prop_val[0], DLADM_PROP_VAL_MAX, "576-%u", lower_mtu(&ls, l)); break;
        default: st = DLADM_STATUS_NOTFOUND; break; /* no persistent value of a temporary link */
      }
      if (st == DLADM_STATUS_OK) *val_cntp = 1;
    }
    close_view(fd, &ls);
  }
  leave(h);
  return st;
}
