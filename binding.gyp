{
  "targets": [{
    "target_name": "sled_agent_native",
    "sources": ["native/addon.cc"],
    "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
    "defines": ["NAPI_VERSION=8"],
    "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"]
  }]
}
