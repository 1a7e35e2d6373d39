/* Which process holds which role: owner words (pid + start time), liveness,
 * claiming and releasing roles, and the counters that stats() reports. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "platform.h"

#define PID_MASK ((1u << SHMCHAN_OWNER_PID_BITS) - 1)

/* Reads state and start time (field 22) from /proc/PID/stat. 0, or -errno. */
static int read_proc_stat(uint32_t pid, char *state, uint64_t *start) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%u/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  int err = errno;
  close(fd);
  if (n <= 0) return n < 0 ? -err : -EIO;
  buf[n] = 0;
  /* the command name may contain spaces and parentheses: fields restart after the last ')' */
  char *p = strrchr(buf, ')');
  if (p == NULL || p[1] != ' ') return -EIO;
  p += 2;
  *state = *p;
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (p == NULL) return -EIO;
    p++;
  }
  *start = strtoull(p, NULL, 10);
  return 0;
}

static uint64_t make_owner(uint32_t pid, uint64_t start) {
  return (start << SHMCHAN_OWNER_PID_BITS) | (pid & PID_MASK);
}

uint64_t shmchan_self_owner(void) {
  static uint32_t cached_pid;
  static uint64_t cached_owner;
  uint32_t pid = (uint32_t)getpid();
  if (__atomic_load_n(&cached_pid, __ATOMIC_ACQUIRE) != pid) {
    char state;
    uint64_t start = 0;
    read_proc_stat(pid, &state, &start);
    __atomic_store_n(&cached_owner, make_owner(pid, start), __ATOMIC_RELAXED);
    __atomic_store_n(&cached_pid, pid, __ATOMIC_RELEASE);
  }
  return __atomic_load_n(&cached_owner, __ATOMIC_RELAXED);
}

int shmchan_owner_alive(uint64_t owner) {
  uint32_t pid = shmchan_owner_pid(owner);
  if (owner == 0 || pid == 0) return 0;
  if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return 0;
  char state;
  uint64_t start;
  /* /proc may be hidden from us (hidepid): then kill() is all we know */
  if (read_proc_stat(pid, &state, &start) != 0) return kill((pid_t)pid, 0) == 0 || errno == EPERM;
  if (state == 'Z' || state == 'X') return 0; /* killed, not yet reaped */
  return make_owner(pid, start) == owner;
}

/* Takes a role slot that is free or held by a dead process. 0 or -EBUSY. */
static int claim_slot(uint64_t *slot, uint64_t me) {
  for (;;) {
    uint64_t current = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (current != 0 && (current == me || shmchan_owner_alive(current))) return -EBUSY;
    if (__atomic_compare_exchange_n(slot, &current, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return 0;
  }
}

static void release_slot(uint64_t *slot, uint64_t me) {
  __atomic_compare_exchange_n(slot, &me, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

static uint64_t *producer_owner(const shmchan_segment_t *seg, uint32_t slot) {
  return U64_AT(seg->base, SHMCHAN_OFF_PRODUCERS + slot * SHMCHAN_PRODUCER_SIZE + SHMCHAN_PRODUCER_OWNER);
}

/* MPSC: a consumer that died while zeroing consumed records left the head behind
 * SHMCHAN_OFF_RELEASING; finish its release so no half-zeroed record is read. */
static void finish_release(shmchan_segment_t *seg) {
  uint8_t *base = seg->base, *ring = ring_of(seg);
  uint32_t capacity = capacity_of(seg), mask = capacity - 1;
  uint32_t head = load_u32(base, SHMCHAN_OFF_HEAD);
  uint32_t releasing = load_u32(base, SHMCHAN_OFF_RELEASING);
  uint32_t tail = load_u32(base, SHMCHAN_OFF_TAIL);
  /* nothing pending, or cursors no consumer could have left (then the data path reports them) */
  if (releasing == head || tail - head > capacity || releasing - head > tail - head) return;
  for (uint32_t at = head; at != releasing;) {
    uint32_t idx = at & mask, chunk = releasing - at;
    if (chunk > capacity - idx) chunk = capacity - idx;
    memset(ring + idx, 0, chunk);
    at += chunk;
  }
  store_u32(base, SHMCHAN_OFF_HEAD, releasing);
}

int shmchan_claim_consumer(shmchan_segment_t *seg) {
  uint64_t *slot = U64_AT(seg->base, SHMCHAN_OFF_CONSUMER);
  uint64_t previous = load_u64(seg->base, SHMCHAN_OFF_CONSUMER);
  int rc = claim_slot(slot, shmchan_self_owner());
  if (rc != 0) return rc;
  /* A dead predecessor may have left itself announced as a sleeper. */
  if (previous != 0) store_u32(seg->base, SHMCHAN_OFF_DATA_WAITERS, 0);
  if (*U32_AT(seg->base, SHMCHAN_OFF_MODE) == SHMCHAN_MODE_MPSC) finish_release(seg);
  return 0;
}

void shmchan_release_consumer(shmchan_segment_t *seg) {
  release_slot(U64_AT(seg->base, SHMCHAN_OFF_CONSUMER), shmchan_self_owner());
}

int shmchan_claim_producer(shmchan_segment_t *seg) {
  uint64_t me = shmchan_self_owner();
  if (*U32_AT(seg->base, SHMCHAN_OFF_MODE) == SHMCHAN_MODE_SPSC) {
    uint64_t previous = load_u64(seg->base, SHMCHAN_OFF_PRODUCERS + SHMCHAN_PRODUCER_OWNER);
    int rc = claim_slot(producer_owner(seg, 0), me);
    /* A dead predecessor may have left itself announced as a sleeper. */
    if (rc == 0 && previous != 0) store_u32(seg->base, SHMCHAN_OFF_SPACE_WAITERS, 0);
    return rc;
  }
  /* In MPSC one process may hold several slots (one per handle). */
  for (uint32_t i = 0; i < SHMCHAN_MAX_PRODUCERS; i++) {
    uint64_t *slot = producer_owner(seg, i);
    uint64_t current = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (current != 0 && (current == me || shmchan_owner_alive(current))) continue;
    if (__atomic_compare_exchange_n(slot, &current, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return (int)i;
  }
  return -EUSERS;
}

void shmchan_release_producer(shmchan_segment_t *seg, int slot) {
  if (slot < 0 || slot >= (int)SHMCHAN_MAX_PRODUCERS) return;
  release_slot(producer_owner(seg, (uint32_t)slot), shmchan_self_owner());
}

int shmchan_claimant_alive(shmchan_segment_t *seg, uint32_t slot, uint32_t pid) {
  if (slot >= SHMCHAN_MAX_PRODUCERS) return 0;
  uint64_t owner = load_u64(seg->base, SHMCHAN_OFF_PRODUCERS + slot * SHMCHAN_PRODUCER_SIZE + SHMCHAN_PRODUCER_OWNER);
  return shmchan_owner_pid(owner) == pid && shmchan_owner_alive(owner);
}

int shmchan_consumer_gone(shmchan_segment_t *seg) {
  uint64_t consumer = load_u64(seg->base, SHMCHAN_OFF_CONSUMER);
  return consumer != 0 && !shmchan_owner_alive(consumer);
}

void shmchan_segment_stats(const shmchan_segment_t *seg, shmchan_stats_t *out) {
  const uint8_t *b = seg->base;
  memset(out, 0, sizeof *out);
  out->capacity = capacity_of(seg);
  uint32_t used = load_u32(b, SHMCHAN_OFF_TAIL) - load_u32(b, SHMCHAN_OFF_HEAD);
  out->used = used <= out->capacity ? used : out->capacity;
  out->messages_received = load_u64(b, SHMCHAN_OFF_RECV_MESSAGES);
  out->bytes_received = load_u64(b, SHMCHAN_OFF_RECV_BYTES);
  for (uint32_t i = 0; i < SHMCHAN_MAX_PRODUCERS; i++) {
    uint32_t entry = SHMCHAN_OFF_PRODUCERS + i * SHMCHAN_PRODUCER_SIZE;
    out->messages_sent += load_u64(b, entry + SHMCHAN_PRODUCER_MESSAGES);
    out->bytes_sent += load_u64(b, entry + SHMCHAN_PRODUCER_BYTES);
    if (shmchan_owner_alive(load_u64(b, entry + SHMCHAN_PRODUCER_OWNER))) out->producers++;
  }
  uint64_t consumer = load_u64(b, SHMCHAN_OFF_CONSUMER);
  if (shmchan_owner_alive(consumer)) out->consumer_pid = shmchan_owner_pid(consumer);
  uint64_t creator = load_u64(b, SHMCHAN_OFF_CREATOR);
  if (shmchan_owner_alive(creator)) out->creator_pid = shmchan_owner_pid(creator);
  out->ended = load_u32(b, SHMCHAN_OFF_ENDED);
}
