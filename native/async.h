// Running library calls off the JS thread. Each library gets one SerialThread: libzonecfg is
// not thread-safe at all, and a dladm or libzfs handle must not be used concurrently, so one
// thread per library (owning that library's handle) serialises exactly what must be serialised
// and never blocks the event loop. Results come back through a thread-safe function.
#pragma once

#include <napi.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "errors.h"

namespace sled {

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
      if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  // Finishes queued tasks, then joins. Called from an environment cleanup hook.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::thread thread_;
  bool stopping_ = false;
};

template <typename T>
struct Job {
  std::function<T()> work;
  std::function<Napi::Value(Napi::Env, T&)> convert;
  Napi::Promise::Deferred deferred;
  std::optional<T> result;
  std::optional<NativeError> error;
};

template <typename T>
void SettleJob(Napi::Env env, Napi::Function, std::nullptr_t*, Job<T>* job) {
  std::unique_ptr<Job<T>> owned(job);
  if (env == nullptr) return;  // the environment is going away; nobody is waiting
  if (owned->error) {
    owned->deferred.Reject(ToJsError(env, *owned->error).Value());
    return;
  }
  try {
    owned->deferred.Resolve(owned->convert(env, *owned->result));
  } catch (const Napi::Error& e) {
    owned->deferred.Reject(e.Value());
  }
}

// Runs `work` on `thread`; resolves with convert(result) on the JS thread, or rejects with the
// NativeError `work` threw. `work` must copy out everything it needs from library memory.
template <typename T>
Napi::Promise Schedule(Napi::Env env, SerialThread& thread, std::function<T()> work,
                       std::function<Napi::Value(Napi::Env, T&)> convert) {
  using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Job<T>, &SettleJob<T>>;
  auto* job = new Job<T>{std::move(work), std::move(convert), Napi::Promise::Deferred::New(env), std::nullopt, std::nullopt};
  Napi::Promise promise = job->deferred.Promise();
  Tsfn tsfn = Tsfn::New(env, thread.name().c_str(), 0, 1);
  thread.Post([job, tsfn]() mutable {
    try {
      job->result.emplace(job->work());
    } catch (const NativeError& e) {
      job->error = e;
    } catch (const std::exception& e) {
      job->error = NativeError{"EINTERNAL", e.what()};
    }
    if (tsfn.BlockingCall(job) != napi_ok) delete job;
    tsfn.Release();
  });
  return promise;
}

}  // namespace sled
