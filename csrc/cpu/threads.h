// How many threads a parallel region of the CPU kernels may use: the one threading policy of
// brute force, pruned selection and the embedding kernels.
//
// Requested size: set_threads(n) (uwe_kernels.set_num_threads) caps the team for every caller;
// omp_get_max_threads() of the calling thread caps it too, so OMP_NUM_THREADS and threadpoolctl
// (which calls omp_set_num_threads) limit it as they limit any OpenMP library.
// Fork: GNU libgomp's thread pool does not survive fork(); a child's first team would wait
// forever for threads that do not exist. A forked child therefore runs every region on one
// thread: a team of one never touches the inherited pool.
// Load: a team is only as fast as its slowest thread, and a thread that lost its core to
// another process stalls every barrier. TeamTuner times windows of picks with the full team
// and with one thread and keeps the faster, re-checking now and then (the load changes), its
// state carried from call to call.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

#include <pthread.h>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace uwe {
namespace cpu {

inline std::atomic<bool> g_forked_child{false};
inline std::atomic<int> g_thread_cap{0};  // 0: no cap of ours

// TeamTuner's state as the last call of each full team size left it, one word per slot (slot
// full % kTunerSlots; a collision of two sizes only costs the newer one a fresh start):
// full (12 bits, 0: empty) | best is one thread (1) | quiet (7) | windows until the next trial (7)
// | when, in milliseconds (37 bits, compared modulo 2^37). Plain atomics: no lock a fork could
// leave held.
inline constexpr int kTunerSlots = 16;
inline std::atomic<uint64_t> g_tuner_state[kTunerSlots] = {};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "TeamTuner's state must be lock-free (fork)");

inline void forget_team_verdicts() {
  for (auto& slot : g_tuner_state) slot.store(0, std::memory_order_relaxed);
}

inline void on_fork_child() {
  g_forked_child.store(true, std::memory_order_relaxed);
  forget_team_verdicts();  // the child's load is its own (and its teams are of one thread)
#ifdef _OPENMP
  omp_set_num_threads(1);  // for the forking thread's own ICV too (other OpenMP users of libgomp)
#endif
}

// Once, when the module loads.
inline void install_fork_handler() { pthread_atfork(nullptr, nullptr, &on_fork_child); }

inline bool forked_child() { return g_forked_child.load(std::memory_order_relaxed); }

// Threads a parallel region of this call may use (1 without OpenMP or in a forked child).
inline int team_threads() {
  if (forked_child()) return 1;
#ifdef _OPENMP
  const int cap = g_thread_cap.load(std::memory_order_relaxed);
  const int omp = omp_get_max_threads();
  return std::max(1, cap > 0 ? std::min(cap, omp) : omp);
#else
  return 1;
#endif
}

// uwe_kernels.set_num_threads(n): the cap for every thread, and the calling thread's OpenMP
// default (so raising it above OMP_NUM_THREADS works from that thread).
inline void set_threads(int n) {
  g_thread_cap.store(n, std::memory_order_relaxed);
#ifdef _OPENMP
  if (!forked_child()) omp_set_num_threads(n);
#endif
}

// Team size per pick for one selection call. Windows of picks (each about kWindowSeconds, at
// least one pick) run with the full team or with one thread. Time per unit of work (element
// reads, as the state reports them: picks of the pruned engine differ widely) is summed over
// the windows of the current size since the last trial; a trial window of the other size
// replaces it only when clearly faster (kMargin). Each confirmation multiplies the windows
// until the next trial by kBackoff (up to kMaxQuiet), so a quiet machine pays for a short
// trial window rarely, and a machine that gets busy (or quiet) is noticed within a few windows.
// A call starts where the previous call of the same full size left off (its verdict, backoff
// and countdown to the next trial: the load outlives a call, and a run of short calls is tuned
// like one long call); after a pause of more than kStaleSeconds the load may have changed, and
// the verdict is re-checked within kResumeQuiet windows.
// Its twin, one policy with the same constants: uwe_kernels/_threads.py's TeamTuner (numba).
class TeamTuner {
 public:
  explicit TeamTuner(int full) : TeamTuner(full, now_seconds()) {}

  // `now` in seconds on the clock pick_done is given (tests drive a fake one).
  TeamTuner(int full, double now) : full_(std::max(1, full)), current_(full_), best_(full_) {
    if (full_ == 1 || full_ >= kMaxStoredFull) return;
    const uint64_t state = slot().load(std::memory_order_relaxed);
    if (static_cast<int>(state & 0xFFF) != full_) return;
    best_ = current_ = (state >> 12) & 1 ? 1 : full_;
    quiet_ = static_cast<int>((state >> 13) & 0x7F);
    until_trial_ = static_cast<int>((state >> 20) & 0x7F);
    if (((millis(now) - (state >> 27)) & kMillisMask) > kStaleSeconds * 1000) {
      quiet_ = std::min(quiet_, kResumeQuiet);
      until_trial_ = std::min(until_trial_, quiet_);
    }
  }

  int threads() const { return current_; }

  // After each pick, with that pick's work (the clock starts at the first call).
  void pick_done(double work) { pick_done(work, now_seconds()); }

  void pick_done(double work, double now) {
    if (full_ == 1) return;
    if (!started_) {
      started_ = true;
      window_start_ = now;
      return;
    }
    work_ += work;
    if (now - window_start_ < kWindowSeconds) return;
    record(now - window_start_, std::max(work_, 1.0), now);
    work_ = 0.0;
    window_start_ = now;
  }

 private:
  static constexpr double kWindowSeconds = 0.03;
  static constexpr double kMargin = 0.9;
  static constexpr int kBackoff = 4;
  static constexpr int kMaxQuiet = 64;
  static constexpr int kResumeQuiet = 16;
  static constexpr int kStaleSeconds = 1;
  static constexpr int kMaxStoredFull = 4096;
  static constexpr uint64_t kMillisMask = (uint64_t{1} << 37) - 1;

  static double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  static uint64_t millis(double seconds) { return static_cast<uint64_t>(seconds * 1000.0) & kMillisMask; }
  std::atomic<uint64_t>& slot() const { return g_tuner_state[full_ % kTunerSlots]; }

  void record(double seconds, double work, double now) {
    if (current_ == best_) {
      best_seconds_ += seconds;
      best_work_ += work;
      if (--until_trial_ <= 0) current_ = best_ == full_ ? 1 : full_;
      save(now);
      return;
    }
    // A trial window of the other size just ended.
    if (seconds / work < kMargin * best_seconds_ / best_work_) {
      best_ = current_;
      quiet_ = 1;
    } else {
      quiet_ = std::min(quiet_ * kBackoff, kMaxQuiet);
    }
    current_ = best_;
    until_trial_ = quiet_;
    best_seconds_ = best_work_ = 0.0;
    save(now);
  }

  void save(double now) const {
    if (full_ >= kMaxStoredFull) return;
    const uint64_t state = static_cast<uint64_t>(full_) | uint64_t{best_ == 1} << 12 |
                           static_cast<uint64_t>(quiet_) << 13 |
                           static_cast<uint64_t>(std::max(until_trial_, 0)) << 20 | millis(now) << 27;
    slot().store(state, std::memory_order_relaxed);
  }

  int full_;
  int current_;
  int best_;
  bool started_ = false;
  double work_ = 0.0;
  double window_start_ = 0.0;
  double best_seconds_ = 0.0, best_work_ = 0.0;  // the best size's windows since the last trial
  int quiet_ = 1;
  int until_trial_ = 1;
};

}  // namespace cpu
}  // namespace uwe
