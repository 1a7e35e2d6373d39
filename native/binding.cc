// The only glue between Node and the C core: argument unpacking, a JavaScript
// object per mapped segment, and waiter threads that sleep on the segment's
// futex or semaphores so that JavaScript never blocks its event loop. No ring logic lives here;
// the data path runs in TypeScript over the ArrayBuffer this file hands out.
#include <napi.h>
#include <uv.h>

#include <pthread.h>
#include <sys/ipc.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <unordered_set>

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

// Sleeps on one wait line of one segment on its own thread, one request at a
// time, and reports each result to JavaScript through a thread-safe function.
class Waiter {
 public:
  // A waiter whose thread runs, or nullptr and *rc the negative errno of
  // pthread_create (EAGAIN at the process's or user's thread limit). The thread
  // is made with pthread_create, not std::thread: the addon is built without C++
  // exceptions, so std::thread's failure would abort the process.
  static Waiter *Launch(shmchan_segment_t *segment, int which, int *rc) {
    Waiter *waiter = new Waiter(segment, which);
    int err = pthread_create(&waiter->thread_, nullptr, Main, waiter);
    if (err == 0) {
      waiter->started_ = true;
      return waiter;
    }
    delete waiter;
    *rc = -err;
    return nullptr;
  }

  ~Waiter() {
    if (!started_) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      cancelled_ = true;
    }
    ready_.notify_one();
    shmchan_wake(segment_, which_);
    pthread_join(thread_, nullptr);
  }

  // False when a request is already pending (the TypeScript layer never does that).
  bool Start(Napi::ThreadSafeFunction callback, uint32_t expected, int timeout_ms) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pending_) return false;
    pending_ = true;
    cancelled_ = false;
    callback_ = callback;
    expected_ = expected;
    timeout_ms_ = timeout_ms;
    ready_.notify_one();
    return true;
  }

  // On the JS thread: whether the pending wait, if any, keeps the event loop alive.
  void SetRef(Napi::Env env, bool refed) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!pending_) return;
    if (refed) callback_.Ref(env);
    else callback_.Unref(env);
  }

  void Cancel() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!pending_) return;
      cancelled_ = true;
    }
    // Moving the sequence makes a sleeper return (and a not-yet-sleeping one not
    // sleep). Other processes' sleepers wake too, look at the ring and sleep again.
    shmchan_wake(segment_, which_);
  }

 private:
  Waiter(shmchan_segment_t *segment, int which) : segment_(segment), which_(which) {}

  static void *Main(void *self) {
    static_cast<Waiter *>(self)->Run();
    return nullptr;
  }

  void Run() {
    for (;;) {
      uint32_t expected;
      int timeout_ms;
      bool cancelled;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return pending_ || stopping_; });
        if (stopping_ && !pending_) return;
        expected = expected_;
        timeout_ms = timeout_ms_;
        cancelled = cancelled_;
      }
      int rc = cancelled ? -ECANCELED : shmchan_wait(segment_, which_, expected, timeout_ms);
      Napi::ThreadSafeFunction callback;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (cancelled_) rc = -ECANCELED;
        callback = callback_;
        pending_ = false;
      }
      callback.NonBlockingCall([rc](Napi::Env env, Napi::Function fn) {
        // While Node tears the environment down (process exit with a wait
        // pending), JavaScript cannot run: the call fails, and that is fine.
        if (env == nullptr || fn.IsEmpty()) return;
        napi_value outcome = WaitOutcome(env, rc);
        napi_call_function(env, env.Undefined(), fn, 1, &outcome, nullptr);
      });
      callback.Release();
    }
  }

  shmchan_segment_t *segment_;
  int which_;
  std::mutex mutex_;
  std::condition_variable ready_;
  bool pending_ = false, cancelled_ = false, stopping_ = false;
  Napi::ThreadSafeFunction callback_;
  uint32_t expected_ = 0;
  int timeout_ms_ = 0;
  pthread_t thread_;
  bool started_ = false;  // whether thread_ runs, to be joined
};

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

  // Environment teardown (process exit, worker termination) must stop the waiter
  // threads before the mapping goes away.
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
    shmchan_wake(&segment_, info[0].As<Napi::Number>().Int32Value());
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

  // (which, expected sequence, timeout ms, callback(outcome)): the wait runs on this
  // segment's waiter thread for that line; the callback runs on the JS thread.
  Napi::Value WaitAsync(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Mapped(env)) return env.Undefined();
    int which = info[0].As<Napi::Number>().Int32Value() == SHMCHAN_WAIT_DATA ? SHMCHAN_WAIT_DATA : SHMCHAN_WAIT_SPACE;
    if (waiters_[which] == nullptr) {
      int rc = 0;
      waiters_[which] = Waiter::Launch(&segment_, which, &rc);
      if (waiters_[which] == nullptr) return ThrowErrno(env, rc, "pthread_create");
    }
    auto callback = Napi::ThreadSafeFunction::New(env, info[3].As<Napi::Function>(), "shmchan.wait", 0, 1);
    // a pending wait keeps the event loop alive, unless the handle was unref()'d
    if (!refed_) callback.Unref(env);
    if (!waiters_[which]->Start(callback, info[1].As<Napi::Number>().Uint32Value(),
                                info[2].As<Napi::Number>().Int32Value())) {
      callback.Release();
      return ThrowErrno(env, -EBUSY, nullptr);
    }
    return env.Undefined();
  }

  // (refed): whether pending and later waits keep the event loop alive
  Napi::Value SetRef(const Napi::CallbackInfo &info) {
    refed_ = info[0].As<Napi::Boolean>().Value();
    for (Waiter *waiter : waiters_)
      if (waiter != nullptr) waiter->SetRef(info.Env(), refed_);
    return info.Env().Undefined();
  }

  Napi::Value CancelWait(const Napi::CallbackInfo &info) {
    int which = info[0].As<Napi::Number>().Int32Value() == SHMCHAN_WAIT_DATA ? SHMCHAN_WAIT_DATA : SHMCHAN_WAIT_SPACE;
    if (waiters_[which] != nullptr) waiters_[which]->Cancel();
    return info.Env().Undefined();
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
    for (Waiter *&waiter : waiters_) {
      delete waiter;  // joins its thread, which may be asleep on the mapping
      waiter = nullptr;
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
  Waiter *waiters_[2] = {nullptr, nullptr};
  bool consumer_held_ = false;
  int producer_slot_ = -1;
  bool refed_ = true;
  static thread_local std::unordered_set<Segment *> live_;
};

thread_local std::unordered_set<Segment *> Segment::live_;

struct AddonData {
  Napi::FunctionReference segment_class;
};

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

// (name, timeout ms) -> Segment
Napi::Value OpenPosix(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  shmchan_segment_t segment;
  int rc = shmchan_segment_open_posix(&segment, NameArg(info).c_str(), info[1].As<Napi::Number>().Int32Value());
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

// (name, key, timeout ms) -> Segment
Napi::Value OpenSysv(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  shmchan_segment_t segment;
  int rc = shmchan_segment_open_sysv(&segment, NameArg(info).c_str(), KeyArg(info, 1), info[2].As<Napi::Number>().Int32Value());
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // A segment truncated by another process must not kill this one (guard.c).
  shmchan_guard_install();
  auto *data = new AddonData();
  data->segment_class = Napi::Persistent(Segment::Define(env));
  env.SetInstanceData(data);
  env.AddCleanupHook([] { Segment::CloseAll(); });
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
  return exports;
}

}  // namespace

NODE_API_MODULE(shmchan, Init)
