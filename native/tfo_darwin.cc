// TCP Fast Open on macOS (XNU).
//
// Client: connectx() with CONNECT_DATA_IDEMPOTENT and the first bytes as an
// iovec sends them in the SYN (or, without a cookie, right after the
// handshake: XNU keeps them in the send buffer either way). On a
// non-blocking socket it returns EINPROGRESS and reports how many bytes it
// took. connectResume() is connectx(CONNECT_RESUME_ON_READ_WRITE) without
// data: nothing leaves until the first write (which carries the SYN) or a
// read (triggerConnect). XNU answers ENOTCONN to a write made after the
// first one while the handshake is still in progress (sosendcheck(): the
// socket is neither connected nor SOF1_PRECONNECT_DATA any more), so the
// TypeScript side writes again only once the socket is writable.
// Server: TCP_FASTOPEN (0x105) is a boolean, settable in LISTEN state only.
// Result: TCP_CONNECTION_INFO (0x106), tcpi_tfo_* bits.
// OS switch: sysctl net.inet.tcp.fastopen, 0x1 server, 0x2 client
// (XNU bsd/netinet/tcp_var.h TCP_FASTOPEN_SERVER / TCP_FASTOPEN_CLIENT).
#include "tfo.h"

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/sysctl.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifndef TCP_FASTOPEN
#define TCP_FASTOPEN 0x105  // XNU bsd/netinet/tcp.h
#endif
#ifndef TCP_CONNECTION_INFO
#define TCP_CONNECTION_INFO 0x106  // XNU bsd/netinet/tcp.h
#endif
// Private, XNU bsd/netinet/tcp_private.h: TFO on this socket even when the
// kernel's heuristics (tcp_heuristic_do_tfo: back-off after SYN-data loss,
// middlebox detection) have turned it off. Used only when asked for
// (SYNMUX_MACOS_FORCE_TFO=1, see src/tfo/darwin.ts).
#ifndef TCP_FASTOPEN_FORCE_ENABLE
#define TCP_FASTOPEN_FORCE_ENABLE 0x218
#endif
#ifndef CONNECT_RESUME_ON_READ_WRITE
#define CONNECT_RESUME_ON_READ_WRITE 0x1  // XNU bsd/sys/socket.h
#endif
#ifndef CONNECT_DATA_IDEMPOTENT
#define CONNECT_DATA_IDEMPOTENT 0x2  // XNU bsd/sys/socket.h
#endif

// XNU bsd/netinet/tcp_fsm.h
enum { kTcpsClosed = 0, kTcpsListen = 1, kTcpsSynSent = 2, kTcpsSynReceived = 3, kTcpsEstablished = 4 };

namespace synmux {

namespace {

socklen_t Endpoints(Napi::Env env, const Napi::CallbackInfo& info, struct sockaddr_storage* ss, sa_endpoints_t* ep) {
  std::string ip = ArgString(info, 1, "address", 64);
  int port = ArgInt(info, 2, "port", 1, 65535);
  socklen_t slen = ParseSockaddr(env, ip, port, ss);
  std::memset(ep, 0, sizeof(*ep));
  ep->sae_dstaddr = reinterpret_cast<const struct sockaddr*>(ss);
  ep->sae_dstaddrlen = slen;
  return slen;
}

}  // namespace

Napi::Value SetFastOpenConnect(const Napi::CallbackInfo& info) {
  // macOS needs no option before connectx(); this sets the private
  // TCP_FASTOPEN_FORCE_ENABLE, which TypeScript calls only when asked to.
  ArgCount(info, 1);
  int fd = ArgSocket(info, 0);
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_FORCE_ENABLE, &one, sizeof(one)) != 0) {
    throw ErrnoError(info.Env(), errno, "setsockopt");
  }
  return info.Env().Undefined();
}

Napi::Value SetFastOpenListen(const Napi::CallbackInfo& info) {
  ArgCount(info, 2);
  int fd = ArgSocket(info, 0);
  // XNU has one global TFO backlog (sysctl net.inet.tcp.fastopen_backlog).
  ArgInt(info, 1, "queue", 1, 0x7fffffff);
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &one, sizeof(one)) != 0) {
    throw ErrnoError(info.Env(), errno, "setsockopt");
  }
  return info.Env().Undefined();
}

Napi::Value ConnectData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 4);
  int fd = ArgSocket(info, 0);
  struct sockaddr_storage ss;
  sa_endpoints_t ep;
  Endpoints(env, info, &ss, &ep);
  const uint8_t* data = nullptr;
  size_t len = 0;
  ArgBytes(info, 3, "data", &data, &len);
  struct iovec iov;
  iov.iov_base = const_cast<uint8_t*>(data);
  iov.iov_len = len;
  size_t sent = 0;
  int r = connectx(fd, &ep, SAE_ASSOCID_ANY, len ? CONNECT_DATA_IDEMPOTENT : 0, len ? &iov : nullptr,
                   len ? 1 : 0, &sent, nullptr);
  if (r != 0) {
    // connectx copies out the bytes it took even when it reports EINPROGRESS.
    if (errno == EINPROGRESS || errno == EINTR) return Napi::Number::New(env, sent > 0 ? static_cast<double>(sent) : -1);
    throw ErrnoError(env, errno, "connectx");
  }
  return Napi::Number::New(env, static_cast<double>(sent));
}

Napi::Value ConnectResume(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 3);
  int fd = ArgSocket(info, 0);
  struct sockaddr_storage ss;
  sa_endpoints_t ep;
  Endpoints(env, info, &ss, &ep);
  int r = connectx(fd, &ep, SAE_ASSOCID_ANY, CONNECT_RESUME_ON_READ_WRITE | CONNECT_DATA_IDEMPOTENT, nullptr, 0,
                   nullptr, nullptr);
  if (r == 0) return Napi::Number::New(env, 0);  // deferred until the first write or read
  if (errno == EINPROGRESS || errno == EINTR) return Napi::Number::New(env, -1);  // already connecting
  throw ErrnoError(env, errno, "connectx");
}

Napi::Value TriggerConnect(const Napi::CallbackInfo& info) {
  ArgCount(info, 1);
  int fd = ArgSocket(info, 0);
  // A read on a CONNECT_RESUME_ON_READ_WRITE socket starts the connect
  // (soreceive() calls pru_preconnect); MSG_PEEK consumes nothing.
  char c;
  ssize_t n;
  do {
    n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN && errno != EINPROGRESS) {
    throw ErrnoError(info.Env(), errno, "recv");
  }
  return info.Env().Undefined();
}

Napi::Value TcpInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 1);
  int fd = ArgSocket(info, 0);
  struct tcp_connection_info ti;
  std::memset(&ti, 0, sizeof(ti));
  socklen_t len = sizeof(ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_CONNECTION_INFO, &ti, &len) != 0) throw ErrnoError(env, errno, "getsockopt");
  bool acked = ti.tcpi_tfo_syn_data_acked;
  Napi::Object o = Napi::Object::New(env);
  o.Set("state", Napi::Number::New(env, ti.tcpi_state));
  o.Set("established", Napi::Boolean::New(env, ti.tcpi_state == kTcpsEstablished));
  o.Set("connecting", Napi::Boolean::New(env, ti.tcpi_state == kTcpsSynSent || ti.tcpi_state == kTcpsSynReceived));
  o.Set("synData", Napi::Boolean::New(env, acked));
  o.Set("synDataSent", Napi::Boolean::New(env, ti.tcpi_tfo_syn_data_sent));
  o.Set("tfoChild", Napi::Boolean::New(env, ti.tcpi_tfo_syn_data_rcv));
  // The same codes as Linux tcpi_fastopen_client_fail, plus 4: the kernel's
  // TFO heuristics (or blackhole detection) turned TFO off.
  int fail = 0;
  if (!acked) {
    if (ti.tcpi_tfo_syn_loss) fail = 3;
    else if (ti.tcpi_tfo_syn_data_sent) fail = 2;
    else if (ti.tcpi_tfo_cookie_req || ti.tcpi_tfo_no_cookie_rcv) fail = 1;
    else if (ti.tcpi_tfo_heuristics_disable || ti.tcpi_tfo_send_blackhole || ti.tcpi_tfo_recv_blackhole) fail = 4;
  }
  o.Set("clientFail", Napi::Number::New(env, fail));
  o.Set("cookieRequested", Napi::Boolean::New(env, ti.tcpi_tfo_cookie_req));
  o.Set("cookieReceived", Napi::Boolean::New(env, ti.tcpi_tfo_cookie_rcv));
  o.Set("heuristicsDisabled", Napi::Boolean::New(env, ti.tcpi_tfo_heuristics_disable));
  o.Set("segsOut", Napi::Number::New(env, static_cast<double>(ti.tcpi_txpackets)));
  o.Set("rttMicros", Napi::Number::New(env, static_cast<double>(ti.tcpi_srtt) * 1000.0));
  return o;
}

Napi::Value FastOpenSetting(const Napi::CallbackInfo& info) {
  int v = 0;
  size_t len = sizeof(v);
  if (sysctlbyname("net.inet.tcp.fastopen", &v, &len, nullptr, 0) != 0) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), v);
}

Napi::Object PlatformInfo(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("platform", Napi::String::New(env, "darwin"));
  o.Set("clientMethod", Napi::String::New(env, "connectx"));
  o.Set("serverMethod", Napi::String::New(env, "TCP_FASTOPEN"));
  return o;
}

}  // namespace synmux
