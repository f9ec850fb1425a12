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
 * The enable's code (enable_begin, start_target, schedule_start) is in inzone.c: the fake
 * zoneadm enables a site profile's instances with it too, once the network milestone is online.
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
    int begun = enable_begin(z.zone, fmri);
    if (begun < 0) die(EXIT_SVC_FATAL, "could not enable %s: %s", fmri, strerror(errno));
    if (begun == 0) continue;
    starting[nstart] = strdup(fmri);
    if (starting[nstart] == NULL) die(EXIT_SVC_FATAL, "out of memory");
    targets[nstart] = start_target(&repo, fmri);
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
    for (int k = 0; k < nstart; k++) {
      if (schedule_start(zone, zoneid, starting[k], targets[k], delay) != 0)
        die(EXIT_SVC_FATAL, "could not start %s: %s", starting[k], strerror(errno));
    }
  }
  for (int k = 0; k < nstart; k++) free(starting[k]);
  free(starting);
  free(targets);
  return status;
}
