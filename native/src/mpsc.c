/* The MPSC ring for C programs: many producers claim records with a CAS, commit
 * on their own, and the consumer delivers committed records in ring order,
 * turning the claim of a producer that died into padding. The record scan that
 * does so serves the fan-out readers too (fanout.c). The TypeScript data path
 * (src/core/mpsc.ts) follows the same protocol; see "MPSC records" in shmchan.h.
 * Every shared word is accessed sequentially consistently, as JavaScript's
 * Atomics do, so the two sides interleave exactly as two TypeScript peers would. */
#define _GNU_SOURCE
#include <errno.h>

#include "platform.h"

/* How long the consumer waits on an unfinished claim before it asks whether its owner lives. */
#define DEAD_CLAIM_CHECK_US 1000
/* How many times a producer finds a claim without its length before it asks whether its
 * owner lives; a live owner stuck that long makes the producer report no room for now. */
#define CONTENDED_CHECKS 256u

static int32_t load_i32(const uint8_t *ring, uint32_t idx) { return (int32_t)load_seq_u32(ring, idx); }
static void store_i32(uint8_t *ring, uint32_t idx, int32_t v) {
  __atomic_store_n(U32_AT(ring, idx), (uint32_t)v, __ATOMIC_SEQ_CST);
}
/* 1 if the word at idx held expected and now holds desired. */
static int cas_u32(uint8_t *base, uint32_t off, uint32_t expected, uint32_t desired) {
  return __atomic_compare_exchange_n(U32_AT(base, off), &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static uint32_t tail_of(const shmchan_segment_t *seg) { return load_seq_u32(seg->base, SHMCHAN_OFF_TAIL); }
/* A claim's "in progress" length -need, read as the positive need without overflow. */
static uint32_t need_of(int32_t length) { return 0u - (uint32_t)length; }

static int claim_need_valid(uint32_t need, uint32_t capacity) {
  return need % 8 == 0 && need >= SHMCHAN_RECORD_HEADER && need <= capacity;
}

/* 1 while the producer a claim marker names still holds its slot and lives. */
static int marker_alive(shmchan_segment_t *seg, uint32_t marker) {
  return shmchan_claimant_alive(seg, (marker >> SHMCHAN_CLAIM_SLOT_SHIFT) & (SHMCHAN_MAX_PRODUCERS - 1),
                                marker & SHMCHAN_CLAIM_GENERATION_MASK);
}

/* Moves the tail from `at` past the claim of `need` bytes there, unless it has
 * moved already: the claimant does it, and so does whoever meets the claim with
 * its length stored (a producer, or the consumer once the claimant is dead). */
static void move_tail_past(shmchan_segment_t *seg, uint32_t at, uint32_t need) {
  cas_u32(seg->base, SHMCHAN_OFF_TAIL, at, at + need);
}

/* Turns the claim at idx (need bytes, possibly wrapping to offset 0) into padding:
 * a claim whose record is committed at 0 (the normal wrap), a claim made after
 * the end, or a dead producer's claim. The final length is set by CAS, so the
 * consumer and the producer can both finish it and neither writes late. */
void shmchan_finish_as_padding(shmchan_segment_t *seg, uint32_t idx, uint32_t need) {
  uint8_t *ring = ring_of(seg);
  uint32_t to_end = capacity_of(seg) - idx;
  if (need > to_end && load_i32(ring, 0) == 0) {
    store_i32(ring, 4, SHMCHAN_RECORD_PADDING);
    store_i32(ring, 0, (int32_t)(need - to_end));
  }
  store_i32(ring, idx + 4, SHMCHAN_RECORD_PADDING);
  cas_u32(ring, idx, (uint32_t)0 - need, need < to_end ? need : to_end);
}

void shmchan_mpsc_writer_init(shmchan_mpsc_writer_t *w, shmchan_segment_t *seg) {
  memset(w, 0, sizeof *w);
  w->cached_head = load_seq_u32(seg->base, SHMCHAN_OFF_HEAD);
  w->slot = (uint32_t)seg->producer_slot % SHMCHAN_MAX_PRODUCERS;
  w->marker = shmchan_claim_marker(seg);
  w->stuck_tail = UINT32_MAX; /* never a tail: tails are multiples of 8 */
}

/* 1 if need bytes are free at tail, 0 if not (yet), -EBADMSG for impossible cursors. */
static int has_room(shmchan_segment_t *seg, shmchan_mpsc_writer_t *w, uint32_t tail, uint32_t need) {
  uint32_t capacity = capacity_of(seg);
  for (int refreshed = 0;; refreshed = 1) {
    uint32_t used = tail - w->cached_head;
    if (used > capacity) {
      if (!refreshed) {
        w->cached_head = load_seq_u32(seg->base, SHMCHAN_OFF_HEAD);
        continue;
      }
      /* the tail we read may be older than the head we just read */
      if (tail_of(seg) != tail) return 1;
      return -EBADMSG;
    }
    if (capacity - used >= need) return 1;
    if (refreshed) return 0;
    w->cached_head = load_seq_u32(seg->base, SHMCHAN_OFF_HEAD);
  }
}

/* The header at the tail is taken: help its claimant move the tail on, or take back
 * a claim whose owner died before it said how much it needed. 1 to try again, 0 when
 * a live claimant stays stuck there (no room for now, rather than spinning for as
 * long as it is stopped, or for ever if the marker is forged), or -EBADMSG. */
static int meet_claim(shmchan_segment_t *seg, shmchan_mpsc_writer_t *w, uint32_t tail, uint32_t idx, int32_t type) {
  uint8_t *ring = ring_of(seg);
  int32_t length = load_i32(ring, idx);
  /* Read after the header: a claimant moves the tail before it commits, so a tail
   * that has not moved means the header really is an unfinished claim. */
  if (tail_of(seg) != tail) return 1;
  if (type >= 0) return -EBADMSG; /* a committed record at the tail */
  if (length < 0) {
    uint32_t need = need_of(length);
    if (!claim_need_valid(need, capacity_of(seg))) return -EBADMSG;
    move_tail_past(seg, tail, need);
    return 1;
  }
  if (length != 0 || (uint32_t)type == w->marker) return -EBADMSG;
  if (tail != w->stuck_tail || (uint32_t)type != w->stuck_marker) {
    w->stuck_tail = tail;
    w->stuck_marker = (uint32_t)type;
    w->contended = 0;
  }
  if (++w->contended % CONTENDED_CHECKS != 0) return 1;
  uint32_t marker = (uint32_t)type;
  if (marker_alive(seg, marker)) return 0;
  cas_u32(ring, idx + 4, marker, 0);
  return 1;
}

int shmchan_mpsc_try_send(shmchan_segment_t *seg, shmchan_mpsc_writer_t *w, const void *data, uint32_t len) {
  uint8_t *ring = ring_of(seg);
  uint32_t capacity = capacity_of(seg), mask = capacity - 1;
  if (len > max_payload_of(seg)) return -EMSGSIZE;
  if (load_u32(seg->base, SHMCHAN_OFF_ENDED)) return -ESHUTDOWN;
  uint32_t size = align8(SHMCHAN_RECORD_HEADER + len);
  for (;;) {
    uint32_t tail = tail_of(seg);
    if ((tail & 7u) != 0) return -EBADMSG;
    uint32_t idx = tail & mask;
    uint32_t padding = capacity - idx < size ? capacity - idx : 0;
    uint32_t need = padding + size;
    int room = has_room(seg, w, tail, need);
    if (room <= 0) return room < 0 ? room : -EAGAIN;
    int32_t type = load_i32(ring, idx + 4);
    if (type != 0) {
      int rc = meet_claim(seg, w, tail, idx, type);
      if (rc <= 0) return rc < 0 ? rc : -EAGAIN;
      continue;
    }
    if (!cas_u32(ring, idx + 4, 0, w->marker)) continue;
    if (tail_of(seg) != tail) {
      /* the header was free because the tail had already moved past it: give it back */
      cas_u32(ring, idx + 4, w->marker, 0);
      continue;
    }
    store_i32(ring, idx, (int32_t)(0u - need));
    move_tail_past(seg, tail, need);
    if (load_u32(seg->base, SHMCHAN_OFF_ENDED)) {
      shmchan_finish_as_padding(seg, idx, need);
      shmchan_wake_if_waiting(seg, SHMCHAN_WAIT_DATA);
      return -ESHUTDOWN;
    }
    uint32_t at = padding ? 0 : idx;
    if (len) memcpy(ring + at + SHMCHAN_RECORD_HEADER, data, len);
    if (padding == 0) {
      store_i32(ring, idx, (int32_t)(SHMCHAN_RECORD_HEADER + len));
    } else {
      *U32_AT(ring, 4) = SHMCHAN_RECORD_DATA;
      store_i32(ring, 0, (int32_t)(SHMCHAN_RECORD_HEADER + len));
      shmchan_finish_as_padding(seg, idx, need);
    }
    count_sent(seg->base, w->slot, len);
    shmchan_wake_if_waiting(seg, SHMCHAN_WAIT_DATA);
    return 0;
  }
}

/* ---- the record scan ------------------------------------------------------- */

void shmchan_scanner_init(shmchan_scanner_t *s) {
  memset(s, 0, sizeof *s);
  s->stuck_at = UINT32_MAX; /* never a position: positions are multiples of 8 */
}

/* 1 once the claim at `at` has stayed unfinished for a while and names a producer
 * that is no longer alive in its slot. */
static int claim_is_dead(shmchan_segment_t *seg, shmchan_scanner_t *s, uint32_t marker, uint32_t at) {
  int64_t now = shmchan_now_us();
  if (s->stuck_at != at) {
    s->stuck_at = at;
    s->stuck_since_us = now;
    return 0;
  }
  if (now - s->stuck_since_us < DEAD_CLAIM_CHECK_US) return 0;
  s->stuck_since_us = now;
  return !marker_alive(seg, marker);
}

/* -EAGAIN or -ESHUTDOWN when `position` is the tail, -EBADMSG when the tail is more
 * than a ring ahead of it, 0 when the tail is past it. */
static inline int at_tail(shmchan_segment_t *seg, shmchan_scanner_t *s, uint32_t position) {
  /* The end is read before the tail: a producer checks for the end after it moves
   * the tail, so one that missed the end has moved a tail we are about to read. */
  int ended = load_u32(seg->base, SHMCHAN_OFF_ENDED) != 0;
  uint32_t tail = tail_of(seg);
  if (tail == position) {
    s->waiting_on_claim = 0;
    /* the end counts once every claim made before it is finished */
    return ended ? -ESHUTDOWN : -EAGAIN;
  }
  return tail - position > capacity_of(seg) ? -EBADMSG : 0;
}

/* shmchan_scan, inlined into the MPSC consumer so that its visitor is a direct call. */
static inline __attribute__((always_inline)) int scan(shmchan_segment_t *seg, shmchan_scanner_t *s, uint32_t position,
                                                       const shmchan_scan_plan_t *plan, shmchan_record_t *out) {
  uint8_t *ring = ring_of(seg);
  uint32_t capacity = capacity_of(seg), mask = capacity - 1, passed = 0;
  if ((position & 7u) != 0) return -EBADMSG;
  for (;;) {
    s->reached = position;
    uint32_t idx = position & mask;
    int32_t length;
    if (plan->finish_dead_claim != NULL) {
      /* a fan-out position at the tail has nothing to read, whatever the bytes there
       * hold (a full ring's oldest record) */
      int rc = at_tail(seg, s, position);
      if (rc < 0) return rc;
      length = load_i32(ring, idx);
    } else {
      /* the bytes at the MPSC head are free when it is the tail: a length there
       * means the tail has moved on */
      length = load_i32(ring, idx);
      if (length == 0) {
        int rc = at_tail(seg, s, position);
        if (rc < 0) return rc;
        length = load_i32(ring, idx);
      }
    }
    /* Before the tail a header is never empty: a claimant stores its length before
     * it moves the tail, and a record is zeroed only after every cursor has passed it. */
    if (length == 0) return -EBADMSG;
    uint32_t type = (uint32_t)load_i32(ring, idx + 4);
    if (length < 0) {
      uint32_t need = need_of(length);
      if (!claim_need_valid(need, capacity)) return -EBADMSG;
      if (type == SHMCHAN_RECORD_PADDING) {
        cas_u32(ring, idx, (uint32_t)length, need < capacity - idx ? need : capacity - idx);
        continue;
      }
      if ((type & SHMCHAN_CLAIM_FLAG) == 0) return -EBADMSG; /* an unfinished record that is no claim */
      if (!claim_is_dead(seg, s, type, position)) {
        s->waiting_on_claim = 1;
        return -EAGAIN;
      }
      /* its claimant may have died between storing the length and moving the tail,
       * and the head must not pass the tail */
      move_tail_past(seg, position, need);
      if (plan->finish_dead_claim == NULL) {
        shmchan_finish_as_padding(seg, idx, need);
      } else if (!plan->finish_dead_claim(seg, plan->context, idx, (uint32_t)length, type)) {
        s->waiting_on_claim = 1;
        return -EAGAIN;
      }
      continue;
    }
    s->waiting_on_claim = 0;
    if (!record_fits(seg, idx, (uint32_t)length, type)) return -EBADMSG;
    const shmchan_record_t record = {idx, (uint32_t)length, type, position};
    int answer = plan->visit(seg, plan->context, &record);
    if (answer < 0) return answer;
    if (answer == SHMCHAN_SCAN_STOP) {
      *out = record;
      return 1;
    }
    uint32_t step = type == SHMCHAN_RECORD_PADDING ? record.length : align8(record.length);
    if (answer != SHMCHAN_SCAN_RELEASED) {
      passed += step;
      if (passed > capacity) return -EBADMSG; /* records all the way round the ring */
    }
    position += step;
  }
}

int shmchan_scan(shmchan_segment_t *seg, shmchan_scanner_t *s, uint32_t position, const shmchan_scan_plan_t *plan,
                 shmchan_record_t *out) {
  return scan(seg, s, position, plan, out);
}

/* ---- the consumer ---------------------------------------------------------- */

void shmchan_mpsc_reader_init(shmchan_mpsc_reader_t *r, shmchan_segment_t *seg) {
  r->head = load_seq_u32(seg->base, SHMCHAN_OFF_HEAD);
  shmchan_scanner_init(&r->scanner);
}

/* Zeroes a consumed record (free ring bytes are always zero) and moves the head past
 * it; SHMCHAN_OFF_RELEASING lets a successor finish this if we die halfway. */
static void release(shmchan_segment_t *seg, shmchan_mpsc_reader_t *r, uint32_t idx, uint32_t step) {
  uint32_t next = r->head + step;
  __atomic_store_n(U32_AT(seg->base, SHMCHAN_OFF_RELEASING), next, __ATOMIC_SEQ_CST);
  memset(ring_of(seg) + idx, 0, step);
  r->head = next;
  __atomic_store_n(U32_AT(seg->base, SHMCHAN_OFF_HEAD), next, __ATOMIC_SEQ_CST);
  shmchan_wake_if_waiting(seg, SHMCHAN_WAIT_SPACE);
}

/* The consumer's visitor: padding at the head is released at once, and the first
 * data record is the answer. */
static int release_padding(shmchan_segment_t *seg, void *reader, const shmchan_record_t *record) {
  if (record->type == SHMCHAN_RECORD_PADDING) {
    release(seg, reader, record->idx, record->length);
    return SHMCHAN_SCAN_RELEASED;
  }
  return record_is_data(record->type) ? SHMCHAN_SCAN_STOP : -EBADMSG;
}

int shmchan_mpsc_try_receive(shmchan_segment_t *seg, shmchan_mpsc_reader_t *r, void *buf, uint32_t cap) {
  const shmchan_scan_plan_t plan = {release_padding, NULL, r};
  shmchan_record_t found;
  int rc = scan(seg, &r->scanner, r->head, &plan, &found);
  if (rc < 0) return rc;
  uint32_t payload = found.length - SHMCHAN_RECORD_HEADER;
  if (payload > cap) return -EMSGSIZE; /* the message stays for a larger buffer */
  if (payload) memcpy(buf, ring_of(seg) + found.idx + SHMCHAN_RECORD_HEADER, payload);
  count_received(seg->base, payload);
  release(seg, r, found.idx, align8(found.length));
  return (int)payload;
}
