/*
 * Fake svcs(1), run "in" a zone by the fake zlogin (see inzone.c): the two reports the agent puts
 * in a zone bundle (src/host/commands.ts), over the zone's fake repository (svccfg.c) and its
 * instances' restarter states (svcadm.c, common.h), instances in FMRI order:
 *
 *   svcs -a -H -o state,fmri   "<state> <fmri>" a line; "uninitialized" for an instance whose
 *                              restarter has not acted on it yet
 *   svcs -xv                   for each instance that is offline, degraded or in maintenance:
 *                                <fmri>
 *                                 State: <state>
 *                                   See: /var/svc/log/<service, '/' as '-'>:<instance>.log
 *                                Impact: This service is not running.   (degraded: is degraded.)
 *                              and an empty line; nothing when every instance is well
 * Other arguments: usage, exit 2.
 */
#include "inzone.c"

static int usage(void) {
  fprintf(stderr, "Usage: svcs [-aHpv] [-o col[,col]*] [-R FMRI-instance]... [-sS col]... [<service> ...]\n"
                  "       svcs -x [-v] [<service> ...]\n");
  return 2;
}

int main(int argc, char **argv) {
  progname = "svcs";
  int states = argc == 5 && strcmp(argv[1], "-a") == 0 && strcmp(argv[2], "-H") == 0 && strcmp(argv[3], "-o") == 0 &&
               strcmp(argv[4], "state,fmri") == 0;
  int explain = argc == 2 && strcmp(argv[1], "-xv") == 0;
  if (!states && !explain) return usage();
  struct inzone z;
  inzone_enter(&z);
  struct lines fmris;
  repo_instances(&z, &fmris);
  for (size_t i = 0; i < fmris.n; i++) {
    const char *fmri = fmris.v[i];
    char state[64];
    instance_state(z.zone, fmri, state, sizeof(state));
    if (states) {
      printf("%s %s\n", state, fmri);
      continue;
    }
    int degraded = strcmp(state, "degraded") == 0;
    if (!degraded && strcmp(state, "offline") != 0 && strcmp(state, "maintenance") != 0) continue;
    char log[1200];
    if (instance_log_file(fmri, log, sizeof(log)) != 0) die(1, "FMRI too long: %s", fmri);
    printf("%s\n State: %s\n   See: %s\nImpact: %s\n\n", fmri, state, log,
           degraded ? "This service is degraded." : "This service is not running.");
  }
  lines_free(&fmris);
  inzone_leave(&z);
  return 0;
}
