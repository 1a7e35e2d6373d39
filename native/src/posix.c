/* POSIX shared memory segments: shm_open, fallocate, mmap, shm_unlink. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform.h"

static int posix_path(char *out, size_t size, const char *name) {
  int rc = shmchan_check_name(name);
  if (rc) return rc;
  snprintf(out, size, "/%s", name[0] == '/' ? name + 1 : name);
  return 0;
}

int shmchan_segment_create_posix(shmchan_segment_t *seg, const char *name, const shmchan_segment_options_t *opt) {
  memset(seg, 0, sizeof *seg);
  int rc = posix_path(seg->name, sizeof seg->name, name);
  if (rc) return rc;
  if ((rc = shmchan_check_segment_options(opt))) return rc;

  seg->syscall = "shm_open";
  int fd = shm_open(seg->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, opt->permissions);
  if (fd < 0) return -errno;
  seg->syscall = "fchmod";
  size_t size = (size_t)SHMCHAN_HEADER_SIZE + opt->capacity;
  /* shm_open's mode is filtered by the umask; the caller asked for exactly these bits. */
  if (fchmod(fd, opt->permissions) != 0) goto fail;
  /* Reserve the memory now: a sparse segment would SIGBUS on first touch when
   * /dev/shm is full, instead of failing here with ENOSPC. */
  seg->syscall = "posix_fallocate";
  rc = posix_fallocate(fd, 0, (off_t)size);
  if (rc == EOPNOTSUPP || rc == EINVAL) rc = ftruncate(fd, (off_t)size) ? errno : 0;
  if (rc) { errno = rc; goto fail; }
  seg->syscall = "mmap";
  void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) goto fail;
  shmchan_guard_add(base, size);
  close(fd);
  seg->syscall = NULL;
  seg->base = base;
  seg->size = size;
  seg->backend = SHMCHAN_BACKEND_POSIX;
  shmchan_header_init(seg->base, seg->name, SHMCHAN_BACKEND_POSIX, 0, opt);
  return 0;

fail:
  rc = -errno;
  shm_unlink(seg->name);
  close(fd);
  return rc;
}

int shmchan_segment_open_posix(shmchan_segment_t *seg, const char *name, int timeout_ms) {
  memset(seg, 0, sizeof *seg);
  int rc = posix_path(seg->name, sizeof seg->name, name);
  if (rc) return rc;
  seg->syscall = "shm_open";
  int fd = shm_open(seg->name, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return -errno;
  seg->syscall = "mmap";

  int64_t deadline = shmchan_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
  for (;;) {
    struct stat st;
    if (fstat(fd, &st) != 0) { rc = -errno; break; }
    rc = -EAGAIN;
    if ((size_t)st.st_size >= SHMCHAN_HEADER_SIZE) {
      void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (base == MAP_FAILED) { rc = -errno; break; }
      shmchan_guard_add(base, (size_t)st.st_size);
      rc = shmchan_header_check(base, (size_t)st.st_size);
      if (rc == 0 && *U32_AT(base, SHMCHAN_OFF_BACKEND) != SHMCHAN_BACKEND_POSIX) rc = -EBADMSG;
      uint32_t capacity = load_u32(base, SHMCHAN_OFF_CAPACITY); /* again: it may have changed since the check */
      size_t size = (size_t)SHMCHAN_HEADER_SIZE + capacity;
      if (rc == 0 && (!shmchan_capacity_valid(capacity) || size > (size_t)st.st_size)) rc = -EBADMSG;
      if (rc == 0) {
        /* Keep exactly header + capacity mapped (both page multiples): the core then
         * knows the capacity from the mapping, whatever the header says later. */
        shmchan_guard_resize(base, size);
        if (size == (size_t)st.st_size || munmap((uint8_t *)base + size, (size_t)st.st_size - size) == 0) {
          seg->base = base;
          seg->size = size;
          seg->backend = SHMCHAN_BACKEND_POSIX;
          seg->syscall = NULL;
          break;
        }
        rc = -errno;
      }
      shmchan_guard_remove(base);
      munmap(base, (size_t)st.st_size);
    }
    if (rc != -EAGAIN) break;
    if (shmchan_now_ms() >= deadline) { rc = -ETIMEDOUT; break; }
    usleep(1000);
  }
  close(fd);
  return rc;
}

int shmchan_segment_unlink_posix(const char *name) {
  char path[SHMCHAN_NAME_MAX + 2];
  int rc = posix_path(path, sizeof path, name);
  if (rc) return rc;
  return shm_unlink(path) == 0 ? 0 : -errno;
}

void shmchan_segment_unmap(shmchan_segment_t *seg) {
  if (seg->base) shmchan_guard_remove(seg->base);
  if (seg->base && seg->backend == SHMCHAN_BACKEND_SYSV) shmchan_sysv_detach(seg);
  else if (seg->base) munmap(seg->base, seg->size);
  seg->base = NULL;
  seg->size = 0;
}
