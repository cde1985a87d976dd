// Windows errors: Winsock / Win32 error codes become the same Node-style
// errors as on POSIX ({ code: 'ECONNREFUSED', errno, syscall }), so the
// TypeScript side never sees a Windows-specific shape.
//
// The mapping follows libuv's uv_translate_sys_error() (src/win/error.c),
// and `errno` is libuv's Windows value for the code (uv/errno.h: there
// UV__ECONNREFUSED is -4078, ...), which is what Node itself reports and
// what util.getSystemErrorMap() knows on Windows.
#ifdef _WIN32
#include "common.h"

#include <windows.h>
#include <winsock2.h>

namespace synmux {

namespace {

struct Mapping {
  const char* name;
  int uv;  // libuv's Windows errno for `name`
};

Mapping Translate(int err) {
  switch (err) {
    case WSAEACCES:
    case ERROR_ACCESS_DENIED:
    case ERROR_NETWORK_ACCESS_DENIED:
      return {"EACCES", -4092};
    case WSAEADDRINUSE:
    case ERROR_ADDRESS_ALREADY_ASSOCIATED:
      return {"EADDRINUSE", -4091};
    case WSAEADDRNOTAVAIL:
      return {"EADDRNOTAVAIL", -4090};
    case WSAEAFNOSUPPORT:
      return {"EAFNOSUPPORT", -4089};
    case WSAEWOULDBLOCK:
      return {"EAGAIN", -4088};
    case WSAEALREADY:
      return {"EALREADY", -4084};
    case ERROR_INVALID_HANDLE:
    case WSAEBADF:
      return {"EBADF", -4083};
    case ERROR_OPERATION_ABORTED:  // == WSA_OPERATION_ABORTED
    case WSAEINTR:
      return {"ECANCELED", -4081};
    case WSAECONNABORTED:
    case ERROR_CONNECTION_ABORTED:
      return {"ECONNABORTED", -4079};
    case WSAECONNREFUSED:
    case ERROR_CONNECTION_REFUSED:
      return {"ECONNREFUSED", -4078};
    case WSAECONNRESET:
    case WSAENETRESET:
    case ERROR_NETNAME_DELETED:
      return {"ECONNRESET", -4077};
    case WSAEFAULT:
    case ERROR_NOACCESS:
      return {"EFAULT", -4074};
    case WSAEHOSTUNREACH:
    case ERROR_HOST_UNREACHABLE:
      return {"EHOSTUNREACH", -4073};
    case WSAEINVAL:
    case ERROR_INVALID_PARAMETER:
    case WSAEPFNOSUPPORT:
      return {"EINVAL", -4071};
    case WSAEISCONN:
      return {"EISCONN", -4069};
    case WSAEMFILE:
    case ERROR_TOO_MANY_OPEN_FILES:
      return {"EMFILE", -4066};
    case WSAEMSGSIZE:
      return {"EMSGSIZE", -4065};
    case WSAENETDOWN:
      return {"ENETDOWN", -4063};
    case WSAENETUNREACH:
    case ERROR_NETWORK_UNREACHABLE:
      return {"ENETUNREACH", -4062};
    case WSAENOBUFS:
      return {"ENOBUFS", -4060};
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
      return {"ENOMEM", -4057};
    case WSAENOTCONN:
      return {"ENOTCONN", -4053};
    case WSAENOTSOCK:
      return {"ENOTSOCK", -4050};
    case WSAEOPNOTSUPP:
    case ERROR_NOT_SUPPORTED:
      return {"ENOTSUP", -4049};
    case WSAESHUTDOWN:
    case ERROR_BROKEN_PIPE:
      return {"EPIPE", -4047};
    case WSAEPROTONOSUPPORT:
      return {"EPROTONOSUPPORT", -4045};
    case WSAEPROTOTYPE:
      return {"EPROTOTYPE", -4044};
    case WSAETIMEDOUT:
    case ERROR_SEM_TIMEOUT:
      return {"ETIMEDOUT", -4039};
    case WSAENOPROTOOPT:
      return {"ENOPROTOOPT", -4035};
    case WSAEHOSTDOWN:
      return {"EHOSTDOWN", -4031};
    default:
      return {nullptr, 0};
  }
}

}  // namespace

const char* WinErrorName(int err) { return Translate(err).name; }

Napi::Error WinError(Napi::Env env, int err, const char* syscall) {
  Mapping m = Translate(err);
  std::string code = m.name ? m.name : "UNKNOWN";
  std::string message = std::string(syscall) + " " + code;
  if (!m.name) message += " (Windows error " + std::to_string(err) + ")";
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  // libuv's UV_UNKNOWN is -4094.
  e.Set("errno", Napi::Number::New(env, m.name ? m.uv : -4094));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.Set("winError", Napi::Number::New(env, err));
  return e;
}

}  // namespace synmux
#endif  // _WIN32
