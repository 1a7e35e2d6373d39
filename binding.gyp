{
  "targets": [
    {
      "target_name": "shmchan",
      # JavaScript runs the data path itself (src/ring.ts, src/mpsc.ts) over the
      # mapped segment, so the addon leaves out channel.c (the C channel API) and
      # mpsc.c (the C MPSC data path): they are for C programs, which `make`
      # builds into build-c/libshmchan.a. ring.c stays for shmchan_recover_tail
      # and shmchan_segment_end.
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
