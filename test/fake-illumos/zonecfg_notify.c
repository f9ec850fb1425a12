/*
 * Fake zonecfg_notify_bind / zonecfg_notify_unbind (compiled into the fake libzonecfg.so.1;
 * the illumos-gate headers, as native/abi/ declares them). Not declared in libzonecfg.h but
 * exported SUNWprivate_1.1 on illumos.
 *
 * Built the way illumos-gate's libzonecfg.c builds them, on the GPEC channel: bind to
 * "com.sun:zones:status", subscribe (sysevent_evc_subscribe, class "status") with the subscriber
 * id "zone_<pid % 999999>_<n>" retried for n = 1..999 on a clash, and a channel callback that
 * takes the subclass "change" events, copies the attribute list (sysevent_get_attr_list; ENOMEM
 * -> EAGAIN so the channel redelivers), looks up zonename/newstate/oldstate/when/zoneid and calls
 * the user's callback under the notify mutex, returning what it returns (0 or EAGAIN).
 * zonecfg_notify_unbind unbinds the channel (which waits for an in-flight callback) and must not
 * be called from the callback. The ping/critical-section machinery of zoneadmd
 * (zonecfg_notify_critical_*) is not reproduced.
 *
 * libzonecfg links libsysevent and libnvpair on illumos; the fake's Makefile rule does not, so
 * the same calls are resolved with dlopen by soname (the fake libraries' RUNPATH is $ORIGIN, and
 * a copy the addon already loaded is reused).
 */
#define _GNU_SOURCE
#include "common.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int32_t zoneid_t;
typedef int64_t hrtime_t;
typedef void *sysevent_t;
typedef void evchan_t;
typedef struct nvlist nvlist_t;

#define ZONE_EVENT_CHANNEL "com.sun:zones:status"
#define ZONE_EVENT_STATUS_CLASS "status"
#define ZONE_EVENT_STATUS_SUBCLASS "change"
#define MAX_SUBID_LEN 16

typedef int (*zn_user_cb_t)(const char *zonename, zoneid_t zid, const char *newstate, const char *oldstate,
                            hrtime_t when, void *p);

static struct {
  int (*evc_bind)(const char *, evchan_t **, uint32_t);
  int (*evc_unbind)(evchan_t *);
  int (*evc_subscribe)(evchan_t *, const char *, const char *, int (*)(sysevent_t *, void *), void *, uint32_t);
  int (*get_attr_list)(sysevent_t *, nvlist_t **);
  char *(*get_subclass_name)(sysevent_t *);
  int (*lookup_string)(nvlist_t *, const char *, char **);
  int (*lookup_int32)(nvlist_t *, const char *, int32_t *);
  int (*lookup_uint64)(nvlist_t *, const char *, uint64_t *);
  void (*nvl_free)(nvlist_t *);
  int ok;
} zn_api;

static pthread_once_t zn_once = PTHREAD_ONCE_INIT;

static void zn_load(void) {
  void *se = dlopen("libsysevent.so.1", RTLD_NOW | RTLD_GLOBAL);
  void *nv = dlopen("libnvpair.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (se == NULL || nv == NULL) return;
  zn_api.evc_bind = (int (*)(const char *, evchan_t **, uint32_t))dlsym(se, "sysevent_evc_bind");
  zn_api.evc_unbind = (int (*)(evchan_t *))dlsym(se, "sysevent_evc_unbind");
  zn_api.evc_subscribe = (int (*)(evchan_t *, const char *, const char *, int (*)(sysevent_t *, void *), void *,
                                  uint32_t))dlsym(se, "sysevent_evc_subscribe");
  zn_api.get_attr_list = (int (*)(sysevent_t *, nvlist_t **))dlsym(se, "sysevent_get_attr_list");
  zn_api.get_subclass_name = (char *(*)(sysevent_t *))dlsym(se, "sysevent_get_subclass_name");
  zn_api.lookup_string = (int (*)(nvlist_t *, const char *, char **))dlsym(nv, "nvlist_lookup_string");
  zn_api.lookup_int32 = (int (*)(nvlist_t *, const char *, int32_t *))dlsym(nv, "nvlist_lookup_int32");
  zn_api.lookup_uint64 = (int (*)(nvlist_t *, const char *, uint64_t *))dlsym(nv, "nvlist_lookup_uint64");
  zn_api.nvl_free = (void (*)(nvlist_t *))dlsym(nv, "nvlist_free");
  zn_api.ok = zn_api.evc_bind && zn_api.evc_unbind && zn_api.evc_subscribe && zn_api.get_attr_list &&
              zn_api.get_subclass_name && zn_api.lookup_string && zn_api.lookup_int32 && zn_api.lookup_uint64 &&
              zn_api.nvl_free;
}

struct znotify {
  zn_user_cb_t zn_callback;
  void *zn_private;
  evchan_t *zn_eventchan;
  char zn_subscriber_id[MAX_SUBID_LEN];
  pthread_mutex_t zn_mutex;
  int zn_failure_count;
};

static int do_callback(struct znotify *z, sysevent_t *ev) {
  if (strcmp(zn_api.get_subclass_name(ev), ZONE_EVENT_STATUS_SUBCLASS) != 0) {
    z->zn_failure_count = 0;
    return 0; /* unknown subclass: ignore */
  }
  nvlist_t *l = NULL;
  if (zn_api.get_attr_list(ev, &l) != 0) {
    if (errno == ENOMEM) {
      z->zn_failure_count++;
      return EAGAIN;
    }
    return 0;
  }
  char *zonename, *newstate, *oldstate;
  uint64_t when;
  int32_t zid;
  int ret = 0;
  if (zn_api.lookup_string(l, "zonename", &zonename) == 0 && zn_api.lookup_string(l, "newstate", &newstate) == 0 &&
      zn_api.lookup_string(l, "oldstate", &oldstate) == 0 && zn_api.lookup_uint64(l, "when", &when) == 0 &&
      zn_api.lookup_int32(l, "zoneid", &zid) == 0) {
    ret = z->zn_callback(zonename, zid, newstate, oldstate, (hrtime_t)when, z->zn_private);
  }
  z->zn_failure_count = 0;
  zn_api.nvl_free(l);
  return ret;
}

static int zn_cb(sysevent_t *ev, void *p) {
  struct znotify *z = p;
  pthread_mutex_lock(&z->zn_mutex);
  int error = do_callback(z, ev);
  pthread_mutex_unlock(&z->zn_mutex);
  return error;
}

void *zonecfg_notify_bind(zn_user_cb_t func, void *p) {
  pthread_once(&zn_once, zn_load);
  if (!zn_api.ok || func == NULL) {
    errno = ENOSYS;
    return NULL;
  }
  struct znotify *z = calloc(1, sizeof(*z));
  if (z == NULL) return NULL;
  z->zn_callback = func;
  z->zn_private = p;
  if (pthread_mutex_init(&z->zn_mutex, NULL) != 0) {
    free(z);
    return NULL;
  }
  if (zn_api.evc_bind(ZONE_EVENT_CHANNEL, &z->zn_eventchan, 0) != 0) goto out2;
  int i = 1, r;
  do {
    /* At 4 digits the subscriber id gets too long. */
    if (i > 999) goto out1;
    char sid[32]; /* at most "zone_999998_999": 15 characters */
    snprintf(sid, sizeof(sid), "zone_%li_%i", (long)(getpid() % 999999L), i);
    memcpy(z->zn_subscriber_id, sid, sizeof(z->zn_subscriber_id) - 1);
    z->zn_subscriber_id[sizeof(z->zn_subscriber_id) - 1] = '\0';
    r = zn_api.evc_subscribe(z->zn_eventchan, z->zn_subscriber_id, ZONE_EVENT_STATUS_CLASS, zn_cb, z, 0);
    i++;
  } while (r != 0);
  return z;
out1:
  zn_api.evc_unbind(z->zn_eventchan);
out2:
  pthread_mutex_destroy(&z->zn_mutex);
  free(z);
  return NULL;
}

void zonecfg_notify_unbind(void *handle) {
  struct znotify *z = handle;
  if (z == NULL) return;
  zn_api.evc_unbind(z->zn_eventchan);
  /* All channel threads are gone once unbind returns; the real code aborts if not. */
  if (pthread_mutex_trylock(&z->zn_mutex) != 0) abort();
  pthread_mutex_unlock(&z->zn_mutex);
  pthread_mutex_destroy(&z->zn_mutex);
  free(z);
}
