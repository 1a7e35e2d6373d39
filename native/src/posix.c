/* POSIX shared memory segments: shm_open, fallocate, mmap, shm_unlink. A handle
 * keeps the segment's file open for its lifetime: its locks on that file are its
 * roles and say that it has the channel open ("Liveness" in shmchan.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform.h"

/* How long a creator waits for its own new file's "open" lock. */
#define CREATE_LOCK_WAIT_MS 100

int shmchan_segment_create_posix(shmchan_segment_t *seg, const char *name, const shmchan_segment_options_t *opt) {
  segment_reset(seg);
  int rc = shmchan_segment_name(seg->name, sizeof seg->name, name);
  if (rc) return rc;
  if ((rc = shmchan_check_segment_options(opt))) return rc;

  seg->syscall = "shm_open";
  int fd = shm_open(seg->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, opt->permissions);
  if (fd < 0) return -errno;
  /* Locked before anything else: a channel nobody has open is stale, and may be
   * replaced, from the moment its name exists. */
  seg->fd = fd;
  seg->backend = SHMCHAN_BACKEND_POSIX;
  seg->syscall = "fcntl";
  /* -EAGAIN: another creator is looking whether this new file is a stale channel;
   * it lets go within microseconds (the header is not valid yet). */
  int64_t deadline = shmchan_now_ms() + CREATE_LOCK_WAIT_MS;
  while ((rc = shmchan_lock_open(seg, 1)) == -EAGAIN && shmchan_now_ms() < deadline) usleep(1000);
  if (rc != 0) {
    errno = rc == -EAGAIN ? EBUSY : -rc;
    goto fail;
  }
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
  segment_mapped(seg, base, SHMCHAN_BACKEND_POSIX, &(shmchan_header_facts_t){.segment_size = size, .mode = opt->mode, .codec = opt->codec});
  shmchan_header_init(seg->base, seg->name, SHMCHAN_BACKEND_POSIX, 0, opt);
  return 0;

fail:
  rc = -errno;
  shm_unlink(seg->name);
  close(fd);
  seg->fd = -1;
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
  shmchan_header_facts_t facts; /* what the check validated: never the header read again */
  int rc = shmchan_header_validate(base, (size_t)st.st_size, &facts);
  size_t size = facts.segment_size;
  if (rc == 0 && load_u32(base, SHMCHAN_OFF_BACKEND) != SHMCHAN_BACKEND_POSIX) rc = -EBADMSG;
  if (rc == 0) {
    /* Keep exactly header + capacity mapped (both page multiples): the core then
     * knows the capacity from the mapping, whatever the header says later. */
    shmchan_guard_resize(base, size);
    if (size == (size_t)st.st_size || munmap((uint8_t *)base + size, (size_t)st.st_size - size) == 0) {
      segment_mapped(o->seg, base, SHMCHAN_BACKEND_POSIX, &facts);
      return 0;
    }
    rc = -errno;
  }
  shmchan_guard_remove(base);
  munmap(base, (size_t)st.st_size);
  return rc;
}

/* Opens the file behind the name and takes the handle's read lock on it (none
 * when it only inspects). A file that a replacer holds (-EAGAIN) or has unlinked
 * since shm_open is looked up again, every millisecond, for up to timeout_ms. */
static int open_locked(shmchan_segment_t *seg, int timeout_ms, int inspect) {
  int64_t deadline = shmchan_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
  for (;;) {
    seg->syscall = "shm_open";
    /* Anyone may make /dev/shm/NAME a FIFO (which a plain open waits on for a
     * writer), a symbolic link or a directory: open none of them, and look at
     * nothing but a regular file. */
    int fd = shm_open(seg->name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
    /* glibc reports a directory as EINVAL; the name itself was checked above. */
    if (fd < 0) return errno == EINVAL ? -EISDIR : -errno;
    seg->syscall = "fstat";
    struct stat file;
    /* not a regular file: not a segment, so no channel */
    int bad = fstat(fd, &file) != 0 ? -errno : S_ISREG(file.st_mode) ? 0 : -EPROTONOSUPPORT;
    if (bad) {
      close(fd);
      return bad;
    }
    seg->fd = fd;
    seg->backend = SHMCHAN_BACKEND_POSIX;
    seg->syscall = "fcntl";
    int rc = inspect ? 0 : shmchan_lock_open(seg, 0);
    struct stat st;
    if (rc == 0 && fstat(fd, &st) != 0) rc = -errno;
    if (rc == 0 && st.st_nlink > 0) return 0;
    close(fd);
    seg->fd = -1;
    if (rc == 0) rc = -ENOENT; /* replaced meanwhile: the name is free or names the new one */
    else if (rc != -EAGAIN) return rc;
    if (shmchan_now_ms() >= deadline) return rc == -EAGAIN ? -ETIMEDOUT : rc;
    usleep(1000);
  }
}

int shmchan_segment_open_posix(shmchan_segment_t *seg, const char *name, int timeout_ms, int inspect) {
  segment_reset(seg);
  int rc = shmchan_segment_name(seg->name, sizeof seg->name, name);
  if (rc) return rc;
  if ((rc = open_locked(seg, timeout_ms, inspect)) != 0) return rc;
  seg->syscall = "mmap";
  rc = shmchan_await_header(map_validated, &(opening_t){seg, seg->fd}, timeout_ms);
  if (rc != 0) {
    close(seg->fd);
    seg->fd = -1;
  }
  return rc;
}

uint64_t shmchan_unread_messages(const uint8_t *base) {
  uint64_t sent = 0;
  for (uint32_t i = 0; i < SHMCHAN_MAX_PRODUCERS; i++)
    sent += load_u64(base, SHMCHAN_OFF_PRODUCERS + i * SHMCHAN_PRODUCER_SIZE + SHMCHAN_PRODUCER_MESSAGES);
  uint64_t received = load_u64(base, SHMCHAN_OFF_RECV_MESSAGES);
  return sent > received ? sent - received : 0;
}

/* Under the write lock on SHMCHAN_LOCK_OPEN of the file open as fd: checks that
 * it is a channel of this version that still has its name, counts its unread
 * messages and unlinks it unless some wait and force is 0. */
static int remove_locked(const char *path, int fd, int force, uint64_t *unread) {
  struct stat st, named;
  if (fstat(fd, &st) != 0) return -errno;
  if (st.st_nlink == 0) return -ENOENT;
  if ((size_t)st.st_size < SHMCHAN_HEADER_SIZE) return -EAGAIN;
  uint8_t *base = mmap(NULL, SHMCHAN_HEADER_SIZE, PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return -errno;
  shmchan_guard_add(base, SHMCHAN_HEADER_SIZE);
  int rc = shmchan_header_check(base, (size_t)st.st_size);
  if (rc == 0 && load_u32(base, SHMCHAN_OFF_BACKEND) != SHMCHAN_BACKEND_POSIX) rc = -EBADMSG;
  if (rc == 0) *unread = shmchan_unread_messages(base);
  shmchan_guard_remove(base);
  munmap(base, SHMCHAN_HEADER_SIZE);
  if (rc != 0) return rc;
  if (*unread != 0 && !force) return -ENOTEMPTY;
  /* only the file we hold: `shmchan rm` may have removed it and someone created another */
  char file[SHMCHAN_NAME_MAX + 16];
  snprintf(file, sizeof file, "/dev/shm%s", path);
  if (stat(file, &named) != 0 || named.st_ino != st.st_ino || named.st_dev != st.st_dev) return -ENOENT;
  return shm_unlink(path) == 0 ? 0 : -errno;
}

int shmchan_segment_remove_stale_posix(const char *name, int force, uint64_t *unread) {
  char path[SHMCHAN_NAME_MAX + 2];
  *unread = 0;
  int rc = shmchan_segment_name(path, sizeof path, name);
  if (rc) return rc;
  int fd = shm_open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0); /* no FIFO or link: see open_locked */
  if (fd < 0) return -errno;
  /* Held until the name is gone: no handle can open the file meanwhile (openers
   * wait for their read lock, then find it unlinked and look the name up again). */
  struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = SHMCHAN_LOCK_OPEN, .l_len = 1};
  if (fcntl(fd, F_OFD_SETLK, &lock) != 0) rc = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
  else rc = remove_locked(path, fd, force, unread);
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
  if (seg->base == NULL) return;
  shmchan_guard_remove(seg->base);
  shmchan_unlock_open(seg);
  if (seg->backend == SHMCHAN_BACKEND_SYSV) shmchan_sysv_detach(seg);
  else munmap(seg->base, seg->size);
  /* closing the file releases every lock of this handle */
  if (seg->fd >= 0) close(seg->fd);
  seg->fd = -1;
  seg->base = NULL;
  seg->size = 0;
}
