// libscf: a service instance's restarter/state inside a zone, read once or waited for.
//
// smfState(zone, fmri) -> Promise<string>
//   On the "scf" SerialThread: scf_handle_create, scf_value_set_astring(zone) +
//   scf_handle_decorate(h, "zone", v) BEFORE scf_handle_bind (illumos-abi.md §6.2; svcs -z does
//   the same), scf_handle_decode_fmri into an instance (EXACT | REQUIRE_INSTANCE),
//   scf_instance_get_pg("restarter"), scf_pg_get_property("state"), scf_property_get_value,
//   scf_value_get_astring. A handle per call, destroyed before the promise settles.
//   (The same property-group path as the wait below, rather than scf_simple_prop_get, so that a
//   read and a wait see the repository through the same calls.)
//
// smfWaitState(zone, fmri, {states, timeoutMs?}) -> {promise: Promise<string>, cancel(): boolean}
//   Resolves with the state as soon as it is one of `states` (at once if it already is). Each
//   wait runs on its OWN thread with its OWN handle (a _scf_pg_wait blocks, and only one may be
//   outstanding per handle), so it never stalls smfState's thread or other waits. The loop is
//   svcprop -w's (svcprop.c do_wait): read the state; if not wanted, _scf_pg_wait(pg, secs) -- one
//   blocking wait on configd's change notification, no sleeping -- then scf_pg_update(pg), which
//   says whether the pg really moved (1) or not (0), or that it is gone (SCF_ERROR_DELETED).
//   Deadline: timeoutMs (absent = none). _scf_pg_wait takes whole seconds, so each wait gets the
//   remaining time rounded UP to a second; the promise rejects with code "ETIMEDOUT" once a wait
//   returns past the deadline, i.e. no earlier than timeoutMs and at most ~1 s after it. (The
//   typed layer, src/illumos/smf.ts, adds an exact JS timer that cancels the wait.)
//   Cancel: cancel() (returns false if the wait already finished or was cancelled) marks the
//   wait cancelled and, on the "scf-cancel" thread, scf_handle_unbind()s its handle -- the only
//   way libscf offers to interrupt a _scf_pg_wait from another thread: configd drops the
//   client's notification, the wait returns, and the next call fails with NOT_BOUND (see
//   abi/scf.h). The promise then rejects with code "ECANCELED". The wait thread alone destroys
//   its handle, after any in-flight unbind has finished. (Should the "scf-cancel" thread fail to
//   start, cancel() unbinds from the JS thread instead.)
//   A wait whose thread cannot start (the process is out of threads) rejects with "EINTERNAL".
//
// Errors reject with code = the scf_error_t constant's name ("SCF_ERROR_NOT_FOUND",
// "SCF_ERROR_NO_SERVER", ...) and message = scf_strerror()'s text plus the call and its subject;
// "ENOLIB" if libscf is not usable.
//
// Per environment: each Node environment that loads the addon (the main thread's, a worker's) has
// its own SerialThreads and registry of waits (EnvState), so that its teardown cancels what it
// started and nothing another environment started.
// Teardown (env cleanup hook): every pending wait of the environment is cancelled (unbound from
// the cleanup hook's thread) and its thread joined; the environment's SerialThreads are stopped.
// Each wait's promise is settled through its own thread-safe function, released by the wait
// thread when it finishes.
#include <napi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "abi.h"
#include "async.h"
#include "errors.h"
#include "loader.h"
#include "modules.h"

namespace sled {
namespace {

ScfApi api{};

#define SCF_SYM(name) {#name, reinterpret_cast<void**>(&api.name)}

Library lib("scf", "libscf.so.1",
            {
                SCF_SYM(scf_error),
                SCF_SYM(scf_strerror),
                SCF_SYM(scf_handle_create),
                SCF_SYM(scf_handle_decorate),
                SCF_SYM(scf_handle_bind),
                SCF_SYM(scf_handle_unbind),
                SCF_SYM(scf_handle_destroy),
                SCF_SYM(scf_value_create),
                SCF_SYM(scf_value_destroy),
                SCF_SYM(scf_value_set_astring),
                SCF_SYM(scf_value_get_astring),
                SCF_SYM(scf_instance_create),
                SCF_SYM(scf_instance_destroy),
                SCF_SYM(scf_pg_create),
                SCF_SYM(scf_pg_destroy),
                SCF_SYM(scf_property_create),
                SCF_SYM(scf_property_destroy),
                SCF_SYM(scf_handle_decode_fmri),
                SCF_SYM(scf_instance_get_pg),
                SCF_SYM(scf_pg_get_property),
                SCF_SYM(scf_property_get_value),
                SCF_SYM(scf_pg_update),
                SCF_SYM(_scf_pg_wait),
            });

#undef SCF_SYM

const char* ErrorName(scf_error_t e) {
  switch (e) {
    case SCF_ERROR_NONE: return "SCF_ERROR_NONE";
    case SCF_ERROR_NOT_BOUND: return "SCF_ERROR_NOT_BOUND";
    case SCF_ERROR_NOT_SET: return "SCF_ERROR_NOT_SET";
    case SCF_ERROR_NOT_FOUND: return "SCF_ERROR_NOT_FOUND";
    case SCF_ERROR_TYPE_MISMATCH: return "SCF_ERROR_TYPE_MISMATCH";
    case SCF_ERROR_IN_USE: return "SCF_ERROR_IN_USE";
    case SCF_ERROR_CONNECTION_BROKEN: return "SCF_ERROR_CONNECTION_BROKEN";
    case SCF_ERROR_INVALID_ARGUMENT: return "SCF_ERROR_INVALID_ARGUMENT";
    case SCF_ERROR_NO_MEMORY: return "SCF_ERROR_NO_MEMORY";
    case SCF_ERROR_CONSTRAINT_VIOLATED: return "SCF_ERROR_CONSTRAINT_VIOLATED";
    case SCF_ERROR_EXISTS: return "SCF_ERROR_EXISTS";
    case SCF_ERROR_NO_SERVER: return "SCF_ERROR_NO_SERVER";
    case SCF_ERROR_NO_RESOURCES: return "SCF_ERROR_NO_RESOURCES";
    case SCF_ERROR_PERMISSION_DENIED: return "SCF_ERROR_PERMISSION_DENIED";
    case SCF_ERROR_BACKEND_ACCESS: return "SCF_ERROR_BACKEND_ACCESS";
    case SCF_ERROR_HANDLE_MISMATCH: return "SCF_ERROR_HANDLE_MISMATCH";
    case SCF_ERROR_HANDLE_DESTROYED: return "SCF_ERROR_HANDLE_DESTROYED";
    case SCF_ERROR_VERSION_MISMATCH: return "SCF_ERROR_VERSION_MISMATCH";
    case SCF_ERROR_BACKEND_READONLY: return "SCF_ERROR_BACKEND_READONLY";
    case SCF_ERROR_DELETED: return "SCF_ERROR_DELETED";
    case SCF_ERROR_TEMPLATE_INVALID: return "SCF_ERROR_TEMPLATE_INVALID";
    case SCF_ERROR_CALLBACK_FAILED: return "SCF_ERROR_CALLBACK_FAILED";
    case SCF_ERROR_INTERNAL: return "SCF_ERROR_INTERNAL";
  }
  return "SCF_ERROR_UNKNOWN";
}

// The current thread's scf_error() as a NativeError.
[[noreturn]] void FailScf(const char* call, const std::string& zone, const std::string& fmri) {
  scf_error_t e = api.scf_error();
  const char* text = api.scf_strerror(e);
  Fail(ErrorName(e), std::string(text != nullptr ? text : "unknown error") + " (" + call + ": " + fmri +
                         " in zone " + zone + ")");
}

// The libscf objects of one read or wait. Destroyed children first, then the handle (unbound).
struct Session {
  std::string zone;
  std::string fmri;
  scf_handle_t* h = nullptr;
  scf_value_t* zone_value = nullptr;
  scf_instance_t* inst = nullptr;
  scf_propertygroup_t* pg = nullptr;
  scf_property_t* prop = nullptr;
  scf_value_t* value = nullptr;

  Session(std::string z, std::string f) : zone(std::move(z)), fmri(std::move(f)) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { Close(); }

  void Close() {
    if (value != nullptr) api.scf_value_destroy(value);
    if (prop != nullptr) api.scf_property_destroy(prop);
    if (pg != nullptr) api.scf_pg_destroy(pg);
    if (inst != nullptr) api.scf_instance_destroy(inst);
    if (zone_value != nullptr) api.scf_value_destroy(zone_value);
    value = nullptr;
    prop = nullptr;
    pg = nullptr;
    inst = nullptr;
    zone_value = nullptr;
    if (h != nullptr) {
      api.scf_handle_unbind(h);  // NOT_BOUND if it was not (or was cancelled): fine
      api.scf_handle_destroy(h);
      h = nullptr;
    }
  }

  // scf_handle_create; the handle is not bound yet.
  void Create() {
    h = api.scf_handle_create(SCF_VERSION);
    if (h == nullptr) FailScf("scf_handle_create", zone, fmri);
  }

  // Decorate with the zone, bind, find the instance and its restarter pg.
  void Bind() {
    zone_value = api.scf_value_create(h);
    if (zone_value == nullptr) FailScf("scf_value_create", zone, fmri);
    if (api.scf_value_set_astring(zone_value, zone.c_str()) != SCF_SUCCESS) FailScf("scf_value_set_astring", zone, fmri);
    if (api.scf_handle_decorate(h, "zone", zone_value) != SCF_SUCCESS) FailScf("scf_handle_decorate", zone, fmri);
    if (api.scf_handle_bind(h) != SCF_SUCCESS) FailScf("scf_handle_bind", zone, fmri);
  }

  void Lookup() {
    inst = api.scf_instance_create(h);
    pg = api.scf_pg_create(h);
    prop = api.scf_property_create(h);
    value = api.scf_value_create(h);
    if (inst == nullptr || pg == nullptr || prop == nullptr || value == nullptr) FailScf("scf_*_create", zone, fmri);
    if (api.scf_handle_decode_fmri(h, fmri.c_str(), nullptr, nullptr, inst, nullptr, nullptr,
                                   SCF_DECODE_FMRI_EXACT | SCF_DECODE_FMRI_REQUIRE_INSTANCE) != SCF_SUCCESS)
      FailScf("scf_handle_decode_fmri", zone, fmri);
    if (api.scf_instance_get_pg(inst, SCF_PG_RESTARTER, pg) != SCF_SUCCESS)
      FailScf("scf_instance_get_pg restarter", zone, fmri);
  }

  // restarter/state at the pg's current version.
  std::string ReadState() {
    if (api.scf_pg_get_property(pg, SCF_PROPERTY_STATE, prop) != SCF_SUCCESS)
      FailScf("scf_pg_get_property state", zone, fmri);
    if (api.scf_property_get_value(prop, value) != SCF_SUCCESS) FailScf("scf_property_get_value", zone, fmri);
    char buf[256];
    ssize_t n = api.scf_value_get_astring(value, buf, sizeof(buf));
    if (n < 0) FailScf("scf_value_get_astring", zone, fmri);
    if (static_cast<size_t>(n) >= sizeof(buf)) Fail("SCF_ERROR_INTERNAL", "restarter/state value too long for " + fmri);
    return std::string(buf, static_cast<size_t>(n));
  }
};

struct Wait;

// What one Node environment made. Owned by its cleanup hook and by the functions exported to it;
// the threads apart, the environment's JS thread's alone.
struct EnvState {
  SerialThread thread{"scf"};
  SerialThread cancel_thread{"scf-cancel"};
  // Pending waits (inserted by smfWaitState, erased when settled).
  std::map<uint64_t, std::shared_ptr<Wait>> waits;
  uint64_t next_wait_id = 1;

  void Cleanup();
};
using StatePtr = std::shared_ptr<EnvState>;

// ---- smfState ----

Napi::Value SmfState(const Napi::CallbackInfo& info, const StatePtr& state) {
  std::string zone = ArgString(info, 0, "zone");
  std::string fmri = ArgString(info, 1, "fmri");
  return Schedule<std::string>(
      info.Env(), state->thread,
      [zone, fmri]() -> std::string {
        lib.Require();
        Session s(zone, fmri);
        s.Create();
        s.Bind();
        s.Lookup();
        return s.ReadState();
      },
      [](Napi::Env env, std::string& state) -> Napi::Value { return Napi::String::New(env, state); });
}

// ---- smfWaitState ----

struct WaitResult {
  std::string state;
  std::optional<NativeError> error;
};
void SettleWait(Napi::Env env, Napi::Function, Wait* wait, WaitResult* result);
using WaitTsfn = Napi::TypedThreadSafeFunction<Wait, WaitResult, &SettleWait>;

struct Wait {
  uint64_t id = 0;
  std::weak_ptr<EnvState> owner;  // whose registry it is in
  std::string zone;
  std::string fmri;
  std::vector<std::string> states;
  bool has_deadline = false;
  std::chrono::steady_clock::time_point deadline;
  double timeout_ms = 0;

  Napi::Promise::Deferred deferred;
  WaitTsfn tsfn;
  std::thread worker;

  // Shared between the wait thread and cancellers.
  std::mutex mu;
  std::condition_variable cv;
  scf_handle_t* h = nullptr;  // while the wait thread owns a handle
  bool cancelled = false;
  bool done = false;          // the wait thread has stopped using h
  int unbinding = 0;          // unbinds in flight on another thread

  explicit Wait(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  // The worker holds a reference, so this runs either on the worker as it ends or after it has
  // ended; one never joined must not make std::thread call terminate.
  ~Wait() {
    if (worker.joinable()) worker.detach();
  }

  bool Cancelled() {
    std::lock_guard<std::mutex> lock(mu);
    return cancelled;
  }
  [[noreturn]] void FailOrCancelled(const char* call, Session& s) {
    if (Cancelled()) Fail("ECANCELED", "the wait for " + fmri + " in zone " + zone + " was cancelled");
    FailScf(call, s.zone, s.fmri);
  }
};

bool Wanted(const Wait& w, const std::string& state) {
  for (const auto& s : w.states)
    if (s == state) return true;
  return false;
}

std::string RunWait(Wait& w) {
  lib.Require();
  Session s(w.zone, w.fmri);
  s.Create();
  {
    std::lock_guard<std::mutex> lock(w.mu);
    w.h = s.h;
  }
  // From here on a canceller may unbind s.h at any moment; every failure checks for that.
  struct Release {
    Wait& w;
    Session& s;
    ~Release() {
      std::unique_lock<std::mutex> lock(w.mu);
      w.done = true;
      w.cv.wait(lock, [this] { return w.unbinding == 0; });
      w.h = nullptr;
      lock.unlock();
      s.Close();
    }
  } release{w, s};

  try {
    s.Bind();
    if (w.Cancelled()) Fail("ECANCELED", "the wait for " + w.fmri + " in zone " + w.zone + " was cancelled");
    s.Lookup();
  } catch (const NativeError&) {
    if (w.Cancelled()) Fail("ECANCELED", "the wait for " + w.fmri + " in zone " + w.zone + " was cancelled");
    throw;
  }

  std::string state;
  try {
    state = s.ReadState();
  } catch (const NativeError&) {
    if (w.Cancelled()) Fail("ECANCELED", "the wait for " + w.fmri + " in zone " + w.zone + " was cancelled");
    throw;
  }
  for (;;) {
    if (Wanted(w, state)) return state;
    if (w.Cancelled()) Fail("ECANCELED", "the wait for " + w.fmri + " in zone " + w.zone + " was cancelled");
    int secs = -1;
    if (w.has_deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(w.deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        char ms[32];
        snprintf(ms, sizeof(ms), "%.0f", w.timeout_ms);
        Fail("ETIMEDOUT", "timed out after " + std::string(ms) + " ms waiting for " + w.fmri + " in zone " + w.zone +
                              " (restarter/state is " + state + ")");
      }
      secs = static_cast<int>(std::min<int64_t>((left.count() + 999) / 1000, INT32_MAX / 1000));
    }
    int r = api._scf_pg_wait(s.pg, secs);
    if (r == SCF_FAILED) w.FailOrCancelled("_scf_pg_wait", s);
    if (r == SCF_COMPLETE) continue;  // that wait's time is up: the deadline check above decides
    r = api.scf_pg_update(s.pg);
    if (r == SCF_FAILED) w.FailOrCancelled("scf_pg_update", s);
    if (r == SCF_SUCCESS) continue;  // woke early, the pg did not change: wait again
    try {
      state = s.ReadState();
    } catch (const NativeError&) {
      if (w.Cancelled()) Fail("ECANCELED", "the wait for " + w.fmri + " in zone " + w.zone + " was cancelled");
      throw;
    }
  }
}

void WaitMain(std::shared_ptr<Wait> w) {
  auto* result = new WaitResult();
  try {
    result->state = RunWait(*w);
  } catch (const NativeError& e) {
    result->error = e;
  } catch (const std::exception& e) {
    result->error = NativeError{"EINTERNAL", e.what()};
  }
  {
    std::lock_guard<std::mutex> lock(w->mu);
    w->done = true;
  }
  if (w->tsfn.BlockingCall(result) != napi_ok) delete result;
  w->tsfn.Release();
}

void SettleWait(Napi::Env env, Napi::Function, Wait* wait, WaitResult* result) {
  std::unique_ptr<WaitResult> owned(result);
  if (env == nullptr || wait == nullptr) return;  // teardown: nobody is waiting
  std::shared_ptr<EnvState> state = wait->owner.lock();
  if (state == nullptr) return;
  auto it = state->waits.find(wait->id);
  std::shared_ptr<Wait> keep = it != state->waits.end() ? it->second : nullptr;
  if (keep == nullptr) return;
  state->waits.erase(it);
  if (keep->worker.joinable()) keep->worker.join();  // it has delivered; only its exit remains
  if (owned->error) {
    keep->deferred.Reject(ToJsError(env, *owned->error).Value());
  } else {
    keep->deferred.Resolve(Napi::String::New(env, owned->state));
  }
}

// Unbinds the wait's handle on `runner` (or inline when runner is null). True if it was pending.
bool CancelWait(const std::shared_ptr<Wait>& w, SerialThread* runner) {
  scf_handle_t* h = nullptr;
  {
    std::lock_guard<std::mutex> lock(w->mu);
    if (w->done || w->cancelled) return false;
    w->cancelled = true;
    h = w->h;
    if (h != nullptr) w->unbinding++;
  }
  if (h == nullptr) return true;  // not bound yet: the wait thread checks `cancelled` after binding
  auto unbind = [w, h]() {
    api.scf_handle_unbind(h);
    std::lock_guard<std::mutex> lock(w->mu);
    w->unbinding--;
    w->cv.notify_all();
  };
  if (runner != nullptr) {
    try {
      runner->Post(unbind);
      return true;
    } catch (const std::exception&) {
      // The runner's thread cannot start. Unbinding here blocks the JS thread for a moment; not
      // unbinding would leave the wait uncancellable, and its thread waiting on `unbinding`.
    }
  }
  unbind();
  return true;
}

Napi::Value SmfWaitState(const Napi::CallbackInfo& info, const StatePtr& state) {
  Napi::Env env = info.Env();
  std::string zone = ArgString(info, 0, "zone");
  std::string fmri = ArgString(info, 1, "fmri");
  Napi::Object opts = ArgObject(info, 2, "options");
  Napi::Value states_v = opts.Get("states");
  if (!states_v.IsArray()) ThrowArgError(env, "options.states must be an array of strings");
  Napi::Array states_a = states_v.As<Napi::Array>();
  if (states_a.Length() == 0) ThrowArgError(env, "options.states must not be empty");
  auto w = std::make_shared<Wait>(env);
  for (uint32_t i = 0; i < states_a.Length(); ++i) {
    Napi::Value s = states_a.Get(i);
    if (!s.IsString()) ThrowArgError(env, "options.states must be an array of strings");
    w->states.push_back(s.As<Napi::String>().Utf8Value());
  }
  double timeout_ms = OptNumber(opts, "timeoutMs", -1);
  if (!opts.Get("timeoutMs").IsUndefined() && !opts.Get("timeoutMs").IsNull() &&
      (!std::isfinite(timeout_ms) || timeout_ms < 0))
    ThrowArgError(env, "options.timeoutMs must be a finite number >= 0");
  w->zone = zone;
  w->fmri = fmri;
  if (timeout_ms >= 0) {
    w->has_deadline = true;
    w->timeout_ms = timeout_ms;
    w->deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(std::min(timeout_ms, 1e15)));
  }
  w->id = state->next_wait_id++;
  w->owner = state;

  // The handle first: once the thread runs, nothing may throw before the handle is returned.
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", w->deferred.Promise());
  uint64_t id = w->id;
  handle.Set("cancel", Napi::Function::New(
                           env,
                           [state, id](const Napi::CallbackInfo& ci) -> Napi::Value {
                             auto it = state->waits.find(id);
                             bool pending = it != state->waits.end() && CancelWait(it->second, &state->cancel_thread);
                             return Napi::Boolean::New(ci.Env(), pending);
                           },
                           "cancel"));
  w->tsfn = WaitTsfn::New(env, "smfWaitState", 0, 1, w.get());
  try {
    state->waits[w->id] = w;
    w->worker = std::thread(WaitMain, w);
  } catch (const std::exception& e) {
    // No wait thread (std::system_error: out of threads). Nothing else would release the
    // thread-safe function (ref'd, it holds the event loop open) or settle the promise, and the
    // exception must not reach N-API, which would abort the process.
    state->waits.erase(w->id);
    w->tsfn.Release();
    w->deferred.Reject(
        ToJsError(env, NativeError{"EINTERNAL", "cannot start the wait for " + fmri + " in zone " + zone + ": " + e.what()})
            .Value());
  }
  return handle;
}

void EnvState::Cleanup() {
  // Cancel inline (short calls, and no thread to start while the environment goes), then wait for
  // every wait thread.
  std::vector<std::shared_ptr<Wait>> pending;
  for (auto& [id, w] : waits) pending.push_back(w);
  for (auto& w : pending) CancelWait(w, nullptr);
  for (auto& w : pending)
    if (w->worker.joinable()) w->worker.join();
  waits.clear();
  cancel_thread.Stop();
  thread.Stop();
}

}  // namespace

void InitScf(Napi::Env env, Napi::Object exports) {
  auto state = std::make_shared<EnvState>();
  exports.Set("smfState", Napi::Function::New(
                              env, [state](const Napi::CallbackInfo& info) -> Napi::Value { return SmfState(info, state); },
                              "smfState"));
  exports.Set("smfWaitState",
              Napi::Function::New(
                  env, [state](const Napi::CallbackInfo& info) -> Napi::Value { return SmfWaitState(info, state); },
                  "smfWaitState"));
  env.AddCleanupHook([state] { state->Cleanup(); });
}

}  // namespace sled
