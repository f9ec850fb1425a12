#include "loader.h"

#include <dlfcn.h>

#include <mutex>

#include "errors.h"

namespace sled {

namespace {

std::vector<Library*>& Registry() {
  // A function-local static, so libraries registering from other files' static initialisers
  // never see it unconstructed.
  static std::vector<Library*> registry;
  return registry;
}

// Guards every Library's load state and `last_dir`. (std::mutex is constant-initialised, so it is
// usable whatever the order of static initialisation.)
std::mutex mu;
std::string last_dir;

// One library's state, copied under the mutex: the JS objects are made outside it.
struct Status {
  const Library* lib;
  bool loaded;
  bool attempted;
  std::string path;
  std::string error;
  std::vector<std::string> missing;
};

// Under mu.
std::vector<Status> Snapshot() {
  std::vector<Status> out;
  for (const Library* lib : Registry()) {
    out.push_back({lib, lib->handle != nullptr && lib->missing.empty(), lib->attempted, lib->path, lib->error,
                   lib->missing});
  }
  return out;
}

Napi::Object ToJs(Napi::Env env, const std::string& dir, const std::vector<Status>& libraries) {
  Napi::Object report = Napi::Object::New(env);
  report.Set("dir", dir.empty() ? env.Null() : Napi::String::New(env, dir));
  Napi::Object libs = Napi::Object::New(env);
  for (const Status& s : libraries) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("soname", s.lib->soname);
    entry.Set("loaded", Napi::Boolean::New(env, s.loaded));
    entry.Set("path", s.attempted ? Napi::Value(Napi::String::New(env, s.path)) : env.Null());
    entry.Set("error", s.error.empty() ? env.Null() : Napi::Value(Napi::String::New(env, s.error)));
    Napi::Array missing = Napi::Array::New(env, s.missing.size());
    for (size_t i = 0; i < s.missing.size(); ++i) missing.Set(i, s.missing[i]);
    entry.Set("missing", missing);
    libs.Set(s.lib->key, entry);
  }
  report.Set("libraries", libs);
  return report;
}

}  // namespace

Library::Library(const char* key_, const char* soname_, std::vector<SymbolRef> symbols_)
    : key(key_), soname(soname_), symbols(std::move(symbols_)) {
  Registry().push_back(this);
}

void Library::Require() const {
  if (ready.load(std::memory_order_acquire)) return;
  std::string why;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (handle != nullptr && missing.empty()) return;  // loaded meanwhile
    why = !attempted ? "the illumos libraries have not been loaded (call load() first)"
          : handle == nullptr ? error
          : "missing symbols:";
    if (handle != nullptr) {
      for (const auto& name : missing) why += " " + name;
    }
  }
  Fail("ENOLIB", std::string(soname) + " is not usable: " + why);
}

Napi::Object Load(Napi::Env env, const std::string& dir) {
  std::vector<Status> libraries;
  {
    std::lock_guard<std::mutex> lock(mu);
    last_dir = dir;
    for (Library* lib : Registry()) {
      if (lib->handle != nullptr) continue;
      lib->attempted = true;
      lib->path = dir.empty() ? lib->soname : dir + "/" + lib->soname;
      // RTLD_GLOBAL so that a library's own dependencies among ours (libzfs, libsysevent on
      // libnvpair) resolve to the copy we loaded from the same directory.
      void* handle = dlopen(lib->path.c_str(), RTLD_NOW | RTLD_GLOBAL);
      if (handle == nullptr) {
        const char* e = dlerror();
        lib->error = e != nullptr ? e : "dlopen failed";
        continue;
      }
      lib->error.clear();
      lib->missing.clear();
      for (const SymbolRef& sym : lib->symbols) {
        dlerror();
        void* addr = dlsym(handle, sym.name);
        if (addr == nullptr) {
          lib->missing.emplace_back(sym.name);
        }
        *sym.slot = addr;
      }
      lib->handle = handle;
      if (lib->missing.empty()) lib->ready.store(true, std::memory_order_release);
    }
    libraries = Snapshot();
  }
  return ToJs(env, dir, libraries);
}

Napi::Object Report(Napi::Env env) {
  std::string dir;
  std::vector<Status> libraries;
  {
    std::lock_guard<std::mutex> lock(mu);
    dir = last_dir;
    libraries = Snapshot();
  }
  return ToJs(env, dir, libraries);
}

}  // namespace sled
