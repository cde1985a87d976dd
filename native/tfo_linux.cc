// TCP Fast Open on Linux.
//
// Client: TCP_FASTOPEN_CONNECT (4.11+) makes connect() return at once and
// the first write carry SYN+data; older kernels use sendto(MSG_FASTOPEN).
// Server: TCP_FASTOPEN with a queue length on the listener.
// Result: TCP_INFO tcpi_options & TCPI_OPT_SYN_DATA, tcpi_fastopen_client_fail.
#include "tfo.h"

#include <cerrno>
#include <cstring>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef TCP_FASTOPEN
#define TCP_FASTOPEN 23
#endif
#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif
#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
#ifndef TCPI_OPT_SYN_DATA
#define TCPI_OPT_SYN_DATA 32
#endif
#ifndef TCPI_OPT_TFO_CHILD
#define TCPI_OPT_TFO_CHILD 128
#endif

namespace synmux {

Napi::Value SetFastOpenConnect(const Napi::CallbackInfo& info) {
  ArgCount(info, 1);
  int fd = ArgSocket(info, 0);
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)) != 0) {
    throw ErrnoError(info.Env(), errno, "setsockopt");
  }
  return info.Env().Undefined();
}

Napi::Value SetFastOpenListen(const Napi::CallbackInfo& info) {
  ArgCount(info, 2);
  int fd = ArgSocket(info, 0);
  int qlen = ArgInt(info, 1, "queue", 1, 0x7fffffff);
  if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen)) != 0) {
    throw ErrnoError(info.Env(), errno, "setsockopt");
  }
  return info.Env().Undefined();
}

Napi::Value ConnectData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 4);
  int fd = ArgSocket(info, 0);
  std::string ip = ArgString(info, 1, "address", 64);
  int port = ArgInt(info, 2, "port", 1, 65535);
  const uint8_t* data = nullptr;
  size_t len = 0;
  ArgBytes(info, 3, "data", &data, &len);
  struct sockaddr_storage ss;
  socklen_t slen = ParseSockaddr(env, ip, port, &ss);
  ssize_t n;
  do {
    n = sendto(fd, data, len, MSG_FASTOPEN | MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&ss), slen);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    // No cookie yet: the SYN went out asking for one and took no data.
    if (errno == EINPROGRESS) return Napi::Number::New(env, -1);
    throw ErrnoError(env, errno, "sendto");
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value ConnectResume(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 3);
  int fd = ArgSocket(info, 0);
  std::string ip = ArgString(info, 1, "address", 64);
  int port = ArgInt(info, 2, "port", 1, 65535);
  struct sockaddr_storage ss;
  socklen_t slen = ParseSockaddr(env, ip, port, &ss);
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)) != 0) throw ErrnoError(env, errno, "setsockopt");
  int r;
  do {
    r = connect(fd, reinterpret_cast<struct sockaddr*>(&ss), slen);
  } while (r != 0 && errno == EINTR);
  if (r == 0) return Napi::Number::New(env, 0);  // a cookie: the SYN waits for the first write
  if (errno == EINPROGRESS) return Napi::Number::New(env, -1);  // no cookie: the SYN asks for one
  throw ErrnoError(env, errno, "connect");
}

Napi::Value TriggerConnect(const Napi::CallbackInfo& info) {
  ArgCount(info, 1);
  int fd = ArgSocket(info, 0);
  // On a deferred TCP_FASTOPEN_CONNECT socket a send of zero bytes makes
  // the kernel send the SYN; it then reports EINPROGRESS, which is success.
  ssize_t n;
  do {
    n = send(fd, nullptr, 0, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EINPROGRESS && errno != EAGAIN && errno != EALREADY) {
    throw ErrnoError(info.Env(), errno, "send");
  }
  return info.Env().Undefined();
}

Napi::Value TcpInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 1);
  int fd = ArgSocket(info, 0);
  struct tcp_info ti;
  std::memset(&ti, 0, sizeof(ti));
  socklen_t len = sizeof(ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) throw ErrnoError(env, errno, "getsockopt");
  Napi::Object o = Napi::Object::New(env);
  o.Set("state", Napi::Number::New(env, ti.tcpi_state));
  o.Set("established", Napi::Boolean::New(env, ti.tcpi_state == 1 /* TCP_ESTABLISHED */));
  o.Set("connecting", Napi::Boolean::New(env, ti.tcpi_state == 2 /* TCP_SYN_SENT */));
  o.Set("synData", Napi::Boolean::New(env, (ti.tcpi_options & TCPI_OPT_SYN_DATA) != 0));
  o.Set("tfoChild", Napi::Boolean::New(env, (ti.tcpi_options & TCPI_OPT_TFO_CHILD) != 0));
  // tcpi_fastopen_client_fail (kernel >= 5.5) shares byte 7 with
  // tcpi_delivery_rate_app_limited; older kernels return a shorter struct.
  if (len > 7) {
    o.Set("clientFail", Napi::Number::New(env, ti.tcpi_fastopen_client_fail));
  }
  o.Set("segsOut", Napi::Number::New(env, ti.tcpi_segs_out));
  o.Set("rttMicros", Napi::Number::New(env, ti.tcpi_rtt));
  return o;
}

Napi::Object PlatformInfo(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("platform", Napi::String::New(env, "linux"));
  o.Set("clientMethod", Napi::String::New(env, "TCP_FASTOPEN_CONNECT"));
  o.Set("serverMethod", Napi::String::New(env, "TCP_FASTOPEN"));
  return o;
}

}  // namespace synmux
