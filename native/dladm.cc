// libdladm bindings: temporary VNICs (create, delete, list) and link look-up.
//
// One SerialThread owns the one dladm_handle_t: it is opened lazily on that thread by the first
// call and closed on it by the environment cleanup hook, so the handle (two fds, the door fd
// opened lazily; not safe for concurrent use, illumos-abi.md §3) is never used from two threads.
// Every exported function returns a Promise; argument errors reject too (TypeError
// ERR_INVALID_ARG_TYPE / ERR_INVALID_ARG_VALUE, RangeError ERR_OUT_OF_RANGE), never throw.
// Library failures reject with code = the dladm_status_t constant's name and message =
// dladm_status2str's text. Naming policy (prefixes, "ends in a digit") is the TypeScript layer's;
// here only what protects the C side: a name must be 1..31 bytes without NUL (the library copies
// names into MAXLINKNAMELEN buffers with strlcpy, so a longer name would silently become a
// different, truncated name; an empty one makes dladm_valid_linkname read before its argument).
#include <napi.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "abi.h"
#include "async.h"
#include "errors.h"
#include "loader.h"
#include "modules.h"

namespace sled {

DladmApi dladm_api{};

namespace {

#define DLADM_SYM(name) {#name, reinterpret_cast<void**>(&dladm_api.name)}

Library lib("dladm", "libdladm.so.1",
            {
                DLADM_SYM(dladm_open),
                DLADM_SYM(dladm_close),
                DLADM_SYM(dladm_status2str),
                DLADM_SYM(dladm_valid_linkname),
                DLADM_SYM(dladm_name2info),
                DLADM_SYM(dladm_datalink_id2info),
                DLADM_SYM(dladm_walk_datalink_id),
                {"dladm_vnic_create", &dladm_api.dladm_vnic_create},
                DLADM_SYM(dladm_vnic_delete),
                DLADM_SYM(dladm_vnic_info),
                DLADM_SYM(dladm_set_linkprop),
                DLADM_SYM(dladm_get_linkprop),
            });

#undef DLADM_SYM

SerialThread thread("dladm");

// Touched only on `thread`.
dladm_handle_t g_handle = nullptr;
int g_vnic_create_args = 0;  // 0: not probed yet; 14 or 15; -1: an unsupported form

const char* const kStatusNames[] = {
    "DLADM_STATUS_OK",
    "DLADM_STATUS_BADARG",
    "DLADM_STATUS_FAILED",
    "DLADM_STATUS_TOOSMALL",
    "DLADM_STATUS_NOTSUP",
    "DLADM_STATUS_NOTFOUND",
    "DLADM_STATUS_BADVAL",
    "DLADM_STATUS_NOMEM",
    "DLADM_STATUS_EXIST",
    "DLADM_STATUS_LINKINVAL",
    "DLADM_STATUS_PROPRDONLY",
    "DLADM_STATUS_BADVALCNT",
    "DLADM_STATUS_DBNOTFOUND",
    "DLADM_STATUS_DENIED",
    "DLADM_STATUS_IOERR",
    "DLADM_STATUS_TEMPONLY",
    "DLADM_STATUS_TIMEDOUT",
    "DLADM_STATUS_ISCONN",
    "DLADM_STATUS_NOTCONN",
    "DLADM_STATUS_REPOSITORYINVAL",
    "DLADM_STATUS_MACADDRINVAL",
    "DLADM_STATUS_KEYINVAL",
    "DLADM_STATUS_INVALIDMACADDRLEN",
    "DLADM_STATUS_INVALIDMACADDRTYPE",
    "DLADM_STATUS_LINKBUSY",
    "DLADM_STATUS_VIDINVAL",
    "DLADM_STATUS_NONOTIF",
    "DLADM_STATUS_TRYAGAIN",
    "DLADM_STATUS_IPTUNTYPE",
    "DLADM_STATUS_IPTUNTYPEREQD",
    "DLADM_STATUS_BADIPTUNLADDR",
    "DLADM_STATUS_BADIPTUNRADDR",
    "DLADM_STATUS_ADDRINUSE",
    "DLADM_STATUS_BADTIMEVAL",
    "DLADM_STATUS_INVALIDMACADDR",
    "DLADM_STATUS_INVALIDMACADDRNIC",
    "DLADM_STATUS_INVALIDMACADDRINUSE",
    "DLADM_STATUS_MACFACTORYSLOTINVALID",
    "DLADM_STATUS_MACFACTORYSLOTUSED",
    "DLADM_STATUS_MACFACTORYSLOTALLUSED",
    "DLADM_STATUS_MACFACTORYNOTSUP",
    "DLADM_STATUS_INVALIDMACPREFIX",
    "DLADM_STATUS_INVALIDMACPREFIXLEN",
    "DLADM_STATUS_BADCPUID",
    "DLADM_STATUS_CPUERR",
    "DLADM_STATUS_CPUNOTONLINE",
    "DLADM_STATUS_BADRANGE",
    "DLADM_STATUS_TOOMANYELEMENTS",
    "DLADM_STATUS_DB_NOTFOUND",
    "DLADM_STATUS_DB_PARSE_ERR",
    "DLADM_STATUS_PROP_PARSE_ERR",
    "DLADM_STATUS_ATTR_PARSE_ERR",
    "DLADM_STATUS_FLOW_DB_ERR",
    "DLADM_STATUS_FLOW_DB_OPEN_ERR",
    "DLADM_STATUS_FLOW_DB_PARSE_ERR",
    "DLADM_STATUS_FLOWPROP_DB_PARSE_ERR",
    "DLADM_STATUS_FLOW_ADD_ERR",
    "DLADM_STATUS_FLOW_WALK_ERR",
    "DLADM_STATUS_FLOW_IDENTICAL",
    "DLADM_STATUS_FLOW_INCOMPATIBLE",
    "DLADM_STATUS_FLOW_EXISTS",
    "DLADM_STATUS_PERSIST_FLOW_EXISTS",
    "DLADM_STATUS_INVALID_IP",
    "DLADM_STATUS_INVALID_PREFIXLEN",
    "DLADM_STATUS_INVALID_PROTOCOL",
    "DLADM_STATUS_INVALID_PORT",
    "DLADM_STATUS_INVALID_DSF",
    "DLADM_STATUS_INVALID_DSFMASK",
    "DLADM_STATUS_INVALID_MACMARGIN",
    "DLADM_STATUS_NOTDEFINED",
    "DLADM_STATUS_BADPROP",
    "DLADM_STATUS_MINMAXBW",
    "DLADM_STATUS_NO_HWRINGS",
    "DLADM_STATUS_PERMONLY",
    "DLADM_STATUS_OPTMISSING",
    "DLADM_STATUS_POOLCPU",
    "DLADM_STATUS_INVALID_PORT_INSTANCE",
    "DLADM_STATUS_PORT_IS_DOWN",
    "DLADM_STATUS_PKEY_NOT_PRESENT",
    "DLADM_STATUS_PARTITION_EXISTS",
    "DLADM_STATUS_INVALID_PKEY",
    "DLADM_STATUS_NO_IB_HW_RESOURCE",
    "DLADM_STATUS_INVALID_PKEY_TBL_SIZE",
    "DLADM_STATUS_PORT_NOPROTO",
    "DLADM_STATUS_INVALID_MTU",
    "DLADM_STATUS_PERSIST_ON_TEMP",
    "DLADM_STATUS_BAD_ENCAP",
    "DLADM_STATUS_ADDRNOTAVAIL",
};
static_assert(sizeof(kStatusNames) / sizeof(kStatusNames[0]) == DLADM_STATUS_ADDRNOTAVAIL + 1,
              "one name per dladm_status_t value");

std::string StatusName(dladm_status_t st) {
  auto i = static_cast<int>(st);
  if (i >= 0 && i <= static_cast<int>(DLADM_STATUS_ADDRNOTAVAIL)) return kStatusNames[i];
  return "DLADM_STATUS_UNKNOWN_" + std::to_string(i);
}

// On `thread` (dladm_status2str is pure, but keep every library call in one place).
std::string StatusText(dladm_status_t st) {
  char buf[DLADM_STRSIZE];
  std::memset(buf, 0, sizeof(buf));
  const char* s = dladm_api.dladm_status2str(st, buf);
  buf[sizeof(buf) - 1] = '\0';
  return s != nullptr ? std::string(buf) : std::string("<unknown error>");
}

[[noreturn]] void FailStatus(dladm_status_t st, const std::string& context = "") {
  std::string text = StatusText(st);
  Fail(StatusName(st), context.empty() ? text : text + " (" + context + ")");
}

const char* ClassName(uint32_t c) {
  switch (c) {
    case DATALINK_CLASS_PHYS: return "phys";
    case DATALINK_CLASS_VLAN: return "vlan";
    case DATALINK_CLASS_AGGR: return "aggr";
    case DATALINK_CLASS_VNIC: return "vnic";
    case DATALINK_CLASS_ETHERSTUB: return "etherstub";
    case DATALINK_CLASS_SIMNET: return "simnet";
    case DATALINK_CLASS_BRIDGE: return "bridge";
    case DATALINK_CLASS_IPTUN: return "iptun";
    case DATALINK_CLASS_PART: return "part";
    case DATALINK_CLASS_OVERLAY: return "overlay";
    case DATALINK_CLASS_MISC: return "misc";
    default: return "unknown";
  }
}

std::string FormatMac(const uchar_t* mac, uint_t len) {
  std::string out;
  char part[4];
  for (uint_t i = 0; i < len && i < MAXMACADDRLEN; ++i) {
    std::snprintf(part, sizeof(part), i == 0 ? "%02x" : ":%02x", mac[i]);
    out += part;
  }
  return out;
}

// ---- on `thread` -------------------------------------------------------------------------

dladm_handle_t Handle() {
  lib.Require();
  if (g_handle == nullptr) {
    dladm_handle_t h = nullptr;
    dladm_status_t st = dladm_api.dladm_open(&h);
    if (st != DLADM_STATUS_OK) FailStatus(st, "dladm_open");
    if (h == nullptr) Fail("DLADM_STATUS_FAILED", "dladm_open returned no handle");
    g_handle = h;
  }
  return g_handle;
}

void CloseHandle() {
  if (g_handle != nullptr && dladm_api.dladm_close != nullptr) dladm_api.dladm_close(g_handle);
  g_handle = nullptr;
  g_vnic_create_args = 0;
}

// 8-aligned, zeroed attr buffer with a canary after it: a library whose dladm_vnic_attr_t is
// larger than we allow for fails loudly (EABI) instead of silently.
struct AttrBuffer {
  static constexpr size_t kCanary = 256;
  static constexpr unsigned char kCanaryByte = 0xA5;
  std::unique_ptr<uint64_t[]> words;
  AttrBuffer() : words(new uint64_t[(DLADM_VNIC_ATTR_BUFSIZE + kCanary) / 8]) {
    std::memset(words.get(), 0, DLADM_VNIC_ATTR_BUFSIZE);
    std::memset(bytes() + DLADM_VNIC_ATTR_BUFSIZE, kCanaryByte, kCanary);
  }
  unsigned char* bytes() { return reinterpret_cast<unsigned char*>(words.get()); }
  void* attr() { return words.get(); }
  dladm_vnic_attr_head_t head() {
    dladm_vnic_attr_head_t h;
    std::memcpy(&h, bytes(), sizeof(h));
    return h;
  }
  void CheckCanary() {
    const unsigned char* c = bytes() + DLADM_VNIC_ATTR_BUFSIZE;
    for (size_t i = 0; i < kCanary; ++i) {
      if (c[i] != kCanaryByte) {
        Fail("EABI", "dladm_vnic_info wrote past " + std::to_string(DLADM_VNIC_ATTR_BUFSIZE) +
                         " bytes: dladm_vnic_attr_t is larger than this build allows for");
      }
    }
  }
};

// Called with 15 arguments whatever the library's form; the third is a pointer so that the
// 6-argument fork sees our zeroed buffer as its attr (see abi/dladm.h).
typedef dladm_status_t (*vnic_create_probe_fn)(dladm_handle_t, const char*, void*, int, uchar_t*,
                                               uint_t, int*, uint_t, uint16_t, vrid_t, int,
                                               datalink_id_t*, dladm_arg_list_t*, dladm_errlist_t*,
                                               uint32_t);

int ProbeVnicCreateAbi(dladm_handle_t h) {
  if (g_vnic_create_args != 0) return g_vnic_create_args;
  AttrBuffer probe;
  const int bogus_type = 99;  // not a vnic_mac_addr_type_t
  std::memcpy(probe.bytes() + offsetof(dladm_vnic_attr_head_t, va_mac_addr_type), &bogus_type,
              sizeof(bogus_type));
  auto fn = reinterpret_cast<vnic_create_probe_fn>(dladm_api.dladm_vnic_create);
  dladm_status_t st = fn(h, "dladmprobe0", probe.attr(), VNIC_MAC_ADDR_TYPE_FIXED, nullptr,
                         /*mac_len, the fork's flags*/ 0, nullptr, 0, /*vid*/ 0, VRRP_VRID_NONE,
                         DLADM_AF_UNSPEC, nullptr, nullptr, /*errs, the 14-form's flags*/ nullptr,
                         DLADM_OPT_ACTIVE | DLADM_OPT_VLAN);
  probe.CheckCanary();
  switch (st) {
    case DLADM_STATUS_VIDINVAL: g_vnic_create_args = 15; break;
    case DLADM_STATUS_NOTSUP: g_vnic_create_args = 14; break;
    default: g_vnic_create_args = -1; break;  // the 6-argument fork, or something new
  }
  return g_vnic_create_args;
}

dladm_status_t VnicCreate(dladm_handle_t h, const char* name, datalink_id_t over,
                          vnic_mac_addr_type_t type, uchar_t* mac, uint_t mac_len, int* slot,
                          uint16_t vid, datalink_id_t* id_out, uint32_t flags) {
  switch (ProbeVnicCreateAbi(h)) {
    case 15:
      return reinterpret_cast<dladm_vnic_create15_fn>(dladm_api.dladm_vnic_create)(
          h, name, over, type, mac, mac_len, slot, 0, vid, VRRP_VRID_NONE, DLADM_AF_UNSPEC, id_out,
          nullptr, nullptr, flags);
    case 14:
      return reinterpret_cast<dladm_vnic_create14_fn>(dladm_api.dladm_vnic_create)(
          h, name, over, type, mac, mac_len, slot, 0, vid, VRRP_VRID_NONE, DLADM_AF_UNSPEC, id_out,
          nullptr, flags);
    default:
      Fail("EABI",
           "libdladm's dladm_vnic_create is neither the 14- nor the 15-argument illumos form "
           "(e.g. the dladm_vnic_attr_t-based rewrite); refusing to call it");
  }
}

struct LinkInfo {
  datalink_id_t id = 0;
  uint32_t flags = 0;
  uint32_t cls = 0;
  uint32_t media = 0;
};

LinkInfo LookupLink(dladm_handle_t h, const std::string& name) {
  LinkInfo info;
  datalink_class_t cls{};
  dladm_status_t st = dladm_api.dladm_name2info(h, name.c_str(), &info.id, &info.flags, &cls, &info.media);
  if (st != DLADM_STATUS_OK) FailStatus(st, "link \"" + name + "\"");
  info.cls = static_cast<uint32_t>(cls);
  return info;
}

// The name of a link id, or "" if it is gone (NOTFOUND); other failures throw.
std::string LinkName(dladm_handle_t h, datalink_id_t id) {
  char name[MAXLINKNAMELEN];
  std::memset(name, 0, sizeof(name));
  dladm_status_t st = dladm_api.dladm_datalink_id2info(h, id, nullptr, nullptr, nullptr, name, sizeof(name));
  if (st == DLADM_STATUS_NOTFOUND) return "";
  if (st != DLADM_STATUS_OK) FailStatus(st, "link id " + std::to_string(id));
  name[sizeof(name) - 1] = '\0';
  return name;
}

// The current MTU, or -1 if the library cannot say.
double LinkMtu(dladm_handle_t h, datalink_id_t id) {
  char value[DLADM_PROP_VAL_MAX];
  std::memset(value, 0, sizeof(value));
  char* vals[1] = {value};
  uint_t count = 1;
  dladm_status_t st = dladm_api.dladm_get_linkprop(h, id, DLADM_PROP_VAL_CURRENT, "mtu", vals, &count);
  if (st != DLADM_STATUS_OK || count < 1) return -1;
  value[sizeof(value) - 1] = '\0';
  char* end = nullptr;
  unsigned long v = std::strtoul(value, &end, 10);
  if (end == value || *end != '\0') return -1;
  return static_cast<double>(v);
}

struct VnicInfo {
  std::string name;
  datalink_id_t link_id = 0;
  std::string over;
  datalink_id_t over_id = 0;
  std::string mac;
  uint16_t vid = 0;
  double mtu = -1;
};

// dladm_vnic_info(ACTIVE) into a fresh DLADM_VNIC_ATTR_BUFSIZE buffer. Returns false if the VNIC
// is gone.
bool ReadVnic(dladm_handle_t h, datalink_id_t id, VnicInfo* out) {
  AttrBuffer buf;
  dladm_status_t st = dladm_api.dladm_vnic_info(h, id, buf.attr(), DLADM_OPT_ACTIVE);
  buf.CheckCanary();
  if (st == DLADM_STATUS_NOTFOUND) return false;
  if (st != DLADM_STATUS_OK) FailStatus(st, "dladm_vnic_info of link id " + std::to_string(id));
  dladm_vnic_attr_head_t head = buf.head();
  out->link_id = id;
  out->over_id = head.va_link_id;
  out->mac = FormatMac(head.va_mac_addr, std::min<uint_t>(head.va_mac_len, MAXMACADDRLEN));
  out->vid = head.va_vid;
  return true;
}

// sys/zone.h ZONENAME_MAX, with its NUL.
constexpr size_t kZoneNameMax = 64;

// What the scheduled jobs below produce.
struct Done {};
struct AbiResult {
  int vnic_create_args;
};

// ---- on the JS thread ----------------------------------------------------------------------

[[noreturn]] void ThrowRange(Napi::Env env, const std::string& message) {
  Napi::RangeError error = Napi::RangeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
  throw error;
}

[[noreturn]] void ThrowValue(Napi::Env env, const std::string& message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
  throw error;
}

// A link name as the C side needs it: a string of 1..MAXLINKNAMELEN-1 bytes with no NUL.
std::string CheckLinkName(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsString()) ThrowArgError(env, std::string(what) + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.empty()) ThrowValue(env, std::string(what) + " must not be empty");
  if (s.find('\0') != std::string::npos) ThrowValue(env, std::string(what) + " must not contain NUL");
  if (s.size() >= MAXLINKNAMELEN) {
    ThrowRange(env, std::string(what) + " must be shorter than " + std::to_string(MAXLINKNAMELEN) +
                        " bytes (MAXLINKNAMELEN), got " + std::to_string(s.size()));
  }
  return s;
}

// "xx:xx:xx:xx:xx:xx": six groups of one or two hex digits.
bool ParseMac(const std::string& s, uchar_t out[ETHERADDRL]) {
  size_t pos = 0;
  for (int i = 0; i < ETHERADDRL; ++i) {
    if (i > 0) {
      if (pos >= s.size() || s[pos] != ':') return false;
      ++pos;
    }
    unsigned v = 0;
    size_t digits = 0;
    while (pos < s.size() && digits < 2 && std::isxdigit(static_cast<unsigned char>(s[pos]))) {
      char c = s[pos];
      v = v * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
      ++pos;
      ++digits;
    }
    if (digits == 0) return false;
    out[i] = static_cast<uchar_t>(v);
  }
  return pos == s.size();
}

// Optional integer field in [lo, hi]; `absent` when undefined or null.
double OptInteger(Napi::Env env, const Napi::Object& obj, const char* key, double lo, double hi, double absent) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return absent;
  if (!v.IsNumber()) ThrowArgError(env, std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < lo || d > hi) {
    ThrowRange(env, std::string(key) + " must be an integer from " + std::to_string(static_cast<long long>(lo)) +
                        " to " + std::to_string(static_cast<long long>(hi)));
  }
  return d;
}

Napi::Object VnicToJs(Napi::Env env, const VnicInfo& v, bool with_over_name) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", v.name);
  o.Set("linkId", Napi::Number::New(env, v.link_id));
  if (with_over_name) o.Set("overLink", v.over.empty() ? env.Null() : Napi::Value(Napi::String::New(env, v.over)));
  o.Set("overLinkId", Napi::Number::New(env, v.over_id));
  o.Set("mac", v.mac);
  o.Set("vlan", v.vid == 0 ? env.Null() : Napi::Value(Napi::Number::New(env, v.vid)));
  o.Set("mtu", v.mtu < 0 ? env.Null() : Napi::Value(Napi::Number::New(env, v.mtu)));
  return o;
}

// vnicCreate({name, link, mac?, vlan?, mtu?}) -> {name, linkId, overLink, overLinkId, mac, vlan, mtu}
Napi::Value VnicCreateJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Object opts = ArgObject(info, 0, "options");
    std::string name = CheckLinkName(env, opts.Get("name"), "name");
    std::string link = CheckLinkName(env, opts.Get("link"), "link");
    bool fixed = false;
    uchar_t mac[ETHERADDRL] = {0};
    std::string mac_text = OptString(opts, "mac");
    if (!mac_text.empty() || (!opts.Get("mac").IsUndefined() && !opts.Get("mac").IsNull())) {
      if (!ParseMac(mac_text, mac)) ThrowValue(env, "mac must be six hex octets separated by ':' (got \"" + mac_text + "\")");
      fixed = true;
    }
    // 0 (or absent) is untagged; the 802.1Q range is the caller's to check, the uint16 one ours.
    auto vid = static_cast<uint16_t>(OptInteger(env, opts, "vlan", 0, 65535, 0));
    auto mtu = static_cast<uint32_t>(OptInteger(env, opts, "mtu", 1, 4294967295.0, 0));

    using Result = VnicInfo;
    return Schedule<Result>(
        env, thread,
        [name, link, fixed, mac_copy = std::vector<uchar_t>(mac, mac + ETHERADDRL), vid, mtu]() mutable {
          dladm_handle_t h = Handle();
          LinkInfo over = LookupLink(h, link);
          if (!dladm_api.dladm_valid_linkname(name.c_str())) {
            Fail("DLADM_STATUS_BADARG", StatusText(DLADM_STATUS_BADARG) + " (invalid link name \"" + name + "\")");
          }
          datalink_id_t id = DATALINK_INVALID_LINKID;
          int slot = -1;
          dladm_status_t st = VnicCreate(h, name.c_str(), over.id,
                                         fixed ? VNIC_MAC_ADDR_TYPE_FIXED : VNIC_MAC_ADDR_TYPE_RANDOM,
                                         fixed ? mac_copy.data() : nullptr, fixed ? ETHERADDRL : 0, &slot, vid,
                                         &id, DLADM_OPT_ACTIVE);
          if (st != DLADM_STATUS_OK) FailStatus(st, "creating VNIC \"" + name + "\" over \"" + link + "\"");
          // A failure after the VNIC exists removes it again, so a rejected create leaves nothing.
          auto undo = [&](dladm_status_t why, const std::string& context) {
            (void)dladm_api.dladm_vnic_delete(h, id, DLADM_OPT_ACTIVE);
            FailStatus(why, context);
          };
          if (mtu != 0) {
            // The create proplist ignores mtu for temporary VNICs (illumos bug 15695): set it
            // on the active link afterwards, as `dladm set-linkprop -t -p mtu=N` does.
            char value[16];
            std::snprintf(value, sizeof(value), "%u", mtu);
            char* vals[1] = {value};
            st = dladm_api.dladm_set_linkprop(h, id, "mtu", vals, 1, DLADM_OPT_ACTIVE);
            if (st != DLADM_STATUS_OK) undo(st, "setting mtu " + std::string(value) + " on \"" + name + "\"");
          }
          VnicInfo v;
          bool found = false;
          try {
            found = ReadVnic(h, id, &v);
          } catch (const NativeError&) {
            (void)dladm_api.dladm_vnic_delete(h, id, DLADM_OPT_ACTIVE);
            throw;
          }
          if (!found) undo(DLADM_STATUS_NOTFOUND, "reading back VNIC \"" + name + "\"");
          v.name = name;
          v.over = link;
          // An mtu we set is the link's current one (the library takes it as given or refuses
          // it); otherwise the VNIC has its over-link's, which only the library can say.
          v.mtu = mtu != 0 ? static_cast<double>(mtu) : LinkMtu(h, id);
          return v;
        },
        [](Napi::Env env, Result& v) -> Napi::Value { return VnicToJs(env, v, true); });
  });
}

// vnicDelete(name) -> undefined
Napi::Value VnicDeleteJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    std::string name = CheckLinkName(env, info.Length() > 0 ? info[0] : env.Undefined(), "name");
    return Schedule<Done>(
        env, thread,
        [name]() {
          dladm_handle_t h = Handle();
          LinkInfo link = LookupLink(h, name);
          dladm_status_t st = dladm_api.dladm_vnic_delete(h, link.id, DLADM_OPT_ACTIVE);
          if (st != DLADM_STATUS_OK) FailStatus(st, "deleting VNIC \"" + name + "\"");
          return Done{};
        },
        [](Napi::Env env, Done&) -> Napi::Value { return env.Undefined(); });
  });
}

int CollectId(dladm_handle_t, datalink_id_t id, void* arg) {
  static_cast<std::vector<datalink_id_t>*>(arg)->push_back(id);
  return DLADM_WALK_CONTINUE;
}

// vnicList() -> [{name, linkId, overLink, overLinkId, mac, vlan, mtu}]
Napi::Value VnicListJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    using Result = std::vector<VnicInfo>;
    return Schedule<Result>(
        env, thread,
        []() {
          dladm_handle_t h = Handle();
          std::vector<datalink_id_t> ids;
          dladm_status_t st = dladm_api.dladm_walk_datalink_id(CollectId, h, &ids, DATALINK_CLASS_VNIC,
                                                               DATALINK_ANY_MEDIATYPE, DLADM_OPT_ACTIVE);
          if (st != DLADM_STATUS_OK) FailStatus(st, "walking VNICs");
          Result out;
          for (datalink_id_t id : ids) {
            VnicInfo v;
            // A VNIC another process deleted since the walk is skipped.
            if (!ReadVnic(h, id, &v)) continue;
            v.name = LinkName(h, id);
            if (v.name.empty()) continue;
            if (v.over_id != DATALINK_INVALID_LINKID) v.over = LinkName(h, v.over_id);
            v.mtu = LinkMtu(h, id);
            out.push_back(std::move(v));
          }
          return out;
        },
        [](Napi::Env env, Result& list) -> Napi::Value {
          Napi::Array arr = Napi::Array::New(env, list.size());
          for (size_t i = 0; i < list.size(); ++i) arr.Set(i, VnicToJs(env, list[i], true));
          return arr;
        });
  });
}

// linkLookup(name) -> {name, linkId, class, flags}
Napi::Value LinkLookupJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    std::string name = CheckLinkName(env, info.Length() > 0 ? info[0] : env.Undefined(), "name");
    return Schedule<LinkInfo>(
        env, thread, [name]() { return LookupLink(Handle(), name); },
        [name](Napi::Env env, LinkInfo& l) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("name", name);
          o.Set("linkId", Napi::Number::New(env, l.id));
          o.Set("class", ClassName(l.cls));
          o.Set("flags", Napi::Number::New(env, l.flags));
          return o;
        });
  });
}

// linkSetZone(link, zone) -> undefined: gives a link to a ready or running zone, as
// `dladm set-linkprop -t -p zone=<zone> <link>` does (the active `zone` property only).
//
// This is the call zoneadmd makes itself when it readies an exclusive-IP zone, so a link given
// this way is what the zone would have had from its configuration. Confirmed in illumos-gate
// sources read through the `search` tool (oxidecomputer/illumos-gate 1fec6ede, matching
// illumos/illumos-gate):
//  - usr/src/cmd/zoneadmd/vplat.c, configure_exclusive_network_interfaces: for each `net` of
//    the zone's configuration snapshot, dladm_name2info(physical) then add_datalink(...);
//    add_datalink refuses a link plumbed in the global zone (zonecfg_ifname_exists, AF_INET and
//    AF_INET6), then calls dladm_set_linkprop(dld_handle, linkid, "zone", &zone_name, 1,
//    DLADM_OPT_ACTIVE), then sets the `pool` property if the zone has a pool.
//  - vplat.c, unconfigure_exclusive_network_interfaces: on halt zoneadmd does not take links
//    back itself; "the kernel shutdown callback for the dls module should have removed all
//    datalinks from this zone", and a link left over fails the halt. So a halt gives back a
//    link given this way too.
//  - usr/src/lib/libdladm/common/linkprop.c: the "zone" entry is PD_TEMPONLY|PD_CHECK_ALLOC
//    (a persistent set is DLADM_STATUS_TEMPONLY); check_zone: one value (else BADVALCNT),
//    getzoneidbyname (-1, i.e. a zone not in the kernel: DLADM_STATUS_BADVAL), a non-global
//    zone without ZF_NET_EXCL (shared-IP) is DLADM_STATUS_BADVAL; set_zone: the same zone as
//    now is DLADM_STATUS_OK without a change, else set_public_prop and the zones' /dev entries;
//    get_zone: the zone's name, "" in the global zone.
// Not confirmed: what the kernel (dls_devnet_setzid) answers for a link already in another
// non-global zone (the fake libdladm says DLADM_STATUS_LINKBUSY), or for a VNIC whose over-link
// is an OPTE port; and whether zoneadmd's add_datalink order (zone, then pool) matters for an
// omicron1-brand zone, which has no pool here. A link plumbed in the global zone is refused by
// zoneadmd, not by libdladm: the caller must not give away a link it has addresses on.
Napi::Value LinkSetZoneJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    std::string link = CheckLinkName(env, info.Length() > 0 ? info[0] : env.Undefined(), "link");
    Napi::Value zv = info.Length() > 1 ? info[1] : env.Undefined();
    if (!zv.IsString()) ThrowArgError(env, "zone must be a string");
    std::string zone = zv.As<Napi::String>().Utf8Value();
    if (zone.empty()) ThrowValue(env, "zone must not be empty");
    if (zone.find('\0') != std::string::npos) ThrowValue(env, "zone must not contain NUL");
    // The library copies the name into ZONENAME_MAX buffers (getzoneidbyname): a longer one
    // would name a different zone.
    if (zone.size() >= kZoneNameMax) {
      ThrowRange(env, "zone must be shorter than " + std::to_string(kZoneNameMax) + " bytes (ZONENAME_MAX), got " +
                          std::to_string(zone.size()));
    }
    return Schedule<Done>(
        env, thread,
        [link, zone]() {
          dladm_handle_t h = Handle();
          LinkInfo l = LookupLink(h, link);
          std::vector<char> value(zone.begin(), zone.end());
          value.push_back('\0');
          char* vals[1] = {value.data()};
          dladm_status_t st = dladm_api.dladm_set_linkprop(h, l.id, "zone", vals, 1, DLADM_OPT_ACTIVE);
          if (st != DLADM_STATUS_OK) FailStatus(st, "giving link \"" + link + "\" to zone \"" + zone + "\"");
          return Done{};
        },
        [](Napi::Env env, Done&) -> Napi::Value { return env.Undefined(); });
  });
}

// linkZone(link) -> string | null: the zone a link is in (the `zone` property), null for the
// global zone (get_zone's "").
Napi::Value LinkZoneJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    std::string link = CheckLinkName(env, info.Length() > 0 ? info[0] : env.Undefined(), "link");
    return Schedule<std::string>(
        env, thread,
        [link]() {
          dladm_handle_t h = Handle();
          LinkInfo l = LookupLink(h, link);
          char value[DLADM_PROP_VAL_MAX];
          std::memset(value, 0, sizeof(value));
          char* vals[1] = {value};
          uint_t count = 1;
          dladm_status_t st = dladm_api.dladm_get_linkprop(h, l.id, DLADM_PROP_VAL_CURRENT, "zone", vals, &count);
          if (st != DLADM_STATUS_OK) FailStatus(st, "reading the zone of link \"" + link + "\"");
          value[sizeof(value) - 1] = '\0';
          return count < 1 ? std::string() : std::string(value);
        },
        [](Napi::Env env, std::string& z) -> Napi::Value {
          return z.empty() ? env.Null() : Napi::Value(Napi::String::New(env, z));
        });
  });
}

// dladmAbi() -> {vnicCreateArgs: 14 | 15}: which dladm_vnic_create form the library has.
Napi::Value DladmAbiJs(const Napi::CallbackInfo& info) {
  return AsPromise(info, [&]() -> Napi::Value {
    return Schedule<AbiResult>(
        info.Env(), thread,
        []() {
          int n = ProbeVnicCreateAbi(Handle());
          if (n < 0) Fail("EABI", "libdladm's dladm_vnic_create is neither the 14- nor the 15-argument illumos form");
          return AbiResult{n};
        },
        [](Napi::Env env, AbiResult& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("vnicCreateArgs", Napi::Number::New(env, r.vnic_create_args));
          return o;
        });
  });
}

}  // namespace

void InitDladm(Napi::Env env, Napi::Object exports) {
  thread.AttachTo(env, CloseHandle);
  exports.Set("vnicCreate", Napi::Function::New(env, VnicCreateJs, "vnicCreate"));
  exports.Set("vnicDelete", Napi::Function::New(env, VnicDeleteJs, "vnicDelete"));
  exports.Set("vnicList", Napi::Function::New(env, VnicListJs, "vnicList"));
  exports.Set("linkLookup", Napi::Function::New(env, LinkLookupJs, "linkLookup"));
  exports.Set("linkSetZone", Napi::Function::New(env, LinkSetZoneJs, "linkSetZone"));
  exports.Set("linkZone", Napi::Function::New(env, LinkZoneJs, "linkZone"));
  exports.Set("dladmAbi", Napi::Function::New(env, DladmAbiJs, "dladmAbi"));
}

}  // namespace sled
