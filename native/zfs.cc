// libzfs bindings: datasets (create, mount, unmount, get, set, list children, destroy) and pools.
//
// One SerialThread owns the one libzfs_handle_t: libzfs_init() runs lazily on that thread at the
// first call, and libzfs_fini() on it from the environment cleanup hook, so the handle (its
// error state, its mnttab cache; not thread-safe, illumos-abi.md §4) is never shared. Every
// exported function returns a Promise; argument errors reject too (TypeError
// ERR_INVALID_ARG_TYPE). Library failures reject with code = the EZFS_ constant's name from
// libzfs_errno() and message = libzfs_error_description(). Handles are closed and nvlists freed
// by RAII on every path. Dataset naming policy is the TypeScript layer's (src/illumos/zfs.ts);
// here only what protects the C side: strings must not contain NUL (the library would silently
// act on a truncated name).
//
// Property names are resolved with zfs_name_to_prop() at run time, never compiled in: the
// zfs_prop_t numbering differs between illumos builds (see abi/zfs.h). Values are the library's
// "literal" (parsable) strings, like `zfs get -Hp`: sizes in bytes, "on"/"off", "-" never.
#include <napi.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "abi.h"
#include "async.h"
#include "errors.h"
#include "loader.h"
#include "modules.h"

namespace sled {

namespace {

LibzfsApi api{};

#define ZFS_SYM(name) {#name, reinterpret_cast<void**>(&api.name)}

Library lib("zfs", "libzfs.so.1",
            {
                ZFS_SYM(libzfs_init),
                ZFS_SYM(libzfs_fini),
                ZFS_SYM(libzfs_errno),
                ZFS_SYM(libzfs_error_description),
                ZFS_SYM(libzfs_error_action),
                ZFS_SYM(libzfs_print_on_error),
                ZFS_SYM(zfs_open),
                ZFS_SYM(zfs_close),
                ZFS_SYM(zfs_get_name),
                ZFS_SYM(zfs_get_type),
                ZFS_SYM(zfs_create),
                ZFS_SYM(zfs_destroy),
                ZFS_SYM(zfs_mount),
                ZFS_SYM(zfs_unmount),
                ZFS_SYM(zfs_is_mounted),
                ZFS_SYM(zfs_prop_get),
                ZFS_SYM(zfs_prop_set),
                ZFS_SYM(zfs_prop_set_list),
                ZFS_SYM(zfs_get_user_props),
                ZFS_SYM(zfs_name_to_prop),
                ZFS_SYM(zfs_prop_user),
                ZFS_SYM(zfs_iter_filesystems),
                ZFS_SYM(zpool_iter),
                ZFS_SYM(zpool_close),
                ZFS_SYM(zpool_get_name),
                ZFS_SYM(zpool_get_prop),
                ZFS_SYM(zpool_get_prop_int),
            });

#undef ZFS_SYM

SerialThread thread("zfs");

// Touched only on `thread`.
libzfs_handle_t* g_hdl = nullptr;

const char* const kErrorNames[] = {
    "EZFS_NOMEM", "EZFS_BADPROP", "EZFS_PROPREADONLY", "EZFS_PROPTYPE", "EZFS_PROPNONINHERIT",
    "EZFS_PROPSPACE", "EZFS_BADTYPE", "EZFS_BUSY", "EZFS_EXISTS", "EZFS_NOENT", "EZFS_BADSTREAM",
    "EZFS_DSREADONLY", "EZFS_VOLTOOBIG", "EZFS_INVALIDNAME", "EZFS_BADRESTORE", "EZFS_BADBACKUP",
    "EZFS_BADTARGET", "EZFS_NODEVICE", "EZFS_BADDEV", "EZFS_NOREPLICAS", "EZFS_RESILVERING",
    "EZFS_BADVERSION", "EZFS_POOLUNAVAIL", "EZFS_DEVOVERFLOW", "EZFS_BADPATH", "EZFS_CROSSTARGET",
    "EZFS_ZONED", "EZFS_MOUNTFAILED", "EZFS_UMOUNTFAILED", "EZFS_UNSHARENFSFAILED",
    "EZFS_SHARENFSFAILED", "EZFS_PERM", "EZFS_NOSPC", "EZFS_FAULT", "EZFS_IO", "EZFS_INTR",
    "EZFS_ISSPARE", "EZFS_INVALCONFIG", "EZFS_RECURSIVE", "EZFS_NOHISTORY", "EZFS_POOLPROPS",
    "EZFS_POOL_NOTSUP", "EZFS_POOL_INVALARG", "EZFS_NAMETOOLONG", "EZFS_OPENFAILED", "EZFS_NOCAP",
    "EZFS_LABELFAILED", "EZFS_BADWHO", "EZFS_BADPERM", "EZFS_BADPERMSET", "EZFS_NODELEGATION",
    "EZFS_UNSHARESMBFAILED", "EZFS_SHARESMBFAILED", "EZFS_BADCACHE", "EZFS_ISL2CACHE",
    "EZFS_VDEVNOTSUP", "EZFS_NOTSUP", "EZFS_ACTIVE_SPARE", "EZFS_UNPLAYED_LOGS", "EZFS_REFTAG_RELE",
    "EZFS_REFTAG_HOLD", "EZFS_TAGTOOLONG", "EZFS_PIPEFAILED", "EZFS_THREADCREATEFAILED",
    "EZFS_POSTSPLIT_ONLINE", "EZFS_SCRUBBING", "EZFS_NO_SCRUB", "EZFS_DIFF", "EZFS_DIFFDATA",
    "EZFS_POOLREADONLY", "EZFS_SCRUB_PAUSED", "EZFS_ACTIVE_POOL", "EZFS_CRYPTOFAILED",
    "EZFS_NO_PENDING", "EZFS_CHECKPOINT_EXISTS", "EZFS_DISCARDING_CHECKPOINT", "EZFS_NO_CHECKPOINT",
    "EZFS_DEVRM_IN_PROGRESS", "EZFS_VDEV_TOO_BIG", "EZFS_TOOMANY", "EZFS_INITIALIZING",
    "EZFS_NO_INITIALIZE", "EZFS_WRONG_PARENT", "EZFS_TRIMMING", "EZFS_NO_TRIM", "EZFS_TRIM_NOTSUP",
    "EZFS_NO_RESILVER_DEFER", "EZFS_IOC_NOTSUPPORTED", "EZFS_UNKNOWN",
};
static_assert(sizeof(kErrorNames) / sizeof(kErrorNames[0]) == EZFS_UNKNOWN - EZFS_NOMEM + 1,
              "one name per zfs_error_t value");

// --- the handle and its errors (all on `thread`) ---

libzfs_handle_t* Handle() {
  lib.Require();
  nvpair_library().Require();
  if (g_hdl == nullptr) {
    errno = 0;
    g_hdl = api.libzfs_init();
    if (g_hdl == nullptr) {
      // No handle means no libzfs_errno: report the errno libzfs_init left (it opens /dev/zfs
      // and /etc/mnttab), by its name.
      int e = errno != 0 ? errno : ENXIO;
      const char* name = e == ENOENT ? "ENOENT" : e == EACCES ? "EACCES" : e == EPERM ? "EPERM" : e == ENOMEM ? "ENOMEM" : "ENXIO";
      Fail(name, std::string("libzfs_init failed (cannot open /dev/zfs): ") + std::strerror(e));
    }
    api.libzfs_print_on_error(g_hdl, B_FALSE);
  }
  return g_hdl;
}

void CloseHandle() {
  if (g_hdl != nullptr && api.libzfs_fini != nullptr) api.libzfs_fini(g_hdl);
  g_hdl = nullptr;
}

// Throws the handle's current error.
[[noreturn]] void FailLibzfs(libzfs_handle_t* h) {
  const char* desc = api.libzfs_error_description(h);
  Fail(ZfsErrorName(api.libzfs_errno(h)), desc != nullptr ? desc : "unknown error");
}

struct ZfsClose {
  void operator()(zfs_handle_t* z) const { api.zfs_close(z); }
};
using ZfsPtr = std::unique_ptr<zfs_handle_t, ZfsClose>;

struct ZpoolClose {
  void operator()(zpool_handle_t* z) const { api.zpool_close(z); }
};
using ZpoolPtr = std::unique_ptr<zpool_handle_t, ZpoolClose>;

ZfsPtr OpenFilesystem(libzfs_handle_t* h, const std::string& name) {
  zfs_handle_t* z = api.zfs_open(h, name.c_str(), ZFS_TYPE_FILESYSTEM);
  if (z == nullptr) FailLibzfs(h);
  return ZfsPtr(z);
}

using Props = std::vector<std::pair<std::string, std::string>>;

// An NV_UNIQUE_NAME nvlist of string values, as zfs_create and zfs_prop_set_list expect.
NvlistPtr StringNvlist(const Props& props) {
  nvlist_t* raw = nullptr;
  int err = nvpair_api.nvlist_alloc(&raw, NV_UNIQUE_NAME, 0);
  if (err != 0) Fail("EZFS_NOMEM", std::string("nvlist_alloc failed: ") + std::strerror(err));
  NvlistPtr nvl(raw);
  for (const auto& [key, value] : props) {
    err = nvpair_api.nvlist_add_string(nvl.get(), key.c_str(), value.c_str());
    if (err != 0) Fail("EZFS_NOMEM", std::string("nvlist_add_string failed: ") + std::strerror(err));
  }
  return nvl;
}

// --- argument checks (JS thread) ---

std::string NoNul(Napi::Env env, std::string s, const std::string& what) {
  if (s.find('\0') != std::string::npos) ThrowArgError(env, what + " must not contain NUL characters");
  return s;
}

std::string NameArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return NoNul(info.Env(), ArgString(info, i, what), what);
}

// A Record<string, string>; keys in the object's own enumeration order.
Props PropsArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Env env = info.Env();
  Napi::Object obj = ArgObject(info, i, what);
  if (obj.IsArray()) ThrowArgError(env, std::string(what) + " must be an object of strings, not an array");
  Props out;
  Napi::Array keys = obj.GetPropertyNames();
  for (uint32_t k = 0; k < keys.Length(); ++k) {
    Napi::Value key = keys.Get(k);
    std::string name = key.ToString().Utf8Value();
    Napi::Value v = obj.Get(key);
    if (!v.IsString()) ThrowArgError(env, std::string(what) + "[\"" + name + "\"] must be a string");
    out.emplace_back(NoNul(env, name, std::string(what) + " keys"),
                     NoNul(env, v.As<Napi::String>().Utf8Value(), std::string(what) + "[\"" + name + "\"]"));
  }
  return out;
}

std::vector<std::string> StringListArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsArray()) ThrowArgError(env, std::string(what) + " must be an array of strings");
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr.Get(k);
    if (!v.IsString()) ThrowArgError(env, std::string(what) + "[" + std::to_string(k) + "] must be a string");
    out.push_back(NoNul(env, v.As<Napi::String>().Utf8Value(), std::string(what) + "[" + std::to_string(k) + "]"));
  }
  return out;
}

Napi::Value Undefined(Napi::Env env, bool&) { return env.Undefined(); }

// A uint64 as a JS number when exact (< 2^53), else as a decimal string.
Napi::Value Uint64ToJs(Napi::Env env, uint64_t v) {
  if (v < (uint64_t{1} << 53)) return Napi::Number::New(env, static_cast<double>(v));
  return Napi::String::New(env, std::to_string(v));
}

// --- the calls ---

// datasetCreate(name, props: Record<string,string>): a filesystem, like `zfs create -o k=v name`
// (not mounted; mount with datasetMount).
Napi::Value DatasetCreateJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    std::string name = NameArg(info, 0, "name");
    Props props = info.Length() > 1 && !info[1].IsUndefined() ? PropsArg(info, 1, "props") : Props{};
    return Schedule<bool>(
        info.Env(), thread,
        [name, props]() {
          libzfs_handle_t* h = Handle();
          NvlistPtr nvl = StringNvlist(props);
          if (api.zfs_create(h, name.c_str(), ZFS_TYPE_FILESYSTEM, nvl.get()) != 0) FailLibzfs(h);
          return true;
        },
        Undefined);
  });
}

struct MountState {
  bool mounted = false;
  std::string where;
};

MountState ReadMount(zfs_handle_t* z) {
  MountState st;
  char* where = nullptr;
  st.mounted = api.zfs_is_mounted(z, &where) == B_TRUE;
  if (where != nullptr) {
    st.where = where;
    std::free(where);  // malloc'd by libzfs (strdup of the mnttab entry)
  }
  return st;
}

Napi::Value MountToJs(Napi::Env env, MountState& st) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("mounted", Napi::Boolean::New(env, st.mounted));
  o.Set("mountpoint", st.mounted && !st.where.empty() ? Napi::Value(Napi::String::New(env, st.where)) : env.Null());
  return o;
}

// datasetMount(name) -> {mounted, mountpoint}. Like libzfs (not like the CLI), zfs_mount
// succeeds without mounting when the dataset is not mountable here: mountpoint none/legacy,
// canmount=off, or zoned=on seen from the global zone. `mounted` says what happened.
Napi::Value DatasetMountJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    std::string name = NameArg(info, 0, "name");
    return Schedule<MountState>(
        info.Env(), thread,
        [name]() {
          libzfs_handle_t* h = Handle();
          ZfsPtr z = OpenFilesystem(h, name);
          if (api.zfs_mount(z.get(), nullptr, 0) != 0) FailLibzfs(h);
          return ReadMount(z.get());
        },
        MountToJs);
  });
}

// datasetUnmount(name) -> {mounted, mountpoint}: unmounts if mounted.
Napi::Value DatasetUnmountJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    std::string name = NameArg(info, 0, "name");
    return Schedule<MountState>(
        info.Env(), thread,
        [name]() {
          libzfs_handle_t* h = Handle();
          ZfsPtr z = OpenFilesystem(h, name);
          if (api.zfs_is_mounted(z.get(), nullptr) == B_TRUE && api.zfs_unmount(z.get(), nullptr, 0) != 0) FailLibzfs(h);
          return ReadMount(z.get());
        },
        MountToJs);
  });
}

// One property's value and where it comes from.
struct PropValue {
  std::string value;
  std::string source;  // "local", "default", "inherited", "temporary", "received", "none"
  std::string from;    // for "inherited": the dataset it is inherited from
};
using PropValues = std::vector<std::pair<std::string, std::optional<PropValue>>>;

const char* SourceName(zprop_source_t src) {
  switch (src) {
    case ZPROP_SRC_DEFAULT: return "default";
    case ZPROP_SRC_TEMPORARY: return "temporary";
    case ZPROP_SRC_LOCAL: return "local";
    case ZPROP_SRC_INHERITED: return "inherited";
    case ZPROP_SRC_RECEIVED: return "received";
    default: return "none";
  }
}

// datasetGet(name, props: string[], options?: {sources?: boolean}) -> Record<string, string|null>
// (or, with sources, Record<string, {value, source, from}|null>). Native properties by
// zfs_prop_get (literal); user properties ("module:property") from zfs_get_user_props,
// inherited ones included, null when unset. A name that is neither rejects with EZFS_BADPROP
// "invalid property '<name>'", the text zprop_get_list gives `zfs get` for it.
Napi::Value DatasetGetJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    std::string name = NameArg(info, 0, "name");
    std::vector<std::string> props = StringListArg(info, 1, "props");
    bool sources = false;
    if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
      sources = OptBool(ArgObject(info, 2, "options"), "sources", false);
    }
    return Schedule<PropValues>(
        info.Env(), thread,
        [name, props]() {
          libzfs_handle_t* h = Handle();
          ZfsPtr z = OpenFilesystem(h, name);
          PropValues out;
          nvlist_t* user = nullptr;  // owned by the handle
          bool user_loaded = false;
          for (const std::string& prop : props) {
            zfs_prop_t p = api.zfs_name_to_prop(prop.c_str());
            if (p != ZPROP_INVAL) {
              char buf[ZFS_MAXPROPLEN];
              char stat[ZFS_MAX_DATASET_NAME_LEN];
              zprop_source_t src = ZPROP_SRC_NONE;
              buf[0] = '\0';
              stat[0] = '\0';
              // -1 means "not applicable to this dataset" (no error is set): null.
              if (api.zfs_prop_get(z.get(), p, buf, sizeof(buf), &src, stat, sizeof(stat), B_TRUE) == 0) {
                buf[sizeof(buf) - 1] = '\0';
                stat[sizeof(stat) - 1] = '\0';
                out.emplace_back(prop, PropValue{buf, SourceName(src), src == ZPROP_SRC_INHERITED ? stat : ""});
              } else {
                out.emplace_back(prop, std::nullopt);
              }
              continue;
            }
            if (api.zfs_prop_user(prop.c_str()) != B_TRUE) Fail("EZFS_BADPROP", "invalid property '" + prop + "'");
            if (!user_loaded) {
              user = api.zfs_get_user_props(z.get());
              user_loaded = true;
            }
            // Each entry is an nvlist {value: string, source: string}; the source is the
            // dataset the value is set on (this one when local), or "$recvd".
            nvlist_t* entry = nullptr;
            char* value = nullptr;
            char* from = nullptr;
            if (user != nullptr && nvpair_api.nvlist_lookup_nvlist(user, prop.c_str(), &entry) == 0 &&
                nvpair_api.nvlist_lookup_string(entry, ZPROP_VALUE, &value) == 0 && value != nullptr) {
              PropValue v{value, "local", ""};
              if (nvpair_api.nvlist_lookup_string(entry, ZPROP_SOURCE, &from) == 0 && from != nullptr) {
                if (std::strcmp(from, "$recvd") == 0) {
                  v.source = "received";
                } else if (name != from) {
                  v.source = "inherited";
                  v.from = from;
                }
              }
              out.emplace_back(prop, std::move(v));
            } else {
              out.emplace_back(prop, std::nullopt);
            }
          }
          return out;
        },
        [sources](Napi::Env env, PropValues& values) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          for (const auto& [key, value] : values) {
            if (!value) {
              o.Set(key, env.Null());
            } else if (!sources) {
              o.Set(key, value->value);
            } else {
              Napi::Object v = Napi::Object::New(env);
              v.Set("value", value->value);
              v.Set("source", value->source);
              v.Set("from", value->from.empty() ? env.Null() : Napi::Value(Napi::String::New(env, value->from)));
              o.Set(key, v);
            }
          }
          return o;
        });
  });
}

// datasetSet(name, props: Record<string,string>): all in one zfs_prop_set_list (one ioctl, so
// either every property is set or none is).
Napi::Value DatasetSetJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    std::string name = NameArg(info, 0, "name");
    Props props = PropsArg(info, 1, "props");
    return Schedule<bool>(
        info.Env(), thread,
        [name, props]() {
          libzfs_handle_t* h = Handle();
          ZfsPtr z = OpenFilesystem(h, name);
          if (props.empty()) return true;
          NvlistPtr nvl = StringNvlist(props);
          if (api.zfs_prop_set_list(z.get(), nvl.get()) != 0) FailLibzfs(h);
          return true;
        },
        Undefined);
  });
}

// datasetList(parent) -> names of its direct child filesystems (sorted).
Napi::Value DatasetListJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    std::string parent = NameArg(info, 0, "parent");
    return Schedule<std::vector<std::string>>(
        info.Env(), thread,
        [parent]() {
          libzfs_handle_t* h = Handle();
          ZfsPtr z = OpenFilesystem(h, parent);
          std::vector<std::string> names;
          // The callback owns each child handle and must close it; returning non-zero would stop
          // the walk and become zfs_iter_filesystems' result.
          int rc = api.zfs_iter_filesystems(
              z.get(),
              [](zfs_handle_t* child, void* arg) -> int {
                ZfsPtr owned(child);
                const char* n = api.zfs_get_name(child);
                if (n != nullptr) static_cast<std::vector<std::string>*>(arg)->emplace_back(n);
                return 0;
              },
              &names);
          if (rc != 0) FailLibzfs(h);
          std::sort(names.begin(), names.end());
          return names;
        },
        [](Napi::Env env, std::vector<std::string>& names) -> Napi::Value {
          Napi::Array arr = Napi::Array::New(env, names.size());
          for (size_t i = 0; i < names.size(); ++i) arr.Set(static_cast<uint32_t>(i), names[i]);
          return arr;
        });
  });
}

// datasetDestroy(name): unmounts it if mounted, then zfs_destroy (not recursive: a dataset with
// children fails with the kernel's EEXIST, i.e. EZFS_EXISTS "dataset already exists").
Napi::Value DatasetDestroyJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    std::string name = NameArg(info, 0, "name");
    return Schedule<bool>(
        info.Env(), thread,
        [name]() {
          libzfs_handle_t* h = Handle();
          ZfsPtr z = OpenFilesystem(h, name);
          if (api.zfs_is_mounted(z.get(), nullptr) == B_TRUE && api.zfs_unmount(z.get(), nullptr, 0) != 0) FailLibzfs(h);
          if (api.zfs_destroy(z.get(), B_FALSE) != 0) FailLibzfs(h);
          return true;
        },
        Undefined);
  });
}

struct PoolInfo {
  std::string name;
  uint64_t size = 0;
  uint64_t allocated = 0;
  uint64_t free = 0;
  std::string health;
};

// poolList() -> [{name, size, allocated, free, health}]; sizes in bytes (numbers below 2^53,
// decimal strings above).
Napi::Value PoolListJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    return Schedule<std::vector<PoolInfo>>(
        info.Env(), thread,
        []() {
          libzfs_handle_t* h = Handle();
          std::vector<PoolInfo> pools;
          int rc = api.zpool_iter(
              h,
              [](zpool_handle_t* zp, void* arg) -> int {
                ZpoolPtr owned(zp);
                PoolInfo p;
                const char* n = api.zpool_get_name(zp);
                p.name = n != nullptr ? n : "";
                p.size = api.zpool_get_prop_int(zp, ZPOOL_PROP_SIZE, nullptr);
                p.allocated = api.zpool_get_prop_int(zp, ZPOOL_PROP_ALLOCATED, nullptr);
                p.free = api.zpool_get_prop_int(zp, ZPOOL_PROP_FREE, nullptr);
                char buf[ZPOOL_MAXPROPLEN];
                buf[0] = '\0';
                if (api.zpool_get_prop(zp, ZPOOL_PROP_HEALTH, buf, sizeof(buf), nullptr, B_TRUE) == 0) {
                  buf[sizeof(buf) - 1] = '\0';
                  p.health = buf;
                } else {
                  p.health = "UNKNOWN";
                }
                static_cast<std::vector<PoolInfo>*>(arg)->push_back(std::move(p));
                return 0;
              },
              &pools);
          if (rc != 0) FailLibzfs(h);
          std::sort(pools.begin(), pools.end(), [](const PoolInfo& a, const PoolInfo& b) { return a.name < b.name; });
          return pools;
        },
        [](Napi::Env env, std::vector<PoolInfo>& pools) -> Napi::Value {
          Napi::Array arr = Napi::Array::New(env, pools.size());
          for (size_t i = 0; i < pools.size(); ++i) {
            Napi::Object o = Napi::Object::New(env);
            o.Set("name", pools[i].name);
            o.Set("size", Uint64ToJs(env, pools[i].size));
            o.Set("allocated", Uint64ToJs(env, pools[i].allocated));
            o.Set("free", Uint64ToJs(env, pools[i].free));
            o.Set("health", pools[i].health);
            arr.Set(static_cast<uint32_t>(i), o);
          }
          return arr;
        });
  });
}

}  // namespace

const char* ZfsErrorName(int code) {
  if (code == EZFS_SUCCESS) return "EZFS_SUCCESS";
  if (code >= EZFS_NOMEM && code <= EZFS_UNKNOWN) return kErrorNames[code - EZFS_NOMEM];
  // A number this build does not know (a newer libzfs): say so rather than guess a name.
  static thread_local std::string unknown;
  unknown = "EZFS_" + std::to_string(code);
  return unknown.c_str();
}

void InitZfs(Napi::Env env, Napi::Object exports) {
  thread.AttachTo(env, CloseHandle);
  exports.Set("datasetCreate", Napi::Function::New(env, DatasetCreateJs, "datasetCreate"));
  exports.Set("datasetMount", Napi::Function::New(env, DatasetMountJs, "datasetMount"));
  exports.Set("datasetUnmount", Napi::Function::New(env, DatasetUnmountJs, "datasetUnmount"));
  exports.Set("datasetGet", Napi::Function::New(env, DatasetGetJs, "datasetGet"));
  exports.Set("datasetSet", Napi::Function::New(env, DatasetSetJs, "datasetSet"));
  exports.Set("datasetList", Napi::Function::New(env, DatasetListJs, "datasetList"));
  exports.Set("datasetDestroy", Napi::Function::New(env, DatasetDestroyJs, "datasetDestroy"));
  exports.Set("poolList", Napi::Function::New(env, PoolListJs, "poolList"));
}

}  // namespace sled
