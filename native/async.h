// Running library calls off the JS thread. Each library gets one SerialThread: libzonecfg is
// not thread-safe at all, and a dladm or libzfs handle must not be used concurrently, so one
// thread per library (owning that library's handle) serialises exactly what must be serialised
// and never blocks the event loop. (libsysevent and libscf need no serialising: their threads
// are per Node environment, with the rest of what an environment made, see events.cc, scf.cc.)
// Results come back through a thread-safe function: one per (SerialThread, Node environment),
// created by the first call from that environment and kept for its lifetime (see Channel below).
#pragma once

#include <napi.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "errors.h"

namespace sled {

class SerialThread;

namespace detail {

// A finished call waiting to be settled on its environment's JS thread: queued on the channel's
// thread-safe function, which owns it from then on.
class Completion {
 public:
  virtual ~Completion() = default;
  // On the JS thread. Never throws.
  virtual void Settle(Napi::Env env) noexcept = 0;
};

// The way back from one SerialThread to one Node environment (the main thread's or a worker's):
// one thread-safe function, created on that environment's JS thread by its first call and
// released by an env cleanup hook registered right after it (so the hook runs before Node's own
// clean-up of the thread-safe function: cleanup hooks run last-registered first).
//  - Unref'd while no call from the environment is in flight, ref'd while one is (`pending_`,
//    JS thread only), so it keeps the process alive exactly as long as a call is outstanding.
//  - The library thread queues completions under `mu_` and only while `tsfn_` is set; the cleanup
//    hook clears it under `mu` before releasing, so the thread-safe function is never used
//    after its release. A completion that finds it cleared is dropped (deleted) on the library
//    thread; one still queued when the environment goes is dropped by Node (CallJs with a null
//    env). Either way its promise is never settled: nobody is left to see it.
class Channel {
 public:
  Channel(SerialThread* owner, napi_env env) : owner(owner), env(env) {}
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  SerialThread* const owner;
  const napi_env env;

  // On the library thread. Takes ownership of `c` (settled on the JS thread, or dropped here).
  void Deliver(Completion* c) noexcept {
    bool queued = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Unbounded queue: never blocks, so holding mu_ across the call is fine.
      queued = tsfn_ != nullptr && napi_call_threadsafe_function(tsfn_, c, napi_tsfn_nonblocking) == napi_ok;
    }
    if (!queued) delete c;
  }

  // On the JS thread, once a call is scheduled: the first call in flight refs the thread-safe
  // function (keeping the event loop alive until its completion has been settled).
  void Begin(napi_env js_env) noexcept {
    if (pending_++ == 0 && tsfn_ != nullptr) napi_ref_threadsafe_function(js_env, tsfn_);
  }

  // The thread-safe function's call_js: on the JS thread (env set), or while the environment's
  // thread-safe function is finalized with completions still queued (env null: drop them).
  static void CallJs(napi_env env, napi_value, void* context, void* data) noexcept {
    std::unique_ptr<Completion> c(static_cast<Completion*>(data));
    if (env == nullptr || c == nullptr) return;
    // Alive: the completion holds it. Open: Node dispatches nothing once the hook has released.
    auto* self = static_cast<Channel*>(context);
    c->Settle(Napi::Env(env));
    if (self->pending_ > 0 && --self->pending_ == 0 && self->tsfn_ != nullptr) {
      napi_unref_threadsafe_function(env, self->tsfn_);
    }
  }

 private:
  friend class sled::SerialThread;
  size_t pending_ = 0;  // JS thread only: calls scheduled and not yet settled
  std::mutex mu_;
  // Written on the JS thread only (creation, cleanup hook; the latter under mu_); read there, or
  // under mu_ by the library thread.
  napi_threadsafe_function tsfn_ = nullptr;
};

}  // namespace detail

class SerialThread {
 public:
  explicit SerialThread(std::string name) : name_(std::move(name)) {}
  SerialThread(const SerialThread&) = delete;
  SerialThread& operator=(const SerialThread&) = delete;
  ~SerialThread() { Stop(); }

  const std::string& name() const { return name_; }

  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(task));
      if (!running_) {
        // A thread that has left Run() (or none): join what is left of it, start a new one.
        if (thread_.joinable()) thread_.join();
        try {
          thread_ = std::thread([this] { Run(); });
        } catch (...) {
          queue_.pop_back();
          throw;
        }
        running_ = true;
      }
    }
    cv_.notify_one();
  }

  // Ties the thread to a Node environment: when the last environment using it goes away (the
  // main thread's, or a worker's), `close` runs on this thread (releasing the library handle the
  // thread owns) and the thread is joined.
  void AttachTo(Napi::Env env, std::function<void()> close = nullptr) {
    {
      std::lock_guard<std::mutex> lock(envs_mu_);
      ++envs_;
      if (close) close_ = std::move(close);
    }
    env.AddCleanupHook([this] {
      std::function<void()> close;
      {
        std::lock_guard<std::mutex> lock(envs_mu_);
        if (--envs_ > 0) return;
        close = close_;
      }
      if (close) {
        try {
          Post(close);
        } catch (...) {
          // No thread could be started, so none is using the library: close it here rather than
          // let the exception leave a cleanup hook, which would abort the process at its exit.
          close();
        }
      }
      Stop();
    });
  }

  // Finishes queued tasks, then joins. Safe to call from several environments' cleanup hooks at
  // once (they take turns) and while other environments keep posting: a task posted meanwhile
  // is run by this thread before it exits, or by a new one.
  void Stop() {
    std::lock_guard<std::mutex> turn(stop_mu_);
    std::thread t;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      t = std::move(thread_);
    }
    cv_.notify_all();
    if (t.joinable()) t.join();
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
  }

  // On `env`'s JS thread: this thread's channel back to `env`, created (thread-safe function,
  // cleanup hook) by the first call. Throws Napi::Error if Node refuses.
  std::shared_ptr<detail::Channel> ChannelFor(napi_env env) {
    {
      std::lock_guard<std::mutex> lock(channels_mu_);
      for (const auto& ch : channels_)
        if (ch->env == env) return ch;
    }
    // Only env's own JS thread creates env's channel; registered once complete. (Should an async
    // hook re-enter from napi_create_threadsafe_function, env gets a second, equally valid one.)
    auto ch = std::make_shared<detail::Channel>(this, env);
    napi_value name = nullptr;
    napi_status status = napi_create_string_utf8(env, name_.data(), name_.size(), &name);
    if (status == napi_ok) {
      status = napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, ch.get(),
                                               &detail::Channel::CallJs, &ch->tsfn_);
    }
    if (status != napi_ok) throw Napi::Error::New(env, "cannot create the thread-safe function of " + name_);
    bool hooked = false;
    try {
      status = napi_unref_threadsafe_function(env, ch->tsfn_);  // no call in flight yet
      if (status == napi_ok) status = napi_add_env_cleanup_hook(env, &SerialThread::CloseChannel, ch.get());
      hooked = status == napi_ok;
      if (!hooked) throw Napi::Error::New(env, "cannot register the clean-up of " + name_ + "'s thread-safe function");
      std::lock_guard<std::mutex> lock(channels_mu_);
      channels_.push_back(ch);
    } catch (...) {
      if (hooked) napi_remove_env_cleanup_hook(env, &SerialThread::CloseChannel, ch.get());
      napi_release_threadsafe_function(ch->tsfn_, napi_tsfn_abort);
      throw;
    }
    return ch;
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) {
          running_ = false;  // decided under mu_: a later Post starts a new thread
          return;
        }
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  // Removes `ch` from the registry and returns the registry's reference (null if absent).
  std::shared_ptr<detail::Channel> Forget(detail::Channel* ch) noexcept {
    std::shared_ptr<detail::Channel> out;
    std::lock_guard<std::mutex> lock(channels_mu_);
    for (auto it = channels_.begin(); it != channels_.end(); ++it) {
      if (it->get() == ch) {
        out = std::move(*it);
        channels_.erase(it);
        break;
      }
    }
    return out;
  }

  // Env cleanup hook (the environment's JS thread, while it is torn down): closes the channel and
  // releases its thread-safe function; completions still queued are dropped by Node.
  static void CloseChannel(void* arg) noexcept {
    auto* raw = static_cast<detail::Channel*>(arg);
    std::shared_ptr<detail::Channel> ch = raw->owner->Forget(raw);  // keeps it alive here
    napi_threadsafe_function tsfn = nullptr;
    {
      std::lock_guard<std::mutex> lock(raw->mu_);
      tsfn = raw->tsfn_;
      raw->tsfn_ = nullptr;
    }
    if (tsfn != nullptr) napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
  }

  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::thread thread_;
  bool running_ = false;  // a thread is in Run() and will look at queue_ again
  bool stopping_ = false;
  std::mutex stop_mu_;
  std::mutex envs_mu_;
  int envs_ = 0;
  std::function<void()> close_;
  std::mutex channels_mu_;
  std::vector<std::shared_ptr<detail::Channel>> channels_;  // one per environment, few
};

namespace detail {

// Rejects with what `error()` makes; if that or the rejection fails too (the environment is
// being torn down and can no longer run JavaScript), the promise is left unsettled: never a
// second exception, which node-addon-api could not hand to JavaScript either.
template <typename F>
void RejectQuietly(const Napi::Promise::Deferred& deferred, F&& error) noexcept {
  try {
    deferred.Reject(error());
  } catch (...) {
  }
}

template <typename T>
class Job final : public Completion {
 public:
  Job(std::function<T()> work, std::function<Napi::Value(Napi::Env, T&)> convert, Napi::Promise::Deferred deferred,
      std::shared_ptr<Channel> channel)
      : work_(std::move(work)), convert_(std::move(convert)), deferred_(deferred), channel_(std::move(channel)) {}

  // On the library thread. Hands the job to its channel: after this, `this` may be gone.
  void Run() noexcept {
    try {
      result_.emplace(work_());
    } catch (const NativeError& e) {
      error_ = e;
    } catch (const std::exception& e) {
      error_ = NativeError{"EINTERNAL", e.what()};
    } catch (...) {
      error_ = NativeError{"EINTERNAL", "unknown exception"};
    }
    std::shared_ptr<Channel> channel = channel_;  // outlives the job, which may be settled at once
    channel->Deliver(this);
  }

  // On the JS thread, inside the thread-safe function's handle and callback scopes (no handle
  // scope of our own needed). Plain N-API there rather than node-addon-api's
  // TypedThreadSafeFunction: that one compares its callback template argument with nullptr in a
  // constant expression, which g++ rejects under -fsanitize=undefined
  // (-fno-delete-null-pointer-checks), and test:asan must build.
  void Settle(Napi::Env env) noexcept override {
    try {
      if (error_) {
        deferred_.Reject(ToJsError(env, *error_).Value());
      } else {
        deferred_.Resolve(convert_(env, *result_));
      }
    } catch (const Napi::Error& e) {
      RejectQuietly(deferred_, [&] { return e.Value(); });
    } catch (const std::exception& e) {
      RejectQuietly(deferred_, [&] { return ToJsError(env, NativeError{"EINTERNAL", e.what()}).Value(); });
    } catch (...) {
      RejectQuietly(deferred_, [&] { return ToJsError(env, NativeError{"EINTERNAL", "unknown exception"}).Value(); });
    }
  }

 private:
  std::function<T()> work_;
  std::function<Napi::Value(Napi::Env, T&)> convert_;
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Channel> channel_;
  std::optional<T> result_;
  std::optional<NativeError> error_;
};

}  // namespace detail

// Runs `work` on `thread`; resolves with convert(result) on the JS thread, or rejects with the
// NativeError `work` threw. `work` must copy out everything it needs from library memory.
// If the environment goes away before the call finishes, its promise is dropped unsettled.
// If the call cannot be scheduled (Node refuses the thread-safe function, the thread cannot
// start), `work` never runs: the promise rejects at once (or, if not even a promise can be made,
// Napi::Error is thrown), and `unscheduled` runs before Schedule returns or throws, on the JS
// thread, so the caller can release what it set up for the work. It must not throw.
template <typename T>
Napi::Promise Schedule(Napi::Env env, SerialThread& thread, std::function<T()> work,
                       std::function<Napi::Value(Napi::Env, T&)> convert,
                       std::function<void()> unscheduled = nullptr) {
  // Runs on every way out of here until the work has been handed to the thread.
  struct Undo {
    std::function<void()> fn;
    ~Undo() {
      if (fn) fn();
    }
  } undo{std::move(unscheduled)};
  std::shared_ptr<detail::Channel> channel;
  std::unique_ptr<detail::Job<T>> job;
  auto deferred = Napi::Promise::Deferred::New(env);  // can only throw Napi::Error
  try {
    channel = thread.ChannelFor(env);
    job = std::make_unique<detail::Job<T>>(std::move(work), std::move(convert), deferred, channel);
    detail::Job<T>* raw = job.get();
    thread.Post([raw] { raw->Run(); });
    job.release();  // now the task's, then the channel's
    undo.fn = nullptr;
  } catch (const Napi::Error& e) {
    detail::RejectQuietly(deferred, [&] { return e.Value(); });
    return deferred.Promise();
  } catch (const std::exception& e) {
    detail::RejectQuietly(deferred, [&] { return ToJsError(env, NativeError{"EINTERNAL", e.what()}).Value(); });
    return deferred.Promise();
  }
  channel->Begin(env);
  return deferred.Promise();
}

}  // namespace sled
