// Errors: OS error numbers become Node-style errors.
#include "common.h"

#include <cerrno>
#include <cstring>

namespace synmux {

const char* ErrnoName(int err) {
  switch (err) {
#define E(x) case x: return #x;
#ifdef EACCES
    E(EACCES)
#endif
#ifdef EADDRINUSE
    E(EADDRINUSE)
#endif
#ifdef EADDRNOTAVAIL
    E(EADDRNOTAVAIL)
#endif
#ifdef EAFNOSUPPORT
    E(EAFNOSUPPORT)
#endif
#ifdef EAGAIN
    E(EAGAIN)
#endif
#ifdef EALREADY
    E(EALREADY)
#endif
#ifdef EBADF
    E(EBADF)
#endif
#ifdef ECANCELED
    E(ECANCELED)
#endif
#ifdef ECONNABORTED
    E(ECONNABORTED)
#endif
#ifdef ECONNREFUSED
    E(ECONNREFUSED)
#endif
#ifdef ECONNRESET
    E(ECONNRESET)
#endif
#ifdef EHOSTDOWN
    E(EHOSTDOWN)
#endif
#ifdef EHOSTUNREACH
    E(EHOSTUNREACH)
#endif
#ifdef EINPROGRESS
    E(EINPROGRESS)
#endif
#ifdef EINTR
    E(EINTR)
#endif
#ifdef EINVAL
    E(EINVAL)
#endif
#ifdef EISCONN
    E(EISCONN)
#endif
#ifdef EMFILE
    E(EMFILE)
#endif
#ifdef EMSGSIZE
    E(EMSGSIZE)
#endif
#ifdef ENETDOWN
    E(ENETDOWN)
#endif
#ifdef ENETUNREACH
    E(ENETUNREACH)
#endif
#ifdef ENFILE
    E(ENFILE)
#endif
#ifdef ENOBUFS
    E(ENOBUFS)
#endif
#ifdef ENOMEM
    E(ENOMEM)
#endif
#ifdef ENOPROTOOPT
    E(ENOPROTOOPT)
#endif
#ifdef ENOTCONN
    E(ENOTCONN)
#endif
#ifdef ENOTSOCK
    E(ENOTSOCK)
#endif
#ifdef EOPNOTSUPP
    E(EOPNOTSUPP)
#endif
#if defined(ENOTSUP) && (!defined(EOPNOTSUPP) || ENOTSUP != EOPNOTSUPP)
    E(ENOTSUP)
#endif
#ifdef EPERM
    E(EPERM)
#endif
#ifdef EPIPE
    E(EPIPE)
#endif
#ifdef EPROTONOSUPPORT
    E(EPROTONOSUPPORT)
#endif
#ifdef ETIMEDOUT
    E(ETIMEDOUT)
#endif
#undef E
    default:
      return nullptr;
  }
}

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall) {
  const char* name = ErrnoName(err);
  std::string code = name ? name : ("Unknown system error " + std::to_string(err));
  std::string message = std::string(syscall) + " " + code;
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", name ? Napi::String::New(env, name) : Napi::String::New(env, "UNKNOWN"));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

void ThrowTypeError(Napi::Env env, const char* code, const std::string& msg) {
  Napi::TypeError e = Napi::TypeError::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  throw e;
}

void ThrowRangeError(Napi::Env env, const char* code, const std::string& msg) {
  Napi::RangeError e = Napi::RangeError::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  throw e;
}

}  // namespace synmux
