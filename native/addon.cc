// Module exports. The OS files implement the functions in tfo.h.
#include "tfo.h"
#include "addon.h"

namespace synmux {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  AddonData* data = new AddonData();
#ifndef _WIN32
  data->waitHandle = Napi::Persistent(WaitHandle::Init(env));
#endif
  env.SetInstanceData<AddonData>(data);

  exports.Set("socket", Napi::Function::New<Socket>(env, "socket"));
  exports.Set("close", Napi::Function::New<Close>(env, "close"));
  exports.Set("bind", Napi::Function::New<Bind>(env, "bind"));
  exports.Set("setFastOpenConnect", Napi::Function::New<SetFastOpenConnect>(env, "setFastOpenConnect"));
  exports.Set("setFastOpenListen", Napi::Function::New<SetFastOpenListen>(env, "setFastOpenListen"));
  exports.Set("connectData", Napi::Function::New<ConnectData>(env, "connectData"));
  exports.Set("triggerConnect", Napi::Function::New<TriggerConnect>(env, "triggerConnect"));
  exports.Set("waitWritable", Napi::Function::New<WaitWritable>(env, "waitWritable"));
  exports.Set("tcpInfo", Napi::Function::New<TcpInfo>(env, "tcpInfo"));
  exports.Set("setV6Only", Napi::Function::New<SetV6Only>(env, "setV6Only"));
  exports.Set("info", PlatformInfo(env));
#if defined(__APPLE__) || defined(__linux__)
  exports.Set("connectResume", Napi::Function::New<ConnectResume>(env, "connectResume"));
#endif
#if defined(__APPLE__)
  exports.Set("fastOpenSetting", Napi::Function::New<FastOpenSetting>(env, "fastOpenSetting"));
#endif
#if defined(_WIN32)
  exports.Set("connectEx", Napi::Function::New<ConnectEx>(env, "connectEx"));
#endif
  return exports;
}

}  // namespace synmux

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return synmux::Init(env, exports); }

NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitModule)
