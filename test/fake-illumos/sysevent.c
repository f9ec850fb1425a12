/*
 * Fake libsysevent.so.1: the General Purpose Event Channel calls (sysevent_evc_*) for the zone
 * status channel, and the event accessors (the illumos-gate headers, as native/abi/ declares them; the
 * semantics were checked against illumos-gate usr/src/lib/libsysevent/libevchannel.c, see
 * native/abi/sysevent.h).
 *
 * The "kernel" side is the zone-event log of common.h, "$FAKE_ILLUMOS_STATE/zone-events.log",
 * one line per zone_status_set(): "<zonename> <zoneid> <newstate> <oldstate> <when-ns>". The fake
 * zoneadm appends to it (fake_emit_zone_event); tests may too.
 *
 * Each subscription owns one delivery thread (like xsubscribe's private door with exactly one
 * server thread; all signals but SIGABRT masked). The thread:
 *   - reads the log from the subscription's start offset (the log's size when it subscribed:
 *     only events published after the subscription are delivered, as on the real channel),
 *   - for each complete line builds an event (class "status", subclass "change", vendor
 *     "sun.com", publisher "kernel", attributes zonename/newstate/oldstate string, zoneid int32,
 *     when uint64) and calls the handler, serially; the event is freed when the handler returns,
 *   - if the handler returns EAGAIN, redelivers the same event after a short back-off (the GPEC
 *     kernel's redelivery), before any later event,
 *   - then blocks in poll() on an inotify watch of the state directory (IN_MODIFY/IN_CREATE/...
 *     on zone-events.log) and a stop pipe. No polling loop: it wakes only when the log changes.
 * sysevent_evc_unsubscribe / sysevent_evc_unbind stop the thread and join it, so they return only
 * once an in-flight callback has finished ("the unsubscribe ioctl will block until all door
 * upcalls have drained"); called from a callback thread of a subscription on the same channel
 * handle they fail with EDEADLK (libevchannel.c will_deadlock(); the real
 * sysevent_evc_subscribe, which uses the shared door pool, cannot detect this and hangs; the fake
 * refuses for both). Subscriber ids are unique per channel within this process (EEXIST on a
 * clash; the real kernel checks system-wide). Errors are returned as errno values (and errno is
 * set), as libsysevent does. Only ZONE_EVENT_CHANNEL carries events; other channels can be bound
 * with EVCH_CREAT (and never deliver), or fail with ENOENT.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* libnvpair (the fake's, same prototypes as illumos sys/nvpair.h) */
typedef struct nvlist nvlist_t;
typedef unsigned int uint_t;
int nvlist_alloc(nvlist_t **, uint_t, int);
void nvlist_free(nvlist_t *);
int nvlist_dup(nvlist_t *, nvlist_t **, int);
int nvlist_add_string(nvlist_t *, const char *, const char *);
int nvlist_add_int32(nvlist_t *, const char *, int32_t);
int nvlist_add_uint64(nvlist_t *, const char *, uint64_t);
#define NV_UNIQUE_NAME 0x1

typedef void *sysevent_t;
typedef void evchan_t;
typedef struct sysevent_subattr sysevent_subattr_t;
typedef int64_t hrtime_t;

#define MAX_CLASS_LEN 64
#define MAX_SUBCLASS_LEN 64
#define MAX_PUB_LEN 128
#define MAX_CHNAME_LEN 128
#define MAX_SUBID_LEN 16
#define EVCH_B_FLAGS 0x0007
#define EVCH_CREAT 0x0001
#define EVCH_ALLSUB "all_subs"
#define EC_ALL "register_all_classes"
#define ZONE_EVENT_CHANNEL "com.sun:zones:status"
#define LOG_NAME "zone-events.log"

/* What a callback's sysevent_t * points at. */
typedef struct fake_sysevent {
  char klass[MAX_CLASS_LEN];
  char subclass[MAX_SUBCLASS_LEN];
  char vendor[MAX_PUB_LEN];
  char pubname[MAX_PUB_LEN];
  char pub[MAX_PUB_LEN * 2 + 8];
  uint64_t seq;
  hrtime_t time;
  nvlist_t *attrs;
} fake_sysevent_t;

struct sysevent_subattr {
  int unused;
};

typedef struct evchan_impl evchan_impl_t;

typedef struct subscr {
  evchan_impl_t *ch;
  char sid[MAX_SUBID_LEN];
  char klass[MAX_CLASS_LEN]; /* "" = EC_ALL */
  int (*handler)(sysevent_t *, void *);
  void *cookie;
  char logpath[4096];
  off_t offset;
  int logfd;
  int ifd;
  int stopfd[2];
  int stop;
  uint64_t seq;
  pthread_t thread;
  int started;
  struct subscr *next; /* the channel handle's list */
} subscr_t;

struct evchan_impl {
  pthread_mutex_t lock;
  pid_t pid;
  char name[MAX_CHNAME_LEN];
  int delivers; /* the zone status channel */
  subscr_t *subs;
};

/* The delivery thread's own subscription, for the EDEADLK check. */
static __thread subscr_t *t_sub = NULL;

/* Subscriber ids in use, per channel name (this process). */
typedef struct sid_entry {
  char chan[MAX_CHNAME_LEN];
  char sid[MAX_SUBID_LEN];
  struct sid_entry *next;
} sid_entry_t;
static pthread_mutex_t g_sid_lock = PTHREAD_MUTEX_INITIALIZER;
static sid_entry_t *g_sids = NULL;

static int sid_claim(const char *chan, const char *sid) {
  pthread_mutex_lock(&g_sid_lock);
  for (sid_entry_t *e = g_sids; e != NULL; e = e->next) {
    if (strcmp(e->chan, chan) == 0 && strcmp(e->sid, sid) == 0) {
      pthread_mutex_unlock(&g_sid_lock);
      return EEXIST;
    }
  }
  sid_entry_t *e = calloc(1, sizeof(*e));
  if (e == NULL) {
    pthread_mutex_unlock(&g_sid_lock);
    return ENOMEM;
  }
  snprintf(e->chan, sizeof(e->chan), "%s", chan);
  snprintf(e->sid, sizeof(e->sid), "%s", sid);
  e->next = g_sids;
  g_sids = e;
  pthread_mutex_unlock(&g_sid_lock);
  return 0;
}

static void sid_release(const char *chan, const char *sid) {
  pthread_mutex_lock(&g_sid_lock);
  for (sid_entry_t **pp = &g_sids; *pp != NULL; pp = &(*pp)->next) {
    if (strcmp((*pp)->chan, chan) == 0 && strcmp((*pp)->sid, sid) == 0) {
      sid_entry_t *e = *pp;
      *pp = e->next;
      free(e);
      break;
    }
  }
  pthread_mutex_unlock(&g_sid_lock);
}

static int fail(int e) {
  errno = e;
  return e;
}

static int is_chan_char(char c) {
  /* EVCH_ISCHANCHAR: alphanumerics and "-_.:,+" (sys/sysevent_impl.h) */
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == ':' || c == ',' || c == '+';
}

static int will_deadlock(evchan_impl_t *ch) { return t_sub != NULL && t_sub->ch == ch; }

/* ---- binding ---- */

int sysevent_evc_bind(const char *channel, evchan_t **scpp, uint32_t flags) {
  if (scpp == NULL) return fail(EINVAL);
  *scpp = NULL;
  if (channel == NULL || strlen(channel) + 1 > MAX_CHNAME_LEN || channel[0] == '\0') return fail(EINVAL);
  for (const char *p = channel; *p != '\0'; p++)
    if (!is_chan_char(*p)) return fail(EINVAL);
  if ((flags & ~EVCH_B_FLAGS) != 0) return fail(EINVAL);
  int zones = strcmp(channel, ZONE_EVENT_CHANNEL) == 0;
  if (!zones && (flags & EVCH_CREAT) == 0) return fail(ENOENT);
  if (zones && fake_state_dir() == NULL) return fail(ENOENT); /* no fake kernel to talk to */
  evchan_impl_t *ch = calloc(1, sizeof(*ch));
  if (ch == NULL) return fail(ENOMEM);
  pthread_mutex_init(&ch->lock, NULL);
  ch->pid = getpid();
  snprintf(ch->name, sizeof(ch->name), "%s", channel);
  ch->delivers = zones;
  *scpp = ch;
  return 0;
}

/* ---- delivery ---- */

static void free_event(fake_sysevent_t *ev) {
  if (ev == NULL) return;
  nvlist_free(ev->attrs);
  free(ev);
}

/* One log line -> an event, or NULL if malformed. */
static fake_sysevent_t *parse_event(const char *line, uint64_t seq) {
  char zonename[257], newstate[64], oldstate[64];
  long zoneid;
  unsigned long long when;
  if (sscanf(line, "%256s %ld %63s %63s %llu", zonename, &zoneid, newstate, oldstate, &when) != 5) return NULL;
  if (zoneid < INT32_MIN || zoneid > INT32_MAX) return NULL;
  fake_sysevent_t *ev = calloc(1, sizeof(*ev));
  if (ev == NULL) return NULL;
  snprintf(ev->klass, sizeof(ev->klass), "status");
  snprintf(ev->subclass, sizeof(ev->subclass), "change");
  snprintf(ev->vendor, sizeof(ev->vendor), "sun.com");
  snprintf(ev->pubname, sizeof(ev->pubname), "kernel");
  snprintf(ev->pub, sizeof(ev->pub), "%s:%s", ev->vendor, ev->pubname);
  ev->seq = seq;
  ev->time = fake_hrtime();
  if (nvlist_alloc(&ev->attrs, NV_UNIQUE_NAME, 0) != 0 || nvlist_add_string(ev->attrs, "zonename", zonename) != 0 ||
      nvlist_add_string(ev->attrs, "newstate", newstate) != 0 ||
      nvlist_add_string(ev->attrs, "oldstate", oldstate) != 0 ||
      nvlist_add_int32(ev->attrs, "zoneid", (int32_t)zoneid) != 0 ||
      nvlist_add_uint64(ev->attrs, "when", (uint64_t)when) != 0) {
    free_event(ev);
    return NULL;
  }
  return ev;
}

static int stopping(subscr_t *s) { return __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE); }

/* Delivers one event until consumed (EAGAIN -> redeliver after a back-off). 0, or -1 if stopped. */
static int deliver(subscr_t *s, fake_sysevent_t *ev) {
  if (s->klass[0] != '\0' && strcmp(s->klass, ev->klass) != 0) return 0;
  for (;;) {
    if (stopping(s)) return -1;
    int r = s->handler((sysevent_t *)(void *)ev, s->cookie);
    if (r != EAGAIN) return 0;
    /* Redelivery back-off; unsubscribe (the stop pipe) cuts it short. */
    struct pollfd p = {.fd = s->stopfd[0], .events = POLLIN};
    (void)poll(&p, 1, 20);
  }
}

/* Reads what was appended since s->offset and delivers every complete line. 0, or -1 if stopped. */
static int drain_log(subscr_t *s) {
  if (s->logfd < 0) {
    s->logfd = open(s->logpath, O_RDONLY | O_CLOEXEC);
    if (s->logfd < 0) return 0; /* not created yet: the directory watch will tell us */
  }
  char buf[65536];
  for (;;) {
    ssize_t n = pread(s->logfd, buf, sizeof(buf) - 1, s->offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    if (n == 0) return 0;
    buf[n] = '\0';
    char *last_nl = memrchr(buf, '\n', (size_t)n);
    if (last_nl == NULL) return 0; /* a line still being written */
    size_t consumed = (size_t)(last_nl - buf) + 1;
    *last_nl = '\0';
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
      fake_sysevent_t *ev = parse_event(line, ++s->seq);
      if (ev == NULL) continue;
      int r = deliver(s, ev);
      free_event(ev);
      if (r != 0) return -1;
    }
    s->offset += (off_t)consumed;
  }
}

static void *delivery_main(void *arg) {
  subscr_t *s = arg;
  t_sub = s;
  for (;;) {
    if (drain_log(s) != 0) break;
    struct pollfd fds[2] = {{.fd = s->stopfd[0], .events = POLLIN}, {.fd = s->ifd, .events = POLLIN}};
    int n = poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0 || stopping(s)) break;
    if (fds[1].revents != 0) {
      char ibuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
      while (read(s->ifd, ibuf, sizeof(ibuf)) > 0) {
      }
    }
  }
  return NULL;
}

static void destroy_sub(subscr_t *s) {
  if (s->started) {
    __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
    ssize_t w = write(s->stopfd[1], "x", 1);
    (void)w;
    pthread_join(s->thread, NULL); /* waits for an in-flight callback */
  }
  if (s->logfd >= 0) close(s->logfd);
  if (s->ifd >= 0) close(s->ifd);
  if (s->stopfd[0] >= 0) close(s->stopfd[0]);
  if (s->stopfd[1] >= 0) close(s->stopfd[1]);
  sid_release(s->ch->name, s->sid);
  free(s);
}

static int is_printable(const char *s) {
  for (; *s != '\0'; s++)
    if (*s < ' ' || *s > '~') return 0;
  return 1;
}

static int subscribe_cmn(evchan_t *scp, const char *sid, const char *klass, int (*handler)(sysevent_t *, void *),
                         void *cookie, uint32_t flags) {
  evchan_impl_t *ch = scp;
  (void)flags; /* EVCH_SUB_KEEP: nothing outlives this process in the fake */
  if (ch == NULL || sid == NULL || klass == NULL) return fail(EINVAL);
  if (ch->pid != getpid()) return fail(EINVAL);
  size_t sid_len = strlen(sid) + 1;
  if (sid_len > MAX_SUBID_LEN || sid_len == 1 || strlen(klass) + 1 > MAX_CLASS_LEN) return fail(EINVAL);
  if (!is_printable(sid) || handler == NULL) return fail(EINVAL);
  int e = sid_claim(ch->name, sid);
  if (e != 0) return fail(e);

  subscr_t *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    sid_release(ch->name, sid);
    return fail(ENOMEM);
  }
  s->ch = ch;
  s->logfd = s->ifd = s->stopfd[0] = s->stopfd[1] = -1;
  snprintf(s->sid, sizeof(s->sid), "%s", sid);
  if (strcmp(klass, EC_ALL) != 0) snprintf(s->klass, sizeof(s->klass), "%s", klass);
  s->handler = handler;
  s->cookie = cookie;

  if (pipe2(s->stopfd, O_CLOEXEC) != 0) {
    e = errno;
    destroy_sub(s);
    return fail(e);
  }
  s->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (s->ifd < 0) {
    e = errno;
    destroy_sub(s);
    return fail(e);
  }
  if (ch->delivers) {
    char dir[4096];
    if (fake_mkdir("") != 0 || fake_path(dir, sizeof(dir), "", NULL) != 0 ||
        fake_path(s->logpath, sizeof(s->logpath), "", LOG_NAME) != 0) {
      e = errno != 0 ? errno : EIO;
      destroy_sub(s);
      return fail(e);
    }
    /* Watch first, then take the start offset: nothing appended in between is lost. */
    if (inotify_add_watch(s->ifd, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR) < 0) {
      e = errno;
      destroy_sub(s);
      return fail(e);
    }
    struct stat st;
    s->offset = stat(s->logpath, &st) == 0 ? st.st_size : 0;
  } else {
    snprintf(s->logpath, sizeof(s->logpath), "/nonexistent"); /* never opens: no events */
  }

  /*
   * The delivery thread, with every signal but SIGABRT masked (xsubscribe's default). Started
   * under the channel lock, so the subscription is on the channel's list (for unsubscribe/unbind
   * from other threads) before its first callback can run.
   */
  sigset_t all, old;
  sigfillset(&all);
  sigdelset(&all, SIGABRT);
  pthread_mutex_lock(&ch->lock);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  e = pthread_create(&s->thread, NULL, delivery_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e == 0) {
    s->started = 1;
    s->next = ch->subs;
    ch->subs = s;
  }
  pthread_mutex_unlock(&ch->lock);
  if (e != 0) {
    destroy_sub(s);
    return fail(e);
  }
  return 0;
}

int sysevent_evc_subscribe(evchan_t *scp, const char *sid, const char *klass, int (*handler)(sysevent_t *, void *),
                           void *cookie, uint32_t flags) {
  return subscribe_cmn(scp, sid, klass, handler, cookie, flags);
}

int sysevent_evc_xsubscribe(evchan_t *scp, const char *sid, const char *klass, int (*handler)(sysevent_t *, void *),
                            void *cookie, uint32_t flags, sysevent_subattr_t *attr) {
  (void)attr;
  return subscribe_cmn(scp, sid, klass, handler, cookie, flags);
}

int sysevent_evc_unsubscribe(evchan_t *scp, const char *sid) {
  evchan_impl_t *ch = scp;
  if (ch == NULL) return fail(EINVAL);
  if (sid == NULL || strlen(sid) == 0 || strlen(sid) >= MAX_SUBID_LEN) return fail(EINVAL);
  if (ch->pid != getpid()) return fail(EINVAL);
  int all = strcmp(sid, EVCH_ALLSUB) == 0;
  if (will_deadlock(ch)) return fail(EDEADLK);

  subscr_t *gone = NULL;
  pthread_mutex_lock(&ch->lock);
  for (subscr_t **pp = &ch->subs; *pp != NULL;) {
    subscr_t *s = *pp;
    if (all || strcmp(s->sid, sid) == 0) {
      *pp = s->next;
      s->next = gone;
      gone = s;
      if (!all) break;
    } else {
      pp = &s->next;
    }
  }
  pthread_mutex_unlock(&ch->lock);
  if (gone == NULL && !all) return fail(EINVAL);
  while (gone != NULL) {
    subscr_t *next = gone->next;
    destroy_sub(gone);
    gone = next;
  }
  return 0;
}

int sysevent_evc_unbind(evchan_t *scp) {
  evchan_impl_t *ch = scp;
  if (ch == NULL) return fail(EINVAL);
  if (will_deadlock(ch)) return fail(EDEADLK);
  if (ch->pid == getpid()) {
    pthread_mutex_lock(&ch->lock);
    subscr_t *gone = ch->subs;
    ch->subs = NULL;
    pthread_mutex_unlock(&ch->lock);
    while (gone != NULL) {
      subscr_t *next = gone->next;
      destroy_sub(gone);
      gone = next;
    }
  }
  pthread_mutex_destroy(&ch->lock);
  free(ch);
  return 0;
}

sysevent_subattr_t *sysevent_subattr_alloc(void) { return calloc(1, sizeof(sysevent_subattr_t)); }
void sysevent_subattr_free(sysevent_subattr_t *attr) { free(attr); }

/* ---- event accessors (valid only during the callback) ---- */

static fake_sysevent_t *EV(sysevent_t *ev) { return (fake_sysevent_t *)(void *)ev; }

int sysevent_get_attr_list(sysevent_t *ev, nvlist_t **nvlist) {
  if (ev == NULL || nvlist == NULL) {
    errno = EINVAL;
    return -1;
  }
  int e = nvlist_dup(EV(ev)->attrs, nvlist, 0);
  if (e != 0) {
    errno = e;
    return -1;
  }
  return 0;
}

char *sysevent_get_class_name(sysevent_t *ev) { return EV(ev)->klass; }
char *sysevent_get_subclass_name(sysevent_t *ev) { return EV(ev)->subclass; }
char *sysevent_get_pub(sysevent_t *ev) { return EV(ev)->pub; }
uint64_t sysevent_get_seq(sysevent_t *ev) { return EV(ev)->seq; }
void sysevent_get_time(sysevent_t *ev, hrtime_t *etime) {
  if (etime != NULL) *etime = EV(ev)->time;
}
