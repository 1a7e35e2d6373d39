/* The receiving side of the fan-out modes for C programs: MPMC consumers (a work
 * queue) and BROADCAST subscribers. The protocol is that of src/core/fanout.ts,
 * mpmc.ts and broadcast.ts ("Fan-out" in shmchan.h, docs/protocol.md): records
 * are written by producers as in MPSC; consumers hold consumer slots; the head
 * moves only under the release lock. Every shared word is accessed sequentially
 * consistently, as JavaScript's Atomics do, read once into a local and checked
 * before use. */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>

#include "platform.h"

/* How often an idle MPMC consumer asks whether the holders of taken records live. */
#define DEAD_TAKER_CHECK_US 1000
/* Releases an MPMC consumer attempts while consumed records wait at the head. */
#define RELEASE_TURNS 64
/* BROADCAST: attempts at joining while producers keep releasing past the chosen start. */
#define JOIN_ATTEMPTS 1000
/* Reads of two shared positions that moved meanwhile before the pair counts as
 * corrupt (CONSISTENT_READS in fanout.ts). */
#define CONSISTENT_READS 1000
#define PID_MASK ((1u << SHMCHAN_OWNER_PID_BITS) - 1)

static void store(uint8_t *base, uint32_t off, uint32_t v) {
  __atomic_store_n(U32_AT(base, off), v, __ATOMIC_SEQ_CST);
}
static int cas32(uint8_t *base, uint32_t off, uint32_t expected, uint32_t desired) {
  return __atomic_compare_exchange_n(U32_AT(base, off), &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static int cas64(uint8_t *base, uint32_t off, uint64_t expected, uint64_t desired) {
  return __atomic_compare_exchange_n(U64_AT(base, off), &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static uint32_t slot_field(uint32_t slot, uint32_t field) {
  return SHMCHAN_OFF_PRODUCERS + slot * SHMCHAN_PRODUCER_SIZE + field;
}

static int is_consumer_marker(uint32_t word) {
  return (word & SHMCHAN_CLAIM_FLAG) == 0 && (word & SHMCHAN_CONSUMER_FLAG) != 0;
}

/* The marker this reader holds the release lock under: an MPMC consumer's own, a
 * BROADCAST subscriber's slot (its slots have no generation). */
static uint32_t lock_marker(const shmchan_fanout_reader_t *r) {
  return r->mode == SHMCHAN_MODE_MPMC ? r->marker : SHMCHAN_CONSUMER_FLAG | r->slot << SHMCHAN_CLAIM_SLOT_SHIFT;
}

/* Whether the producer or consumer a marker names still holds its slot in that generation. */
static int marker_alive(shmchan_segment_t *seg, uint32_t marker) {
  uint32_t slot = (marker >> SHMCHAN_CLAIM_SLOT_SHIFT) & (SHMCHAN_MAX_CONSUMERS - 1);
  uint32_t generation = marker & SHMCHAN_CLAIM_GENERATION_MASK;
  if (is_consumer_marker(marker)) return shmchan_claimant_alive(seg, SHMCHAN_MAX_PRODUCERS + slot, generation);
  if (marker & SHMCHAN_CLAIM_FLAG) return shmchan_claimant_alive(seg, slot, generation);
  return 0;
}

/* ---- moving the head ------------------------------------------------------ */

/* The head, checked against the tail: a position or -EBADMSG. Outside the release
 * lock another producer may release between the two loads, and producers then
 * claim past the old head: a tail more than a ring past the head read is corrupt
 * only if the head has not moved meanwhile (as Releaser.head() in fanout.ts). */
static int64_t checked_head(shmchan_segment_t *seg) {
  uint32_t capacity = capacity_of(seg);
  for (int reads = 1;; reads++) {
    uint32_t head = load_seq_u32(seg->base, SHMCHAN_OFF_HEAD);
    uint32_t tail = load_seq_u32(seg->base, SHMCHAN_OFF_TAIL);
    if (tail - head <= capacity) return head;
    if (load_seq_u32(seg->base, SHMCHAN_OFF_HEAD) == head || reads == CONSISTENT_READS) return -EBADMSG;
  }
}

/* Where the oldest intact record is: RELEASING, checked to lie between head and tail. */
static int64_t oldest(shmchan_segment_t *seg, uint32_t releasing) {
  int64_t head = checked_head(seg);
  if (head < 0) return head;
  uint32_t tail = load_seq_u32(seg->base, SHMCHAN_OFF_TAIL);
  return releasing - (uint32_t)head > tail - (uint32_t)head ? -EBADMSG : (int64_t)releasing;
}

/* How far a release may go, and what it may pass (ReleasePlan in fanout.ts). */
typedef enum plan_kind {
  PLAN_CONSUMED,  /* MPMC: padding and consumed records, up to the tail */
  PLAN_SLOWEST,   /* BROADCAST 'block': everything, up to the slowest live subscriber */
  PLAN_OVERWRITE, /* BROADCAST 'overwrite': whole records until there is room, pushing subscribers */
} plan_kind_t;

typedef struct plan {
  plan_kind_t kind;
  int need_room;  /* a producer without room: it also clears dead producers' claims */
  uint32_t room;  /* PLAN_OVERWRITE: stop once this many bytes are free */
} plan_t;

static int plan_passes(const plan_t *plan, uint32_t type) {
  return plan->kind != PLAN_CONSUMED || type == SHMCHAN_RECORD_PADDING || type == SHMCHAN_RECORD_CONSUMED;
}
static int plan_counts(const plan_t *plan, uint32_t type) {
  return plan->kind == PLAN_CONSUMED ? type == SHMCHAN_RECORD_CONSUMED : record_is_data(type);
}

static uint32_t max_consumers_of(shmchan_segment_t *seg) {
  uint32_t max = load_seq_u32(seg->base, SHMCHAN_OFF_MAX_CONSUMERS);
  return max >= 1 && max <= SHMCHAN_MAX_CONSUMERS ? max : SHMCHAN_MAX_CONSUMERS;
}
static uint32_t position_off(uint32_t slot) { return slot_field(slot, SHMCHAN_CONSUMER_POSITION); }
static uint64_t position_of(uint32_t cursor, uint32_t lost) { return (uint64_t)lost << 32 | cursor; }
static uint64_t load_position(shmchan_segment_t *seg, uint32_t slot) { return load_seq_u64(seg->base, position_off(slot)); }

/* BROADCAST: the lowest cursor in [head, tail] of the subscribers whose owner word
 * is set, as an offset from head (tail - head when there is none). */
static uint32_t slowest(shmchan_segment_t *seg, uint32_t head, uint32_t tail) {
  uint32_t span = tail - head, lowest = span, max = max_consumers_of(seg);
  for (uint32_t slot = 0; slot < max; slot++) {
    if (load_seq_u32(seg->base, slot_field(slot, SHMCHAN_CONSUMER_OWNER)) == 0) continue;
    uint32_t ahead = (uint32_t)load_position(seg, slot) - head;
    if (ahead <= span && ahead < lowest) lowest = ahead; /* others: not (yet) a cursor of this lap */
  }
  return lowest;
}

/* The data records in [from, to) from `cursor` on; 0 for a cursor on no record
 * boundary (left by a releaser that died halfway), which then counts none lost;
 * NOT_WHOLE when a header in the range is not a whole record (zeroed already).
 * The range is held under the release lock. */
#define NOT_WHOLE UINT32_MAX
static uint32_t data_from(shmchan_segment_t *seg, uint32_t from, uint32_t to, uint32_t cursor) {
  uint8_t *ring = ring_of(seg);
  uint32_t mask = capacity_of(seg) - 1, counted = 0;
  int counting = 0;
  for (uint32_t at = from; at != to;) {
    if (at == cursor) counting = 1;
    uint32_t idx = at & mask;
    uint32_t length = load_seq_u32(ring, idx), type = load_seq_u32(ring, idx + 4);
    if ((int32_t)length <= 0 || !record_fits(seg, idx, length, type)) return NOT_WHOLE;
    uint32_t step = type == SHMCHAN_RECORD_PADDING ? length : align8(length);
    if (step > to - at) return NOT_WHOLE;
    if (counting && record_is_data(type)) counted++;
    at += step;
  }
  return counting ? counted : 0;
}

/* BROADCAST 'overwrite', before zeroing [from, to): moves every cursor in it to
 * `to`, adding the data records it skips to its lost count, in one CAS. The
 * records are counted from `whole`: `from`, or where the walk began when a holder
 * that died left [from, whole) half zeroed (it had pushed every cursor past it). */
static void push(shmchan_segment_t *seg, uint32_t from, uint32_t whole, uint32_t to) {
  uint32_t max = max_consumers_of(seg);
  for (uint32_t slot = 0; slot < max; slot++) {
    for (;;) {
      uint64_t position = load_position(seg, slot);
      uint32_t cursor = (uint32_t)position;
      if (cursor - from >= to - from) break;
      uint32_t skipped = data_from(seg, whole, to, cursor);
      uint32_t lost = (uint32_t)(position >> 32) + (skipped == NOT_WHOLE ? 0 : skipped);
      if (cas64(seg->base, position_off(slot), position, position_of(to, lost))) break;
    }
  }
}

/* Under the release lock: stores how far the release goes in RELEASING, zeroes
 * the released bytes, counts the data records released, then stores the head.
 * 1 when the head moved, 0, or -EBADMSG. */
static int release_locked(shmchan_segment_t *seg, const plan_t *plan) {
  uint8_t *base = seg->base, *ring = ring_of(seg);
  uint32_t capacity = capacity_of(seg), mask = capacity - 1;
  uint32_t head = load_seq_u32(base, SHMCHAN_OFF_HEAD);
  uint32_t releasing = load_seq_u32(base, SHMCHAN_OFF_RELEASING);
  uint32_t tail = load_seq_u32(base, SHMCHAN_OFF_TAIL);
  uint32_t used = tail - head;
  if (used > capacity || (head & 7u) != 0) return -EBADMSG;
  /* A holder that died while zeroing left RELEASING ahead of the head: what lies
   * between is half zeroed, so the walk starts at RELEASING and releases it too.
   * One off a record boundary no holder wrote: the walk starts at the head. */
  uint32_t at = releasing - head <= used && (releasing & 7u) == 0 ? releasing : head;
  /* that holder died before zeroing (maybe before pushing every subscriber) when
   * its range is whole: its records are counted for the subscribers still in it */
  uint32_t whole = data_from(seg, head, at, head) == NOT_WHOLE ? at : head;
  uint32_t bound = plan->kind == PLAN_SLOWEST ? head + slowest(seg, head, tail) : tail;
  if (bound - head < at - head) bound = at;
  uint64_t messages = 0, bytes = 0;
  while (at != bound) {
    uint32_t idx = at & mask;
    int32_t length = (int32_t)load_seq_u32(ring, idx);
    uint32_t type = load_seq_u32(ring, idx + 4);
    if (length < 0 && type == SHMCHAN_RECORD_PADDING) {
      /* a wrapped claim whose record at 0 is committed: finish its padding */
      uint32_t need = 0u - (uint32_t)length;
      cas32(ring, idx, (uint32_t)length, need < capacity - idx ? need : capacity - idx);
      continue;
    }
    if (length < 0 && plan->need_room && (type & SHMCHAN_CLAIM_FLAG) && 0u - (uint32_t)length <= capacity &&
        !marker_alive(seg, type)) {
      shmchan_finish_as_padding(seg, idx, 0u - (uint32_t)length);
      continue;
    }
    if (length <= 0) break;
    if (!record_fits(seg, idx, (uint32_t)length, type)) return -EBADMSG;
    uint32_t step = type == SHMCHAN_RECORD_PADDING ? (uint32_t)length : align8((uint32_t)length);
    if (at + step - head > bound - head || !plan_passes(plan, type)) break;
    if (plan_counts(plan, type)) {
      messages++;
      bytes += (uint32_t)length - SHMCHAN_RECORD_HEADER;
    }
    at += step;
    if (plan->room != 0 && capacity - (tail - at) >= plan->room) break;
  }
  if (at == head) return 0;
  store(base, SHMCHAN_OFF_RELEASING, at);
  if (plan->kind == PLAN_OVERWRITE) push(seg, head, whole, at);
  zero_ring(seg, head, at);
  add_u64(base, SHMCHAN_OFF_RECV_MESSAGES, messages);
  add_u64(base, SHMCHAN_OFF_RECV_BYTES, bytes);
  store(base, SHMCHAN_OFF_HEAD, at);
  shmchan_wake_if_waiting(seg, SHMCHAN_WAIT_SPACE);
  return 1;
}

/* Releases what the plan allows under the release lock. A lock held by another
 * is left to its holder, unless `take_over` and its holder is dead (a system
 * call: producers without room only). 1 when the head moved, 0, or -EBADMSG. */
static int release(shmchan_segment_t *seg, uint32_t me, const plan_t *plan, int take_over) {
  if (!cas32(seg->base, SHMCHAN_OFF_RELEASE_LOCK, 0, me)) {
    uint32_t held = load_seq_u32(seg->base, SHMCHAN_OFF_RELEASE_LOCK);
    if (!take_over || held == 0 || (held != me && marker_alive(seg, held))) return 0;
    if (!cas32(seg->base, SHMCHAN_OFF_RELEASE_LOCK, held, me)) return 0;
  }
  int rc = release_locked(seg, plan);
  cas32(seg->base, SHMCHAN_OFF_RELEASE_LOCK, me, 0);
  return rc;
}

/* BROADCAST 'block': the subscribers at `lowest` (an offset from head) whose slot
 * lock nobody holds. With `drop`, clears their owner words: 1 when it dropped one;
 * without, 1 when there is one. */
static int slowest_dead(shmchan_segment_t *seg, uint32_t head, uint32_t lowest, int drop) {
  uint32_t max = max_consumers_of(seg);
  int found = 0;
  for (uint32_t slot = 0; slot < max; slot++) {
    uint32_t owner_off = slot_field(slot, SHMCHAN_CONSUMER_OWNER), owner = load_seq_u32(seg->base, owner_off);
    if (owner == 0 || (uint32_t)load_position(seg, slot) - head != lowest) continue;
    if (shmchan_claimant_alive(seg, SHMCHAN_MAX_PRODUCERS + slot, 0)) continue;
    if (!drop) return 1;
    if (cas32(seg->base, owner_off, owner, 0)) found = 1;
  }
  return found;
}

/* BROADCAST 'block' and no progress: the slowest subscribers may be dead. Clears
 * the owner word of those whose slot lock nobody holds. 1 when it dropped one. */
static int dropped_dead(shmchan_segment_t *seg) {
  int64_t head = checked_head(seg);
  if (head < 0) return 0;
  uint32_t tail = load_seq_u32(seg->base, SHMCHAN_OFF_TAIL);
  return slowest_dead(seg, (uint32_t)head, slowest(seg, (uint32_t)head, tail), 1);
}

int shmchan_fanout_make_room(shmchan_segment_t *seg, uint32_t mode, int overwrite, uint32_t marker, uint32_t need) {
  if (mode == SHMCHAN_MODE_MPMC) return release(seg, marker, &(plan_t){PLAN_CONSUMED, 1, 0}, 1);
  if (overwrite) {
    /* at least a part of the ring, so that subscribers are pushed once per many messages */
    uint32_t chunk = capacity_of(seg) >> 4;
    return release(seg, marker, &(plan_t){PLAN_OVERWRITE, 1, need > chunk ? need : chunk}, 1);
  }
  const plan_t block = {PLAN_SLOWEST, 1, 0};
  int rc = release(seg, marker, &block, 1);
  if (rc != 0) return rc;
  return dropped_dead(seg) ? release(seg, marker, &block, 1) : 0;
}

/* ---- dead claims ----------------------------------------------------------- */

/* The scan met a dead producer's claim (header words as read): turns it into padding
 * under the release lock, if the header still holds them. No release passes an
 * unfinished claim, and none runs while the lock is held, so the bytes written are
 * the claim's own, never a later lap's (a release may overtake a fan-out reader).
 * 0 when the lock is busy: the reader waits and looks again. */
static int finish_dead_claim(shmchan_segment_t *seg, void *reader, uint32_t idx, uint32_t length, uint32_t type) {
  uint32_t me = lock_marker(reader);
  if (!cas32(seg->base, SHMCHAN_OFF_RELEASE_LOCK, 0, me)) return 0;
  uint8_t *ring = ring_of(seg);
  if (load_seq_u32(ring, idx) == length && load_seq_u32(ring, idx + 4) == type) shmchan_finish_as_padding(seg, idx, 0u - length);
  cas32(seg->base, SHMCHAN_OFF_RELEASE_LOCK, me, 0);
  return 1;
}

/* ---- MPMC ---------------------------------------------------------------- */

/* A record's 8-byte header as one little-endian word: the length, then the type. */
static uint64_t record_header(uint32_t length, uint32_t type) {
  return (uint64_t)type << 32 | length;
}

/* An MPMC scan's visitor: steps over padding, consumed records and those other
 * consumers hold (remembering those), and stops at the first data record. */
static int mpmc_visit(shmchan_segment_t *seg, void *reader, const shmchan_record_t *record) {
  (void)seg;
  shmchan_fanout_reader_t *r = reader;
  uint32_t type = record->type;
  if (type == SHMCHAN_RECORD_PADDING || type == SHMCHAN_RECORD_CONSUMED) return SHMCHAN_SCAN_STEP;
  if (is_consumer_marker(type)) {
    if (r->taken_count < SHMCHAN_FANOUT_TAKEN_MAX) {
      r->taken[r->taken_count] = record->position;
      r->taken_header[r->taken_count++] = record_header(record->length, type);
    }
    return SHMCHAN_SCAN_STEP;
  }
  return record_is_data(type) ? SHMCHAN_SCAN_STOP : -EBADMSG;
}

/* Whether the release has passed `position` since it was at `start`. */
static int released(shmchan_segment_t *seg, uint32_t start, uint32_t position) {
  return load_seq_u32(seg->base, SHMCHAN_OFF_RELEASING) - start > position - start;
}

/* Gives back the records held by consumers that died (now and then: it asks the
 * kernel; always at the end of the stream, where this consumer would stop). Each
 * goes back by a CAS of its whole header, and only while the release has not
 * passed it: once released, its bytes may belong to a later record, payload included. */
static int gave_back(shmchan_segment_t *seg, shmchan_fanout_reader_t *r, uint32_t start, int ended) {
  if (r->taken_count == 0) return 0;
  int64_t now = shmchan_now_us();
  if (!ended && now - r->last_taker_check_us < DEAD_TAKER_CHECK_US) return 0;
  r->last_taker_check_us = now;
  uint8_t *ring = ring_of(seg);
  uint32_t mask = capacity_of(seg) - 1;
  int gave = 0;
  for (uint32_t i = 0; i < r->taken_count; i++) {
    uint64_t header = r->taken_header[i];
    uint32_t holder = (uint32_t)(header >> 32);
    if (holder == r->marker || marker_alive(seg, holder) || released(seg, start, r->taken[i])) continue;
    if (cas64(ring, r->taken[i] & mask, header, record_header((uint32_t)header, SHMCHAN_RECORD_DATA))) gave = 1;
  }
  if (gave) shmchan_wake_if_waiting(seg, SHMCHAN_WAIT_DATA);
  return gave;
}

/* Takes the first committed record nobody holds, at or after the oldest intact one. */
static int mpmc_take(shmchan_segment_t *seg, shmchan_fanout_reader_t *r, shmchan_record_t *found) {
  const shmchan_scan_plan_t plan = {mpmc_visit, finish_dead_claim, r};
  for (;;) {
    uint32_t releasing = load_seq_u32(seg->base, SHMCHAN_OFF_RELEASING);
    r->taken_count = 0;
    int64_t start = oldest(seg, releasing);
    int rc = start < 0 ? (int)start : shmchan_scan(seg, &r->scanner, (uint32_t)start, &plan, found);
    /* The release passed where this scan began: what it read may be zeroed or
     * written again already, so it proves nothing and the scan starts over. Only
     * what holds still is corrupt: a slow consumer, overtaken however often, is
     * never told so (it starts over only while others make progress). */
    if (rc == -EBADMSG && load_seq_u32(seg->base, SHMCHAN_OFF_RELEASING) != releasing) continue;
    if (rc == -EAGAIN || rc == -ESHUTDOWN) {
      if (gave_back(seg, r, releasing, rc == -ESHUTDOWN)) continue;
      return rc;
    }
    if (rc < 0) return rc;
    /* A scan overtaken by a whole lap may have read a header written a lap later,
     * or bytes of a payload where it expected a header: once the release has
     * passed the position scanned, what was read there proves nothing. */
    if (released(seg, releasing, found->position)) continue;
    /* Length and type in one CAS: a record consumed, released and claimed again
     * meanwhile (a lap later) has another length, or none yet, and stays. */
    uint64_t expected = record_header(found->length, found->type), mine = record_header(found->length, r->marker);
    if (!cas64(ring_of(seg), found->idx, expected, mine)) continue;
    /* Released between the look above and the CAS, the record taken may be the one
     * written at this index a lap later: taking it would return that producer's
     * later message before an earlier one still in the ring. Give it back, look again. */
    if (!released(seg, releasing, found->position)) return 1;
    cas64(ring_of(seg), found->idx, mine, expected);
  }
}

/* Moves the head over consumed records while they wait at the head. */
static void release_consumed(shmchan_segment_t *seg, shmchan_fanout_reader_t *r) {
  uint8_t *ring = ring_of(seg);
  uint32_t mask = capacity_of(seg) - 1;
  for (int turn = 0; turn < RELEASE_TURNS; turn++) {
    static const plan_t consumed = {PLAN_CONSUMED, 0, 0};
    if (release(seg, r->marker, &consumed, 0) < 0) return; /* the next receive reports the corruption */
    uint32_t head = load_seq_u32(seg->base, SHMCHAN_OFF_HEAD);
    /* a head off a record boundary (the lock's holder reports it) has no record to look at */
    if (head == load_seq_u32(seg->base, SHMCHAN_OFF_TAIL) || (head & 7u) != 0) return;
    int32_t length = (int32_t)load_seq_u32(ring, head & mask);
    uint32_t type = load_seq_u32(ring, (head & mask) + 4);
    if (length <= 0 || (type != SHMCHAN_RECORD_CONSUMED && type != SHMCHAN_RECORD_PADDING)) return;
  }
}

static int mpmc_try_receive(shmchan_segment_t *seg, shmchan_fanout_reader_t *r, void *buf, uint32_t cap) {
  shmchan_record_t found;
  int rc = mpmc_take(seg, r, &found);
  if (rc < 0) return rc;
  uint8_t *ring = ring_of(seg);
  uint32_t payload = found.length - SHMCHAN_RECORD_HEADER;
  if (payload > cap) {
    /* the message stays, for this or another consumer with a larger buffer */
    cas32(ring, found.idx + 4, r->marker, found.type);
    return -EMSGSIZE;
  }
  if (payload) memcpy(buf, ring + found.idx + SHMCHAN_RECORD_HEADER, payload);
  store(ring, found.idx + 4, SHMCHAN_RECORD_CONSUMED);
  release_consumed(seg, r);
  return (int)payload;
}

/* ---- BROADCAST ----------------------------------------------------------- */

/* Stores the start cursor, then the owner word (now producers wait for it), and
 * starts again if a release passed the start meanwhile. */
static int join(shmchan_segment_t *seg, shmchan_fanout_reader_t *r, int from_oldest) {
  uint8_t *base = seg->base;
  uint32_t capacity = capacity_of(seg);
  for (int attempt = 0; attempt < JOIN_ATTEMPTS; attempt++) {
    uint32_t releasing = load_seq_u32(base, SHMCHAN_OFF_RELEASING);
    uint32_t tail = load_seq_u32(base, SHMCHAN_OFF_TAIL);
    if (tail - releasing > capacity) {
      /* a release between the two loads lets producers claim past the old RELEASING */
      if (load_seq_u32(base, SHMCHAN_OFF_RELEASING) != releasing) continue;
      return -EBADMSG;
    }
    uint32_t start = from_oldest ? releasing : tail;
    uint32_t lost = (uint32_t)(load_position(seg, r->slot) >> 32);
    __atomic_store_n(U64_AT(base, position_off(r->slot)), position_of(start, lost), __ATOMIC_SEQ_CST);
    uint32_t pid = (uint32_t)getpid() & PID_MASK;
    store(base, slot_field(r->slot, SHMCHAN_CONSUMER_OWNER), pid != 0 ? pid : 1);
    /* a release lock in this slot's name was left by a dead subscriber that had the
     * slot (a subscriber's marker has no generation, so it would look alive for ever) */
    cas32(base, SHMCHAN_OFF_RELEASE_LOCK, lock_marker(r), 0);
    if (start - load_seq_u32(base, SHMCHAN_OFF_RELEASING) <= capacity) {
      r->cursor = start;
      r->lost = lost;
      return 0;
    }
  }
  return -EBADMSG; /* producers kept releasing past every start chosen */
}

/* A BROADCAST scan's visitor: steps over padding and stops at the first data record. */
static int broadcast_visit(shmchan_segment_t *seg, void *reader, const shmchan_record_t *record) {
  (void)seg, (void)reader;
  if (record->type == SHMCHAN_RECORD_PADDING) return SHMCHAN_SCAN_STEP;
  return record_is_data(record->type) ? SHMCHAN_SCAN_STOP : -EBADMSG;
}

/* After a failed CAS or an impossible record under OVERWRITE: takes the pushed
 * cursor. 0 when the cursor had not moved, 1 when it moved without loss,
 * -ENOBUFS when the push skipped messages. */
static int was_pushed(shmchan_segment_t *seg, shmchan_fanout_reader_t *r) {
  uint64_t position = load_position(seg, r->slot);
  uint32_t cursor = (uint32_t)position, lost = (uint32_t)(position >> 32);
  if (cursor == r->cursor && lost == r->lost) return 0;
  uint32_t missed = lost - r->lost;
  r->cursor = cursor;
  r->lost = lost;
  if (missed == 0) return 1;
  r->messages_lost += missed;
  return -ENOBUFS;
}

/* BROADCAST 'block', after this subscriber read a quarter of the ring or all of
 * it while producers sleep for room: whether they would find some now, released up
 * to the slowest subscriber: a quarter of the ring, or all of it. Each subscriber
 * counts only what it read itself, so without this every one of them would wake the
 * producers once per quarter, to find only what the slowest had read. One that has
 * read everything while there is still no room also wakes them when a slowest
 * subscriber is dead, for a producer drops it when it looks. */
static int room_made(shmchan_segment_t *seg, const shmchan_fanout_reader_t *r) {
  uint32_t head = load_seq_u32(seg->base, SHMCHAN_OFF_HEAD), tail = load_seq_u32(seg->base, SHMCHAN_OFF_TAIL);
  uint32_t capacity = capacity_of(seg), used = tail - head;
  if (used > capacity) return 1; /* the producer finds the corruption when it looks */
  uint32_t lowest = slowest(seg, head, tail), unread = used - lowest;
  if (unread == 0 || capacity - unread >= capacity >> 2) return 1;
  return r->cursor == tail && slowest_dead(seg, head, lowest, 0);
}

/* Moves the cursor to `next`: 1, or under OVERWRITE 0 when a producer pushed it
 * meanwhile (what was read is discarded) or -ENOBUFS when the push lost messages. */
static int advance(shmchan_segment_t *seg, shmchan_fanout_reader_t *r, uint32_t next) {
  if (!r->overwrite) {
    uint32_t step = next - r->cursor;
    r->cursor = next;
    /* the low half of the position: nobody else writes it under BLOCK */
    store(seg->base, position_off(r->slot), next);
    /* wake sleeping producers once a quarter of the ring is free, or all of it */
    if (load_seq_u32(seg->base, SHMCHAN_OFF_SPACE_WAITERS) == 0) {
      r->freed = 0;
      return 1;
    }
    r->freed += step;
    if (r->freed < capacity_of(seg) >> 2 && load_seq_u32(seg->base, SHMCHAN_OFF_TAIL) != next) return 1;
    r->freed = 0;
    if (room_made(seg, r)) shmchan_wake_if_waiting(seg, SHMCHAN_WAIT_SPACE);
    return 1;
  }
  if (cas64(seg->base, position_off(r->slot), position_of(r->cursor, r->lost), position_of(next, r->lost))) {
    r->cursor = next;
    return 1;
  }
  int rc = was_pushed(seg, r);
  return rc < 0 ? rc : 0;
}

static int broadcast_try_receive(shmchan_segment_t *seg, shmchan_fanout_reader_t *r, void *buf, uint32_t cap) {
  uint8_t *ring = ring_of(seg);
  const shmchan_scan_plan_t plan = {broadcast_visit, finish_dead_claim, r};
  for (;;) {
    shmchan_record_t found;
    int rc = shmchan_scan(seg, &r->scanner, r->cursor, &plan, &found);
    if (rc == -EAGAIN || rc == -ESHUTDOWN) {
      if (r->scanner.reached == r->cursor) return rc;
      int moved = advance(seg, r, r->scanner.reached);
      if (moved < 0) return moved;
      if (moved) return rc;
      continue;
    }
    uint32_t payload = rc == 1 ? found.length - SHMCHAN_RECORD_HEADER : 0;
    if (rc == 1 && payload > cap) rc = -EMSGSIZE; /* the message stays for a larger buffer */
    if (rc < 0) {
      /* what looked corrupt (or too long) may have been overwritten under us */
      int pushed = r->overwrite ? was_pushed(seg, r) : 0;
      if (pushed < 0) return pushed;
      if (pushed) continue;
      return rc;
    }
    if (payload) memcpy(buf, ring + found.idx + SHMCHAN_RECORD_HEADER, payload);
    int moved = advance(seg, r, found.position + align8(found.length));
    if (moved < 0) return moved;
    if (moved) return (int)payload;
  }
}

/* ---- both ---------------------------------------------------------------- */

int shmchan_fanout_reader_init(shmchan_fanout_reader_t *r, shmchan_segment_t *seg, uint32_t mode, uint32_t slot, int from_oldest) {
  memset(r, 0, sizeof *r);
  r->mode = mode;
  r->slot = slot % SHMCHAN_MAX_CONSUMERS;
  shmchan_scanner_init(&r->scanner);
  if (r->mode == SHMCHAN_MODE_MPMC) {
    uint32_t generation = load_seq_u32(seg->base, slot_field(r->slot, SHMCHAN_CONSUMER_GENERATION));
    r->marker = SHMCHAN_CONSUMER_FLAG | r->slot << SHMCHAN_CLAIM_SLOT_SHIFT | (generation & SHMCHAN_CLAIM_GENERATION_MASK);
    return 0;
  }
  if (r->mode != SHMCHAN_MODE_BROADCAST) return -EBADMSG;
  r->overwrite = load_seq_u32(seg->base, SHMCHAN_OFF_OVERFLOW) == SHMCHAN_OVERFLOW_OVERWRITE;
  return join(seg, r, from_oldest);
}

int shmchan_fanout_try_receive(shmchan_segment_t *seg, shmchan_fanout_reader_t *r, void *buf, uint32_t cap) {
  if (r->mode == SHMCHAN_MODE_MPMC) return mpmc_try_receive(seg, r, buf, cap);
  return broadcast_try_receive(seg, r, buf, cap);
}
