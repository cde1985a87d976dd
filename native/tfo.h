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

}  // namespace synmux
