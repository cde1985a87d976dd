// IP literal + port -> sockaddr. Names are resolved in TypeScript first.
#include "common.h"

#include <cstring>
#ifndef _WIN32
#include <arpa/inet.h>
#include <net/if.h>
#endif

namespace synmux {

socklen_t ParseSockaddr(Napi::Env env, const std::string& ip, int port,
                        struct sockaddr_storage* out) {
  std::memset(out, 0, sizeof(*out));
  if (port < 0 || port > 65535) {
    ThrowRangeError(env, "ERR_SOCKET_BAD_PORT", "Port should be >= 0 and < 65536");
  }
  auto* sin = reinterpret_cast<struct sockaddr_in*>(out);
  if (inet_pton(AF_INET, ip.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
#ifdef __APPLE__
    sin->sin_len = sizeof(*sin);
#endif
    return sizeof(*sin);
  }
  auto* sin6 = reinterpret_cast<struct sockaddr_in6*>(out);
  std::string addr = ip;
  std::string zone;
  size_t pct = ip.find('%');
  if (pct != std::string::npos) {
    addr = ip.substr(0, pct);
    zone = ip.substr(pct + 1);
  }
  if (inet_pton(AF_INET6, addr.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
#ifdef __APPLE__
    sin6->sin6_len = sizeof(*sin6);
#endif
    if (!zone.empty()) {
      char* end = nullptr;
      unsigned long id = std::strtoul(zone.c_str(), &end, 10);
      if (end && *end == '\0') {
        sin6->sin6_scope_id = static_cast<uint32_t>(id);
      } else {
#ifdef _WIN32
        ThrowTypeError(env, "ERR_INVALID_IP_ADDRESS", "Numeric IPv6 zone ids only: " + ip);
#else
        sin6->sin6_scope_id = if_nametoindex(zone.c_str());
        if (sin6->sin6_scope_id == 0) ThrowTypeError(env, "ERR_INVALID_IP_ADDRESS", "Unknown IPv6 zone: " + ip);
#endif
      }
    }
    return sizeof(*sin6);
  }
  ThrowTypeError(env, "ERR_INVALID_IP_ADDRESS", "Invalid IP address: " + ip);
}

}  // namespace synmux
