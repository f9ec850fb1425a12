// libnvpair declarations: see ../abi.h and illumos-abi.md §4.3.
//
// Confirmed against illumos-gate usr/src/uts/common/sys/nvpair.h (read through the `search`
// tool's copy of illumos/illumos-gate): the data_type_t order, the public nvlist_t/nvpair_t
// headers, NV_UNIQUE_NAME 0x1 / NV_UNIQUE_NAME_TYPE 0x2, and every prototype below. Current
// illumos also has DATA_TYPE_DONTCARE = -1 and DATA_TYPE_DOUBLE (userland only) at the end; no
// value moved. ABI drift to know about: OpenZFS (not illumos) changed nvlist_lookup_string and
// nvpair_value_string to take `const char **` and nvpair_name to return `const char *`; illumos
// keeps `char **` / `char *`, which is what we declare (same calling convention either way).
// The functions return 0 or an errno value (EINVAL, ENOENT, ENOMEM, ENOTSUP for a lookup on a
// list without NV_UNIQUE_NAME*) and do not set errno.
//
// Use from another library's .cc file: `#include "abi.h"` and call through `sled::nvpair_api`
// after `sled::nvpair_library().Require()` (or check `Ready()`), e.g.
//   nvlist_t* nvl = nullptr;
//   if (sled::nvpair_api.nvlist_alloc(&nvl, NV_UNIQUE_NAME, 0) != 0) ...
//   sled::NvlistPtr owned(nvl);   // nvlist_free on scope exit
#pragma once

#include "../abi.h"

#include <memory>

extern "C" {

typedef enum {
  DATA_TYPE_DONTCARE = -1,
  DATA_TYPE_UNKNOWN = 0,
  DATA_TYPE_BOOLEAN = 1,
  DATA_TYPE_BYTE = 2,
  DATA_TYPE_INT16 = 3,
  DATA_TYPE_UINT16 = 4,
  DATA_TYPE_INT32 = 5,
  DATA_TYPE_UINT32 = 6,
  DATA_TYPE_INT64 = 7,
  DATA_TYPE_UINT64 = 8,
  DATA_TYPE_STRING = 9,
  DATA_TYPE_BYTE_ARRAY = 10,
  DATA_TYPE_INT16_ARRAY = 11,
  DATA_TYPE_UINT16_ARRAY = 12,
  DATA_TYPE_INT32_ARRAY = 13,
  DATA_TYPE_UINT32_ARRAY = 14,
  DATA_TYPE_INT64_ARRAY = 15,
  DATA_TYPE_UINT64_ARRAY = 16,
  DATA_TYPE_STRING_ARRAY = 17,
  DATA_TYPE_HRTIME = 18,
  DATA_TYPE_NVLIST = 19,
  DATA_TYPE_NVLIST_ARRAY = 20,
  DATA_TYPE_BOOLEAN_VALUE = 21,
  DATA_TYPE_INT8 = 22,
  DATA_TYPE_UINT8 = 23,
  DATA_TYPE_BOOLEAN_ARRAY = 24,
  DATA_TYPE_INT8_ARRAY = 25,
  DATA_TYPE_UINT8_ARRAY = 26,
  DATA_TYPE_DOUBLE = 27
} data_type_t;
static_assert(sizeof(data_type_t) == 4, "data_type_t must be int-sized");

// The public headers (sys/nvpair.h). Callers only ever hold pointers; the layouts are here so
// that sizes can be checked against the system header by scripts/selfcheck-illumos.ts.
typedef struct nvpair {
  int32_t nvp_size;
  int16_t nvp_name_sz;
  int16_t nvp_reserve;
  int32_t nvp_value_elem;
  data_type_t nvp_type;
  // name string, then the aligned value, follow in memory
} nvpair_t;
static_assert(sizeof(nvpair_t) == 16, "nvpair_t header is 16 bytes");

typedef struct nvlist {
  int32_t nvl_version;
  uint32_t nvl_nvflag;  // NV_UNIQUE_NAME, NV_UNIQUE_NAME_TYPE
  uint64_t nvl_priv;    // pointer to the private list
  uint32_t nvl_flag;
  int32_t nvl_pad;
} nvlist_t;
static_assert(sizeof(nvlist_t) == 24, "nvlist_t header is 24 bytes");

#define NV_VERSION 0
#define NV_UNIQUE_NAME 0x1
#define NV_UNIQUE_NAME_TYPE 0x2
#define NV_FLAG_NOENTOK 0x1
#define NV_ENCODE_NATIVE 0
#define NV_ENCODE_XDR 1

}  // extern "C"

namespace sled {

// One pointer per function the addon calls, with the exact illumos prototype.
struct NvpairApi {
  int (*nvlist_alloc)(nvlist_t**, uint_t nvflag, int kmflag);
  void (*nvlist_free)(nvlist_t*);
  int (*nvlist_dup)(nvlist_t*, nvlist_t**, int kmflag);
  int (*nvlist_add_boolean)(nvlist_t*, const char*);
  int (*nvlist_add_boolean_value)(nvlist_t*, const char*, boolean_t);
  int (*nvlist_add_int32)(nvlist_t*, const char*, int32_t);
  int (*nvlist_add_uint32)(nvlist_t*, const char*, uint32_t);
  int (*nvlist_add_int64)(nvlist_t*, const char*, int64_t);
  int (*nvlist_add_uint64)(nvlist_t*, const char*, uint64_t);
  int (*nvlist_add_string)(nvlist_t*, const char*, const char*);
  int (*nvlist_add_nvlist)(nvlist_t*, const char*, nvlist_t*);
  int (*nvlist_add_hrtime)(nvlist_t*, const char*, hrtime_t);
  int (*nvlist_remove_all)(nvlist_t*, const char*);
  int (*nvlist_lookup_boolean)(nvlist_t*, const char*);
  int (*nvlist_lookup_boolean_value)(nvlist_t*, const char*, boolean_t*);
  int (*nvlist_lookup_int32)(nvlist_t*, const char*, int32_t*);
  int (*nvlist_lookup_uint32)(nvlist_t*, const char*, uint32_t*);
  int (*nvlist_lookup_int64)(nvlist_t*, const char*, int64_t*);
  int (*nvlist_lookup_uint64)(nvlist_t*, const char*, uint64_t*);
  int (*nvlist_lookup_string)(nvlist_t*, const char*, char**);  // illumos: char** (OpenZFS: const char**)
  int (*nvlist_lookup_nvlist)(nvlist_t*, const char*, nvlist_t**);
  int (*nvlist_lookup_hrtime)(nvlist_t*, const char*, hrtime_t*);
  boolean_t (*nvlist_exists)(nvlist_t*, const char*);
  nvpair_t* (*nvlist_next_nvpair)(nvlist_t*, nvpair_t*);
  char* (*nvpair_name)(nvpair_t*);
  data_type_t (*nvpair_type)(nvpair_t*);
  int (*nvpair_value_boolean_value)(nvpair_t*, boolean_t*);
  int (*nvpair_value_int32)(nvpair_t*, int32_t*);
  int (*nvpair_value_uint32)(nvpair_t*, uint32_t*);
  int (*nvpair_value_int64)(nvpair_t*, int64_t*);
  int (*nvpair_value_uint64)(nvpair_t*, uint64_t*);
  int (*nvpair_value_string)(nvpair_t*, char**);
  int (*nvpair_value_nvlist)(nvpair_t*, nvlist_t**);
  int (*nvpair_value_hrtime)(nvpair_t*, hrtime_t*);
};

// Resolved by native/nvpair.cc when load() runs (all null before, or if libnvpair is absent).
extern NvpairApi nvpair_api;

class Library;
// The libnvpair Library (loader.h): `.Require()` throws ENOLIB unless every symbol resolved.
const Library& nvpair_library();

// Owns an nvlist_t: nvlist_free on destruction (nvlist_free is NULL-safe).
struct NvlistFree {
  void operator()(nvlist_t* nvl) const {
    if (nvl != nullptr && nvpair_api.nvlist_free != nullptr) nvpair_api.nvlist_free(nvl);
  }
};
using NvlistPtr = std::unique_ptr<nvlist_t, NvlistFree>;

}  // namespace sled
