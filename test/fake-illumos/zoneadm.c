/*
 * Fake zoneadm(8): install, boot, halt, uninstall and list over the fake libzonecfg's state
 * (see zonecfg.c for the files), with the real command line and the real messages of
 * illumos-gate usr/src/cmd/zoneadm/zoneadm.c (sanity_check) and zoneadmd:
 *
 *   zoneadm -z NAME install [image ...]   configured -> incomplete -> installed (+ a uuid);
 *                                         FAKE_ILLUMOS_INSTALL_DELAY_MS (default 0) in between
 *   zoneadm -z NAME boot [-- args]        installed -> a kernel zone with a new id: events
 *                                         uninitialized->initialized, initialized->ready,
 *                                         ready->ready, ready->running; the zone's
 *                                         svc:/milestone/network:default goes "offline", then
 *                                         "online" FAKE_ILLUMOS_NETWORK_DELAY_MS (default 50)
 *                                         later, from a detached process; with
 *                                         FAKE_ILLUMOS_BOOT_DELAY_MS the zone stays "ready"
 *                                         that long and a detached process (zoneadmd) completes
 *                                         the boot, even if zoneadm itself is killed meanwhile
 *   zoneadm -z NAME halt                  running -> installed: events running->shutting_down,
 *                                         shutting_down->shutting_down,
 *                                         shutting_down->uninitialized; its SMF state is cleared
 *   zoneadm -z NAME clone [-m copy] SRC   configured -> incomplete -> installed (+ a uuid of its
 *                                         own) from SRC, which must be installed, not in the
 *                                         kernel and of the same brand (clone_func,
 *                                         validate_clone); FAKE_ILLUMOS_CLONE_DELAY_MS
 *                                         (default 0) in between
 *   zoneadm -z NAME uninstall [-F]        installed -> configured (asks without -F); its SMF
 *                                         logs are removed (they were in the zone's root)
 *   zoneadm [-z NAME] list [-cipv]        id:name:state:path:uuid:brand:iptype with -p
 *
 * Errors go to stderr as "zoneadm: zone 'NAME': <message>" with exit status 1; usage errors
 * exit 253 (Z_USAGE). Every state change happens under fake_lock(), and the kernel table is
 * updated before the event that announces it, so a listener that reacts to an event sees the
 * new state.
 *
 * Like the real zoneadm links libzonecfg, this includes the fake libzonecfg's source.
 */
#include "zonecfg.c"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define Z_ERR 1
#define Z_USAGE 253

static const char *execname = "zoneadm";
static const char *target_zone = NULL;

static void zerror(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", execname);
  if (target_zone != NULL) fprintf(stderr, "zone '%s': ", target_zone);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static int usage(void) {
  fprintf(stderr,
          "usage:\t%s [-z <zone>] [-u <uuid-match>] <subcommand>\n"
          "\tsubcommands: list [-cipv], install [image ...], clone [-m copy] zonename, boot, halt,\n"
          "\tuninstall [-F]\n",
          execname);
  return Z_USAGE;
}

static long env_ms(const char *name, long fallback) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') return fallback;
  char *end;
  long ms = strtol(v, &end, 10);
  return (*end == '\0' && ms >= 0) ? ms : fallback;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void random_uuid(uuid_t u) {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  ssize_t got = fd >= 0 ? read(fd, u, sizeof(uuid_t)) : -1;
  if (fd >= 0) close(fd);
  if (got != (ssize_t)sizeof(uuid_t)) {
    for (size_t i = 0; i < sizeof(uuid_t); i++) u[i] = (unsigned char)(rand() ^ getpid());
  }
  u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
  u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

/* The zone's state as sanity_check sees it. Reports and returns Z_ERR if the zone is unknown. */
static int get_state(zone_state_t *state, struct kzone *kz, int *in_kernel) {
  *in_kernel = kernel_lookup(target_zone, kz);
  int err = zone_get_state((char *)target_zone, state);
  if (err == Z_NO_ZONE) {
    zerror("%s", zonecfg_strerror(Z_NO_ZONE));
    return Z_ERR;
  }
  if (err != Z_OK) {
    zerror("could not get state: %s", zonecfg_strerror(err));
    return Z_ERR;
  }
  return Z_OK;
}

static int kernel_update_locked(const char *status /* NULL removes the zone */, int *id_inout) {
  struct kzone *kz;
  size_t n;
  int nextid;
  if (kernel_read(&kz, &n, &nextid) != 0) return -1;
  size_t i = 0;
  for (; i < n && strcmp(kz[i].name, target_zone) != 0; i++) {
  }
  if (status == NULL) {
    if (i < n) {
      memmove(&kz[i], &kz[i + 1], (n - i - 1) * sizeof(*kz));
      n--;
    }
  } else {
    if (i == n) {
      struct kzone *grown = realloc(kz, (n + 1) * sizeof(*kz));
      if (grown == NULL) {
        free(kz);
        return -1;
      }
      kz = grown;
      memset(&kz[n], 0, sizeof(*kz));
      snprintf(kz[n].name, sizeof(kz[n].name), "%s", target_zone);
      kz[n].id = nextid++;
      n++;
    }
    snprintf(kz[i].status, sizeof(kz[i].status), "%s", status);
    if (id_inout != NULL) *id_inout = kz[i].id;
  }
  int rc = kernel_write(kz, n, nextid);
  free(kz);
  return rc;
}

static int invalid_for_running(const char *cmd, const struct kzone *kz) {
  zone_state_t st;
  const char *s = zone_get_state((char *)target_zone, &st) == Z_OK ? zone_state_str(st) : "ready/running";
  (void)kz;
  zerror("%s operation is invalid for %s zones.", cmd, s);
  return Z_ERR;
}

/* ---- install / uninstall -------------------------------------------------------------------- */

/* The zonepath being filled (an install's image, a clone's copy), with the lock held and the
 * zone checked: incomplete for the delay in `delay_env` (the lock let go meanwhile, so a kill
 * leaves it incomplete), then installed with a uuid of its own. Releases the lock. */
static int populate_zone(int lock, const char *delay_env) {
  int rc = Z_OK;
  if (zone_set_state_locked(target_zone, ZONE_STATE_INCOMPLETE) != Z_OK) {
    zerror("could not set state: %s", zonecfg_strerror(Z_UPDATING_INDEX));
    rc = Z_ERR;
  }
  fake_unlock(lock);
  if (rc != Z_OK) return rc;

  sleep_ms(env_ms(delay_env, 0));

  lock = fake_lock();
  if (lock < 0) {
    zerror("could not lock the zone state: %s", strerror(errno));
    return Z_ERR;
  }
  uuid_t u;
  random_uuid(u);
  if (index_set_uuid_locked(target_zone, u) != Z_OK ||
      zone_set_state_locked(target_zone, ZONE_STATE_INSTALLED) != Z_OK) {
    zerror("could not set state: %s", zonecfg_strerror(Z_UPDATING_INDEX));
    rc = Z_ERR;
  }
  fake_unlock(lock);
  return rc;
}

/* sanity_check of the target for install and clone (it treats CMD_INSTALL and CMD_CLONE alike):
 * takes the lock (*lock; below 0 and Z_ERR if it could not be taken, nothing held), then the target
 * must be out of the kernel and neither installed nor incomplete. The lock is held on return
 * whatever the result, for the caller to release. */
static int lock_uninstalled_target(const char *cmd, int *lock) {
  *lock = fake_lock();
  if (*lock < 0) {
    zerror("could not lock the zone state: %s", strerror(errno));
    return Z_ERR;
  }
  zone_state_t state;
  struct kzone kz;
  int in_kernel;
  int rc = get_state(&state, &kz, &in_kernel);
  if (rc == Z_OK && in_kernel) rc = invalid_for_running(cmd, &kz);
  if (rc == Z_OK && state == ZONE_STATE_INSTALLED) {
    zerror("is already %s.", zone_state_str(ZONE_STATE_INSTALLED));
    rc = Z_ERR;
  } else if (rc == Z_OK && state == ZONE_STATE_INCOMPLETE) {
    zerror("zone is %s; %s required.", zone_state_str(ZONE_STATE_INCOMPLETE), "uninstall");
    rc = Z_ERR;
  }
  return rc;
}

static int install_func(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "-?") == 0) return usage();
  }
  int lock;
  int rc = lock_uninstalled_target("install", &lock);
  if (lock < 0) return rc;
  /* the brand's install hook reads each image: a missing one fails before anything changes */
  for (int i = 0; rc == Z_OK && i < argc; i++) {
    if (argv[i][0] == '-') continue;
    if (access(argv[i], R_OK) != 0) {
      fprintf(stderr, "ERROR: cannot read image %s: %s\n", argv[i], strerror(errno));
      zerror("install failed; the zone remains %s.", zone_state_str(ZONE_STATE_CONFIGURED));
      rc = Z_ERR;
    }
  }
  if (rc != Z_OK) {
    fake_unlock(lock);
    return rc;
  }
  rc = populate_zone(lock, "FAKE_ILLUMOS_INSTALL_DELAY_MS");
  if (rc == Z_OK) printf("Done: Installation completed.\n");
  return rc;
}

static int uninstall_func(int argc, char **argv) {
  int force = 0;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "-F") == 0) force = 1;
    else if (strcmp(argv[i], "-h") == 0) continue;
    else return usage();
  }
  if (!force) {
    printf("Are you sure you want to uninstall zone %s (y/[n])? ", target_zone);
    fflush(stdout);
    char answer[16] = "";
    if (fgets(answer, sizeof(answer), stdin) == NULL || (answer[0] != 'y' && answer[0] != 'Y')) return Z_OK;
  }
  int lock = fake_lock();
  if (lock < 0) {
    zerror("could not lock the zone state: %s", strerror(errno));
    return Z_ERR;
  }
  zone_state_t state;
  struct kzone kz;
  int in_kernel;
  int rc = get_state(&state, &kz, &in_kernel);
  if (rc == Z_OK && in_kernel) rc = invalid_for_running("uninstall", &kz);
  if (rc == Z_OK && state == ZONE_STATE_CONFIGURED) {
    zerror("is already in state '%s'.", zone_state_str(ZONE_STATE_CONFIGURED));
    rc = Z_ERR;
  }
  if (rc == Z_OK && (zone_set_state_locked(target_zone, ZONE_STATE_INCOMPLETE) != Z_OK ||
                     index_set_uuid_locked(target_zone, NULL) != Z_OK ||
                     zone_set_state_locked(target_zone, ZONE_STATE_CONFIGURED) != Z_OK)) {
    zerror("could not set state: %s", zonecfg_strerror(Z_UPDATING_INDEX));
    rc = Z_ERR;
  }
  /* The SMF logs were in the zone's root, which uninstall removes. */
  if (rc == Z_OK) fake_smf_clear_logs(target_zone);
  fake_unlock(lock);
  return rc;
}

/* The source zone's checks, in clone_func's order after sanity_check of the target: not the
 * global zone, not SUNW*, not in the kernel, and installed. Locked; reports why not. */
static int clonable_source_locked(const char *source) {
  if (strcmp(source, GLOBAL_ZONENAME) == 0) {
    zerror("%s operation is invalid for the global zone.", "clone");
    return Z_ERR;
  }
  if (strncmp(source, "SUNW", 4) == 0) {
    zerror("%s operation is invalid for zones starting with SUNW.", "clone");
    return Z_ERR;
  }
  zone_state_t state;
  struct kzone kz;
  if (kernel_lookup(source, &kz)) {
    const char *s = zone_get_state((char *)source, &state) == Z_OK ? zone_state_str(state) : "ready/running";
    zerror("%s operation is invalid for %s zones.", "clone", s);
    return Z_ERR;
  }
  int err = zone_get_state((char *)source, &state);
  if (err != Z_OK) {
    /* zperror2(source_zone, ...): the source's name, not the target's "zone '...'" prefix */
    fprintf(stderr, "%s: %s: %s: %s\n", execname, source, "could not get state", zonecfg_strerror(err));
    return Z_ERR;
  }
  if (state != ZONE_STATE_INSTALLED) {
    fprintf(stderr, "%s: zone %s is %s; %s is required.\n", execname, source, zone_state_str(state),
            zone_state_str(ZONE_STATE_INSTALLED));
    return Z_ERR;
  }
  return Z_OK;
}

/* zoneadm -z NAME clone [-m copy] SOURCE: the target's checks are install's (sanity_check treats
 * CMD_CLONE and CMD_INSTALL alike), then the source's; the zonepath copy or ZFS clone happens
 * while the target is incomplete, so a kill then leaves it incomplete, as an install does. */
static int clone_func(int argc, char **argv) {
  const char *source = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "-?") == 0) return usage();
    if ((strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "-s") == 0) && i + 1 < argc) {
      i++; /* the method or snapshot: the fake's copy is the same either way */
      continue;
    }
    if (argv[i][0] == '-' || source != NULL) return usage();
    source = argv[i];
  }
  if (source == NULL) return usage();
  int lock;
  int rc = lock_uninstalled_target("clone", &lock);
  if (lock < 0) return rc;
  if (rc == Z_OK) rc = clonable_source_locked(source);
  if (rc == Z_OK) {
    /* validate_clone() -> valid_brand_clone(): the zonepath's contents are the brand's */
    char sbrand[ZC_MAXNAMELEN] = "", tbrand[ZC_MAXNAMELEN] = "";
    if (zone_get_brand((char *)source, sbrand, sizeof(sbrand)) != Z_OK) {
      fprintf(stderr, "%s: zone '%s': %s\n", execname, source, "missing or invalid brand");
      rc = Z_ERR;
    } else if (zone_get_brand((char *)target_zone, tbrand, sizeof(tbrand)) != Z_OK || strcmp(sbrand, tbrand) != 0) {
      fprintf(stderr, "%s: Zones '%s' and '%s' have different brand types.\n", execname, source, target_zone);
      rc = Z_ERR;
    }
  }
  if (rc != Z_OK) {
    fake_unlock(lock);
    return rc;
  }
  return populate_zone(lock, "FAKE_ILLUMOS_CLONE_DELAY_MS");
}

/* ---- boot / halt ------------------------------------------------------------------------------- */

#define NETWORK_FMRI "svc:/milestone/network:default"

/* Lets go of the caller's stdio, so that nobody waiting for zoneadm's output waits for a
 * detached process. */
static void detach_stdio(void) {
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
  }
}

/* Forks a process detached from the caller (new session, then a grandchild re-parented to
 * init), as zoneadmd and the zone's own SMF are: returns 0 in it, 1 in the caller (after the
 * intermediate child exited), -1 if fork failed. */
static int fork_detached(void) {
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

/* Takes the state lock from a detached process, but only if the state directory still exists
 * (the test may be removing it by now, and fake_lock would create it): -1 if not. */
static int relock_existing(void) {
  char path[4096];
  if (fake_path(path, sizeof(path), "", ".lock") != 0) return -1;
  int lock = open(path, O_RDWR | O_CLOEXEC);
  if (lock < 0) return -1;
  while (flock(lock, LOCK_EX) != 0) {
    if (errno != EINTR) {
      close(lock);
      return -1;
    }
  }
  return lock;
}

/* Whether the zone is in the kernel as that boot of it (zoneid) with that status. */
static int kernel_is(int zoneid, const char *status) {
  struct kzone kz;
  return kernel_lookup(target_zone, &kz) && kz.id == zoneid && strcmp(kz.status, status) == 0;
}

/* In a detached process: after the delay, the zone's network milestone comes online, if that
 * boot of it still runs (a halt clears the zone's SMF state). */
static void network_online_later(int zoneid) {
  sleep_ms(env_ms("FAKE_ILLUMOS_NETWORK_DELAY_MS", 50));
  if (!kernel_is(zoneid, "running")) return;
  int lock = relock_existing();
  if (lock < 0) return;
  if (kernel_is(zoneid, "running")) fake_smf_set_state(target_zone, NETWORK_FMRI, "online");
  fake_unlock(lock);
}

static void schedule_network_online(int zoneid) {
  int forked = fork_detached();
  if (forked < 0) fake_smf_set_state(target_zone, NETWORK_FMRI, "online");
  if (forked != 0) return;
  detach_stdio();
  network_online_later(zoneid);
  _exit(0);
}

/* zoneadmd's ready -> running, under the lock; 0 or Z_ERR. */
static int become_running_locked(int *id) {
  if (kernel_update_locked("running", id) != 0) {
    zerror("could not boot the zone: %s", strerror(errno));
    return Z_ERR;
  }
  fake_emit_zone_event(target_zone, *id, "running", "ready");
  return Z_OK;
}

/* zoneadmd: zone_create (uninitialized -> initialized -> ready), then zone_boot (ready ->
 * booting, published as ready -> ready). The SMF repository of the new zone exists before init
 * runs. Under the lock; 0 or Z_ERR. */
static int become_ready_locked(int *id) {
  if (kernel_update_locked("ready", id) != 0) {
    zerror("could not create the zone: %s", strerror(errno));
    return Z_ERR;
  }
  fake_emit_zone_event(target_zone, *id, "initialized", "uninitialized");
  fake_emit_zone_event(target_zone, *id, "ready", "initialized");
  fake_smf_set_state(target_zone, NETWORK_FMRI, "offline");
  fake_emit_zone_event(target_zone, *id, "ready", "ready");
  return Z_OK;
}

/* Whether the zone may be booted now (installed, not in the kernel); reports why not. Locked. */
static int bootable_locked(void) {
  zone_state_t state;
  struct kzone kz;
  int in_kernel;
  int rc = get_state(&state, &kz, &in_kernel);
  if (rc == Z_OK && in_kernel) rc = invalid_for_running("boot", &kz);
  if (rc == Z_OK && state < ZONE_STATE_INSTALLED) {
    zerror("must be %s before %s.", zone_state_str(ZONE_STATE_INSTALLED), "boot");
    rc = Z_ERR;
  }
  return rc;
}

/*
 * With FAKE_ILLUMOS_BOOT_DELAY_MS the boot is zoneadmd's, a detached process, as on illumos:
 * it readies the zone, which stays "ready" that long, then makes it running. zoneadm only asks
 * and waits (through a pipe), so killing zoneadm (with the agent that ran it) leaves either a
 * zone not touched yet or a boot that completes, never a zone stuck "ready".
 */
static int boot_by_zoneadmd(void) {
  int fds[2];
  if (pipe(fds) != 0) {
    zerror("could not reach zoneadmd: %s", strerror(errno));
    return Z_ERR;
  }
  int forked = fork_detached();
  if (forked == 0) {
    signal(SIGPIPE, SIG_IGN); /* the zoneadm waiting for us may be gone */
    close(fds[0]);
    detach_stdio();
    char outcome = '0';
    int id = -1;
    int lock = relock_existing();
    int ready = lock >= 0 && bootable_locked() == Z_OK && become_ready_locked(&id) == Z_OK;
    if (lock >= 0) fake_unlock(lock);
    if (ready) {
      sleep_ms(env_ms("FAKE_ILLUMOS_BOOT_DELAY_MS", 0));
      lock = relock_existing();
      if (lock >= 0) {
        if (kernel_is(id, "ready") && become_running_locked(&id) == Z_OK) outcome = '1';
        fake_unlock(lock);
      }
    }
    ssize_t ignored = write(fds[1], &outcome, 1);
    (void)ignored;
    close(fds[1]);
    if (outcome == '1') network_online_later(id);
    _exit(0);
  }
  close(fds[1]);
  char outcome = '0';
  ssize_t got = forked < 0 ? -1 : read(fds[0], &outcome, 1);
  close(fds[0]);
  if (got != 1 || outcome != '1') {
    zerror("the zone did not boot (not bootable, halted meanwhile, or zoneadmd could not be started)");
    return Z_ERR;
  }
  return Z_OK;
}

static int boot_func(int argc, char **argv) {
  (void)argv;
  (void)argc; /* boot arguments are accepted and ignored */
  int lock = fake_lock();
  if (lock < 0) {
    zerror("could not lock the zone state: %s", strerror(errno));
    return Z_ERR;
  }
  int rc = bootable_locked();
  if (rc == Z_OK && env_ms("FAKE_ILLUMOS_BOOT_DELAY_MS", 0) > 0) {
    fake_unlock(lock);
    return boot_by_zoneadmd();
  }
  int id = -1;
  if (rc == Z_OK) rc = become_ready_locked(&id);
  if (rc == Z_OK) rc = become_running_locked(&id);
  fake_unlock(lock);
  if (rc == Z_OK) schedule_network_online(id);
  return rc;
}

static int halt_func(int argc, char **argv) {
  (void)argv;
  if (argc > 0) return usage();
  int lock = fake_lock();
  if (lock < 0) {
    zerror("could not lock the zone state: %s", strerror(errno));
    return Z_ERR;
  }
  zone_state_t state;
  struct kzone kz;
  int in_kernel;
  int rc = get_state(&state, &kz, &in_kernel);
  if (rc == Z_OK && !in_kernel) {
    if (state < ZONE_STATE_INCOMPLETE) {
      /* zoneadmd refuses to start for such a zone */
      zerror("cannot manage a zone which is in state '%s'", zone_state_str(state));
      zerror("call to %s failed", "zoneadmd");
      rc = Z_ERR;
    } else {
      zerror("zone is already halted"); /* zoneadmd: not an error */
    }
  } else if (rc == Z_OK) {
    int id = kz.id;
    if (kernel_update_locked("shutting_down", &id) != 0) {
      zerror("unable to halt zone: %s", strerror(errno));
      rc = Z_ERR;
    } else {
      fake_emit_zone_event(target_zone, id, "shutting_down", "running");
      fake_emit_zone_event(target_zone, id, "shutting_down", "shutting_down");
      fake_smf_clear_zone(target_zone);
      if (kernel_update_locked(NULL, NULL) != 0) {
        zerror("unable to destroy zone: %s", strerror(errno));
        rc = Z_ERR;
      } else {
        fake_emit_zone_event(target_zone, id, "uninitialized", "shutting_down");
      }
    }
  }
  fake_unlock(lock);
  return rc;
}

/* ---- list ---------------------------------------------------------------------------------------- */

static void put_escaped(const char *s) {
  for (; *s != '\0'; s++) {
    if (*s == ':' || *s == '\\') putchar('\\');
    putchar(*s);
  }
}

static int list_func(int argc, char **argv) {
  int all = 0, installed = 0, parsable = 0, verbose = 0;
  for (int i = 0; i < argc; i++) {
    if (argv[i][0] != '-' || argv[i][1] == '\0') return usage();
    for (const char *c = argv[i] + 1; *c != '\0'; c++) {
      if (*c == 'c') all = 1;
      else if (*c == 'i') installed = 1;
      else if (*c == 'p') parsable = 1;
      else if (*c == 'v') verbose = 1;
      else return usage();
    }
  }
  if (target_zone != NULL) {
    zone_state_t st;
    if (zone_get_state((char *)target_zone, &st) != Z_OK) {
      zerror("%s", zonecfg_strerror(Z_NO_ZONE));
      return Z_ERR;
    }
    all = 1; /* an explicitly named zone is listed whatever its state */
  }
  FILE *f = setzoneent();
  if (f == NULL) {
    zerror("could not read the zone index: %s", strerror(errno));
    return Z_ERR;
  }
  if (!parsable && verbose) printf("  ID NAME             STATUS     PATH                           BRAND    IP    \n");
  struct zoneent *ze;
  while ((ze = getzoneent_private(f)) != NULL) {
    zone_state_t st;
    struct kzone kz;
    if ((target_zone != NULL && strcmp(ze->zone_name, target_zone) != 0) || zone_get_state(ze->zone_name, &st) != Z_OK) {
      free(ze);
      continue;
    }
    int global = strcmp(ze->zone_name, GLOBAL_ZONENAME) == 0;
    int running = global || kernel_lookup(ze->zone_name, &kz);
    int id = global ? 0 : (running ? kz.id : -1);
    if (!(running || all || (installed && st >= ZONE_STATE_INSTALLED))) {
      free(ze);
      continue;
    }
    char brand[ZC_MAXNAMELEN] = "", uuid[37];
    (void)zone_get_brand(ze->zone_name, brand, sizeof(brand));
    format_uuid(ze->zone_uuid, uuid);
    const char *ip = "shared";
    if (!global) {
      zone_dochandle_t h = zonecfg_init_handle();
      zone_iptype_t t = ZS_SHARED;
      if (h != NULL && zonecfg_get_handle(ze->zone_name, h) == Z_OK && zonecfg_get_iptype(h, &t) == Z_OK &&
          t == ZS_EXCLUSIVE)
        ip = "excl";
      zonecfg_fini_handle(h);
    }
    char idbuf[16];
    if (id >= 0) snprintf(idbuf, sizeof(idbuf), "%d", id);
    else snprintf(idbuf, sizeof(idbuf), "-");
    if (parsable) {
      printf("%s:", idbuf);
      put_escaped(ze->zone_name);
      printf(":%s:", zone_state_str(st));
      put_escaped(ze->zone_path);
      printf(":%s:%s:%s\n", uuid, brand, ip);
    } else if (verbose) {
      printf("%*s %-16s %-10s %-30s %-8s %-6s\n", 4, idbuf, ze->zone_name, zone_state_str(st), ze->zone_path, brand, ip);
    } else {
      printf("%s\n", ze->zone_name);
    }
    free(ze);
  }
  endzoneent(f);
  return Z_OK;
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-z") == 0 && i + 1 < argc) {
      target_zone = argv[++i];
    } else if (strcmp(argv[i], "-u") == 0 && i + 1 < argc) {
      i++; /* uuid matching: not supported by the fake, ignored */
    } else {
      return usage();
    }
  }
  if (i >= argc) return usage();
  const char *cmd = argv[i];
  int sub_argc = argc - i - 1;
  char **sub_argv = argv + i + 1;
  if (strcmp(cmd, "list") == 0) return list_func(sub_argc, sub_argv);

  int known = strcmp(cmd, "install") == 0 || strcmp(cmd, "boot") == 0 || strcmp(cmd, "halt") == 0 ||
              strcmp(cmd, "uninstall") == 0 || strcmp(cmd, "clone") == 0;
  if (!known) return usage();
  if (target_zone == NULL) {
    zerror("no zone specified");
    return Z_ERR;
  }
  if (strcmp(target_zone, GLOBAL_ZONENAME) == 0) {
    zerror("%s operation is invalid for the global zone.", cmd);
    return Z_ERR;
  }
  if (strncmp(target_zone, "SUNW", 4) == 0) {
    zerror("%s operation is invalid for zones starting with SUNW.", cmd);
    return Z_ERR;
  }
  if (fake_state_dir() == NULL) {
    zerror("FAKE_ILLUMOS_STATE is not set");
    return Z_ERR;
  }
  if (strcmp(cmd, "install") == 0) return install_func(sub_argc, sub_argv);
  if (strcmp(cmd, "boot") == 0) return boot_func(sub_argc, sub_argv);
  if (strcmp(cmd, "halt") == 0) return halt_func(sub_argc, sub_argv);
  if (strcmp(cmd, "clone") == 0) return clone_func(sub_argc, sub_argv);
  return uninstall_func(sub_argc, sub_argv);
}
