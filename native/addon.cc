// The illumos bindings (libzonecfg, libdladm, libzfs, libscf, sysevent) land here in their own
// files; until then the addon only reports what it was built for, so the build path, the loader
// and the test that loads it are exercised on every install.
#include <napi.h>

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#if defined(__illumos__) || defined(__sun)
  exports.Set("platform", Napi::String::New(env, "illumos"));
#else
  exports.Set("platform", Napi::String::New(env, "other"));
#endif
  exports.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  return exports;
}

}  // namespace

NODE_API_MODULE(sled_agent_native, Init)
