// libsysevent declarations (the GPEC event-channel part): see ../abi.h and illumos-abi.md §5.1.
//
// Confirmed against illumos-gate (read through the `search` tool's copy of illumos/illumos-gate):
//   - usr/src/uts/common/sys/sysevent.h: `typedef void *sysevent_t;` (callbacks receive a
//     sysevent_t *), `typedef void evchan_t;`, `typedef struct sysevent_subattr
//     sysevent_subattr_t;`, MAX_CHNAME_LEN 128, MAX_SUBID_LEN 16, MAX_CLASS_LEN 64, EVCH_CREAT 1,
//     EVCH_HOLD_PEND 2, EVCH_HOLD_PEND_INDEF 4, EVCH_SUB_KEEP 1, EVCH_ALLSUB "all_subs",
//     EC_ALL "register_all_classes", and the sysevent_evc_* prototypes below.
//   - usr/src/lib/libsysevent/libsysevent.h: sysevent_get_attr_list(sysevent_t *, nvlist_t **)
//     (0, or -1 with errno; the list is a copy the caller nvlist_free()s),
//     sysevent_get_class_name / sysevent_get_subclass_name (char *, pointers into the event).
//   - usr/src/lib/libsysevent/libevchannel.c: the evc_* calls return 0 or an errno value (and
//     set errno). xsubscribe creates a private door served by exactly ONE thread (all signals
//     but SIGABRT masked by default), so callbacks of one subscription are serial; subscribe
//     (non-x) uses the process door pool. unsubscribe/unbind block until in-flight upcalls have
//     drained, and from that subscription's own callback thread they return EDEADLK
//     (will_deadlock()). A subid clash on the channel is an error (EEXIST).
//   - usr/src/uts/common/sys/zone.h: ZONE_EVENT_CHANNEL "com.sun:zones:status", class "status",
//     subclass "change", attribute names below; usr/src/uts/common/os/zone.c zone_status_set():
//     zonename/newstate/oldstate strings, zoneid int32, when uint64 (gethrtime), vendor
//     "sun.com", publisher "kernel".
#pragma once

#include "../abi.h"

extern "C" {

typedef void* sysevent_t;
typedef void evchan_t;
typedef struct sysevent_subattr sysevent_subattr_t;

#define MAX_CHNAME_LEN 128
#define MAX_SUBID_LEN 16
#define MAX_CLASS_LEN 64
#define EVCH_CREAT 0x0001
#define EVCH_SUB_KEEP 0x01
#define EVCH_ALLSUB "all_subs"
#define EC_ALL "register_all_classes"

#define ZONE_EVENT_CHANNEL "com.sun:zones:status"
#define ZONE_EVENT_STATUS_CLASS "status"
#define ZONE_EVENT_STATUS_SUBCLASS "change"
#define ZONE_EVENT_UNINITIALIZED "uninitialized"
#define ZONE_EVENT_INITIALIZED "initialized"
#define ZONE_EVENT_READY "ready"
#define ZONE_EVENT_RUNNING "running"
#define ZONE_EVENT_SHUTTING_DOWN "shutting_down"
#define ZONE_CB_NAME "zonename"
#define ZONE_CB_NEWSTATE "newstate"
#define ZONE_CB_OLDSTATE "oldstate"
#define ZONE_CB_TIMESTAMP "when"
#define ZONE_CB_ZONEID "zoneid"

typedef int (*sysevent_evc_handler_t)(sysevent_t* ev, void* cookie);

}  // extern "C"

namespace sled {

struct SyseventApi {
  int (*sysevent_evc_bind)(const char* channel, evchan_t** scpp, uint32_t flags);
  int (*sysevent_evc_unbind)(evchan_t*);
  int (*sysevent_evc_xsubscribe)(evchan_t*, const char* sid, const char* klass, sysevent_evc_handler_t handler,
                                 void* cookie, uint32_t flags, sysevent_subattr_t* attr);
  int (*sysevent_evc_unsubscribe)(evchan_t*, const char* sid);
  int (*sysevent_get_attr_list)(sysevent_t* ev, nvlist_t** nvlist);
  char* (*sysevent_get_class_name)(sysevent_t* ev);
  char* (*sysevent_get_subclass_name)(sysevent_t* ev);
};

}  // namespace sled
