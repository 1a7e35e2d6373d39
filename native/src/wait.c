/* Sleeping and waking across processes. The POSIX backend sleeps on a futex in
 * the header: a shared (not FUTEX_PRIVATE) futex works between processes that
 * map the same memory. The System V backend sleeps on its semaphore set.
 *
 * Both keep the eventcount protocol of the callers (ring.c, src/wait.ts), with
 * the low bit of the sequence (SHMCHAN_SEQ_ARMED) saying that a sleeper waits:
 *   sleeper: waiters++; e = arm(seq); look at the ring; if still nothing: shmchan_wait(e); waiters--
 *   waker:   publish; s = seq; if (s is armed && CAS(seq, s, s + 1)) wake
 * arm sets the bit if it is clear (a CAS loop) and answers the armed value; s + 1
 * of an armed s clears the bit and moves the sequence. All of these are
 * sequentially consistent. If the sleeper's look missed the publication, its arm
 * came before the waker's read of seq, so the waker reads either e, and its CAS
 * moves seq from e (or fails because another waker moved it first: that one
 * wakes), or a value other than e, which means some waker already moved seq off
 * e after our arm. Either way seq moves off e after the sleeper read it, and
 * shmchan_wait(e) must not sleep through that. The waiters count no longer
 * decides wake-ups; it tells the consumer's space waker (ring.ts) that a
 * producer sleeps. Only the first waker after an arm makes the system call: the
 * other messages sent while the sleeper is still waking up make none.
 *
 * A futex gives the "must not sleep through" for free: FUTEX_WAIT compares seq
 * with e and sleeps atomically. A semaphore cannot compare, so System V works like this:
 *
 * Each sleeping thread holds a sleeper slot of its wait line: it takes the slot's
 * lock semaphore (SEM_UNDO, so the kernel frees the slot if the process dies),
 * then stores its pid in the slot's u64 in the header, which tells wakers that
 * somebody sleeps there. It sleeps on that slot's own semaphore, a token count
 * of 0 or 1.
 *
 *   shmchan_wait(e)                      shmchan_wake()
 *   W1 claim a free slot s (its lock,    K1 move seq
 *      then store the word)
 *   W2 semaphore[s] := 0 (SETVAL)        K2 for every slot s that is claimed:
 *   W3 if seq != e: return (woken)          post a token to semaphore[s] unless
 *   W4 take a token from semaphore[s],      it holds one (semop: wait-for-zero
 *      with the timeout (semtimedop)        with IPC_NOWAIT, then +1, atomically)
 *   W5 free the slot
 *
 * No lost wake-up. Take a wake whose K1 comes after the sleeper read e.
 *  - If K2 does not see slot s claimed: K1 < K2 < W1's store < W3 in the single order of
 *    sequentially consistent operations, so W3 sees seq != e and returns.
 *  - If K2 sees it claimed, it posts (or finds a token there) under the
 *    semaphore's kernel lock, either after W2: then a token stays in semaphore[s]
 *    until W4 takes it, however late W4 starts; or before W2: then K1 happens
 *    before the post, the post before W2 (same lock), W2 before W3, and W3 sees
 *    seq != e.
 *
 * No stolen wake-up. Tokens are not shared: each slot has its own semaphore and
 * one holder, so another sleeper of the line (mpsc producers, or this process's
 * own waiter thread being cancelled) can never take the token meant for us. A
 * wake-up reaches every sleeper of the line, like FUTEX_WAKE with INT_MAX.
 *
 * Spurious wake-ups are allowed (callers look at the ring and sleep again) and
 * bounded: a token left over by a waker that posted just before we freed the
 * slot is wiped out by the next holder's W2, and a slot never holds more than one.
 *
 * A dead sleeper's word stays set (wakers post to it in vain) until another
 * sleeper takes the slot: its lock was undone by the kernel. A sleeper first
 * tries the slots whose word is 0, then all. If all slots belong to live
 * sleepers, a sleeper polls in 1 ms naps instead.
 *
 * A removed semaphore set (ipcrm, Channel.unlink) makes semop fail with EIDRM,
 * or EINVAL once the id is gone: both are reported as -EIDRM. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "platform.h"

#define OVERFLOW_NAP_MS 1
/* Upper bound of one sleep: how often a sleeper re-checks its deadline and its peer. */
#define LIVENESS_CHECK_MS 100
/* Short sleeps that a plan asks for (slice_ms) double one after the other, up to
 * this: they look for a change nothing wakes us for (a claimant's death), and a
 * claimant that is alive but stopped (SIGSTOP, a debugger) may stay so for
 * minutes, while each look costs a wake-up. A commit still wakes us at once. */
#define SHORT_SLICE_MAX_MS 64

static uint32_t *sequence_of(shmchan_segment_t *seg, int which) {
  return U32_AT(seg->base, which == SHMCHAN_WAIT_DATA ? SHMCHAN_OFF_DATA_SEQ : SHMCHAN_OFF_SPACE_SEQ);
}

static uint64_t *sleepers_of(shmchan_segment_t *seg, int which) {
  return U64_AT(seg->base, SHMCHAN_OFF_SLEEPERS + (which == SHMCHAN_WAIT_DATA ? 0 : SHMCHAN_SYSV_SLOTS * 8));
}

static unsigned short semaphore_of(int which, int slot) {
  return (unsigned short)((which == SHMCHAN_WAIT_DATA ? 0 : SHMCHAN_SYSV_SLOTS) + (unsigned)slot);
}

static struct timespec *relative_timeout(struct timespec *ts, int timeout_ms) {
  if (timeout_ms < 0) return NULL;
  ts->tv_sec = timeout_ms / 1000;
  ts->tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
  return ts;
}

/* After a failed semop/semctl on the channel's own set: EINVAL can only mean
 * that the id no longer exists (the arguments were checked at open). */
static int semaphore_error(void) {
  return errno == EINVAL || errno == EIDRM ? -EIDRM : -errno;
}

static int futex_wait(shmchan_segment_t *seg, int which, uint32_t expected, int timeout_ms) {
  struct timespec ts;
  long rc = syscall(SYS_futex, sequence_of(seg, which), FUTEX_WAIT, expected, relative_timeout(&ts, timeout_ms), NULL, 0);
  if (rc == 0 || errno == EAGAIN) return 0; /* woken, or the sequence had already moved */
  return -errno;
}

static unsigned short slot_lock_of(int which, int slot) {
  return (unsigned short)(SHMCHAN_SYSV_SEM_SLEEPER_LOCKS + semaphore_of(which, slot));
}

/* A slot whose lock this thread took: a free one, or failing that one whose
 * holder died (its word is still set). -1 if every slot has a live holder, or
 * -EIDRM when the set is gone. */
static int claim_sleeper_slot(shmchan_segment_t *seg, int which, uint64_t *slots) {
  for (int reclaim = 0; reclaim < 2; reclaim++) {
    for (int i = 0; i < (int)SHMCHAN_SYSV_SLOTS; i++) {
      if (!reclaim && __atomic_load_n(&slots[i], __ATOMIC_SEQ_CST) != 0) continue;
      struct sembuf take = {slot_lock_of(which, i), -1, IPC_NOWAIT | SEM_UNDO};
      if (semop(seg->semid, &take, 1) == 0) {
        __atomic_store_n(&slots[i], (uint64_t)(uint32_t)getpid(), __ATOMIC_SEQ_CST);
        return i;
      }
      if (errno != EAGAIN) return semaphore_error();
    }
  }
  return -1;
}

static int semaphore_wait(shmchan_segment_t *seg, int which, uint32_t expected, int timeout_ms) {
  uint32_t *seq = sequence_of(seg, which);
  uint64_t *slots = sleepers_of(seg, which);
  int slot = claim_sleeper_slot(seg, which, slots); /* W1 */
  if (slot == -EIDRM) return slot;
  if (slot < 0) {
    if (__atomic_load_n(seq, __ATOMIC_SEQ_CST) == expected) {
      struct timespec nap = {0, OVERFLOW_NAP_MS * 1000000L};
      nanosleep(&nap, NULL);
    }
    return 0;
  }
  unsigned short sem = semaphore_of(which, slot);
  int rc = 0;
  if (semctl(seg->semid, sem, SETVAL, (union semun){.val = 0}) != 0) { /* W2 */
    rc = semaphore_error();
  } else if (__atomic_load_n(seq, __ATOMIC_SEQ_CST) == expected) { /* W3 */
    struct sembuf take = {sem, -1, 0};
    struct timespec ts;
    if (semtimedop(seg->semid, &take, 1, relative_timeout(&ts, timeout_ms)) != 0) /* W4 */
      rc = errno == EAGAIN ? -ETIMEDOUT : semaphore_error();
  }
  __atomic_store_n(&slots[slot], 0, __ATOMIC_SEQ_CST); /* W5 */
  struct sembuf release = {slot_lock_of(which, slot), 1, SEM_UNDO};
  semop(seg->semid, &release, 1);
  return rc;
}

static int semaphore_wake(shmchan_segment_t *seg, int which) {
  uint64_t *slots = sleepers_of(seg, which);
  for (int i = 0; i < (int)SHMCHAN_SYSV_SLOTS; i++) {
    if (__atomic_load_n(&slots[i], __ATOMIC_SEQ_CST) == 0) continue; /* K2 */
    unsigned short sem = semaphore_of(which, i);
    struct sembuf post[2] = {{sem, 0, IPC_NOWAIT}, {sem, 1, 0}};
    if (semop(seg->semid, post, 2) != 0 && errno != EAGAIN) {
      int rc = semaphore_error();
      if (rc == -EIDRM) return rc;
    }
  }
  return 0;
}

/* futex_waitv(2), Linux 5.16: the headers of older systems (the prebuilds are
 * built against old ones) lack it, and its number is the same on every
 * architecture that has it. */
#ifndef __NR_futex_waitv
#define __NR_futex_waitv 449
#endif
struct waitv_entry {
  uint64_t val;
  uint64_t uaddr;
  uint32_t flags;
  uint32_t reserved;
};
#define WAITV_FUTEX_32 2u
#define WAITV_PRIVATE 128u

int shmchan_wait_any_supported(void) {
  /* With no futexes the kernel answers EINVAL, or ENOSYS where it has no futex_waitv. */
  return syscall(__NR_futex_waitv, NULL, 0, 0, NULL, CLOCK_MONOTONIC) == -1 && errno != ENOSYS;
}

uint32_t shmchan_wait_sequence(shmchan_segment_t *seg, int which) {
  return __atomic_load_n(sequence_of(seg, which), __ATOMIC_SEQ_CST);
}

int shmchan_wait_any(uint32_t *bell, uint32_t bell_expected, const shmchan_wait_line_t *lines, int count, int64_t deadline_ns) {
  struct waitv_entry entries[SHMCHAN_WAIT_ANY_MAX + 1];
  if (count < 0 || count > SHMCHAN_WAIT_ANY_MAX) return -EINVAL;
  entries[0] = (struct waitv_entry){bell_expected, (uint64_t)(uintptr_t)bell, WAITV_FUTEX_32 | WAITV_PRIVATE, 0};
  for (int i = 0; i < count; i++)
    entries[i + 1] = (struct waitv_entry){lines[i].expected, (uint64_t)(uintptr_t)sequence_of(lines[i].seg, lines[i].which), WAITV_FUTEX_32, 0};
  struct timespec ts = {(time_t)(deadline_ns / 1000000000), (long)(deadline_ns % 1000000000)};
  long rc = syscall(__NR_futex_waitv, entries, (unsigned)(count + 1), 0, deadline_ns < 0 ? NULL : &ts, CLOCK_MONOTONIC);
  if (rc >= 0 || errno == EAGAIN) return 0; /* woken, or a word had already moved */
  return -errno;
}

void shmchan_ring_bell(uint32_t *bell) {
  __atomic_fetch_add(bell, 1, __ATOMIC_SEQ_CST);
  syscall(SYS_futex, bell, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int shmchan_wait(shmchan_segment_t *seg, int which, uint32_t expected, int timeout_ms) {
  if (seg->backend == SHMCHAN_BACKEND_SYSV) return semaphore_wait(seg, which, expected, timeout_ms);
  return futex_wait(seg, which, expected, timeout_ms);
}

uint32_t shmchan_arm_wait(shmchan_segment_t *seg, int which) {
  uint32_t *seq = sequence_of(seg, which);
  uint32_t e = __atomic_load_n(seq, __ATOMIC_SEQ_CST);
  while (!(e & SHMCHAN_SEQ_ARMED) && !__atomic_compare_exchange_n(seq, &e, e | SHMCHAN_SEQ_ARMED, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return e | SHMCHAN_SEQ_ARMED;
}

static int wake_sleepers(shmchan_segment_t *seg, int which) {
  if (seg->backend == SHMCHAN_BACKEND_SYSV) return semaphore_wake(seg, which);
  syscall(SYS_futex, sequence_of(seg, which), FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
  return 0;
}

int shmchan_wake(shmchan_segment_t *seg, int which) {
  uint32_t *seq = sequence_of(seg, which);
  uint32_t s = __atomic_load_n(seq, __ATOMIC_SEQ_CST);
  /* K1: an armed value moves by one, a clear one by two; both end up clear */
  while (!__atomic_compare_exchange_n(seq, &s, (s | SHMCHAN_SEQ_ARMED) + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return wake_sleepers(seg, which);
}

int shmchan_wake_armed(shmchan_segment_t *seg, int which) {
  uint32_t *seq = sequence_of(seg, which);
  uint32_t s = __atomic_load_n(seq, __ATOMIC_SEQ_CST);
  if (!(s & SHMCHAN_SEQ_ARMED)) return 0;
  /* K1; a failed CAS means another waker moved the sequence, and it wakes */
  if (!__atomic_compare_exchange_n(seq, &s, s + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 0;
  return wake_sleepers(seg, which);
}

/* The sleeper's side of the eventcount, for the C data path (src/wait.ts is the
 * same for TypeScript): announce, read the sequence, look once more, sleep. */
int shmchan_run_wait_plan(shmchan_segment_t *seg, const shmchan_wait_plan_t *plan, int timeout_ms, int spin_us) {
  int64_t start = shmchan_now_us();
  int rc = plan->attempt(plan->context);
  if (rc != -EAGAIN) return rc;
  if (timeout_ms == 0) return -ETIMEDOUT;
  while ((rc = plan->attempt(plan->context)) == -EAGAIN && shmchan_now_us() - start < spin_us) cpu_relax();
  uint32_t *waiters = U32_AT(seg->base, plan->which == SHMCHAN_WAIT_DATA ? SHMCHAN_OFF_DATA_WAITERS : SHMCHAN_OFF_SPACE_WAITERS);
  int64_t deadline_ms = timeout_ms < 0 ? -1 : start / 1000 + timeout_ms;
  int short_slices = 0;
  while (rc == -EAGAIN) {
    if (plan->which == SHMCHAN_WAIT_SPACE && shmchan_consumer_gone(seg)) return -EPIPE;
    int64_t now = shmchan_now_ms();
    if (deadline_ms >= 0 && now >= deadline_ms) return -ETIMEDOUT;
    int slice = plan->slice_ms != NULL ? plan->slice_ms(plan->context) : 0;
    int sleep_ms = LIVENESS_CHECK_MS;
    if (slice > 0 && slice < SHORT_SLICE_MAX_MS) {
      sleep_ms = slice << (short_slices < 6 ? short_slices : 6);
      if (sleep_ms > SHORT_SLICE_MAX_MS) sleep_ms = SHORT_SLICE_MAX_MS;
      short_slices++;
    } else {
      if (slice > 0 && slice < LIVENESS_CHECK_MS) sleep_ms = slice;
      short_slices = 0;
    }
    if (deadline_ms >= 0 && deadline_ms - now < sleep_ms) sleep_ms = (int)(deadline_ms - now);
    __atomic_fetch_add(waiters, 1, __ATOMIC_SEQ_CST);
    uint32_t seq = shmchan_arm_wait(seg, plan->which);
    rc = plan->attempt(plan->context);
    int slept = rc == -EAGAIN ? shmchan_wait(seg, plan->which, seq, sleep_ms) : 0;
    __atomic_fetch_sub(waiters, 1, __ATOMIC_SEQ_CST);
    if (rc == -EAGAIN) rc = plan->attempt(plan->context);
    /* e.g. -EIDRM: nothing can wake us any more, once what was published is taken */
    if (rc == -EAGAIN && slept != 0 && slept != -ETIMEDOUT && slept != -EINTR) return slept;
  }
  return rc;
}
