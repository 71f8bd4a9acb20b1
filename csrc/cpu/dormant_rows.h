// Dormant rows of k-center greedy (cpu/pruned_engine.h): rows known to lie closer than a
// threshold T to some centre, so that no pick can need them while the picks' D stays at or
// above T. Each keeps its bound, a full distance to that centre computed as brute force
// computes it (so brute force's D of the row is at most the bound, bit for bit). A max-heap on
// the bounds hands back the rows a lower threshold wakes, in O(log n) each; rows that fall
// asleep inside a parallel pass are queued per thread and join the heap after it (settle).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace uwe {
namespace pruned {

template <class Acc>
class DormantRows {
 public:
  // Rows may sleep from now on, below threshold t > 0; a pass of up to `threads` threads queues.
  void start(int64_t n, int threads, Acc t) {
    flag_.assign(static_cast<size_t>(n), 0);
    upper_.assign(static_cast<size_t>(n), Acc(0));
    queued_.assign(static_cast<size_t>(threads), {});
    threshold_ = t;
    on_ = true;
  }

  bool on() const { return on_; }
  Acc threshold() const { return on_ ? threshold_ : Acc(0); }
  bool is(int64_t i) const { return on_ && flag_[i] != 0; }
  Acc upper(int64_t i) const { return upper_[i]; }
  int64_t count() const { return count_; }  // settled and queued alike

  // Row i sleeps with bound u < threshold(); thread `tid` of a pass, each row from one thread.
  void sleep(int64_t i, Acc u, int tid) {
    flag_[i] = 1;
    upper_[i] = u;
    queued_[static_cast<size_t>(tid)].push_back(i);
  }

  // The queued rows join the heap; returns how many.
  int64_t settle() {
    const size_t before = heap_.size();
    for (std::vector<int64_t>& q : queued_) {
      for (const int64_t i : q) heap_.emplace_back(upper_[i], i);
      q.clear();
    }
    const size_t added = heap_.size() - before;
    if (added > before / 8) {
      std::make_heap(heap_.begin(), heap_.end());
    } else {
      for (size_t k = before + 1; k <= heap_.size(); ++k) std::push_heap(heap_.begin(), heap_.begin() + k);
    }
    count_ += static_cast<int64_t>(added);
    return static_cast<int64_t>(added);
  }

  // The threshold drops to min(t, the largest bound), so that a round always wakes a row; the
  // rows whose bound reaches it wake (appended to `woken`).
  void wake(Acc t, std::vector<int64_t>& woken) {
    settle();
    if (heap_.empty()) return;
    threshold_ = std::min(t, heap_.front().first);
    while (!heap_.empty() && heap_.front().first >= threshold_) {
      std::pop_heap(heap_.begin(), heap_.end());
      const int64_t i = heap_.back().second;
      heap_.pop_back();
      flag_[i] = 0;
      woken.push_back(i);
      --count_;
    }
  }

 private:
  bool on_ = false;
  Acc threshold_ = 0;
  int64_t count_ = 0;
  std::vector<uint8_t> flag_;
  std::vector<Acc> upper_;
  std::vector<std::pair<Acc, int64_t>> heap_;  // (bound, row), largest bound on top
  std::vector<std::vector<int64_t>> queued_;
};

}  // namespace pruned
}  // namespace uwe
