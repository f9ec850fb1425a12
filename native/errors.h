// Errors cross from the libraries to JavaScript as data: a code (the library's own constant
// name, e.g. "Z_NO_ZONE", "DLADM_STATUS_NOTFOUND", "EZFS_EXISTS") and the library's message.
// Work running off the JS thread throws NativeError; the promise rejects with an Error whose
// `code` and `message` are those.
#pragma once

#include <napi.h>

#include <functional>
#include <string>
#include <utility>

namespace sled {

struct NativeError {
  std::string code;
  std::string message;
};

[[noreturn]] inline void Fail(std::string code, std::string message) {
  throw NativeError{std::move(code), std::move(message)};
}

inline Napi::Error ToJsError(Napi::Env env, const NativeError& err) {
  Napi::Error error = Napi::Error::New(env, err.message);
  error.Set("code", Napi::String::New(env, err.code));
  return error;
}

// Argument checks on the JS thread: a TypeError with code ERR_INVALID_ARG_TYPE naming the argument.
[[noreturn]] inline void ThrowArgError(Napi::Env env, const std::string& message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  throw error;
}

inline std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) ThrowArgError(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

inline Napi::Object ArgObject(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsObject()) ThrowArgError(info.Env(), std::string(name) + " must be an object");
  return info[i].As<Napi::Object>();
}

inline double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) ThrowArgError(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

// Optional fields of an options object.
inline std::string OptString(const Napi::Object& obj, const char* key, const std::string& fallback = "") {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsString()) ThrowArgError(obj.Env(), std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline bool OptBool(const Napi::Object& obj, const char* key, bool fallback) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) ThrowArgError(obj.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

inline double OptNumber(const Napi::Object& obj, const char* key, double fallback) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) ThrowArgError(obj.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

// Runs `body` (which returns a Promise); an exception thrown while checking arguments becomes a
// rejected Promise, so a caller sees one failure path.
inline Napi::Value AsPromise(const Napi::CallbackInfo& info, const std::function<Napi::Value()>& body) {
  try {
    return body();
  } catch (const Napi::Error& e) {
    auto deferred = Napi::Promise::Deferred::New(info.Env());
    deferred.Reject(e.Value());
    return deferred.Promise();
  }
}

}  // namespace sled
