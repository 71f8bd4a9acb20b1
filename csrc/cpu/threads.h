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
// and with one thread and keeps the faster, re-checking now and then (the load changes).
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
inline std::atomic<int> g_last_verdict{0};  // TeamTuner's last decision: full << 20 | best << 8 | quiet

inline void on_fork_child() {
  g_forked_child.store(true, std::memory_order_relaxed);
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
// A call starts from the previous call's verdict (the load outlives a call), re-checking it
// within kResumeQuiet windows.
class TeamTuner {
 public:
  explicit TeamTuner(int full) : full_(std::max(1, full)), current_(full_), best_(full_) {
    const int last = g_last_verdict.load(std::memory_order_relaxed);
    if (full_ > 1 && last != 0 && (last >> 20) == full_) {
      best_ = current_ = (last >> 8) & 0xFFF;
      quiet_ = until_trial_ = std::min(last & 0xFF, kResumeQuiet);
    }
  }

  int threads() const { return current_; }

  // After each pick, with that pick's work (the clock starts at the first call).
  void pick_done(double work) {
    if (full_ == 1) return;
    const auto now = Clock::now();
    if (!started_) {
      started_ = true;
      window_start_ = now;
      return;
    }
    work_ += work;
    const double seconds = std::chrono::duration<double>(now - window_start_).count();
    if (seconds < kWindowSeconds) return;
    record(seconds, std::max(work_, 1.0));
    work_ = 0.0;
    window_start_ = Clock::now();
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr double kWindowSeconds = 0.03;
  static constexpr double kMargin = 0.9;
  static constexpr int kBackoff = 4;
  static constexpr int kMaxQuiet = 64;
  static constexpr int kResumeQuiet = 16;

  void record(double seconds, double work) {
    if (current_ == best_) {
      best_seconds_ += seconds;
      best_work_ += work;
      if (--until_trial_ <= 0) current_ = best_ == full_ ? 1 : full_;
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
    if (full_ < 2048) g_last_verdict.store((full_ << 20) | (best_ << 8) | quiet_, std::memory_order_relaxed);
  }

  int full_;
  int current_;
  int best_;
  bool started_ = false;
  double work_ = 0.0;
  Clock::time_point window_start_{};
  double best_seconds_ = 0.0, best_work_ = 0.0;  // the best size's windows since the last trial
  int quiet_ = 1;
  int until_trial_ = 1;
};

}  // namespace cpu
}  // namespace uwe
