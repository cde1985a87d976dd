// waitWritable(fd, cb): one-shot wait until a connecting socket is writable.
//
// The poll watches a dup() of the descriptor, so it never collides with a
// libuv handle that may already own `fd` (libuv keeps one watcher per fd
// number). The callback receives null once connected, or the SO_ERROR
// error. The returned object's cancel() stops the wait without calling back.
#include "tfo.h"
#include "addon.h"

#include <cerrno>
#include <exception>
#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

namespace synmux {

namespace {

// Lives until libuv's close callback; the JS wrapper may die earlier.
struct PollState {
  uv_poll_t poll;
  int dupfd;
  WaitHandle* owner;  // cleared when the wrapper stops caring
};

void OnClosed(uv_handle_t* handle) {
  PollState* ps = static_cast<PollState*>(handle->data);
  close(ps->dupfd);
  delete ps;
}

}  // namespace

Napi::Function WaitHandle::Init(Napi::Env env) {
  return DefineClass(env, "WaitHandle", {InstanceMethod<&WaitHandle::Cancel>("cancel")});
}

WaitHandle::WaitHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WaitHandle>(info) {}

WaitHandle::~WaitHandle() { Stop(); }

void WaitHandle::Stop() {
  if (!state_) return;
  PollState* ps = static_cast<PollState*>(state_);
  state_ = nullptr;
  ps->owner = nullptr;
  uv_poll_stop(&ps->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&ps->poll), OnClosed);
}

Napi::Value WaitHandle::Cancel(const Napi::CallbackInfo& info) {
  if (state_) {
    Stop();
    callback_.Reset();
    Unref();
  }
  return info.Env().Undefined();
}

void WaitHandle::OnPoll(uv_poll_t* handle, int status, int events) {
  PollState* ps = static_cast<PollState*>(handle->data);
  WaitHandle* self = ps->owner;
  if (!self) return;
  int err = 0;
  socklen_t len = sizeof(err);
  // Read SO_ERROR through our own descriptor: the caller's may already be
  // closed (and its number reused) by the time this runs.
  if (getsockopt(ps->dupfd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == 0 && status < 0) err = -status;
  Napi::Env env = self->Env();
  Napi::HandleScope scope(env);
  // This runs from libuv, outside any JavaScript frame: a C++ exception
  // must not unwind into libuv (that aborts the process). A JavaScript
  // exception thrown by the callback arrives here as a Napi::Error; hand it
  // to Node as an uncaught exception, exactly as for any other callback
  // ('uncaughtException' listeners see it, otherwise Node reports it and exits).
  try {
    Napi::FunctionReference cb = std::move(self->callback_);
    self->Stop();
    Napi::Object keep = self->Value();
    self->Unref();
    Napi::Value arg = err ? Napi::Value(ErrnoError(env, err, "connect").Value()) : env.Null();
    cb.MakeCallback(keep, {arg});
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  } catch (const std::exception& e) {
    napi_fatal_exception(env, Napi::Error::New(env, e.what()).Value());
  }
}

Napi::Value WaitWritable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 2);
  int fd = ArgSocket(info, 0);
  Napi::Function fn = ArgFunction(info, 1, "callback");

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, "No event loop");
  }
#ifdef F_DUPFD_CLOEXEC
  int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
#else
  int dupfd = dup(fd);
#endif
  if (dupfd < 0) throw ErrnoError(env, errno, "dup");

  PollState* ps = new PollState();
  ps->dupfd = dupfd;
  ps->owner = nullptr;
  int r = uv_poll_init_socket(loop, &ps->poll, dupfd);
  if (r != 0) {
    close(dupfd);
    delete ps;
    throw ErrnoError(env, -r, "uv_poll_init");
  }
  ps->poll.data = ps;
  r = uv_poll_start(&ps->poll, UV_WRITABLE | UV_DISCONNECT, WaitHandle::OnPoll);
  if (r != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&ps->poll), OnClosed);
    throw ErrnoError(env, -r, "uv_poll_start");
  }

  Napi::Object obj = env.GetInstanceData<AddonData>()->waitHandle.New({});
  WaitHandle* self = WaitHandle::Unwrap(obj);
  self->state_ = ps;
  self->callback_ = Napi::Persistent(fn);
  ps->owner = self;
  self->Ref();  // pinned while the poll is active
  return obj;
}

}  // namespace synmux
