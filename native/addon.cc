// Module init: the loader's two calls, then each library's functions. The bindings are thin:
// marshal arguments, call the library on its thread, map status codes to errors with `code`.
#include <napi.h>

#include <string>

#include "errors.h"
#include "loader.h"
#include "modules.h"

namespace {

// load(dir?: string): the capability report. Never throws for a missing library.
Napi::Value Load(const Napi::CallbackInfo& info) {
  std::string dir;
  if (info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull()) dir = sled::ArgString(info, 0, "dir");
  return sled::Load(info.Env(), dir);
}

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  return sled::Report(info.Env());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#if defined(__illumos__) || defined(__sun)
  exports.Set("platform", Napi::String::New(env, "illumos"));
#else
  exports.Set("platform", Napi::String::New(env, "other"));
#endif
  exports.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  exports.Set("load", Napi::Function::New(env, Load, "load"));
  exports.Set("capabilities", Napi::Function::New(env, Capabilities, "capabilities"));
  sled::InitZonecfg(env, exports);
  sled::InitDladm(env, exports);
  sled::InitZfs(env, exports);
  sled::InitScf(env, exports);
  sled::InitEvents(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(sled_agent_native, Init)
