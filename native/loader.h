// dlopen of the illumos libraries by soname, from a directory that tests can override, and a
// report of what loaded. A missing library or symbol is never fatal: the calls that need it
// reject with ENOLIB, and capabilities() tells the agent what it can use.
// The libraries are the process's, shared by every Node environment: any environment may call
// load() while another's calls run on library threads, so the load state is under one mutex and a
// library's symbol slots are written once, before it is marked ready, and never again.
#pragma once

#include <napi.h>

#include <atomic>
#include <string>
#include <vector>

namespace sled {

struct SymbolRef {
  const char* name;
  void** slot;
};

class Library {
 public:
  // Registers itself; define one per library as a namespace-scope static in its .cc file.
  Library(const char* key, const char* soname, std::vector<SymbolRef> symbols);

  const char* key;
  const char* soname;
  std::vector<SymbolRef> symbols;

  // Throws NativeError ENOLIB (on the calling thread) unless the library and every symbol
  // loaded. Any thread; once it has passed, the slots are set for good.
  void Require() const;

  // loader.cc's, under its mutex.
  void* handle = nullptr;
  std::string path;
  std::string error;
  std::vector<std::string> missing;
  bool attempted = false;
  // Set (release) once loaded with every symbol, after the slots; never cleared. Read without the
  // mutex by Require(), on every call.
  std::atomic<bool> ready{false};
};

// Loads every registered library not loaded yet, from `dir` if not empty (else by soname through
// the runtime linker), and reports: { dir, libraries: { key: { soname, loaded, path, error,
// missing: [...] } } }. A library already loaded stays as it is (its slots may be in use); one
// that failed is tried again. One load at a time, from any environment's JS thread.
Napi::Object Load(Napi::Env env, const std::string& dir);

// The same report as of the last Load() from any environment (dir null before the first).
Napi::Object Report(Napi::Env env);

}  // namespace sled
