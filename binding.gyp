{
  "targets": [
    {
      "target_name": "shmchan",
      "sources": [
        "native/binding.cc",
        "native/src/guard.c",
        "native/src/header.c",
        "native/src/owners.c",
        "native/src/posix.c",
        "native/src/ring.c",
        "native/src/sysv.c",
        "native/src/wait.c"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags": ["-Wall", "-Wextra", "-fvisibility=hidden"],
      "cflags_c": ["-std=c11"],
      "cflags_cc": ["-std=c++17"],
      "libraries": ["-lrt"],
      "configurations": {
        "Debug": {
          "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"],
          "ldflags": ["-fsanitize=address,undefined"]
        }
      }
    }
  ]
}
