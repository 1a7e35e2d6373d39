/* The SPSC ring for C programs. The TypeScript data path (src/ring.ts) follows
 * the same protocol; see the record description in shmchan.h. */
#define _GNU_SOURCE
#include <errno.h>

#include "platform.h"

/* The bytes the record at ring index idx occupies, or 0 if its header is
 * impossible: checked before anything is rounded, so a huge length cannot wrap. */
static uint32_t record_step(const shmchan_segment_t *seg, uint32_t idx, uint32_t length, uint32_t type) {
  uint32_t capacity = capacity_of(seg);
  if (type == SHMCHAN_RECORD_PADDING)
    /* padding fills the ring to its end and never starts at 0 (a record always fits there) */
    return idx != 0 && length == capacity - idx ? length : 0;
  if (type != SHMCHAN_RECORD_DATA || length < SHMCHAN_RECORD_HEADER ||
      length - SHMCHAN_RECORD_HEADER > max_payload_of(seg) || align8(length) > capacity - idx)
    return 0;
  return align8(length);
}

int64_t shmchan_recover_tail(shmchan_segment_t *seg) {
  uint8_t *ring = ring_of(seg);
  uint32_t capacity = capacity_of(seg), mask = capacity - 1;
  uint32_t head = load_u32(seg->base, SHMCHAN_OFF_HEAD);
  uint32_t tail = load_u32(seg->base, SHMCHAN_OFF_TAIL);
  if (tail - head > capacity) {
    /* The consumer may already have read what the old producer committed but
     * never published: everything before the head was committed. */
    if (head - tail > capacity) return -EBADMSG;
    tail = head;
  }
  if ((tail & 7u) != 0) return -EBADMSG;
  /* At most one committed record (and its padding) can lie past the stored tail. */
  while (tail - head < capacity) {
    uint32_t idx = tail & mask;
    uint32_t length = load_seq_u32(ring, idx);
    if (length == 0) break;
    uint32_t step = record_step(seg, idx, length, load_u32(ring, idx + 4));
    if (step == 0 || step > capacity - (tail - head)) return -EBADMSG;
    tail += step;
  }
  store_u32(seg->base, SHMCHAN_OFF_TAIL, tail);
  return tail;
}

int shmchan_spsc_try_send(shmchan_segment_t *seg, shmchan_cursor_t *cur, const void *data, uint32_t len) {
  uint8_t *base = seg->base, *ring = ring_of(seg);
  uint32_t capacity = capacity_of(seg), mask = capacity - 1;
  if (len > max_payload_of(seg)) return -EMSGSIZE;
  if (load_u32(base, SHMCHAN_OFF_ENDED)) return -ESHUTDOWN;
  if ((cur->position & 7u) != 0) return -EBADMSG;

  uint32_t size = align8(SHMCHAN_RECORD_HEADER + len);
  uint32_t idx = cur->position & mask;
  uint32_t padding = capacity - idx < size ? capacity - idx : 0;
  uint32_t needed = padding + size + SHMCHAN_RECORD_HEADER; /* + slack for the next length word */
  uint32_t used = cur->position - cur->other;
  if (used > capacity || capacity - used < needed) {
    cur->other = load_u32(base, SHMCHAN_OFF_HEAD);
    used = cur->position - cur->other;
    if (used > capacity) return -EBADMSG;
    if (capacity - used < needed) return -EAGAIN;
  }
  uint32_t at = padding ? 0 : idx;
  if (len) memcpy(ring + at + SHMCHAN_RECORD_HEADER, data, len);
  *U32_AT(ring, at + 4) = SHMCHAN_RECORD_DATA;
  *U32_AT(ring, (at + size) & mask) = 0;
  __atomic_store_n(U32_AT(ring, at), SHMCHAN_RECORD_HEADER + len, __ATOMIC_SEQ_CST);
  if (padding) {
    *U32_AT(ring, idx + 4) = SHMCHAN_RECORD_PADDING;
    __atomic_store_n(U32_AT(ring, idx), padding, __ATOMIC_SEQ_CST);
  }
  cur->position += padding + size;
  store_u32(base, SHMCHAN_OFF_TAIL, cur->position);
  count_sent(base, cur->slot % SHMCHAN_MAX_PRODUCERS, len);
  shmchan_wake_if_waiting(seg, SHMCHAN_WAIT_DATA);
  return 0;
}

int shmchan_spsc_try_receive(shmchan_segment_t *seg, shmchan_cursor_t *cur, void *buf, uint32_t cap) {
  uint8_t *base = seg->base, *ring = ring_of(seg);
  uint32_t capacity = capacity_of(seg), mask = capacity - 1;
  if ((cur->position & 7u) != 0) return -EBADMSG;
  for (;;) {
    uint32_t idx = cur->position & mask;
    uint32_t length = load_seq_u32(ring, idx);
    if (length == 0) {
      if (!load_u32(base, SHMCHAN_OFF_ENDED)) return -EAGAIN;
      /* end() follows the producer's last commit: look once more */
      if (load_u32(ring, idx) == 0) return -ESHUTDOWN;
      continue;
    }
    uint32_t type = load_u32(ring, idx + 4); /* once: it is checked, then used */
    uint32_t step = record_step(seg, idx, length, type);
    if (step == 0) return -EBADMSG;
    if (type == SHMCHAN_RECORD_PADDING) {
      /* the loop goes round at most twice: padding moves to index 0, where it is refused */
      cur->position += step;
      store_u32(base, SHMCHAN_OFF_HEAD, cur->position);
      continue;
    }
    uint32_t payload = length - SHMCHAN_RECORD_HEADER;
    if (payload > cap) return -EMSGSIZE;
    if (payload) memcpy(buf, ring + idx + SHMCHAN_RECORD_HEADER, payload);
    cur->position += step;
    /* seq_cst, not release: it must be ordered before the load of the space waiters
     * below (store, then load: only a full fence keeps them apart), or a producer
     * that just announced itself could sleep through its wake-up */
    __atomic_store_n(U32_AT(base, SHMCHAN_OFF_HEAD), cur->position, __ATOMIC_SEQ_CST);
    count_received(base, payload);
    shmchan_wake_if_waiting(seg, SHMCHAN_WAIT_SPACE);
    return (int)payload;
  }
}

void shmchan_segment_end(shmchan_segment_t *seg) {
  __atomic_store_n(U32_AT(seg->base, SHMCHAN_OFF_ENDED), 1, __ATOMIC_SEQ_CST);
  shmchan_wake_if_waiting(seg, SHMCHAN_WAIT_DATA);
  shmchan_wake_if_waiting(seg, SHMCHAN_WAIT_SPACE);
}
