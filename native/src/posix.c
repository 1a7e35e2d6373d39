/* POSIX shared memory segments: shm_open, fallocate, mmap, shm_unlink. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform.h"

int shmchan_segment_create_posix(shmchan_segment_t *seg, const char *name, const shmchan_segment_options_t *opt) {
  memset(seg, 0, sizeof *seg);
  int rc = shmchan_segment_name(seg->name, sizeof seg->name, name);
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
  segment_mapped(seg, base, size, SHMCHAN_BACKEND_POSIX);
  shmchan_header_init(seg->base, seg->name, SHMCHAN_BACKEND_POSIX, 0, opt);
  return 0;

fail:
  rc = -errno;
  shm_unlink(seg->name);
  close(fd);
  return rc;
}

/* What map_validated needs: the segment to fill in and its open file. */
typedef struct opening {
  shmchan_segment_t *seg;
  int fd;
} opening_t;

/* One look at a segment being opened: maps it and validates its header, or
 * answers -EAGAIN while its creator has not published the header yet. */
static int map_validated(void *context) {
  opening_t *o = context;
  struct stat st;
  if (fstat(o->fd, &st) != 0) return -errno;
  if ((size_t)st.st_size < SHMCHAN_HEADER_SIZE) return -EAGAIN;
  void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, o->fd, 0);
  if (base == MAP_FAILED) return -errno;
  shmchan_guard_add(base, (size_t)st.st_size);
  size_t size = 0; /* the size the check validated: never the header read again */
  int rc = shmchan_header_validate(base, (size_t)st.st_size, &size);
  if (rc == 0 && *U32_AT(base, SHMCHAN_OFF_BACKEND) != SHMCHAN_BACKEND_POSIX) rc = -EBADMSG;
  if (rc == 0) {
    /* Keep exactly header + capacity mapped (both page multiples): the core then
     * knows the capacity from the mapping, whatever the header says later. */
    shmchan_guard_resize(base, size);
    if (size == (size_t)st.st_size || munmap((uint8_t *)base + size, (size_t)st.st_size - size) == 0) {
      segment_mapped(o->seg, base, size, SHMCHAN_BACKEND_POSIX);
      return 0;
    }
    rc = -errno;
  }
  shmchan_guard_remove(base);
  munmap(base, (size_t)st.st_size);
  return rc;
}

int shmchan_segment_open_posix(shmchan_segment_t *seg, const char *name, int timeout_ms) {
  memset(seg, 0, sizeof *seg);
  int rc = shmchan_segment_name(seg->name, sizeof seg->name, name);
  if (rc) return rc;
  seg->syscall = "shm_open";
  /* Anyone may make /dev/shm/NAME a FIFO (which a plain open waits on for a
   * writer), a symbolic link or a directory: open none of them, and look at
   * nothing but a regular file. */
  int fd = shm_open(seg->name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
  /* glibc reports a directory as EINVAL; the name itself was checked above. */
  if (fd < 0) return errno == EINVAL ? -EISDIR : -errno;
  seg->syscall = "fstat";
  struct stat st;
  if (fstat(fd, &st) != 0) rc = -errno;
  else if (!S_ISREG(st.st_mode)) rc = -EPROTONOSUPPORT; /* not a segment, so no channel */
  if (rc) {
    close(fd);
    return rc;
  }
  seg->syscall = "mmap";
  rc = shmchan_await_header(map_validated, &(opening_t){seg, fd}, timeout_ms);
  close(fd);
  return rc;
}

int shmchan_segment_unlink_posix(const char *name) {
  char path[SHMCHAN_NAME_MAX + 2];
  int rc = shmchan_segment_name(path, sizeof path, name);
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
