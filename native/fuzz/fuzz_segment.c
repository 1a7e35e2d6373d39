/*
 * Fuzz target for everything in the C core that reads a segment another process
 * can write: the open paths' header validation (POSIX and System V, the same
 * functions that posix.c and sysv.c call on a mapped segment) and the ring's
 * record parsing, with the segment scribbled on between calls, as a hostile or
 * crashing peer could. While a header is being validated, the input may also
 * rewrite a field before any of the validator's loads (SHMCHAN_FUZZ_LOADS, see
 * platform.h): another process writing between two reads of the opener. The
 * data path's steps (send, receive, make room) run with it too: before a load of
 * the header or of the ring, the word about to be read or another field may change.
 *
 * The input is a program. Byte 0 picks the ring size, the mode and the backend;
 * then each step is an opcode and its operands: overwrite bytes, set a field to
 * an interesting value, or call the core (open the segment again, receive,
 * send, recover the tail, claim roles, read stats, send and receive as MPSC
 * peers, read as an MPMC consumer or a BROADCAST subscriber in a consumer slot,
 * make room as a fan-out producer: BROADCAST 'block' or 'overwrite', MPMC).
 * The fan-out words have steps of their own: consumer slots' owner words,
 * generations and positions (cursor | lost << 32), the release lock (free, or
 * any claim or consumer marker), RELEASING, the head and the tail, set near the
 * positions the readers and releasers trust. An open maps the size that
 * validation answers, so a validator that trusted a word read again would hand
 * the data path a ring larger than the buffer. A correct core never reads or
 * writes outside the segment and never loops forever, whatever the bytes;
 * AddressSanitizer and UndefinedBehaviorSanitizer say when it does, and
 * libFuzzer's -timeout (the seeded driver: fuzz.sh's timeout) when it hangs.
 *
 * Built with libFuzzer (clang -fsanitize=fuzzer) or, without clang, with
 * fuzz_main.c, a seeded random driver. See scripts/fuzz.sh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/platform.h"

typedef struct {
  const uint8_t *data;
  size_t size, at;
} input_t;

static uint32_t take(input_t *in, unsigned bytes) {
  uint32_t v = 0;
  for (unsigned i = 0; i < bytes; i++) v |= (uint32_t)(in->at < in->size ? in->data[in->at++] : 0) << (8 * i);
  return v;
}

/* Fields worth hitting on purpose: the identity line, the cursors, the role words. */
static const uint32_t field_offsets[] = {
    SHMCHAN_OFF_MAGIC,       SHMCHAN_OFF_VERSION,      SHMCHAN_OFF_HEADER_SIZE, SHMCHAN_OFF_MODE,
    SHMCHAN_OFF_CAPACITY,    SHMCHAN_OFF_MAX_MESSAGE,  SHMCHAN_OFF_CODEC,       SHMCHAN_OFF_BACKEND,
    SHMCHAN_OFF_SEGMENT_SIZE, SHMCHAN_OFF_ENDED,       SHMCHAN_OFF_TAIL,        SHMCHAN_OFF_HEAD,
    SHMCHAN_OFF_RELEASING,   SHMCHAN_OFF_CONSUMER,     SHMCHAN_OFF_DATA_WAITERS, SHMCHAN_OFF_SPACE_WAITERS,
    SHMCHAN_OFF_PRODUCERS,   SHMCHAN_OFF_NAME + 200,   SHMCHAN_OFF_MAX_CONSUMERS, SHMCHAN_OFF_OVERFLOW,
    SHMCHAN_OFF_RELEASE_LOCK, SHMCHAN_OFF_PRODUCERS + SHMCHAN_CONSUMER_OWNER,
    SHMCHAN_OFF_PRODUCERS + SHMCHAN_CONSUMER_POSITION, SHMCHAN_OFF_PRODUCERS + SHMCHAN_CONSUMER_POSITION + 4,
    SHMCHAN_OFF_PRODUCERS + SHMCHAN_PRODUCER_SIZE + SHMCHAN_CONSUMER_OWNER,
};

static uint32_t interesting(uint32_t pick, uint32_t capacity, uint32_t raw) {
  switch (pick % 14) {
    case 0: return 0;
    case 1: return 1;
    case 2: return 7;
    case 3: return 8;
    case 4: return capacity;
    case 5: return capacity - 8;
    case 6: return capacity + 8;
    case 7: return 0x7fffffffu;
    case 8: return 0x80000000u;
    case 9: return 0xffffffffu;
    case 10: return 0xfffffff9u; /* rounds up to 2^32 */
    case 11: return (uint32_t)-(int32_t)(raw % 4096); /* an MPSC "claim in progress" length */
    case 12: return SHMCHAN_CLAIM_FLAG | (raw & 0x3fffffffu); /* a claim marker */
    default: return raw;
  }
}

/* The input's pick of an interesting value (operands taken in order: the
 * evaluation order of a call's arguments is unspecified). */
static uint32_t take_interesting(input_t *in, uint32_t capacity) {
  uint32_t pick = take(in, 1);
  return interesting(pick, capacity, take(in, 4));
}

/* While set, every header load of the core may first rewrite the segment
 * (shmchan_fuzz_before_load): the input decides whether, where and what, and
 * whether the write stays or is undone a few loads later, as a process
 * flipping a word between a lie and the truth would. */
static input_t *hostile;
static uint32_t hostile_capacity;
/* The segment's first byte: a load's base may be the ring, after the header. */
static uint8_t *hostile_segment;
static struct {
  uint8_t *at;
  uint8_t before[8];
  uint32_t size, loads_left; /* size 0: nothing to undo */
} flip;

static void undo_flip(void) {
  if (flip.size != 0) memcpy(flip.at, flip.before, flip.size);
  flip.size = 0;
}

/* From now until disarm(), the input may write before each load from `segment`. */
static void arm(input_t *in, uint8_t *segment, uint32_t capacity) {
  hostile = in;
  hostile_capacity = capacity;
  hostile_segment = segment;
}

/* The loads are left alone again, and a word flipped for a while is put back. */
static void disarm(void) {
  hostile = NULL;
  undo_flip();
}

/* Writes size bytes of value at `at`, to be undone after `loads` more loads if that is not 0. */
static void rewrite(uint8_t *at, uint64_t value, uint32_t size, uint32_t loads) {
  undo_flip();
  if (loads != 0) {
    memcpy(flip.before, at, size);
    flip.at = at;
    flip.size = size;
    flip.loads_left = loads;
  }
  if (size == 8) __atomic_store_n((uint64_t *)at, value, __ATOMIC_RELEASE);
  else if (size == 4) __atomic_store_n((uint32_t *)at, (uint32_t)value, __ATOMIC_RELEASE);
  else *at = (uint8_t)value;
}

void shmchan_fuzz_before_load(const uint8_t *base, uint32_t off) {
  if (hostile == NULL) return;
  if (flip.size != 0 && --flip.loads_left == 0) undo_flip();
  if (hostile->at >= hostile->size) return;
  uint32_t pick = take(hostile, 1);
  if (pick % 4 != 0) return;
  uint8_t *segment = hostile_segment; /* the fuzzer's own buffer: writable */
  uint32_t loads = (pick & 128) ? 0 : 1 + pick / 16 % 4; /* 0: the write stays */
  switch (pick / 4 % 4) {
    case 0:
    case 1: { /* the word about to be read (in the header or in the ring) */
      uint32_t value = take_interesting(hostile, hostile_capacity);
      if (base == segment && off == SHMCHAN_OFF_SEGMENT_SIZE && (pick & 64))
        rewrite(segment + off, (uint64_t)SHMCHAN_HEADER_SIZE + ((uint64_t)hostile_capacity << (value % 20)), 8, loads);
      else
        rewrite((uint8_t *)base + off, value, 4, loads);
      break;
    }
    case 2: { /* another field */
      uint32_t field = field_offsets[take(hostile, 1) % (sizeof field_offsets / sizeof field_offsets[0])];
      rewrite(segment + field, take_interesting(hostile, hostile_capacity), 4, loads);
      break;
    }
    default: /* a byte of the name */
      rewrite(segment + SHMCHAN_OFF_NAME + take(hostile, 1) % (SHMCHAN_NAME_MAX + 1), take(hostile, 1), 1, loads);
      break;
  }
}

/* A record's type word: the plain types, or a marker naming a producer's claim or
 * an MPMC consumer's taken record (small generations: a fresh slot's is 1). */
static uint32_t type_word(input_t *in) {
  uint32_t pick = take(in, 1);
  if (pick % 8 < 4) return pick % 4; /* none, data, padding, consumed */
  uint32_t slot = take(in, 1) % SHMCHAN_MAX_CONSUMERS, generation = take(in, 1) % 4;
  uint32_t named = slot << SHMCHAN_CLAIM_SLOT_SHIFT | generation;
  if (pick % 8 < 6) return SHMCHAN_CONSUMER_FLAG | named;
  if (pick % 8 < 7) return SHMCHAN_CLAIM_FLAG | named;
  return take(in, 4);
}

/* A position near one a reader or releaser trusts (the head, the tail, RELEASING,
 * the fan-out reader's cursor) or anywhere: a few records either way, mostly on
 * record boundaries. */
static uint32_t near_cursor(const uint8_t *base, const shmchan_fanout_reader_t *r, input_t *in) {
  static const uint32_t cursors[] = {SHMCHAN_OFF_HEAD, SHMCHAN_OFF_TAIL, SHMCHAN_OFF_RELEASING};
  uint32_t pick = take(in, 1), step = take(in, 1) % 33 - 16;
  uint32_t at = pick % 5 < 3 ? load_u32(base, cursors[pick % 5]) : pick % 5 == 3 ? r->cursor : take(in, 4);
  return at + step * ((pick & 32) ? 1 : 8);
}

/* Takes a consumer slot as a channel handle does (in SPSC and MPSC the consumer
 * role: the slot is then the input's) and starts a fan-out reader in it, in either
 * mode whatever the header says, from the oldest message or the tail. */
static int fanout_start(shmchan_segment_t *seg, shmchan_fanout_reader_t *r, input_t *in) {
  uint32_t pick = take(in, 1);
  shmchan_release_consumer(seg);
  int slot = shmchan_claim_consumer(seg);
  if (slot < 0 || !shmchan_fanout_mode(seg->mode)) slot = (int)take(in, 1);
  uint32_t mode = (pick & 1) ? SHMCHAN_MODE_BROADCAST : SHMCHAN_MODE_MPMC;
  return shmchan_fanout_reader_init(r, seg, mode, (uint32_t)slot, (pick >> 1) & 1) == 0;
}

/* The marker a releaser holds the release lock under: a producer's claim marker (of
 * a slot it holds), the reader's own, one from the input, or the lock's holder. */
static uint32_t releaser_marker(shmchan_segment_t *seg, const shmchan_fanout_reader_t *r, input_t *in, uint32_t capacity) {
  uint32_t pick = take(in, 1);
  switch (pick % 4) {
    case 0: return shmchan_claim_producer(seg) >= 0 || seg->producer_slot >= 0 ? shmchan_claim_marker(seg) : 0;
    case 1: return r->mode == SHMCHAN_MODE_MPMC ? r->marker : SHMCHAN_CONSUMER_FLAG | r->slot << SHMCHAN_CLAIM_SLOT_SHIFT;
    case 2: return take_interesting(in, capacity);
    default: return load_u32(seg->base, SHMCHAN_OFF_RELEASE_LOCK);
  }
}

/* Once per input, after a receive waited on an unfinished claim: long enough for
 * the claim to count as stuck, so that the next receive asks whether its producer
 * lives and finishes it as padding when not (DEAD_CLAIM_CHECK_US in mpsc.c). */
static void stuck_for_a_while(int *slept) {
  if (*slept) return;
  *slept = 1;
  nanosleep(&(struct timespec){.tv_nsec = 1100 * 1000}, NULL);
}

#define FUZZ_NAME "fuzz"
#define FUZZ_KEY 0x5eedu

/* What an opener of this backend does with a segment of `mapped` bytes, with the
 * input writing between its reads: 0 and the size to map, or an error. The
 * size must fit what is mapped and be a header and a valid ring, whatever was
 * written meanwhile; anything else is the bug this target looks for. */
static int open_validated(uint8_t *base, size_t mapped, int sysv, input_t *in, uint32_t capacity, size_t *size, uint32_t *mode) {
  arm(in, base, capacity);
  shmchan_header_facts_t facts = {0};
  int rc = sysv ? shmchan_sysv_header_validate(base, mapped, FUZZ_NAME, FUZZ_KEY, &facts)
                : shmchan_header_validate(base, mapped, &facts);
  *size = facts.segment_size;
  *mode = facts.mode;
  disarm();
  if (rc == 0 && (*size > mapped || *size < SHMCHAN_HEADER_SIZE ||
                  !shmchan_capacity_valid((uint32_t)(*size - SHMCHAN_HEADER_SIZE)))) {
    fprintf(stderr, "fuzz_segment: an open validated %zu bytes of a %zu-byte mapping\n", *size, mapped);
    abort();
  }
  return rc;
}

/* The file whose locks the segment's roles are (POSIX): one for the whole run. */
static int lock_file(void) {
  static int fd = -1;
  if (fd < 0) fd = fileno(tmpfile());
  return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  input_t in = {data, size, 0};
  uint32_t flags = take(&in, 1);
  uint32_t capacity = SHMCHAN_MIN_CAPACITY << (flags % 5);
  size_t segment_size = (size_t)SHMCHAN_HEADER_SIZE + capacity;
  uint8_t *base = aligned_alloc(4096, segment_size);
  if (base == NULL) return 0;
  memset(base, 0, segment_size);

  shmchan_segment_options_t opt = {
      .capacity = capacity,
      /* bits 3 and 6: spsc, mpsc, and the fan-out modes (consumer slots, their limit) */
      .mode = (flags & 64) ? ((flags & 8) ? SHMCHAN_MODE_BROADCAST : SHMCHAN_MODE_MPMC)
                           : ((flags & 8) ? SHMCHAN_MODE_MPSC : SHMCHAN_MODE_SPSC),
      .max_message_size = shmchan_max_message_limit(capacity),
      .codec = SHMCHAN_CODEC_RAW,
      .permissions = 0600,
      .max_consumers = flags % 64 + 1,
      .overflow = (flags >> 7) & 1,
  };
  int sysv = flags / 5 % 2; /* not a bit of its own: small bytes pick either backend */
  shmchan_header_init(base, FUZZ_NAME, sysv ? SHMCHAN_BACKEND_SYSV : SHMCHAN_BACKEND_POSIX, sysv ? FUZZ_KEY : 0, &opt);
  if (flags & 16) {
    /* a foreign header: the rest of the input, as is */
    size_t n = size - in.at < SHMCHAN_HEADER_SIZE ? size - in.at : SHMCHAN_HEADER_SIZE;
    memcpy(base, data + in.at, n);
    in.at += n;
  }
  size_t mapped = (flags & 32) ? segment_size - 4096 * (take(&in, 1) % 3) : segment_size;
  size_t open_size = segment_size;
  uint32_t open_mode = opt.mode;
  if (open_validated(base, mapped, sysv, &in, capacity, &open_size, &open_mode) != 0) {
    open_size = segment_size;
    open_mode = opt.mode;
  }

  /* From here on the segment is "open": the core trusts only the size it validated
   * (or, for a header that failed, the buffer's: the data path must survive that too). */
  shmchan_segment_t seg = {
      .base = base, .size = open_size, .backend = SHMCHAN_BACKEND_POSIX, .fd = lock_file(), .producer_slot = -1, .consumer_slot = -1, .mode = open_mode};
  shmchan_cursor_t consumer = {.position = load_u32(base, SHMCHAN_OFF_HEAD)};
  shmchan_cursor_t producer = {.slot = 0};
  int producing = 0;
  uint8_t message[4096], received[4096];
  shmchan_mpsc_writer_t mpsc_producer;
  shmchan_mpsc_reader_t mpsc_consumer;
  shmchan_mpsc_writer_init(&mpsc_producer, &seg); /* holds no slot: its marker names slot 63 */
  shmchan_mpsc_reader_init(&mpsc_consumer, &seg);
  shmchan_fanout_reader_t fanout = {.mode = SHMCHAN_MODE_MPMC};
  int fanning = 0, slept = 0;

  for (int steps = 0; steps < 256 && in.at < in.size; steps++) {
    uint32_t op = take(&in, 1);
    /* The data path's steps run with the input writing between their loads too,
     * as another process could (see shmchan_fuzz_before_load). */
    if (op % 17 >= 4 && op % 17 <= 14) arm(&in, base, capacity);
    switch (op % 17) {
      case 0: { /* overwrite a few bytes anywhere */
        uint32_t off = take(&in, 4) % segment_size;
        uint32_t n = take(&in, 1) % 16 + 1;
        for (uint32_t i = 0; i < n && off + i < segment_size; i++) base[off + i] = (uint8_t)take(&in, 1);
        break;
      }
      case 1: { /* set a header field */
        uint32_t off = field_offsets[take(&in, 1) % (sizeof field_offsets / sizeof field_offsets[0])];
        uint32_t pick = take(&in, 1);
        store_u32(base, off, interesting(pick, capacity, take(&in, 4)));
        break;
      }
      case 2: { /* set a record header where a reader or writer will look */
        uint32_t where = take(&in, 1) % 4;
        uint32_t pos = where == 0 ? consumer.position : where == 1 ? producer.position
                     : where == 2 ? fanout.cursor : near_cursor(base, &fanout, &in);
        uint32_t idx = pos & (capacity - 1) & ~3u;
        uint32_t pick = take(&in, 1);
        store_u32(base + SHMCHAN_HEADER_SIZE, idx, interesting(pick, capacity, take(&in, 4)));
        if (idx + 4 < capacity) store_u32(base + SHMCHAN_HEADER_SIZE, idx + 4, type_word(&in));
        break;
      }
      case 3: { /* another opener, while the input writes between its reads */
        size_t size;
        uint32_t mode;
        open_validated(base, mapped, sysv, &in, capacity, &size, &mode);
        break;
      }
      case 4: {
        uint32_t cap = take(&in, 2) % sizeof received;
        for (int i = 0; i < 4; i++)
          if (shmchan_spsc_try_receive(&seg, &consumer, received, cap) < 0) break;
        break;
      }
      case 5: {
        if (!producing) {
          int64_t tail = shmchan_recover_tail(&seg);
          if (tail < 0) break;
          producer.position = (uint32_t)tail;
          producer.other = load_u32(base, SHMCHAN_OFF_HEAD);
          producing = 1;
        }
        uint32_t len = take(&in, 2) % sizeof message;
        memset(message, (int)op, len);
        shmchan_spsc_try_send(&seg, &producer, message, len);
        break;
      }
      case 6: {
        int64_t tail = shmchan_recover_tail(&seg);
        if (tail >= 0) {
          producer.position = (uint32_t)tail;
          producing = 1;
        }
        break;
      }
      case 7: {
        shmchan_stats_t stats;
        shmchan_segment_stats(&seg, &stats);
        break;
      }
      case 8:
        /* MPSC: a new consumer finishes a predecessor's release; MPMC, BROADCAST: a
         * consumer slot under the header's limit, whatever it holds */
        if (shmchan_claim_consumer(&seg) >= 0) {
          consumer.position = load_u32(base, SHMCHAN_OFF_HEAD);
          shmchan_claimant_alive(&seg, SHMCHAN_MAX_PRODUCERS + take(&in, 1) % 70, take(&in, 4));
          shmchan_release_consumer(&seg);
        }
        break;
      case 9: {
        int slot = shmchan_claim_producer(&seg);
        shmchan_claimant_alive(&seg, take(&in, 1), take(&in, 4));
        shmchan_consumer_gone(&seg);
        if (slot >= 0) shmchan_release_producer(&seg);
        break;
      }
      case 10: { /* an MPSC producer; its marker names a slot it does not hold */
        uint32_t len = take(&in, 2) % sizeof message;
        memset(message, (int)op, len);
        shmchan_mpsc_try_send(&seg, &mpsc_producer, message, len);
        break;
      }
      case 11: {
        uint32_t cap = take(&in, 2) % sizeof received;
        if (mpsc_consumer.scanner.waiting_on_claim) stuck_for_a_while(&slept);
        for (int i = 0; i < 4; i++)
          if (shmchan_mpsc_try_receive(&seg, &mpsc_consumer, received, cap) < 0) break;
        break;
      }
      case 12: /* MPMC, BROADCAST: a reader in a consumer slot */
        fanning = fanout_start(&seg, &fanout, &in);
        break;
      case 13: {
        if (!fanning) fanning = fanout_start(&seg, &fanout, &in);
        if (!fanning) break;
        uint32_t cap = take(&in, 2) % sizeof received;
        if (fanout.scanner.waiting_on_claim) stuck_for_a_while(&slept);
        for (int i = 0; i < 4; i++) {
          int rc = shmchan_fanout_try_receive(&seg, &fanout, received, cap);
          if (rc < 0 && rc != -ENOBUFS) break; /* lapped under 'overwrite': it goes on */
        }
        break;
      }
      case 14: { /* a fan-out producer without room: BROADCAST 'block' or 'overwrite', MPMC */
        uint32_t pick = take(&in, 1);
        uint32_t mode = (pick & 1) ? SHMCHAN_MODE_BROADCAST : SHMCHAN_MODE_MPMC;
        uint32_t marker = releaser_marker(&seg, &fanout, &in, capacity);
        uint32_t need = take_interesting(&in, capacity);
        shmchan_fanout_make_room(&seg, mode, (pick >> 1) & 1, marker, need);
        shmchan_release_producer(&seg);
        break;
      }
      case 15: { /* the words fan-out readers and releasers share */
        uint32_t pick = take(&in, 1), slot = take(&in, 1) % SHMCHAN_MAX_CONSUMERS;
        uint32_t slot_off = SHMCHAN_OFF_PRODUCERS + slot * SHMCHAN_PRODUCER_SIZE;
        switch (pick % 7) {
          case 0: store_u32(base, slot_off + SHMCHAN_CONSUMER_OWNER, take_interesting(&in, capacity)); break;
          case 1: store_u32(base, slot_off + SHMCHAN_CONSUMER_GENERATION, take(&in, 1) % 4); break;
          case 2: { /* cursor | lost << 32 */
            uint64_t position = near_cursor(base, &fanout, &in);
            position |= (uint64_t)take_interesting(&in, capacity) << 32;
            __atomic_store_n((uint64_t *)(base + slot_off + SHMCHAN_CONSUMER_POSITION), position, __ATOMIC_RELEASE);
            break;
          }
          case 3: store_u32(base, SHMCHAN_OFF_RELEASE_LOCK, (pick & 8) ? type_word(&in) : 0); break;
          case 4: store_u32(base, SHMCHAN_OFF_RELEASING, near_cursor(base, &fanout, &in)); break;
          case 5: store_u32(base, SHMCHAN_OFF_HEAD, near_cursor(base, &fanout, &in)); break;
          default: store_u32(base, SHMCHAN_OFF_TAIL, near_cursor(base, &fanout, &in)); break;
        }
        break;
      }
      default: {
        char name[260];
        uint32_t n = take(&in, 1);
        for (uint32_t i = 0; i < n && i < sizeof name - 1; i++) name[i] = (char)take(&in, 1);
        name[n < sizeof name - 1 ? n : sizeof name - 1] = 0;
        shmchan_check_name(name);
        break;
      }
    }
    disarm();
  }
  shmchan_release_consumer(&seg);
  shmchan_release_producer(&seg);
  free(base);
  return 0;
}
