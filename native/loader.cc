#include "loader.h"

#include <dlfcn.h>

#include "errors.h"

namespace sled {

std::vector<Library*>& Registry() {
  // A function-local static, so libraries registering from other files' static initialisers
  // never see it unconstructed.
  static std::vector<Library*> registry;
  return registry;
}

Library::Library(const char* key_, const char* soname_, std::vector<SymbolRef> symbols_)
    : key(key_), soname(soname_), symbols(std::move(symbols_)) {
  Registry().push_back(this);
}

void Library::Require() const {
  if (Ready()) return;
  std::string why = !attempted ? "the illumos libraries have not been loaded (call load() first)"
                    : handle == nullptr ? error
                    : "missing symbols:";
  if (handle != nullptr) {
    for (const auto& name : missing) why += " " + name;
  }
  Fail("ENOLIB", std::string(soname) + " is not usable: " + why);
}

void LoadAll(const std::string& dir) {
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
  }
}

Napi::Object Report(Napi::Env env, const std::string& dir) {
  Napi::Object report = Napi::Object::New(env);
  report.Set("dir", dir.empty() ? env.Null() : Napi::String::New(env, dir));
  Napi::Object libs = Napi::Object::New(env);
  for (const Library* lib : Registry()) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("soname", lib->soname);
    entry.Set("loaded", Napi::Boolean::New(env, lib->Ready()));
    entry.Set("path", lib->attempted ? Napi::Value(Napi::String::New(env, lib->path)) : env.Null());
    entry.Set("error", lib->error.empty() ? env.Null() : Napi::Value(Napi::String::New(env, lib->error)));
    Napi::Array missing = Napi::Array::New(env, lib->missing.size());
    for (size_t i = 0; i < lib->missing.size(); ++i) missing.Set(i, lib->missing[i]);
    entry.Set("missing", missing);
    libs.Set(lib->key, entry);
  }
  report.Set("libraries", libs);
  return report;
}

}  // namespace sled
