/*
 * A test aid, not a fake of anything: put where the agent expects opteadm, it appends what it was
 * given to $FAKE_ILLUMOS_OPTEADM_LOG as one JSON line, {"argv":[...],"stdin":"..."} (argv without
 * argv[0]), then runs the fake opteadm beside it with the same arguments and the same stdin, so
 * its exit status and output are the fake's. It reads stdin to the end first: a caller that never
 * closes opteadm's stdin hangs here, as it could hang a real set-fw-rules.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what) {
  fprintf(stderr, "opteadm-record: %s: %s\n", what, strerror(errno));
  exit(125);
}

static void put_json_string(FILE *f, const char *s, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c == '\n') fputs("\\n", f);
    else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

int main(int argc, char **argv) {
  char *in = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      cap = cap == 0 ? 4096 : cap * 2;
      char *bigger = realloc(in, cap);
      if (bigger == NULL) die("reading stdin");
      in = bigger;
    }
    ssize_t r = read(0, in + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("reading stdin");
    if (r == 0) break;
    n += (size_t)r;
  }

  const char *log = getenv("FAKE_ILLUMOS_OPTEADM_LOG");
  if (log != NULL && *log != '\0') {
    /* One write of the whole line (O_APPEND), so concurrent runs never interleave within one. */
    char *line = NULL;
    size_t linelen = 0;
    FILE *m = open_memstream(&line, &linelen);
    if (m == NULL) die("recording");
    fputs("{\"argv\":[", m);
    for (int i = 1; i < argc; i++) {
      if (i > 1) fputc(',', m);
      put_json_string(m, argv[i], strlen(argv[i]));
    }
    fputs("],\"stdin\":", m);
    put_json_string(m, in != NULL ? in : "", n);
    fputs("}\n", m);
    if (fclose(m) != 0) die("recording");
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, linelen) != (ssize_t)linelen || close(fd) != 0) die(log);
    free(line);
  }

  /* The same bytes on the fake's stdin, from an unlinked temporary file. */
  FILE *t = tmpfile();
  if (t == NULL || (n > 0 && fwrite(in, 1, n, t) != n) || fflush(t) != 0 || lseek(fileno(t), 0, SEEK_SET) != 0) die("stdin copy");
  if (dup2(fileno(t), 0) < 0) die("stdin copy");
  free(in);

  char self[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len < 0) die("/proc/self/exe");
  self[len] = '\0';
  char real[PATH_MAX + 16];
  snprintf(real, sizeof(real), "%s/opteadm", dirname(self));
  argv[0] = real;
  execv(real, argv);
  die(real);
}
