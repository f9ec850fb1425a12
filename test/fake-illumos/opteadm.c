/*
 * Fake opteadm: the subcommands the agent runs (opte's bin/opteadm/src/bin/opteadm.rs at
 * 21df7210, clap), with their arguments, their output formats and the error texts the real
 * program prints, over a fake xde driver whose state lives beside the other fakes'.
 *
 *   list-ports                                  the tabwriter table, ports sorted by opteN
 *   create-xde <name> --guest-mac M --private-ip IP --vpc-subnet CIDR --gateway-mac M
 *              --gateway-ip IP --vpc-vni N --src-underlay-addr IPv6 [--mtu N]
 *              [--snat-ip IP --snat-start N --snat-end N] [--ephemeral-ip IP] [--floating-ip IP]...
 *              [--hostname H] [--host-domain D] [--dns-servers a,b] [--domain-search-list a,b]
 *   delete-xde <name>
 *   set-xde-underlay <u1> <u2>
 *   set-v2p | clear-v2p <vpc_ip> <vpc_mac> <underlay_ip> <vni>     dump-v2p
 *   add-router-entry | del-router-entry -p <port> <dest> <target> <class>
 *   set-fw-rules -p <port>                      the rules on stdin, one per line
 *   set-external-ips -p <port> [--snat-ip .. --snat-start .. --snat-end ..] [--ephemeral-ip IP]
 *                    [--floating-ip IP]...
 *
 * The "driver" is attached when $FAKE_ILLUMOS_STATE/xde.conf exists (the test's stand-in for
 * /kernel/drv/xde.conf); otherwise every subcommand fails as OpteHdl::open() does.
 *
 * The real sequence is kept where it shows: a port is a datalink, so create-xde first has dlmgmtd
 * allocate a link id of class misc under its name (a taken name fails there, "netadm failed
 * dlmgmtd: link id creation failed: 17", before the driver's own PortExists check could), then the
 * driver checks the underlay, the name and the (VNI, guest MAC); delete-xde looks the link up
 * first ("netadm failed not found: link <name> not found"), and the driver refuses with EBUSY
 * while another link (a VNIC) is over the port. The links are the fake libdladm's (this file
 * includes dladm.c, as the real opteadm links libnet), so `vopteN` can be created over `opteN`.
 *
 * State, under $FAKE_ILLUMOS_STATE/opte/, read and written only under fake_lock() (taken through
 * dladm.c's open_state, which also keeps the links' generation token right):
 *   underlay         "<u1> <u2>\n" once set-xde-underlay succeeded
 *   ports/<name>     key=value lines: name, linkid, family (4|6), guest_mac, private_ip,
 *                    vpc_subnet, gateway_mac, gateway_ip, vni, underlay, mtu, state; then the
 *                    external IPs (snat=<ip> <start> <end>, ephemeral=<ip>, floating=<ip>...),
 *                    router entries (route=<dest> <target> <class>, appended as the driver
 *                    appends them, so a duplicate shows) and firewall rules (rule=<line as given>)
 *   v2p              "<vni> <ip> <mac> <underlay>" lines; a port's own entry is added by
 *                    create-xde and removed by delete-xde, as xde does
 * No dataplane: the simulated host models what these rules do to packets.
 */
#include "dladm.c"

#include <arpa/inet.h>
#include <stdarg.h>

#define OPTE_EXIT_ERR 1 /* anyhow's Err from main */
#define OPTE_EXIT_USAGE 2 /* clap */

/* ---- errors ------------------------------------------------------------------------------- */

/* What main's Err prints (anyhow: "Error: <message>"), exit 1. */
static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("Error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return OPTE_EXIT_ERR;
}

/* A clap parse error, exit 2. */
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs("\n\nFor more information, try '--help'.\n", stderr);
  va_end(ap);
  return OPTE_EXIT_USAGE;
}

/* ---- values, parsed as opte-api's FromStr impls parse them --------------------------------- */

/* "a.b.c.d" or an IPv6 address into `out` (canonical text); 4 or 6, or 0 if neither. */
static int parse_ip(const char *s, char out[INET6_ADDRSTRLEN]) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, s, buf) == 1) {
    inet_ntop(AF_INET, buf, out, INET6_ADDRSTRLEN);
    return 4;
  }
  if (inet_pton(AF_INET6, s, buf) == 1) {
    inet_ntop(AF_INET6, buf, out, INET6_ADDRSTRLEN);
    return 6;
  }
  return 0;
}

/* "<ip>/<prefix>" with the host bits cleared (Ipv4Cidr::new masks); 4, 6 or 0. */
static int parse_cidr(const char *s, char out[INET6_ADDRSTRLEN + 4]) {
  const char *slash = strchr(s, '/');
  if (slash == NULL || slash == s || (size_t)(slash - s) >= INET6_ADDRSTRLEN) return 0;
  char ip[INET6_ADDRSTRLEN];
  memcpy(ip, s, (size_t)(slash - s));
  ip[slash - s] = '\0';
  char *end;
  errno = 0;
  long prefix = strtol(slash + 1, &end, 10);
  if (errno != 0 || end == slash + 1 || *end != '\0') return 0;
  unsigned char buf[16];
  int family = 0, bits = 0;
  if (inet_pton(AF_INET, ip, buf) == 1) family = 4, bits = 32;
  else if (inet_pton(AF_INET6, ip, buf) == 1) family = 6, bits = 128;
  else return 0;
  if (prefix < 0 || prefix > bits) return 0;
  for (int i = 0; i < bits / 8; i++) {
    int keep = (int)prefix - i * 8;
    buf[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
  }
  char text[INET6_ADDRSTRLEN];
  inet_ntop(family == 4 ? AF_INET : AF_INET6, buf, text, sizeof(text));
  snprintf(out, INET6_ADDRSTRLEN + 4, "%s/%ld", text, prefix);
  return family;
}

/* MacAddr::from_str: six hex octets (either case), ':'-separated; 0, or -1. */
static int parse_mac(const char *s, unsigned char mac[6]) {
  const char *p = s;
  for (int n = 0; n < 6; n++) {
    if (n > 0 && *p++ != ':') return -1;
    int digits = 0;
    unsigned v = 0;
    while (isxdigit((unsigned char)*p) && digits < 3) {
      v = v * 16 + (unsigned)(isdigit((unsigned char)*p) ? *p - '0' : tolower((unsigned char)*p) - 'a' + 10);
      p++;
      digits++;
    }
    if (digits == 0 || v > 0xff) return -1;
    mac[n] = (unsigned char)v;
  }
  return *p == '\0' ? 0 : -1;
}

static void mac_text(const unsigned char mac[6], char out[18], int upper) {
  snprintf(out, 18, upper ? "%02X:%02X:%02X:%02X:%02X:%02X" : "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
           mac[3], mac[4], mac[5]);
}

/* An unsigned decimal with Rust's u*::from_str rules, at most `max`; 0, or -1 with `why` set to
 * the ParseIntError text. */
static int parse_uint(const char *s, unsigned long max, unsigned long *out, const char **why) {
  if (*s == '+') s++;
  if (*s == '\0') {
    *why = "cannot parse integer from empty string";
    return -1;
  }
  unsigned long v = 0;
  for (const char *p = s; *p != '\0'; p++) {
    if (!isdigit((unsigned char)*p)) {
      *why = "invalid digit found in string";
      return -1;
    }
    if (v > (max - (unsigned long)(*p - '0')) / 10) {
      *why = "number too large to fit in target type";
      return -1;
    }
    v = v * 10 + (unsigned long)(*p - '0');
  }
  *out = v;
  return 0;
}

static void lower(char *s) {
  for (; *s != '\0'; s++) *s = (char)tolower((unsigned char)*s);
}

/* ---- string lists ----------------------------------------------------------------------------- */

typedef struct {
  char **v;
  size_t n;
} strv_t;

static void strv_push(strv_t *l, const char *s) {
  char **bigger = realloc(l->v, (l->n + 1) * sizeof(char *));
  char *copy = strdup(s);
  if (bigger == NULL || copy == NULL) {
    fprintf(stderr, "opteadm: out of memory\n");
    exit(OPTE_EXIT_ERR);
  }
  l->v = bigger;
  l->v[l->n++] = copy;
}

static void strv_remove(strv_t *l, size_t i) {
  free(l->v[i]);
  memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(char *));
  l->n--;
}

static void strv_free(strv_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

/* ---- the driver's state ------------------------------------------------------------------------ */

typedef struct {
  int has_snat;
  char snat_ip[INET6_ADDRSTRLEN];
  unsigned long snat_start, snat_end;
  char ephemeral[INET6_ADDRSTRLEN]; /* "" if none */
  strv_t floating;
} external_t;

typedef struct {
  char name[MAXLINKNAMELEN];
  unsigned long linkid;
  int family;
  char guest_mac[18], gateway_mac[18]; /* lowercase */
  char private_ip[INET6_ADDRSTRLEN], gateway_ip[INET6_ADDRSTRLEN], underlay[INET6_ADDRSTRLEN];
  char vpc_subnet[INET6_ADDRSTRLEN + 4];
  unsigned long vni, mtu;
  char state[16];
  external_t ext;
  strv_t routes, rules;
} port_t;

static void port_free(port_t *p) {
  strv_free(&p->ext.floating);
  strv_free(&p->routes);
  strv_free(&p->rules);
}

static int port_path(char *buf, size_t len, const char *name) { return fake_path(buf, len, "opte/ports", name); }

/* Reads ports/<name>; 0, or -1 if there is no such port (or it does not parse). */
static int port_read(const char *name, port_t *p) {
  memset(p, 0, sizeof(*p));
  char path[4096];
  if (port_path(path, sizeof(path), name) != 0) return -1;
  char *text = fake_read_file(path, NULL);
  if (text == NULL) return -1;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    char *eq = strchr(line, '=');
    if (eq == NULL) continue;
    *eq = '\0';
    const char *k = line, *v = eq + 1;
    if (strcmp(k, "name") == 0) snprintf(p->name, sizeof(p->name), "%s", v);
    else if (strcmp(k, "linkid") == 0) p->linkid = strtoul(v, NULL, 10);
    else if (strcmp(k, "family") == 0) p->family = atoi(v);
    else if (strcmp(k, "guest_mac") == 0) snprintf(p->guest_mac, sizeof(p->guest_mac), "%s", v);
    else if (strcmp(k, "private_ip") == 0) snprintf(p->private_ip, sizeof(p->private_ip), "%s", v);
    else if (strcmp(k, "vpc_subnet") == 0) snprintf(p->vpc_subnet, sizeof(p->vpc_subnet), "%s", v);
    else if (strcmp(k, "gateway_mac") == 0) snprintf(p->gateway_mac, sizeof(p->gateway_mac), "%s", v);
    else if (strcmp(k, "gateway_ip") == 0) snprintf(p->gateway_ip, sizeof(p->gateway_ip), "%s", v);
    else if (strcmp(k, "vni") == 0) p->vni = strtoul(v, NULL, 10);
    else if (strcmp(k, "underlay") == 0) snprintf(p->underlay, sizeof(p->underlay), "%s", v);
    else if (strcmp(k, "mtu") == 0) p->mtu = strtoul(v, NULL, 10);
    else if (strcmp(k, "state") == 0) snprintf(p->state, sizeof(p->state), "%s", v);
    else if (strcmp(k, "snat") == 0) {
      p->ext.has_snat = sscanf(v, "%45s %lu %lu", p->ext.snat_ip, &p->ext.snat_start, &p->ext.snat_end) == 3;
    } else if (strcmp(k, "ephemeral") == 0) snprintf(p->ext.ephemeral, sizeof(p->ext.ephemeral), "%s", v);
    else if (strcmp(k, "floating") == 0) strv_push(&p->ext.floating, v);
    else if (strcmp(k, "route") == 0) strv_push(&p->routes, v);
    else if (strcmp(k, "rule") == 0) strv_push(&p->rules, v);
  }
  free(text);
  if (strcmp(p->name, name) != 0) {
    port_free(p);
    return -1;
  }
  return 0;
}

/* A growing text buffer; exits on out of memory (the fake is a one-shot command). */
typedef struct {
  char *s;
  size_t n, cap;
} buf_t;

static void buf_add(buf_t *b, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int need = vsnprintf(b->s != NULL ? b->s + b->n : NULL, b->s != NULL ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (need < 0) exit(OPTE_EXIT_ERR);
    if (b->s != NULL && b->n + (size_t)need < b->cap) {
      b->n += (size_t)need;
      return;
    }
    size_t cap = (b->cap + (size_t)need + 1) * 2;
    char *bigger = realloc(b->s, cap);
    if (bigger == NULL) {
      fprintf(stderr, "opteadm: out of memory\n");
      exit(OPTE_EXIT_ERR);
    }
    b->s = bigger;
    b->cap = cap;
  }
}

static int port_write(const port_t *p) {
  buf_t b = {0};
  buf_add(&b, "name=%s\nlinkid=%lu\nfamily=%d\nguest_mac=%s\nprivate_ip=%s\nvpc_subnet=%s\n", p->name, p->linkid,
          p->family, p->guest_mac, p->private_ip, p->vpc_subnet);
  buf_add(&b, "gateway_mac=%s\ngateway_ip=%s\nvni=%lu\nunderlay=%s\nmtu=%lu\nstate=%s\n", p->gateway_mac, p->gateway_ip,
          p->vni, p->underlay, p->mtu, p->state);
  if (p->ext.has_snat) buf_add(&b, "snat=%s %lu %lu\n", p->ext.snat_ip, p->ext.snat_start, p->ext.snat_end);
  if (p->ext.ephemeral[0] != '\0') buf_add(&b, "ephemeral=%s\n", p->ext.ephemeral);
  for (size_t i = 0; i < p->ext.floating.n; i++) buf_add(&b, "floating=%s\n", p->ext.floating.v[i]);
  for (size_t i = 0; i < p->routes.n; i++) buf_add(&b, "route=%s\n", p->routes.v[i]);
  for (size_t i = 0; i < p->rules.n; i++) buf_add(&b, "rule=%s\n", p->rules.v[i]);
  char path[4096];
  int rc = -1;
  if (fake_mkdir("opte/ports") == 0 && port_path(path, sizeof(path), p->name) == 0) rc = fake_write_file(path, b.s, b.n);
  free(b.s);
  return rc;
}

static int port_remove(const char *name) {
  char path[4096];
  if (port_path(path, sizeof(path), name) != 0) return -1;
  return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Names under opte/ports, sorted as list-ports sorts them: opteN by N, others by name. */
static long opte_number(const char *name) {
  if (strncmp(name, "opte", 4) != 0 || name[4] == '\0') return -1;
  for (const char *p = name + 4; *p != '\0'; p++)
    if (!isdigit((unsigned char)*p)) return -1;
  return strtol(name + 4, NULL, 10);
}

static int cmp_port_name(const void *a, const void *b) {
  const char *x = *(char *const *)a, *y = *(char *const *)b;
  long nx = opte_number(x), ny = opte_number(y);
  if (nx >= 0 && ny >= 0) return nx < ny ? -1 : nx > ny;
  return strcmp(x, y);
}

static void port_names(strv_t *out) {
  char dirpath[4096];
  if (fake_path(dirpath, sizeof(dirpath), "opte/ports", NULL) != 0) return;
  DIR *d = opendir(dirpath);
  if (d == NULL) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp.") != NULL) continue;
    strv_push(out, e->d_name);
  }
  closedir(d);
  if (out->n > 1) qsort(out->v, out->n, sizeof(char *), cmp_port_name);
}

/* ---- V2P ------------------------------------------------------------------------------------ */

typedef struct {
  unsigned long vni;
  int family;
  char ip[INET6_ADDRSTRLEN], mac[18], underlay[INET6_ADDRSTRLEN];
} v2p_t;

typedef struct {
  v2p_t *v;
  size_t n;
} v2ps_t;

static int v2p_path(char *buf, size_t len) { return fake_path(buf, len, "opte", "v2p"); }

static void v2p_load(v2ps_t *m) {
  m->v = NULL;
  m->n = 0;
  char path[4096];
  if (v2p_path(path, sizeof(path)) != 0) return;
  char *text = fake_read_file(path, NULL);
  if (text == NULL) return;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    v2p_t e;
    memset(&e, 0, sizeof(e));
    if (sscanf(line, "%lu %45s %17s %45s", &e.vni, e.ip, e.mac, e.underlay) != 4) continue;
    e.family = strchr(e.ip, ':') != NULL ? 6 : 4;
    v2p_t *bigger = realloc(m->v, (m->n + 1) * sizeof(v2p_t));
    if (bigger == NULL) break;
    m->v = bigger;
    m->v[m->n++] = e;
  }
  free(text);
}

static int v2p_save(const v2ps_t *m) {
  buf_t b = {0};
  buf_add(&b, "%s", "");
  for (size_t i = 0; i < m->n; i++) buf_add(&b, "%lu %s %s %s\n", m->v[i].vni, m->v[i].ip, m->v[i].mac, m->v[i].underlay);
  char path[4096];
  int rc = -1;
  if (fake_mkdir("opte") == 0 && v2p_path(path, sizeof(path)) == 0) rc = fake_write_file(path, b.s, b.n);
  free(b.s);
  return rc;
}

/* VpcMappings::del: whatever is at (vni, ip) goes, whatever its MAC and underlay address. */
static void v2p_del(v2ps_t *m, unsigned long vni, const char *ip) {
  for (size_t i = 0; i < m->n; i++) {
    if (m->v[i].vni == vni && strcmp(m->v[i].ip, ip) == 0) {
      memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof(v2p_t));
      m->n--;
      return;
    }
  }
}

/* VpcMappings::add: the entry for (vni, ip) is replaced. */
static void v2p_add(v2ps_t *m, unsigned long vni, const char *ip, const char *mac, const char *underlay) {
  v2p_del(m, vni, ip);
  v2p_t *bigger = realloc(m->v, (m->n + 1) * sizeof(v2p_t));
  if (bigger == NULL) {
    fprintf(stderr, "opteadm: out of memory\n");
    exit(OPTE_EXIT_ERR);
  }
  m->v = bigger;
  v2p_t *e = &m->v[m->n++];
  memset(e, 0, sizeof(*e));
  e->vni = vni;
  e->family = strchr(ip, ':') != NULL ? 6 : 4;
  snprintf(e->ip, sizeof(e->ip), "%s", ip);
  snprintf(e->mac, sizeof(e->mac), "%s", mac);
  snprintf(e->underlay, sizeof(e->underlay), "%s", underlay);
}

/* The dump's order: VNI, then address (the driver's BTreeMaps). */
static int cmp_v2p(const void *a, const void *b) {
  const v2p_t *x = a, *y = b;
  if (x->vni != y->vni) return x->vni < y->vni ? -1 : 1;
  unsigned char bx[16] = {0}, by[16] = {0};
  inet_pton(x->family == 6 ? AF_INET6 : AF_INET, x->ip, bx);
  inet_pton(y->family == 6 ? AF_INET6 : AF_INET, y->ip, by);
  return memcmp(bx, by, x->family == 6 ? 16 : 4);
}

/* ---- tabwriter ------------------------------------------------------------------------------ */

/*
 * The tabwriter crate as opteadm configures it (TabWriter::new: minwidth 2, padding 2, left
 * aligned) for a block of rows with the same number of cells: every cell but the last is padded
 * to its column's width (the widest cell, at least 2) plus 2 spaces; the last is written as is.
 */
#define TW_MAX_COLS 9
typedef struct {
  const char *cell[TW_MAX_COLS];
} tw_row_t;

static void tw_print(const tw_row_t *rows, size_t nrows, int ncols) {
  size_t width[TW_MAX_COLS] = {0};
  for (int c = 0; c < ncols - 1; c++) {
    width[c] = 2;
    for (size_t r = 0; r < nrows; r++) {
      size_t len = strlen(rows[r].cell[c]);
      if (len > width[c]) width[c] = len;
    }
  }
  for (size_t r = 0; r < nrows; r++) {
    for (int c = 0; c < ncols - 1; c++) printf("%-*s", (int)(width[c] + 2), rows[r].cell[c]);
    printf("%s\n", rows[r].cell[ncols - 1]);
  }
}

/* ---- options -------------------------------------------------------------------------------- */

typedef struct {
  const char *name; /* "--guest-mac", "-p" */
  int repeat;       /* may be given more than once (a Vec) */
  strv_t values;
} opt_t;

/* Splits argv (after the subcommand) into the options in `opts` and positionals; a clap error
 * (exit 2) for anything else. Returns -1 on success, else the exit status. */
static int parse_opts(int argc, char **argv, opt_t *opts, size_t nopts, strv_t *pos) {
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] == '-' && a[1] != '\0' && !(isdigit((unsigned char)a[1]))) {
      opt_t *o = NULL;
      for (size_t k = 0; k < nopts; k++)
        if (strcmp(opts[k].name, a) == 0) o = &opts[k];
      if (o == NULL) return usage_error("unexpected argument '%s' found", a);
      if (i + 1 >= argc) return usage_error("a value is required for '%s' but none was supplied", a);
      if (o->values.n > 0 && !o->repeat) return usage_error("the argument '%s' cannot be used multiple times", a);
      strv_push(&o->values, argv[++i]);
    } else {
      strv_push(pos, a);
    }
  }
  return -1;
}

static const char *opt1(opt_t *opts, size_t nopts, const char *name) {
  for (size_t k = 0; k < nopts; k++)
    if (strcmp(opts[k].name, name) == 0) return opts[k].values.n > 0 ? opts[k].values.v[0] : NULL;
  return NULL;
}

static strv_t *optv(opt_t *opts, size_t nopts, const char *name) {
  for (size_t k = 0; k < nopts; k++)
    if (strcmp(opts[k].name, name) == 0) return &opts[k].values;
  return NULL;
}

static void opts_free(opt_t *opts, size_t nopts, strv_t *pos) {
  for (size_t k = 0; k < nopts; k++) strv_free(&opts[k].values);
  strv_free(pos);
}

/* ---- the driver handle ------------------------------------------------------------------------ */

static int driver_attached(void) {
  char path[4096];
  return fake_path(path, sizeof(path), "xde.conf", NULL) == 0 && access(path, F_OK) == 0;
}

/* The external-network flags shared by create-xde and set-external-ips, checked as clap's
 * SnatConfig group and ExternalIpCfg's TryFrom (for the family in `family`) check them. -1 if
 * fine, else an exit status; `why` gets a bail!'s text when the family does not fit. */
static int parse_external(opt_t *opts, size_t nopts, int family, external_t *ext, const char **why) {
  memset(ext, 0, sizeof(*ext));
  *why = NULL;
  const char *snat_ip = opt1(opts, nopts, "--snat-ip");
  const char *snat_start = opt1(opts, nopts, "--snat-start");
  const char *snat_end = opt1(opts, nopts, "--snat-end");
  int nsnat = (snat_ip != NULL) + (snat_start != NULL) + (snat_end != NULL);
  if (nsnat != 0 && nsnat != 3) {
    return usage_error("the following required arguments were not provided:\n  %s",
                       snat_ip == NULL ? "--snat-ip <SNAT_IP>" : snat_start == NULL ? "--snat-start <SNAT_START>" : "--snat-end <SNAT_END>");
  }
  char ip[INET6_ADDRSTRLEN];
  const char *perr;
  if (nsnat == 3) {
    int f = parse_ip(snat_ip, ip);
    if (f == 0) return usage_error("invalid value '%s' for '--snat-ip <SNAT_IP>': Invalid IP address", snat_ip);
    if (parse_uint(snat_start, 65535, &ext->snat_start, &perr) != 0)
      return usage_error("invalid value '%s' for '--snat-start <SNAT_START>': %s", snat_start, perr);
    if (parse_uint(snat_end, 65535, &ext->snat_end, &perr) != 0)
      return usage_error("invalid value '%s' for '--snat-end <SNAT_END>': %s", snat_end, perr);
    if (f != family && *why == NULL) *why = family == 4 ? "expected IPv4 SNAT IP" : "expected IPv6 SNAT IP";
    ext->has_snat = 1;
    snprintf(ext->snat_ip, sizeof(ext->snat_ip), "%s", ip);
  }
  const char *eph = opt1(opts, nopts, "--ephemeral-ip");
  if (eph != NULL) {
    int f = parse_ip(eph, ip);
    if (f == 0) return usage_error("invalid value '%s' for '--ephemeral-ip <EPHEMERAL_IP>': Invalid IP address", eph);
    if (f != family && *why == NULL) *why = family == 4 ? "expected IPv4 external IP" : "expected IPv6 external IP";
    snprintf(ext->ephemeral, sizeof(ext->ephemeral), "%s", ip);
  }
  strv_t *fl = optv(opts, nopts, "--floating-ip");
  for (size_t i = 0; fl != NULL && i < fl->n; i++) {
    int f = parse_ip(fl->v[i], ip);
    if (f == 0) return usage_error("invalid value '%s' for '--floating-ip <FLOATING_IP>': Invalid IP address", fl->v[i]);
    if (f != family && *why == NULL) *why = family == 4 ? "expected IPv4 floating IP" : "expected IPv6 floating IP";
    strv_push(&ext->floating, ip);
  }
  return -1;
}

/* ---- subcommands ------------------------------------------------------------------------------ */

static int list_ports(void) {
  links_t ls;
  int fd = open_state(&ls);
  if (fd < 0) return fail("error interacting with device: %s", strerror(errno));
  strv_t names = {0};
  port_names(&names);
  size_t cap = names.n + 1, nrows = 1;
  tw_row_t *rows = calloc(cap, sizeof(tw_row_t));
  port_t *ports = calloc(names.n > 0 ? names.n : 1, sizeof(port_t));
  if (rows == NULL || ports == NULL) exit(OPTE_EXIT_ERR);
  rows[0] = (tw_row_t){{"LINK", "MAC ADDRESS", "IPv4 ADDRESS", "EPHEMERAL IPv4", "FLOATING IPv4", "IPv6 ADDRESS",
                        "EXTERNAL IPv6", "FLOATING IPv6", "STATE"}};
  char (*macs)[18] = calloc(names.n > 0 ? names.n : 1, 18);
  if (macs == NULL) exit(OPTE_EXIT_ERR);
  size_t nports = 0;
  for (size_t i = 0; i < names.n; i++) {
    port_t *p = &ports[nports];
    if (port_read(names.v[i], p) != 0) continue;
    nports++;
    unsigned char mac[6];
    if (parse_mac(p->guest_mac, mac) == 0) mac_text(mac, macs[i], 1);
    int v4 = p->family == 4;
    const char *none = "None";
    const char *first_fip = p->ext.floating.n > 0 ? p->ext.floating.v[0] : none;
    /* PortInfo: a v4 port has Some(floating v4 list) and None for every v6 field, and vice versa. */
    size_t rows_for_port = p->ext.floating.n > 1 ? p->ext.floating.n : 1;
    if (nrows + rows_for_port + 1 > cap) {
      tw_row_t *bigger = realloc(rows, (nrows + rows_for_port + 1) * 2 * sizeof(tw_row_t));
      if (bigger == NULL) exit(OPTE_EXIT_ERR);
      rows = bigger;
      cap = (nrows + rows_for_port + 1) * 2;
    }
    rows[nrows++] = (tw_row_t){{p->name, macs[i], v4 ? p->private_ip : none, v4 && p->ext.ephemeral[0] ? p->ext.ephemeral : none,
                                v4 ? first_fip : none, v4 ? none : p->private_ip, !v4 && p->ext.ephemeral[0] ? p->ext.ephemeral : none,
                                v4 ? none : first_fip, p->state}};
    for (size_t k = 1; k < rows_for_port; k++) {
      const char *f = p->ext.floating.v[k];
      rows[nrows++] = (tw_row_t){{"", "", "", "", v4 ? f : "", "", "", v4 ? "" : f, ""}};
    }
    if (rows_for_port > 1) rows[nrows++] = (tw_row_t){{"", "", "", "", "", "", "", "", ""}};
  }
  tw_print(rows, nrows, 9);
  for (size_t i = 0; i < nports; i++) port_free(&ports[i]);
  free(ports);
  free(macs);
  free(rows);
  strv_free(&names);
  close_state(fd, &ls);
  return 0;
}

static int create_xde(int argc, char **argv) {
  opt_t opts[] = {{"--guest-mac", 0, {0}},   {"--private-ip", 0, {0}},   {"--vpc-subnet", 0, {0}},
                  {"--gateway-mac", 0, {0}}, {"--gateway-ip", 0, {0}},   {"--vpc-vni", 0, {0}},
                  {"--src-underlay-addr", 0, {0}}, {"--mtu", 0, {0}},    {"--snat-ip", 0, {0}},
                  {"--snat-start", 0, {0}},  {"--snat-end", 0, {0}},     {"--ephemeral-ip", 0, {0}},
                  {"--floating-ip", 1, {0}}, {"--hostname", 0, {0}},     {"--host-domain", 0, {0}},
                  {"--dns-servers", 1, {0}}, {"--domain-search-list", 1, {0}}};
  const size_t nopts = sizeof(opts) / sizeof(opts[0]);
  strv_t pos = {0};
  port_t p;
  memset(&p, 0, sizeof(p));
  int rc = parse_opts(argc, argv, opts, nopts, &pos);
  if (rc >= 0) goto out;
  static const char *required[] = {"--guest-mac", "--private-ip", "--vpc-subnet", "--gateway-mac",
                                   "--gateway-ip", "--vpc-vni", "--src-underlay-addr"};
  if (pos.n == 0) {
    rc = usage_error("the following required arguments were not provided:\n  <NAME>");
    goto out;
  }
  if (pos.n > 1) {
    rc = usage_error("unexpected argument '%s' found", pos.v[1]);
    goto out;
  }
  for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
    if (opt1(opts, nopts, required[i]) == NULL) {
      rc = usage_error("the following required arguments were not provided:\n  %s", required[i]);
      goto out;
    }
  }
  const char *name = pos.v[0];
  unsigned char mac[6], gwmac[6];
  const char *v, *perr;
  if (parse_mac(v = opt1(opts, nopts, "--guest-mac"), mac) != 0 || parse_mac(v = opt1(opts, nopts, "--gateway-mac"), gwmac) != 0) {
    rc = usage_error("invalid value '%s' for a MAC address", v);
    goto out;
  }
  char gwip[INET6_ADDRSTRLEN], subnet[INET6_ADDRSTRLEN + 4], underlay[INET6_ADDRSTRLEN];
  p.family = parse_ip(v = opt1(opts, nopts, "--private-ip"), p.private_ip);
  if (p.family == 0) {
    rc = usage_error("invalid value '%s' for '--private-ip <PRIVATE_IP>': Invalid IP address", v);
    goto out;
  }
  int subnet_family = parse_cidr(v = opt1(opts, nopts, "--vpc-subnet"), subnet);
  if (subnet_family == 0) {
    rc = usage_error("invalid value '%s' for '--vpc-subnet <VPC_SUBNET>': Invalid IP CIDR", v);
    goto out;
  }
  int gw_family = parse_ip(v = opt1(opts, nopts, "--gateway-ip"), gwip);
  if (gw_family == 0) {
    rc = usage_error("invalid value '%s' for '--gateway-ip <GATEWAY_IP>': Invalid IP address", v);
    goto out;
  }
  if (parse_uint(v = opt1(opts, nopts, "--vpc-vni"), 0xFFFFFFFFul, &p.vni, &perr) != 0 || p.vni > 0xFFFFFF) {
    rc = usage_error("invalid value '%s' for '--vpc-vni <VPC_VNI>': %s", v,
                     p.vni > 0xFFFFFF ? "supplied VNI was larger than u24::MAX (0xff_ff_ff)" : "VNI string could not be parsed as a valid u32");
    goto out;
  }
  if (parse_ip(v = opt1(opts, nopts, "--src-underlay-addr"), underlay) != 6) {
    rc = usage_error("invalid value '%s' for '--src-underlay-addr <SRC_UNDERLAY_ADDR>': Invalid IPv6 address", v);
    goto out;
  }
  p.mtu = 1500; /* ETHERNET_MTU, the driver's default */
  if ((v = opt1(opts, nopts, "--mtu")) != NULL && parse_uint(v, 0xFFFFFFFFul, &p.mtu, &perr) != 0) {
    rc = usage_error("invalid value '%s' for '--mtu <MTU>': %s", v, perr);
    goto out;
  }
  const char *why = NULL;
  rc = parse_external(opts, nopts, p.family, &p.ext, &why);
  if (rc >= 0) goto out;
  /* OpteHdl::open(), after clap and before the match arm */
  if (!driver_attached()) {
    rc = fail("OPTE driver is not attached");
    goto out;
  }
  if (subnet_family != p.family) {
    rc = fail(p.family == 4 ? "expected IPv4 VPC subnet" : "expected IPv6 VPC subnet");
    goto out;
  }
  if (gw_family != p.family) {
    rc = fail(p.family == 4 ? "expected IPv4 gateway IP" : "expected IPv6 gateway IP");
    goto out;
  }
  if (why != NULL) {
    rc = fail("%s", why);
    goto out;
  }
  /* libnet's create_link_id: the name checks, then dlmgmtd */
  if (strlen(name) >= MAXLINKNAMELEN) {
    rc = fail("netadm failed bad argument: link name must be less than %d characters", MAXLINKNAMELEN);
    goto out;
  }
  links_t ls;
  int fd = open_state(&ls);
  if (fd < 0) {
    rc = fail("error interacting with device: %s", strerror(errno));
    goto out;
  }
  if (!dladm_valid_linkname(name) || by_name(&ls, name) != NULL) {
    rc = fail("netadm failed dlmgmtd: link id creation failed: %d", !dladm_valid_linkname(name) ? EINVAL : EEXIST);
    close_state(fd, &ls);
    goto out;
  }
  /* the CreateXde ioctl (a failure there deletes the link id again: it was never written here) */
  char path[4096];
  if (fake_path(path, sizeof(path), "opte", "underlay") != 0 || access(path, F_OK) != 0) {
    rc = fail("command CreateXde failed: System { errno: %d, msg: \"underlay not initialized\" }", EINVAL);
    close_state(fd, &ls);
    goto out;
  }
  char macl[18];
  mac_text(mac, macl, 0);
  strv_t names = {0};
  port_names(&names);
  for (size_t i = 0; i < names.n && rc < 0; i++) {
    port_t q;
    if (port_read(names.v[i], &q) != 0) continue;
    if (strcmp(q.name, name) == 0) {
      rc = fail("command CreateXde failed: PortExists(\"%s\")", name);
    } else if (q.vni == p.vni && strcmp(q.guest_mac, macl) == 0) {
      char macu[18];
      mac_text(mac, macu, 1);
      rc = fail("command CreateXde failed: MacExists { port: \"%s\", vni: Vni { inner: %lu }, mac: MacAddr { inner: %s } }", name,
                p.vni, macu);
    }
    port_free(&q);
  }
  strv_free(&names);
  if (rc < 0 && p.ext.has_snat && p.ext.snat_start > p.ext.snat_end) rc = fail("command CreateXde failed: InvalidIpCfg");
  if (rc >= 0) {
    close_state(fd, &ls);
    goto out;
  }
  link_t l;
  memset(&l, 0, sizeof(l));
  if ((l.id = alloc_id()) == 0) {
    rc = fail("netadm failed dlmgmtd: link id creation failed: %d", EIO);
    close_state(fd, &ls);
    goto out;
  }
  copy_name(l.name, name);
  l.cls = DATALINK_CLASS_MISC;
  l.flags = DLMGMT_ACTIVE;
  l.mactype = VNIC_MAC_ADDR_TYPE_FIXED;
  memcpy(l.mac, mac, sizeof(mac));
  l.mtu = (uint32_t)p.mtu;
  snprintf(p.name, sizeof(p.name), "%s", name);
  p.linkid = l.id;
  snprintf(p.guest_mac, sizeof(p.guest_mac), "%s", macl);
  mac_text(gwmac, p.gateway_mac, 0);
  snprintf(p.gateway_ip, sizeof(p.gateway_ip), "%s", gwip);
  snprintf(p.vpc_subnet, sizeof(p.vpc_subnet), "%s", subnet);
  snprintf(p.underlay, sizeof(p.underlay), "%s", underlay);
  snprintf(p.state, sizeof(p.state), "running");
  v2ps_t m;
  v2p_load(&m);
  v2p_add(&m, p.vni, p.private_ip, p.guest_mac, p.underlay);
  if (write_link(&l, 1) != 0 || port_write(&p) != 0 || v2p_save(&m) != 0) rc = fail("error interacting with device: %s", strerror(errno));
  else rc = 0;
  free(m.v);
  close_state(fd, &ls);
out:
  port_free(&p);
  opts_free(opts, nopts, &pos);
  return rc;
}

static int delete_xde(int argc, char **argv) {
  strv_t pos = {0};
  int rc = parse_opts(argc, argv, NULL, 0, &pos);
  if (rc < 0 && pos.n != 1) rc = pos.n == 0 ? usage_error("the following required arguments were not provided:\n  <NAME>")
                                            : usage_error("unexpected argument '%s' found", pos.v[1]);
  if (rc < 0 && !driver_attached()) rc = fail("OPTE driver is not attached");
  if (rc >= 0) {
    strv_free(&pos);
    return rc;
  }
  const char *name = pos.v[0];
  links_t ls;
  int fd = open_state(&ls);
  if (fd < 0) {
    strv_free(&pos);
    return fail("error interacting with device: %s", strerror(errno));
  }
  link_t *l = by_name(&ls, name);
  port_t p;
  if (l == NULL) {
    rc = fail("netadm failed not found: link %s not found", name);
  } else if (port_read(name, &p) != 0) {
    rc = fail("command DeleteXde failed: PortNotFound(\"%s\")", name);
  } else {
    int busy = 0;
    for (size_t i = 0; i < ls.n; i++)
      if (ls.v[i].over == l->id && ls.v[i].id != l->id) busy = 1;
    if (busy) {
      /* dls_devnet_destroy: EBUSY; the driver puts the port back */
      rc = fail("command DeleteXde failed: System { errno: %d, msg: \"failed to destroy DLS devnet: %d\" }", EBUSY, EBUSY);
    } else {
      v2ps_t m;
      v2p_load(&m);
      v2p_del(&m, p.vni, p.private_ip);
      if (port_remove(name) != 0 || v2p_save(&m) != 0 || remove_link(l->id) != 0)
        rc = fail("error interacting with device: %s", strerror(errno));
      else rc = 0;
      free(m.v);
    }
    port_free(&p);
  }
  close_state(fd, &ls);
  strv_free(&pos);
  return rc;
}

static int set_xde_underlay(int argc, char **argv) {
  strv_t pos = {0};
  int rc = parse_opts(argc, argv, NULL, 0, &pos);
  if (rc < 0 && pos.n != 2) rc = pos.n < 2 ? usage_error("the following required arguments were not provided:\n  <U%zu>", pos.n + 1)
                                           : usage_error("unexpected argument '%s' found", pos.v[2]);
  if (rc < 0 && !driver_attached()) rc = fail("OPTE driver is not attached");
  if (rc >= 0) {
    strv_free(&pos);
    return rc;
  }
  links_t ls;
  int fd = open_state(&ls);
  if (fd < 0) {
    strv_free(&pos);
    return fail("error interacting with device: %s", strerror(errno));
  }
  char path[4096];
  for (size_t i = 0; i < 2 && rc < 0; i++) {
    if (by_name(&ls, pos.v[i]) == NULL) {
      rc = fail("command SetXdeUnderlay failed: System { errno: %d, msg: \"failed to get linkid for %s: link not found\" }", EFAULT,
                pos.v[i]);
    }
  }
  if (rc < 0) {
    if (fake_path(path, sizeof(path), "opte", "underlay") != 0) {
      rc = fail("error interacting with device: %s", strerror(errno));
    } else if (access(path, F_OK) == 0) {
      rc = fail("command SetXdeUnderlay failed: System { errno: %d, msg: \"underlay already initialized\" }", EEXIST);
    } else {
      char text[2 * MAXLINKNAMELEN + 4];
      int n = snprintf(text, sizeof(text), "%s %s\n", pos.v[0], pos.v[1]);
      rc = fake_mkdir("opte") == 0 && fake_write_file(path, text, (size_t)n) == 0 ? 0 : fail("error interacting with device: %s", strerror(errno));
    }
  }
  close_state(fd, &ls);
  strv_free(&pos);
  return rc;
}

/* set-v2p / clear-v2p <vpc_ip> <vpc_mac> <underlay_ip> <vni> */
static int v2p_cmd(int argc, char **argv, int set) {
  strv_t pos = {0};
  int rc = parse_opts(argc, argv, NULL, 0, &pos);
  static const char *names[] = {"<VPC_IP>", "<VPC_MAC>", "<UNDERLAY_IP>", "<VNI>"};
  if (rc < 0 && pos.n != 4) rc = pos.n < 4 ? usage_error("the following required arguments were not provided:\n  %s", names[pos.n])
                                           : usage_error("unexpected argument '%s' found", pos.v[4]);
  char ip[INET6_ADDRSTRLEN], underlay[INET6_ADDRSTRLEN], macl[18];
  unsigned char mac[6];
  unsigned long vni = 0;
  const char *perr;
  if (rc < 0 && parse_ip(pos.v[0], ip) == 0) rc = usage_error("invalid value '%s' for '<VPC_IP>': Invalid IP address", pos.v[0]);
  if (rc < 0 && parse_mac(pos.v[1], mac) != 0) rc = usage_error("invalid value '%s' for '<VPC_MAC>': bad octet", pos.v[1]);
  if (rc < 0 && parse_ip(pos.v[2], underlay) != 6) rc = usage_error("invalid value '%s' for '<UNDERLAY_IP>': Invalid IPv6 address", pos.v[2]);
  if (rc < 0 && (parse_uint(pos.v[3], 0xFFFFFFFFul, &vni, &perr) != 0 || vni > 0xFFFFFF)) {
    rc = usage_error("invalid value '%s' for '<VNI>': %s", pos.v[3],
                     vni > 0xFFFFFF ? "supplied VNI was larger than u24::MAX (0xff_ff_ff)" : "VNI string could not be parsed as a valid u32");
  }
  if (rc < 0 && !driver_attached()) rc = fail("OPTE driver is not attached");
  if (rc >= 0) {
    strv_free(&pos);
    return rc;
  }
  mac_text(mac, macl, 0);
  links_t ls;
  int fd = open_state(&ls);
  if (fd < 0) {
    strv_free(&pos);
    return fail("error interacting with device: %s", strerror(errno));
  }
  v2ps_t m;
  v2p_load(&m);
  if (set) v2p_add(&m, vni, ip, macl, underlay);
  else v2p_del(&m, vni, ip); /* the driver answers Ok whether or not there was one */
  rc = v2p_save(&m) == 0 ? 0 : fail("error interacting with device: %s", strerror(errno));
  free(m.v);
  close_state(fd, &ls);
  strv_free(&pos);
  return rc;
}

static int dump_v2p(void) {
  if (!driver_attached()) return fail("OPTE driver is not attached");
  links_t ls;
  int fd = open_state(&ls);
  if (fd < 0) return fail("error interacting with device: %s", strerror(errno));
  v2ps_t m;
  v2p_load(&m);
  close_state(fd, &ls);
  if (m.n > 1) qsort(m.v, m.n, sizeof(v2p_t), cmp_v2p);
  char hrb[71], hr[71];
  memset(hrb, '=', 70);
  memset(hr, '-', 70);
  hrb[70] = hr[70] = '\0';
  printf("Virtual to Physical Mappings\n%s\n", hrb);
  tw_row_t *rows = calloc(m.n + 1, sizeof(tw_row_t));
  char (*macs)[18] = calloc(m.n + 1, 18);
  if (rows == NULL || macs == NULL) exit(OPTE_EXIT_ERR);
  for (size_t i = 0; i < m.n;) {
    unsigned long vni = m.v[i].vni;
    size_t end = i;
    while (end < m.n && m.v[end].vni == vni) end++;
    printf("\nVPC %lu\n%s\n", vni, hr);
    for (int family = 4; family <= 6; family += 2) {
      printf("\nIPv%d mappings\n%s\n", family, hr);
      size_t n = 0;
      rows[n++] = (tw_row_t){{"VPC_IP", "VPC MAC ADDR", "UNDERLAY IP"}};
      for (size_t k = i; k < end; k++) {
        if (m.v[k].family != family) continue;
        unsigned char mac[6];
        if (parse_mac(m.v[k].mac, mac) == 0) mac_text(mac, macs[k], 1);
        rows[n++] = (tw_row_t){{m.v[k].ip, macs[k], m.v[k].underlay}};
      }
      tw_print(rows, n, 3);
    }
    i = end;
  }
  free(macs);
  free(rows);
  free(m.v);
  return 0;
}

/* RouterTarget::from_str; the canonical text into `out`, or -1 with `why`. */
static int parse_target(const char *s, char *out, size_t len, char *why, size_t whylen) {
  char lowered[128];
  snprintf(lowered, sizeof(lowered), "%s", s);
  lower(lowered);
  if (strcmp(lowered, "drop") == 0 || strcmp(lowered, "ig") == 0) {
    snprintf(out, len, "%s", lowered);
    return 0;
  }
  char *eq = strchr(lowered, '=');
  char val[INET6_ADDRSTRLEN + 4];
  if (eq != NULL) {
    *eq = '\0';
    const char *k = lowered, *v = eq + 1;
    if ((strcmp(k, "ip4") == 0 || strcmp(k, "ip6") == 0) && parse_ip(v, val) == (k[2] == '4' ? 4 : 6)) {
      snprintf(out, len, "%.4s=%s", k, val);
      return 0;
    }
    if ((strcmp(k, "sub4") == 0 || strcmp(k, "sub6") == 0) && parse_cidr(v, val) == (k[3] == '4' ? 4 : 6)) {
      snprintf(out, len, "%.4s=%s", k, val);
      return 0;
    }
    if (strcmp(k, "ig") == 0 && strlen(v) == 36) {
      snprintf(out, len, "ig=%s", v);
      return 0;
    }
    *eq = '=';
  }
  snprintf(why, whylen, "malformed router target: %s", lowered);
  return -1;
}

/* add-router-entry / del-router-entry -p <port> <dest> <target> <class> */
static int router_cmd(int argc, char **argv, int add) {
  opt_t opts[] = {{"-p", 0, {0}}};
  strv_t pos = {0};
  int rc = parse_opts(argc, argv, opts, 1, &pos);
  const char *port = opt1(opts, 1, "-p");
  static const char *names[] = {"<DEST>", "<TARGET>", "<CLASS>"};
  if (rc < 0 && port == NULL) rc = usage_error("the following required arguments were not provided:\n  -p <PORT>");
  if (rc < 0 && pos.n != 3) rc = pos.n < 3 ? usage_error("the following required arguments were not provided:\n  %s", names[pos.n])
                                           : usage_error("unexpected argument '%s' found", pos.v[3]);
  char dest[INET6_ADDRSTRLEN + 4], target[128], why[256], cls[16];
  if (rc < 0 && parse_cidr(pos.v[0], dest) == 0) rc = usage_error("invalid value '%s' for '<DEST>': Invalid IP CIDR", pos.v[0]);
  if (rc < 0 && parse_target(pos.v[1], target, sizeof(target), why, sizeof(why)) != 0)
    rc = usage_error("invalid value '%s' for '<TARGET>': %s", pos.v[1], why);
  if (rc < 0) {
    snprintf(cls, sizeof(cls), "%s", pos.v[2]);
    lower(cls);
    if (strcmp(cls, "system") != 0 && strcmp(cls, "custom") != 0)
      rc = usage_error("invalid value '%s' for '<CLASS>': unexpected router class %s -- expected 'system' or 'custom'", pos.v[2], cls);
  }
  if (rc < 0 && !driver_attached()) rc = fail("OPTE driver is not attached");
  if (rc >= 0) {
    opts_free(opts, 1, &pos);
    return rc;
  }
  char entry[256];
  snprintf(entry, sizeof(entry), "%s %s %s", dest, target, cls);
  links_t ls;
  int fd = open_state(&ls);
  if (fd < 0) {
    opts_free(opts, 1, &pos);
    return fail("error interacting with device: %s", strerror(errno));
  }
  port_t p;
  if (port_read(port, &p) != 0) {
    rc = fail("command %s failed: PortNotFound(\"%s\")", add ? "AddRouterEntry" : "DelRouterEntry", port);
  } else {
    if (add) {
      strv_push(&p.routes, entry); /* appended: the same entry twice is two rules */
      rc = port_write(&p) == 0 ? 0 : fail("error interacting with device: %s", strerror(errno));
    } else {
      size_t i = 0;
      while (i < p.routes.n && strcmp(p.routes.v[i], entry) != 0) i++;
      if (i == p.routes.n) {
        rc = fail("could not delete entry -- no matching rule found");
      } else {
        strv_remove(&p.routes, i);
        rc = port_write(&p) == 0 ? 0 : fail("error interacting with device: %s", strerror(errno));
      }
    }
    port_free(&p);
  }
  close_state(fd, &ls);
  opts_free(opts, 1, &pos);
  return rc;
}

/* FirewallRule::from_str: 0, or -1 with its error text in `why`. */
static int check_rule(const char *line, char *why, size_t whylen) {
  char buf[1024];
  if (strlen(line) >= sizeof(buf)) {
    snprintf(why, whylen, "bad token: %.64s", line);
    return -1;
  }
  snprintf(buf, sizeof(buf), "%s", line);
  lower(buf);
  int have_action = 0, have_dir = 0, have_priority = 0;
  char *p = buf;
  for (;;) {
    char *sp = strchr(p, ' ');
    if (sp != NULL) *sp = '\0';
    char *tok = p;
    char *eq = strchr(tok, '=');
    if (eq == NULL) {
      snprintf(why, whylen, "bad token: %s", tok);
      return -1;
    }
    *eq = '\0';
    const char *k = tok, *v = eq + 1;
    unsigned long n;
    const char *perr;
    char tmp[INET6_ADDRSTRLEN + 4];
    if (strcmp(k, "dir") == 0) {
      if (strcmp(v, "in") != 0 && strcmp(v, "out") != 0) {
        snprintf(why, whylen, "invalid direction: %s", v);
        return -1;
      }
      have_dir = 1;
    } else if (strcmp(k, "action") == 0) {
      if (strcmp(v, "allow") != 0 && strcmp(v, "deny") != 0) {
        snprintf(why, whylen, "invalid action: %s ('allow' or 'deny')", v);
        return -1;
      }
      have_action = 1;
    } else if (strcmp(k, "priority") == 0) {
      if (parse_uint(v, 65535, &n, &perr) != 0) {
        snprintf(why, whylen, "bad priority: '%s' %s", v, perr);
        return -1;
      }
      have_priority = 1;
    } else if (strcmp(k, "hosts") == 0) {
      if (strcmp(v, "any") != 0) {
        const char *e2 = strchr(v, '=');
        if (e2 == NULL) {
          snprintf(why, whylen, "malformed address specification: %s", v);
          return -1;
        }
        size_t kl = (size_t)(e2 - v);
        const char *val = e2 + 1;
        if (kl == 2 && strncmp(v, "ip", 2) == 0) {
          if (parse_ip(val, tmp) == 0) {
            snprintf(why, whylen, "Invalid IP address");
            return -1;
          }
        } else if (kl == 6 && strncmp(v, "subnet", 6) == 0) {
          if (parse_cidr(val, tmp) == 0) {
            snprintf(why, whylen, "Invalid IP CIDR");
            return -1;
          }
        } else if (kl == 3 && strncmp(v, "vni", 3) == 0) {
          if (parse_uint(val, 0xFFFFFFFFul, &n, &perr) != 0 || n > 0xFFFFFF) {
            snprintf(why, whylen, "%s", parse_uint(val, 0xFFFFFFFFul, &n, &perr) != 0 ? "Unparsable" : "TooLarge");
            return -1;
          }
        } else {
          snprintf(why, whylen, "invalid address type: %.*s", (int)kl, v);
          return -1;
        }
      }
    } else if (strcmp(k, "protocol") == 0) {
      const char *colon = strchr(v, ':');
      size_t tl = colon != NULL ? (size_t)(colon - v) : strlen(v);
      int known = (tl == 3 && (strncmp(v, "any", 3) == 0 || strncmp(v, "arp", 3) == 0 || strncmp(v, "tcp", 3) == 0 ||
                               strncmp(v, "udp", 3) == 0)) ||
                  (tl == 4 && strncmp(v, "icmp", 4) == 0) || (tl == 5 && strncmp(v, "icmp6", 5) == 0);
      int filterable = strncmp(v, "icmp", 4) == 0 && (tl == 4 || tl == 5);
      if (!known || (colon != NULL && !filterable)) {
        snprintf(why, whylen, "%s: %.*s", known ? "cannot specify filter for protocol" : "unknown protocol", (int)tl, v);
        return -1;
      }
    } else if (strcmp(k, "port") == 0) {
      if (strcmp(v, "any") != 0 && strcmp(v, "any,") != 0) {
        char list[256];
        snprintf(list, sizeof(list), "%s", v);
        const char *q = list;
        /* split(',') keeps empty pieces, which do not parse */
        for (;;) {
          char *comma = strchr(q, ',');
          if (comma != NULL) *comma = '\0';
          if (parse_uint(q, 65535, &n, &perr) != 0) {
            snprintf(why, whylen, "%s", perr);
            return -1;
          }
          if (n == 0) {
            snprintf(why, whylen, "invalid port: 0");
            return -1;
          }
          if (comma == NULL) break;
          q = comma + 1;
        }
      }
    } else {
      *eq = '=';
      snprintf(why, whylen, "invalid key: %s", tok);
      return -1;
    }
    if (sp == NULL) break;
    p = sp + 1;
  }
  if (!have_action) snprintf(why, whylen, "missing 'action' key");
  else if (!have_dir) snprintf(why, whylen, "missing direction ('dir') key");
  else if (!have_priority) snprintf(why, whylen, "missing 'priority' key");
  else return 0;
  return -1;
}

static int set_fw_rules(int argc, char **argv) {
  opt_t opts[] = {{"-p", 0, {0}}};
  strv_t pos = {0};
  int rc = parse_opts(argc, argv, opts, 1, &pos);
  const char *port = opt1(opts, 1, "-p");
  if (rc < 0 && port == NULL) rc = usage_error("the following required arguments were not provided:\n  -p <PORT>");
  if (rc < 0 && pos.n > 0) rc = usage_error("unexpected argument '%s' found", pos.v[0]);
  if (rc < 0 && !driver_attached()) rc = fail("OPTE driver is not attached");
  if (rc >= 0) {
    opts_free(opts, 1, &pos);
    return rc;
  }
  /* io::stdin().lines(): split on '\n' (a trailing "\r" stays), no line after a final '\n' */
  strv_t rules = {0};
  buf_t in = {0};
  char chunk[4096];
  ssize_t r;
  while ((r = read(0, chunk, sizeof(chunk))) != 0) {
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    buf_add(&in, "%.*s", (int)r, chunk);
  }
  for (size_t start = 0; in.s != NULL && start < in.n;) {
    char *nl = memchr(in.s + start, '\n', in.n - start);
    size_t end = nl != NULL ? (size_t)(nl - in.s) : in.n;
    in.s[end] = '\0';
    strv_push(&rules, in.s + start);
    start = end + 1;
  }
  free(in.s);
  char why[1100]; /* a whole 1023-byte token with its message */
  for (size_t i = 0; i < rules.n && rc < 0; i++)
    if (check_rule(rules.v[i], why, sizeof(why)) != 0) rc = fail("Invalid rule: %s", why);
  if (rc < 0) {
    links_t ls;
    int fd = open_state(&ls);
    if (fd < 0) {
      rc = fail("error interacting with device: %s", strerror(errno));
    } else {
      port_t p;
      if (port_read(port, &p) != 0) {
        rc = fail("command SetFwRules failed: PortNotFound(\"%s\")", port);
      } else {
        strv_free(&p.rules); /* the whole set is replaced */
        p.rules = rules;
        rules = (strv_t){0};
        rc = port_write(&p) == 0 ? 0 : fail("error interacting with device: %s", strerror(errno));
        port_free(&p);
      }
      close_state(fd, &ls);
    }
  }
  strv_free(&rules);
  opts_free(opts, 1, &pos);
  return rc;
}

static int set_external_ips(int argc, char **argv) {
  opt_t opts[] = {{"-p", 0, {0}},          {"--snat-ip", 0, {0}},      {"--snat-start", 0, {0}},
                  {"--snat-end", 0, {0}},  {"--ephemeral-ip", 0, {0}}, {"--floating-ip", 1, {0}}};
  const size_t nopts = sizeof(opts) / sizeof(opts[0]);
  strv_t pos = {0};
  external_t ext;
  memset(&ext, 0, sizeof(ext));
  int rc = parse_opts(argc, argv, opts, nopts, &pos);
  const char *port = opt1(opts, nopts, "-p");
  if (rc < 0 && port == NULL) rc = usage_error("the following required arguments were not provided:\n  -p <PORT>");
  if (rc < 0 && pos.n > 0) rc = usage_error("unexpected argument '%s' found", pos.v[0]);
  const char *why4 = NULL, *why6 = NULL;
  int family = 4;
  if (rc < 0) rc = parse_external(opts, nopts, 4, &ext, &why4);
  if (rc < 0 && why4 != NULL) {
    /* not an IPv4 config: try it as IPv6, as opteadm does */
    strv_free(&ext.floating);
    rc = parse_external(opts, nopts, 6, &ext, &why6);
    family = 6;
  }
  if (rc < 0 && !driver_attached()) rc = fail("OPTE driver is not attached");
  if (rc < 0 && why4 != NULL && why6 != NULL) rc = fail("expected IPv4 *or* IPv6 config.");
  if (rc < 0) {
    links_t ls;
    int fd = open_state(&ls);
    if (fd < 0) {
      rc = fail("error interacting with device: %s", strerror(errno));
    } else {
      port_t p;
      if (port_read(port, &p) != 0) {
        rc = fail("command SetExternalIps failed: PortNotFound(\"%s\")", port);
      } else {
        if (family == p.family) {
          strv_free(&p.ext.floating);
          p.ext = ext;
          ext = (external_t){0};
        }
        rc = port_write(&p) == 0 ? 0 : fail("error interacting with device: %s", strerror(errno));
        port_free(&p);
      }
      close_state(fd, &ls);
    }
  }
  strv_free(&ext.floating);
  opts_free(opts, nopts, &pos);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs("Administer the Oxide Packet Transformation Engine (OPTE)\n\nUsage: opteadm <COMMAND>\n", stderr);
    return OPTE_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  int sub_argc = argc - 2;
  char **sub_argv = argv + 2;
  if (strcmp(cmd, "list-ports") == 0 || strcmp(cmd, "dump-v2p") == 0) {
    if (sub_argc > 0) return usage_error("unexpected argument '%s' found", sub_argv[0]);
    if (cmd[0] == 'd') return dump_v2p();
    if (!driver_attached()) return fail("OPTE driver is not attached");
    return list_ports();
  }
  if (strcmp(cmd, "create-xde") == 0) return create_xde(sub_argc, sub_argv);
  if (strcmp(cmd, "delete-xde") == 0) return delete_xde(sub_argc, sub_argv);
  if (strcmp(cmd, "set-xde-underlay") == 0) return set_xde_underlay(sub_argc, sub_argv);
  if (strcmp(cmd, "set-v2p") == 0) return v2p_cmd(sub_argc, sub_argv, 1);
  if (strcmp(cmd, "clear-v2p") == 0) return v2p_cmd(sub_argc, sub_argv, 0);
  if (strcmp(cmd, "add-router-entry") == 0) return router_cmd(sub_argc, sub_argv, 1);
  if (strcmp(cmd, "del-router-entry") == 0) return router_cmd(sub_argc, sub_argv, 0);
  if (strcmp(cmd, "set-fw-rules") == 0) return set_fw_rules(sub_argc, sub_argv);
  if (strcmp(cmd, "set-external-ips") == 0) return set_external_ips(sub_argc, sub_argv);
  return usage_error("unrecognized subcommand '%s'", cmd);
}
