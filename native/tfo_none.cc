// Systems without a TCP Fast Open implementation in synmux (FreeBSD, the
// other BSDs, AIX, ...). Sockets, bind, close and waitWritable still work
// (socket_unix.cc, wait_unix.cc); every TFO call throws a Node-style ENOTSUP
// error, and TypeScript uses plain `net` with reason 'unsupported-platform'
// (its SUPPORTED_PLATFORMS does not list these systems, so in practice none
// of these is called).
#include "tfo.h"

#include <cerrno>

#ifndef ENOTSUP
#define ENOTSUP EOPNOTSUPP
#endif

namespace synmux {

namespace {

[[noreturn]] void Unsupported(const Napi::CallbackInfo& info, const char* syscall) {
  throw ErrnoError(info.Env(), ENOTSUP, syscall);
}

}  // namespace

Napi::Value SetFastOpenConnect(const Napi::CallbackInfo& info) {
  ArgCount(info, 1);
  ArgSocket(info, 0);
  Unsupported(info, "setsockopt");
}

Napi::Value SetFastOpenListen(const Napi::CallbackInfo& info) {
  ArgCount(info, 2);
  ArgSocket(info, 0);
  ArgInt(info, 1, "queue", 1, 0x7fffffff);
  Unsupported(info, "setsockopt");
}

Napi::Value ConnectData(const Napi::CallbackInfo& info) {
  ArgCount(info, 4);
  ArgSocket(info, 0);
  Unsupported(info, "connectData");
}

Napi::Value TriggerConnect(const Napi::CallbackInfo& info) {
  ArgCount(info, 1);
  ArgSocket(info, 0);
  return info.Env().Undefined();  // connects never defer here
}

Napi::Value TcpInfo(const Napi::CallbackInfo& info) {
  ArgCount(info, 1);
  ArgSocket(info, 0);
  Unsupported(info, "getsockopt");
}

Napi::Object PlatformInfo(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("platform", Napi::String::New(env, "none"));
  o.Set("clientMethod", Napi::String::New(env, "none"));
  o.Set("serverMethod", Napi::String::New(env, "none"));
  return o;
}

}  // namespace synmux
