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
      {
        std::lock_guard<std::mutex> lock(envs_mu_);
        if (--envs_ > 0) return;
      }
      if (close_) Post(close_);
      Stop();
    });
  }

  // Finishes queued tasks, then joins.
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
  std::mutex envs_mu_;
  int envs_ = 0;
  std::function<void()> close_;
};

template <typename T>
struct Job {
  std::function<T()> work;
  std::function<Napi::Value(Napi::Env, T&)> convert;
  Napi::Promise::Deferred deferred;
  napi_threadsafe_function tsfn = nullptr;
  std::optional<T> result;
  std::optional<NativeError> error;
};

// Runs on the JS thread (or with env == nullptr while the environment is torn down). Plain N-API
// here rather than node-addon-api's TypedThreadSafeFunction: that one compares its callback
// template argument with nullptr in a constant expression, which g++ rejects under
// -fsanitize=undefined (-fno-delete-null-pointer-checks), and test:asan must build.
template <typename T>
void SettleJob(napi_env raw_env, napi_value, void*, void* data) {
  std::unique_ptr<Job<T>> job(static_cast<Job<T>*>(data));
  if (raw_env == nullptr) return;  // nobody is waiting any more
  Napi::Env env(raw_env);
  Napi::HandleScope scope(env);
  if (job->error) {
    job->deferred.Reject(ToJsError(env, *job->error).Value());
    return;
  }
  try {
    job->deferred.Resolve(job->convert(env, *job->result));
  } catch (const Napi::Error& e) {
    job->deferred.Reject(e.Value());
  }
}

// Runs `work` on `thread`; resolves with convert(result) on the JS thread, or rejects with the
// NativeError `work` threw. `work` must copy out everything it needs from library memory.
template <typename T>
Napi::Promise Schedule(Napi::Env env, SerialThread& thread, std::function<T()> work,
                       std::function<Napi::Value(Napi::Env, T&)> convert) {
  auto job = std::make_unique<Job<T>>(Job<T>{std::move(work), std::move(convert), Napi::Promise::Deferred::New(env),
                                             nullptr, std::nullopt, std::nullopt});
  Napi::Promise promise = job->deferred.Promise();
  napi_status status = napi_create_threadsafe_function(
      env, nullptr, nullptr, Napi::String::New(env, thread.name()), 0, 1, nullptr, nullptr, nullptr,
      &SettleJob<T>, &job->tsfn);
  NAPI_THROW_IF_FAILED(env, status, promise);
  Job<T>* raw = job.release();
  thread.Post([raw]() {
    try {
      raw->result.emplace(raw->work());
    } catch (const NativeError& e) {
      raw->error = e;
    } catch (const std::exception& e) {
      raw->error = NativeError{"EINTERNAL", e.what()};
    }
    napi_threadsafe_function tsfn = raw->tsfn;
    // On success SettleJob owns the job; if the environment is closing, nobody will call it.
    if (napi_call_threadsafe_function(tsfn, raw, napi_tsfn_blocking) != napi_ok) delete raw;
    napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  });
  return promise;
}

}  // namespace sled
