/* fstat for glibc 2.17 and later (see symver.h): glibc 2.33 made fstat64 a
 * real function, new in GLIBC_2.33, where fstat was an inline wrapper of
 * __fxstat64 before. binding.gyp links with --wrap=fstat64, so that calls come
 * here, to the system call, which fills the same struct stat on x64 and arm64. */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((visibility("hidden"))) int __wrap_fstat64(int fd, struct stat *st) {
  return (int)syscall(SYS_fstat, fd, st);
}
