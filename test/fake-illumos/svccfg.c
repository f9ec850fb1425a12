/*
 * Fake svccfg(8), run "in" a zone by the fake zlogin (see inzone.c): the repository commands the
 * agent uses (src/host/commands.ts), over the zone's fake repository file, with svccfg's messages
 * (illumos-gate usr/src/cmd/svc/svccfg/svccfg_libscf.c):
 *
 *   svccfg import <manifest>             only /var/svc/manifest/site/<svc>/manifest.xml (the
 *                                        file itself is not read: there is none on the Linux
 *                                        host): defines svc:/system/illumos/<svc> with instance
 *                                        :default, "disabled" if new; and Crucible's
 *                                        /var/svc/manifest/site/crucible/agent.xml, defining
 *                                        svc:/oxide/crucible/agent with :default, and
 *                                        .../crucible/downstairs.xml, defining
 *                                        svc:/oxide/crucible/downstairs without instances (the
 *                                        table in do_import). Importing again keeps the
 *                                        instances and their states.
 *   svccfg -s <service> add <instance>   "svccfg: Pattern '...' doesn't match any instances or
 *                                        services" for an unknown service; "Instance \"...\"
 *                                        already exists." if it does. The new instance's restarter
 *                                        state (what libscf reads) is "disabled".
 *   svccfg -s <entity> addpg <pg> <type> [flags]    "Property group \"...\" already exists."
 *   svccfg -s <entity> setprop <pg>/<prop> = [<type>:] <value>   (also the one-word form
 *                                        "<pg>/<prop>=<value>"; type astring when not given);
 *                                        "No such property group \"...\"." without the pg
 *   svccfg -s <entity> refresh           the entity must exist; nothing else to do here
 *   svccfg -s <entity> listprop [<pg>[/<prop>]]   "<pg> <type>" and "<pg>/<prop> <type> <value>"
 *                                        lines (for tests of the fake; not in commands.ts)
 * <entity> is a service or instance FMRI ("svc:/" may be left out). Every zone's repository
 * starts out with svc:/milestone/network:default (its state kept by the fake zoneadm) and the
 * service svc:/system/illumos/propolis-server without instances: commands.ts says every zone
 * installed from propolis-server's image has it, and the fake zoneadm does not record a zone's
 * image, so in the fake every zone has it. Errors exit 1. The repository operations (find,
 * add_record, repo_add_instance, repo_set_prop, the name checks) are in inzone.c, which the fake
 * zoneadm also uses to apply a zone's site profile at boot.
 */
#include "inzone.c"

static int usage(void) {
  fprintf(stderr,
          "Usage:\tsvccfg [-v] [-s FMRI] [-f file] [command [args ...]]\n"
          "\tcommands: import file, add name, addpg name type [flags], setprop pg/name = [type:] value,\n"
          "\t\t  refresh, listprop [pattern]\n");
  return 1;
}

static int do_import(int argc, char **argv) {
  int i = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-V") != 0) return usage();
  }
  if (i + 1 != argc) return usage();
  const char *path = argv[i];
  /* manifests not named <svc>/manifest.xml (src/host/commands.ts): the service, and whether with :default */
  static const struct {
    const char *path, *service;
    int with_default;
  } KNOWN[] = {
      {"/var/svc/manifest/site/crucible/agent.xml", "svc:/oxide/crucible/agent", 1},
      {"/var/svc/manifest/site/crucible/downstairs.xml", "svc:/oxide/crucible/downstairs", 0},
  };
  char service[256], instance[300];
  int with_default = 1;
  size_t k = 0;
  for (; k < sizeof(KNOWN) / sizeof(KNOWN[0]) && strcmp(path, KNOWN[k].path) != 0; k++) continue;
  if (k < sizeof(KNOWN) / sizeof(KNOWN[0])) {
    snprintf(service, sizeof(service), "%s", KNOWN[k].service);
    with_default = KNOWN[k].with_default;
  } else {
    static const char prefix[] = "/var/svc/manifest/site/", suffix[] = "/manifest.xml";
    size_t len = strlen(path), plen = strlen(prefix), slen = strlen(suffix);
    char svc[128];
    if (len <= plen + slen || strncmp(path, prefix, plen) != 0 || strcmp(path + len - slen, suffix) != 0 ||
        len - plen - slen >= sizeof(svc))
      die(1, "Could not open \"%s\": No such file or directory", path);
    memcpy(svc, path + plen, len - plen - slen);
    svc[len - plen - slen] = '\0';
    if (!valid_name(svc)) die(1, "Could not open \"%s\": No such file or directory", path);
    snprintf(service, sizeof(service), "svc:/system/illumos/%s", svc);
  }
  snprintf(instance, sizeof(instance), "%s:default", service);

  struct inzone z;
  inzone_enter(&z);
  struct lines repo;
  repo_load(&z, &repo);
  if (!entity_exists(&repo, service, 0)) add_record(&repo, "service", service, NULL, NULL, NULL);
  if (with_default && !entity_exists(&repo, instance, 1) && repo_add_instance(z.zone, &repo, instance) != 0)
    die(1, "could not set the state of %s: %s", instance, strerror(errno));
  lines_save(&z, "repository", &repo);
  lines_free(&repo);
  inzone_leave(&z);
  return 0;
}

static int do_add(struct inzone *z, struct lines *repo, const char *fmri, int is_instance, int argc, char **argv) {
  if (argc != 1) return usage();
  if (is_instance) die(1, "Cannot add instances to an instance.");
  const char *name = argv[0];
  if (!valid_name(name)) die(1, "Invalid name \"%s\".", name);
  char instance[1200];
  snprintf(instance, sizeof(instance), "%s:%s", fmri, name);
  if (entity_exists(repo, instance, 1)) die(1, "Instance \"%s\" already exists.", name);
  if (repo_add_instance(z->zone, repo, instance) != 0) die(1, "could not set the state of %s: %s", instance, strerror(errno));
  return 0;
}

static int do_addpg(struct lines *repo, const char *fmri, int argc, char **argv) {
  if (argc < 2 || argc > 3) return usage();
  const char *pg = argv[0], *type = argv[1];
  if (!valid_name(pg)) die(1, "Invalid name \"%s\".", pg);
  if (!valid_name(type)) die(1, "Invalid type \"%s\".", type);
  if (find(repo, "pg", fmri, pg) >= 0) die(1, "Property group \"%s\" already exists.", pg);
  add_record(repo, "pg", fmri, pg, type, NULL);
  return 0;
}

static int do_setprop(struct lines *repo, const char *fmri, int argc, char **argv) {
  if (argc < 1) return usage();
  /* the words as svccfg's lexer sees them: "pg/prop", "=", "[type:]", "value" (or one word) */
  struct sbuf all = {0};
  for (int i = 0; i < argc; i++) {
    if ((i > 0 && sb_str(&all, " ") != 0) || sb_str(&all, argv[i]) != 0) die(1, "out of memory");
  }
  char *eq = strchr(all.data, '=');
  if (eq == NULL) {
    free(all.data);
    return usage();
  }
  *eq = '\0';
  char *name = all.data, *value = eq + 1;
  while (*name == ' ') name++;
  for (char *e = name + strlen(name); e > name && e[-1] == ' '; e--) e[-1] = '\0';
  while (*value == ' ') value++;
  const char *type = "astring";
  char *colon = strchr(value, ':');
  if (colon != NULL) {
    for (int k = 0; PROP_TYPES[k] != NULL; k++) {
      if ((size_t)(colon - value) == strlen(PROP_TYPES[k]) && strncmp(value, PROP_TYPES[k], strlen(PROP_TYPES[k])) == 0) {
        type = PROP_TYPES[k];
        value = colon + 1;
        while (*value == ' ') value++;
        break;
      }
    }
  }
  size_t vlen = strlen(value);
  if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
    value[vlen - 1] = '\0';
    value++;
  }
  char *slash = strchr(name, '/');
  if (slash == NULL) die(1, "Property names must be of the form pg/prop.");
  *slash = '\0';
  const char *pg = name, *prop = slash + 1;
  if (!valid_name(pg) || !valid_name(prop)) die(1, "Invalid name \"%s/%s\".", pg, prop);
  if (repo_set_prop(repo, fmri, pg, prop, type, value) != 0) die(1, "No such property group \"%s\".", pg);
  free(all.data);
  return 0;
}

static int do_listprop(const struct lines *repo, const char *fmri, int argc, char **argv) {
  if (argc > 1) return usage();
  const char *pattern = argc == 1 ? argv[0] : NULL;
  char f0[32], f1[1024], f2[300], f3[64], f4[8192];
  for (size_t i = 0; i < repo->n; i++) {
    if (field(repo->v[i], 0, f0, sizeof(f0)) != 0 || field(repo->v[i], 1, f1, sizeof(f1)) != 0 || strcmp(f1, fmri) != 0 ||
        field(repo->v[i], 2, f2, sizeof(f2)) != 0 || field(repo->v[i], 3, f3, sizeof(f3)) != 0)
      continue;
    if (pattern != NULL) {
      size_t plen = strlen(pattern);
      if (strcmp(f2, pattern) != 0 && !(strncmp(f2, pattern, plen) == 0 && f2[plen] == '/')) continue;
    }
    if (strcmp(f0, "pg") == 0) {
      printf("%s %s\n", f2, f3);
    } else if (strcmp(f0, "prop") == 0) {
      char *v = NULL;
      if (field(repo->v[i], 4, f4, sizeof(f4)) == 0) v = dec_dup(f4, strlen(f4));
      printf("%s %s %s\n", f2, f3, v != NULL ? v : "");
      free(v);
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  progname = "svccfg";
  const char *entity = NULL;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) entity = argv[++i];
    else if (strcmp(argv[i], "-v") == 0) continue;
    else return usage();
  }
  if (i >= argc) die(1, "interactive use is not supported by the fake svccfg");
  const char *cmd = argv[i];
  int sub_argc = argc - i - 1;
  char **sub_argv = argv + i + 1;
  if (strcmp(cmd, "import") == 0) {
    if (entity != NULL) die(1, "import: not allowed with -s");
    return do_import(sub_argc, sub_argv);
  }
  int known = strcmp(cmd, "add") == 0 || strcmp(cmd, "addpg") == 0 || strcmp(cmd, "setprop") == 0 ||
              strcmp(cmd, "refresh") == 0 || strcmp(cmd, "listprop") == 0;
  if (!known) die(1, "Syntax error: unknown command \"%s\".", cmd);
  if (entity == NULL) die(1, "No selected entity: use -s FMRI.");
  char fmri[1024];
  int is_instance = canon_fmri(entity, fmri, sizeof(fmri));
  if (is_instance < 0) die(1, "Invalid FMRI \"%s\".", entity);

  struct inzone z;
  inzone_enter(&z);
  struct lines repo;
  repo_load(&z, &repo);
  if (!entity_exists(&repo, fmri, is_instance)) die(1, "Pattern '%s' doesn't match any instances or services", entity);
  int rc;
  if (strcmp(cmd, "add") == 0) rc = do_add(&z, &repo, fmri, is_instance, sub_argc, sub_argv);
  else if (strcmp(cmd, "addpg") == 0) rc = do_addpg(&repo, fmri, sub_argc, sub_argv);
  else if (strcmp(cmd, "setprop") == 0) rc = do_setprop(&repo, fmri, sub_argc, sub_argv);
  else if (strcmp(cmd, "listprop") == 0) rc = do_listprop(&repo, fmri, sub_argc, sub_argv);
  else rc = sub_argc == 0 ? 0 : usage(); /* refresh: nothing to re-read in the fake */
  if (rc == 0 && strcmp(cmd, "listprop") != 0 && strcmp(cmd, "refresh") != 0) lines_save(&z, "repository", &repo);
  lines_free(&repo);
  inzone_leave(&z);
  return rc;
}
