#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

const char *fake_state_dir(void) {
  const char *dir = getenv("FAKE_ILLUMOS_STATE");
  return (dir != NULL && dir[0] != '\0') ? dir : NULL;
}

int fake_path(char *buf, size_t len, const char *sub, const char *name) {
  const char *dir = fake_state_dir();
  if (dir == NULL) {
    errno = ENOENT;
    return -1;
  }
  int n = name != NULL ? snprintf(buf, len, "%s/%s/%s", dir, sub, name) : snprintf(buf, len, "%s/%s", dir, sub);
  if (n < 0 || (size_t)n >= len) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return 0;
}

int fake_mkdir(const char *sub) {
  char path[4096];
  if (fake_path(path, sizeof(path), sub, NULL) != 0) return -1;
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0; /* the common case: one syscall */
  if (mkdir(path, 0755) == 0) return 0;                       /* only the last one missing */
  for (char *p = path + 1; *p != '\0'; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
  return 0;
}

int fake_write_file(const char *path, const char *data, size_t len) {
  char tmp[4200];
  int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof(tmp)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return fake_write_via(tmp, path, data, len);
}

int fake_write_via(const char *tmp, const char *path, const char *data, size_t len) {
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      close(fd);
      unlink(tmp);
      errno = saved;
      return -1;
    }
    off += (size_t)w;
  }
  if (close(fd) != 0 || rename(tmp, path) != 0) {
    int saved = errno;
    unlink(tmp);
    errno = saved;
    return -1;
  }
  return 0;
}

char *fake_read_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 4096, used = 0;
  char *buf = malloc(cap + 1);
  if (buf == NULL) {
    close(fd);
    errno = ENOMEM;
    return NULL;
  }
  for (;;) {
    if (used == cap) {
      char *bigger = realloc(buf, cap * 2 + 1);
      if (bigger == NULL) {
        free(buf);
        close(fd);
        errno = ENOMEM;
        return NULL;
      }
      buf = bigger;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + used, cap - used);
    if (r < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      free(buf);
      close(fd);
      errno = saved;
      return NULL;
    }
    if (r == 0) break;
    used += (size_t)r;
  }
  close(fd);
  buf[used] = '\0';
  if (len != NULL) *len = used;
  return buf;
}

#define FAKE_GEN_LEN 17

uint64_t fake_gen_read(int lockfd, int slot) {
  char buf[FAKE_GEN_LEN + 1];
  ssize_t r;
  do {
    r = pread(lockfd, buf, FAKE_GEN_LEN, (off_t)slot * FAKE_GEN_LEN);
  } while (r < 0 && errno == EINTR);
  if (r != FAKE_GEN_LEN) return 0;
  buf[FAKE_GEN_LEN] = '\0';
  return (uint64_t)strtoull(buf, NULL, 16);
}

/* splitmix64 over a per-process random start: distinct tokens without a syscall each. A forked
 * child starts over from its own random start rather than repeat its parent's sequence. */
static _Atomic uint64_t gen_state;
static _Atomic int gen_seeded;
static pthread_once_t gen_once = PTHREAD_ONCE_INIT;

static void gen_child(void) { atomic_store(&gen_seeded, 0); }
static void gen_init(void) { (void)pthread_atfork(NULL, NULL, gen_child); }

static uint64_t gen_next(void) {
  (void)pthread_once(&gen_once, gen_init);
  if (!atomic_load(&gen_seeded)) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) seed = 0;
    seed ^= (uint64_t)fake_hrtime() ^ ((uint64_t)getpid() << 40);
    atomic_store(&gen_state, seed);
    atomic_store(&gen_seeded, 1);
  }
  uint64_t z = atomic_fetch_add(&gen_state, 0x9E3779B97F4A7C15ULL) + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t fake_gen_bump(int lockfd, int slot) {
  char buf[FAKE_GEN_LEN + 1];
  uint64_t tok = 0;
  while (tok == 0) tok = gen_next();
  (void)snprintf(buf, sizeof(buf), "%016llx\n", (unsigned long long)tok);
  ssize_t w;
  do {
    w = pwrite(lockfd, buf, FAKE_GEN_LEN, (off_t)slot * FAKE_GEN_LEN);
  } while (w < 0 && errno == EINTR);
  return w == FAKE_GEN_LEN ? tok : 0;
}

/*
 * The lock file stays open between locked sections (open + close of it were half of a lock's
 * cost): one fd per process, used by one thread at a time (lk_mu, held from fake_lock to
 * fake_unlock, does between threads what a separate open file description did). It is opened
 * again when the state directory changes, when "<state>/.lock" is no longer that file (the state
 * directory was removed and made again), and in a forked child (which must not share its parent's
 * open file description, whose flock the parent holds).
 */
static pthread_mutex_t lk_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int lk_fd = -1;
static pid_t lk_pid;
static dev_t lk_dev;
static ino_t lk_ino;
static char lk_path[4096];
static pthread_once_t lk_once = PTHREAD_ONCE_INIT;

static void lk_child(void) {
  /* Only this thread goes on in the child: the mutex may have been held by another one. */
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  memcpy(&lk_mu, &fresh, sizeof(fresh));
  int fd = atomic_exchange(&lk_fd, -1);
  if (fd >= 0) close(fd); /* the parent's flock stays: its own fd still refers to it */
}
static void lk_init(void) { (void)pthread_atfork(NULL, NULL, lk_child); }

int fake_lock(void) {
  char path[4096];
  if (fake_path(path, sizeof(path), "", ".lock") != 0) return -1;
  (void)pthread_once(&lk_once, lk_init);
  pthread_mutex_lock(&lk_mu);
  int fd = atomic_load(&lk_fd);
  if (fd >= 0) {
    struct stat st;
    if (lk_pid != getpid() || strcmp(path, lk_path) != 0 || stat(path, &st) != 0 || st.st_ino != lk_ino ||
        st.st_dev != lk_dev) {
      close(fd);
      fd = -1;
      atomic_store(&lk_fd, -1);
    }
  }
  if (fd < 0) {
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) { /* the state directory is not there yet */
      if (fake_mkdir("") == 0) fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    }
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) != 0) {
      int saved = errno;
      close(fd);
      fd = -1;
      errno = saved;
    }
    if (fd < 0) {
      int saved = errno;
      pthread_mutex_unlock(&lk_mu);
      errno = saved;
      return -1;
    }
    lk_pid = getpid();
    lk_dev = st.st_dev;
    lk_ino = st.st_ino;
    (void)snprintf(lk_path, sizeof(lk_path), "%s", path);
    atomic_store(&lk_fd, fd);
  }
  while (flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      int saved = errno;
      close(fd);
      atomic_store(&lk_fd, -1);
      pthread_mutex_unlock(&lk_mu);
      errno = saved;
      return -1;
    }
  }
  return fd;
}

void fake_unlock(int fd) {
  if (fd < 0) return;
  flock(fd, LOCK_UN);
  if (fd == atomic_load(&lk_fd)) {
    pthread_mutex_unlock(&lk_mu); /* the fd stays open for the next fake_lock */
  } else {
    close(fd); /* one the caller opened itself */
  }
}

int64_t fake_hrtime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int fake_emit_zone_event(const char *zonename, int32_t zoneid, const char *newstate, const char *oldstate) {
  char path[4096];
  if (fake_mkdir("") != 0 || fake_path(path, sizeof(path), "", "zone-events.log") != 0) return -1;
  char line[512];
  int n = snprintf(line, sizeof(line), "%s %d %s %s %lld\n", zonename, (int)zoneid, newstate, oldstate,
                   (long long)fake_hrtime());
  if (n < 0 || (size_t)n >= sizeof(line)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  /* O_APPEND writes under PIPE_BUF are atomic, so concurrent writers never interleave a line. */
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  ssize_t w = write(fd, line, (size_t)n);
  int saved = errno;
  close(fd);
  if (w != n) {
    errno = w < 0 ? saved : EIO;
    return -1;
  }
  return 0;
}

static void fake_escape_fmri(char *out, size_t len, const char *fmri) {
  size_t i = 0;
  for (; fmri[i] != '\0' && i + 1 < len; i++) out[i] = (fmri[i] == '/' || fmri[i] == ':') ? '_' : fmri[i];
  out[i] = '\0';
}

int fake_smf_path(char *buf, size_t len, const char *zone, const char *fmri) {
  char sub[512], name[512];
  int n = snprintf(sub, sizeof(sub), "smf/%s", zone);
  if (n < 0 || (size_t)n >= sizeof(sub)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  fake_escape_fmri(name, sizeof(name), fmri);
  return fake_path(buf, len, sub, name);
}

int fake_smf_log_path(char *buf, size_t len, const char *zone, const char *fmri) {
  char sub[512], name[512];
  int n = snprintf(sub, sizeof(sub), "svclog/%s", zone);
  if (n < 0 || (size_t)n >= sizeof(sub)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  fake_escape_fmri(name, sizeof(name), fmri);
  if (strlen(name) + sizeof(".log") > sizeof(name)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcat(name, ".log");
  return fake_path(buf, len, sub, name);
}

/* The restarter's log line for a change to `state` (src/host/commands.ts has the same table);
 * NULL for none: a first state of "disabled" is an instance just defined, not one stopped. */
static const char *smf_log_text(const char *old, const char *state) {
  if (strcmp(state, "offline") == 0) return "Executing start method.";
  if (strcmp(state, "online") == 0) return "Method \"start\" exited with status 0.";
  if (strcmp(state, "degraded") == 0) return "Service degraded.";
  if (strcmp(state, "maintenance") == 0) return "Service failed: now in maintenance.";
  if (strcmp(state, "disabled") == 0 && old[0] != '\0') return "Stopping because service disabled.";
  return NULL;
}

/* Appends "[ <Mmm dd HH:MM:SS> <text> ]" to the instance's log, as svc.startd does. */
static int smf_log_append(const char *zone, const char *fmri, const char *text) {
  char sub[512], path[4096], line[512], when[32];
  int n = snprintf(sub, sizeof(sub), "svclog/%s", zone);
  if (n < 0 || (size_t)n >= sizeof(sub)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  if (fake_mkdir(sub) != 0 || fake_smf_log_path(path, sizeof(path), zone, fmri) != 0) return -1;
  time_t now = time(NULL);
  struct tm tm;
  if (localtime_r(&now, &tm) == NULL || strftime(when, sizeof(when), "%b %e %H:%M:%S", &tm) == 0) return -1;
  n = snprintf(line, sizeof(line), "[ %s %s ]\n", when, text);
  if (n < 0 || (size_t)n >= sizeof(line)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  ssize_t w = write(fd, line, (size_t)n);
  int saved = errno;
  close(fd);
  if (w != n) {
    errno = w < 0 ? saved : EIO;
    return -1;
  }
  return 0;
}

int fake_smf_set_state(const char *zone, const char *fmri, const char *state) {
  char sub[512], path[4096];
  int n = snprintf(sub, sizeof(sub), "smf/%s", zone);
  if (n < 0 || (size_t)n >= sizeof(sub)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  if (fake_mkdir(sub) != 0 || fake_smf_path(path, sizeof(path), zone, fmri) != 0) return -1;
  char *old = fake_read_file(path, NULL);
  int changed = old == NULL || strcmp(old, state) != 0;
  const char *text = changed ? smf_log_text(old != NULL ? old : "", state) : NULL;
  free(old);
  if (fake_write_file(path, state, strlen(state)) != 0) return -1;
  /* The log is evidence, not state: a line that cannot be written does not undo the change. */
  if (text != NULL) (void)smf_log_append(zone, fmri, text);
  return 0;
}

/* Removes the plain files of "<state>/<sub>" and the directory (it holds no subdirectories). */
static int remove_flat_dir(const char *sub) {
  char dirpath[4096];
  if (fake_path(dirpath, sizeof(dirpath), sub, NULL) != 0) return -1;
  DIR *d = opendir(dirpath);
  if (d == NULL) return errno == ENOENT ? 0 : -1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char file[4400];
    int m = snprintf(file, sizeof(file), "%s/%s", dirpath, e->d_name);
    if (m > 0 && (size_t)m < sizeof(file)) unlink(file);
  }
  closedir(d);
  return rmdir(dirpath) == 0 || errno == ENOENT ? 0 : -1;
}

/* "smf/<zone>" or "svclog/<zone>", removed. */
static int clear_zone_dir(const char *area, const char *zone) {
  char sub[512];
  int n = snprintf(sub, sizeof(sub), "%s/%s", area, zone);
  if (n < 0 || (size_t)n >= sizeof(sub)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return remove_flat_dir(sub);
}

int fake_smf_clear_zone(const char *zone) { return clear_zone_dir("smf", zone); }

int fake_smf_clear_logs(const char *zone) { return clear_zone_dir("svclog", zone); }
