/*
 * Fake zlogin(1): `zlogin [-l user] [-SEnQ] ZONE command [arg ...]` runs the command "in" the
 * zone when the fake kernel has it running (there is no zone to enter on Linux, so it runs on
 * the host as a stand-in), and exits with the command's status.
 *
 * Like the real one (illumos-gate usr/src/cmd/zlogin/zlogin.c, prep_args), the command words
 * are joined with spaces and handed to a shell (`su root -c "<words>"` there, `/bin/sh -c` here),
 * so callers must quote each word for sh; src/illumos/zones.ts does. The shell runs with
 * FAKE_ILLUMOS_ZONE=<zone> in its environment and this program's own directory first on PATH,
 * so that the fake in-zone commands built next to it (ipadm, svccfg, svcadm, route: see
 * inzone.c) are the ones it finds, and know which zone they act on. Errors, as the real ones:
 *   zlogin: zone 'NAME' unknown
 *   zlogin: login allowed only to running zones (NAME is 'installed').
 */
#include "zonecfg.c"

#include <limits.h>

static int zusage(void) {
  fprintf(stderr, "usage: zlogin [ -dnQCES ] [ -e cmdchar ] [-l user] zonename [command [args ...] ]\n");
  return 2;
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-l") == 0 || strcmp(argv[i], "-e") == 0) {
      if (++i >= argc) return zusage();
    } else if (strspn(argv[i] + 1, "dnQCES") != strlen(argv[i] + 1) || argv[i][1] == '\0') {
      return zusage();
    }
  }
  if (i >= argc) return zusage();
  const char *zonename = argv[i++];
  zone_state_t st;
  if (zone_get_state((char *)zonename, &st) != Z_OK) {
    fprintf(stderr, "zlogin: zone '%s' unknown\n", zonename);
    return 1;
  }
  if (st != ZONE_STATE_RUNNING && st != ZONE_STATE_MOUNTED) {
    fprintf(stderr, "zlogin: login allowed only to running zones (%s is '%s').\n", zonename, zone_state_str(st));
    return 1;
  }
  if (i >= argc) {
    fprintf(stderr, "zlogin: interactive login is not supported by the fake zlogin\n");
    return 1;
  }
  size_t len = 1;
  for (int k = i; k < argc; k++) len += strlen(argv[k]) + 1;
  char *subshell = calloc(1, len);
  if (subshell == NULL) {
    fprintf(stderr, "zlogin: out of memory\n");
    return 1;
  }
  for (int k = i; k < argc; k++) {
    strcat(subshell, argv[k]);
    strcat(subshell, " ");
  }
  /* "inside" the zone: its name for the fake commands, and them first on PATH */
  if (setenv("FAKE_ILLUMOS_ZONE", zonename, 1) != 0) {
    fprintf(stderr, "zlogin: could not set the environment: %s\n", strerror(errno));
    free(subshell);
    return 1;
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash != NULL && slash != self) *slash = '\0';
    const char *path = getenv("PATH");
    if (path == NULL || path[0] == '\0') path = "/usr/bin:/bin";
    size_t plen = strlen(self) + 1 + strlen(path) + 1;
    char *newpath = malloc(plen);
    if (newpath != NULL) snprintf(newpath, plen, "%s:%s", self, path);
    if (newpath == NULL || setenv("PATH", newpath, 1) != 0) {
      fprintf(stderr, "zlogin: could not set PATH: %s\n", strerror(errno));
      free(newpath);
      free(subshell);
      return 1;
    }
    free(newpath);
  }
  fflush(NULL);
  execl("/bin/sh", "sh", "-c", subshell, (char *)NULL);
  fprintf(stderr, "zlogin: could not exec /bin/sh: %s\n", strerror(errno));
  free(subshell);
  return 1;
}
