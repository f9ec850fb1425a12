/*
 * Fake ipadm(8), run "in" a zone by the fake zlogin (see inzone.c): the address subcommands the
 * agent uses (src/host/commands.ts), over the zone's "addrs" file, with illumos ipadm's messages
 * (usr/src/cmd/cmd-inet/usr.sbin/ipadm/ipadm.c, ipadm_status2str of libipadm.c):
 *
 *   ipadm create-addr [-t] -T static -a [local=]<ip>[/<prefix>] <link>/<name>
 *   ipadm create-addr [-t] -T addrconf <link>/<name>
 *        the address object must not exist ("ipadm: Could not create address: Address object
 *        already exists"), <link> must be one of the zone's links (its configuration's `net`
 *        resources; in the global zone any link of the host: "... Interface does not exist"),
 *        a static address must not be on another
 *        address object of the zone ("... Address already in use"). An addrconf object's address
 *        is the link-local EUI-64 one of the link's MAC (fe80::.../10).
 *   ipadm delete-addr <link>/<name>
 *        "ipadm: could not delete address: Object not found" if absent.
 *   ipadm show-addr [-p] [-o field[,...]] [<link>/<name> | <link>/]
 *        fields ADDROBJ, TYPE, STATE (always "ok"), ADDR (default: all four); -p prints the
 *        fields ':'-separated without a header (with ':' in a value escaped as "\:", as ipadm's
 *        parsable output does, except for a lone ADDR field); a named object that does not exist:
 *        exit 1, "ipadm: Address object not found".
 * Errors exit 1; usage errors exit 1 with ipadm's usage text. -t is accepted and implied (the
 * fake has no persistent configuration).
 */
#include "inzone.c"

static int usage(void) {
  fprintf(stderr,
          "usage: ipadm <subcommand> <args> ...\n"
          "\tcreate-addr\t[-t] -T static [-d] -a{local|remote}=addr[/prefixlen] <addrobj>\n"
          "\tcreate-addr\t[-t] -T addrconf [-i interface-id] <addrobj>\n"
          "\tdelete-addr\t[-r] <addrobj>\n"
          "\tshow-addr\t[[-p] -o <field>,...] [<addrobj>]\n");
  return 1;
}

/* "<link>/<name>": a valid link name, then a name of letters and digits starting with a letter
 * (ipadm's addrobj rule: [a-zA-Z][a-zA-Z0-9]*, under IPADM_AOBJ_USTRSIZ 32). */
static int split_addrobj(const char *aobj, char link[32], char name[32]) {
  const char *slash = strchr(aobj, '/');
  if (slash == NULL || slash == aobj || (size_t)(slash - aobj) >= 32) return -1;
  memcpy(link, aobj, (size_t)(slash - aobj));
  link[slash - aobj] = '\0';
  const char *n = slash + 1;
  if (strlen(n) >= 32) return -1;
  for (const char *p = link; *p != '\0'; p++) {
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '.'))
      return -1;
  }
  if (*n != '\0') {
    if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z'))) return -1;
    for (const char *p = n; *p != '\0'; p++) {
      if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) return -1;
    }
  }
  snprintf(name, 32, "%s", n);
  return 0;
}

static long find_addrobj(const struct lines *addrs, const char *aobj) {
  char f[256];
  for (size_t i = 0; i < addrs->n; i++) {
    if (field(addrs->v[i], 0, f, sizeof(f)) == 0 && strcmp(f, aobj) == 0) return (long)i;
  }
  return -1;
}

static int create_addr(int argc, char **argv) {
  const char *type = NULL, *addr = NULL;
  int i = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-t") == 0) continue;
    if (strcmp(argv[i], "-T") == 0 && i + 1 < argc) type = argv[++i];
    else if (strcmp(argv[i], "-a") == 0 && i + 1 < argc) addr = argv[++i];
    else return usage();
  }
  if (i + 1 != argc || type == NULL) return usage();
  const char *aobj = argv[i];
  int is_static = strcmp(type, "static") == 0;
  if (!is_static && strcmp(type, "addrconf") != 0) {
    if (strcmp(type, "dhcp") == 0) die(1, "Could not create address: Operation not supported");
    die(1, "Invalid address type %s", type);
  }
  if (is_static != (addr != NULL)) return usage();
  char link[32], name[32];
  if (split_addrobj(aobj, link, name) != 0 || name[0] == '\0') die(1, "Could not create address: Invalid argument provided");

  int family = 0, prefix = 0;
  unsigned char bytes[16] = {0};
  char text[INET6_ADDRSTRLEN + 8];
  if (is_static) {
    if (strncmp(addr, "local=", 6) == 0) addr += 6;
    if (parse_cidr(addr, &family, bytes, &prefix) != 0) die(1, "Could not create address: Invalid address");
  }

  struct inzone z;
  inzone_enter(&z);
  struct lines addrs;
  lines_load(&z, "addrs", &addrs);
  if (find_addrobj(&addrs, aobj) >= 0) die(1, "Could not create address: Address object already exists");
  if (!zone_has_link(z.zone, link)) die(1, "Could not create address: Interface does not exist");
  if (!is_static) {
    unsigned char mac[6];
    if (link_mac(link, mac) != 0) die(1, "Could not create address: Datalink does not exist");
    memset(bytes, 0, sizeof(bytes));
    bytes[0] = 0xfe;
    bytes[1] = 0x80;
    bytes[8] = (unsigned char)(mac[0] ^ 0x02);
    bytes[9] = mac[1];
    bytes[10] = mac[2];
    bytes[11] = 0xff;
    bytes[12] = 0xfe;
    bytes[13] = mac[3];
    bytes[14] = mac[4];
    bytes[15] = mac[5];
    family = AF_INET6;
    prefix = 10;
  }
  char ip[INET6_ADDRSTRLEN];
  inet_ntop(family, bytes, ip, sizeof(ip));
  snprintf(text, sizeof(text), "%s/%d", ip, prefix);
  for (size_t k = 0; k < addrs.n; k++) {
    char other[INET6_ADDRSTRLEN + 8];
    int of, op;
    unsigned char ob[16];
    if (field(addrs.v[k], 2, other, sizeof(other)) == 0 && parse_cidr(other, &of, ob, &op) == 0 && of == family &&
        memcmp(ob, bytes, family == AF_INET6 ? 16 : 4) == 0)
      die(1, "Could not create address: Address already in use");
  }
  char line[512];
  snprintf(line, sizeof(line), "%s %s %s", aobj, is_static ? "static" : "addrconf", text);
  lines_add(&addrs, line);
  lines_save(&z, "addrs", &addrs);
  lines_free(&addrs);
  inzone_leave(&z);
  return 0;
}

static int delete_addr(int argc, char **argv) {
  int i = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-r") != 0) return usage();
  }
  if (i + 1 != argc) return usage();
  char link[32], name[32];
  if (split_addrobj(argv[i], link, name) != 0 || name[0] == '\0') die(1, "could not delete address: Invalid argument provided");
  struct inzone z;
  inzone_enter(&z);
  struct lines addrs;
  lines_load(&z, "addrs", &addrs);
  long k = find_addrobj(&addrs, argv[i]);
  if (k < 0) die(1, "could not delete address: Object not found");
  lines_del(&addrs, (size_t)k);
  lines_save(&z, "addrs", &addrs);
  lines_free(&addrs);
  inzone_leave(&z);
  return 0;
}

enum { F_ADDROBJ, F_TYPE, F_STATE, F_ADDR, F_COUNT };
static const char *const FIELD_NAMES[F_COUNT] = {"ADDROBJ", "TYPE", "STATE", "ADDR"};

static int show_addr(int argc, char **argv) {
  int parsable = 0, fields[F_COUNT], nfields = 0;
  int i = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-p") == 0) {
      parsable = 1;
    } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
      char *list = strdup(argv[++i]);
      if (list == NULL) die(1, "out of memory");
      for (char *save = NULL, *f = strtok_r(list, ",", &save); f != NULL; f = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int k = 0; k < F_COUNT; k++) {
          if (strcasecmp(f, FIELD_NAMES[k]) == 0) found = k;
        }
        if (found < 0) die(1, "invalid field(s) specified");
        if (nfields == F_COUNT) die(1, "too many fields");
        fields[nfields++] = found;
      }
      free(list);
    } else {
      return usage();
    }
  }
  if (i < argc - 1) return usage();
  if (parsable && nfields == 0) die(1, "-p requires -o");
  if (nfields == 0) {
    for (int k = 0; k < F_COUNT; k++) fields[nfields++] = k;
  }
  const char *want = i < argc ? argv[i] : NULL;
  int whole_link = want != NULL && want[strlen(want) - 1] == '/';
  if (want != NULL) {
    char link[32], name[32];
    if (split_addrobj(want, link, name) != 0) die(1, "Invalid address object name");
  }

  struct inzone z;
  inzone_enter(&z);
  struct lines addrs;
  lines_load(&z, "addrs", &addrs);
  inzone_leave(&z);
  if (want != NULL && !whole_link && find_addrobj(&addrs, want) < 0) die(1, "Address object not found");
  if (!parsable) printf("%-18s %-9s %-8s %s\n", "ADDROBJ", "TYPE", "STATE", "ADDR");
  for (size_t k = 0; k < addrs.n; k++) {
    char values[F_COUNT][256];
    if (field(addrs.v[k], 0, values[F_ADDROBJ], 256) != 0 || field(addrs.v[k], 1, values[F_TYPE], 256) != 0 ||
        field(addrs.v[k], 2, values[F_ADDR], 256) != 0)
      continue;
    snprintf(values[F_STATE], 256, "ok");
    if (want != NULL && (whole_link ? strncmp(values[F_ADDROBJ], want, strlen(want)) != 0 : strcmp(values[F_ADDROBJ], want) != 0))
      continue;
    for (int f = 0; f < nfields; f++) {
      const char *v = values[fields[f]];
      if (parsable) {
        if (f > 0) putchar(':');
        for (const char *p = v; *p != '\0'; p++) {
          if (nfields > 1 && (*p == ':' || *p == '\\')) putchar('\\');
          putchar(*p);
        }
      } else {
        printf(f + 1 < nfields ? "%-*s " : "%-*s", fields[f] == F_ADDROBJ ? 18 : fields[f] == F_ADDR ? 0 : fields[f] == F_TYPE ? 9 : 8, v);
      }
    }
    putchar('\n');
  }
  lines_free(&addrs);
  return 0;
}

int main(int argc, char **argv) {
  progname = "ipadm";
  if (argc < 2) return usage();
  const char *cmd = argv[1];
  if (strcmp(cmd, "create-addr") == 0) return create_addr(argc - 2, argv + 2);
  if (strcmp(cmd, "delete-addr") == 0) return delete_addr(argc - 2, argv + 2);
  if (strcmp(cmd, "show-addr") == 0) return show_addr(argc - 2, argv + 2);
  warnx_("unknown subcommand '%s'", cmd);
  return usage();
}
