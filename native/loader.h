// dlopen of the illumos libraries by soname, from a directory that tests can override, and a
// report of what loaded. A missing library or symbol is never fatal: the calls that need it
// reject with ENOLIB, and capabilities() tells the agent what it can use.
#pragma once

#include <napi.h>

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
  void* handle = nullptr;
  std::string path;
  std::string error;
  std::vector<std::string> missing;
  bool attempted = false;

  bool Ready() const { return handle != nullptr && missing.empty(); }
  // Throws NativeError ENOLIB (on the calling thread) unless Ready().
  void Require() const;
};

std::vector<Library*>& Registry();

// Loads every registered library, from `dir` if not empty (else by soname through the runtime
// linker). Libraries already loaded stay as they are.
void LoadAll(const std::string& dir);

// { dir, libraries: { key: { soname, loaded, path, error, missing: [...] } } }
Napi::Object Report(Napi::Env env, const std::string& dir);

}  // namespace sled
