/* fstat and stat for glibc 2.17 and later (see symver.h): glibc 2.33 made
 * fstat64 and stat64 real functions, new in GLIBC_2.33, where they were inline
 * wrappers of __fxstat64 and __xstat64 before. binding.gyp links with
 * --wrap=fstat64 --wrap=stat64, so that calls come here, to the system calls,
 * which fill the same struct stat on x64 and arm64. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((visibility("hidden"))) int __wrap_fstat64(int fd, struct stat *st) {
  return (int)syscall(SYS_fstat, fd, st);
}

/* arm64 has no stat system call: newfstatat relative to the working directory is
 * the same on both. */
__attribute__((visibility("hidden"))) int __wrap_stat64(const char *path, struct stat *st) {
  return (int)syscall(SYS_newfstatat, AT_FDCWD, path, st, 0);
}
