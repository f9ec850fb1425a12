// Each library's file exports its functions onto the module object.
#pragma once

#include <napi.h>

namespace sled {

void InitZonecfg(Napi::Env env, Napi::Object exports);  // zonecfg.cc
void InitDladm(Napi::Env env, Napi::Object exports);    // dladm.cc
void InitZfs(Napi::Env env, Napi::Object exports);      // zfs.cc (with nvpair.cc)
void InitScf(Napi::Env env, Napi::Object exports);      // scf.cc
void InitEvents(Napi::Env env, Napi::Object exports);   // events.cc

}  // namespace sled
