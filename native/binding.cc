// The only glue between Node and the C core: argument unpacking, a JavaScript
// object per mapped segment, and the waiter threads that sleep on segments'
// futexes or semaphores so that JavaScript never blocks its event loop. No ring logic lives here;
// the data path runs in TypeScript over the ArrayBuffer this file hands out.
#include <napi.h>
#include <uv.h>

#include <pthread.h>
#include <sys/ipc.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <mutex>
#include <unordered_set>
#include <utility>
#include <vector>

#include "src/segment.h"

namespace {

// The name of a negative errno: libuv's for what it knows, ours for the few the
// core returns that libuv does not name.
const char *ErrnoName(int rc) {
  switch (-rc) {
    case EUSERS: return "EUSERS";
    case EBADMSG: return "EBADMSG";
    case EIDRM: return "EIDRM";
    case EDQUOT: return "EDQUOT";
    case ENOLCK: return "ENOLCK";
    default: return uv_err_name(rc);
  }
}

// Every failure crosses one way, as Node's own system errors do: an Error whose
// `code` is the errno name ('ENOENT'), `errno` the negative number and `syscall`
// the failing call when there is one. src/core/errors.ts turns it into a
// ShmChanError; the TypeScript side decides which failures are expected.
Napi::Error ErrnoError(Napi::Env env, int rc, const char *syscall) {
  const char *name = ErrnoName(rc);
  std::string message = syscall ? std::string(syscall) + " failed with " + name : std::string(name);
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, name));
  error.Set("errno", Napi::Number::New(env, rc));
  if (syscall) error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

Napi::Value ThrowErrno(Napi::Env env, int rc, const char *syscall) {
  ErrnoError(env, rc, syscall).ThrowAsJavaScriptException();
  return env.Undefined();
}

// A sleep's outcome: undefined when it ended (woken, timed out, interrupted or
// cancelled: the caller looks again either way), or the error that ends waiting
// (EIDRM: the System V semaphore set was removed).
Napi::Value WaitOutcome(Napi::Env env, int rc) {
  if (rc == 0 || rc == -ETIMEDOUT || rc == -EINTR || rc == -ECANCELED) return env.Undefined();
  return ErrnoError(env, rc, nullptr).Value();
}

class Segment;

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// One asynchronous sleep on one wait line of one segment, from waitAsync until
// its callback has run.
struct Sleep {
  shmchan_segment_t *segment;
  int which;
  uint32_t expected;
  int64_t deadline_ns;  // CLOCK_MONOTONIC; INT64_MAX: none
  bool refed;
  bool cancelled = false;
  bool in_ring = false;            // queued in the hub's io_uring, not on a thread
  int rc = 0;                      // how it ended, once it has
  struct SetSleeper *set = nullptr;  // the thread that sleeps on it with others, if any
  struct Blocker *blocker = nullptr; // the pool thread that sleeps on it alone, if any
  Segment *owner;                  // JS thread only: null once the segment closed
  Napi::FunctionReference callback;  // JS thread only
};

// A thread that sleeps on up to SHMCHAN_WAIT_ANY_MAX POSIX wait lines at once
// (futex_waitv), and on its bell, which the JS thread rings when that set changes.
struct SetSleeper {
  pthread_t thread;
  uint32_t bell = 0;
  std::vector<Sleep *> sleeps;
};

// A thread of the pool that sleeps on one wait line at a time: System V
// semaphores cannot be waited on together, nor can futexes before Linux 5.16.
struct Blocker {
  pthread_t thread;
  Sleep *active = nullptr;
};

// Every asynchronous sleep of one Node environment (the main thread's, or a
// worker's). POSIX sleeps go to an io_uring (uring.c) whose descriptor the event
// loop polls, so a waker's FUTEX_WAKE reaches the loop's thread directly. Where
// the kernel offers no io_uring FUTEX_WAIT, and for System V semaphores, a few
// threads sleep for all of them, so that a wait costs no thread of its own, and
// the ends of their sleeps reach JavaScript through one thread-safe function, one
// uv_async_send for as many as ended meanwhile. Threads are made with
// pthread_create, not std::thread: the addon is built without C++ exceptions, so
// std::thread's failure would abort the process.
class Hub {
 public:
  explicit Hub(Napi::Env env) : env_(env) {
    napi_value name;
    napi_create_string_utf8(env, "shmchan.wait", NAPI_AUTO_LENGTH, &name);
    napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, this, CallJs, &tsfn_);
    napi_unref_threadsafe_function(env, tsfn_);  // only pending refed sleeps keep the loop alive
    napi_value resource;
    napi_create_object(env, &resource);
    napi_create_reference(env, resource, 1, &resource_);
    napi_async_init(env, resource, name, &async_context_);
    wait_any_ = shmchan_wait_any_supported() && !Disabled("SHMCHAN_NO_FUTEX_WAITV");
    uv_loop_t *loop = nullptr;
    if (!Disabled("SHMCHAN_NO_IO_URING") && napi_get_uv_event_loop(env, &loop) == napi_ok && shmchan_uring_open(&ring_) == 0) {
      poll_ = new uv_poll_t();
      poll_->data = this;
      if (uv_poll_init(loop, poll_, shmchan_uring_fd(ring_)) == 0 && uv_poll_start(poll_, UV_READABLE, RingReadable) == 0) {
        uv_unref(reinterpret_cast<uv_handle_t *>(poll_));  // only pending refed sleeps keep the loop alive (Refer)
        retry_ = new uv_timer_t();
        uv_timer_init(loop, retry_);
        retry_->data = this;
        uv_unref(reinterpret_cast<uv_handle_t *>(retry_));
      } else {
        delete poll_;
        poll_ = nullptr;
        shmchan_uring_close(ring_);
        ring_ = nullptr;
      }
    }
  }

  // How sleeps are carried out here: 'io_uring', 'futex_waitv' or 'threads' (for POSIX segments).
  const char *Mechanism() const { return ring_ != nullptr ? "io_uring" : wait_any_ ? "futex_waitv" : "threads"; }

  // Starts a sleep. 0, or the negative errno of pthread_create when the sleep
  // needed a new thread and none could start (EAGAIN at the thread limit).
  int Add(Napi::Env env, Sleep *sleep) {
    std::lock_guard<std::mutex> lock(mutex_);
    bool posix = sleep->segment->backend == SHMCHAN_BACKEND_POSIX;
    int rc = posix && AddToRing(sleep) ? 0 : posix && wait_any_ ? AddToSet(sleep) : AddToPool(sleep);
    if (rc == 0 && sleep->refed) Refer(env, +1);
    return rc;
  }

  // Ends a sleep soon; its callback still runs.
  void Cancel(Sleep *sleep) {
    std::lock_guard<std::mutex> lock(mutex_);
    Interrupt(sleep);
  }

  // Ends a sleep and returns once no thread uses its segment any more: before
  // the segment is unmapped. Its callback still runs.
  void Detach(Sleep *sleep) {
    std::unique_lock<std::mutex> lock(mutex_);
    Interrupt(sleep);
    released_.wait(lock, [sleep] { return sleep->blocker == nullptr; });
  }

  // Whether a pending sleep keeps the event loop alive.
  void SetRef(Napi::Env env, Sleep *sleep, bool refed) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (sleep->refed == refed) return;
    sleep->refed = refed;
    Refer(env, refed ? +1 : -1);
  }

  // At environment teardown, after every segment was closed; `done` runs once
  // the hub's handle on the event loop is closed, and may delete the hub.
  void Stop(napi_env env, void (*done)(void *), void *arg) {
    napi_async_destroy(env, async_context_);
    napi_delete_reference(env, resource_);
    if (poll_ == nullptr) return done(arg);
    stopped_ = {done, arg};
    closing_ = 2;  // `done` runs once the poll and the timer are both closed
    for (uv_handle_t *handle : {reinterpret_cast<uv_handle_t *>(poll_), reinterpret_cast<uv_handle_t *>(retry_)})
      uv_close(handle, [](uv_handle_t *handle) {
        Hub *hub = static_cast<Hub *>(handle->data);
        if (handle->type == UV_TIMER) {
          delete reinterpret_cast<uv_timer_t *>(handle);
          hub->retry_ = nullptr;
        } else {
          delete reinterpret_cast<uv_poll_t *>(handle);
          hub->poll_ = nullptr;
        }
        if (--hub->closing_ == 0) hub->stopped_.first(hub->stopped_.second);
      });
  }

  ~Hub() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      for (SetSleeper *set : sets_) shmchan_ring_bell(&set->bell);
    }
    work_.notify_all();
    for (SetSleeper *set : sets_) {
      pthread_join(set->thread, nullptr);
      delete set;
    }
    for (Blocker *blocker : blockers_) {
      pthread_join(blocker->thread, nullptr);
      delete blocker;
    }
    for (Sleep *sleep : ended_) delete sleep;
    for (Sleep *sleep : ringing_) delete sleep;
    shmchan_uring_close(ring_);  // the kernel cancels the sleeps still queued
  }

 private:
  // How long a pool thread sleeps on one line while other sleeps wait for a thread.
  static constexpr int kTurnMs = 10;
  static constexpr size_t kPoolMax = 16;

  static bool Disabled(const char *variable) {
    const char *value = getenv(variable);
    return value != nullptr && value[0] == '1';
  }

  // Whether the sleep is now queued in the ring; false sends it to a thread.
  bool AddToRing(Sleep *sleep) {
    if (ring_ == nullptr) return false;
    if (shmchan_uring_sleep(ring_, sleep->segment, sleep->which, sleep->expected, MsLeft(sleep), Tag(sleep)) != 0) return false;
    sleep->in_ring = true;
    ringing_.insert(sleep);
    SubmitSoon();
    return true;
  }

  // A submission the kernel refused (io_uring_enter: EAGAIN, EBUSY) leaves its
  // entries queued in the ring, and nothing else would hand them over: the sleep,
  // its timeout or a cancel would never begin. They are handed over again every
  // millisecond until the kernel takes them.
  void SubmitSoon() {
    uv_handle_t *handle = reinterpret_cast<uv_handle_t *>(retry_);
    if (handle == nullptr || uv_is_closing(handle) || uv_is_active(handle) || shmchan_uring_refused(ring_) == 0) return;
    uv_timer_start(retry_, [](uv_timer_t *timer) {
      Hub *hub = static_cast<Hub *>(timer->data);
      shmchan_uring_hold(hub->ring_, 0);
      if (shmchan_uring_refused(hub->ring_) == 0) uv_timer_stop(timer);
    }, 1, 1);
  }

  // The milliseconds a sleep may still last, rounded up; -1: no limit.
  static int MsLeft(const Sleep *sleep) {
    if (sleep->deadline_ns == INT64_MAX) return -1;
    int64_t left_ns = std::max<int64_t>(0, sleep->deadline_ns - MonotonicNs());
    return static_cast<int>((left_ns + 999999) / 1000000);
  }

  static uint64_t Tag(Sleep *sleep) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(sleep)); }

  // On the JS thread, when the ring has ended sleeps: they are delivered at once.
  static void RingReadable(uv_poll_t *poll, int, int) {
    Hub *hub = static_cast<Hub *>(poll->data);
    shmchan_uring_end_t ends[64];
    bool any = false;
    for (int count; (count = shmchan_uring_ended(hub->ring_, ends, 64)) > 0;) {
      std::lock_guard<std::mutex> lock(hub->mutex_);
      for (int i = 0; i < count; i++) {
        Sleep *sleep = reinterpret_cast<Sleep *>(static_cast<uintptr_t>(ends[i].tag));
        if (hub->ringing_.erase(sleep) == 0) continue;  // not ours: never expected
        sleep->in_ring = false;
        int rc = ends[i].rc == -ECANCELED && !sleep->cancelled ? -ETIMEDOUT : ends[i].rc;
        sleep->rc = rc;
        hub->ended_.push_back(sleep);
        any = true;
      }
    }
    if (!any) return;
    // The callbacks go back to sleep, most of them: one system call for them all.
    shmchan_uring_hold(hub->ring_, 1);
    hub->Deliver(hub->env_);
    shmchan_uring_hold(hub->ring_, 0);
    hub->SubmitSoon();
  }

  int AddToSet(Sleep *sleep) {
    SetSleeper *set = nullptr;
    for (SetSleeper *candidate : sets_)
      if (candidate->sleeps.size() < SHMCHAN_WAIT_ANY_MAX) set = candidate;
    if (set == nullptr) {
      set = new SetSleeper();
      int rc = StartThread<SetSleeper, &Hub::SleepMany>(set);
      if (rc != 0) {
        delete set;
        return rc;
      }
      sets_.push_back(set);
    }
    sleep->set = set;
    set->sleeps.push_back(sleep);
    shmchan_ring_bell(&set->bell);
    return 0;
  }

  int AddToPool(Sleep *sleep) {
    queue_.push_back(sleep);
    if (queue_.size() > idle_ && blockers_.size() < kPoolMax) {
      Blocker *blocker = new Blocker();
      int rc = StartThread<Blocker, &Hub::Block>(blocker);
      if (rc != 0) {
        delete blocker;
        if (blockers_.empty()) {
          queue_.pop_back();
          return rc;
        }
        // the pool's threads take turns with it
      } else {
        blockers_.push_back(blocker);
      }
    }
    work_.notify_one();
    return 0;
  }

  void Interrupt(Sleep *sleep) {
    if (sleep->cancelled) return;
    sleep->cancelled = true;
    if (sleep->in_ring) {
      // Its end still comes through the ring (the timeout ends it if the cancel
      // cannot be queued). The kernel reads the mapping only while queueing the
      // sleep, so the segment may be unmapped now.
      shmchan_uring_cancel(ring_, Tag(sleep));
      SubmitSoon();
    } else if (sleep->set != nullptr) {
      std::vector<Sleep *> &sleeps = sleep->set->sleeps;
      sleeps.erase(std::find(sleeps.begin(), sleeps.end(), sleep));
      shmchan_ring_bell(&sleep->set->bell);
      sleep->set = nullptr;
      End(sleep, -ECANCELED);
    } else if (sleep->blocker != nullptr) {
      // Moving the sequence makes the pool thread's sleep return (and a not-yet-
      // sleeping one not sleep). Other processes' sleepers wake too, look at the
      // ring and sleep again.
      shmchan_wake(sleep->segment, sleep->which);
    } else {
      auto queued = std::find(queue_.begin(), queue_.end(), sleep);
      if (queued != queue_.end()) {
        queue_.erase(queued);
        End(sleep, -ECANCELED);
      }
    }
  }

  // Under the lock: hands an ended sleep to the JS thread.
  void End(Sleep *sleep, int rc) {
    sleep->rc = rc;
    ended_.push_back(sleep);
    if (signalled_) return;
    signalled_ = true;
    napi_call_threadsafe_function(tsfn_, nullptr, napi_tsfn_nonblocking);
  }

  // Under the lock, on the JS thread.
  void Refer(Napi::Env env, int change) {
    refed_ += change;
    if (change > 0 && refed_ == 1) napi_ref_threadsafe_function(env, tsfn_);
    if (change < 0 && refed_ == 0) napi_unref_threadsafe_function(env, tsfn_);
  }

  // A thread of the hub: runs Body(worker), a SetSleeper's or a Blocker's life.
  // 0, or pthread_create's negative errno.
  template <typename Worker, void (Hub::*Body)(Worker *)>
  int StartThread(Worker *worker) {
    auto *pair = new std::pair<Hub *, Worker *>(this, worker);
    int err = pthread_create(&worker->thread, nullptr, RunThread<Worker, Body>, pair);
    if (err != 0) delete pair;
    return -err;
  }

  template <typename Worker, void (Hub::*Body)(Worker *)>
  static void *RunThread(void *arg) {
    auto *pair = static_cast<std::pair<Hub *, Worker *> *>(arg);
    Hub *hub = pair->first;
    Worker *worker = pair->second;
    delete pair;
    (hub->*Body)(worker);
    return nullptr;
  }

  // A set thread's life: end the sleeps whose line moved or whose time is up,
  // then sleep on the others and the bell at once. Lines are read only under the
  // lock, while their segments are surely mapped (Detach takes the lock).
  void SleepMany(SetSleeper *set) {
    std::vector<shmchan_wait_line_t> lines;
    lines.reserve(SHMCHAN_WAIT_ANY_MAX);
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      int64_t now = MonotonicNs();
      int64_t deadline = INT64_MAX;
      lines.clear();
      std::vector<Sleep *> &sleeps = set->sleeps;
      for (size_t i = 0; i < sleeps.size();) {
        Sleep *sleep = sleeps[i];
        bool moved = shmchan_wait_sequence(sleep->segment, sleep->which) != sleep->expected;
        if (moved || now >= sleep->deadline_ns) {
          sleeps.erase(sleeps.begin() + static_cast<long>(i));
          sleep->set = nullptr;
          End(sleep, moved ? 0 : -ETIMEDOUT);
          continue;
        }
        lines.push_back({sleep->segment, sleep->which, sleep->expected});
        deadline = std::min(deadline, sleep->deadline_ns);
        i++;
      }
      uint32_t bell = __atomic_load_n(&set->bell, __ATOMIC_SEQ_CST);
      lock.unlock();
      shmchan_wait_any(&set->bell, bell, lines.data(), static_cast<int>(lines.size()), deadline == INT64_MAX ? -1 : deadline);
      lock.lock();
    }
  }

  // A pool thread's life: take the oldest sleep waiting for a thread and sleep on
  // its line, for a turn only when others wait too; one whose turn ended early
  // queues again (the sequence it compares against catches any wake-up meanwhile).
  void Block(Blocker *blocker) {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      idle_++;
      work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      idle_--;
      if (stopping_) return;
      Sleep *sleep = queue_.front();
      queue_.pop_front();
      sleep->blocker = blocker;
      blocker->active = sleep;
      int ms = MsLeft(sleep);
      if (!queue_.empty() && (ms < 0 || ms > kTurnMs)) ms = kTurnMs;
      bool cancelled = sleep->cancelled;
      lock.unlock();
      int rc = cancelled ? -ECANCELED : shmchan_wait(sleep->segment, sleep->which, sleep->expected, ms);
      lock.lock();
      sleep->blocker = nullptr;
      blocker->active = nullptr;
      if (sleep->cancelled) rc = -ECANCELED;
      if (rc == -ETIMEDOUT && MonotonicNs() < sleep->deadline_ns)
        queue_.push_back(sleep);
      else
        End(sleep, rc);
      released_.notify_all();
    }
  }

  static void CallJs(napi_env env, napi_value, void *context, void *) {
    // While Node tears the environment down, JavaScript cannot run.
    if (env == nullptr) return;
    static_cast<Hub *>(context)->Deliver(env);
  }

  // On the JS thread: runs the callbacks of the sleeps that ended.
  void Deliver(napi_env env);

  napi_env env_;
  shmchan_uring_t *ring_ = nullptr;   // null: POSIX sleeps go to threads too
  uv_poll_t *poll_ = nullptr;         // the event loop's watch on the ring
  uv_timer_t *retry_ = nullptr;       // hands a refused submission over again (SubmitSoon)
  int closing_ = 0;                   // handles Stop is closing
  std::unordered_set<Sleep *> ringing_;  // sleeps queued in the ring
  std::pair<void (*)(void *), void *> stopped_ = {nullptr, nullptr};
  napi_threadsafe_function tsfn_ = nullptr;
  // Callbacks run in a callback scope, as MakeCallback's do: the promises they
  // settle continue when the scope closes, not at some later tick.
  napi_ref resource_ = nullptr;
  napi_async_context async_context_ = nullptr;
  bool wait_any_ = false;
  std::mutex mutex_;
  std::condition_variable work_;      // the pool's threads wait for sleeps
  std::condition_variable released_;  // a pool thread let go of a sleep
  std::vector<SetSleeper *> sets_;
  std::vector<Blocker *> blockers_;
  std::deque<Sleep *> queue_;  // sleeps waiting for a pool thread
  size_t idle_ = 0;              // pool threads waiting for sleeps
  std::vector<Sleep *> ended_;  // for the JS thread
  bool signalled_ = false;        // the JS thread was called for ended_
  int refed_ = 0;                 // pending sleeps that keep the loop alive
  bool stopping_ = false;
};

struct AddonData {
  Napi::FunctionReference segment_class;
  Hub *hub = nullptr;  // made by the first asynchronous wait
  napi_env env = nullptr;
  napi_async_cleanup_hook_handle teardown = nullptr;
};

// The environment's hub, made when first needed (the first asynchronous wait).
Hub *EnvironmentHub(Napi::Env env) {
  AddonData *data = env.GetInstanceData<AddonData>();
  if (data->hub == nullptr) data->hub = new Hub(env);
  return data->hub;
}

class Segment : public Napi::ObjectWrap<Segment> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Segment",
                       {
                           InstanceMethod<&Segment::Buffer>("buffer"),
                           InstanceMethod<&Segment::Ids>("ids"),
                           InstanceMethod<&Segment::ClaimConsumer>("claimConsumer"),
                           InstanceMethod<&Segment::ClaimProducer>("claimProducer"),
                           InstanceMethod<&Segment::RecoverTail>("recoverTail"),
                           InstanceMethod<&Segment::ConsumerGone>("consumerGone"),
                           InstanceMethod<&Segment::ClaimantAlive>("claimantAlive"),
                           InstanceMethod<&Segment::ClaimMarker>("claimMarker"),
                           InstanceMethod<&Segment::InUse>("inUse"),
                           InstanceMethod<&Segment::Stats>("stats"),
                           InstanceMethod<&Segment::Wake>("wake"),
                           InstanceMethod<&Segment::WaitSync>("waitSync"),
                           InstanceMethod<&Segment::WaitAsync>("waitAsync"),
                           InstanceMethod<&Segment::CancelWait>("cancelWait"),
                           InstanceMethod<&Segment::SetRef>("setRef"),
                           InstanceMethod<&Segment::End>("end"),
                           InstanceMethod<&Segment::Close>("close"),
                       });
  }

  Segment(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Segment>(info) {}
  ~Segment() { Unmap(); }

  // Called by the factories below once the C core has mapped the segment.
  void Adopt(const shmchan_segment_t &segment) {
    segment_ = segment;
    live_.insert(this);
  }

  // The JS thread is about to run a sleep's callback: a new sleep may start.
  void SleepEnded(Sleep *sleep) {
    if (sleeps_[sleep->which] == sleep) sleeps_[sleep->which] = nullptr;
  }

  // Environment teardown closes every segment still open.
  static void CloseAll() {
    while (!live_.empty()) (*live_.begin())->Unmap();
  }

 private:
  bool Mapped(Napi::Env env) {
    if (segment_.base != nullptr) return true;
    ThrowErrno(env, -EBADF, nullptr);
    return false;
  }

  Napi::Value Buffer(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    if (buffer_.IsEmpty()) {
      // The mapping outlives the ArrayBuffer's use: close() detaches it first.
      auto ab = Napi::ArrayBuffer::New(env, segment_.base, segment_.size, [](Napi::Env, void *) {});
      buffer_ = Napi::Persistent(ab);
    }
    return buffer_.Value();
  }

  // System V: what identifies the segment and its semaphore set once detached.
  Napi::Value Ids(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    Napi::Object out = Napi::Object::New(env);
    out.Set("key", segment_.key);
    out.Set("shmid", segment_.shmid);
    out.Set("semid", segment_.semid);
    return out;
  }

  Napi::Value ClaimConsumer(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    int rc = consumer_held_ ? segment_.consumer_slot : shmchan_claim_consumer(&segment_);
    if (rc < 0) return ThrowErrno(env, rc, nullptr);
    consumer_held_ = true;
    return Napi::Number::New(env, rc);  // MPMC, BROADCAST: the consumer slot; 0 otherwise
  }

  // -> the producer slot
  Napi::Value ClaimProducer(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    int rc = producer_slot_ >= 0 ? producer_slot_ : shmchan_claim_producer(&segment_);
    if (rc < 0) return ThrowErrno(env, rc, nullptr);
    producer_slot_ = rc;
    return Napi::Number::New(env, rc);
  }

  // -> the tail a new spsc producer starts from
  Napi::Value RecoverTail(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    int64_t tail = shmchan_recover_tail(&segment_);
    if (tail < 0) return ThrowErrno(env, static_cast<int>(tail), nullptr);
    return Napi::Number::New(env, static_cast<double>(tail));
  }

  Napi::Value ConsumerGone(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    return Napi::Boolean::New(env, shmchan_consumer_gone(&segment_) != 0);
  }

  // -> this handle's claim marker (after claimProducer)
  Napi::Value ClaimMarker(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    if (producer_slot_ < 0) return ThrowErrno(env, -EINVAL, nullptr);
    return Napi::Number::New(env, static_cast<int32_t>(shmchan_claim_marker(&segment_)));
  }

  // -> whether another handle (in any process) has the channel open: it is not stale
  Napi::Value InUse(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    return Napi::Boolean::New(env, shmchan_segment_in_use(&segment_) != 0);
  }

  // (slot, generation) -> whether that producer slot is held by a live handle in that generation
  Napi::Value ClaimantAlive(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    return Napi::Boolean::New(env, shmchan_claimant_alive(&segment_, info[0].As<Napi::Number>().Uint32Value(),
                                                          info[1].As<Napi::Number>().Uint32Value()) != 0);
  }

  Napi::Value Stats(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    shmchan_stats_t s;
    shmchan_segment_stats(&segment_, &s);
    Napi::Object out = Napi::Object::New(env);
    out.Set("capacity", s.capacity);
    out.Set("used", s.used);
    out.Set("messagesSent", static_cast<double>(s.messages_sent));
    out.Set("messagesReceived", static_cast<double>(s.messages_received));
    out.Set("bytesSent", static_cast<double>(s.bytes_sent));
    out.Set("bytesReceived", static_cast<double>(s.bytes_received));
    out.Set("producers", s.producers);
    out.Set("consumers", s.consumers);
    out.Set("consumerPid", s.consumer_pid);
    out.Set("creatorPid", s.creator_pid);
    out.Set("ended", s.ended != 0);
    return out;
  }

  Napi::Value Wake(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    shmchan_wake_armed(&segment_, info[0].As<Napi::Number>().Int32Value());
    return env.Undefined();
  }

  // (which, expected sequence, timeout ms) -> the sleep's outcome (WaitOutcome); blocks this thread.
  Napi::Value WaitSync(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    int rc = shmchan_wait(&segment_, info[0].As<Napi::Number>().Int32Value(),
                          info[1].As<Napi::Number>().Uint32Value(), info[2].As<Napi::Number>().Int32Value());
    return WaitOutcome(env, rc);
  }

  // (which, expected sequence, timeout ms, callback(outcome)): the sleep runs on
  // one of the environment's waiter threads (Hub); the callback runs on the JS thread.
  Napi::Value WaitAsync(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    int which = Line(info);
    if (sleeps_[which] != nullptr) return ThrowErrno(env, -EBUSY, nullptr);  // the TypeScript layer never does that
    int timeout_ms = info[2].As<Napi::Number>().Int32Value();
    Sleep *sleep = new Sleep();
    sleep->segment = &segment_;
    sleep->which = which;
    sleep->expected = info[1].As<Napi::Number>().Uint32Value();
    sleep->deadline_ns = timeout_ms < 0 ? INT64_MAX : MonotonicNs() + static_cast<int64_t>(timeout_ms) * 1000000;
    sleep->refed = refed_;  // a pending wait keeps the event loop alive, unless the handle was unref()'d
    sleep->owner = this;
    sleep->callback = Napi::Persistent(info[3].As<Napi::Function>());
    int rc = HubOf(env)->Add(env, sleep);
    if (rc != 0) {
      delete sleep;
      return ThrowErrno(env, rc, "pthread_create");
    }
    sleeps_[which] = sleep;
    return env.Undefined();
  }

  // (refed): whether pending and later waits keep the event loop alive
  Napi::Value SetRef(const Napi::CallbackInfo &info) {
    refed_ = info[0].As<Napi::Boolean>().Value();
    for (Sleep *sleep : sleeps_)
      if (sleep != nullptr) HubOf(info.Env())->SetRef(info.Env(), sleep, refed_);
    return info.Env().Undefined();
  }

  Napi::Value CancelWait(const Napi::CallbackInfo &info) {
    Sleep *sleep = sleeps_[Line(info)];
    if (sleep != nullptr) HubOf(info.Env())->Cancel(sleep);
    return info.Env().Undefined();
  }

  Hub *HubOf(Napi::Env env) {
    if (hub_ == nullptr) hub_ = EnvironmentHub(env);
    return hub_;
  }

  static int Line(const Napi::CallbackInfo &info) {
    return info[0].As<Napi::Number>().Int32Value() == SHMCHAN_WAIT_DATA ? SHMCHAN_WAIT_DATA : SHMCHAN_WAIT_SPACE;
  }

  Napi::Value End(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    shmchan_segment_end(&segment_);
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    if (!buffer_.IsEmpty()) {
      buffer_.Value().Detach();  // any stray typed array now reads as empty, not unmapped memory
      buffer_.Reset();
    }
    Unmap();
    return info.Env().Undefined();
  }

  void Unmap() {
    if (segment_.base == nullptr) return;
    for (Sleep *&sleep : sleeps_) {
      if (sleep == nullptr) continue;
      hub_->Detach(sleep);  // returns once no waiter thread uses the mapping
      sleep->owner = nullptr;
      sleep = nullptr;
    }
    if (consumer_held_) shmchan_release_consumer(&segment_);
    if (producer_slot_ >= 0) shmchan_release_producer(&segment_);
    consumer_held_ = false;
    producer_slot_ = -1;
    shmchan_segment_unmap(&segment_);
    live_.erase(this);
  }

  shmchan_segment_t segment_ = {};
  Napi::Reference<Napi::ArrayBuffer> buffer_;
  Sleep *sleeps_[2] = {nullptr, nullptr};  // pending asynchronous sleeps, by wait line
  Hub *hub_ = nullptr;                      // the environment's, once this segment slept
  bool consumer_held_ = false;
  int producer_slot_ = -1;
  bool refed_ = true;
  static thread_local std::unordered_set<Segment *> live_;
};

thread_local std::unordered_set<Segment *> Segment::live_;

void Hub::Deliver(napi_env env) {
  Napi::HandleScope outer(env);
  napi_value resource;
  napi_get_reference_value(env, resource_, &resource);
  napi_callback_scope opened;
  napi_open_callback_scope(env, resource, async_context_, &opened);
  Napi::CallbackScope scope(env, opened);  // closes it
  std::vector<Sleep *> ended;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ended.swap(ended_);
    signalled_ = false;
  }
  for (size_t i = 0; i < ended.size(); i++) {
    Sleep *sleep = ended[i];
    if (sleep->owner != nullptr) sleep->owner->SleepEnded(sleep);
    if (sleep->refed) {
      std::lock_guard<std::mutex> lock(mutex_);
      Refer(Napi::Env(env), -1);
    }
    Napi::HandleScope handles(env);
    Napi::FunctionReference callback = std::move(sleep->callback);
    napi_value outcome = WaitOutcome(env, sleep->rc);
    delete sleep;
    napi_call_function(env, Napi::Env(env).Undefined(), callback.Value(), 1, &outcome, nullptr);
    bool thrown = false;
    napi_is_exception_pending(env, &thrown);
    if (thrown) {
      // What a callback threw is an uncaughtException, as from any callback of
      // Node's own; the other callbacks still run.
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
  }
}

Napi::Value Wrap(Napi::Env env, const shmchan_segment_t &segment) {
  Napi::Object object = env.GetInstanceData<AddonData>()->segment_class.New({});
  Segment::Unwrap(object)->Adopt(segment);
  return object;
}

std::string NameArg(const Napi::CallbackInfo &info) { return info[0].As<Napi::String>().Utf8Value(); }

uint32_t Field(Napi::Object options, const char *key) { return options.Get(key).As<Napi::Number>().Uint32Value(); }

shmchan_segment_options_t CreateOptions(Napi::Object o) {
  return {Field(o, "capacity"),    Field(o, "mode"),         Field(o, "maxMessageSize"), Field(o, "codec"),
          Field(o, "permissions"), Field(o, "maxConsumers"), Field(o, "overflow")};
}

// (name, { capacity, mode, maxMessageSize, codec, permissions }) -> Segment
Napi::Value CreatePosix(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  shmchan_segment_options_t options = CreateOptions(info[1].As<Napi::Object>());
  shmchan_segment_t segment;
  int rc = shmchan_segment_create_posix(&segment, NameArg(info).c_str(), &options);
  if (rc != 0) return ThrowErrno(env, rc, segment.syscall);
  return Wrap(env, segment);
}

// (name, timeout ms, inspect) -> Segment; inspect: see shmchan_segment_open_posix
Napi::Value OpenPosix(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  shmchan_segment_t segment;
  int rc = shmchan_segment_open_posix(&segment, NameArg(info).c_str(), info[1].As<Napi::Number>().Int32Value(), info[2].ToBoolean().Value());
  if (rc != 0) return ThrowErrno(env, rc, segment.syscall);
  return Wrap(env, segment);
}

// The answer of a stale channel's removal: the number of unread messages it held.
// Throws EBUSY (a live handle has it open), ENOTEMPTY (unread messages, not
// forced: the error's `unread` says how many), ENOENT, EPROTONOSUPPORT...
Napi::Value StaleRemoved(Napi::Env env, int rc, uint64_t unread) {
  if (rc == -ENOTEMPTY) {
    Napi::Error error = ErrnoError(env, rc, nullptr);
    error.Set("unread", Napi::Number::New(env, static_cast<double>(unread)));
    error.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (rc != 0) return ThrowErrno(env, rc, nullptr);
  return Napi::Number::New(env, static_cast<double>(unread));
}

// (name, force) -> see StaleRemoved
Napi::Value RemoveStalePosix(const Napi::CallbackInfo &info) {
  uint64_t unread = 0;
  int rc = shmchan_segment_remove_stale_posix(NameArg(info).c_str(), info[1].As<Napi::Boolean>().Value(), &unread);
  return StaleRemoved(info.Env(), rc, unread);
}

Napi::Value UnlinkPosix(const Napi::CallbackInfo &info) {
  int rc = shmchan_segment_unlink_posix(NameArg(info).c_str());
  if (rc != 0) return ThrowErrno(info.Env(), rc, "shm_unlink");
  return info.Env().Undefined();
}

uint32_t KeyArg(const Napi::CallbackInfo &info, size_t index) { return info[index].As<Napi::Number>().Uint32Value(); }

// (name, key, { capacity, mode, maxMessageSize, codec, permissions }) -> Segment
Napi::Value CreateSysv(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  shmchan_segment_options_t options = CreateOptions(info[2].As<Napi::Object>());
  shmchan_segment_t segment;
  int rc = shmchan_segment_create_sysv(&segment, NameArg(info).c_str(), KeyArg(info, 1), &options);
  if (rc != 0) return ThrowErrno(env, rc, segment.syscall);
  return Wrap(env, segment);
}

// (name, key, force) -> see StaleRemoved
Napi::Value RemoveStaleSysv(const Napi::CallbackInfo &info) {
  uint64_t unread = 0;
  int rc = shmchan_segment_remove_stale_sysv(NameArg(info).c_str(), KeyArg(info, 1), info[2].As<Napi::Boolean>().Value(), &unread);
  return StaleRemoved(info.Env(), rc, unread);
}

// (name, key, timeout ms, inspect) -> Segment
Napi::Value OpenSysv(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  shmchan_segment_t segment;
  int rc = shmchan_segment_open_sysv(&segment, NameArg(info).c_str(), KeyArg(info, 1), info[2].As<Napi::Number>().Int32Value(), info[3].ToBoolean().Value());
  if (rc != 0) return ThrowErrno(env, rc, segment.syscall);
  return Wrap(env, segment);
}

// (name, key): ENOENT, EEXIST (the key holds another channel), EPROTONOSUPPORT
// (it holds something that is not a channel), or the failure of shmctl.
Napi::Value UnlinkSysv(const Napi::CallbackInfo &info) {
  int rc = shmchan_segment_unlink_sysv(NameArg(info).c_str(), KeyArg(info, 1));
  if (rc != 0) return ThrowErrno(info.Env(), rc, "shmctl");
  return info.Env().Undefined();
}

// (shmid, semid): removes a channel by the ids of its creator's handle.
Napi::Value RemoveSysv(const Napi::CallbackInfo &info) {
  shmchan_sysv_remove_ids(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// (key) -> the name of the channel holding it. EAGAIN: still being initialised;
// EPROTONOSUPPORT: not a shmchan channel.
Napi::Value SysvHolder(const Napi::CallbackInfo &info) {
  char name[SHMCHAN_NAME_MAX + 1];
  int rc = shmchan_sysv_holder(KeyArg(info, 0), name);
  if (rc != 0) return ThrowErrno(info.Env(), rc, nullptr);
  return Napi::String::New(info.Env(), name);
}

Napi::Value SysvKeyOfName(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), shmchan_sysv_key_of_name(NameArg(info).c_str()));
}

// (path, projectId) -> the key as an unsigned number
Napi::Value Ftok(const Napi::CallbackInfo &info) {
  key_t key = ftok(NameArg(info).c_str(), info[1].As<Napi::Number>().Int32Value());
  if (key == -1) return ThrowErrno(info.Env(), -errno, "ftok");
  return Napi::Number::New(info.Env(), static_cast<uint32_t>(key));
}

// (name) -> whether it is a valid channel name
Napi::Value ValidName(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), shmchan_check_name(NameArg(info).c_str()) == 0);
}

Napi::Value MaxMessageLimit(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), shmchan_max_message_limit(info[0].As<Napi::Number>().Uint32Value()));
}

void Teardown(napi_async_cleanup_hook_handle, void *arg) {
  auto *data = static_cast<AddonData *>(arg);
  Segment::CloseAll();
  auto finish = [](void *arg) {
    auto *data = static_cast<AddonData *>(arg);
    delete data->hub;
    data->hub = nullptr;
    napi_remove_async_cleanup_hook(data->teardown);
  };
  if (data->hub == nullptr) return finish(data);
  data->hub->Stop(data->env, finish, data);
}

// () -> how this environment's asynchronous sleeps on POSIX segments are carried out
Napi::Value WaitMechanism(const Napi::CallbackInfo &info) {
  return Napi::String::New(info.Env(), EnvironmentHub(info.Env())->Mechanism());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // A segment truncated by another process must not kill this one (guard.c).
  shmchan_guard_install();
  auto *data = new AddonData();
  data->segment_class = Napi::Persistent(Segment::Define(env));
  env.SetInstanceData(data);
  // Environment teardown (process exit, worker termination): segments close
  // first, so that no waiter thread sleeps on a mapping that goes away, then the
  // hub stops. Asynchronous, because the hub's handle on the event loop closes
  // only on the loop's next turn (a worker's loop must have none left open).
  data->env = env;
  napi_add_async_cleanup_hook(env, Teardown, data, &data->teardown);
  exports.Set("createPosix", Napi::Function::New<CreatePosix>(env));
  exports.Set("openPosix", Napi::Function::New<OpenPosix>(env));
  exports.Set("unlinkPosix", Napi::Function::New<UnlinkPosix>(env));
  exports.Set("removeStalePosix", Napi::Function::New<RemoveStalePosix>(env));
  exports.Set("createSysv", Napi::Function::New<CreateSysv>(env));
  exports.Set("openSysv", Napi::Function::New<OpenSysv>(env));
  exports.Set("unlinkSysv", Napi::Function::New<UnlinkSysv>(env));
  exports.Set("removeSysv", Napi::Function::New<RemoveSysv>(env));
  exports.Set("removeStaleSysv", Napi::Function::New<RemoveStaleSysv>(env));
  exports.Set("sysvHolder", Napi::Function::New<SysvHolder>(env));
  exports.Set("sysvKeyOfName", Napi::Function::New<SysvKeyOfName>(env));
  exports.Set("ftok", Napi::Function::New<Ftok>(env));
  exports.Set("validName", Napi::Function::New<ValidName>(env));
  exports.Set("maxMessageLimit", Napi::Function::New<MaxMessageLimit>(env));
  exports.Set("waitMechanism", Napi::Function::New<WaitMechanism>(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(shmchan, Init)
