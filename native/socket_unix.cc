// POSIX socket creation, bind and close. No policy: TypeScript decides.
#include "tfo.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace synmux {

Napi::Value Socket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 1);
  int family = ArgInt(info, 0, "family", 4, 6);
  if (family != 4 && family != 6) ThrowRangeError(env, "ERR_INVALID_ARG_VALUE", "family must be 4 or 6");
  int domain = family == 6 ? AF_INET6 : AF_INET;
#ifdef SOCK_NONBLOCK
  int fd = socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) throw ErrnoError(env, errno, "socket");
#else
  int fd = socket(domain, SOCK_STREAM, IPPROTO_TCP);
  if (fd < 0) throw ErrnoError(env, errno, "socket");
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    int err = errno;
    close(fd);
    throw ErrnoError(env, err, "fcntl");
  }
#endif
#ifdef SO_NOSIGPIPE
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
  return Napi::Number::New(env, fd);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  ArgCount(info, 1);
  int fd = ArgSocket(info, 0);
  if (close(fd) != 0 && errno != EINTR) throw ErrnoError(info.Env(), errno, "close");
  return info.Env().Undefined();
}

Napi::Value Bind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 3);
  int fd = ArgSocket(info, 0);
  std::string ip = ArgString(info, 1, "address", 64);
  int port = ArgInt(info, 2, "port", 0, 65535);
  struct sockaddr_storage ss;
  socklen_t len = ParseSockaddr(env, ip, port, &ss);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&ss), len) != 0) throw ErrnoError(env, errno, "bind");
  return env.Undefined();
}

Napi::Value SetV6Only(const Napi::CallbackInfo& info) {
  ArgCount(info, 2);
  int fd = ArgSocket(info, 0);
  if (!info[1].IsBoolean()) ThrowTypeError(info.Env(), "ERR_INVALID_ARG_TYPE", "The \"on\" argument must be of type boolean");
  int on = info[1].As<Napi::Boolean>().Value() ? 1 : 0;
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) throw ErrnoError(info.Env(), errno, "setsockopt");
  return info.Env().Undefined();
}

}  // namespace synmux
