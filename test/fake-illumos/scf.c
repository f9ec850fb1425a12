/*
 * Fake libscf.so.1: the part of libscf the addon uses to read and wait for a service instance's
 * restarter/state inside a zone (the illumos-gate headers, as native/abi/ declares them; the semantics
 * below were checked against illumos-gate usr/src/lib/libscf/common/lowlevel.c, error.c and
 * svc.configd, see native/abi/scf.h).
 *
 * The repository is the fake SMF repository of common.h: "<state>/smf/<zone>/<escaped fmri>"
 * holds the instance's restarter state, replaced atomically (rename) by whoever changes it. The
 * directory "<state>/smf/<zone>" stands for the zone's running svc.configd: it exists while the
 * zone is up (the fake zoneadm boot writes it, halt removes it).
 *
 *   scf_handle_decorate(h, "zone", v)  unknown zone -> SCF_ERROR_NOT_FOUND. A zone is known if
 *                      it has a repository directory, or libzonecfg's zone_get_rootpath() (found
 *                      with dlopen("libzonecfg.so.1"), as the real libscf does; the fake
 *                      libzonecfg's zone_get_zonepath if it has no zone_get_rootpath) says Z_OK,
 *                      i.e. it is configured. A configured zone that is not running then fails
 *                      in scf_handle_bind with SCF_ERROR_NO_SERVER.
 *                      "global" is always known. IN_USE once bound, HANDLE_MISMATCH for a value
 *                      of another handle.
 *   scf_handle_bind    no repository directory for the zone -> SCF_ERROR_NO_SERVER.
 *   scf_handle_decode_fmri   "svc:/<service>:<instance>" into an instance (SCF_DECODE_FMRI_EXACT
 *                      / REQUIRE_INSTANCE honoured); malformed -> INVALID_ARGUMENT, no instance
 *                      part -> CONSTRAINT_VIOLATED, no such instance -> NOT_FOUND.
 *   scf_instance_get_pg      only "restarter" exists; the pg remembers the VERSION it was read
 *                      at (file contents + inode + ctime), like a configd node.
 *   scf_pg_get_property      "state" (the file) and "next_state" ("none"), at the pg's version.
 *   scf_pg_update      1 (SCF_COMPLETE) if the pg moved to a newer version, 0 if already the
 *                      latest, -1/SCF_ERROR_DELETED if the instance is gone.
 *   _scf_pg_wait(pg, secs)  returns SCF_SUCCESS at once if the pg is not the latest version
 *                      (configd's REP_PROTOCOL_FAIL_NOT_LATEST); otherwise ONE blocking poll()
 *                      on an inotify watch of the zone's repository directory (plus the
 *                      notification pipe, see below) with timeout secs * 1000 ms (secs < 0:
 *                      forever): SCF_SUCCESS when this instance's file was replaced or removed,
 *                      SCF_COMPLETE on timeout. Changes to other instances are filtered out of
 *                      the inotify stream without returning (the real configd only notifies
 *                      for this pg).
 *   scf_handle_unbind  like configd's client_destroy -> rc_pg_notify_fini: closes the write end
 *                      of every pending wait's notification pipe, so a _scf_pg_wait blocked in
 *                      another thread sees POLLHUP and returns SCF_SUCCESS; the next call on the
 *                      handle (scf_pg_update) fails with SCF_ERROR_NOT_BOUND. That is the only
 *                      way to cancel a wait, on the real system and here.
 * Errors: -1 (or NULL) and the thread's scf_error(); texts are libscf's (error.c).
 */
#define _GNU_SOURCE
#include "common.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

typedef unsigned long scf_version_t;
#define SCF_VERSION 1UL

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
_Static_assert(sizeof(scf_error_t) == 4, "scf_error_t is int-sized");

#define SCF_DECODE_FMRI_EXACT 0x00000001
#define SCF_DECODE_FMRI_TRUNCATE 0x00000002
#define SCF_DECODE_FMRI_REQUIRE_INSTANCE 0x00000004
#define SCF_DECODE_FMRI_REQUIRE_NO_INSTANCE 0x00000008

#define ZONENAME_MAX 64
#define FMRI_MAX 1024
#define VALUE_MAX 4096
#define Z_OK 0

typedef struct scf_scope scf_scope_t;
typedef struct scf_service scf_service_t;

/* A pending _scf_pg_wait: the write end of its notification pipe, owned by the handle. */
typedef struct pg_waiter {
  int wfd;
  struct pg_waiter *next;
} pg_waiter_t;

typedef struct scf_handle {
  pthread_mutex_t lock;
  int bound;
  char zone[ZONENAME_MAX]; /* "" = not decorated: the global zone */
  char root[4096];         /* the fake host's state directory, fixed when bound */
  pg_waiter_t *waiters;
} scf_handle_t;

typedef struct scf_value {
  scf_handle_t *h;
  int set;
  char str[VALUE_MAX];
} scf_value_t;

typedef struct scf_instance {
  scf_handle_t *h;
  int set;
  char fmri[FMRI_MAX]; /* canonical "svc:/<service>:<instance>" */
  char dir[4096];      /* the zone's repository directory */
  char file[4096];     /* the instance's state file in it */
} scf_instance_t;

/* The version of a pg as configd would number it: what the state file was when last read. */
typedef struct pg_version {
  ino_t ino;
  struct timespec ctim;
  char state[VALUE_MAX];
} pg_version_t;

typedef struct scf_propertygroup {
  scf_handle_t *h;
  int set;
  char dir[4096];
  char file[4096];
  pg_version_t ver;
} scf_propertygroup_t;

typedef struct scf_property {
  scf_handle_t *h;
  int set;
  char value[VALUE_MAX];
} scf_property_t;

/* ---- errors (error.c) ---- */

static __thread scf_error_t t_error = SCF_ERROR_NONE;

static int set_error(scf_error_t e) {
  t_error = e;
  return -1;
}

scf_error_t scf_error(void) { return t_error; }

const char *scf_strerror(scf_error_t code) {
  switch (code) {
    case SCF_ERROR_NONE: return "no error";
    case SCF_ERROR_NOT_BOUND: return "handle not bound";
    case SCF_ERROR_NOT_SET: return "cannot use unset argument";
    case SCF_ERROR_NOT_FOUND: return "entity not found";
    case SCF_ERROR_TYPE_MISMATCH: return "type does not match value";
    case SCF_ERROR_IN_USE: return "cannot modify while in-use";
    case SCF_ERROR_CONNECTION_BROKEN: return "connection to repository broken";
    case SCF_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case SCF_ERROR_NO_MEMORY: return "no memory available";
    case SCF_ERROR_CONSTRAINT_VIOLATED: return "required constraint not met";
    case SCF_ERROR_EXISTS: return "object already exists";
    case SCF_ERROR_NO_SERVER: return "repository server unavailable";
    case SCF_ERROR_NO_RESOURCES: return "server has insufficient resources";
    case SCF_ERROR_PERMISSION_DENIED: return "insufficient privileges for action";
    case SCF_ERROR_BACKEND_ACCESS: return "backend refused access";
    case SCF_ERROR_BACKEND_READONLY: return "backend is read-only";
    case SCF_ERROR_HANDLE_MISMATCH: return "mismatched SCF handles";
    case SCF_ERROR_HANDLE_DESTROYED: return "object bound to destroyed handle";
    case SCF_ERROR_VERSION_MISMATCH: return "incompatible SCF version";
    case SCF_ERROR_DELETED: return "object has been deleted";
    case SCF_ERROR_TEMPLATE_INVALID: return "template data is invalid";
    case SCF_ERROR_CALLBACK_FAILED: return "user callback function failed";
    case SCF_ERROR_INTERNAL: return "internal error";
  }
  return "unknown error";
}

/* ---- the fake repository ---- */

static const char *zone_of(const scf_handle_t *h) { return h->zone[0] != '\0' ? h->zone : "global"; }

/*
 * "<root>/smf/<zone>": the zone's running repository; "<root>/smf/<zone>/<fmri, '/' and ':' as
 * '_'>": an instance's state (the layout of common.c's fake_smf_path). Paths are resolved from
 * the state directory a handle was bound under, so a bound handle keeps talking to "its" configd
 * whatever happens to FAKE_ILLUMOS_STATE later.
 */
static int repo_dir(char *buf, size_t len, const char *root, const char *zone) {
  if (root == NULL || root[0] == '\0') {
    errno = ENOENT;
    return -1;
  }
  int n = snprintf(buf, len, "%s/smf/%s", root, zone);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int instance_file(char *buf, size_t len, const char *root, const char *zone, const char *fmri) {
  char dir[4096];
  if (repo_dir(dir, sizeof(dir), root, zone) != 0) return -1;
  int n = snprintf(buf, len, "%s/", dir);
  if (n < 0 || (size_t)n >= len) return -1;
  size_t i = (size_t)n;
  for (const char *p = fmri; *p != '\0'; p++) {
    if (i + 1 >= len) return -1;
    buf[i++] = (*p == '/' || *p == ':') ? '_' : *p;
  }
  buf[i] = '\0';
  return 0;
}

static int repo_running(const char *root, const char *zone) {
  char dir[4096];
  struct stat st;
  return repo_dir(dir, sizeof(dir), root, zone) == 0 && stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Reads an instance's state file: 0, or -1 with errno (ENOENT: no such instance). */
static int read_version(const char *path, pg_version_t *out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  ssize_t n = read(fd, out->state, sizeof(out->state) - 1);
  int saved = errno;
  close(fd);
  if (n < 0) {
    errno = saved;
    return -1;
  }
  out->state[n] = '\0';
  /* One value per file; tolerate a trailing newline from hand-written files. */
  while (n > 0 && (out->state[n - 1] == '\n' || out->state[n - 1] == '\r')) out->state[--n] = '\0';
  out->ino = st.st_ino;
  out->ctim = st.st_ctim;
  return 0;
}

static int same_version(const pg_version_t *a, const pg_version_t *b) {
  return a->ino == b->ino && a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec &&
         strcmp(a->state, b->state) == 0;
}

static int is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == ',' || c == '+';
}

/*
 * Parses "svc:/<service>[:<instance>][/:properties/...]" (also "svc://localhost/..."). Fills the
 * canonical instance FMRI. Returns 0, or an scf_error_t.
 */
static scf_error_t parse_fmri(const char *fmri, int flags, char *canon, size_t len) {
  const char *p;
  if (strncmp(fmri, "svc://localhost/", 16) == 0) {
    p = fmri + 16;
  } else if (strncmp(fmri, "svc:/", 5) == 0 && fmri[5] != '/') {
    p = fmri + 5;
  } else {
    return SCF_ERROR_INVALID_ARGUMENT;
  }
  const char *svc = p;
  /* service: name components separated by '/' */
  for (;;) {
    const char *start = p;
    while (is_name_char(*p)) p++;
    if (p == start) return SCF_ERROR_INVALID_ARGUMENT;
    if (*p == '/' && p[1] != ':') {
      p++;
      continue;
    }
    break;
  }
  size_t svclen = (size_t)(p - svc);
  const char *inst = NULL;
  size_t instlen = 0;
  if (*p == ':') {
    p++;
    inst = p;
    while (is_name_char(*p)) p++;
    instlen = (size_t)(p - inst);
    if (instlen == 0) return SCF_ERROR_INVALID_ARGUMENT;
  }
  int has_pg = 0;
  if (strncmp(p, "/:properties/", 13) == 0) {
    has_pg = 1;
  } else if (*p != '\0') {
    return SCF_ERROR_INVALID_ARGUMENT;
  }
  if (inst == NULL) {
    /* Decoding into an instance needs one; so does REQUIRE_INSTANCE. */
    return SCF_ERROR_CONSTRAINT_VIOLATED;
  }
  if ((flags & SCF_DECODE_FMRI_REQUIRE_NO_INSTANCE) != 0) return SCF_ERROR_CONSTRAINT_VIOLATED;
  if (has_pg && (flags & SCF_DECODE_FMRI_EXACT) != 0) return SCF_ERROR_CONSTRAINT_VIOLATED;
  int n = snprintf(canon, len, "svc:/%.*s:%.*s", (int)svclen, svc, (int)instlen, inst);
  if (n < 0 || (size_t)n >= len) return SCF_ERROR_INVALID_ARGUMENT;
  return 0;
}

/* ---- handles ---- */

scf_handle_t *scf_handle_create(scf_version_t v) {
  if (v != SCF_VERSION) {
    set_error(SCF_ERROR_VERSION_MISMATCH);
    return NULL;
  }
  scf_handle_t *h = calloc(1, sizeof(*h));
  if (h == NULL) {
    set_error(SCF_ERROR_NO_MEMORY);
    return NULL;
  }
  pthread_mutex_init(&h->lock, NULL);
  return h;
}

static int zone_known(const char *zone) {
  if (strcmp(zone, "global") == 0 || repo_running(fake_state_dir(), zone)) return 1;
  /* The real libscf asks libzonecfg (dlopen, since libzonecfg links against libscf). */
  void *dl = dlopen("libzonecfg.so.1", RTLD_LAZY);
  if (dl == NULL) return 0;
  /* zone_get_rootpath is zone_get_zonepath + "/root"; use the latter if the fake lacks the former. */
  int (*get_rootpath)(char *, char *, size_t) = (int (*)(char *, char *, size_t))dlsym(dl, "zone_get_rootpath");
  if (get_rootpath == NULL) get_rootpath = (int (*)(char *, char *, size_t))dlsym(dl, "zone_get_zonepath");
  int known = 0;
  if (get_rootpath != NULL) {
    char name[ZONENAME_MAX], root[4096];
    snprintf(name, sizeof(name), "%s", zone);
    known = get_rootpath(name, root, sizeof(root)) == Z_OK;
  }
  dlclose(dl);
  return known;
}

int scf_handle_decorate(scf_handle_t *h, const char *name, scf_value_t *v) {
  if (h == NULL || name == NULL) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  if (v != NULL && v->h != h) return set_error(SCF_ERROR_HANDLE_MISMATCH);
  pthread_mutex_lock(&h->lock);
  int bound = h->bound;
  pthread_mutex_unlock(&h->lock);
  if (bound) return set_error(SCF_ERROR_IN_USE);
  if (strcmp(name, "debug") == 0 || strcmp(name, "door_path") == 0) return 0;
  if (strcmp(name, "zone") != 0) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  if (v == NULL) { /* SCF_DECORATE_CLEAR */
    h->zone[0] = '\0';
    return 0;
  }
  if (!v->set) return set_error(SCF_ERROR_NOT_SET);
  size_t len = strlen(v->str);
  if (len == 0 || len >= ZONENAME_MAX || strchr(v->str, '/') != NULL || strcmp(v->str, ".") == 0 ||
      strcmp(v->str, "..") == 0)
    return set_error(SCF_ERROR_INVALID_ARGUMENT);
  if (!zone_known(v->str)) return set_error(SCF_ERROR_NOT_FOUND);
  memcpy(h->zone, v->str, len + 1);
  return 0;
}

int scf_handle_bind(scf_handle_t *h) {
  if (h == NULL) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  pthread_mutex_lock(&h->lock);
  if (h->bound) {
    pthread_mutex_unlock(&h->lock);
    return set_error(SCF_ERROR_IN_USE);
  }
  const char *zone = zone_of(h);
  const char *root = fake_state_dir();
  if (root == NULL || strlen(root) >= sizeof(h->root) || (strcmp(zone, "global") != 0 && !repo_running(root, zone))) {
    pthread_mutex_unlock(&h->lock);
    return set_error(SCF_ERROR_NO_SERVER);
  }
  memcpy(h->root, root, strlen(root) + 1);
  h->bound = 1;
  pthread_mutex_unlock(&h->lock);
  return 0;
}

/* Closes every pending wait's pipe (configd: rc_pg_notify_fini on client destroy). Lock held. */
static void wake_waiters_locked(scf_handle_t *h) {
  for (pg_waiter_t *w = h->waiters; w != NULL; w = w->next) {
    if (w->wfd >= 0) {
      close(w->wfd);
      w->wfd = -1;
    }
  }
}

int scf_handle_unbind(scf_handle_t *h) {
  if (h == NULL) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  pthread_mutex_lock(&h->lock);
  if (!h->bound) {
    pthread_mutex_unlock(&h->lock);
    return set_error(SCF_ERROR_NOT_BOUND);
  }
  h->bound = 0;
  wake_waiters_locked(h);
  pthread_mutex_unlock(&h->lock);
  return 0;
}

void scf_handle_destroy(scf_handle_t *h) {
  if (h == NULL) return;
  pthread_mutex_lock(&h->lock);
  h->bound = 0;
  wake_waiters_locked(h);
  pthread_mutex_unlock(&h->lock);
  /* A waiter still inside _scf_pg_wait would be a caller bug (use after destroy), as for real. */
  pthread_mutex_destroy(&h->lock);
  free(h);
}

static int check_bound(scf_handle_t *h) {
  pthread_mutex_lock(&h->lock);
  int bound = h->bound;
  pthread_mutex_unlock(&h->lock);
  return bound ? 0 : set_error(SCF_ERROR_NOT_BOUND);
}

/* ---- values ---- */

scf_value_t *scf_value_create(scf_handle_t *h) {
  if (h == NULL) {
    set_error(SCF_ERROR_INVALID_ARGUMENT);
    return NULL;
  }
  scf_value_t *v = calloc(1, sizeof(*v));
  if (v == NULL) {
    set_error(SCF_ERROR_NO_MEMORY);
    return NULL;
  }
  v->h = h;
  return v;
}

void scf_value_destroy(scf_value_t *v) { free(v); }

int scf_value_set_astring(scf_value_t *v, const char *s) {
  if (v == NULL || s == NULL) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  size_t len = strlen(s);
  if (len >= sizeof(v->str)) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  memcpy(v->str, s, len + 1);
  v->set = 1;
  return 0;
}

ssize_t scf_value_get_astring(const scf_value_t *v, char *buf, size_t len) {
  if (v == NULL) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  if (!v->set) return set_error(SCF_ERROR_NOT_SET);
  size_t n = strlen(v->str);
  if (buf != NULL && len > 0) {
    size_t c = n < len - 1 ? n : len - 1;
    memcpy(buf, v->str, c);
    buf[c] = '\0';
  }
  return (ssize_t)n;
}

/* ---- instances, property groups, properties ---- */

scf_instance_t *scf_instance_create(scf_handle_t *h) {
  if (h == NULL) {
    set_error(SCF_ERROR_INVALID_ARGUMENT);
    return NULL;
  }
  scf_instance_t *i = calloc(1, sizeof(*i));
  if (i == NULL) {
    set_error(SCF_ERROR_NO_MEMORY);
    return NULL;
  }
  i->h = h;
  return i;
}

void scf_instance_destroy(scf_instance_t *i) { free(i); }

scf_propertygroup_t *scf_pg_create(scf_handle_t *h) {
  if (h == NULL) {
    set_error(SCF_ERROR_INVALID_ARGUMENT);
    return NULL;
  }
  scf_propertygroup_t *pg = calloc(1, sizeof(*pg));
  if (pg == NULL) {
    set_error(SCF_ERROR_NO_MEMORY);
    return NULL;
  }
  pg->h = h;
  return pg;
}

void scf_pg_destroy(scf_propertygroup_t *pg) { free(pg); }

scf_property_t *scf_property_create(scf_handle_t *h) {
  if (h == NULL) {
    set_error(SCF_ERROR_INVALID_ARGUMENT);
    return NULL;
  }
  scf_property_t *p = calloc(1, sizeof(*p));
  if (p == NULL) {
    set_error(SCF_ERROR_NO_MEMORY);
    return NULL;
  }
  p->h = h;
  return p;
}

void scf_property_destroy(scf_property_t *p) { free(p); }

int scf_handle_decode_fmri(scf_handle_t *h, const char *fmri, scf_scope_t *scope, scf_service_t *svc,
                           scf_instance_t *inst, scf_propertygroup_t *pg, scf_property_t *prop, int flags) {
  if (h == NULL || fmri == NULL) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  if (scope != NULL || svc != NULL || pg != NULL || prop != NULL) {
    /* Only decoding into an instance is modelled. */
    return set_error(SCF_ERROR_INVALID_ARGUMENT);
  }
  if (inst == NULL) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  if (inst->h != h) return set_error(SCF_ERROR_HANDLE_MISMATCH);
  if (check_bound(h) != 0) return -1;
  char canon[FMRI_MAX];
  scf_error_t e = parse_fmri(fmri, flags, canon, sizeof(canon));
  if (e != 0) return set_error(e);
  char dir[4096], file[4096];
  if (repo_dir(dir, sizeof(dir), h->root, zone_of(h)) != 0 || instance_file(file, sizeof(file), h->root, zone_of(h), canon) != 0)
    return set_error(SCF_ERROR_INVALID_ARGUMENT);
  pg_version_t ver;
  if (read_version(file, &ver) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return set_error(SCF_ERROR_NOT_FOUND);
    return set_error(SCF_ERROR_BACKEND_ACCESS);
  }
  memcpy(inst->fmri, canon, sizeof(canon));
  memcpy(inst->dir, dir, sizeof(dir));
  memcpy(inst->file, file, sizeof(file));
  inst->set = 1;
  return 0;
}

int scf_instance_get_pg(const scf_instance_t *inst, const char *name, scf_propertygroup_t *pg) {
  if (inst == NULL || name == NULL || pg == NULL) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  if (inst->h != pg->h) return set_error(SCF_ERROR_HANDLE_MISMATCH);
  if (check_bound(inst->h) != 0) return -1;
  if (!inst->set) return set_error(SCF_ERROR_NOT_SET);
  if (strcmp(name, "restarter") != 0) return set_error(SCF_ERROR_NOT_FOUND);
  if (read_version(inst->file, &pg->ver) != 0) {
    pg->set = 0;
    return set_error(errno == ENOENT || errno == ENOTDIR ? SCF_ERROR_DELETED : SCF_ERROR_BACKEND_ACCESS);
  }
  memcpy(pg->dir, inst->dir, sizeof(pg->dir));
  memcpy(pg->file, inst->file, sizeof(pg->file));
  pg->set = 1;
  return 0;
}

int scf_pg_get_property(const scf_propertygroup_t *pg, const char *name, scf_property_t *prop) {
  if (pg == NULL || name == NULL || prop == NULL) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  if (pg->h != prop->h) return set_error(SCF_ERROR_HANDLE_MISMATCH);
  if (check_bound(pg->h) != 0) return -1;
  if (!pg->set) return set_error(SCF_ERROR_NOT_SET);
  if (strcmp(name, "state") == 0) {
    memcpy(prop->value, pg->ver.state, sizeof(prop->value));
  } else if (strcmp(name, "next_state") == 0) {
    snprintf(prop->value, sizeof(prop->value), "none");
  } else {
    prop->set = 0;
    return set_error(SCF_ERROR_NOT_FOUND);
  }
  prop->set = 1;
  return 0;
}

int scf_property_get_value(const scf_property_t *prop, scf_value_t *v) {
  if (prop == NULL || v == NULL) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  if (prop->h != v->h) return set_error(SCF_ERROR_HANDLE_MISMATCH);
  if (check_bound(prop->h) != 0) return -1;
  if (!prop->set) return set_error(SCF_ERROR_NOT_SET);
  memcpy(v->str, prop->value, sizeof(v->str));
  v->set = 1;
  return 0;
}

int scf_pg_update(scf_propertygroup_t *pg) {
  if (pg == NULL) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  if (check_bound(pg->h) != 0) return -1;
  if (!pg->set) return set_error(SCF_ERROR_NOT_SET);
  pg_version_t now;
  if (read_version(pg->file, &now) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      pg->set = 0;
      return set_error(SCF_ERROR_DELETED);
    }
    return set_error(SCF_ERROR_BACKEND_ACCESS);
  }
  if (same_version(&now, &pg->ver)) return SCF_SUCCESS;
  pg->ver = now;
  return SCF_COMPLETE;
}

/* Is the pg still the latest version? 1 yes, 0 no (changed or deleted). */
static int pg_is_latest(const scf_propertygroup_t *pg) {
  pg_version_t now;
  if (read_version(pg->file, &now) != 0) return 0;
  return same_version(&now, &pg->ver);
}

static void remove_waiter(scf_handle_t *h, pg_waiter_t *w) {
  pthread_mutex_lock(&h->lock);
  for (pg_waiter_t **pp = &h->waiters; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == w) {
      *pp = w->next;
      break;
    }
  }
  if (w->wfd >= 0) close(w->wfd);
  pthread_mutex_unlock(&h->lock);
  free(w);
}

int _scf_pg_wait(scf_propertygroup_t *pg, int timeout) {
  if (pg == NULL) return set_error(SCF_ERROR_INVALID_ARGUMENT);
  scf_handle_t *h = pg->h;
  if (!pg->set) return set_error(SCF_ERROR_NOT_SET);

  const char *dir = pg->dir;
  const char *base = strrchr(pg->file, '/');
  base = base != NULL ? base + 1 : pg->file;

  /* Set up the notification (REP_PROTOCOL_PROPERTYGRP_SETUP_WAIT): the pipe the handle can close. */
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) return set_error(SCF_ERROR_NO_RESOURCES);
  pg_waiter_t *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    close(pfd[0]);
    close(pfd[1]);
    return set_error(SCF_ERROR_NO_MEMORY);
  }
  w->wfd = pfd[1];
  pthread_mutex_lock(&h->lock);
  if (!h->bound) {
    pthread_mutex_unlock(&h->lock);
    close(pfd[0]);
    close(pfd[1]);
    free(w);
    return set_error(SCF_ERROR_CONNECTION_BROKEN);
  }
  w->next = h->waiters;
  h->waiters = w;
  pthread_mutex_unlock(&h->lock);

  int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (ifd < 0) {
    close(pfd[0]);
    remove_waiter(h, w);
    return set_error(SCF_ERROR_NO_RESOURCES);
  }
  /* The whole directory: the state file is replaced by rename, and the zone halting removes it. */
  int wd = inotify_add_watch(ifd, dir,
                             IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF |
                                 IN_MOVE_SELF | IN_ONLYDIR);
  int rc;
  if (wd < 0 || !pg_is_latest(pg)) {
    /* Watch set up after the change (or the directory is gone): not the latest -> return now. */
    rc = SCF_SUCCESS;
  } else {
    int64_t deadline = timeout < 0 ? -1 : fake_hrtime() + (int64_t)timeout * 1000000000LL;
    rc = SCF_COMPLETE;
    for (;;) {
      int ms = -1;
      if (deadline >= 0) {
        int64_t left = deadline - fake_hrtime();
        if (left <= 0) break;
        ms = (int)((left + 999999) / 1000000);
      }
      struct pollfd fds[2] = {{.fd = pfd[0], .events = 0}, {.fd = ifd, .events = POLLIN}};
      int n = poll(fds, 2, ms);
      if (n < 0) {
        if (errno == EINTR) continue;
        rc = SCF_SUCCESS; /* "may return early" */
        break;
      }
      if (n == 0) break; /* timeout */
      if (fds[0].revents != 0) {
        rc = SCF_SUCCESS; /* the handle was unbound: configd closed our notification */
        break;
      }
      /* Drain the inotify events; only this instance's file (or the directory going) counts. */
      int hit = 0;
      char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
      for (;;) {
        ssize_t len = read(ifd, buf, sizeof(buf));
        if (len <= 0) break;
        for (char *p = buf; p < buf + len;) {
          struct inotify_event *ev = (struct inotify_event *)p;
          if ((ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW)) != 0) hit = 1;
          if (ev->len > 0 && strcmp(ev->name, base) == 0) hit = 1;
          p += sizeof(struct inotify_event) + ev->len;
        }
      }
      if (hit) {
        rc = SCF_SUCCESS;
        break;
      }
    }
  }
  close(ifd);
  close(pfd[0]);
  remove_waiter(h, w);
  return rc;
}
