// TCP Fast Open on Windows (client since Windows 10 1607, server since 1703).
//
// Client: an overlapped socket, setsockopt(IPPROTO_TCP, TCP_FASTOPEN=15,
// TRUE), bind to the wildcard (ConnectEx needs a bound socket), ConnectEx
// with the first bytes as its send buffer, then SO_UPDATE_CONNECT_CONTEXT.
// Where TCP_FASTOPEN is refused, ConnectEx still sends the data right after
// the handshake. TypeScript then hands the connected SOCKET to Node
// (src/tfo/win-handle.ts).
//
// The ConnectEx completion must not go to an I/O completion port: libuv
// associates the socket with its own IOCP when Node adopts it, and a stray
// packet there would be misread. So the OVERLAPPED carries an event whose
// low-order bit is set (documented: the completion is then not queued to a
// port), a thread-pool wait (RegisterWaitForSingleObject) watches the
// event, and a thread-safe function brings the result to the JS thread —
// the JS thread never blocks.
//
// Server: TCP_FASTOPEN on the listening socket before listen().
//
// Success cannot be observed on Windows (SIO_TCP_INFO has no TFO field), so
// tcpInfo() reports only connection state.
#ifdef _WIN32
#include "tfo.h"

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#ifndef TCP_FASTOPEN
#define TCP_FASTOPEN 15
#endif
#ifndef SO_UPDATE_CONNECT_CONTEXT
#define SO_UPDATE_CONNECT_CONTEXT 0x7010
#endif
#ifndef SO_CONNECT_TIME
#define SO_CONNECT_TIME 0x700C
#endif
#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif

namespace synmux {

namespace {

void EnsureWinsock() {
  // Node (libuv) has initialised Winsock already; this only adds a reference.
  static const bool started = [] {
    WSADATA wsa;
    return WSAStartup(MAKEWORD(2, 2), &wsa) == 0;
  }();
  (void)started;
}

[[noreturn]] void ThrowWin(Napi::Env env, int err, const char* syscall) { throw WinError(env, err, syscall); }

[[noreturn]] void ThrowNotSupported(Napi::Env env, const char* what) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + " ENOTSUP (not used on Windows)");
  e.Set("code", Napi::String::New(env, "ENOTSUP"));
  e.Set("errno", Napi::Number::New(env, -4049));
  e.Set("syscall", Napi::String::New(env, what));
  throw e;
}

void SetBool(Napi::Env env, SOCKET s, int level, int name, bool on, const char* syscall) {
  DWORD v = on ? 1 : 0;
  if (setsockopt(s, level, name, reinterpret_cast<const char*>(&v), sizeof(v)) != 0) {
    ThrowWin(env, WSAGetLastError(), syscall);
  }
}

}  // namespace

Napi::Value Socket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 1);
  int family = ArgInt(info, 0, "family", 4, 6);
  if (family != 4 && family != 6) ThrowRangeError(env, "ERR_INVALID_ARG_VALUE", "family must be 4 or 6");
  EnsureWinsock();
  int domain = family == 6 ? AF_INET6 : AF_INET;
  // Overlapped: libuv drives every socket it adopts with overlapped I/O.
  SOCKET s = WSASocketW(domain, SOCK_STREAM, IPPROTO_TCP, nullptr, 0,
                        WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL) {
    // Windows 7 before SP1 lacks WSA_FLAG_NO_HANDLE_INHERIT.
    s = WSASocketW(domain, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED);
    if (s != INVALID_SOCKET) SetHandleInformation(reinterpret_cast<HANDLE>(s), HANDLE_FLAG_INHERIT, 0);
  }
  if (s == INVALID_SOCKET) ThrowWin(env, WSAGetLastError(), "socket");
  return Napi::Number::New(env, static_cast<double>(s));
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  ArgCount(info, 1);
  SOCKET s = ArgSocket(info, 0);
  if (closesocket(s) != 0) ThrowWin(info.Env(), WSAGetLastError(), "close");
  return info.Env().Undefined();
}

Napi::Value Bind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 3);
  SOCKET s = ArgSocket(info, 0);
  std::string ip = ArgString(info, 1, "address", 64);
  int port = ArgInt(info, 2, "port", 0, 65535);
  struct sockaddr_storage ss;
  socklen_t len = ParseSockaddr(env, ip, port, &ss);
  if (bind(s, reinterpret_cast<struct sockaddr*>(&ss), len) != 0) ThrowWin(env, WSAGetLastError(), "bind");
  return env.Undefined();
}

Napi::Value SetV6Only(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 2);
  SOCKET s = ArgSocket(info, 0);
  if (!info[1].IsBoolean()) ThrowTypeError(env, "ERR_INVALID_ARG_TYPE", "The \"on\" argument must be of type boolean");
  SetBool(env, s, IPPROTO_IPV6, IPV6_V6ONLY, info[1].As<Napi::Boolean>().Value(), "setsockopt");
  return env.Undefined();
}

Napi::Value SetFastOpenConnect(const Napi::CallbackInfo& info) {
  ArgCount(info, 1);
  SOCKET s = ArgSocket(info, 0);
  SetBool(info.Env(), s, IPPROTO_TCP, TCP_FASTOPEN, true, "setsockopt");
  return info.Env().Undefined();
}

Napi::Value SetFastOpenListen(const Napi::CallbackInfo& info) {
  ArgCount(info, 2);
  SOCKET s = ArgSocket(info, 0);
  // Windows has no per-listener TFO queue: the option is a boolean.
  ArgInt(info, 1, "queue", 1, 0x7fffffff);
  SetBool(info.Env(), s, IPPROTO_TCP, TCP_FASTOPEN, true, "setsockopt");
  return info.Env().Undefined();
}

Napi::Value ConnectData(const Napi::CallbackInfo& info) {
  ArgCount(info, 4);
  ArgSocket(info, 0);
  ThrowNotSupported(info.Env(), "connectData");  // Windows uses connectEx()
  return info.Env().Undefined();                 // not reached; for MSVC's C4716
}

Napi::Value TriggerConnect(const Napi::CallbackInfo& info) {
  ArgCount(info, 1);
  ArgSocket(info, 0);
  return info.Env().Undefined();  // connects never defer on Windows
}

Napi::Value WaitWritable(const Napi::CallbackInfo& info) {
  ArgCount(info, 2);
  ArgSocket(info, 0);
  ArgFunction(info, 1, "callback");
  ThrowNotSupported(info.Env(), "waitWritable");  // connectEx() reports completion itself
  return info.Env().Undefined();                  // not reached; for MSVC's C4716
}

Napi::Value TcpInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 1);
  SOCKET s = ArgSocket(info, 0);
  // SO_CONNECT_TIME: seconds since connected, 0xFFFFFFFF while not connected.
  DWORD secs = 0;
  int len = sizeof(secs);
  if (getsockopt(s, SOL_SOCKET, SO_CONNECT_TIME, reinterpret_cast<char*>(&secs), &len) != 0) {
    ThrowWin(env, WSAGetLastError(), "getsockopt");
  }
  bool connected = secs != 0xFFFFFFFF;
  Napi::Object o = Napi::Object::New(env);
  o.Set("state", Napi::Number::New(env, connected ? 5 /* MIB_TCP_STATE_ESTAB */ : 1 /* CLOSED */));
  o.Set("established", Napi::Boolean::New(env, connected));
  o.Set("connecting", Napi::Boolean::New(env, false));
  o.Set("synData", Napi::Boolean::New(env, false));
  o.Set("tfoChild", Napi::Boolean::New(env, false));
  o.Set("synDataKnown", Napi::Boolean::New(env, false));
  return o;
}

Napi::Object PlatformInfo(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("platform", Napi::String::New(env, "win32"));
  o.Set("clientMethod", Napi::String::New(env, "ConnectEx"));
  o.Set("serverMethod", Napi::String::New(env, "TCP_FASTOPEN"));
  return o;
}

// ---------------------------------------------------------------------------
// connectEx

namespace {

struct ConnectOp {
  SOCKET s = INVALID_SOCKET;
  OVERLAPPED ov;
  HANDLE event = nullptr;
  HANDLE wait = nullptr;
  std::vector<char> data;  // must outlive the I/O: a copy, not the JS buffer
  Napi::ThreadSafeFunction tsfn;
  bool cancelled = false;  // JS thread only
  bool finished = false;   // JS thread only
  ConnectOp() { std::memset(&ov, 0, sizeof(ov)); }
  ~ConnectOp() {
    if (event) CloseHandle(event);
  }
};
using OpRef = std::shared_ptr<ConnectOp>;

// JS thread: the I/O has completed (or was cancelled).
void Complete(Napi::Env env, Napi::Function callback, OpRef* holder) {
  OpRef op = *holder;
  delete holder;
  // Waits until OnSignaled has returned; after that nothing else uses `op`.
  if (op->wait) UnregisterWaitEx(op->wait, INVALID_HANDLE_VALUE);
  op->wait = nullptr;
  op->finished = true;
  op->tsfn.Release();
  if (env == nullptr || op->cancelled) return;  // cancelled: the socket is the caller's to close

  DWORD bytes = 0;
  DWORD flags = 0;
  int err = 0;
  if (!WSAGetOverlappedResult(op->s, &op->ov, &bytes, FALSE, &flags)) err = WSAGetLastError();
  // Makes getpeername, shutdown and the rest work on a ConnectEx socket.
  if (err == 0 && setsockopt(op->s, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0) != 0) {
    err = WSAGetLastError();
  }
  try {
    if (err) {
      callback.Call({WinError(env, err, "connect").Value(), Napi::Number::New(env, 0)});
    } else {
      callback.Call({env.Null(), Napi::Number::New(env, static_cast<double>(bytes))});
    }
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();  // an uncaught exception, as from any callback
  }
}

// Thread-pool thread: only hand over to the JS thread.
void CALLBACK OnSignaled(PVOID param, BOOLEAN /*timedOut*/) {
  OpRef* holder = static_cast<OpRef*>(param);
  if ((*holder)->tsfn.NonBlockingCall(holder, Complete) != napi_ok) {
    // The environment is shutting down; the process is exiting.
  }
}

Napi::Value Cancel(const Napi::CallbackInfo& info) {
  OpRef* holder = static_cast<OpRef*>(info.Data());
  ConnectOp* op = holder->get();
  if (!op->finished && !op->cancelled) {
    op->cancelled = true;
    // The completion (aborted) still signals the event; Complete() frees.
    CancelIoEx(reinterpret_cast<HANDLE>(op->s), &op->ov);
  }
  return info.Env().Undefined();
}

}  // namespace

Napi::Value ConnectEx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ArgCount(info, 5);
  SOCKET s = ArgSocket(info, 0);
  std::string ip = ArgString(info, 1, "address", 64);
  int port = ArgInt(info, 2, "port", 1, 65535);
  const uint8_t* data = nullptr;
  size_t len = 0;
  ArgBytes(info, 3, "data", &data, &len);
  Napi::Function callback = ArgFunction(info, 4, "callback");
  if (len > 0x7fffffff) ThrowRangeError(env, "ERR_OUT_OF_RANGE", "data is too large for ConnectEx");
  struct sockaddr_storage ss;
  socklen_t slen = ParseSockaddr(env, ip, port, &ss);
  EnsureWinsock();

  LPFN_CONNECTEX connectEx = nullptr;
  GUID guid = WSAID_CONNECTEX;
  DWORD got = 0;
  if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof(guid), &connectEx, sizeof(connectEx), &got,
               nullptr, nullptr) != 0 ||
      connectEx == nullptr) {
    ThrowWin(env, WSAGetLastError(), "WSAIoctl");
  }

  OpRef op = std::make_shared<ConnectOp>();
  op->s = s;
  if (len) op->data.assign(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + len);
  op->event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  if (!op->event) ThrowWin(env, static_cast<int>(GetLastError()), "CreateEvent");
  // Low-order bit set: the completion is not queued to a completion port.
  op->ov.hEvent = reinterpret_cast<HANDLE>(reinterpret_cast<uintptr_t>(op->event) | 1);
  // Created before the I/O starts, so nothing can fail once it is in flight
  // except the wait registration, which is undone below.
  op->tsfn = Napi::ThreadSafeFunction::New(env, callback, "synmux.connectEx", 0, 1);

  DWORD sent = 0;
  BOOL ok = connectEx(s, reinterpret_cast<struct sockaddr*>(&ss), static_cast<int>(slen),
                      len ? op->data.data() : nullptr, static_cast<DWORD>(len), &sent, &op->ov);
  if (!ok) {
    int err = WSAGetLastError();
    if (err != ERROR_IO_PENDING) {
      op->tsfn.Release();
      ThrowWin(env, err, "connect");
    }
  }
  // The I/O is in flight (or done: the event is then already signaled).
  OpRef* waitHolder = new OpRef(op);
  if (!RegisterWaitForSingleObject(&op->wait, op->event, OnSignaled, waitHolder, INFINITE,
                                   WT_EXECUTEONLYONCE)) {
    int err = static_cast<int>(GetLastError());
    op->wait = nullptr;
    CancelIoEx(reinterpret_cast<HANDLE>(s), &op->ov);
    WaitForSingleObject(op->event, INFINITE);  // the OVERLAPPED must outlive the I/O
    op->tsfn.Release();
    delete waitHolder;
    ThrowWin(env, err, "RegisterWaitForSingleObject");
  }

  OpRef* cancelHolder = new OpRef(op);
  Napi::Object handle = Napi::Object::New(env);
  Napi::Function cancel = Napi::Function::New(env, Cancel, "cancel", cancelHolder);
  cancel.AddFinalizer([](Napi::Env, OpRef* h) { delete h; }, cancelHolder);
  handle.Set("cancel", cancel);
  return handle;
}

}  // namespace synmux
#endif  // _WIN32
