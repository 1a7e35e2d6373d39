/* Sleeping and waking across processes. The POSIX backend sleeps on a futex in
 * the header: a shared (not FUTEX_PRIVATE) futex works between processes that
 * map the same memory. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "platform.h"

static uint32_t *sequence_of(shmchan_segment_t *seg, int which) {
  return U32_AT(seg->base, which == SHMCHAN_WAIT_DATA ? SHMCHAN_OFF_DATA_SEQ : SHMCHAN_OFF_SPACE_SEQ);
}

int shmchan_wait(shmchan_segment_t *seg, int which, uint32_t expected, int timeout_ms) {
  struct timespec ts, *timeout = NULL;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
    timeout = &ts;
  }
  long rc = syscall(SYS_futex, sequence_of(seg, which), FUTEX_WAIT, expected, timeout, NULL, 0);
  if (rc == 0 || errno == EAGAIN) return 0; /* woken, or the sequence had already moved */
  return -errno;
}

void shmchan_wake(shmchan_segment_t *seg, int which) {
  uint32_t *seq = sequence_of(seg, which);
  __atomic_fetch_add(seq, 1, __ATOMIC_SEQ_CST);
  syscall(SYS_futex, seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
