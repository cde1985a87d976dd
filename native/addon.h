// Per-instance addon state (safe with worker threads) and the wait handle.
#pragma once

#include "common.h"

#ifndef _WIN32
#include <uv.h>
#endif

namespace synmux {

struct AddonData {
  Napi::FunctionReference waitHandle;
};

#ifndef _WIN32
class WaitHandle : public Napi::ObjectWrap<WaitHandle> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit WaitHandle(const Napi::CallbackInfo& info);
  ~WaitHandle() override;
  static void OnPoll(uv_poll_t* handle, int status, int events);

 private:
  friend Napi::Value WaitWritable(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  void Stop();
  void* state_ = nullptr;  // PollState while active
  Napi::FunctionReference callback_;
};
#endif

}  // namespace synmux
