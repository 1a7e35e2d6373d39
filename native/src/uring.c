/* Sleeping on a POSIX segment's wait line without a thread: io_uring's
 * FUTEX_WAIT (Linux 6.7) queues the sleep in the kernel, and the ring's file
 * descriptor becomes readable when a sleep ends. An event loop polls that
 * descriptor, so the waker's FUTEX_WAKE reaches the loop's own thread directly,
 * instead of waking a waiter thread that then has to wake the loop.
 *
 * Only the thread that opened a ring uses it (submissions and completions are
 * not locked). A ring is private to the process: it needs no liburing, only the
 * three system calls, and the opcodes newer headers name are defined here.
 * Where io_uring is missing or forbidden (old kernels, io_uring_disabled,
 * container seccomp profiles), opening fails and the caller sleeps on threads. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/io_uring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "platform.h"

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif
#define OP_FUTEX_WAIT 51 /* IORING_OP_FUTEX_WAIT, Linux 6.7 */
#define FUTEX2_SIZE_U32_ 0x02u
#define FUTEX_MATCH_ANY 0xffffffffu
/* A completion of a sleep's timeout, which carries no sleep. */
#define TIMEOUT_TAG 0

/* Room for the completions of this many sleeps before the kernel has to hold
 * them back (it does not drop them: IORING_FEAT_NODROP is required). */
#define COMPLETIONS 4096
/* Two entries a sleep: up to 128 sleeps go to the kernel in one call while held. */
#define SUBMISSIONS 256

struct shmchan_uring {
  int fd;
  void *sq_map;
  size_t sq_map_size;
  void *cq_map;
  size_t cq_map_size;
  struct io_uring_sqe *sqes;
  size_t sqes_size;
  unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_cqe *cqes;
  unsigned sq_pending; /* written, not yet submitted */
  int held;            /* shmchan_uring_hold: sleeps wait to be submitted together */
  /* The time spans of queued timeouts, by entry: the kernel reads one when it takes
   * its entry, which a held sleep's caller does not wait for. */
  struct __kernel_timespec spans[SUBMISSIONS];
};

static int op_supported(int fd, int op) {
  size_t size = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
  struct io_uring_probe *probe = calloc(1, size);
  if (probe == NULL) return 0;
  int ok = syscall(__NR_io_uring_register, fd, IORING_REGISTER_PROBE, probe, 256) == 0 && op <= probe->last_op &&
           (probe->ops[op].flags & IO_URING_OP_SUPPORTED) != 0;
  free(probe);
  return ok;
}

void shmchan_uring_close(shmchan_uring_t *ring) {
  if (ring == NULL) return;
  if (ring->sqes != NULL && ring->sqes != MAP_FAILED) munmap(ring->sqes, ring->sqes_size);
  if (ring->cq_map != NULL && ring->cq_map != MAP_FAILED && ring->cq_map != ring->sq_map) munmap(ring->cq_map, ring->cq_map_size);
  if (ring->sq_map != NULL && ring->sq_map != MAP_FAILED) munmap(ring->sq_map, ring->sq_map_size);
  if (ring->fd >= 0) close(ring->fd); /* the kernel cancels the sleeps still queued */
  free(ring);
}

int shmchan_uring_open(shmchan_uring_t **out) {
  *out = NULL;
  shmchan_uring_t *ring = calloc(1, sizeof *ring);
  if (ring == NULL) return -ENOMEM;
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_CQSIZE;
  p.cq_entries = COMPLETIONS;
  ring->fd = (int)syscall(__NR_io_uring_setup, SUBMISSIONS, &p);
  if (ring->fd < 0) {
    int err = errno;
    free(ring);
    return -err;
  }
  int rc = -EOPNOTSUPP;
  if (p.sq_entries > SUBMISSIONS || !(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_SINGLE_MMAP) || !op_supported(ring->fd, OP_FUTEX_WAIT) ||
      !op_supported(ring->fd, IORING_OP_LINK_TIMEOUT) || !op_supported(ring->fd, IORING_OP_ASYNC_CANCEL))
    goto fail;
  ring->sq_map_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  if (cq_size > ring->sq_map_size) ring->sq_map_size = cq_size;
  ring->sq_map = mmap(NULL, ring->sq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring->fd, IORING_OFF_SQ_RING);
  if (ring->sq_map == MAP_FAILED) goto fail_errno;
  ring->cq_map = ring->sq_map; /* IORING_FEAT_SINGLE_MMAP */
  ring->sqes_size = p.sq_entries * sizeof(struct io_uring_sqe);
  ring->sqes = mmap(NULL, ring->sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring->fd, IORING_OFF_SQES);
  if (ring->sqes == MAP_FAILED) goto fail_errno;
  char *sq = ring->sq_map;
  ring->sq_head = (unsigned *)(sq + p.sq_off.head);
  ring->sq_tail = (unsigned *)(sq + p.sq_off.tail);
  ring->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  ring->sq_array = (unsigned *)(sq + p.sq_off.array);
  char *cq = ring->cq_map;
  ring->cq_head = (unsigned *)(cq + p.cq_off.head);
  ring->cq_tail = (unsigned *)(cq + p.cq_off.tail);
  ring->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
  ring->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  *out = ring;
  return 0;
fail_errno:
  rc = -errno;
fail:
  shmchan_uring_close(ring);
  return rc;
}

int shmchan_uring_fd(const shmchan_uring_t *ring) { return ring->fd; }

/* The next free submission entry, zeroed (after reserve() made room for it). */
static struct io_uring_sqe *next_sqe(shmchan_uring_t *ring) {
  unsigned index = (*ring->sq_tail + ring->sq_pending) & *ring->sq_mask;
  struct io_uring_sqe *sqe = &ring->sqes[index];
  memset(sqe, 0, sizeof *sqe);
  ring->sq_array[index] = index;
  ring->sq_pending++;
  return sqe;
}

/* Entries published to the kernel that it has not taken: outside a submission,
 * those a refused io_uring_enter left. */
unsigned shmchan_uring_refused(const shmchan_uring_t *ring) {
  return *ring->sq_tail - __atomic_load_n(ring->sq_head, __ATOMIC_ACQUIRE);
}

/* Hands the kernel every entry it has not taken: the new ones, and any that a
 * refused call left (their tail is published already, so the count must include
 * them, or the kernel would take the old ones in place of the new). 0, or
 * io_uring_enter's negative errno: the rest stay queued for the next call. */
static int submit(shmchan_uring_t *ring) {
  __atomic_store_n(ring->sq_tail, *ring->sq_tail + ring->sq_pending, __ATOMIC_RELEASE);
  ring->sq_pending = 0;
  for (unsigned count; (count = shmchan_uring_refused(ring)) > 0;) {
    long rc = syscall(__NR_io_uring_enter, ring->fd, count, 0, 0, NULL, 0);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return -errno; /* EAGAIN, EBUSY: the entries stay queued */
    if (rc == 0) return -EAGAIN; /* took none: the same */
  }
  return 0;
}

/* Whether the submission queue has room for `count` more entries, submitting
 * what a hold or a refused call left queued when that makes room. */
static int reserve(shmchan_uring_t *ring, unsigned count) {
  for (int submitted = 0;; submitted = 1) {
    unsigned head = __atomic_load_n(ring->sq_head, __ATOMIC_ACQUIRE);
    if (*ring->sq_tail + ring->sq_pending + count - head <= *ring->sq_mask + 1) return 1;
    if (submitted || ring->sq_pending + shmchan_uring_refused(ring) == 0) return 0;
    submit(ring);
  }
}

int shmchan_uring_sleep(shmchan_uring_t *ring, shmchan_segment_t *seg, int which, uint32_t expected, int timeout_ms, uint64_t tag) {
  if (seg->backend != SHMCHAN_BACKEND_POSIX || tag == TIMEOUT_TAG) return -EINVAL;
  /* Both entries or neither: the timeout is linked to the futex wait. */
  if (!reserve(ring, 2)) return -EBUSY;
  struct io_uring_sqe *wait = next_sqe(ring);
  wait->opcode = OP_FUTEX_WAIT;
  wait->fd = (int)FUTEX2_SIZE_U32_; /* shared, not FUTEX2_PRIVATE: the wakers are other processes */
  wait->addr = (uint64_t)(uintptr_t)U32_AT(seg->base, which == SHMCHAN_WAIT_DATA ? SHMCHAN_OFF_DATA_SEQ : SHMCHAN_OFF_SPACE_SEQ);
  wait->off = expected; /* addr2 */
  wait->addr3 = FUTEX_MATCH_ANY;
  wait->user_data = tag;
  if (timeout_ms >= 0) {
    wait->flags = IOSQE_IO_LINK;
    struct io_uring_sqe *timeout = next_sqe(ring);
    struct __kernel_timespec *span = &ring->spans[(unsigned)(timeout - ring->sqes)];
    *span = (struct __kernel_timespec){timeout_ms / 1000, (long long)(timeout_ms % 1000) * 1000000LL};
    timeout->opcode = IORING_OP_LINK_TIMEOUT;
    timeout->addr = (uint64_t)(uintptr_t)span;
    timeout->len = 1;
    timeout->user_data = TIMEOUT_TAG;
  }
  /* The kernel compares the line's sequence when it takes the entry: one that
   * moved meanwhile ends the sleep at once (-EAGAIN), so waiting to submit loses
   * no wake-up. A refused submission loses none either: it is made again. */
  if (!ring->held) submit(ring);
  return 0;
}

int shmchan_uring_hold(shmchan_uring_t *ring, int held) {
  ring->held = held;
  return held ? 0 : submit(ring);
}

int shmchan_uring_cancel(shmchan_uring_t *ring, uint64_t tag) {
  if (!reserve(ring, 1)) return -EBUSY;
  struct io_uring_sqe *cancel = next_sqe(ring);
  cancel->opcode = IORING_OP_ASYNC_CANCEL;
  cancel->addr = tag;
  cancel->user_data = TIMEOUT_TAG; /* its own completion carries no sleep either */
  if (!ring->held) submit(ring);
  return 0;
}

int shmchan_uring_ended(shmchan_uring_t *ring, shmchan_uring_end_t *ends, int max) {
  unsigned head = *ring->cq_head;
  unsigned tail = __atomic_load_n(ring->cq_tail, __ATOMIC_ACQUIRE);
  int count = 0;
  while (head != tail && count < max) {
    const struct io_uring_cqe *cqe = &ring->cqes[head & *ring->cq_mask];
    head++;
    if (cqe->user_data == TIMEOUT_TAG) continue;
    /* -EAGAIN: the line had moved before the sleep began; -ECANCELED: the timeout
     * or a cancel ended it. Either way the sleeper looks at the ring again. */
    int rc = cqe->res == -EAGAIN ? 0 : cqe->res;
    ends[count++] = (shmchan_uring_end_t){cqe->user_data, rc};
  }
  __atomic_store_n(ring->cq_head, head, __ATOMIC_RELEASE);
  return count;
}
