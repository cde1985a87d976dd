{
  "targets": [
    {
      "target_name": "synmux",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/sockaddr.cc",
        "native/args.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS=='linux'", {
          "sources": ["native/tfo_linux.cc", "native/socket_unix.cc", "native/wait_unix.cc"]
        }],
        ["OS=='mac'", {
          "sources": ["native/tfo_darwin.cc", "native/socket_unix.cc", "native/wait_unix.cc"],
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "MACOSX_DEPLOYMENT_TARGET": "10.15"
          }
        }],
        ["OS=='win'", {
          "sources": ["native/tfo_win.cc", "native/errors_win.cc"],
          "defines": ["_WIN32_WINNT=0x0A00", "WIN32_LEAN_AND_MEAN", "NOMINMAX"],
          "libraries": ["ws2_32.lib", "mswsock.lib"],
          "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17"] } }
        }],
        ["OS!='linux' and OS!='mac' and OS!='win'", {
          "sources": ["native/tfo_none.cc", "native/socket_unix.cc", "native/wait_unix.cc"]
        }]
      ]
    }
  ]
}
