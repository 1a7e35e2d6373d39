/* Private helpers of the C core: typed access to header fields and atomics. */
#ifndef SHMCHAN_PLATFORM_H
#define SHMCHAN_PLATFORM_H

#include <stdint.h>
#include <string.h>
#include "../include/shmchan.h"

#define U32_AT(base, off) ((uint32_t *)((uint8_t *)(base) + (off)))
#define U64_AT(base, off) ((uint64_t *)((uint8_t *)(base) + (off)))

static inline uint32_t load_u32(const uint8_t *base, uint32_t off) {
  return __atomic_load_n(U32_AT(base, off), __ATOMIC_ACQUIRE);
}
static inline void store_u32(uint8_t *base, uint32_t off, uint32_t v) {
  __atomic_store_n(U32_AT(base, off), v, __ATOMIC_RELEASE);
}
static inline uint64_t load_u64(const uint8_t *base, uint32_t off) {
  return __atomic_load_n(U64_AT(base, off), __ATOMIC_ACQUIRE);
}
static inline void store_u64(uint8_t *base, uint32_t off, uint64_t v) {
  __atomic_store_n(U64_AT(base, off), v, __ATOMIC_RELEASE);
}
/* Counters have one writer each: a plain read-modify-write is enough. */
static inline void add_u64(uint8_t *base, uint32_t off, uint64_t v) {
  store_u64(base, off, load_u64(base, off) + v);
}

static inline uint8_t *ring_of(const shmchan_segment_t *seg) {
  return seg->base + SHMCHAN_HEADER_SIZE;
}
/* The ring size as validated at open: seg->size is exactly header + capacity.
 * Never re-read the header's capacity, which another process may change. */
static inline uint32_t capacity_of(const shmchan_segment_t *seg) {
  return (uint32_t)(seg->size - SHMCHAN_HEADER_SIZE);
}
/* The largest payload a record may carry: the header's limit, but never more
 * than the ring can hold, whatever the header says now. */
static inline uint32_t max_payload_of(const shmchan_segment_t *seg) {
  uint32_t max = __atomic_load_n(U32_AT(seg->base, SHMCHAN_OFF_MAX_MESSAGE), __ATOMIC_RELAXED);
  uint32_t limit = shmchan_max_message_limit(capacity_of(seg));
  return max < limit ? max : limit;
}
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* The waker's side of the eventcount: a system call only when somebody sleeps. */
static inline void shmchan_wake_if_waiting(shmchan_segment_t *seg, int which) {
  uint32_t off = which == SHMCHAN_WAIT_DATA ? SHMCHAN_OFF_DATA_WAITERS : SHMCHAN_OFF_SPACE_WAITERS;
  if (__atomic_load_n(U32_AT(seg->base, off), __ATOMIC_SEQ_CST) != 0) shmchan_wake(seg, which);
}

static inline uint32_t align8(uint32_t n) { return (n + 7u) & ~7u; }

/* The segments shmchan_guard_install() protects (guard.c): call add right after
 * mmap, before the first access, and remove before munmap. */
void shmchan_guard_add(void *base, size_t size);
void shmchan_guard_resize(void *base, size_t size);
void shmchan_guard_remove(void *base);

/* Milliseconds on the monotonic clock. */
int64_t shmchan_now_ms(void);
int64_t shmchan_now_us(void);

/* Writes the header of a freshly created, zeroed segment; publishes the magic last. */
void shmchan_header_init(uint8_t *base, const char *name, uint32_t backend, uint32_t key,
                         const shmchan_create_options_t *opt);
/* A power of two from SHMCHAN_MIN_CAPACITY to SHMCHAN_MAX_CAPACITY. */
int shmchan_capacity_valid(uint32_t capacity);
/* Validates creation options. 0 or -EINVAL. */
int shmchan_check_create_options(const shmchan_create_options_t *opt);

/* shmdt, and the semaphore set's removal when that detach destroyed the segment. */
void shmchan_sysv_detach(shmchan_segment_t *seg);

/* A waiting call (wait.c): `attempt` is tried until it answers something other
 * than -EAGAIN, spinning for spin_us, then sleeping on wait line `which` in
 * slices of at most slice_ms (or 100 ms when that is NULL or answers <= 0), so
 * deadlines and a dead consumer (-EPIPE, for space waits) are noticed.
 * timeout_ms < 0 waits forever; 0 tries once and answers -ETIMEDOUT. */
typedef struct shmchan_wait_plan {
  int which;
  int (*attempt)(void *context);
  int (*slice_ms)(void *context);
  void *context;
} shmchan_wait_plan_t;
int shmchan_wait_for(shmchan_segment_t *seg, const shmchan_wait_plan_t *plan, int timeout_ms, int spin_us);

/* The MPSC data path (mpsc.c), the protocol of src/mpsc.ts. Results as for
 * shmchan_spsc_try_send/try_receive. */
typedef struct shmchan_mpsc_writer {
  uint32_t cached_head; /* the consumer's head as last seen */
  uint32_t marker;      /* this producer's claim marker */
  uint32_t slot;
  uint32_t contended;   /* how often a live claim without its length was met at stuck_tail */
  uint32_t stuck_tail, stuck_marker;
} shmchan_mpsc_writer_t;

typedef struct shmchan_mpsc_reader {
  uint32_t head;
  uint32_t stuck_at;        /* the position of the unfinished claim waited on */
  int64_t stuck_since_us;
  int waiting_on_claim;     /* the next record is claimed, not committed: sleep briefly */
} shmchan_mpsc_reader_t;

void shmchan_mpsc_writer_init(shmchan_mpsc_writer_t *w, shmchan_segment_t *seg, uint32_t slot, uint32_t pid);
int shmchan_mpsc_try_send(shmchan_segment_t *seg, shmchan_mpsc_writer_t *w, const void *data, uint32_t len);
void shmchan_mpsc_reader_init(shmchan_mpsc_reader_t *r, shmchan_segment_t *seg);
int shmchan_mpsc_try_receive(shmchan_segment_t *seg, shmchan_mpsc_reader_t *r, void *buf, uint32_t cap);

#endif
