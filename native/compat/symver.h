/* Force-included into every source of the addon built against glibc
 * (binding.gyp), so that the prebuilt binaries load on glibc 2.17 and later
 * and with the libstdc++ of GCC 6 and later, whatever built them: the linker
 * binds each function to its newest symbol version, and these got new ones
 * that old systems lack. Their old versions are still there.
 * test/prebuild-glibc.test.ts fails when a newer version comes back.
 * No includes: this comes before each source's own feature macros. */
#ifndef SHMCHAN_COMPAT_SYMVER_H
#define SHMCHAN_COMPAT_SYMVER_H

/* The oldest symbol versions: x64's glibc starts at 2.2.5, arm64's at 2.17. */
#if defined(__x86_64__)
#define SHMCHAN_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define SHMCHAN_GLIBC_BASE "GLIBC_2.17"
#else
#error "compat/symver.h: no glibc symbol versions known for this architecture"
#endif

/* glibc 2.34 moved these from librt into libc under GLIBC_2.34. Before 2.34
 * they are only in librt, which binding.gyp links by its soname. */
__asm__(".symver shm_open,shm_open@" SHMCHAN_GLIBC_BASE);
__asm__(".symver shm_unlink,shm_unlink@" SHMCHAN_GLIBC_BASE);

/* The same for pthread_create and pthread_join, in libpthread before 2.34. */
__asm__(".symver pthread_create,pthread_create@" SHMCHAN_GLIBC_BASE);
__asm__(".symver pthread_join,pthread_join@" SHMCHAN_GLIBC_BASE);

/* glibc 2.28 added fcntl64, which the headers call for fcntl when off_t is 64
 * bits (always on x64 and arm64, where the two are the same function). */
__asm__(".symver fcntl64,fcntl@" SHMCHAN_GLIBC_BASE);

#ifdef __cplusplus
/* GCC 12's libstdc++ added GLIBCXX_3.4.30 for a change that does not concern
 * std::mutex; the GLIBCXX_3.4.11 one is the same wait. */
__asm__(".symver _ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE,"
        "_ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE@GLIBCXX_3.4.11");
#endif

#endif
