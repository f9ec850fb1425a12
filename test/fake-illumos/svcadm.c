/*
 * Fake svcadm(8), run "in" a zone by the fake zlogin (see inzone.c): enable and disable of
 * service instances of the zone's fake repository (svccfg.c), acting on the restarter state that
 * the fake libscf reads ("$FAKE_ILLUMOS_STATE/smf/<zone>/<fmri>", fake_smf_set_state), so that a
 * property-group wait through the addon sees each change:
 *
 *   svcadm enable [-rst] <fmri> ...    an instance that is not online (or degraded) goes
 *                                      "offline" at once, then "online" once its start method
 *                                      has run: FAKE_ILLUMOS_SERVICE_START_MS (default 20) later,
 *                                      from a detached process, if that boot of the zone still
 *                                      runs and the instance is still "offline" (a disable in
 *                                      between wins). With -s, svcadm itself waits that long and
 *                                      sets "online" before it returns. An instance of
 *                                      svc:/system/illumos/propolis-server goes "maintenance"
 *                                      instead when it has no usable config/server_addr
 *                                      ("[<ipv6>]:<port>" or "<ipv4>:<port>"): Propolis's start
 *                                      method fails without one.
 *   svcadm disable [-st] <fmri> ...    the instance goes "disabled" at once
 *   svcadm mark [-It] maintenance|degraded <fmri> ...   the instance goes to that state at once
 *                                      (an operator's, or a test's, way to fail a service)
 * -t (temporary) is accepted and implied: the whole fake repository lasts one boot of the zone.
 * An FMRI ("svc:/" may be left out) that names no instance of the zone: "svcadm: Pattern '...'
 * doesn't match any instances", and the exit status is 1 once every operand was tried; usage
 * errors exit 2, as svcadm's do.
 */
#include "inzone.c"

#define EXIT_SVC_FATAL 1
#define EXIT_SVC_USAGE 2

static int usage(void) {
  fprintf(stderr,
          "Usage: svcadm [-v] [cmd [args ... ]]\n\n"
          "\tsvcadm enable [-rst] <service> ...\t- enable and online service(s)\n"
          "\tsvcadm disable [-st] <service> ...\t- disable and offline service(s)\n"
          "\tsvcadm mark [-It] <state> <service> ...\t- set maintenance state\n");
  return EXIT_SVC_USAGE;
}

/* "svc:/a/b:i", "svc://localhost/a/b:i" or "a/b:i" -> "svc:/a/b:i"; -1 unless it has an instance part. */
static int canon_instance(const char *in, char *out, size_t len) {
  const char *p = in;
  if (strncmp(p, "svc://localhost/", 16) == 0) p += 16;
  else if (strncmp(p, "svc:/", 5) == 0) p += 5;
  if (*p == '\0' || *p == '/' || strchr(p, ':') == NULL || strchr(p, ' ') != NULL) return -1;
  int n = snprintf(out, len, "svc:/%s", p);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

#define PROPOLIS_SERVICE "svc:/system/illumos/propolis-server"

/* Whether the instance's config/server_addr is a socket address Propolis can listen on. */
static int usable_server_addr(const struct lines *repo, const char *fmri) {
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

static int instance_exists(const struct lines *repo, const char *fmri) {
  char f0[32], f1[1024];
  for (size_t i = 0; i < repo->n; i++) {
    if (field(repo->v[i], 0, f0, sizeof(f0)) == 0 && strcmp(f0, "instance") == 0 && field(repo->v[i], 1, f1, sizeof(f1)) == 0 &&
        strcmp(f1, fmri) == 0)
      return 1;
  }
  return 0;
}

/* The instance's restarter state, into buf ("" if it has none). */
static void read_state(const char *zone, const char *fmri, char *buf, size_t len) {
  char path[4096];
  buf[0] = '\0';
  if (fake_smf_path(path, sizeof(path), zone, fmri) != 0) return;
  char *text = fake_read_file(path, NULL);
  if (text == NULL) return;
  snprintf(buf, len, "%s", text);
  free(text);
}

/* After the start-up delay, "offline" -> `target` ("online", or "maintenance" for a start method
 * that fails) for that boot of the zone (zoneadm.c's schedule_network_online, for a service).
 * Called without the lock held. */
static void schedule_start(const char *zone, int zoneid, const char *fmri, const char *target, long delay) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    die(EXIT_SVC_FATAL, "could not start %s: %s", fmri, strerror(errno));
  }
  if (pid > 0) {
    waitpid(pid, NULL, 0);
    return;
  }
  /* child: detach (new session, then a grandchild re-parented to init) and let go of the
   * caller's stdio, so that nobody waiting for svcadm's output waits for this */
  setsid();
  if (fork() != 0) _exit(0);
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
  }
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

/* svcadm mark [-It] maintenance|degraded <fmri> ... (argv: what follows "mark"). */
static int mark(int argc, char **argv) {
  int i = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (argv[i][1] == '\0' || strspn(argv[i] + 1, "It") != strlen(argv[i] + 1)) return usage();
  }
  if (i + 1 >= argc) return usage();
  const char *state = argv[i++];
  if (strcmp(state, "maintenance") != 0 && strcmp(state, "degraded") != 0) return usage();
  int status = 0;
  struct inzone z;
  inzone_enter(&z);
  struct lines repo;
  repo_load(&z, &repo);
  for (; i < argc; i++) {
    char fmri[1024];
    if (canon_instance(argv[i], fmri, sizeof(fmri)) != 0 || !instance_exists(&repo, fmri)) {
      warnx_("Pattern '%s' doesn't match any instances", argv[i]);
      status = EXIT_SVC_FATAL;
      continue;
    }
    if (fake_smf_set_state(z.zone, fmri, state) != 0) die(EXIT_SVC_FATAL, "could not mark %s: %s", fmri, strerror(errno));
  }
  lines_free(&repo);
  inzone_leave(&z);
  return status;
}

int main(int argc, char **argv) {
  progname = "svcadm";
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-v") != 0) return usage();
  }
  if (i >= argc) return usage();
  const char *cmd = argv[i++];
  if (strcmp(cmd, "mark") == 0) return mark(argc - i, argv + i);
  int enable = strcmp(cmd, "enable") == 0;
  if (!enable && strcmp(cmd, "disable") != 0) return usage();
  int sync = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    for (const char *c = argv[i] + 1; *c != '\0'; c++) {
      if (*c == 's') sync = 1;
      else if (*c == 't' || (enable && *c == 'r')) continue;
      else return usage();
    }
    if (argv[i][1] == '\0') return usage();
  }
  if (i >= argc) return usage();
  long delay = inzone_env_ms("FAKE_ILLUMOS_SERVICE_START_MS", 20);

  int status = 0;
  struct inzone z;
  inzone_enter(&z);
  struct lines repo;
  repo_load(&z, &repo);
  int nstart = 0;
  char **starting = calloc((size_t)(argc - i), sizeof(char *));
  const char **targets = calloc((size_t)(argc - i), sizeof(char *));
  if (starting == NULL || targets == NULL) die(EXIT_SVC_FATAL, "out of memory");
  for (; i < argc; i++) {
    char fmri[1024];
    if (canon_instance(argv[i], fmri, sizeof(fmri)) != 0 || !instance_exists(&repo, fmri)) {
      warnx_("Pattern '%s' doesn't match any instances", argv[i]);
      status = EXIT_SVC_FATAL;
      continue;
    }
    if (!enable) {
      if (fake_smf_set_state(z.zone, fmri, "disabled") != 0) die(EXIT_SVC_FATAL, "could not disable %s: %s", fmri, strerror(errno));
      continue;
    }
    char state[64];
    read_state(z.zone, fmri, state, sizeof(state));
    if (strcmp(state, "online") == 0 || strcmp(state, "degraded") == 0) continue;
    if (fake_smf_set_state(z.zone, fmri, "offline") != 0) die(EXIT_SVC_FATAL, "could not enable %s: %s", fmri, strerror(errno));
    starting[nstart] = strdup(fmri);
    if (starting[nstart] == NULL) die(EXIT_SVC_FATAL, "out of memory");
    int propolis = strncmp(fmri, PROPOLIS_SERVICE ":", strlen(PROPOLIS_SERVICE) + 1) == 0;
    targets[nstart] = propolis && !usable_server_addr(&repo, fmri) ? "maintenance" : "online";
    nstart++;
  }
  lines_free(&repo);
  char zone[ZONENAME_MAX];
  snprintf(zone, sizeof(zone), "%s", z.zone);
  int zoneid = z.id;
  inzone_leave(&z);

  if (sync && nstart > 0) {
    inzone_sleep_ms(delay);
    inzone_enter(&z);
    if (z.id != zoneid) die(EXIT_SVC_FATAL, "zone '%s' was rebooted", zone);
    for (int k = 0; k < nstart; k++) {
      char state[64];
      read_state(zone, starting[k], state, sizeof(state));
      if (strcmp(state, "offline") == 0) fake_smf_set_state(zone, starting[k], targets[k]);
    }
    inzone_leave(&z);
  } else {
    for (int k = 0; k < nstart; k++) schedule_start(zone, zoneid, starting[k], targets[k], delay);
  }
  for (int k = 0; k < nstart; k++) free(starting[k]);
  free(starting);
  free(targets);
  return status;
}
