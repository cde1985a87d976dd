// Shared declarations for the synmux addon. Each OS file implements the
// functions declared in tfo.h; everything here is OS-neutral.
#pragma once

#include <napi.h>
#include <string>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
typedef SOCKET synmux_socket_t;
#else
#include <sys/socket.h>
#include <netinet/in.h>
typedef int synmux_socket_t;
#endif

namespace synmux {

// errors.cc --------------------------------------------------------------
// Name of an OS error number ("ECONNREFUSED"), or nullptr if unknown.
const char* ErrnoName(int err);
// A Node-style error: message "<syscall> <CODE>", properties code, errno
// (negative, as libuv and Node report them on Unix), syscall.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall);
// Throws a TypeError / RangeError carrying a Node-style `code`.
[[noreturn]] void ThrowTypeError(Napi::Env env, const char* code, const std::string& msg);
[[noreturn]] void ThrowRangeError(Napi::Env env, const char* code, const std::string& msg);

// args.cc ----------------------------------------------------------------
// Boundary checks: every value that arrives from JavaScript goes through
// one of these; a wrong type or range throws before any syscall.
void ArgCount(const Napi::CallbackInfo& info, size_t n);
synmux_socket_t ArgSocket(const Napi::CallbackInfo& info, size_t i);
int ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int min, int max);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name, size_t maxLen);
// A Buffer / Uint8Array argument (nullptr/0 for an empty one).
void ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name,
              const uint8_t** data, size_t* len);
Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i, const char* name);

// sockaddr.cc ------------------------------------------------------------
// Parses an IPv4/IPv6 literal and a port into a sockaddr. Throws a
// TypeError (ERR_INVALID_IP_ADDRESS) for anything else.
socklen_t ParseSockaddr(Napi::Env env, const std::string& ip, int port,
                        struct sockaddr_storage* out);

#ifdef _WIN32
// errors_win.cc ----------------------------------------------------------
// Winsock / Win32 error -> the same Node-style error as on POSIX: code
// ('ECONNREFUSED'), errno (libuv's Windows value), syscall; plus winError.
const char* WinErrorName(int err);
Napi::Error WinError(Napi::Env env, int err, const char* syscall);
#endif

}  // namespace synmux
