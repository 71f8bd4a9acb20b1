// Host side of a long selection (CPU and CUDA drivers alike): between passes, with the GIL
// re-acquired, raise the exception of a pending signal (Ctrl-C -> KeyboardInterrupt) and report
// progress, about every 100 ms. Never called inside a parallel region or a kernel.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <cstdint>

namespace uwe {

class Checkpoint {
 public:
  // `progress`: a callable taking the number of picks done, or None. Borrowed: the caller's
  // argument keeps it alive, and nothing here touches a reference count without the GIL.
  explicit Checkpoint(pybind11::handle progress) : progress_(progress), last_(Clock::now()) {}

  void poll(int64_t done) {
    const auto now = Clock::now();
    if (now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    pybind11::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw pybind11::error_already_set();
    if (!progress_.is_none()) progress_(done);
  }

  // The last report, whatever the time since the previous one (call with the GIL held).
  void finish(int64_t done) {
    if (!progress_.is_none()) progress_(done);
  }

 private:
  using Clock = std::chrono::steady_clock;
  pybind11::handle progress_;
  Clock::time_point last_;
};

}  // namespace uwe
