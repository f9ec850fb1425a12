/*
 * Fake tail(1), run "in" a zone by the fake zlogin (see inzone.c), for what the agent reads with
 * it (src/host/commands.ts): the SMF log of one of the zone's service instances.
 *
 *   tail -n <N> /var/svc/log/<service, '/' as '-'>:<instance>.log
 *        the last N lines of that instance's restarter log (common.h: what svc.startd would have
 *        written there); "tail: cannot open input" and exit 1 when the zone has no such
 *        instance or its log has no line yet
 * Other arguments: usage, exit 2. (The zone's other files do not exist on the Linux host.)
 */
#include "inzone.c"

static int usage(void) {
  fprintf(stderr, "usage: tail [+/-[n][lbc][f]] [file]\n       tail [+/-[n][l][r|f]] [file]\n");
  return 2;
}

int main(int argc, char **argv) {
  progname = "tail";
  if (argc != 4 || strcmp(argv[1], "-n") != 0) return usage();
  char *end;
  long want = strtol(argv[2], &end, 10);
  if (argv[2][0] == '\0' || *end != '\0' || want < 0) return usage();
  const char *file = argv[3];
  struct inzone z;
  inzone_enter(&z);
  struct lines fmris;
  repo_instances(&z, &fmris);
  char *text = NULL;
  for (size_t i = 0; i < fmris.n && text == NULL; i++) {
    char log[1200], path[4096];
    if (instance_log_file(fmris.v[i], log, sizeof(log)) != 0 || strcmp(log, file) != 0) continue;
    if (fake_smf_log_path(path, sizeof(path), z.zone, fmris.v[i]) == 0) text = fake_read_file(path, NULL);
  }
  lines_free(&fmris);
  inzone_leave(&z);
  if (text == NULL) die(1, "cannot open input");
  /* From the end, back over `want` line ends (the last line's own newline aside). */
  size_t len = strlen(text);
  size_t start = len;
  long seen = 0;
  while (start > 0 && want > 0) {
    if (text[start - 1] == '\n' && start != len && ++seen == want) break;
    start--;
  }
  if (want == 0) start = len;
  fputs(text + start, stdout);
  free(text);
  return 0;
}
