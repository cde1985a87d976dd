// The per-OS surface of the addon. addon.cc exports these; each OS file
// (tfo_linux.cc, tfo_darwin.cc, tfo_win.cc, tfo_none.cc) defines them, plus
// socket_unix.cc / wait_unix.cc on POSIX systems.
#pragma once

#include "common.h"

namespace synmux {

// socket(family: 4 | 6): a non-blocking, close-on-exec TCP socket.
Napi::Value Socket(const Napi::CallbackInfo& info);
// close(fd)
Napi::Value Close(const Napi::CallbackInfo& info);
// bind(fd, ip, port)
Napi::Value Bind(const Napi::CallbackInfo& info);
// setFastOpenConnect(fd): make the next connect() defer to the first write
// so that write rides in the SYN (Linux TCP_FASTOPEN_CONNECT).
Napi::Value SetFastOpenConnect(const Napi::CallbackInfo& info);
// setFastOpenListen(fd, queue): enable TFO on a listening socket.
Napi::Value SetFastOpenListen(const Napi::CallbackInfo& info);
// connectData(fd, ip, port, data): connect and hand `data` to the SYN in
// one call (Linux sendto(MSG_FASTOPEN), macOS connectx). Returns the number
// of bytes the kernel took, or -1 when the connect is in progress and no
// byte was taken.
Napi::Value ConnectData(const Napi::CallbackInfo& info);
// triggerConnect(fd): start a deferred TFO connect that has no data to
// carry (a zero-byte send sends the SYN). No-op where connects never defer.
Napi::Value TriggerConnect(const Napi::CallbackInfo& info);
// waitWritable(fd, callback(err | null)): calls back once when the socket is
// writable (connected) or failed (err from SO_ERROR). Returns { cancel() }.
Napi::Value WaitWritable(const Napi::CallbackInfo& info);
// tcpInfo(fd): what the kernel says about TFO on this connection.
Napi::Value TcpInfo(const Napi::CallbackInfo& info);
// Static facts about this build: { platform, clientMethod, serverMethod }.
Napi::Object PlatformInfo(Napi::Env env);

// setV6Only(socket, on): IPV6_V6ONLY (an IPv6 socket that can also reach
// IPv4 peers as ::ffff:a.b.c.d when off).
Napi::Value SetV6Only(const Napi::CallbackInfo& info);

// Extra, OS-specific exports (addon.cc registers them under the same #if).
#if defined(__APPLE__) || defined(__linux__)
// connectResume(fd, ip, port): a connect that sends nothing until the first
// write, which then carries SYN + data; the descriptor is then adopted with
// `new net.Socket({ fd })`. macOS: connectx(CONNECT_RESUME_ON_READ_WRITE |
// CONNECT_DATA_IDEMPOTENT) without data (tokio-tfo's macOS path). Linux:
// TCP_FASTOPEN_CONNECT + connect() (used there only to test the same
// TypeScript path). Returns 0 when deferred, -1 when the SYN already left.
Napi::Value ConnectResume(const Napi::CallbackInfo& info);
#endif
#if defined(__APPLE__)
// fastOpenSetting(): sysctl net.inet.tcp.fastopen (bit 0x1 server, 0x2
// client), or undefined when it cannot be read.
Napi::Value FastOpenSetting(const Napi::CallbackInfo& info);
#endif
#if defined(_WIN32)
// connectEx(socket, ip, port, data, callback(err | null, bytesSent)):
// ConnectEx on a bound overlapped socket with `data` as its send buffer;
// completes through an event (never an IOCP), then SO_UPDATE_CONNECT_CONTEXT.
// Returns { cancel() } (CancelIoEx; the callback is then never called).
Napi::Value ConnectEx(const Napi::CallbackInfo& info);
#endif

}  // namespace synmux
