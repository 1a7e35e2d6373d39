/* Which handle holds which role, and whether it lives: kernel-kept locks (POSIX:
 * open-file-description locks on the segment's file; System V: semaphores taken
 * with SEM_UNDO), claiming and releasing roles, and the counters that stats()
 * reports. Pids in the header are for display only; see "Liveness" in shmchan.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/sem.h>
#include <unistd.h>

#include "platform.h"

#define PID_MASK ((1u << SHMCHAN_OWNER_PID_BITS) - 1)

static void release_word(uint64_t *word, uint64_t me) {
  __atomic_compare_exchange_n(word, &me, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

static uint64_t *producer_owner(const shmchan_segment_t *seg, uint32_t slot) {
  return U64_AT(seg->base, SHMCHAN_OFF_PRODUCERS + slot * SHMCHAN_PRODUCER_SIZE + SHMCHAN_PRODUCER_OWNER);
}

static uint32_t *producer_generation(const shmchan_segment_t *seg, uint32_t slot) {
  return U32_AT(seg->base, SHMCHAN_OFF_PRODUCERS + slot * SHMCHAN_PRODUCER_SIZE + SHMCHAN_PRODUCER_GENERATION);
}

/* What a holder writes in a role's owner word: its pid, for display only. */
static uint64_t display_owner(void) {
  return (uint64_t)(uint32_t)getpid() & PID_MASK;
}

/* ---- the locks: one per role, and "open" ---------------------------------- */

/* A role's lock: the creator, the consumer, producer slot i, or consumer slot i. */
enum {
  ROLE_CREATOR = 0,
  ROLE_CONSUMER = 1,
  ROLE_PRODUCER = 2, /* + slot */
  ROLE_CONSUMERS = ROLE_PRODUCER + SHMCHAN_MAX_PRODUCERS /* + slot: MPMC, BROADCAST */
};

static uint32_t *consumer_word(const shmchan_segment_t *seg, uint32_t slot, uint32_t field) {
  return U32_AT(seg->base, SHMCHAN_OFF_PRODUCERS + slot * SHMCHAN_PRODUCER_SIZE + field);
}

/* The mode create wrote or open validated: the header's word may have been
 * rewritten since, and a role claimed by another mode's rules would let a second
 * consumer in. */
static uint32_t mode_of(const shmchan_segment_t *seg) {
  return seg->mode;
}

static int posix(const shmchan_segment_t *seg) {
  return seg->backend == SHMCHAN_BACKEND_POSIX;
}

static uint32_t lock_byte(int role) {
  if (role >= ROLE_CONSUMERS) return SHMCHAN_LOCK_CONSUMERS + (uint32_t)(role - ROLE_CONSUMERS);
  return role == ROLE_CREATOR ? SHMCHAN_LOCK_CREATOR
         : role == ROLE_CONSUMER ? SHMCHAN_LOCK_CONSUMER
                                 : SHMCHAN_LOCK_PRODUCERS + (uint32_t)(role - ROLE_PRODUCER);
}

static unsigned short semaphore_of(int role) {
  if (role >= ROLE_CONSUMERS) return (unsigned short)(SHMCHAN_SYSV_SEM_CONSUMERS + (unsigned)(role - ROLE_CONSUMERS));
  return (unsigned short)(SHMCHAN_SYSV_SEM_CREATOR + (unsigned)role);
}

/* F_OFD_SETLK of one byte: 0, -EAGAIN when another handle's lock conflicts, or -errno. */
static int set_lock(const shmchan_segment_t *seg, short type, uint32_t byte) {
  struct flock lock = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
  if (fcntl(seg->fd, F_OFD_SETLK, &lock) == 0) return 0;
  return errno == EACCES ? -EAGAIN : -errno;
}

/* One semop on the channel's set: 0, -EAGAIN, or -errno. */
static int sem_change(const shmchan_segment_t *seg, unsigned short sem, short delta, short flags) {
  struct sembuf op = {.sem_num = sem, .sem_op = delta, .sem_flg = flags};
  return semop(seg->semid, &op, 1) == 0 ? 0 : -errno;
}

/* The set of a System V channel removed while in use is gone: no new handle can
 * open the channel, and its handles keep the mapping (not the roles' liveness). */
static int set_removed(int rc) {
  return rc == -EIDRM || rc == -EINVAL;
}

/* Takes a role's lock: 0, -EAGAIN (held by a live handle), or -errno. */
static int take_lock(shmchan_segment_t *seg, int role) {
  if (posix(seg)) return set_lock(seg, F_WRLCK, lock_byte(role));
  int rc = sem_change(seg, semaphore_of(role), -1, IPC_NOWAIT | SEM_UNDO);
  return set_removed(rc) ? 0 : rc;
}

/* A role's owner word (pid for display; 0 once released). */
static uint64_t role_word(const shmchan_segment_t *seg, int role) {
  if (role >= ROLE_CONSUMERS)
    return __atomic_load_n(consumer_word(seg, (uint32_t)(role - ROLE_CONSUMERS), SHMCHAN_CONSUMER_OWNER), __ATOMIC_ACQUIRE);
  uint32_t off = role == ROLE_CREATOR ? SHMCHAN_OFF_CREATOR
                 : role == ROLE_CONSUMER ? SHMCHAN_OFF_CONSUMER
                                         : SHMCHAN_OFF_PRODUCERS + (uint32_t)(role - ROLE_PRODUCER) * SHMCHAN_PRODUCER_SIZE;
  return load_u64(seg->base, off);
}

static void drop_lock(shmchan_segment_t *seg, int role) {
  if (posix(seg)) set_lock(seg, F_UNLCK, lock_byte(role));
  else sem_change(seg, semaphore_of(role), 1, SEM_UNDO);
}

/* 1 when a handle other than this one holds the role's lock. A failed query
 * answers 1: a holder taken for dead would lose its role to a second one. */
static int held_by_other(const shmchan_segment_t *seg, int role) {
  if (posix(seg)) {
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = lock_byte(role), .l_len = 1};
    if (fcntl(seg->fd, F_OFD_GETLK, &lock) != 0) return 1;
    return lock.l_type != F_UNLCK;
  }
  int value = semctl(seg->semid, semaphore_of(role), GETVAL);
  if (value < 0 && set_removed(-errno)) return role_word(seg, role) != 0;
  return value != 1;
}

static int held_here(const shmchan_segment_t *seg, int role) {
  if (role >= ROLE_CONSUMERS) return seg->consumer_slot == role - ROLE_CONSUMERS;
  return role == ROLE_CREATOR ? seg->creator
         : role == ROLE_CONSUMER ? seg->consumer_held
                                 : seg->producer_slot == role - ROLE_PRODUCER;
}

/* Whether the role's holder lives: this handle, or another that holds its lock. */
static int role_held(const shmchan_segment_t *seg, int role) {
  return held_here(seg, role) || held_by_other(seg, role);
}

int shmchan_lock_open(shmchan_segment_t *seg, int creator) {
  int rc;
  if (posix(seg)) {
    rc = set_lock(seg, F_RDLCK, SHMCHAN_LOCK_OPEN);
  } else {
    /* one step: no raise while a replacer holds the gate (see remove_stale_sysv) */
    struct sembuf ops[2] = {{.sem_num = SHMCHAN_SYSV_SEM_REPLACING, .sem_op = 0, .sem_flg = IPC_NOWAIT},
                            {.sem_num = SHMCHAN_SYSV_SEM_OPEN, .sem_op = 1, .sem_flg = SEM_UNDO}};
    rc = semop(seg->semid, ops, 2) == 0 ? 0 : -errno;
  }
  if (rc != 0) return rc;
  seg->opened = 1;
  if (creator) {
    if ((rc = take_lock(seg, ROLE_CREATOR)) != 0) return rc;
    seg->creator = 1;
  }
  return 0;
}

void shmchan_unlock_open(shmchan_segment_t *seg) {
  if (posix(seg)) return; /* closing the file releases every lock of the handle */
  if (seg->creator) drop_lock(seg, ROLE_CREATOR);
  if (seg->opened) sem_change(seg, SHMCHAN_SYSV_SEM_OPEN, -1, IPC_NOWAIT | SEM_UNDO);
  seg->creator = seg->opened = 0;
}

int shmchan_segment_in_use(shmchan_segment_t *seg) {
  if (posix(seg)) {
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = SHMCHAN_LOCK_OPEN, .l_len = 1};
    if (fcntl(seg->fd, F_OFD_GETLK, &lock) != 0) return 1;
    return lock.l_type != F_UNLCK;
  }
  int value = semctl(seg->semid, SHMCHAN_SYSV_SEM_OPEN, GETVAL);
  return value < 0 || value > (seg->opened ? 1 : 0);
}

/* MPSC: a consumer that died while zeroing consumed records left the head behind
 * SHMCHAN_OFF_RELEASING; finish its release so no half-zeroed record is read. */
static void finish_release(shmchan_segment_t *seg) {
  uint8_t *base = seg->base;
  uint32_t capacity = capacity_of(seg);
  uint32_t head = load_u32(base, SHMCHAN_OFF_HEAD);
  uint32_t releasing = load_u32(base, SHMCHAN_OFF_RELEASING);
  uint32_t tail = load_u32(base, SHMCHAN_OFF_TAIL);
  /* nothing pending, or cursors no consumer could have left (then the data path reports them) */
  if (releasing == head || tail - head > capacity || releasing - head > tail - head) return;
  zero_ring(seg, head, releasing);
  store_u32(base, SHMCHAN_OFF_HEAD, releasing);
}

/* Takes a role: its lock, then its owner word, for display. 0, -EBUSY, or -errno. */
static int take_role(shmchan_segment_t *seg, uint64_t *owner, int role) {
  int rc = take_lock(seg, role);
  if (rc != 0) return rc == -EAGAIN ? -EBUSY : rc;
  __atomic_store_n(owner, display_owner(), __ATOMIC_RELEASE);
  return 0;
}

/* Clears the owner word first, then unlocks: a successor that finds the word set
 * knows that its predecessor died. */
static void give_up_role(shmchan_segment_t *seg, uint64_t *owner, int role) {
  release_word(owner, display_owner());
  drop_lock(seg, role);
}

/* MPMC, BROADCAST: the first free (or dead) consumer slot below the channel's
 * limit. A BROADCAST subscriber stores its owner word itself, after its cursor. */
static int claim_consumer_slot(shmchan_segment_t *seg, uint32_t mode) {
  if (seg->consumer_slot >= 0) return -EBUSY;
  uint32_t max = load_u32(seg->base, SHMCHAN_OFF_MAX_CONSUMERS);
  if (max < 1 || max > SHMCHAN_MAX_CONSUMERS) return -EBADMSG;
  for (uint32_t i = 0; i < max; i++) {
    int rc = take_lock(seg, ROLE_CONSUMERS + (int)i);
    if (rc == -EAGAIN) continue;
    if (rc != 0) return rc;
    if (mode == SHMCHAN_MODE_MPMC) {
      __atomic_add_fetch(consumer_word(seg, i, SHMCHAN_CONSUMER_GENERATION), 1, __ATOMIC_SEQ_CST);
      __atomic_store_n(consumer_word(seg, i, SHMCHAN_CONSUMER_OWNER), (uint32_t)display_owner(), __ATOMIC_RELEASE);
    }
    seg->consumer_slot = (int)i;
    return (int)i;
  }
  return -EUSERS;
}

int shmchan_claim_consumer(shmchan_segment_t *seg) {
  uint32_t mode = mode_of(seg);
  if (shmchan_fanout_mode(mode)) return claim_consumer_slot(seg, mode);
  if (seg->consumer_held) return -EBUSY;
  uint64_t previous = load_u64(seg->base, SHMCHAN_OFF_CONSUMER);
  int rc = take_role(seg, U64_AT(seg->base, SHMCHAN_OFF_CONSUMER), ROLE_CONSUMER);
  if (rc != 0) return rc;
  seg->consumer_held = 1;
  /* A dead predecessor may have left itself announced as a sleeper. */
  if (previous != 0) store_u32(seg->base, SHMCHAN_OFF_DATA_WAITERS, 0);
  if (mode_of(seg) == SHMCHAN_MODE_MPSC) finish_release(seg);
  return 0;
}

void shmchan_release_consumer(shmchan_segment_t *seg) {
  int slot = seg->consumer_slot;
  if (slot >= 0 && slot < (int)SHMCHAN_MAX_CONSUMERS) {
    /* the owner word first: a releaser then no longer waits for this cursor */
    __atomic_store_n(consumer_word(seg, (uint32_t)slot, SHMCHAN_CONSUMER_OWNER), 0, __ATOMIC_RELEASE);
    drop_lock(seg, ROLE_CONSUMERS + slot);
    seg->consumer_slot = -1;
  }
  if (!seg->consumer_held) return;
  give_up_role(seg, U64_AT(seg->base, SHMCHAN_OFF_CONSUMER), ROLE_CONSUMER);
  seg->consumer_held = 0;
}

/* The slot is this handle's now: a new generation, so that claim markers of an
 * earlier holder no longer name a live producer. */
static int took_producer(shmchan_segment_t *seg, uint32_t slot) {
  __atomic_add_fetch(producer_generation(seg, slot), 1, __ATOMIC_SEQ_CST);
  seg->producer_slot = (int)slot;
  return (int)slot;
}

int shmchan_claim_producer(shmchan_segment_t *seg) {
  if (seg->producer_slot >= 0) return -EBUSY;
  if (mode_of(seg) == SHMCHAN_MODE_SPSC) {
    uint64_t previous = load_u64(seg->base, SHMCHAN_OFF_PRODUCERS + SHMCHAN_PRODUCER_OWNER);
    int rc = take_role(seg, producer_owner(seg, 0), ROLE_PRODUCER);
    if (rc != 0) return rc;
    /* A dead predecessor may have left itself announced as a sleeper. */
    if (previous != 0) store_u32(seg->base, SHMCHAN_OFF_SPACE_WAITERS, 0);
    return took_producer(seg, 0);
  }
  /* In MPSC one process may hold several slots (one per handle). */
  for (uint32_t i = 0; i < SHMCHAN_MAX_PRODUCERS; i++) {
    int rc = take_role(seg, producer_owner(seg, i), ROLE_PRODUCER + (int)i);
    if (rc == 0) return took_producer(seg, i);
    if (rc != -EBUSY) return rc;
  }
  return -EUSERS;
}

void shmchan_release_producer(shmchan_segment_t *seg) {
  int slot = seg->producer_slot;
  if (slot < 0 || slot >= (int)SHMCHAN_MAX_PRODUCERS) return;
  give_up_role(seg, producer_owner(seg, (uint32_t)slot), ROLE_PRODUCER + slot);
  seg->producer_slot = -1;
}

int shmchan_claimant_alive(shmchan_segment_t *seg, uint32_t slot, uint32_t generation) {
  if (slot >= SHMCHAN_MAX_PRODUCERS) {
    uint32_t consumer = slot - SHMCHAN_MAX_PRODUCERS;
    if (consumer >= SHMCHAN_MAX_CONSUMERS) return 0;
    /* BROADCAST subscribers have no generation (their word holds the cursor) */
    if (mode_of(seg) == SHMCHAN_MODE_MPMC) {
      uint32_t current = __atomic_load_n(consumer_word(seg, consumer, SHMCHAN_CONSUMER_GENERATION), __ATOMIC_ACQUIRE);
      if ((current & SHMCHAN_CLAIM_GENERATION_MASK) != (generation & SHMCHAN_CLAIM_GENERATION_MASK)) return 0;
    }
    return role_held(seg, ROLE_CONSUMERS + (int)consumer);
  }
  uint32_t current = __atomic_load_n(producer_generation(seg, slot), __ATOMIC_ACQUIRE);
  return (current & SHMCHAN_CLAIM_GENERATION_MASK) == (generation & SHMCHAN_CLAIM_GENERATION_MASK) &&
         role_held(seg, ROLE_PRODUCER + (int)slot);
}

uint32_t shmchan_claim_marker(const shmchan_segment_t *seg) {
  uint32_t slot = (uint32_t)seg->producer_slot % SHMCHAN_MAX_PRODUCERS;
  uint32_t generation = __atomic_load_n(producer_generation(seg, slot), __ATOMIC_ACQUIRE);
  return SHMCHAN_CLAIM_FLAG | slot << SHMCHAN_CLAIM_SLOT_SHIFT | (generation & SHMCHAN_CLAIM_GENERATION_MASK);
}

int shmchan_consumer_gone(shmchan_segment_t *seg) {
  if (shmchan_fanout_mode(mode_of(seg))) return 0; /* many consumers: a dead one never stops producers */
  return load_u64(seg->base, SHMCHAN_OFF_CONSUMER) != 0 && !role_held(seg, ROLE_CONSUMER);
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
    if (role_held(seg, ROLE_PRODUCER + (int)i)) out->producers++;
  }
  if (shmchan_fanout_mode(mode_of(seg))) {
    for (uint32_t i = 0; i < SHMCHAN_MAX_CONSUMERS; i++) {
      if (!role_held(seg, ROLE_CONSUMERS + (int)i)) continue;
      if (out->consumers++ == 0) out->consumer_pid = shmchan_owner_pid(*consumer_word(seg, i, SHMCHAN_CONSUMER_OWNER));
    }
  } else if (role_held(seg, ROLE_CONSUMER)) {
    out->consumer_pid = shmchan_owner_pid(load_u64(b, SHMCHAN_OFF_CONSUMER));
    out->consumers = 1;
  }
  if (role_held(seg, ROLE_CREATOR)) out->creator_pid = shmchan_owner_pid(load_u64(b, SHMCHAN_OFF_CREATOR));
  out->ended = load_u32(b, SHMCHAN_OFF_ENDED);
}
