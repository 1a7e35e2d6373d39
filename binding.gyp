{
  "targets": [
    {
      "target_name": "shmchan",
      "variables": {
        "glibc%": "<!(node -p \"Boolean(process.report.getReport().header.glibcVersionRuntime)\")"
      },
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
        "native/src/uring.c",
        "native/src/wait.c"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags": ["-Wall", "-Wextra", "-fvisibility=hidden"],
      "cflags_c": ["-std=c11"],
      "cflags_cc": ["-std=c++17"],
      "conditions": [
        # The prebuilt binaries load on glibc 2.17 and later, and with the
        # libstdc++ of GCC 6 and later: native/compat/ binds the few functions
        # newer than that to their old versions. Those of shm_open and
        # shm_unlink are in librt before glibc 2.34, and those of pthread_create
        # and pthread_join in libpthread, so both are linked by their sonames and
        # kept though newer glibcs need nothing of them.
        ["glibc=='true' and target_arch in ('x64', 'arm64')", {
          "sources": ["native/compat/stat.c", "native/compat/libstdcxx.cc"],
          "cflags": ["-include", "<(module_root_dir)/native/compat/symver.h"],
          "ldflags": ["-Wl,--wrap=fstat64", "-Wl,--wrap=stat64"],
          "libraries": ["-Wl,--push-state,--no-as-needed", "-l:librt.so.1", "-l:libpthread.so.0", "-Wl,--pop-state"]
        }, {
          "libraries": ["-lrt"]
        }]
      ],
      "configurations": {
        "Debug": {
          "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"],
          "ldflags": ["-fsanitize=address,undefined"]
        }
      }
    }
  ]
}
