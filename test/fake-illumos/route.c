/*
 * Fake route(8), run "in" a zone by the fake zlogin (see inzone.c): adding a route to the zone's
 * table (its "routes" file), as the agent does (src/host/commands.ts):
 *
 *   route [-n] add [-inet6] default [-inet6] <gateway>
 *   route [-n] add [-inet6] <destination>[/<prefix>] [-inet6] <gateway>
 *        The gateway must be an address of the family asked for (IPv4 without -inet6) and on
 *        the link: inside the prefix of one of the zone's addresses (ipadm.c's "addrs"), else
 *        "add net <dest>: gateway <gw>: Network is unreachable", as the kernel's ENETUNREACH
 *        shows; adding a route that exists: "... entry exists". Both exit 1, as do malformed
 *        addresses ("route: bad address: <addr>").
 *   route [-n] get [-inet6] <destination>   "   route to: <destination>" and "gateway: <gw>" lines
 *        (for tests of the fake; "route: not in table" and exit 1 if there is none)
 * Usage errors exit 1. Routes last as long as that boot of the zone (nothing is persistent).
 */
#include "inzone.c"

static int usage(void) {
  fprintf(stderr, "usage: route [ -fnpqv ] [ -R <root-dir> ] cmd [[ -<qualifers> ] args ]\n"
                  "\tcmd: add [-inet6] <destination> [-inet6] <gateway> | get [-inet6] <destination>\n");
  return 1;
}

/* "default" or "<ip>[/<prefix>]" -> the table's spelling ("default", or "<ip>/<prefix>" with the
 * address in canonical form and host bits cleared as the kernel keeps them). */
static int canon_dest(const char *s, int family, char *out, size_t len) {
  if (strcmp(s, "default") == 0) {
    snprintf(out, len, "default");
    return 0;
  }
  int f, prefix;
  unsigned char a[16];
  if (parse_cidr(s, &f, a, &prefix) != 0 || f != family) return -1;
  int bytes = family == AF_INET6 ? 16 : 4;
  for (int bit = prefix; bit < bytes * 8; bit++) a[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
  char ip[INET6_ADDRSTRLEN];
  inet_ntop(family, a, ip, sizeof(ip));
  snprintf(out, len, "%s/%d", ip, prefix);
  return 0;
}

int main(int argc, char **argv) {
  progname = "route";
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-n") != 0 && strcmp(argv[i], "-q") != 0 && strcmp(argv[i], "-v") != 0) return usage();
  }
  if (i >= argc) return usage();
  const char *cmd = argv[i++];
  int add = strcmp(cmd, "add") == 0;
  if (!add && strcmp(cmd, "get") != 0) return usage();
  int family = AF_INET;
  const char *words[2];
  int nwords = 0;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "-inet6") == 0) family = AF_INET6;
    else if (strcmp(argv[i], "-inet") == 0) family = AF_INET;
    else if (argv[i][0] == '-') return usage();
    else if (nwords < 2) words[nwords++] = argv[i];
    else return usage();
  }
  if (nwords != (add ? 2 : 1)) return usage();
  char dest[INET6_ADDRSTRLEN + 8];
  if (canon_dest(words[0], family, dest, sizeof(dest)) != 0) die(1, "bad address: %s", words[0]);

  struct inzone z;
  if (!add) {
    inzone_enter(&z);
    struct lines routes;
    lines_load(&z, "routes", &routes);
    inzone_leave(&z);
    char d[INET6_ADDRSTRLEN + 8], gw[INET6_ADDRSTRLEN];
    for (size_t k = 0; k < routes.n; k++) {
      if (field(routes.v[k], 0, d, sizeof(d)) == 0 && strcmp(d, dest) == 0 && field(routes.v[k], 1, gw, sizeof(gw)) == 0) {
        printf("   route to: %s\ndestination: %s\n    gateway: %s\n", words[0], dest, gw);
        lines_free(&routes);
        return 0;
      }
    }
    die(1, "not in table");
  }

  int gf, gprefix;
  unsigned char g[16];
  if (parse_cidr(words[1], &gf, g, &gprefix) != 0 || gf != family || strchr(words[1], '/') != NULL) die(1, "bad address: %s", words[1]);
  char gw[INET6_ADDRSTRLEN];
  inet_ntop(family, g, gw, sizeof(gw));
  /* as route prints it: a destination with a full-length prefix is a host */
  const char *slash = strchr(dest, '/');
  const char *what = slash != NULL && atoi(slash + 1) == (family == AF_INET6 ? 128 : 32) ? "host" : "net";

  inzone_enter(&z);
  struct lines addrs, routes;
  lines_load(&z, "addrs", &addrs);
  int onlink = 0;
  for (size_t k = 0; k < addrs.n && !onlink; k++) {
    char a[INET6_ADDRSTRLEN + 8];
    int af, ap;
    unsigned char ab[16];
    if (field(addrs.v[k], 2, a, sizeof(a)) == 0 && parse_cidr(a, &af, ab, &ap) == 0 && af == family && same_prefix(ab, g, ap))
      onlink = 1;
  }
  lines_free(&addrs);
  if (!onlink) die(1, "add %s %s: gateway %s: Network is unreachable", what, words[0], words[1]);
  lines_load(&z, "routes", &routes);
  char d[INET6_ADDRSTRLEN + 8], existing[INET6_ADDRSTRLEN];
  for (size_t k = 0; k < routes.n; k++) {
    if (field(routes.v[k], 0, d, sizeof(d)) == 0 && strcmp(d, dest) == 0 && field(routes.v[k], 1, existing, sizeof(existing)) == 0 &&
        strcmp(existing, gw) == 0)
      die(1, "add %s %s: gateway %s: entry exists", what, words[0], words[1]);
  }
  char line[256];
  snprintf(line, sizeof(line), "%s %s", dest, gw);
  lines_add(&routes, line);
  lines_save(&z, "routes", &routes);
  lines_free(&routes);
  inzone_leave(&z);
  printf("add %s %s: gateway %s\n", what, words[0], words[1]);
  return 0;
}
