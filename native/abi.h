// Our own declarations of the illumos interfaces the addon uses (the private headers are often
// not installed, and on Linux none are). Values and layouts follow illumos-gate's headers (each
// declaration says where from; scripts/selfcheck-illumos.ts checks them on a real host); each
// library's part lives in abi/<library>.h. Everything is resolved at run
// time by loader.cc with dlsym, so nothing here is linked.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

// boolean_t is a C enum on illumos: int-sized (illumos-abi.md §0).
typedef enum { B_FALSE = 0, B_TRUE = 1 } boolean_t;
static_assert(sizeof(boolean_t) == 4, "boolean_t must be int-sized");

typedef int32_t zoneid_t;
typedef uint32_t datalink_id_t;
typedef int64_t hrtime_t;
typedef unsigned char uuid_t[16];
typedef unsigned int uint_t;
typedef unsigned char uchar_t;

}  // extern "C"

#include "abi/zonecfg.h"
#include "abi/dladm.h"
#include "abi/nvpair.h"
#include "abi/zfs.h"
#include "abi/scf.h"
#include "abi/sysevent.h"
