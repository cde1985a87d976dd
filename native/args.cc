// Boundary checks for every argument that crosses from JavaScript.
#include "common.h"

#include <cmath>

namespace synmux {

void ArgCount(const Napi::CallbackInfo& info, size_t n) {
  if (info.Length() < n) {
    ThrowTypeError(info.Env(), "ERR_MISSING_ARGS",
                   "Expected " + std::to_string(n) + " argument(s), got " +
                       std::to_string(info.Length()));
  }
}

static double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) {
    ThrowTypeError(info.Env(), "ERR_INVALID_ARG_TYPE",
                   std::string("The \"") + name + "\" argument must be of type number");
  }
  return info[i].As<Napi::Number>().DoubleValue();
}

int ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int min, int max) {
  double v = ArgNumber(info, i, name);
  if (!std::isfinite(v) || std::floor(v) != v || v < min || v > max) {
    ThrowRangeError(info.Env(), "ERR_OUT_OF_RANGE",
                    std::string("The value of \"") + name + "\" is out of range. It must be an integer >= " +
                        std::to_string(min) + " and <= " + std::to_string(max));
  }
  return static_cast<int>(v);
}

synmux_socket_t ArgSocket(const Napi::CallbackInfo& info, size_t i) {
#ifdef _WIN32
  double v = ArgNumber(info, i, "socket");
  if (!std::isfinite(v) || std::floor(v) != v || v < 0 || v > 9007199254740991.0 ||
      static_cast<SOCKET>(v) == INVALID_SOCKET) {
    ThrowRangeError(info.Env(), "ERR_OUT_OF_RANGE", "The value of \"socket\" is not a valid socket handle");
  }
  return static_cast<SOCKET>(v);
#else
  return ArgInt(info, i, "fd", 0, 0x7fffffff);
#endif
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name, size_t maxLen) {
  if (i >= info.Length() || !info[i].IsString()) {
    ThrowTypeError(info.Env(), "ERR_INVALID_ARG_TYPE",
                   std::string("The \"") + name + "\" argument must be of type string");
  }
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.size() > maxLen) {
    ThrowRangeError(info.Env(), "ERR_OUT_OF_RANGE", std::string("The \"") + name + "\" argument is too long");
  }
  return s;
}

void ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name,
              const uint8_t** data, size_t* len) {
  if (i < info.Length() && info[i].IsTypedArray()) {
    Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
    if (ta.TypedArrayType() == napi_uint8_array) {
      Napi::Uint8Array u8 = ta.As<Napi::Uint8Array>();
      *data = u8.ByteLength() ? u8.Data() : nullptr;
      *len = u8.ByteLength();
      return;
    }
  }
  ThrowTypeError(info.Env(), "ERR_INVALID_ARG_TYPE",
                 std::string("The \"") + name + "\" argument must be a Buffer or Uint8Array");
}

Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsFunction()) {
    ThrowTypeError(info.Env(), "ERR_INVALID_ARG_TYPE",
                   std::string("The \"") + name + "\" argument must be of type function");
  }
  return info[i].As<Napi::Function>();
}

}  // namespace synmux
