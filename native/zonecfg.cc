// libzonecfg bindings: zoneConfigure, zoneConfig, zoneList, zoneState, zoneDelete (see modules.h and
// native/README.md). libzonecfg is not thread-safe (process-global libxml2 settings, a lock
// counter, putenv), so every call into it runs on the one SerialThread below; handles never
// leave that thread. Arguments are checked on the JS thread; strings are bounded against the
// struct fields they are copied into on the library thread, failing with Z_TOO_BIG.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "abi.h"
#include "async.h"
#include "errors.h"
#include "loader.h"
#include "modules.h"

namespace sled {
namespace {

ZonecfgApi api{};

#define ZC_SYM(name) {#name, reinterpret_cast<void**>(&api.name)}

Library lib("zonecfg", "libzonecfg.so.1",
            {
                ZC_SYM(zonecfg_init_handle),
                ZC_SYM(zonecfg_fini_handle),
                ZC_SYM(zonecfg_get_handle),
                ZC_SYM(zonecfg_get_template_handle),
                ZC_SYM(zonecfg_save),
                ZC_SYM(zonecfg_destroy),
                ZC_SYM(zonecfg_strerror),
                ZC_SYM(zonecfg_validate_zonename),
                ZC_SYM(zonecfg_get_name),
                ZC_SYM(zonecfg_get_zonepath),
                ZC_SYM(zonecfg_set_zonepath),
                ZC_SYM(zonecfg_get_brand),
                ZC_SYM(zonecfg_set_brand),
                ZC_SYM(zonecfg_get_autoboot),
                ZC_SYM(zonecfg_set_autoboot),
                ZC_SYM(zonecfg_get_iptype),
                ZC_SYM(zonecfg_set_iptype),
                ZC_SYM(zonecfg_add_nwif),
                ZC_SYM(zonecfg_add_dev),
                ZC_SYM(zonecfg_add_ds),
                ZC_SYM(zonecfg_add_filesystem),
                ZC_SYM(zonecfg_add_fs_option),
                ZC_SYM(zonecfg_free_fs_option_list),
                ZC_SYM(zonecfg_setnwifent),
                ZC_SYM(zonecfg_getnwifent),
                ZC_SYM(zonecfg_endnwifent),
                ZC_SYM(zonecfg_setdevent),
                ZC_SYM(zonecfg_getdevent),
                ZC_SYM(zonecfg_enddevent),
                ZC_SYM(zonecfg_setdsent),
                ZC_SYM(zonecfg_getdsent),
                ZC_SYM(zonecfg_enddsent),
                ZC_SYM(zonecfg_setfsent),
                ZC_SYM(zonecfg_getfsent),
                ZC_SYM(zonecfg_endfsent),
                ZC_SYM(setzoneent),
                ZC_SYM(getzoneent_private),
                ZC_SYM(endzoneent),
                ZC_SYM(zone_get_state),
                ZC_SYM(zone_state_str),
                ZC_SYM(zone_get_brand),
            });

#undef ZC_SYM

SerialThread thread("zonecfg");

// ---- errors ----------------------------------------------------------------------------------

const char* ZErrName(int err) {
  switch (err) {
    case Z_OK: return "Z_OK";
    case Z_EMPTY_DOCUMENT: return "Z_EMPTY_DOCUMENT";
    case Z_WRONG_DOC_TYPE: return "Z_WRONG_DOC_TYPE";
    case Z_BAD_PROPERTY: return "Z_BAD_PROPERTY";
    case Z_TEMP_FILE: return "Z_TEMP_FILE";
    case Z_SAVING_FILE: return "Z_SAVING_FILE";
    case Z_NO_ENTRY: return "Z_NO_ENTRY";
    case Z_BOGUS_ZONE_NAME: return "Z_BOGUS_ZONE_NAME";
    case Z_REQD_RESOURCE_MISSING: return "Z_REQD_RESOURCE_MISSING";
    case Z_REQD_PROPERTY_MISSING: return "Z_REQD_PROPERTY_MISSING";
    case Z_BAD_HANDLE: return "Z_BAD_HANDLE";
    case Z_NOMEM: return "Z_NOMEM";
    case Z_INVAL: return "Z_INVAL";
    case Z_ACCES: return "Z_ACCES";
    case Z_TOO_BIG: return "Z_TOO_BIG";
    case Z_MISC_FS: return "Z_MISC_FS";
    case Z_NO_ZONE: return "Z_NO_ZONE";
    case Z_NO_RESOURCE_TYPE: return "Z_NO_RESOURCE_TYPE";
    case Z_NO_RESOURCE_ID: return "Z_NO_RESOURCE_ID";
    case Z_NO_PROPERTY_TYPE: return "Z_NO_PROPERTY_TYPE";
    case Z_NO_PROPERTY_ID: return "Z_NO_PROPERTY_ID";
    case Z_BAD_ZONE_STATE: return "Z_BAD_ZONE_STATE";
    case Z_INVALID_DOCUMENT: return "Z_INVALID_DOCUMENT";
    case Z_NAME_IN_USE: return "Z_NAME_IN_USE";
    case Z_NO_SUCH_ID: return "Z_NO_SUCH_ID";
    case Z_UPDATING_INDEX: return "Z_UPDATING_INDEX";
    case Z_LOCKING_FILE: return "Z_LOCKING_FILE";
    case Z_UNLOCKING_FILE: return "Z_UNLOCKING_FILE";
    case Z_SYSTEM: return "Z_SYSTEM";
    case Z_INSUFFICIENT_SPEC: return "Z_INSUFFICIENT_SPEC";
    case Z_RESOLVED_PATH: return "Z_RESOLVED_PATH";
    case Z_IPV6_ADDR_PREFIX_LEN: return "Z_IPV6_ADDR_PREFIX_LEN";
    case Z_BOGUS_ADDRESS: return "Z_BOGUS_ADDRESS";
    case Z_PRIV_PROHIBITED: return "Z_PRIV_PROHIBITED";
    case Z_PRIV_REQUIRED: return "Z_PRIV_REQUIRED";
    case Z_PRIV_UNKNOWN: return "Z_PRIV_UNKNOWN";
    case Z_BRAND_ERROR: return "Z_BRAND_ERROR";
    case Z_INCOMPATIBLE: return "Z_INCOMPATIBLE";
    case Z_ALIAS_DISALLOW: return "Z_ALIAS_DISALLOW";
    case Z_CLEAR_DISALLOW: return "Z_CLEAR_DISALLOW";
    case Z_POOL: return "Z_POOL";
    case Z_POOLS_NOT_ACTIVE: return "Z_POOLS_NOT_ACTIVE";
    case Z_POOL_ENABLE: return "Z_POOL_ENABLE";
    case Z_NO_POOL: return "Z_NO_POOL";
    case Z_POOL_CREATE: return "Z_POOL_CREATE";
    case Z_POOL_BIND: return "Z_POOL_BIND";
    case Z_INVALID_PROPERTY: return "Z_INVALID_PROPERTY";
    default: return "Z_UNKNOWN";
  }
}

// The library's own text for `err` (call right after the failing call: Z_SYSTEM reads errno).
std::string ZMessage(int err) {
  const char* text = api.zonecfg_strerror(err);
  std::string message = text != nullptr ? text : "Unknown error";
  if (std::strcmp(ZErrName(err), "Z_UNKNOWN") == 0) message += " (libzonecfg error " + std::to_string(err) + ")";
  return message;
}

[[noreturn]] void ZFail(int err) { Fail(ZErrName(err), ZMessage(err)); }

void ZCheck(int err) {
  if (err != Z_OK) ZFail(err);
}

// Copies `value` into a fixed char[cap] field (NUL-terminated), or fails with Z_TOO_BIG naming it.
void CopyField(char* dst, size_t cap, const std::string& value, const std::string& field) {
  if (value.size() >= cap) {
    Fail("Z_TOO_BIG", ZMessage(Z_TOO_BIG) + ": " + field + " is " + std::to_string(value.size()) +
                          " bytes, the limit is " + std::to_string(cap - 1));
  }
  std::memcpy(dst, value.data(), value.size());
  dst[value.size()] = '\0';
}

void CheckLength(const std::string& value, size_t cap, const std::string& field) {
  if (value.size() >= cap) {
    Fail("Z_TOO_BIG", ZMessage(Z_TOO_BIG) + ": " + field + " is " + std::to_string(value.size()) +
                          " bytes, the limit is " + std::to_string(cap - 1));
  }
}

// A C string read out of a fixed-size field that the library filled (bounded even if it did not
// terminate it).
std::string FieldString(const char* field, size_t cap) { return std::string(field, strnlen(field, cap)); }

// ---- RAII over library resources (all used on the library thread only) ------------------------

struct HandleFini {
  void operator()(struct zone_dochandle* h) const { api.zonecfg_fini_handle(h); }
};
using HandlePtr = std::unique_ptr<struct zone_dochandle, HandleFini>;

HandlePtr NewHandle() {
  errno = 0;
  zone_dochandle_t h = api.zonecfg_init_handle();
  if (h == nullptr) ZFail(errno != 0 ? errno : Z_NOMEM);  // errno holds a Z_ value here
  return HandlePtr(h);
}

// Frees a zone_fstab's option list (allocated by zonecfg_add_fs_option / zonecfg_getfsent).
struct FsOptionsGuard {
  struct zone_fstab& tab;
  ~FsOptionsGuard() {
    if (tab.zone_fs_options != nullptr) api.zonecfg_free_fs_option_list(tab.zone_fs_options);
    tab.zone_fs_options = nullptr;
  }
};

// Ends an iteration (zonecfg_end*ent) on scope exit.
struct EndEnt {
  int (*end)(zone_dochandle_t);
  zone_dochandle_t h;
  ~EndEnt() { end(h); }
};

struct FreeZoneent {
  void operator()(struct zoneent* ze) const { std::free(ze); }  // malloc'd by libzonecfg
};

struct IndexCursor {
  FILE* f;
  ~IndexCursor() {
    if (f != nullptr) api.endzoneent(f);
  }
};

// A mutable copy for the prototypes that take `char *`.
std::vector<char> Mutable(const std::string& s) {
  std::vector<char> buf(s.begin(), s.end());
  buf.push_back('\0');
  return buf;
}

// ---- the zone description ---------------------------------------------------------------------

struct Net {
  std::string physical, allowedAddress, defrouter;
};
struct Fs {
  std::string special, dir, type;
  std::vector<std::string> options;
};
struct ZoneDesc {
  std::string name, brand, zonepath;
  bool autoboot = false;
  bool exclusive = true;
  std::vector<Net> nets;
  std::vector<std::string> devices;
  std::vector<std::string> datasets;
  std::vector<Fs> fs;
};

// Strings handed to the library are C strings: an embedded NUL would silently cut them.
std::string CheckedString(Napi::Env env, Napi::Value v, const std::string& field) {
  if (!v.IsString()) ThrowArgError(env, field + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) {
    Napi::TypeError error = Napi::TypeError::New(env, field + " must not contain NUL bytes");
    error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
    throw error;
  }
  return s;
}

std::string FieldOf(Napi::Env env, const Napi::Object& obj, const char* key, const std::string& path) {
  return CheckedString(env, obj.Get(key), path + "." + key);
}

std::string OptFieldOf(Napi::Env env, const Napi::Object& obj, const char* key, const std::string& path) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return "";
  return CheckedString(env, v, path + "." + key);
}

// An optional array of objects: calls each(obj, "desc.key[i]").
template <typename F>
void EachObject(Napi::Env env, const Napi::Object& desc, const char* key, F each) {
  Napi::Value v = desc.Get(key);
  if (v.IsUndefined() || v.IsNull()) return;
  std::string path = std::string("desc.") + key;
  if (!v.IsArray()) ThrowArgError(env, path + " must be an array");
  Napi::Array arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    std::string item = path + "[" + std::to_string(i) + "]";
    Napi::Value e = arr.Get(i);
    if (!e.IsObject() || e.IsArray()) ThrowArgError(env, item + " must be an object");
    each(e.As<Napi::Object>(), item);
  }
}

ZoneDesc ReadDesc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object desc = ArgObject(info, 0, "desc");
  ZoneDesc d;
  d.name = FieldOf(env, desc, "name", "desc");
  d.brand = FieldOf(env, desc, "brand", "desc");
  d.zonepath = FieldOf(env, desc, "zonepath", "desc");
  d.autoboot = OptBool(desc, "autoboot", false);
  Napi::Value ip = desc.Get("ipType");
  if (!ip.IsUndefined() && !ip.IsNull()) {
    std::string t = ip.IsString() ? ip.As<Napi::String>().Utf8Value() : "";
    if (t != "exclusive" && t != "shared") ThrowArgError(env, "desc.ipType must be 'exclusive' or 'shared'");
    d.exclusive = t == "exclusive";
  }
  EachObject(env, desc, "nets", [&](const Napi::Object& o, const std::string& p) {
    d.nets.push_back(Net{FieldOf(env, o, "physical", p), OptFieldOf(env, o, "allowedAddress", p),
                         OptFieldOf(env, o, "defrouter", p)});
  });
  EachObject(env, desc, "devices", [&](const Napi::Object& o, const std::string& p) {
    d.devices.push_back(FieldOf(env, o, "match", p));
  });
  EachObject(env, desc, "datasets", [&](const Napi::Object& o, const std::string& p) {
    d.datasets.push_back(FieldOf(env, o, "name", p));
  });
  EachObject(env, desc, "fs", [&](const Napi::Object& o, const std::string& p) {
    Fs fs{FieldOf(env, o, "special", p), FieldOf(env, o, "dir", p), FieldOf(env, o, "type", p), {}};
    Napi::Value opts = o.Get("options");
    if (!opts.IsUndefined() && !opts.IsNull()) {
      if (!opts.IsArray()) ThrowArgError(env, p + ".options must be an array of strings");
      Napi::Array arr = opts.As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        fs.options.push_back(CheckedString(env, arr.Get(i), p + ".options[" + std::to_string(i) + "]"));
      }
    }
    d.fs.push_back(std::move(fs));
  });
  return d;
}

Napi::Value DescToJs(Napi::Env env, const ZoneDesc& d) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", d.name);
  o.Set("brand", d.brand);
  o.Set("zonepath", d.zonepath);
  o.Set("autoboot", Napi::Boolean::New(env, d.autoboot));
  o.Set("ipType", d.exclusive ? "exclusive" : "shared");
  Napi::Array nets = Napi::Array::New(env, d.nets.size());
  for (size_t i = 0; i < d.nets.size(); ++i) {
    Napi::Object n = Napi::Object::New(env);
    n.Set("physical", d.nets[i].physical);
    if (!d.nets[i].allowedAddress.empty()) n.Set("allowedAddress", d.nets[i].allowedAddress);
    if (!d.nets[i].defrouter.empty()) n.Set("defrouter", d.nets[i].defrouter);
    nets.Set(i, n);
  }
  o.Set("nets", nets);
  Napi::Array devices = Napi::Array::New(env, d.devices.size());
  for (size_t i = 0; i < d.devices.size(); ++i) {
    Napi::Object dev = Napi::Object::New(env);
    dev.Set("match", d.devices[i]);
    devices.Set(i, dev);
  }
  o.Set("devices", devices);
  Napi::Array datasets = Napi::Array::New(env, d.datasets.size());
  for (size_t i = 0; i < d.datasets.size(); ++i) {
    Napi::Object ds = Napi::Object::New(env);
    ds.Set("name", d.datasets[i]);
    datasets.Set(i, ds);
  }
  o.Set("datasets", datasets);
  Napi::Array fss = Napi::Array::New(env, d.fs.size());
  for (size_t i = 0; i < d.fs.size(); ++i) {
    Napi::Object f = Napi::Object::New(env);
    f.Set("special", d.fs[i].special);
    f.Set("dir", d.fs[i].dir);
    f.Set("type", d.fs[i].type);
    Napi::Array opts = Napi::Array::New(env, d.fs[i].options.size());
    for (size_t j = 0; j < d.fs[i].options.size(); ++j) opts.Set(j, d.fs[i].options[j]);
    f.Set("options", opts);
    fss.Set(i, f);
  }
  o.Set("fs", fss);
  return o;
}

// ---- work (library thread) --------------------------------------------------------------------

// Every field is bounded before the first library call, so a too-long value never leaves a
// half-built handle behind (nothing is saved either way: the handle is only written by save).
void CheckDescLengths(const ZoneDesc& d) {
  CheckLength(d.brand, ZC_MAXNAMELEN, "brand");       // read back into a MAXNAMELEN buffer
  CheckLength(d.zonepath, ZC_MAXPATHLEN, "zonepath");  // read back into a MAXPATHLEN buffer
  for (size_t i = 0; i < d.nets.size(); ++i) {
    std::string p = "nets[" + std::to_string(i) + "]";
    CheckLength(d.nets[i].physical, ZC_LIFNAMSIZ, p + ".physical");
    CheckLength(d.nets[i].allowedAddress, ZC_INET6_ADDRSTRLEN, p + ".allowedAddress");
    CheckLength(d.nets[i].defrouter, ZC_INET6_ADDRSTRLEN, p + ".defrouter");
  }
  for (size_t i = 0; i < d.devices.size(); ++i) {
    CheckLength(d.devices[i], ZC_MAXPATHLEN, "devices[" + std::to_string(i) + "].match");
  }
  for (size_t i = 0; i < d.datasets.size(); ++i) {
    CheckLength(d.datasets[i], ZC_MAXNAMELEN, "datasets[" + std::to_string(i) + "].name");
  }
  for (size_t i = 0; i < d.fs.size(); ++i) {
    std::string p = "fs[" + std::to_string(i) + "]";
    CheckLength(d.fs[i].special, ZC_MAXPATHLEN, p + ".special");
    CheckLength(d.fs[i].dir, ZC_MAXPATHLEN, p + ".dir");
    CheckLength(d.fs[i].type, ZC_FSTYPSZ, p + ".type");
    for (size_t j = 0; j < d.fs[i].options.size(); ++j) {
      CheckLength(d.fs[i].options[j], ZC_MAX_MNTOPT_STR, p + ".options[" + std::to_string(j) + "]");
    }
  }
}

// The result of a call that resolves with nothing.
struct Done {};

Done ConfigureWork(const ZoneDesc& d) {
  lib.Require();
  CheckDescLengths(d);
  // zonecfg_get_template_handle + zonecfg_save would accept any name and overwrite an existing
  // zone; refuse both as zonecfg(8) `create` (without -F) does, with the library's own checks.
  ZCheck(api.zonecfg_validate_zonename(d.name.c_str()));
  std::vector<char> name = Mutable(d.name);
  zone_state_t state = 0;
  int err = api.zone_get_state(name.data(), &state);
  if (err == Z_OK) ZFail(Z_NAME_IN_USE);
  if (err != Z_NO_ZONE) ZFail(err);

  HandlePtr h = NewHandle();
  ZCheck(api.zonecfg_get_template_handle("SUNWblank", d.name.c_str(), h.get()));
  std::vector<char> zonepath = Mutable(d.zonepath), brand = Mutable(d.brand);
  ZCheck(api.zonecfg_set_zonepath(h.get(), zonepath.data()));
  ZCheck(api.zonecfg_set_brand(h.get(), brand.data()));
  ZCheck(api.zonecfg_set_autoboot(h.get(), d.autoboot ? B_TRUE : B_FALSE));
  ZCheck(api.zonecfg_set_iptype(h.get(), d.exclusive ? ZS_EXCLUSIVE : ZS_SHARED));

  for (size_t i = 0; i < d.nets.size(); ++i) {
    std::string p = "nets[" + std::to_string(i) + "]";
    struct zone_nwiftab tab;
    std::memset(&tab, 0, sizeof(tab));
    CopyField(tab.zone_nwif_physical, sizeof(tab.zone_nwif_physical), d.nets[i].physical, p + ".physical");
    CopyField(tab.zone_nwif_allowed_address, sizeof(tab.zone_nwif_allowed_address), d.nets[i].allowedAddress,
              p + ".allowedAddress");
    CopyField(tab.zone_nwif_defrouter, sizeof(tab.zone_nwif_defrouter), d.nets[i].defrouter, p + ".defrouter");
    ZCheck(api.zonecfg_add_nwif(h.get(), &tab));
  }
  for (size_t i = 0; i < d.devices.size(); ++i) {
    struct zone_devtab tab;
    std::memset(&tab, 0, sizeof(tab));
    CopyField(tab.zone_dev_match, sizeof(tab.zone_dev_match), d.devices[i], "devices[" + std::to_string(i) + "].match");
    ZCheck(api.zonecfg_add_dev(h.get(), &tab));
  }
  for (size_t i = 0; i < d.datasets.size(); ++i) {
    struct zone_dstab tab;
    std::memset(&tab, 0, sizeof(tab));
    CopyField(tab.zone_dataset_name, sizeof(tab.zone_dataset_name), d.datasets[i],
              "datasets[" + std::to_string(i) + "].name");
    ZCheck(api.zonecfg_add_ds(h.get(), &tab));
  }
  for (size_t i = 0; i < d.fs.size(); ++i) {
    std::string p = "fs[" + std::to_string(i) + "]";
    struct zone_fstab tab;
    std::memset(&tab, 0, sizeof(tab));
    FsOptionsGuard guard{tab};
    CopyField(tab.zone_fs_special, sizeof(tab.zone_fs_special), d.fs[i].special, p + ".special");
    CopyField(tab.zone_fs_dir, sizeof(tab.zone_fs_dir), d.fs[i].dir, p + ".dir");
    CopyField(tab.zone_fs_type, sizeof(tab.zone_fs_type), d.fs[i].type, p + ".type");
    for (const std::string& opt : d.fs[i].options) {
      std::vector<char> o = Mutable(opt);
      ZCheck(api.zonecfg_add_fs_option(&tab, o.data()));
    }
    ZCheck(api.zonecfg_add_filesystem(h.get(), &tab));
  }
  ZCheck(api.zonecfg_save(h.get()));
  return Done{};
}

ZoneDesc ConfigWork(const std::string& zonename) {
  lib.Require();
  HandlePtr h = NewHandle();
  ZCheck(api.zonecfg_get_handle(zonename.c_str(), h.get()));
  ZoneDesc d;
  {
    char buf[ZC_MAXPATHLEN];
    std::memset(buf, 0, sizeof(buf));
    ZCheck(api.zonecfg_get_name(h.get(), buf, ZC_ZONENAME_MAX));
    d.name = FieldString(buf, ZC_ZONENAME_MAX);
    std::memset(buf, 0, sizeof(buf));
    ZCheck(api.zonecfg_get_zonepath(h.get(), buf, sizeof(buf)));
    d.zonepath = FieldString(buf, sizeof(buf));
    std::memset(buf, 0, sizeof(buf));
    ZCheck(api.zonecfg_get_brand(h.get(), buf, ZC_MAXNAMELEN));
    d.brand = FieldString(buf, ZC_MAXNAMELEN);
  }
  boolean_t autoboot = B_FALSE;
  ZCheck(api.zonecfg_get_autoboot(h.get(), &autoboot));
  d.autoboot = autoboot == B_TRUE;
  zone_iptype_t iptype = ZS_SHARED;
  ZCheck(api.zonecfg_get_iptype(h.get(), &iptype));
  d.exclusive = iptype == ZS_EXCLUSIVE;

  {
    ZCheck(api.zonecfg_setnwifent(h.get()));
    EndEnt end{api.zonecfg_endnwifent, h.get()};
    for (;;) {
      struct zone_nwiftab tab;
      std::memset(&tab, 0, sizeof(tab));
      int err = api.zonecfg_getnwifent(h.get(), &tab);
      if (err == Z_NO_ENTRY) break;
      ZCheck(err);
      d.nets.push_back(Net{FieldString(tab.zone_nwif_physical, sizeof(tab.zone_nwif_physical)),
                           FieldString(tab.zone_nwif_allowed_address, sizeof(tab.zone_nwif_allowed_address)),
                           FieldString(tab.zone_nwif_defrouter, sizeof(tab.zone_nwif_defrouter))});
    }
  }
  {
    ZCheck(api.zonecfg_setdevent(h.get()));
    EndEnt end{api.zonecfg_enddevent, h.get()};
    for (;;) {
      struct zone_devtab tab;
      std::memset(&tab, 0, sizeof(tab));
      int err = api.zonecfg_getdevent(h.get(), &tab);
      if (err == Z_NO_ENTRY) break;
      ZCheck(err);
      d.devices.push_back(FieldString(tab.zone_dev_match, sizeof(tab.zone_dev_match)));
    }
  }
  {
    ZCheck(api.zonecfg_setdsent(h.get()));
    EndEnt end{api.zonecfg_enddsent, h.get()};
    for (;;) {
      struct zone_dstab tab;
      std::memset(&tab, 0, sizeof(tab));
      int err = api.zonecfg_getdsent(h.get(), &tab);
      if (err == Z_NO_ENTRY) break;
      ZCheck(err);
      d.datasets.push_back(FieldString(tab.zone_dataset_name, sizeof(tab.zone_dataset_name)));
    }
  }
  {
    ZCheck(api.zonecfg_setfsent(h.get()));
    EndEnt end{api.zonecfg_endfsent, h.get()};
    for (;;) {
      struct zone_fstab tab;
      std::memset(&tab, 0, sizeof(tab));
      FsOptionsGuard guard{tab};  // getfsent mallocs the option list
      int err = api.zonecfg_getfsent(h.get(), &tab);
      if (err == Z_NO_ENTRY) break;
      ZCheck(err);
      Fs fs{FieldString(tab.zone_fs_special, sizeof(tab.zone_fs_special)),
            FieldString(tab.zone_fs_dir, sizeof(tab.zone_fs_dir)),
            FieldString(tab.zone_fs_type, sizeof(tab.zone_fs_type)),
            {}};
      for (zone_fsopt_t* o = tab.zone_fs_options; o != nullptr; o = o->zone_fsopt_next) {
        fs.options.push_back(FieldString(o->zone_fsopt_opt, sizeof(o->zone_fsopt_opt)));
      }
      d.fs.push_back(std::move(fs));
    }
  }
  return d;
}

struct ZoneInfo {
  std::string name, state, path, uuid, brand;
};

std::string UuidString(const uuid_t u) {
  bool zero = true;
  for (int i = 0; i < 16; ++i) zero = zero && u[i] == 0;
  if (zero) return "";
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += hex[u[i] >> 4];
    s += hex[u[i] & 0xf];
  }
  return s;
}

std::vector<ZoneInfo> ListWork() {
  lib.Require();
  std::vector<ZoneInfo> zones;
  {
    errno = 0;
    IndexCursor cursor{api.setzoneent()};
    if (cursor.f == nullptr) {
      if (errno == ENOENT) return zones;  // no index at all: no zones
      ZFail(Z_SYSTEM);                    // zonecfg_strerror(Z_SYSTEM) is strerror(errno)
    }
    for (;;) {
      std::unique_ptr<struct zoneent, FreeZoneent> ze(api.getzoneent_private(cursor.f));
      if (!ze) break;
      ZoneInfo z;
      z.name = FieldString(ze->zone_name, sizeof(ze->zone_name));
      z.path = FieldString(ze->zone_path, sizeof(ze->zone_path));
      z.uuid = UuidString(ze->zone_uuid);
      zones.push_back(std::move(z));
    }
  }
  std::vector<ZoneInfo> out;
  for (ZoneInfo& z : zones) {
    std::vector<char> name = Mutable(z.name);
    zone_state_t state = 0;
    int err = api.zone_get_state(name.data(), &state);
    if (err == Z_NO_ZONE) continue;  // deleted since the index was read
    ZCheck(err);
    const char* s = api.zone_state_str(state);
    z.state = s != nullptr ? s : "unknown";
    char brand[ZC_MAXNAMELEN];
    std::memset(brand, 0, sizeof(brand));
    err = api.zone_get_brand(name.data(), brand, sizeof(brand));
    if (err == Z_NO_ZONE) continue;
    ZCheck(err);
    z.brand = FieldString(brand, sizeof(brand));
    out.push_back(std::move(z));
  }
  return out;
}

// One zone's state: zone_get_state finds that zone in the index (and asks the kernel about it),
// where ListWork also reads every zone's brand from its XML configuration, so a per-zone check
// costs one zone, not all of them. "" when there is no such zone.
std::string StateWork(const std::string& name) {
  lib.Require();
  std::vector<char> n = Mutable(name);
  zone_state_t state = 0;
  int err = api.zone_get_state(n.data(), &state);
  if (err == Z_NO_ZONE) return "";
  ZCheck(err);
  const char* s = api.zone_state_str(state);
  return s != nullptr ? s : "unknown";
}

// ---- exported functions (JS thread) -----------------------------------------------------------

Napi::Value ZoneConfigure(const Napi::CallbackInfo& info) {
  ZoneDesc desc = ReadDesc(info);
  return Schedule<Done>(
      info.Env(), thread, [desc]() { return ConfigureWork(desc); },
      [](Napi::Env env, Done&) -> Napi::Value { return env.Undefined(); });
}

Napi::Value ZoneConfig(const Napi::CallbackInfo& info) {
  if (info.Length() < 1) ThrowArgError(info.Env(), "name must be a string");
  std::string name = CheckedString(info.Env(), info[0], "name");
  return Schedule<ZoneDesc>(
      info.Env(), thread, [name]() { return ConfigWork(name); },
      [](Napi::Env env, ZoneDesc& d) { return DescToJs(env, d); });
}

Napi::Value ZoneList(const Napi::CallbackInfo& info) {
  return Schedule<std::vector<ZoneInfo>>(
      info.Env(), thread, []() { return ListWork(); },
      [](Napi::Env env, std::vector<ZoneInfo>& zones) -> Napi::Value {
        Napi::Array arr = Napi::Array::New(env, zones.size());
        for (size_t i = 0; i < zones.size(); ++i) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("name", zones[i].name);
          o.Set("state", zones[i].state);
          o.Set("path", zones[i].path);
          if (!zones[i].uuid.empty()) o.Set("uuid", zones[i].uuid);
          o.Set("brand", zones[i].brand);
          arr.Set(i, o);
        }
        return arr;
      });
}

Napi::Value ZoneState(const Napi::CallbackInfo& info) {
  if (info.Length() < 1) ThrowArgError(info.Env(), "name must be a string");
  std::string name = CheckedString(info.Env(), info[0], "name");
  return Schedule<std::string>(
      info.Env(), thread, [name]() { return StateWork(name); },
      [](Napi::Env env, std::string& state) -> Napi::Value {
        return state.empty() ? env.Null() : Napi::String::New(env, state);
      });
}

Napi::Value ZoneDelete(const Napi::CallbackInfo& info) {
  if (info.Length() < 1) ThrowArgError(info.Env(), "name must be a string");
  std::string name = CheckedString(info.Env(), info[0], "name");
  bool force = false;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsBoolean()) ThrowArgError(info.Env(), "force must be a boolean");
    force = info[1].As<Napi::Boolean>().Value();
  }
  return Schedule<Done>(
      info.Env(), thread,
      [name, force]() {
        lib.Require();
        ZCheck(api.zonecfg_destroy(name.c_str(), force ? B_TRUE : B_FALSE));
        return Done{};
      },
      [](Napi::Env env, Done&) -> Napi::Value { return env.Undefined(); });
}

}  // namespace

void InitZonecfg(Napi::Env env, Napi::Object exports) {
  thread.AttachTo(env);
  exports.Set("zoneConfigure", Napi::Function::New(env, ZoneConfigure, "zoneConfigure"));
  exports.Set("zoneConfig", Napi::Function::New(env, ZoneConfig, "zoneConfig"));
  exports.Set("zoneList", Napi::Function::New(env, ZoneList, "zoneList"));
  exports.Set("zoneState", Napi::Function::New(env, ZoneState, "zoneState"));
  exports.Set("zoneDelete", Napi::Function::New(env, ZoneDelete, "zoneDelete"));
  // Finish queued libzonecfg calls and join the thread when this environment goes away.
  napi_add_env_cleanup_hook(env, [](void*) { thread.Stop(); }, nullptr);
}

}  // namespace sled
