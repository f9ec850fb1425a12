/*
 * Fake zoneadm(8): install, boot, halt, uninstall and list over the fake libzonecfg's state
 * (see zonecfg.c for the files), with the real command line and the real messages of
 * illumos-gate usr/src/cmd/zoneadm/zoneadm.c (sanity_check) and zoneadmd:
 *
 *   zoneadm -z NAME install [image ...]   configured -> incomplete -> installed (+ a uuid);
 *                                         FAKE_ILLUMOS_INSTALL_DELAY_MS (default 0) in between;
 *                                         the zone's root is made as it becomes installed (below)
 *   zoneadm -z NAME boot [-- args]        installed -> a kernel zone with a new id: events
 *                                         uninitialized->initialized, initialized->ready,
 *                                         ready->ready, ready->running; the zone's
 *                                         svc:/milestone/network:default goes "offline", then
 *                                         "online" FAKE_ILLUMOS_NETWORK_DELAY_MS (default 50)
 *                                         later, from a detached process; with
 *                                         FAKE_ILLUMOS_BOOT_DELAY_MS the zone stays "ready"
 *                                         that long and a detached process (zoneadmd) completes
 *                                         the boot, even if zoneadm itself is killed meanwhile.
 *                                         The zone's site profile is applied as it becomes
 *                                         running (below)
 *   zoneadm -z NAME halt                  running -> installed: events running->shutting_down,
 *                                         shutting_down->shutting_down,
 *                                         shutting_down->uninitialized; its SMF state is cleared
 *   zoneadm -z NAME clone [-m copy] SRC   configured -> incomplete -> installed (+ a uuid of its
 *                                         own) from SRC, which must be installed, not in the
 *                                         kernel and of the same brand (clone_func,
 *                                         validate_clone); FAKE_ILLUMOS_CLONE_DELAY_MS
 *                                         (default 0) in between; the zone's root is made as
 *                                         install's, with a copy of SRC's site profile if SRC
 *                                         has one (a ZFS clone copies the whole zonepath)
 *   zoneadm -z NAME uninstall [-F]        installed -> configured (asks without -F); its SMF
 *                                         logs and its site profile are removed (they were in
 *                                         the zone's root; the fake removes nothing else of it)
 *   zoneadm [-z NAME] list [-cipv]        id:name:state:path:uuid:brand:iptype with -p
 *
 * The zone's root: a zone root is made where the zonepath can be created. As a zone becomes
 * installed, "<zonepath>/root/var/svc/profile" is made as `mkdir -p` would (the zonepath 0700 if
 * it is made, the other directories 0755), except that the fake never makes a directory right
 * under "/": most tests' zonepaths, like /zones/<name>, have no such parent on the test host,
 * which the tests may run on as root, and must not litter it (make_zone_root). Where the root
 * cannot be made, nothing is reported: the install succeeds, and a boot finds no profile.
 *
 * The site profile (what omicron's sled-agent writes before a zone's first boot, profile.rs
 * ProfileBuilder::add_to_zone): "<zonepath>/root/var/svc/profile/site.xml", which illumos's
 * manifest-import applies at boot. The fake applies it at every boot, since its repository lasts
 * one boot of the zone (inzone.c): under the lock in which the zone becomes running (in zoneadm,
 * or in zoneadmd with FAKE_ILLUMOS_BOOT_DELAY_MS), into that boot's repository, which it makes
 * then (inzone_make_boot, repo_read), so the first command run in the zone already sees it. It
 * reads omicron's format, one element per line, with a small tolerant scanner rather than an XML
 * parser: the tags <service name=..>, <instance name=.. enabled=true|false>, <property_group
 * name=.. type=..>, <propval name=.. type=.. value=../> and their closing tags (any attribute
 * order, single or double quotes, &amp; &lt; &gt; &quot; &apos; &#N; &#xH; decoded); all else,
 * a tag that does not end on its line, and an element whose names the repository would not take
 * (svccfg's rules; a propval of an unknown type) are passed over, with what they contain. Then:
 *   <service>          a service the repository does not have is defined, without instances
 *                      (as svccfg import would)
 *   <instance>         one the service does not have is added, "disabled" (svccfg add); an
 *                      existing one is kept
 *   <property_group>   added to the instance (or, outside one, the service) if not there, of
 *                      that type (svccfg addpg)
 *   <propval>          sets the property's type and value (svccfg setprop)
 * and, the repository written, each instance with enabled="true" is enabled as `svcadm enable -t`
 * (inzone.c: enable_begin) goes "offline" at once, but it starts only once the network milestone
 * is online, as real SMF orders it (propolis-server depends on svc:/milestone/network): the
 * detached process that brings the milestone online then starts each such instance still
 * "offline" as svcadm does (schedule_start: "online", or "maintenance" for a propolis-server
 * instance without a usable config/server_addr, FAKE_ILLUMOS_SERVICE_START_MS later; a disable
 * meanwhile wins). The milestone is never online before the profile is applied, both being of
 * the same boot. One with enabled="false" goes "disabled"; the last word on an instance counts.
 * A profile that cannot be read changes nothing and one that cannot be parsed applies what was
 * understood of it: neither fails the boot, nor prints anything (real SMF logs it and goes on).
 *
 * Errors go to stderr as "zoneadm: zone 'NAME': <message>" with exit status 1; usage errors
 * exit 253 (Z_USAGE). Every state change happens under fake_lock(), and the kernel table is
 * updated before the event that announces it, so a listener that reacts to an event sees the
 * new state.
 *
 * Like the real zoneadm links libzonecfg, this includes the fake libzonecfg's source (through
 * inzone.c, whose SMF repository code applies the site profile as the in-zone svccfg and svcadm
 * would).
 */
#include "inzone.c"

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

/* ---- the zone's root ------------------------------------------------------------------------- */

#define SITE_PROFILE "root/var/svc/profile/site.xml"

/* "<zonepath of zone>/<rel>" into buf; 0, or -1 if the zone has no absolute zonepath other than
 * "/", or it does not fit. Locked. */
static int zone_file(const char *zone, const char *rel, char *buf, size_t len) {
  char zonepath[ZC_MAXPATHLEN];
  if (zone_get_zonepath((char *)zone, zonepath, sizeof(zonepath)) != Z_OK || zonepath[0] != '/') return -1;
  size_t n = strlen(zonepath);
  while (n > 1 && zonepath[n - 1] == '/') zonepath[--n] = '\0';
  if (n == 1) return -1; /* "/": the global zone's root, never a zone's to make or change */
  int w = snprintf(buf, len, "%s/%s", zonepath, rel);
  return w < 0 || (size_t)w >= len ? -1 : 0;
}

/*
 * What an installed zone's root has that the fake's boot reads: "<zonepath>/root/var/svc/profile",
 * made as `mkdir -p` would (the zonepath 0700, as zoneadm makes it, the other directories 0755),
 * except that no directory right under "/" is ever made (so not a zonepath such as /zones/<name>
 * or /x where /zones or /x is not there: most tests' zonepaths are such, and the tests may run as
 * root, for whom nothing would be unwritable). Nothing more is made once a directory cannot be,
 * or is there but is not a directory (from the zonepath down a symbolic link is not followed),
 * and nothing is reported. Locked.
 */
static void make_zone_root(const char *zone) {
  char path[4096];
  if (zone_file(zone, "", path, sizeof(path)) != 0) return;
  size_t n = strlen(path) - 1; /* without the '/' that zone_file put after the zonepath */
  path[n] = '\0';
  if (strrchr(path, '/') == path) return; /* the zonepath itself is right under "/" */
  struct stat st;
  /* the zonepath's parents */
  for (char *p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
    *p = '\0';
    int ok = stat(path, &st) == 0 ? S_ISDIR(st.st_mode)
                                  : errno == ENOENT && strchr(path + 1, '/') != NULL && mkdir(path, 0755) == 0 &&
                                        chmod(path, 0755) == 0;
    *p = '/';
    if (!ok) return;
  }
  static const struct {
    const char *rel;
    mode_t mode;
  } PARTS[] = {{"", 0700}, {"/root", 0755}, {"/root/var", 0755}, {"/root/var/svc", 0755}, {"/root/var/svc/profile", 0755}};
  for (size_t i = 0; i < sizeof(PARTS) / sizeof(PARTS[0]); i++) {
    path[n] = '\0';
    if (n + strlen(PARTS[i].rel) >= sizeof(path)) return;
    strcat(path, PARTS[i].rel);
    if (mkdir(path, PARTS[i].mode) == 0) {
      if (chmod(path, PARTS[i].mode) != 0) return; /* the mode whatever the umask */
    } else if (errno != EEXIST) {
      return;
    }
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return;
  }
}

/* A clone's copy of its source's zonepath, as far as the fake keeps one: the site profile, if the
 * source has one and the target's root could be made. Locked; failures are silent. */
static void copy_site_profile(const char *source) {
  char from[4096], to[4096];
  if (zone_file(source, SITE_PROFILE, from, sizeof(from)) != 0 || zone_file(target_zone, SITE_PROFILE, to, sizeof(to)) != 0)
    return;
  struct stat st;
  if (lstat(from, &st) != 0 || !S_ISREG(st.st_mode)) return;
  size_t len;
  char *text = fake_read_file(from, &len);
  if (text == NULL) return;
  (void)fake_write_file(to, text, len);
  free(text);
}

/* ---- install / uninstall -------------------------------------------------------------------- */

/* The zonepath being filled (an install's image, a clone's copy of `source`'s; NULL for an
 * install), with the lock held and the zone checked: incomplete for the delay in `delay_env` (the
 * lock let go meanwhile, so a kill leaves it incomplete), then its root made (make_zone_root; a
 * clone's with the source's site profile) and installed with a uuid of its own. Releases the
 * lock. */
static int populate_zone(int lock, const char *delay_env, const char *source) {
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
  make_zone_root(target_zone);
  if (source != NULL) copy_site_profile(source);
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
  rc = populate_zone(lock, "FAKE_ILLUMOS_INSTALL_DELAY_MS", NULL);
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
  /* The SMF logs and the site profile were in the zone's root, which uninstall removes (the
   * fake removes only that file of it). */
  if (rc == Z_OK) {
    fake_smf_clear_logs(target_zone);
    char profile[4096];
    if (zone_file(target_zone, SITE_PROFILE, profile, sizeof(profile)) == 0) (void)unlink(profile);
  }
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
  return populate_zone(lock, "FAKE_ILLUMOS_CLONE_DELAY_MS", source);
}

/* ---- the site profile ------------------------------------------------------------------------- */

/* One tag of a line of the profile: "<name attrs>", "</name>" or "<name attrs/>"; attrs is the text
 * between the name and the '>' (or "/>"). */
struct xtag {
  char name[32];
  int closing, empty;
  const char *attrs;
  size_t attrs_len;
};

/* The next tag at or after *s (which moves past it): 1, or 0 when the line has no more. Text
 * between tags, comments, "<?...?>" and "<!...>" are passed over; a tag that does not end on its
 * line ends the scan of that line. */
static int next_tag(const char **s, struct xtag *t) {
  const char *p = *s;
  for (;;) {
    p = strchr(p, '<');
    if (p == NULL) return 0;
    if (strncmp(p, "<!--", 4) == 0) {
      const char *end = strstr(p + 4, "-->");
      if (end == NULL) return 0;
      p = end + 3;
      continue;
    }
    if (p[1] == '!' || p[1] == '?') {
      const char *end = strchr(p, '>');
      if (end == NULL) return 0;
      p = end + 1;
      continue;
    }
    const char *q = p + 1;
    t->closing = *q == '/';
    if (t->closing) q++;
    size_t nlen = strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:.");
    if (nlen == 0 || nlen >= sizeof(t->name)) {
      p++;
      continue;
    }
    memcpy(t->name, q, nlen);
    t->name[nlen] = '\0';
    const char *r = q + nlen;
    char quote = 0;
    for (; *r != '\0' && (quote != 0 || *r != '>'); r++) {
      if (quote != 0) {
        if (*r == quote) quote = 0;
      } else if (*r == '"' || *r == '\'') {
        quote = *r;
      }
    }
    if (*r == '\0') return 0;
    t->attrs = q + nlen;
    t->attrs_len = (size_t)(r - t->attrs);
    t->empty = t->attrs_len > 0 && r[-1] == '/';
    if (t->empty) t->attrs_len--;
    *s = r + 1;
    return 1;
  }
}

/* Appends the UTF-8 encoding of code point c (not NUL, not a surrogate, at most U+10FFFF); 0 or -1. */
static int put_utf8(struct sbuf *b, unsigned long c) {
  char u[4];
  size_t n;
  if (c == 0 || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) return -1;
  if (c < 0x80) {
    u[0] = (char)c;
    n = 1;
  } else if (c < 0x800) {
    u[0] = (char)(0xc0 | (c >> 6));
    u[1] = (char)(0x80 | (c & 0x3f));
    n = 2;
  } else if (c < 0x10000) {
    u[0] = (char)(0xe0 | (c >> 12));
    u[1] = (char)(0x80 | ((c >> 6) & 0x3f));
    u[2] = (char)(0x80 | (c & 0x3f));
    n = 3;
  } else {
    u[0] = (char)(0xf0 | (c >> 18));
    u[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    u[3] = (char)(0x80 | (c & 0x3f));
    n = 4;
  }
  return sb_put(b, u, n);
}

/* An attribute value with its XML references decoded (&amp; &lt; &gt; &quot; &apos; and &#N; /
 * &#xH;), malloc'd; one that is not a reference stays as it is. NULL if out of memory. */
static char *xml_decode(const char *v, size_t n) {
  static const struct {
    const char *ref;
    char c;
  } REFS[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  struct sbuf b = {0};
  int bad = sb_put(&b, "", 0);
  for (size_t i = 0; i < n && !bad;) {
    size_t used = 0;
    if (v[i] == '&') {
      for (size_t k = 0; k < sizeof(REFS) / sizeof(REFS[0]) && used == 0; k++) {
        size_t rlen = strlen(REFS[k].ref);
        if (rlen <= n - i && memcmp(v + i, REFS[k].ref, rlen) == 0) {
          bad = sb_put(&b, &REFS[k].c, 1);
          used = rlen;
        }
      }
      const char *semi = used == 0 && i + 1 < n && v[i + 1] == '#' ? memchr(v + i, ';', n - i) : NULL;
      if (semi != NULL) {
        int hex = v[i + 2] == 'x' || v[i + 2] == 'X';
        const char *digits = v + i + (hex ? 3 : 2);
        size_t dlen = (size_t)(semi - digits);
        if (semi > digits && dlen <= 8 && strspn(digits, hex ? "0123456789abcdefABCDEF" : "0123456789") >= dlen) {
          char num[9];
          memcpy(num, digits, dlen);
          num[dlen] = '\0';
          if (put_utf8(&b, strtoul(num, NULL, hex ? 16 : 10)) == 0) used = (size_t)(semi - (v + i)) + 1;
        }
      }
    }
    if (used == 0) {
      bad = sb_put(&b, v + i, 1);
      used = 1;
    }
    i += used;
  }
  if (bad) {
    free(b.data);
    return NULL;
  }
  return b.data;
}

/* The value of the tag's attribute `key`, decoded (xml_decode), malloc'd; NULL if the tag has no
 * such attribute or its attributes cannot be read. */
static char *tag_attr(const struct xtag *t, const char *key) {
  const char *p = t->attrs, *end = t->attrs + t->attrs_len;
  const char *space = " \t\r\n";
  for (;;) {
    while (p < end && strchr(space, *p) != NULL) p++;
    if (p >= end) return NULL;
    const char *name = p;
    while (p < end && *p != '=' && strchr(space, *p) == NULL) p++;
    size_t nlen = (size_t)(p - name);
    while (p < end && strchr(space, *p) != NULL) p++;
    if (nlen == 0 || p >= end || *p != '=') return NULL;
    p++;
    while (p < end && strchr(space, *p) != NULL) p++;
    if (p >= end || (*p != '"' && *p != '\'')) return NULL;
    char quote = *p++;
    const char *value = p;
    while (p < end && *p != quote) p++;
    if (p >= end) return NULL;
    if (nlen == strlen(key) && memcmp(name, key, nlen) == 0) return xml_decode(value, (size_t)(p - value));
    p++;
  }
}

/* Where the scan of a profile is: the open elements, each "" when it is not one the repository
 * can take (its children are then passed over). */
struct profile_scan {
  const char *zone;
  struct lines *repo;
  struct lines *enables; /* "<1|0> <instance fmri>", in the profile's order */
  int in_service, in_instance, in_pg;
  char service[1024], instance[1200], pg[128];
};

static int known_prop_type(const char *type) {
  for (int k = 0; PROP_TYPES[k] != NULL; k++) {
    if (strcmp(type, PROP_TYPES[k]) == 0) return 1;
  }
  return 0;
}

static void profile_tag(struct profile_scan *ps, const struct xtag *t) {
  int service = strcmp(t->name, "service") == 0, instance = strcmp(t->name, "instance") == 0,
      pg = strcmp(t->name, "property_group") == 0, propval = strcmp(t->name, "propval") == 0;
  if (t->closing) {
    if (service) ps->in_service = 0;
    if (service || instance) ps->in_instance = 0;
    if (service || instance || pg) ps->in_pg = 0;
    return;
  }
  if (service) {
    /* as svccfg import defines it: the service, without instances */
    ps->in_service = !t->empty;
    ps->in_instance = ps->in_pg = 0;
    ps->service[0] = '\0';
    char *name = tag_attr(t, "name");
    char raw[1100], fmri[1024];
    if (name != NULL && (size_t)snprintf(raw, sizeof(raw), "svc:/%s", name) < sizeof(raw) &&
        canon_fmri(raw, fmri, sizeof(fmri)) == 0) {
      if (!entity_exists(ps->repo, fmri, 0)) add_record(ps->repo, "service", fmri, NULL, NULL, NULL);
      snprintf(ps->service, sizeof(ps->service), "%s", fmri);
    }
    free(name);
  } else if (instance && ps->in_service) {
    /* as svccfg -s <service> add <name>; an existing instance is kept */
    ps->in_instance = !t->empty;
    ps->in_pg = 0;
    ps->instance[0] = '\0';
    char *name = tag_attr(t, "name"), *enabled = tag_attr(t, "enabled");
    if (ps->service[0] != '\0' && name != NULL && valid_name(name)) {
      snprintf(ps->instance, sizeof(ps->instance), "%s:%s", ps->service, name);
      if (!entity_exists(ps->repo, ps->instance, 1)) (void)repo_add_instance(ps->zone, ps->repo, ps->instance);
      if (enabled != NULL && (strcmp(enabled, "true") == 0 || strcmp(enabled, "false") == 0)) {
        char rec[1300];
        snprintf(rec, sizeof(rec), "%d %s", enabled[0] == 't', ps->instance);
        lines_add(ps->enables, rec);
      }
    }
    free(name);
    free(enabled);
  } else if (pg && ps->in_service) {
    /* as svccfg addpg <name> <type>, if the group is not there */
    ps->in_pg = !t->empty;
    ps->pg[0] = '\0';
    const char *entity = ps->in_instance ? ps->instance : ps->service;
    char *name = tag_attr(t, "name"), *type = tag_attr(t, "type");
    if (entity[0] != '\0' && name != NULL && type != NULL && valid_name(name) && valid_name(type)) {
      if (find(ps->repo, "pg", entity, name) < 0) add_record(ps->repo, "pg", entity, name, type, NULL);
      snprintf(ps->pg, sizeof(ps->pg), "%s", name);
    }
    free(name);
    free(type);
  } else if (propval && ps->in_pg && ps->pg[0] != '\0') {
    /* as svccfg setprop <pg>/<name> = <type>: <value> */
    const char *entity = ps->in_instance ? ps->instance : ps->service;
    char *name = tag_attr(t, "name"), *type = tag_attr(t, "type"), *value = tag_attr(t, "value");
    if (name != NULL && type != NULL && value != NULL && valid_name(name) && known_prop_type(type))
      (void)repo_set_prop(ps->repo, entity, ps->pg, name, type, value);
    free(name);
    free(type);
    free(value);
  }
}

/*
 * manifest-import's application of "<zonepath>/root/var/svc/profile/site.xml" to that boot
 * (zoneid) of the zone, which is running: under the lock, right after the zone became so. The
 * repository gets what the profile defines (profile_tag), then each instance it enables goes
 * "offline" (enable_begin) and is added to *starting, to start once the network milestone is
 * online (network_online_now); one it disables goes "disabled". A profile that cannot be read
 * changes nothing, one that cannot be parsed what was understood of it; neither fails the boot.
 */
static void apply_site_profile_locked(int zoneid, struct lines *starting) {
  memset(starting, 0, sizeof(*starting));
  char path[4096];
  if (zone_file(target_zone, SITE_PROFILE, path, sizeof(path)) != 0) return;
  char *text = fake_read_file(path, NULL);
  if (text == NULL) return;
  struct inzone z;
  inzone_at(&z, target_zone, zoneid);
  struct lines repo, enables = {0};
  if (inzone_make_boot(&z) != 0 || repo_read(&z, &repo) != 0) {
    free(text);
    return;
  }
  struct profile_scan ps = {.zone = target_zone, .repo = &repo, .enables = &enables};
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    const char *at = line;
    struct xtag t;
    while (next_tag(&at, &t)) profile_tag(&ps, &t);
  }
  free(text);
  if (lines_write(&z, "repository", &repo) == 0) {
    for (size_t i = 0; i < enables.n; i++) {
      const char *fmri = enables.v[i] + 2;
      int later = 0; /* the last word on an instance is the profile's */
      for (size_t j = i + 1; j < enables.n && !later; j++) later = strcmp(enables.v[j] + 2, fmri) == 0;
      if (later) continue;
      if (enables.v[i][0] == '0') (void)fake_smf_set_state(target_zone, fmri, "disabled");
      else if (enable_begin(target_zone, fmri) == 1) lines_add(starting, fmri);
    }
  }
  lines_free(&enables);
  lines_free(&repo);
}

/* ---- boot / halt ------------------------------------------------------------------------------- */

#define NETWORK_FMRI "svc:/milestone/network:default"

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

/* The zone's network milestone comes online, if that boot of it still runs (a halt clears the
 * zone's SMF state); then the instances that waited for it (`starting`: the site profile's enabled
 * ones) start as svcadm enable's do (schedule_start, FAKE_ILLUMOS_SERVICE_START_MS), each one that
 * is still "offline", to "online" or "maintenance" (start_target, as the repository is now). */
static void network_online_now(int zoneid, const struct lines *starting) {
  if (!kernel_is(zoneid, "running")) return;
  int lock = relock_existing();
  if (lock < 0) return;
  struct lines go = {0};
  const char **targets = starting->n > 0 ? calloc(starting->n, sizeof(*targets)) : NULL;
  if (kernel_is(zoneid, "running")) {
    fake_smf_set_state(target_zone, NETWORK_FMRI, "online");
    struct inzone z;
    struct lines repo = {0};
    inzone_at(&z, target_zone, zoneid);
    if (starting->n > 0 && targets != NULL && repo_read(&z, &repo) == 0) {
      for (size_t i = 0; i < starting->n; i++) {
        char state[64];
        read_state(target_zone, starting->v[i], state, sizeof(state));
        if (strcmp(state, "offline") != 0) continue;
        targets[go.n] = start_target(&repo, starting->v[i]);
        lines_add(&go, starting->v[i]);
      }
    }
    lines_free(&repo);
  }
  fake_unlock(lock);
  long delay = env_ms("FAKE_ILLUMOS_SERVICE_START_MS", 20);
  for (size_t i = 0; i < go.n; i++) (void)schedule_start(target_zone, zoneid, go.v[i], targets[i], delay);
  lines_free(&go);
  free(targets);
}

/* In a detached process: network_online_now after FAKE_ILLUMOS_NETWORK_DELAY_MS. */
static void network_online_later(int zoneid, const struct lines *starting) {
  sleep_ms(env_ms("FAKE_ILLUMOS_NETWORK_DELAY_MS", 50));
  network_online_now(zoneid, starting);
}

static void schedule_network_online(int zoneid, const struct lines *starting) {
  int forked = fork_detached();
  if (forked < 0) network_online_now(zoneid, starting);
  if (forked != 0) return;
  detach_stdio();
  network_online_later(zoneid, starting);
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
    struct lines starting = {0};
    int lock = relock_existing();
    int ready = lock >= 0 && bootable_locked() == Z_OK && become_ready_locked(&id) == Z_OK;
    if (lock >= 0) fake_unlock(lock);
    if (ready) {
      sleep_ms(env_ms("FAKE_ILLUMOS_BOOT_DELAY_MS", 0));
      lock = relock_existing();
      if (lock >= 0) {
        if (kernel_is(id, "ready") && become_running_locked(&id) == Z_OK) {
          apply_site_profile_locked(id, &starting);
          outcome = '1';
        }
        fake_unlock(lock);
      }
    }
    ssize_t ignored = write(fds[1], &outcome, 1);
    (void)ignored;
    close(fds[1]);
    if (outcome == '1') network_online_later(id, &starting);
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
  struct lines starting = {0};
  if (rc == Z_OK) rc = become_ready_locked(&id);
  if (rc == Z_OK) rc = become_running_locked(&id);
  if (rc == Z_OK) apply_site_profile_locked(id, &starting);
  fake_unlock(lock);
  if (rc == Z_OK) schedule_network_online(id, &starting);
  lines_free(&starting);
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
  progname = execname; /* inzone.c's messages */
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
