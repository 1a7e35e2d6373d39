/* Private helpers that only the C core's source files share: typed atomic
 * access to header fields, derived sizes, clocks, and the internals of header,
 * guard and System V code. The core's interface to the addon and the channel
 * API is segment.h. */
#ifndef SHMCHAN_PLATFORM_H
#define SHMCHAN_PLATFORM_H

#include <stdint.h>
#include <string.h>
#include "segment.h"

#define U32_AT(base, off) ((uint32_t *)((uint8_t *)(base) + (off)))
#define U64_AT(base, off) ((uint64_t *)((uint8_t *)(base) + (off)))

/* The fuzz target (native/fuzz) builds with SHMCHAN_FUZZ_LOADS: before each load
 * it may rewrite shared memory, as another process could between two reads. */
#ifdef SHMCHAN_FUZZ_LOADS
void shmchan_fuzz_before_load(const uint8_t *base, uint32_t off);
#else
static inline void shmchan_fuzz_before_load(const uint8_t *base, uint32_t off) { (void)base, (void)off; }
#endif

static inline uint32_t load_u32(const uint8_t *base, uint32_t off) {
  shmchan_fuzz_before_load(base, off);
  return __atomic_load_n(U32_AT(base, off), __ATOMIC_ACQUIRE);
}
static inline void store_u32(uint8_t *base, uint32_t off, uint32_t v) {
  __atomic_store_n(U32_AT(base, off), v, __ATOMIC_RELEASE);
}
static inline uint64_t load_u64(const uint8_t *base, uint32_t off) {
  shmchan_fuzz_before_load(base, off);
  return __atomic_load_n(U64_AT(base, off), __ATOMIC_ACQUIRE);
}
static inline void store_u64(uint8_t *base, uint32_t off, uint64_t v) {
  __atomic_store_n(U64_AT(base, off), v, __ATOMIC_RELEASE);
}
/* Sequentially consistent: the loads of the MPSC and fan-out protocols, which must
 * not move before a store of the same step (a claim's CAS, a sleeper's arming). */
static inline uint32_t load_seq_u32(const uint8_t *base, uint32_t off) {
  shmchan_fuzz_before_load(base, off);
  return __atomic_load_n(U32_AT(base, off), __ATOMIC_SEQ_CST);
}
static inline uint64_t load_seq_u64(const uint8_t *base, uint32_t off) {
  shmchan_fuzz_before_load(base, off);
  return __atomic_load_n(U64_AT(base, off), __ATOMIC_SEQ_CST);
}
/* Counters have one writer each: a plain read-modify-write is enough. */
static inline void add_u64(uint8_t *base, uint32_t off, uint64_t v) {
  store_u64(base, off, load_u64(base, off) + v);
}
/* What stats() sums: a producer counts in its own slot, the consumer in its line. */
static inline void count_sent(uint8_t *base, uint32_t slot, uint32_t bytes) {
  uint32_t entry = SHMCHAN_OFF_PRODUCERS + slot * SHMCHAN_PRODUCER_SIZE;
  add_u64(base, entry + SHMCHAN_PRODUCER_MESSAGES, 1);
  add_u64(base, entry + SHMCHAN_PRODUCER_BYTES, bytes);
}
static inline void count_received(uint8_t *base, uint32_t bytes) {
  add_u64(base, SHMCHAN_OFF_RECV_MESSAGES, 1);
  add_u64(base, SHMCHAN_OFF_RECV_BYTES, bytes);
}

/* What every create and open begins with: no mapping, no file, no role. */
static inline void segment_reset(shmchan_segment_t *seg) {
  memset(seg, 0, sizeof *seg);
  seg->fd = -1;
  seg->producer_slot = -1;
  seg->consumer_slot = -1;
}

/* Records the mapping that a create or an open has made and validated. */
static inline void segment_mapped(shmchan_segment_t *seg, void *base, uint32_t backend, const shmchan_header_facts_t *facts) {
  seg->base = base;
  seg->size = facts->segment_size;
  seg->mode = facts->mode;
  seg->codec = facts->codec;
  seg->backend = backend;
  seg->syscall = NULL;
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

/* The waker's side of the eventcount: a system call only when a sleeper armed
 * the line since the last wake-up. */
static inline void shmchan_wake_if_waiting(shmchan_segment_t *seg, int which) {
  uint32_t off = which == SHMCHAN_WAIT_DATA ? SHMCHAN_OFF_DATA_SEQ : SHMCHAN_OFF_SPACE_SEQ;
  if (__atomic_load_n(U32_AT(seg->base, off), __ATOMIC_SEQ_CST) & SHMCHAN_SEQ_ARMED) shmchan_wake_armed(seg, which);
}

static inline uint32_t align8(uint32_t n) { return (n + 7u) & ~7u; }

/* A data record's type word: DATA, or the marker of the producer that committed it. */
static inline int record_is_data(uint32_t type) {
  return type == SHMCHAN_RECORD_DATA || (type & SHMCHAN_CLAIM_FLAG) != 0;
}

/* Whether a committed record's length words fit its type and the ring at idx
 * (which types may be there is the mode's to check). */
static inline int record_fits(const shmchan_segment_t *seg, uint32_t idx, uint32_t length, uint32_t type) {
  uint32_t capacity = capacity_of(seg);
  if (type == SHMCHAN_RECORD_PADDING) return length % 8 == 0 && length <= capacity - idx;
  return length >= SHMCHAN_RECORD_HEADER && length - SHMCHAN_RECORD_HEADER <= max_payload_of(seg) &&
         align8(length) <= capacity - idx;
}

/* Zeroes the ring bytes of positions [from, to), wrapping at the ring's end: what
 * a release does before it moves the head (free ring bytes are always zero). */
static inline void zero_ring(const shmchan_segment_t *seg, uint32_t from, uint32_t to) {
  uint32_t capacity = capacity_of(seg), mask = capacity - 1;
  while (from != to) {
    uint32_t idx = from & mask, chunk = to - from;
    if (chunk > capacity - idx) chunk = capacity - idx;
    memset(ring_of(seg) + idx, 0, chunk);
    from += chunk;
  }
}

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
                         const shmchan_segment_options_t *opt);
/* Checks a name and writes it as the segment knows it, "/name" (what shm_open
 * takes; System V keeps it so in shmchan_segment_t too). 0 or -EINVAL. */
int shmchan_segment_name(char *out, size_t size, const char *name);
/* Opening: calls attempt until it answers something other than -EAGAIN (the
 * creator has not published the header yet), every millisecond for up to
 * timeout_ms (0 or less: once). Its answer, or -ETIMEDOUT. */
int shmchan_await_header(int (*attempt)(void *context), void *context, int timeout_ms);
/* A power of two from SHMCHAN_MIN_CAPACITY to SHMCHAN_MAX_CAPACITY. */
int shmchan_capacity_valid(uint32_t capacity);
/* Validates creation options. 0 or -EINVAL. */
int shmchan_check_segment_options(const shmchan_segment_options_t *opt);

/* What a System V opener checks in an attached segment (mapped_size: its
 * IPC_STAT size): shmchan_header_validate, then that the header is a System V
 * channel's with this key and name. 0 with what it validated in *facts,
 * -EEXIST when it is another channel's, or shmchan_header_validate's answer.
 * Reads each field once; native/fuzz/fuzz_segment.c drives it over a buffer. */
int shmchan_sysv_header_validate(const uint8_t *base, size_t mapped_size, const char *name, uint32_t key,
                                 shmchan_header_facts_t *facts);

/* shmdt, and the semaphore set's removal when that detach destroyed the segment. */
void shmchan_sysv_detach(shmchan_segment_t *seg);

/* semctl's fourth argument, which glibc leaves to the caller (see semctl(2)). */
struct semid_ds;
union semun {
  int val;
  struct semid_ds *buf;
  unsigned short *array;
};

#endif
