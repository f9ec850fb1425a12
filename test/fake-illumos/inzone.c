/*
 * Shared by the fake in-zone commands (ipadm.c, svccfg.c, svcadm.c, route.c, svcs.c, tail.c):
 * what they need to act "inside" a zone of the fake host. Each of them #includes this file (which
 * includes the fake libzonecfg's source, as zlogin.c does). The fake zoneadm includes it too, to
 * apply a zone's SMF site profile at boot with svccfg's and svcadm's code (see zoneadm.c): it
 * makes the boot's directory and repository with inzone_at and inzone_make_boot as the zone
 * becomes running, without inzone_enter.
 *
 * The zone: the fake zlogin runs the command words with /bin/sh on the host, with
 * FAKE_ILLUMOS_ZONE=<zonename> in the environment and its own directory first on PATH, so these
 * programs (built next to it) are what the shell finds. A command refuses to run unless that zone
 * is running in the fake kernel (zones/kernel) at the moment it takes the fake host's lock.
 *
 * FAKE_ILLUMOS_ZONE=global runs them in the global zone: always running, its links every link
 * of the fake libdladm, its state under inzone/global/0 for as long as the fake host's.
 *
 * State: everything a command changes in a zone is kept per BOOT of the zone, under
 *   $FAKE_ILLUMOS_STATE/inzone/<zone>/<zoneid>/     (zoneid: the kernel id of that boot)
 *     addrs        ipadm's address objects, one "<addrobj> <type> <addr>/<prefix>" line each
 *                  (type static|addrconf)
 *     routes       route's table, one "<destination> <gateway>" line each
 *     repository   svccfg's repository, one record a line:
 *                    service <service fmri>
 *                    instance <instance fmri>
 *                    pg <service or instance fmri> <pg> <type>
 *                    prop <service or instance fmri> <pg>/<prop> <type> <percent-encoded value>
 * A boot's directory is made on first use; those of earlier boots of the zone are removed then.
 * So what is temporary on illumos (ipadm -t, route add without -p, svcadm -t) disappears when the
 * zone halts, as there; the fake repository does too (on illumos it persists in the zone's root),
 * as does the restarter state in $FAKE_ILLUMOS_STATE/smf/<zone>/ (fake_smf_*; the fake zoneadm
 * halt removes it).
 *
 * Every read-modify-write of these files happens under fake_lock(), with the zone's kernel state
 * checked under that same lock; files are replaced atomically (fake_write_file).
 */
#include "zonecfg.c"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define INZONE_FN __attribute__((unused)) static

/* The program's name for its messages ("ipadm", ...); set by main. */
static const char *progname = "fake";

/* "<progname>: <message>\n" on stderr. */
INZONE_FN void warnx_(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", progname);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* Exits with `status` after "<progname>: <message>\n" on stderr (the lock, if held, goes with the process). */
__attribute__((noreturn, format(printf, 2, 3), unused)) static void die(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fflush(stdout);
  fprintf(stderr, "%s: ", progname);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(status);
}

INZONE_FN long inzone_env_ms(const char *name, long fallback) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') return fallback;
  char *end;
  long ms = strtol(v, &end, 10);
  return (*end == '\0' && ms >= 0) ? ms : fallback;
}

INZONE_FN void inzone_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- the zone ---------------------------------------------------------------------------------- */

struct inzone {
  char zone[ZONENAME_MAX];
  int id;         /* the kernel id of this boot */
  char sub[512];  /* "inzone/<zone>/<id>", relative to the state directory */
  int lock;       /* fake_lock()'s fd while held */
};

/* Removes "<state>/inzone/<zone>/<other id>" directories (their files only: they hold no subdirectories). */
static void prune_old_boots(const struct inzone *z) {
  char dirpath[4096], sub[512];
  snprintf(sub, sizeof(sub), "inzone/%s", z->zone);
  if (fake_path(dirpath, sizeof(dirpath), sub, NULL) != 0) return;
  DIR *d = opendir(dirpath);
  if (d == NULL) return;
  char mine[16];
  snprintf(mine, sizeof(mine), "%d", z->id);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || strcmp(e->d_name, mine) == 0) continue;
    char boot[4400];
    int n = snprintf(boot, sizeof(boot), "%s/%s", dirpath, e->d_name);
    if (n < 0 || (size_t)n >= sizeof(boot)) continue;
    DIR *bd = opendir(boot);
    if (bd != NULL) {
      struct dirent *f;
      while ((f = readdir(bd)) != NULL) {
        if (strcmp(f->d_name, ".") == 0 || strcmp(f->d_name, "..") == 0) continue;
        char file[4700];
        int m = snprintf(file, sizeof(file), "%s/%s", boot, f->d_name);
        if (m > 0 && (size_t)m < sizeof(file)) unlink(file);
      }
      closedir(bd);
    }
    rmdir(boot);
  }
  closedir(d);
}

/* Fills z for that boot (zoneid `id`) of the zone, without the lock (z->lock is -1) and making
 * nothing. */
INZONE_FN void inzone_at(struct inzone *z, const char *zone, int id) {
  snprintf(z->zone, sizeof(z->zone), "%s", zone);
  z->id = id;
  snprintf(z->sub, sizeof(z->sub), "inzone/%s/%d", z->zone, z->id);
  z->lock = -1;
}

/* Makes that boot's directory if it is not there yet, removing those of earlier boots of the zone
 * then (so this boot's state starts empty). Under the lock; 0, or -1 (errno set). */
INZONE_FN int inzone_make_boot(const struct inzone *z) {
  char path[4096];
  struct stat st;
  if (fake_path(path, sizeof(path), z->sub, NULL) != 0) return -1;
  if (stat(path, &st) == 0) return 0;
  if (fake_mkdir(z->sub) != 0) return -1;
  if (strcmp(z->zone, "global") != 0) prune_old_boots(z);
  return 0;
}

/*
 * Takes the fake host's lock and checks that the zone named by FAKE_ILLUMOS_ZONE is running;
 * exits with status 1 and a message otherwise. The lock stays held (inzone_leave releases it).
 */
INZONE_FN void inzone_enter(struct inzone *z) {
  const char *zone = getenv("FAKE_ILLUMOS_ZONE");
  if (zone == NULL || zone[0] == '\0') die(1, "not in a zone of the fake illumos (FAKE_ILLUMOS_ZONE is not set; run me with the fake zlogin, or with FAKE_ILLUMOS_ZONE=global)");
  if (strlen(zone) >= sizeof(z->zone) || strchr(zone, '/') != NULL || zone[0] == '.') die(1, "invalid zone name '%s'", zone);
  if (fake_state_dir() == NULL) die(1, "FAKE_ILLUMOS_STATE is not set");
  int lock = fake_lock();
  if (lock < 0) die(1, "could not lock the fake host's state: %s", strerror(errno));
  if (strcmp(zone, "global") == 0) {
    /* The global zone: always running, one "boot" (its state lasts as long as the fake host's). */
    inzone_at(z, zone, 0);
  } else {
    struct kzone kz;
    if (!kernel_lookup(zone, &kz) || strcmp(kz.status, "running") != 0) die(1, "zone '%s' is not running", zone);
    inzone_at(z, zone, kz.id);
  }
  z->lock = lock;
  if (inzone_make_boot(z) != 0) {
    char path[4096];
    if (fake_path(path, sizeof(path), z->sub, NULL) != 0) die(1, "state path too long");
    die(1, "could not create %s: %s", path, strerror(errno));
  }
}

INZONE_FN void inzone_leave(struct inzone *z) {
  if (z->lock >= 0) fake_unlock(z->lock);
  z->lock = -1;
}

/* ---- line files -------------------------------------------------------------------------------- */

struct lines {
  char **v;
  size_t n, cap;
};

INZONE_FN void lines_free(struct lines *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

INZONE_FN void lines_add(struct lines *l, const char *s) {
  if (l->n == l->cap) {
    size_t cap = l->cap == 0 ? 16 : l->cap * 2;
    char **v = realloc(l->v, cap * sizeof(*v));
    if (v == NULL) die(1, "out of memory");
    l->v = v;
    l->cap = cap;
  }
  char *copy = strdup(s);
  if (copy == NULL) die(1, "out of memory");
  l->v[l->n++] = copy;
}

INZONE_FN void lines_del(struct lines *l, size_t i) {
  free(l->v[i]);
  memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(*l->v));
  l->n--;
}

/* Reads "<state>/<z->sub>/<name>" (missing: no lines). Returns 1 if the file existed, 0 if not,
 * -1 if it could not be read (errno set; no lines). */
INZONE_FN int lines_read(const struct inzone *z, const char *name, struct lines *l) {
  char path[4096];
  memset(l, 0, sizeof(*l));
  if (fake_path(path, sizeof(path), z->sub, name) != 0) return -1;
  char *text = fake_read_file(path, NULL);
  if (text == NULL) return errno == ENOENT ? 0 : -1;
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] != '\0') lines_add(l, line);
  }
  free(text);
  return 1;
}

/* lines_read, exiting with a message if the file cannot be read. */
INZONE_FN int lines_load(const struct inzone *z, const char *name, struct lines *l) {
  int rc = lines_read(z, name, l);
  if (rc < 0) {
    int saved = errno;
    char path[4096];
    if (fake_path(path, sizeof(path), z->sub, name) != 0) die(1, "state path too long");
    die(1, "could not read %s: %s", path, strerror(saved));
  }
  return rc;
}

/* Replaces "<state>/<z->sub>/<name>" with the lines; 0, or -1 (errno set). */
INZONE_FN int lines_write(const struct inzone *z, const char *name, const struct lines *l) {
  char path[4096];
  if (fake_path(path, sizeof(path), z->sub, name) != 0) return -1;
  struct sbuf b = {0};
  for (size_t i = 0; i < l->n; i++) {
    if (sb_str(&b, l->v[i]) != 0 || sb_str(&b, "\n") != 0) die(1, "out of memory");
  }
  int rc = fake_write_file(path, b.data != NULL ? b.data : "", b.len);
  int saved = errno;
  free(b.data);
  errno = saved;
  return rc;
}

/* lines_write, exiting with a message if the file cannot be written. */
INZONE_FN void lines_save(const struct inzone *z, const char *name, const struct lines *l) {
  if (lines_write(z, name, l) != 0) {
    int saved = errno;
    char path[4096];
    if (fake_path(path, sizeof(path), z->sub, name) != 0) die(1, "state path too long");
    die(1, "could not write %s: %s", path, strerror(saved));
  }
}

/* The n-th (from 0) space-separated field of a line, copied into buf; 0, or -1 if there is none. */
INZONE_FN int field(const char *line, int n, char *buf, size_t len) {
  const char *p = line;
  for (int i = 0;; i++) {
    while (*p == ' ') p++;
    if (*p == '\0') return -1;
    const char *end = strchr(p, ' ');
    size_t flen = end != NULL ? (size_t)(end - p) : strlen(p);
    if (i == n) {
      if (flen >= len) return -1;
      memcpy(buf, p, flen);
      buf[flen] = '\0';
      return 0;
    }
    p += flen;
  }
}

/* What every zone's repository has at boot: the network milestone (its restarter state is the
 * fake zoneadm's) and the propolis-server service (see svccfg.c). */
static void repo_seed(struct lines *repo) {
  lines_add(repo, "service svc:/milestone/network");
  lines_add(repo, "instance svc:/milestone/network:default");
  lines_add(repo, "service svc:/system/illumos/propolis-server");
}

/*
 * Loads the zone's SMF repository (svccfg.c, svcadm.c, and zoneadm.c's site profile), a new
 * boot's seeded (repo_seed). repo_read returns 0, or -1 (errno set) if it could not be read;
 * repo_load exits with a message then.
 */
INZONE_FN int repo_read(const struct inzone *z, struct lines *repo) {
  int rc = lines_read(z, "repository", repo);
  if (rc == 0) repo_seed(repo);
  return rc < 0 ? -1 : 0;
}

INZONE_FN void repo_load(const struct inzone *z, struct lines *repo) {
  if (lines_load(z, "repository", repo) == 0) repo_seed(repo);
}

/* ---- the SMF repository: svccfg's and svcadm's operations ------------------------------------- */

/* The property types svccfg knows (setprop's "<type>:"). */
__attribute__((unused)) static const char *const PROP_TYPES[] = {
    "astring", "ustring", "count", "integer", "boolean", "time", "opaque", "fmri", "host",
    "hostname", "net_address", "net_address_v4", "net_address_v6", "uri", NULL};

INZONE_FN int is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
         c == ',' || c == '+';
}

/* A name of the repository: [A-Za-z0-9_][-_.,+A-Za-z0-9]* (scf_limit's bound is far above 128). */
INZONE_FN int valid_name(const char *s) {
  if (s[0] == '\0' || strlen(s) >= 128 || s[0] == '-' || s[0] == '.' || s[0] == ',' || s[0] == '+') return 0;
  for (const char *p = s; *p != '\0'; p++) {
    if (!is_name_char(*p)) return 0;
  }
  return 1;
}

/* "svc:/a/b[:i]", "svc://localhost/a/b[:i]" or "a/b[:i]" -> "svc:/a/b[:i]"; 1 if it names an
 * instance, 0 a service, -1 if malformed. */
INZONE_FN int canon_fmri(const char *in, char *out, size_t len) {
  const char *p = in;
  if (strncmp(p, "svc://localhost/", 16) == 0) p += 16;
  else if (strncmp(p, "svc:/", 5) == 0) p += 5;
  if (*p == '\0' || *p == '/') return -1;
  const char *colon = strchr(p, ':');
  size_t svclen = colon != NULL ? (size_t)(colon - p) : strlen(p);
  /* service: '/'-separated names */
  size_t start = 0;
  for (size_t i = 0; i <= svclen; i++) {
    if (i == svclen || p[i] == '/') {
      if (i == start) return -1;
      start = i + 1;
    } else if (!is_name_char(p[i])) {
      return -1;
    }
  }
  if (colon != NULL && !valid_name(colon + 1)) return -1;
  int n = snprintf(out, len, "svc:/%s", p);
  if (n < 0 || (size_t)n >= len) return -1;
  return colon != NULL;
}

/* The index of the record whose first two fields are `kind` and `fmri` (and, if given, third `pg`), or -1. */
INZONE_FN long find(const struct lines *repo, const char *kind, const char *fmri, const char *third) {
  char f0[32], f1[1024], f2[1024];
  for (size_t i = 0; i < repo->n; i++) {
    if (field(repo->v[i], 0, f0, sizeof(f0)) != 0 || strcmp(f0, kind) != 0) continue;
    if (field(repo->v[i], 1, f1, sizeof(f1)) != 0 || strcmp(f1, fmri) != 0) continue;
    if (third != NULL && (field(repo->v[i], 2, f2, sizeof(f2)) != 0 || strcmp(f2, third) != 0)) continue;
    return (long)i;
  }
  return -1;
}

INZONE_FN void add_record(struct lines *repo, const char *a, const char *b, const char *c, const char *d, const char *e) {
  struct sbuf s = {0};
  const char *parts[] = {a, b, c, d};
  for (int i = 0; i < 4 && parts[i] != NULL; i++) {
    if ((i > 0 && sb_str(&s, " ") != 0) || sb_str(&s, parts[i]) != 0) die(1, "out of memory");
  }
  if (e != NULL && (sb_str(&s, " ") != 0 || sb_enc(&s, e) != 0)) die(1, "out of memory");
  lines_add(repo, s.data);
  free(s.data);
}

/* Whether the service or instance exists. */
INZONE_FN int entity_exists(const struct lines *repo, const char *fmri, int is_instance) {
  return find(repo, is_instance ? "instance" : "service", fmri, NULL) >= 0;
}

/* Adds an instance (as `svccfg -s <service> add <name>`, the caller has checked that it is not
 * there), its restarter state "disabled". 0, or -1 (errno set) if that state could not be written. */
INZONE_FN int repo_add_instance(const char *zone, struct lines *repo, const char *instance) {
  add_record(repo, "instance", instance, NULL, NULL, NULL);
  return fake_smf_set_state(zone, instance, "disabled");
}

/* Sets a property of an existing property group (as `svccfg setprop`, the caller has checked the
 * names and the type), replacing its type and value. 0, or -1 if there is no such group. */
INZONE_FN int repo_set_prop(struct lines *repo, const char *fmri, const char *pg, const char *prop, const char *type,
                            const char *value) {
  if (find(repo, "pg", fmri, pg) < 0) return -1;
  char pgprop[300];
  snprintf(pgprop, sizeof(pgprop), "%s/%s", pg, prop);
  long old = find(repo, "prop", fmri, pgprop);
  if (old >= 0) lines_del(repo, (size_t)old);
  add_record(repo, "prop", fmri, pgprop, type, value);
  return 0;
}

#define PROPOLIS_SERVICE "svc:/system/illumos/propolis-server"

/* Whether the instance's config/server_addr is a socket address Propolis can listen on. */
INZONE_FN int usable_server_addr(const struct lines *repo, const char *fmri) {
  char f0[32], f1[1024], f2[300], f4[8192];
  for (size_t i = 0; i < repo->n; i++) {
    if (field(repo->v[i], 0, f0, sizeof(f0)) != 0 || strcmp(f0, "prop") != 0 || field(repo->v[i], 1, f1, sizeof(f1)) != 0 ||
        strcmp(f1, fmri) != 0 || field(repo->v[i], 2, f2, sizeof(f2)) != 0 || strcmp(f2, "config/server_addr") != 0 ||
        field(repo->v[i], 4, f4, sizeof(f4)) != 0)
      continue;
    char *v = dec_dup(f4, strlen(f4));
    if (v == NULL) return 0;
    int ok = 0;
    char *colon = strrchr(v, ':');
    if (colon != NULL && colon[1] != '\0') {
      char *end;
      long port = strtol(colon + 1, &end, 10);
      *colon = '\0';
      unsigned char a[16];
      size_t n = strlen(v);
      if (*end == '\0' && port >= 0 && port <= 65535) {
        if (n > 2 && v[0] == '[' && v[n - 1] == ']') {
          v[n - 1] = '\0';
          ok = inet_pton(AF_INET6, v + 1, a) == 1;
        } else {
          ok = inet_pton(AF_INET, v, a) == 1;
        }
      }
    }
    free(v);
    return ok;
  }
  return 0;
}

INZONE_FN int instance_exists(const struct lines *repo, const char *fmri) {
  char f0[32], f1[1024];
  for (size_t i = 0; i < repo->n; i++) {
    if (field(repo->v[i], 0, f0, sizeof(f0)) == 0 && strcmp(f0, "instance") == 0 && field(repo->v[i], 1, f1, sizeof(f1)) == 0 &&
        strcmp(f1, fmri) == 0)
      return 1;
  }
  return 0;
}

/* The instance's restarter state, into buf ("" if it has none). */
INZONE_FN void read_state(const char *zone, const char *fmri, char *buf, size_t len) {
  char path[4096];
  buf[0] = '\0';
  if (fake_smf_path(path, sizeof(path), zone, fmri) != 0) return;
  char *text = fake_read_file(path, NULL);
  if (text == NULL) return;
  snprintf(buf, len, "%s", text);
  free(text);
}

/* Forks a process detached from the caller (new session, then a grandchild re-parented to
 * init), as zoneadmd and the zone's own SMF are: returns 0 in it, 1 in the caller (after the
 * intermediate child exited), -1 if fork failed. */
INZONE_FN int fork_detached(void) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid > 0) {
    waitpid(pid, NULL, 0);
    return 1;
  }
  setsid();
  if (fork() != 0) _exit(0);
  return 0;
}

/* In a detached process: lets go of the caller's stdio, so that nobody waiting for the
 * command's output (svcadm's, zoneadm's) waits for it. */
INZONE_FN void detach_stdio(void) {
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
  }
}

/* After the start-up delay, "offline" -> `target` ("online", or "maintenance" for a start method
 * that fails: start_target) for that boot of the zone, from a detached process (zoneadm.c's
 * schedule_network_online, for a service): only if that boot still runs and the instance is still
 * "offline" then (a disable in between wins). Called without the lock held; 0, or -1 (errno set)
 * if the process could not be started. */
INZONE_FN int schedule_start(const char *zone, int zoneid, const char *fmri, const char *target, long delay) {
  int forked = fork_detached();
  if (forked < 0) return -1;
  if (forked > 0) return 0;
  detach_stdio();
  inzone_sleep_ms(delay);
  /* Creates nothing unless that boot of the zone still runs: the test may be removing the whole
   * state directory by now, so the lock file must already exist (fake_lock would create it). */
  struct kzone kz;
  if (!kernel_lookup(zone, &kz) || kz.id != zoneid) _exit(0);
  char path[4096];
  if (fake_path(path, sizeof(path), "", ".lock") != 0) _exit(0);
  int lock = open(path, O_RDWR | O_CLOEXEC);
  if (lock < 0) _exit(0);
  while (flock(lock, LOCK_EX) != 0) {
    if (errno != EINTR) _exit(1);
  }
  char state[64];
  read_state(zone, fmri, state, sizeof(state));
  if (kernel_lookup(zone, &kz) && kz.id == zoneid && strcmp(kz.status, "running") == 0 && strcmp(state, "offline") == 0)
    fake_smf_set_state(zone, fmri, target);
  fake_unlock(lock);
  _exit(0);
}

/* The instance's state when its start method has run: "maintenance" for an instance of
 * svc:/system/illumos/propolis-server without a usable config/server_addr (Propolis's start
 * method fails without one), "online" otherwise. */
INZONE_FN const char *start_target(const struct lines *repo, const char *fmri) {
  int propolis = strncmp(fmri, PROPOLIS_SERVICE ":", strlen(PROPOLIS_SERVICE) + 1) == 0;
  return propolis && !usable_server_addr(repo, fmri) ? "maintenance" : "online";
}

/* The first half of `svcadm enable`, under the lock: an instance that is not online (or degraded)
 * goes "offline" at once, to start later (schedule_start). 1 if it now waits to start, 0 if it
 * was online already, -1 (errno set) if its state could not be written. */
INZONE_FN int enable_begin(const char *zone, const char *fmri) {
  char state[64];
  read_state(zone, fmri, state, sizeof(state));
  if (strcmp(state, "online") == 0 || strcmp(state, "degraded") == 0) return 0;
  return fake_smf_set_state(zone, fmri, "offline") != 0 ? -1 : 1;
}

/* ---- the zone's links ---------------------------------------------------------------------------- */

/*
 * The links/by-id file of the fake libdladm's link named `link` (it begins "name=<link>\n"),
 * malloc'd; NULL if there is none.
 */
INZONE_FN char *link_file(const char *link) {
  char dirpath[4096];
  if (fake_path(dirpath, sizeof(dirpath), "links/by-id", NULL) != 0) return NULL;
  DIR *d = opendir(dirpath);
  if (d == NULL) return NULL;
  char want[64];
  snprintf(want, sizeof(want), "name=%s\n", link);
  char *found = NULL;
  struct dirent *e;
  while (found == NULL && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char file[4400];
    int n = snprintf(file, sizeof(file), "%s/%s", dirpath, e->d_name);
    if (n < 0 || (size_t)n >= sizeof(file)) continue;
    char *text = fake_read_file(file, NULL);
    if (text == NULL) continue;
    if (strncmp(text, want, strlen(want)) == 0) found = text;
    else free(text);
  }
  closedir(d);
  return found;
}

/*
 * Whether the fake libdladm's `zone` property has given `link` to this boot of the zone: its file
 * names the zone and the kernel id the zone still has (a halt gives links back).
 */
static int link_given_to(const char *zone, const char *link) {
  struct kzone kz;
  if (!kernel_lookup(zone, &kz)) return 0;
  char *text = link_file(link);
  if (text == NULL) return 0;
  char want[ZONENAME_MAX + 48];
  snprintf(want, sizeof(want), "\nzone=%s\nzoneid=%d\n", zone, kz.id);
  int given = strstr(text, want) != NULL;
  free(text);
  return given;
}

/*
 * Whether `link` is one of the zone's links (an `add net; set physical=` of its configuration, or
 * one given to the running zone with the `zone` link property); in the global zone, any link of
 * the host.
 */
INZONE_FN int zone_has_link(const char *zone, const char *link) {
  if (strcmp(zone, "global") == 0) {
    char *text = link_file(link);
    int found = text != NULL;
    free(text);
    return found;
  }
  if (link_given_to(zone, link)) return 1;
  zone_dochandle_t h = zonecfg_init_handle();
  if (h == NULL) die(1, "out of memory");
  int found = 0;
  if (zonecfg_get_handle(zone, h) == Z_OK && zonecfg_setnwifent(h) == Z_OK) {
    struct zone_nwiftab tab;
    while (zonecfg_getnwifent(h, &tab) == Z_OK) {
      if (strcmp(tab.zone_nwif_physical, link) == 0) found = 1;
    }
    zonecfg_endnwifent(h);
  }
  zonecfg_fini_handle(h);
  return found;
}

/* The MAC address of a link of the fake libdladm (its links/by-id files); 0, or -1 if unknown. */
INZONE_FN int link_mac(const char *link, unsigned char mac[6]) {
  char *text = link_file(link);
  if (text == NULL) return -1;
  const char *m = strstr(text, "\nmac=");
  unsigned int o[6];
  int rc = -1;
  if (m != NULL && sscanf(m + 5, "%x:%x:%x:%x:%x:%x", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5]) == 6) {
    for (int i = 0; i < 6; i++) mac[i] = (unsigned char)o[i];
    rc = 0;
  }
  free(text);
  return rc;
}

/* ---- addresses --------------------------------------------------------------------------------- */

/* "<ip>[/<prefix>]" -> family, address and prefix (default: the whole address). 0, or -1 if malformed. */
INZONE_FN int parse_cidr(const char *s, int *family, unsigned char addr[16], int *prefix) {
  char ip[INET6_ADDRSTRLEN + 1];
  const char *slash = strchr(s, '/');
  size_t iplen = slash != NULL ? (size_t)(slash - s) : strlen(s);
  if (iplen == 0 || iplen >= sizeof(ip)) return -1;
  memcpy(ip, s, iplen);
  ip[iplen] = '\0';
  if (inet_pton(AF_INET6, ip, addr) == 1) *family = AF_INET6;
  else if (inet_pton(AF_INET, ip, addr) == 1) *family = AF_INET;
  else return -1;
  int max = *family == AF_INET6 ? 128 : 32;
  if (slash == NULL) {
    *prefix = max;
    return 0;
  }
  char *end;
  long p = strtol(slash + 1, &end, 10);
  if (slash[1] == '\0' || *end != '\0' || p < 0 || p > max) return -1;
  *prefix = (int)p;
  return 0;
}

/* Whether a and b agree in their first `prefix` bits. */
INZONE_FN int same_prefix(const unsigned char *a, const unsigned char *b, int prefix) {
  int full = prefix / 8, rest = prefix % 8;
  if (memcmp(a, b, (size_t)full) != 0) return 0;
  if (rest == 0) return 1;
  unsigned char mask = (unsigned char)(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

/* ---- SMF instances, for svcs and tail ------------------------------------------------------------ */

/* The instance FMRIs of the zone's repository (repo_load), sorted, as svcs lists them. */
INZONE_FN void repo_instances(const struct inzone *z, struct lines *out) {
  struct lines repo;
  repo_load(z, &repo);
  memset(out, 0, sizeof(*out));
  char f0[32], f1[1024];
  for (size_t i = 0; i < repo.n; i++) {
    if (field(repo.v[i], 0, f0, sizeof(f0)) == 0 && strcmp(f0, "instance") == 0 && field(repo.v[i], 1, f1, sizeof(f1)) == 0)
      lines_add(out, f1);
  }
  lines_free(&repo);
  for (size_t i = 1; i < out->n; i++) {
    for (size_t j = i; j > 0 && strcmp(out->v[j - 1], out->v[j]) > 0; j--) {
      char *t = out->v[j - 1];
      out->v[j - 1] = out->v[j];
      out->v[j] = t;
    }
  }
}

/* The instance's restarter state (common.h's fake SMF), into buf; "uninitialized" if it has none. */
INZONE_FN void instance_state(const char *zone, const char *fmri, char *buf, size_t len) {
  char path[4096];
  snprintf(buf, len, "uninitialized");
  if (fake_smf_path(path, sizeof(path), zone, fmri) != 0) return;
  char *text = fake_read_file(path, NULL);
  if (text == NULL) return;
  if (text[0] != '\0') snprintf(buf, len, "%s", text);
  free(text);
}

/* "svc:/system/illumos/foo:default" -> "/var/svc/log/system-illumos-foo:default.log"; -1 if it does not fit. */
INZONE_FN int instance_log_file(const char *fmri, char *buf, size_t len) {
  const char *p = strncmp(fmri, "svc:/", 5) == 0 ? fmri + 5 : fmri;
  int n = snprintf(buf, len, "/var/svc/log/%s.log", p);
  if (n < 0 || (size_t)n >= len) return -1;
  for (char *c = buf + strlen("/var/svc/log/"); *c != '\0'; c++) {
    if (*c == '/') *c = '-';
  }
  return 0;
}
