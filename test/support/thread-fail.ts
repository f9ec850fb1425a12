// An LD_PRELOAD shim for the addon's tests: in a child process, pthread_create fails with EAGAIN
// on the main thread while SLED_TEST_FAIL_THREADS is set in the environment (Node writes
// process.env through to setenv), so a test can make the addon's own thread creation fail for
// one call (std::thread throws std::system_error, as it would when the process is out of
// threads). Only the main thread: Node's other threads, and the libraries', are left alone.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SOURCE = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static create_fn real_create;

__attribute__((constructor)) static void init(void) {
  real_create = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
}

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*start)(void *), void *arg) {
  if (syscall(SYS_gettid) == getpid() && getenv("SLED_TEST_FAIL_THREADS") != NULL) return EAGAIN;
  return real_create(t, attr, start, arg);
}
`;

/**
 * Compiles the shim into a temp dir (removed by a function pushed onto `cleanup`); returns the
 * LD_PRELOAD for a child: the shim after whatever is preloaded already (the sanitizer runtime
 * under npm run test:asan, which must come first).
 */
export function threadFailPreload(cleanup: Array<() => void>): string {
  const dir = mkdtempSync(join(tmpdir(), 'thread-fail-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const src = join(dir, 'thread-fail.c');
  const so = join(dir, 'thread-fail.so');
  writeFileSync(src, SOURCE);
  execFileSync('cc', ['-shared', '-fPIC', '-o', so, src, '-ldl']);
  return [process.env.LD_PRELOAD, so].filter(Boolean).join(' ');
}
