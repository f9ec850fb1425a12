{
  "targets": [{
    "target_name": "sled_agent_native",
    "sources": [
      "native/addon.cc",
      "native/loader.cc",
      "native/zonecfg.cc",
      "native/dladm.cc",
      "native/nvpair.cc",
      "native/zfs.cc",
      "native/scf.cc",
      "native/events.cc"
    ],
    "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
    "defines": ["NAPI_VERSION=8", "__EXTENSIONS__"],
    "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-pthread"],
    "libraries": ["-ldl", "-pthread"]
  }]
}
