// libdladm declarations (libdladm.h, libdllink.h, libdlvnic.h, sys/dls_mgmt.h, sys/vnic.h): see
// ../abi.h and illumos-abi.md §3.
//
// Confirmed against illumos-gate sources read through the `search` tool's stored copies:
//  - libdladm.h (illumos/illumos-gate 883e7314): DLADM_STRSIZE 256, the DLADM_OPT_* flags,
//    DLADM_WALK_*, `struct dladm_handle *` as dladm_handle_t, and the dladm_status_t order
//    OK(0) .. INVALID_MTU(84). libdladm.c (oxidecomputer/illumos-gate, 2023) also has
//    PERSIST_ON_TEMP, BAD_ENCAP and ADDRNOTAVAIL after INVALID_MTU; PERSIST_ON_TEMP = 85 is
//    confirmed by a mirror of the enum (netadm-sys style bindings); BAD_ENCAP = 86 and
//    ADDRNOTAVAIL = 87 follow the order of dladm_status2str's switch and are not confirmed.
//    The message texts used by the fake come from that dladm_status2str.
//  - dladm_valid_linkname (libdladm.c): length < MAXLINKNAMELEN, no leading digit, ends in a
//    number WITHOUT leading zeroes ("net0", "net10"; not "net00"), [A-Za-z0-9_.].
//  - sys/dls_mgmt.h (illumos/illumos-gate 17a26706, 2023): datalink_class_t values;
//    0x400 is DATALINK_CLASS_MISC upstream, DATALINK_CLASS_TFPORT in one Oxide branch.
//    DLMGMT_ACTIVE 0x1, DLMGMT_PERSIST 0x2, DLMGMT_TRANSIENT 0x4; DATALINK_ANY_MEDIATYPE 1<<32.
//  - libdllink.h (illumos/illumos-gate): dladm_name2info, dladm_datalink_id2info,
//    dladm_walk_datalink_id, dladm_set_linkprop, dladm_get_linkprop prototypes as below;
//    DLADM_PROP_VAL_MAX 128; dladm_prop_type_t CURRENT = 1.
//  - sys/vnic.h: vnic_mac_addr_type_t UNKNOWN = -1, FIXED, RANDOM, FACTORY, AUTO, PRIMARY, VRID.
//  - libdlvnic.h (citrus-it/illumos-omnios, 2015): dladm_vnic_attr_t field order as mirrored
//    below, dladm_vnic_info/dladm_vnic_delete prototypes.
//
// ABI DRIFT in dladm_vnic_create (found while confirming; illumos-abi.md §3.2 lists only the
// 14-argument form):
//  - illumos-gate libdlvnic.c at a776d98e (and the 2015 libdlvnic.h): 14 arguments,
//    (..., datalink_id_t *vnic_id_out, dladm_arg_list_t *proplist, uint32_t flags).
//  - illumos-gate libdlvnic.c at 0b49aa92 (current, with overlay support upstreamed): 15
//    arguments, (..., dladm_arg_list_t *proplist, dladm_errlist_t *errs, uint32_t flags);
//    libdlvlan.c calls it with `proplist, NULL, flags | DLADM_OPT_VLAN`.
//  - hrosenfeld/illumos-omnios (2026 work in progress): 6 arguments,
//    (handle, const char *vnic, dladm_vnic_attr_t *attr, proplist, errs, flags).
// On amd64 a call with the wrong arity passes `flags` in the wrong stack slot, so dladm.cc
// probes which form the library has before the first create (see ProbeVnicCreateAbi there):
// one call with 15 arguments arranged so that each known form fails at its first argument
// check, without side effects and without touching the handle:
//   15-arg form -> DLADM_STATUS_VIDINVAL (flags = ACTIVE|VLAN with vid 0),
//   14-arg form -> DLADM_STATUS_NOTSUP (it reads our `errs` slot, NULL, as flags),
//   6-arg fork  -> DLADM_STATUS_INVALIDMACADDRTYPE (attr = our zeroed probe buffer with
//                  va_mac_addr_type = 99; flags = our mac_len, 0).
// Only the 14- and 15-argument forms are then used; the fork is reported as unsupported.
#pragma once

#include "../abi.h"

extern "C" {

#define MAXLINKNAMELEN 32  // 31 characters + NUL
#define MAXMACADDRLEN 20
#define ETHERADDRL 6
#define DLADM_STRSIZE 256
#define DLADM_PROP_VAL_MAX 128  // libdllink.h

// Option flags taken by the libdladm functions (libdladm.h).
#define DLADM_OPT_ACTIVE 0x00000001u
#define DLADM_OPT_PERSIST 0x00000002u
#define DLADM_OPT_CREATE 0x00000004u
#define DLADM_OPT_FORCE 0x00000008u
#define DLADM_OPT_PREFIX 0x00000010u
#define DLADM_OPT_ANCHOR 0x00000020u
#define DLADM_OPT_VLAN 0x00000040u
#define DLADM_OPT_NOREFRESH 0x00000080u
#define DLADM_OPT_BOOT 0x00000100u

#define DLADM_WALK_TERMINATE 0
#define DLADM_WALK_CONTINUE (-1)

// Link flags returned by the info calls (sys/dls_mgmt.h).
#define DLMGMT_ACTIVE 0x01u
#define DLMGMT_PERSIST 0x02u
#define DLMGMT_TRANSIENT 0x04u

#define DATALINK_INVALID_LINKID 0u
#define DATALINK_ALL_LINKID 0u

typedef uint64_t datalink_media_t;
#define DATALINK_ANY_MEDIATYPE (static_cast<datalink_media_t>(1) << 32)
#define DL_ETHER 4u

typedef uint32_t vrid_t;
#define VRRP_VRID_NONE 0u
#define DLADM_AF_UNSPEC 0  // AF_UNSPEC

typedef enum {
  DATALINK_CLASS_PHYS = 0x01,
  DATALINK_CLASS_VLAN = 0x02,
  DATALINK_CLASS_AGGR = 0x04,
  DATALINK_CLASS_VNIC = 0x08,
  DATALINK_CLASS_ETHERSTUB = 0x10,
  DATALINK_CLASS_SIMNET = 0x20,
  DATALINK_CLASS_BRIDGE = 0x40,
  DATALINK_CLASS_IPTUN = 0x80,
  DATALINK_CLASS_PART = 0x100,
  DATALINK_CLASS_OVERLAY = 0x200,
  DATALINK_CLASS_MISC = 0x400  // DATALINK_CLASS_TFPORT on an Oxide branch
} datalink_class_t;

typedef enum {
  VNIC_MAC_ADDR_TYPE_UNKNOWN = -1,
  VNIC_MAC_ADDR_TYPE_FIXED = 0,
  VNIC_MAC_ADDR_TYPE_RANDOM = 1,
  VNIC_MAC_ADDR_TYPE_FACTORY = 2,
  VNIC_MAC_ADDR_TYPE_AUTO = 3,
  VNIC_MAC_ADDR_TYPE_PRIMARY = 4,
  VNIC_MAC_ADDR_TYPE_VRID = 5
} vnic_mac_addr_type_t;

typedef enum {
  DLADM_PROP_VAL_CURRENT = 1,
  DLADM_PROP_VAL_DEFAULT = 2,
  DLADM_PROP_VAL_PERM = 3,
  DLADM_PROP_VAL_MODIFIABLE = 4,
  DLADM_PROP_VAL_PERSISTENT = 5
} dladm_prop_type_t;

// The enumerators are consecutive from 0 (libdladm.h); listed here with their values.
typedef enum {
  DLADM_STATUS_OK = 0,
  DLADM_STATUS_BADARG = 1,
  DLADM_STATUS_FAILED = 2,
  DLADM_STATUS_TOOSMALL = 3,
  DLADM_STATUS_NOTSUP = 4,
  DLADM_STATUS_NOTFOUND = 5,
  DLADM_STATUS_BADVAL = 6,
  DLADM_STATUS_NOMEM = 7,
  DLADM_STATUS_EXIST = 8,
  DLADM_STATUS_LINKINVAL = 9,
  DLADM_STATUS_PROPRDONLY = 10,
  DLADM_STATUS_BADVALCNT = 11,
  DLADM_STATUS_DBNOTFOUND = 12,
  DLADM_STATUS_DENIED = 13,
  DLADM_STATUS_IOERR = 14,
  DLADM_STATUS_TEMPONLY = 15,
  DLADM_STATUS_TIMEDOUT = 16,
  DLADM_STATUS_ISCONN = 17,
  DLADM_STATUS_NOTCONN = 18,
  DLADM_STATUS_REPOSITORYINVAL = 19,
  DLADM_STATUS_MACADDRINVAL = 20,
  DLADM_STATUS_KEYINVAL = 21,
  DLADM_STATUS_INVALIDMACADDRLEN = 22,
  DLADM_STATUS_INVALIDMACADDRTYPE = 23,
  DLADM_STATUS_LINKBUSY = 24,
  DLADM_STATUS_VIDINVAL = 25,
  DLADM_STATUS_NONOTIF = 26,
  DLADM_STATUS_TRYAGAIN = 27,
  DLADM_STATUS_IPTUNTYPE = 28,
  DLADM_STATUS_IPTUNTYPEREQD = 29,
  DLADM_STATUS_BADIPTUNLADDR = 30,
  DLADM_STATUS_BADIPTUNRADDR = 31,
  DLADM_STATUS_ADDRINUSE = 32,
  DLADM_STATUS_BADTIMEVAL = 33,
  DLADM_STATUS_INVALIDMACADDR = 34,
  DLADM_STATUS_INVALIDMACADDRNIC = 35,
  DLADM_STATUS_INVALIDMACADDRINUSE = 36,
  DLADM_STATUS_MACFACTORYSLOTINVALID = 37,
  DLADM_STATUS_MACFACTORYSLOTUSED = 38,
  DLADM_STATUS_MACFACTORYSLOTALLUSED = 39,
  DLADM_STATUS_MACFACTORYNOTSUP = 40,
  DLADM_STATUS_INVALIDMACPREFIX = 41,
  DLADM_STATUS_INVALIDMACPREFIXLEN = 42,
  DLADM_STATUS_BADCPUID = 43,
  DLADM_STATUS_CPUERR = 44,
  DLADM_STATUS_CPUNOTONLINE = 45,
  DLADM_STATUS_BADRANGE = 46,
  DLADM_STATUS_TOOMANYELEMENTS = 47,
  DLADM_STATUS_DB_NOTFOUND = 48,
  DLADM_STATUS_DB_PARSE_ERR = 49,
  DLADM_STATUS_PROP_PARSE_ERR = 50,
  DLADM_STATUS_ATTR_PARSE_ERR = 51,
  DLADM_STATUS_FLOW_DB_ERR = 52,
  DLADM_STATUS_FLOW_DB_OPEN_ERR = 53,
  DLADM_STATUS_FLOW_DB_PARSE_ERR = 54,
  DLADM_STATUS_FLOWPROP_DB_PARSE_ERR = 55,
  DLADM_STATUS_FLOW_ADD_ERR = 56,
  DLADM_STATUS_FLOW_WALK_ERR = 57,
  DLADM_STATUS_FLOW_IDENTICAL = 58,
  DLADM_STATUS_FLOW_INCOMPATIBLE = 59,
  DLADM_STATUS_FLOW_EXISTS = 60,
  DLADM_STATUS_PERSIST_FLOW_EXISTS = 61,
  DLADM_STATUS_INVALID_IP = 62,
  DLADM_STATUS_INVALID_PREFIXLEN = 63,
  DLADM_STATUS_INVALID_PROTOCOL = 64,
  DLADM_STATUS_INVALID_PORT = 65,
  DLADM_STATUS_INVALID_DSF = 66,
  DLADM_STATUS_INVALID_DSFMASK = 67,
  DLADM_STATUS_INVALID_MACMARGIN = 68,
  DLADM_STATUS_NOTDEFINED = 69,
  DLADM_STATUS_BADPROP = 70,
  DLADM_STATUS_MINMAXBW = 71,
  DLADM_STATUS_NO_HWRINGS = 72,
  DLADM_STATUS_PERMONLY = 73,
  DLADM_STATUS_OPTMISSING = 74,
  DLADM_STATUS_POOLCPU = 75,
  DLADM_STATUS_INVALID_PORT_INSTANCE = 76,
  DLADM_STATUS_PORT_IS_DOWN = 77,
  DLADM_STATUS_PKEY_NOT_PRESENT = 78,
  DLADM_STATUS_PARTITION_EXISTS = 79,
  DLADM_STATUS_INVALID_PKEY = 80,
  DLADM_STATUS_NO_IB_HW_RESOURCE = 81,
  DLADM_STATUS_INVALID_PKEY_TBL_SIZE = 82,
  DLADM_STATUS_PORT_NOPROTO = 83,
  DLADM_STATUS_INVALID_MTU = 84,
  DLADM_STATUS_PERSIST_ON_TEMP = 85,
  DLADM_STATUS_BAD_ENCAP = 86,     // order from dladm_status2str; unconfirmed
  DLADM_STATUS_ADDRNOTAVAIL = 87,  // order from dladm_status2str; unconfirmed
} dladm_status_t;

static_assert(sizeof(datalink_class_t) == 4, "datalink_class_t must be int-sized");
static_assert(sizeof(vnic_mac_addr_type_t) == 4, "vnic_mac_addr_type_t must be int-sized");
static_assert(sizeof(dladm_status_t) == 4, "dladm_status_t must be int-sized");
static_assert(sizeof(dladm_prop_type_t) == 4, "dladm_prop_type_t must be int-sized");

struct dladm_handle;
typedef struct dladm_handle* dladm_handle_t;
struct dladm_arg_list;  // only ever passed as NULL
typedef struct dladm_arg_list dladm_arg_list_t;
struct dladm_errlist;  // only ever passed as NULL (15-argument dladm_vnic_create)
typedef struct dladm_errlist dladm_errlist_t;

// The first 60 bytes of dladm_vnic_attr_t (libdlvnic.h). The whole struct continues with
// `mac_resource_props_t va_resource_props` at offset 60 (declared under #pragma pack(4) on
// amd64), whose size follows MRP_NCPUS (its CPU lists are arrays of that many entries): with
// MRP_NCPUS 256, as in illumos-gate 367731f049bf, sizeof(dladm_vnic_attr_t) is 15480 (a
// cross-check of these headers against that commit, issue 13); older gates had MRP_NCPUS 128
// and about 12928 (illumos-abi.md §3). Some libdlvnic versions' dladm_vnic_info(ACTIVE) set
// only these head fields; others copy va_resource_props back as well, writing the whole struct.
// Never allocate this mirror for the library to fill: pass a zeroed, 8-aligned buffer of
// DLADM_VNIC_ATTR_BUFSIZE bytes and read these fields from its start.
typedef struct dladm_vnic_attr_head {
  datalink_id_t va_vnic_id;
  datalink_id_t va_link_id;
  vnic_mac_addr_type_t va_mac_addr_type;
  uint_t va_mac_len;
  uchar_t va_mac_addr[MAXMACADDRLEN];
  int va_mac_slot;
  uint_t va_mac_prefix_len;
  uint16_t va_vid;  // 2 bytes of padding follow
  boolean_t va_force;
  vrid_t va_vrid;
  int va_af;
} dladm_vnic_attr_head_t;

static_assert(offsetof(dladm_vnic_attr_head_t, va_vnic_id) == 0, "va_vnic_id");
static_assert(offsetof(dladm_vnic_attr_head_t, va_link_id) == 4, "va_link_id");
static_assert(offsetof(dladm_vnic_attr_head_t, va_mac_addr_type) == 8, "va_mac_addr_type");
static_assert(offsetof(dladm_vnic_attr_head_t, va_mac_len) == 12, "va_mac_len");
static_assert(offsetof(dladm_vnic_attr_head_t, va_mac_addr) == 16, "va_mac_addr");
static_assert(offsetof(dladm_vnic_attr_head_t, va_mac_slot) == 36, "va_mac_slot");
static_assert(offsetof(dladm_vnic_attr_head_t, va_mac_prefix_len) == 40, "va_mac_prefix_len");
static_assert(offsetof(dladm_vnic_attr_head_t, va_vid) == 44, "va_vid");
static_assert(offsetof(dladm_vnic_attr_head_t, va_force) == 48, "va_force");
static_assert(offsetof(dladm_vnic_attr_head_t, va_vrid) == 52, "va_vrid");
static_assert(offsetof(dladm_vnic_attr_head_t, va_af) == 56, "va_af");
static_assert(sizeof(dladm_vnic_attr_head_t) == 60, "the mirror covers the first 60 bytes");

// sizeof(dladm_vnic_attr_t) at illumos-gate 367731f049bf (MRP_NCPUS 256), not derived by us:
// scripts/selfcheck-illumos.ts measures it on a real image.
#define DLADM_VNIC_ATTR_SIZE_ESTIMATE 15480
// What we pass to dladm_vnic_info: four times the current size, so MRP_NCPUS can double twice
// more before the canary after the buffer (dladm.cc) reports EABI.
#define DLADM_VNIC_ATTR_BUFSIZE 65536
static_assert(DLADM_VNIC_ATTR_BUFSIZE >= 4 * DLADM_VNIC_ATTR_SIZE_ESTIMATE,
              "room for dladm_vnic_attr_t to grow with MRP_NCPUS");

typedef int (*dladm_walk_datalink_cb_t)(dladm_handle_t, datalink_id_t, void*);

// dladm_vnic_create, both arities (see the ABI DRIFT note above).
typedef dladm_status_t (*dladm_vnic_create14_fn)(dladm_handle_t, const char*, datalink_id_t,
                                                 vnic_mac_addr_type_t, uchar_t*, uint_t, int*,
                                                 uint_t, uint16_t, vrid_t, int, datalink_id_t*,
                                                 dladm_arg_list_t*, uint32_t);
typedef dladm_status_t (*dladm_vnic_create15_fn)(dladm_handle_t, const char*, datalink_id_t,
                                                 vnic_mac_addr_type_t, uchar_t*, uint_t, int*,
                                                 uint_t, uint16_t, vrid_t, int, datalink_id_t*,
                                                 dladm_arg_list_t*, dladm_errlist_t*, uint32_t);

}  // extern "C"

namespace sled {

// Resolved by dladm.cc's Library. dladm_vnic_create is resolved as an untyped address and
// called through the typedef the probe selects.
struct DladmApi {
  dladm_status_t (*dladm_open)(dladm_handle_t*);
  void (*dladm_close)(dladm_handle_t);
  const char* (*dladm_status2str)(dladm_status_t, char* /* >= DLADM_STRSIZE */);
  boolean_t (*dladm_valid_linkname)(const char*);
  dladm_status_t (*dladm_name2info)(dladm_handle_t, const char*, datalink_id_t*, uint32_t*,
                                    datalink_class_t*, uint32_t*);
  dladm_status_t (*dladm_datalink_id2info)(dladm_handle_t, datalink_id_t, uint32_t*,
                                           datalink_class_t*, uint32_t*, char*, size_t);
  dladm_status_t (*dladm_walk_datalink_id)(dladm_walk_datalink_cb_t, dladm_handle_t, void*,
                                           datalink_class_t, datalink_media_t, uint32_t);
  void* dladm_vnic_create;  // dladm_vnic_create14_fn or dladm_vnic_create15_fn
  dladm_status_t (*dladm_vnic_delete)(dladm_handle_t, datalink_id_t, uint32_t);
  dladm_status_t (*dladm_vnic_info)(dladm_handle_t, datalink_id_t, void* /* dladm_vnic_attr_t* */,
                                    uint32_t);
  dladm_status_t (*dladm_set_linkprop)(dladm_handle_t, datalink_id_t, const char*, char**, uint_t,
                                       uint_t);
  dladm_status_t (*dladm_get_linkprop)(dladm_handle_t, datalink_id_t, dladm_prop_type_t,
                                       const char*, char**, uint_t*);
};

extern DladmApi dladm_api;

}  // namespace sled
