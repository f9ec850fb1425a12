// Zone-state events: a subscription to the kernel's zone status channel.
//
// Which API: libsysevent's GPEC calls (sysevent_evc_bind / sysevent_evc_xsubscribe on
// "com.sun:zones:status", sysevent_get_attr_list + nvlist lookups, sysevent_evc_unsubscribe /
// sysevent_evc_unbind), not zonecfg_notify_bind. Why:
//   - libzonecfg is not thread-safe and its Library and thread belong to zonecfg.cc; the channel
//     API needs neither (zonecfg_notify_bind is itself only a wrapper over these same calls).
//   - xsubscribe gives each subscription ONE private delivery thread, so callbacks of a
//     subscription are serial (the de-duplication below relies on that, lock-free) and an
//     unsubscribe from that thread is detected (EDEADLK) instead of hanging; zonecfg_notify_bind
//     uses the shared door pool and hides every error behind a NULL return.
//   - We get the channel's own errno on failure (EPERM without privilege, ...) for the error
//     `code`, and choose the subscriber id ourselves.
//
// zoneEventsSubscribe(callback) -> Promise<subscription>
//   Bind + subscribe run on the "sysevent" SerialThread; the promise resolves once subscribed
//   (so every zone state change after that is delivered). Each event reaches `callback` on the JS
//   thread as {zonename, zoneid, oldstate, newstate, when}, `when` a bigint: the kernel's
//   gethrtime() in ns (monotonic; not wall-clock time).
//   The library callback (a foreign thread) copies the strings out of the event (its memory is
//   only valid during the call) and queues them on a Napi::ThreadSafeFunction
//   (NonBlockingCall, bounded queue): if JS has fallen 1024 events behind, the callback returns
//   EAGAIN and the channel redelivers the event later -- back-pressure the protocol's way, nothing
//   dropped. If the attribute copy fails with ENOMEM it also returns EAGAIN (as libzonecfg does).
//   De-duplication (per subscription, on its one delivery thread): an event whose newstate equals
//   its oldstate (the kernel's ready->ready, shutting_down->shutting_down) or equals the newstate
//   last delivered for that zone (name + id) is consumed without being delivered.
//   If the subscribe cannot even be scheduled (the thread cannot start), the promise rejects and
//   the thread-safe function is released at once.
// subscription.close() -> Promise<void>
//   Never calls into the library from the callback thread: the unsubscribe + unbind run on the
//   "sysevent" SerialThread; they return only once an in-flight callback has finished. No event
//   is delivered to `callback` after close() was called (queued ones are dropped). The
//   thread-safe function is released once unbound. close() again returns a promise that settles
//   with the first one (or an already resolved one once closed).
// subscription.ref() / unref()
//   An open subscription keeps the process alive (its thread-safe function is ref'd), like a
//   listening socket; unref() lets the process exit with it open; the env cleanup hook then
//   unsubscribes and joins. ref() undoes unref(). Both are no-ops once close() was called.
// Per environment: each Node environment that loads the addon (the main thread's, a worker's) has
// its own "sysevent" SerialThread and registry of subscriptions (EnvState), so that its teardown
// closes what it made and nothing another environment made.
// Teardown (env cleanup hook): the environment's SerialThread is stopped (finishing its queued
// subscribes and closes), then every subscription of the environment still bound is unsubscribed
// and unbound from the hook's thread (its callbacks see the thread-safe function closing and
// return at once) and its thread-safe function released.
#include <napi.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include "abi.h"
#include "async.h"
#include "errors.h"
#include "loader.h"
#include "modules.h"

namespace sled {
namespace {

SyseventApi api{};

#define SE_SYM(name) {#name, reinterpret_cast<void**>(&api.name)}

Library lib("sysevent", "libsysevent.so.1",
            {
                SE_SYM(sysevent_evc_bind),
                SE_SYM(sysevent_evc_unbind),
                SE_SYM(sysevent_evc_xsubscribe),
                SE_SYM(sysevent_evc_unsubscribe),
                SE_SYM(sysevent_get_attr_list),
                SE_SYM(sysevent_get_class_name),
                SE_SYM(sysevent_get_subclass_name),
            });

#undef SE_SYM

// The JS side's queue bound: beyond it the library callback answers EAGAIN (redelivery).
constexpr size_t kMaxQueued = 1024;

const char* ErrnoName(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENOSPC: return "ENOSPC";
    case EDEADLK: return "EDEADLK";
    case ENOSYS: return "ENOSYS";
    case ENOTSUP: return "ENOTSUP";
    default: return "EUNKNOWN";
  }
}

[[noreturn]] void FailErrno(const char* call, int e) {
  Fail(ErrnoName(e), std::string(call) + " " + ZONE_EVENT_CHANNEL + ": " + std::strerror(e));
}

struct ZoneEvent {
  std::string zonename;
  std::string newstate;
  std::string oldstate;
  int32_t zoneid = -1;
  uint64_t when = 0;
};

struct Subscription;
void DeliverEvent(Napi::Env env, Napi::Function callback, Subscription* sub, ZoneEvent* ev);
using EventTsfn = Napi::TypedThreadSafeFunction<Subscription, ZoneEvent, &DeliverEvent>;

struct Subscription {
  uint64_t id = 0;
  EventTsfn tsfn;

  // Set on the SerialThread (subscribe/close) and read there or after it stopped (cleanup).
  evchan_t* ch = nullptr;
  char sid[MAX_SUBID_LEN] = {0};
  bool tsfn_released = false;

  // The delivery thread's own state (one thread per subscription: no lock needed).
  std::map<std::pair<std::string, int32_t>, std::string> last_state;

  // JS thread only.
  bool closing = false;
  bool closed = false;
  std::vector<Napi::Promise::Deferred> close_waiters;
};

// What one Node environment made. Owned by its cleanup hook and by the functions exported to it;
// the thread apart, the environment's JS thread's alone.
struct EnvState {
  SerialThread thread{"sysevent"};
  // Subscriptions not yet closed (so the cleanup hook can find them).
  std::map<uint64_t, std::shared_ptr<Subscription>> subs;
  uint64_t next_sub_id = 1;

  void Cleanup();
};
using StatePtr = std::shared_ptr<EnvState>;

// The channel callback, on the subscription's delivery thread. Returns 0 (consumed) or EAGAIN.
int OnChannelEvent(sysevent_t* ev, void* cookie) {
  auto* sub = static_cast<Subscription*>(cookie);
  const char* klass = api.sysevent_get_class_name(ev);
  const char* subclass = api.sysevent_get_subclass_name(ev);
  if (klass == nullptr || subclass == nullptr || std::strcmp(klass, ZONE_EVENT_STATUS_CLASS) != 0 ||
      std::strcmp(subclass, ZONE_EVENT_STATUS_SUBCLASS) != 0)
    return 0;
  nvlist_t* raw = nullptr;
  if (api.sysevent_get_attr_list(ev, &raw) != 0) return errno == ENOMEM ? EAGAIN : 0;
  NvlistPtr nvl(raw);
  char* zonename = nullptr;
  char* newstate = nullptr;
  char* oldstate = nullptr;
  int32_t zoneid = -1;
  uint64_t when = 0;
  if (nvpair_api.nvlist_lookup_string(raw, ZONE_CB_NAME, &zonename) != 0 ||
      nvpair_api.nvlist_lookup_string(raw, ZONE_CB_NEWSTATE, &newstate) != 0 ||
      nvpair_api.nvlist_lookup_string(raw, ZONE_CB_OLDSTATE, &oldstate) != 0 ||
      nvpair_api.nvlist_lookup_int32(raw, ZONE_CB_ZONEID, &zoneid) != 0 ||
      nvpair_api.nvlist_lookup_uint64(raw, ZONE_CB_TIMESTAMP, &when) != 0)
    return 0;  // not a zone status event we understand
  if (std::strcmp(newstate, oldstate) == 0) return 0;  // the kernel's same-state repeat
  auto key = std::make_pair(std::string(zonename), zoneid);
  auto it = sub->last_state.find(key);
  if (it != sub->last_state.end() && it->second == newstate) return 0;  // already delivered

  auto* copy = new ZoneEvent{zonename, newstate, oldstate, zoneid, when};
  napi_status st = sub->tsfn.NonBlockingCall(copy);
  if (st != napi_ok) {
    delete copy;
    return st == napi_queue_full ? EAGAIN : 0;  // full: redeliver later; closing: drop
  }
  if (std::strcmp(newstate, ZONE_EVENT_UNINITIALIZED) == 0) {
    sub->last_state.erase(key);  // the zone is gone; its id will not come back
  } else {
    sub->last_state[key] = newstate;
  }
  return 0;
}

void DeliverEvent(Napi::Env env, Napi::Function callback, Subscription* sub, ZoneEvent* ev) {
  std::unique_ptr<ZoneEvent> owned(ev);
  if (env == nullptr || callback.IsEmpty() || sub == nullptr || owned == nullptr) return;
  if (sub->closing) return;  // close() was called: deliver nothing more
  Napi::Object obj = Napi::Object::New(env);
  obj.Set("zonename", Napi::String::New(env, owned->zonename));
  obj.Set("zoneid", Napi::Number::New(env, owned->zoneid));
  obj.Set("oldstate", Napi::String::New(env, owned->oldstate));
  obj.Set("newstate", Napi::String::New(env, owned->newstate));
  obj.Set("when", Napi::BigInt::New(env, owned->when));
  try {
    callback.Call({obj});
  } catch (const Napi::Error& e) {
    // A throwing listener is the application's uncaught exception, as from any JS callback.
    napi_fatal_exception(env, e.Value());
  }
}

// On the SerialThread (or the cleanup hook once it stopped, or the JS thread if the subscribe never
// reached the thread): unsubscribe, unbind, release.
void Unsubscribe(Subscription& sub) {
  if (sub.ch != nullptr) {
    int e = api.sysevent_evc_unsubscribe(sub.ch, sub.sid);
    (void)e;  // EINVAL if already gone; unbind below unsubscribes everything anyway
    api.sysevent_evc_unbind(sub.ch);
    sub.ch = nullptr;
  }
  if (!sub.tsfn_released) {
    sub.tsfn_released = true;
    sub.tsfn.Release();
  }
}

struct SubscribeResult {
  bool ok = false;
  NativeError error;
};

Napi::Value Close(const Napi::CallbackInfo& info, const StatePtr& state, const std::shared_ptr<Subscription>& sub) {
  Napi::Env env = info.Env();
  if (sub->closed) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  if (sub->closing) {
    auto d = Napi::Promise::Deferred::New(env);
    sub->close_waiters.push_back(d);
    return d.Promise();
  }
  sub->closing = true;
  return Schedule<bool>(
      env, state->thread,
      [sub]() -> bool {
        Unsubscribe(*sub);
        return true;
      },
      [state, sub](Napi::Env e, bool&) -> Napi::Value {
        sub->closed = true;
        state->subs.erase(sub->id);
        for (auto& d : sub->close_waiters) d.Resolve(e.Undefined());
        sub->close_waiters.clear();
        return e.Undefined();
      },
      // Not closed after all (the promise rejects): still open, and close() may be tried again.
      [sub] { sub->closing = false; });
}

Napi::Object MakeHandle(Napi::Env env, const StatePtr& state, const std::shared_ptr<Subscription>& sub) {
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("id", Napi::Number::New(env, static_cast<double>(sub->id)));
  handle.Set("close", Napi::Function::New(
                          env,
                          [state, sub](const Napi::CallbackInfo& info) -> Napi::Value { return Close(info, state, sub); },
                          "close"));
  handle.Set("ref", Napi::Function::New(
                        env,
                        [sub](const Napi::CallbackInfo& info) -> Napi::Value {
                          if (!sub->closing) sub->tsfn.Ref(info.Env());
                          return info.Env().Undefined();
                        },
                        "ref"));
  handle.Set("unref", Napi::Function::New(
                          env,
                          [sub](const Napi::CallbackInfo& info) -> Napi::Value {
                            if (!sub->closing) sub->tsfn.Unref(info.Env());
                            return info.Env().Undefined();
                          },
                          "unref"));
  return handle;
}

Napi::Value ZoneEventsSubscribe(const Napi::CallbackInfo& info, const StatePtr& state) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) ThrowArgError(env, "callback must be a function");
  auto sub = std::make_shared<Subscription>();
  sub->id = state->next_sub_id++;
  sub->tsfn = EventTsfn::New(env, info[0].As<Napi::Function>(), "zoneEvents", kMaxQueued, 1, sub.get());
  // Until the subscribe reaches the thread, nothing else would release the thread-safe function
  // (ref'd, it holds the event loop open) or take the subscription out of the registry.
  auto abandon = [state, sub] {
    sub->closing = sub->closed = true;
    state->subs.erase(sub->id);
    Unsubscribe(*sub);
  };
  try {
    state->subs[sub->id] = sub;
  } catch (...) {
    abandon();
    throw;
  }

  return Schedule<SubscribeResult>(
      env, state->thread,
      [sub]() -> SubscribeResult {
        SubscribeResult r;
        try {
          lib.Require();
          nvpair_library().Require();
          evchan_t* ch = nullptr;
          int e = api.sysevent_evc_bind(ZONE_EVENT_CHANNEL, &ch, 0);
          if (e != 0) FailErrno("sysevent_evc_bind", e);
          // A subscriber id unique on the channel: "sled_<pid>_<n>" (libzonecfg's scheme,
          // "zone_<pid % 999999>_<n>", with our prefix), at most 15 characters.
          for (int n = 1;; ++n) {
            char sid[32];
            snprintf(sid, sizeof(sid), "sled_%ld_%d", static_cast<long>(getpid() % 99999L), n);
            if (n > 999 || std::strlen(sid) >= MAX_SUBID_LEN) {
              api.sysevent_evc_unbind(ch);
              Fail("EEXIST", "no free subscriber id on " ZONE_EVENT_CHANNEL);
            }
            e = api.sysevent_evc_xsubscribe(ch, sid, ZONE_EVENT_STATUS_CLASS, &OnChannelEvent, sub.get(), 0, nullptr);
            if (e == 0) {
              std::memcpy(sub->sid, sid, std::strlen(sid) + 1);
              break;
            }
            if (e != EEXIST) {
              api.sysevent_evc_unbind(ch);
              FailErrno("sysevent_evc_xsubscribe", e);
            }
          }
          sub->ch = ch;
          r.ok = true;
        } catch (const NativeError& err) {
          r.error = err;
        }
        if (!r.ok) Unsubscribe(*sub);  // releases the thread-safe function
        return r;
      },
      [state, sub](Napi::Env e, SubscribeResult& r) -> Napi::Value {
        if (!r.ok) {
          sub->closing = sub->closed = true;
          state->subs.erase(sub->id);
          throw ToJsError(e, r.error);
        }
        return MakeHandle(e, state, sub);
      },
      abandon);
}

void EnvState::Cleanup() {
  thread.Stop();  // finishes queued subscribes and closes
  for (auto& [id, sub] : subs) {
    sub->closing = true;
    Unsubscribe(*sub);
  }
  subs.clear();
}

}  // namespace

void InitEvents(Napi::Env env, Napi::Object exports) {
  auto state = std::make_shared<EnvState>();
  exports.Set("zoneEventsSubscribe",
              Napi::Function::New(
                  env, [state](const Napi::CallbackInfo& info) -> Napi::Value { return ZoneEventsSubscribe(info, state); },
                  "zoneEventsSubscribe"));
  env.AddCleanupHook([state] { state->Cleanup(); });
}

}  // namespace sled
