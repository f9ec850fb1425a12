/*
 * Shared by the fake illumos libraries and the fake zoneadm/zlogin: where the fake host keeps
 * its state (the directory in FAKE_ILLUMOS_STATE, so a restarted agent sees what an earlier
 * process made), small file helpers, and the zone-state event log that the fake event channel
 * delivers from.
 */
#ifndef FAKE_ILLUMOS_COMMON_H
#define FAKE_ILLUMOS_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* The state directory (FAKE_ILLUMOS_STATE); NULL if unset. Subdirectories are created on use. */
const char *fake_state_dir(void);

/* Writes "<state>/<sub>/<name>" into buf; returns 0, or -1 if it does not fit or no state dir. */
int fake_path(char *buf, size_t len, const char *sub, const char *name);

/* mkdir -p of "<state>/<sub>". Returns 0 or -1 (errno set). */
int fake_mkdir(const char *sub);

/* Atomically replaces a file's contents (temp + rename). Returns 0 or -1 (errno set). */
int fake_write_file(const char *path, const char *data, size_t len);

/* The same through a temp file the caller names (it must be on the same filesystem). */
int fake_write_via(const char *tmp, const char *path, const char *data, size_t len);

/* Reads a whole file into a malloc'd NUL-terminated buffer; NULL (errno set) on failure. */
char *fake_read_file(const char *path, size_t *len);

/*
 * Generation tokens for per-process caches of an area of state, kept in the lock file (slot N at
 * byte offset 17*N, "%016llx\n"; written in place, as a rename over an existing file costs a
 * data flush on ext4): a random non-zero token that every writer of that area replaces before it
 * unlocks, so a cache is still good while the token is the one it was loaded at. lockfd is what
 * fake_lock() returned. fake_gen_read returns 0 when there is no token (the cache must reload);
 * fake_gen_bump returns the new token, or 0 if it could not write one.
 */
#define FAKE_GEN_LINKS 0
#define FAKE_GEN_ZFS 1
uint64_t fake_gen_read(int lockfd, int slot);
uint64_t fake_gen_bump(int lockfd, int slot);

/*
 * An exclusive lock over the whole fake host's state, across processes (flock) and threads. The
 * lock file's fd stays open in the process between sections (so do not close it: fake_unlock
 * keeps it for the next fake_lock); fake_unlock given an fd the caller opened itself closes it.
 */
int fake_lock(void);          /* returns an fd to pass to fake_unlock, or -1 */
void fake_unlock(int fd);

/*
 * Appends one zone-state event to "<state>/zone-events.log" as
 * "<zonename> <zoneid> <newstate> <oldstate> <when-ns>\n" (states are the kernel's event
 * strings: uninitialized, initialized, ready, running, shutting_down).
 */
int fake_emit_zone_event(const char *zonename, int32_t zoneid, const char *newstate, const char *oldstate);

/*
 * The fake SMF repository: one file per service instance of a zone,
 * "<state>/smf/<zone>/<fmri with '/' and ':' as '_'>", holding the restarter state
 * ("uninitialized", "offline", "online", "degraded", "maintenance", "disabled"). Written
 * atomically (rename), so a watcher sees one whole state at a time. fake_smf_clear_zone removes
 * all of a zone's instances (the zone halted).
 */
int fake_smf_set_state(const char *zone, const char *fmri, const char *state);
int fake_smf_path(char *buf, size_t len, const char *zone, const char *fmri);
int fake_smf_clear_zone(const char *zone);

/*
 * Each instance's restarter log, "<state>/svclog/<zone>/<fmri with '/' and ':' as '_'>.log"
 * (outside smf/, whose directory the fake libscf watches): fake_smf_set_state appends
 * "[ <Mmm dd HH:MM:SS> <text> ]" when the state changes, the text per state as in
 * src/host/commands.ts, as svc.startd writes /var/svc/log/<service>:<instance>.log. The logs
 * outlive a halt and go at uninstall (fake_smf_clear_logs), as they live in the zone's root.
 */
int fake_smf_log_path(char *buf, size_t len, const char *zone, const char *fmri);
int fake_smf_clear_logs(const char *zone);

/* CLOCK_MONOTONIC in ns, like gethrtime(). */
int64_t fake_hrtime(void);

#endif
