/*
 * shmchan: message channels between processes over a shared-memory ring.
 *
 * This header is the C channel API and the wire format. The wire format is what
 * every shmchan peer, whatever its language, agrees on; the channel API is what
 * a C program calls to share channels with Node processes and other C programs.
 * All integers in a segment are little endian (the only supported hosts are
 * x86-64 and arm64 Linux). docs/c-api.md is the reference of the API.
 *
 * The segment, role and ring functions that the Node addon builds on are not
 * part of this API: they live in native/src/segment.h.
 */
#ifndef SHMCHAN_H
#define SHMCHAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- wire format, version 2 -------------------------------------------------
 *
 * A segment is a header of SHMCHAN_HEADER_SIZE bytes followed by the ring of
 * `capacity` bytes (a power of two, SHMCHAN_MIN_CAPACITY..SHMCHAN_MAX_CAPACITY).
 * Offsets are from the start of the segment. Lines that different processes
 * write are 128 bytes apart so they never share a cache line (or its prefetch pair).
 */
#define SHMCHAN_MAGIC 0x434d4853u /* "SHMC" in memory; written last, with release */
#define SHMCHAN_VERSION 3u
#define SHMCHAN_HEADER_SIZE 8192u
#define SHMCHAN_MIN_CAPACITY 4096u
#define SHMCHAN_MAX_CAPACITY (1u << 30)
#define SHMCHAN_NAME_MAX 200u
#define SHMCHAN_MAX_PRODUCERS 64u
#define SHMCHAN_MAX_CONSUMERS 64u /* MPMC and BROADCAST */

/* identity line: written once by the creator before the magic is published */
#define SHMCHAN_OFF_MAGIC 0u            /* u32 */
#define SHMCHAN_OFF_VERSION 4u          /* u32 */
#define SHMCHAN_OFF_HEADER_SIZE 8u      /* u32 */
#define SHMCHAN_OFF_MODE 12u            /* u32: SHMCHAN_MODE_* */
#define SHMCHAN_OFF_CAPACITY 16u        /* u32: ring bytes */
#define SHMCHAN_OFF_MAX_MESSAGE 20u     /* u32: largest payload accepted */
#define SHMCHAN_OFF_CODEC 24u           /* u32: SHMCHAN_CODEC_*, a hint for openers */
#define SHMCHAN_OFF_BACKEND 28u         /* u32: SHMCHAN_BACKEND_* */
#define SHMCHAN_OFF_SEGMENT_SIZE 32u    /* u64: header + capacity */
#define SHMCHAN_OFF_CREATOR 40u         /* u64: the creator's pid, for display only */
#define SHMCHAN_OFF_CREATED_MS 48u      /* u64: creation time, ms since the epoch */
#define SHMCHAN_OFF_PERMISSIONS 56u     /* u32: mode bits given at creation */
#define SHMCHAN_OFF_KEY 60u             /* u32: System V key, 0 for POSIX */
#define SHMCHAN_OFF_ENDED 64u           /* u32: 1 once end() was called; never reset */
#define SHMCHAN_OFF_SEMID 68u           /* u32: System V semaphore set id, written before the magic */

/* producer line: the tail cursor (next free byte, a free-running u32 position) */
#define SHMCHAN_OFF_TAIL 128u           /* u32 */

/* consumer line: the head cursor and the consumer's counters */
#define SHMCHAN_OFF_HEAD 256u           /* u32: next byte to read, free-running */
#define SHMCHAN_OFF_RELEASING 260u      /* u32, MPSC: the head the consumer is releasing up to (see below) */
#define SHMCHAN_OFF_RECV_MESSAGES 264u  /* u64 */
#define SHMCHAN_OFF_RECV_BYTES 272u     /* u64 */
#define SHMCHAN_OFF_CONSUMER 280u       /* u64: the consumer's pid, for display only; 0 = none */
#define SHMCHAN_OFF_HEAD_POSITION 288u  /* u64: the head as a 64-bit position, kept only by
                                         * consumers that need a stable id per message (below) */

/* wait lines: a futex/semaphore sequence and a count of announced sleepers each.
 * A sleeper sets SHMCHAN_SEQ_ARMED in the sequence before it looks at the ring a
 * last time; a waker makes its system call only when it finds the bit set, and
 * clears it as it moves the sequence, so one wake-up is paid per sleep, not per
 * message sent while the sleeper is still waking (see wait.c). */
#define SHMCHAN_OFF_DATA_SEQ 384u       /* u32: moved when data arrives and a consumer sleeps */
#define SHMCHAN_OFF_DATA_WAITERS 388u   /* u32: consumers announced as sleeping */
#define SHMCHAN_OFF_SPACE_SEQ 512u      /* u32: moved when space is freed and a producer sleeps */
#define SHMCHAN_OFF_SPACE_WAITERS 516u  /* u32: producers announced as sleeping */
#define SHMCHAN_SEQ_ARMED 1u            /* bit of a sequence: a sleeper waits for this value to move */

/* fan-out line (modes MPMC and BROADCAST; zero otherwise), see "Fan-out" below */
#define SHMCHAN_OFF_MAX_CONSUMERS 640u  /* u32: consumer slots in use, 1..SHMCHAN_MAX_CONSUMERS; set at creation */
#define SHMCHAN_OFF_OVERFLOW 644u       /* u32: BROADCAST: SHMCHAN_OVERFLOW_*; set at creation */
#define SHMCHAN_OFF_RELEASE_LOCK 648u   /* u32: the marker of the handle moving the head, 0 = free */

#define SHMCHAN_OFF_NAME 768u           /* char[256]: NUL-terminated, without the leading '/' */

/* producer table: SHMCHAN_MAX_PRODUCERS entries of SHMCHAN_PRODUCER_SIZE bytes */
#define SHMCHAN_OFF_PRODUCERS 1024u
#define SHMCHAN_PRODUCER_SIZE 64u
#define SHMCHAN_PRODUCER_OWNER 0u       /* u64: the holder's pid, for display only; 0 = free */
#define SHMCHAN_PRODUCER_MESSAGES 8u    /* u64: messages this slot has sent */
#define SHMCHAN_PRODUCER_BYTES 16u      /* u64: payload bytes this slot has sent */
/* A producer that relays messages from elsewhere (the NATS bridge) records here,
 * in its own slot, how far it got, so a successor knows what the ring holds: */
#define SHMCHAN_PRODUCER_CHECKPOINT_SEQ 24u    /* u64: source sequence of the last message sent */
#define SHMCHAN_PRODUCER_CHECKPOINT_TAIL 32u   /* u32: the tail right after that message */
#define SHMCHAN_PRODUCER_CHECKPOINT_SOURCE 36u /* u32: a tag naming the source of the sequences */
#define SHMCHAN_PRODUCER_IN_FLIGHT_SEQ 40u     /* u64: source sequence of the message being sent */
/* Bumped by every new holder of the slot right after it claimed it, before its
 * first claim marker: markers name a claim by (slot, generation), not by pid. */
#define SHMCHAN_PRODUCER_GENERATION 48u /* u32 */
/* Consumer slot i of an MPMC or BROADCAST channel lives in the last 12 bytes of
 * producer entry i (unused by producers), so the header keeps its size: */
#define SHMCHAN_CONSUMER_OWNER 52u      /* u32: the holder's pid (display); 0 = free, or dropped */
#define SHMCHAN_CONSUMER_GENERATION 56u /* u32, MPMC: bumped by every new holder, as for producers */
#define SHMCHAN_CONSUMER_POSITION 56u   /* u64, BROADCAST: cursor | lost << 32, changed in one CAS:
                                         * the subscriber's next position (u32) and the messages
                                         * releasers have pushed it past, free-running (u32) */

/* The wait lines' numbers: a System V channel keeps the sleeper slots and the
 * semaphores of line w in that order (below). */
#define SHMCHAN_WAIT_DATA 0 /* the consumer waits for a record */
#define SHMCHAN_WAIT_SPACE 1 /* producers wait for room */

/* System V sleeper slots (unused by POSIX): per wait line, SHMCHAN_SYSV_SLOTS
 * u64 words, the pid of the thread's process sleeping in that slot (0 = free;
 * a slot is held by its lock semaphore, below, and the word tells wakers to post).
 * Slot s of line w sleeps on semaphore w * SHMCHAN_SYSV_SLOTS + s of the set. */
#define SHMCHAN_SYSV_SLOTS 64u
/* Then the liveness semaphores (see "Liveness"), the set's last 68: */
#define SHMCHAN_SYSV_SEM_OPEN (2u * SHMCHAN_SYSV_SLOTS)            /* raised by 1 per open handle */
#define SHMCHAN_SYSV_SEM_REPLACING (SHMCHAN_SYSV_SEM_OPEN + 1u)    /* 1 while a stale channel is removed */
#define SHMCHAN_SYSV_SEM_CREATOR (SHMCHAN_SYSV_SEM_OPEN + 2u)      /* 1 free, 0 held: the creator */
#define SHMCHAN_SYSV_SEM_CONSUMER (SHMCHAN_SYSV_SEM_OPEN + 3u)     /* 1 free, 0 held: the consumer */
#define SHMCHAN_SYSV_SEM_PRODUCERS (SHMCHAN_SYSV_SEM_OPEN + 4u)    /* + slot: 1 free, 0 held */
/* Last, per sleeper slot (line w, slot s at + w * SHMCHAN_SYSV_SLOTS + s): 1 free, 0 held. */
#define SHMCHAN_SYSV_SEM_SLEEPER_LOCKS (SHMCHAN_SYSV_SEM_PRODUCERS + SHMCHAN_MAX_PRODUCERS)
#define SHMCHAN_SYSV_NSEMS (SHMCHAN_SYSV_SEM_SLEEPER_LOCKS + 2u * SHMCHAN_SYSV_SLOTS)
/* MPMC and BROADCAST sets have SHMCHAN_MAX_CONSUMERS more, one per consumer slot: 1 free, 0 held. */
#define SHMCHAN_SYSV_SEM_CONSUMERS SHMCHAN_SYSV_NSEMS
#define SHMCHAN_SYSV_NSEMS_FANOUT (SHMCHAN_SYSV_NSEMS + SHMCHAN_MAX_CONSUMERS)
#define SHMCHAN_OFF_SLEEPERS 5120u      /* u64[2][SHMCHAN_SYSV_SLOTS]: data line, then space line */

/* Shared record structures, for codec SHMCHAN_CODEC_MSGPACK_RECORDS (unused
 * otherwise). msgpackr's record extension sends an object's keys once, as a
 * numbered structure, instead of in every message; the structures live here so
 * every process on the channel (and a successor of any) reads the same ones.
 * The table is append-only: entries are written past the published length and
 * then published by storing the new length (release). Readers read only
 * [0, length). Writers (producers) serialise on the lock word, which holds the
 * writer's claim marker (as for MPSC claims); a lock whose owner is dead is
 * taken over, and whatever it wrote past the length is simply overwritten.
 * An entry is u16 key count, then per key u16 byte length and the UTF-8 bytes.
 * Record id 0x40 + i refers to entry i; at most SHMCHAN_MAX_STRUCTURES. */
#define SHMCHAN_OFF_STRUCTURES_LOCK 6144u   /* u32: claim marker of the writer, 0 = free */
#define SHMCHAN_OFF_STRUCTURES_LENGTH 6148u /* u32: published bytes of the table */
#define SHMCHAN_OFF_STRUCTURES 6160u        /* the table */
#define SHMCHAN_STRUCTURES_SIZE 2032u       /* up to the end of the header */
#define SHMCHAN_MAX_STRUCTURES 32u

#define SHMCHAN_MODE_SPSC 1u
#define SHMCHAN_MODE_MPSC 2u
#define SHMCHAN_MODE_MPMC 3u      /* competing consumers: each message to one of them */
#define SHMCHAN_MODE_BROADCAST 4u /* every subscriber gets every message */
#define SHMCHAN_OVERFLOW_BLOCK 0u     /* producers wait for the slowest live subscriber */
#define SHMCHAN_OVERFLOW_OVERWRITE 1u /* producers never wait; lapped subscribers lose messages */
#define SHMCHAN_CODEC_RAW 0u
#define SHMCHAN_CODEC_MSGPACK 1u
#define SHMCHAN_CODEC_CUSTOM 2u
#define SHMCHAN_CODEC_MSGPACK_RECORDS 3u /* msgpack with shared record structures (above) */
#define SHMCHAN_BACKEND_POSIX 1u
#define SHMCHAN_BACKEND_SYSV 2u

/*
 * Records. Each record starts at an 8-aligned ring offset with an 8-byte header:
 *   u32 length   8 + payload bytes; 0 = not (yet) committed. Written last, with
 *                release: the length word is the commit.
 *   u32 type     SHMCHAN_RECORD_DATA or SHMCHAN_RECORD_PADDING
 * The next record starts at the length rounded up to 8. A record never wraps:
 * a padding record fills the ring to its end instead. In SPSC mode the producer
 * zeroes the length word of the next record before it commits the current one,
 * so the consumer never mistakes old bytes for a record; every record therefore
 * needs 8 bytes of slack behind it.
 */
#define SHMCHAN_RECORD_HEADER 8u
#define SHMCHAN_RECORD_DATA 1u
#define SHMCHAN_RECORD_PADDING 2u
#define SHMCHAN_RECORD_CONSUMED 3u /* MPMC: a data record its consumer has returned */

/*
 * MPSC records. Free ring bytes are always zero: the consumer zeroes what it
 * consumed before it moves the head. A producer
 *   1. reads the tail T and checks for room (need = padding + record size);
 *   2. claims the record by a CAS of the type word at T from 0 to its claim
 *      marker (SHMCHAN_CLAIM_FLAG | slot << 22 | generation & SHMCHAN_CLAIM_GENERATION_MASK,
 *      the generation its slot had when the producer claimed the slot), so the claim
 *      names its owner; the owner lives while the slot is held (see "Liveness")
 *      and its generation is still the marker's;
 *   3. stores -need in the length word ("in progress");
 *   4. advances the tail from T to T + need by CAS (others may help: any producer
 *      that finds a marker with a negative length may advance the tail for it);
 *   5. writes the payload and commits by storing the positive length. A committed
 *      record whose type word still holds a claim marker is a data record.
 * When the claim wraps (padding + record at offset 0), the record at 0 gets type
 * DATA and is committed first; then the claim at T becomes padding: type PADDING
 * is stored, then the length. A header {negative length, PADDING} therefore means
 * "the record at 0 is committed, the padding is not yet": the consumer finishes it.
 * A claim whose owner died is turned into padding by the consumer; a marker with
 * no negative length yet and a dead owner is taken back (CAS to 0) by a producer.
 * Before zeroing a consumed record the consumer stores the new head in
 * SHMCHAN_OFF_RELEASING, so a successor of a consumer that died while zeroing
 * finishes the release instead of reading a half-zeroed record.
 */
#define SHMCHAN_CLAIM_FLAG 0x80000000u
#define SHMCHAN_CLAIM_SLOT_SHIFT 22u
#define SHMCHAN_CLAIM_GENERATION_MASK ((1u << SHMCHAN_CLAIM_SLOT_SHIFT) - 1)

/*
 * Fan-out (MPMC and BROADCAST). Producers write records as in MPSC (claims,
 * markers, padding, dead claims), and free ring bytes are zero as in MPSC. Every
 * consumer holds a consumer slot (lock byte SHMCHAN_LOCK_CONSUMERS + i, System V
 * semaphore SHMCHAN_SYSV_SEM_CONSUMERS + i) and bumps its generation when it takes
 * it; its marker is SHMCHAN_CONSUMER_FLAG | i << 22 | generation (bit 31 clear,
 * so never a producer's). The head (SHMCHAN_OFF_HEAD) is moved only by the
 * holder of SHMCHAN_OFF_RELEASE_LOCK (a CAS from 0 to its marker, producer's or
 * consumer's; a dead holder's lock is taken over), which stores the new head in
 * SHMCHAN_OFF_RELEASING, zeroes the released bytes, then stores the head. A new
 * holder first finishes a release that SHMCHAN_OFF_RELEASING says was cut short.
 * The releaser counts the data records it releases in SHMCHAN_OFF_RECV_*.
 *
 * MPMC: a consumer scans from the head for the first committed data record
 * (type DATA or a producer marker) and takes it by a CAS of its type word to its
 * own marker; after decoding it stores SHMCHAN_RECORD_CONSUMED in the type word
 * and the head may pass it. A record taken by a consumer that has died is given
 * back (CAS of the type word from the dead marker to SHMCHAN_RECORD_DATA) by any
 * consumer that finds it at the head and nothing to take.
 *
 * BROADCAST: subscriber i reads from the cursor in SHMCHAN_CONSUMER_POSITION and
 * moves it after it decoded a record (by CAS under OVERWRITE). A subscriber takes
 * its slot, stores a cursor, SHMCHAN_OFF_RELEASING (oldest) or the tail (latest),
 * then its owner word, and reads SHMCHAN_OFF_RELEASING again: if that moved past
 * its cursor it starts again. Only producers release. Overflow BLOCK: a release
 * goes up to the lowest cursor of the subscribers whose owner word is set (a
 * cursor outside [releasing, tail] is ignored); a producer without room drops
 * the slowest subscriber if its slot lock is free (clears its owner word).
 * Overflow OVERWRITE: a producer without room releases whole records from the
 * head until it has room, after pushing every subscriber whose cursor lies in
 * the released range to its end and adding the data records it skips to its
 * lost count (one CAS of the u64). A subscriber whose CAS fails was pushed: it
 * discards what it read and reports the lost count's growth (ERR_LAGGED).
 */
#define SHMCHAN_CONSUMER_FLAG 0x40000000u

/*
 * Liveness. Whether a role's holder lives is kept by the kernel, which ends it
 * when the process dies, whatever its pid namespace; pids are never used for it.
 *
 * POSIX: every handle keeps the segment's file open for its lifetime and takes
 * open-file-description locks (fcntl F_OFD_SETLK, l_whence SEEK_SET, l_len 1,
 * l_pid 0) on single bytes of that file. The bytes only name locks: locks are
 * advisory and never touch the data. Every handle holds a read lock on
 * SHMCHAN_LOCK_OPEN; the creating handle a write lock on SHMCHAN_LOCK_CREATOR;
 * the consumer a write lock on SHMCHAN_LOCK_CONSUMER; the holder of producer
 * slot i (in SPSC, slot 0 is the producer role) a write lock on
 * SHMCHAN_LOCK_PRODUCERS + i. Claiming a role is taking its lock (F_OFD_SETLK,
 * EAGAIN: held). A holder lives while F_OFD_GETLK for a write lock on its byte
 * reports a conflicting lock. A channel is stale when nobody holds a lock on
 * SHMCHAN_LOCK_OPEN. An opener takes its read lock and then checks that the file
 * still has a name (st_nlink > 0): a channel being replaced is write-locked on
 * SHMCHAN_LOCK_OPEN by its replacer, which unlinks it under that lock.
 *
 * System V (no file): semaphores of the channel's set, changed with SEM_UNDO so
 * that the kernel undoes them when the process dies. SHMCHAN_SYSV_SEM_OPEN is
 * raised by 1 by every handle (together with a check that
 * SHMCHAN_SYSV_SEM_REPLACING is 0, in one semop), and lowered again at close. A
 * role's semaphore (creator, consumer, producer slot i) is 1 while free: claiming
 * is semop -1 with IPC_NOWAIT | SEM_UNDO (EAGAIN: held), releasing +1 with
 * SEM_UNDO, and the holder lives while its value is 0. Stale: OPEN is 0.
 *
 * The role fields of the header (creator, consumer, producer slots' owner) hold
 * the holder's pid in their low SHMCHAN_OWNER_PID_BITS bits, for display only.
 */
#define SHMCHAN_LOCK_OPEN 0u
#define SHMCHAN_LOCK_CREATOR 1u
#define SHMCHAN_LOCK_CONSUMER 2u
#define SHMCHAN_LOCK_PRODUCERS 64u
#define SHMCHAN_LOCK_CONSUMERS 128u /* + consumer slot, MPMC and BROADCAST */
#define SHMCHAN_OWNER_PID_BITS 22u

/*
 * Relaying consumers and producers (used by the NATS bridge; other peers may
 * ignore these fields, which stay zero).
 *
 * Head position: a consumer that hands a message on before it consumes it (to
 * publish it elsewhere and consume it once acknowledged) names the message by its
 * 64-bit ring position. Before each store of the head it stores the new head as a
 * u64 here, in one store. A successor computes the 64-bit head from it: with
 * d = (u32)position - head, a d of at most the capacity means the position is
 * the head plus at most one record not yet published (the predecessor died in
 * between), so the head is position - d; otherwise the head moved without this
 * field (another consumer) and is position + (head - (u32)position).
 *
 * Checkpoint: a producer that relays numbered messages stores, in its slot, the
 * number of the message in flight before it sends it, then after the send the
 * pair (number, tail after it): the number first, the tail second. A successor
 * that finds the recovered tail past the checkpoint tail, and an in-flight number
 * above the checkpoint number, knows that the in-flight message was committed.
 */

/* ---- channels: the C API --------------------------------------------------
 *
 * A channel handle, like the Node package's Channel: it claims its roles the
 * way Channel does (the consumer role on the first receive, the producer role,
 * or an MPSC producer slot, on the first send or end), so C and Node peers
 * respect each other's roles, and a role whose holder died is taken over. Every
 * mode (SPSC, MPSC, and MPMC and BROADCAST with a consumer slot per receiving
 * handle) and both backends (POSIX, System V) work. Messages are
 * bytes: what the Node side makes of them is its codec's business (a channel
 * created with codec SHMCHAN_CODEC_MSGPACK is decoded with msgpack by Node
 * peers; examples/c/producer.c encodes strings).
 *
 * A handle is used by one thread at a time; several handles (in one process or
 * many) may share a channel. Results are 0 or a length on success, -errno on
 * failure:
 *   -EINVAL      a bad name or option
 *   -ENOENT      open: no such channel        -EEXIST  create: the name (or key) is taken
 *   -EACCES      permissions                  -ETIMEDOUT  nothing happened before the timeout
 *   -EAGAIN      try_*: full / empty          -EMSGSIZE   message > max_message_size, or a
 *                                                         receive buffer too small (the message stays)
 *   -EBUSY       the role is held by a live handle (SPSC producer, or the consumer)
 *   -EUSERS      MPSC: SHMCHAN_MAX_PRODUCERS live producers already
 *   -ESHUTDOWN   the stream was ended: sends fail, receives fail once every message is taken
 *   -EPIPE       send: the consumer died while the producer waited for room
 *   -EBADMSG     the segment is corrupt (a cursor, length or field is impossible)
 *   -EPROTONOSUPPORT  not a shmchan segment, or one of another version or layout
 *   -EIDRM       System V: the channel was removed while waiting
 *   -EUSERS      MPMC, BROADCAST receive: max_consumers live consumers already
 *   -ENOBUFS     BROADCAST with OVERWRITE, receive: this subscriber was lapped and
 *                lost messages (shmchan_messages_lost says how many in all); the
 *                next receive goes on from the oldest message still in the ring
 */
typedef struct shmchan shmchan_t;

/* Options of create and open. Zero means the default for every field, so
 * `shmchan_options_t o = {0};` (or a NULL pointer) gives the Node defaults. */
typedef struct shmchan_options {
  uint32_t backend;          /* SHMCHAN_BACKEND_POSIX (default) or SHMCHAN_BACKEND_SYSV */
  uint32_t key;              /* System V key; 0: shmchan_sysv_key_of_name(name) */
  /* create only */
  uint32_t mode;             /* SHMCHAN_MODE_SPSC (default), _MPSC, _MPMC or _BROADCAST */
  uint32_t capacity;         /* ring bytes, rounded up to a power of two, 4 KiB..1 GiB; 0: 1 MiB */
  uint32_t max_message_size; /* largest message; 0: capacity / 4 */
  uint32_t codec;            /* a hint for Node openers: SHMCHAN_CODEC_RAW (0, default) or _MSGPACK */
  uint32_t permissions;      /* mode bits; 0: 0600 */
  /* open only: ms to wait for the channel to appear and be initialised; 0: fail at
   * once if it does not exist, wait up to 1000 ms for a creator still initialising
   * it; < 0: wait forever */
  int open_timeout_ms;
  /* both */
  int spin_us;               /* how long waiting calls spin before they sleep; 0: 50; < 0: none */
  int unlink_on_close;       /* 0: yes for the creator, no for an opener; 1: yes; -1: no */
  /* BROADCAST: where a subscriber starts, on its first receive */
  uint32_t from;             /* SHMCHAN_FROM_LATEST (default) or SHMCHAN_FROM_OLDEST */
  /* create only, MPMC and BROADCAST */
  uint32_t max_consumers;    /* BROADCAST: 1..SHMCHAN_MAX_CONSUMERS; 0: 16 (MPMC: always 64) */
  uint32_t overflow;         /* BROADCAST: SHMCHAN_OVERFLOW_BLOCK (default) or _OVERWRITE */
} shmchan_options_t;

/* Values of `from` (API options, not part of the wire format). */
enum {
  SHMCHAN_FROM_LATEST = 0, /* what is sent after the subscriber joined */
  SHMCHAN_FROM_OLDEST = 1  /* also what is still in the ring */
};

/* Creates a channel (exclusively) and returns its handle in *out. */
int shmchan_create(shmchan_t **out, const char *name, const shmchan_options_t *options);
/* Opens an existing channel; mode, capacity and limits come from its header. */
int shmchan_open(shmchan_t **out, const char *name, const shmchan_options_t *options);
/* Releases the handle's roles and mapping, removes the channel if unlink_on_close
 * says so (never a channel created again under the name since), and frees the
 * handle. NULL is ignored. */
void shmchan_close(shmchan_t *ch);
/* Removes a channel by name (options: backend and key only). Open handles keep
 * working, except that System V waits end with -EIDRM. 0, -ENOENT, -EACCES... */
int shmchan_unlink(const char *name, const shmchan_options_t *options);

/* Sends len bytes as one message, waiting up to timeout_ms for room (< 0: forever,
 * 0: one try, then -ETIMEDOUT). try_send never waits: -EAGAIN when full. */
int shmchan_send(shmchan_t *ch, const void *data, size_t len, int timeout_ms);
int shmchan_try_send(shmchan_t *ch, const void *data, size_t len);

/* Receives the next message into buf and returns its length, waiting up to
 * timeout_ms (as for send). A message longer than cap gives -EMSGSIZE and stays
 * in the ring (a buffer of shmchan_max_message_size() bytes always suffices).
 * -ESHUTDOWN after the last message of an ended stream. try_receive never
 * waits: -EAGAIN when empty. */
int shmchan_receive(shmchan_t *ch, void *buf, size_t cap, int timeout_ms);
int shmchan_try_receive(shmchan_t *ch, void *buf, size_t cap);

/* Ends the stream, like closing a Go channel: a producing call (it claims the
 * producer role, or a slot). Later sends fail with -ESHUTDOWN; the consumer gets
 * every earlier message first. Idempotent. */
int shmchan_end(shmchan_t *ch);

typedef struct shmchan_stats {
  uint32_t capacity, used;
  uint64_t messages_sent, messages_received, bytes_sent, bytes_received;
  uint32_t producers;      /* live producers */
  uint32_t consumer_pid;   /* 0 = none alive; MPMC, BROADCAST: the first live consumer's */
  uint32_t creator_pid;    /* 0 = the creator is gone */
  uint32_t ended;
  uint32_t consumers;      /* live consumers */
} shmchan_stats_t;

/* The channel's counters. 0 or -EBADMSG. */
int shmchan_stats(shmchan_t *ch, shmchan_stats_t *out);

/* The handle's channel, as read at open. */
uint32_t shmchan_mode(const shmchan_t *ch);             /* SHMCHAN_MODE_* */
uint32_t shmchan_capacity(const shmchan_t *ch);
uint32_t shmchan_max_message_size(const shmchan_t *ch);
uint32_t shmchan_codec(const shmchan_t *ch);            /* SHMCHAN_CODEC_*: the creator's hint */
/* BROADCAST: the messages overwritten before this handle's subscriber read them. */
uint64_t shmchan_messages_lost(const shmchan_t *ch);

/* The key a System V channel gets when none is given: the 32-bit FNV-1a hash of
 * the name (without the leading '/'), or 1 if that hash is 0 (IPC_PRIVATE). */
uint32_t shmchan_sysv_key_of_name(const char *name);

/* Installs a SIGBUS handler for segments that another process truncates: a
 * fault inside a mapped segment replaces its whole mapping with private zero
 * pages instead of killing the process, so the segment then reads as zeros
 * (magic 0) and calls on it answer -EBADMSG; a fault anywhere else goes to the
 * previous handler. Optional for C programs; the Node addon installs it.
 * Idempotent. 0 or -errno. */
int shmchan_guard_install(void);

#ifdef __cplusplus
}
#endif
#endif
