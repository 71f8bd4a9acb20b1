// Python bindings of the CPU module. Each kernel family registers its own
// functions (csrc/cpu/<family>_cpu.cpp), so families grow without touching this file.
#include <pybind11/pybind11.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/abi_export.h"
#include "cpu/threads.h"

namespace py = pybind11;

namespace uwe {
void register_embed_cpu(py::module_& m);
void register_select_cpu(py::module_& m);
void register_pruned_cpu(py::module_& m);
}  // namespace uwe

namespace {

int max_threads() { return uwe::cpu::team_threads(); }

py::dict build_info() {
  py::dict info;
  info["module"] = "_ext_cpu";
  info["compiler"] = UWE_BUILD_COMPILER;
  info["build_type"] = UWE_BUILD_TYPE;
  info["native"] = static_cast<bool>(UWE_BUILD_NATIVE);
#ifdef _OPENMP
  info["openmp"] = true;
  info["openmp_version"] = _OPENMP;
#else
  info["openmp"] = false;
  info["openmp_version"] = 0;
#endif
  info["max_threads"] = max_threads();
  info["cxx_standard"] = __cplusplus;
  return info;
}

}  // namespace

PYBIND11_MODULE(_ext_cpu, m) {
  m.doc() = "uwe_kernels CPU kernels (C++17, OpenMP when built with it)";
  m.def("build_info", &build_info, "Compiler, OpenMP and vectorisation settings of this build.");
  m.def("get_num_threads", &max_threads, "Threads an OpenMP region will use (1 without OpenMP).");
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
        uwe::cpu::set_threads(n);
      },
      py::arg("n"), "At most n threads in later calls (no effect without OpenMP or in a forked child).");
  uwe::cpu::install_fork_handler();
  // Internal, for tests of the team-size policy with a fake clock (not public API).
  py::class_<uwe::cpu::TeamTuner>(m, "_TeamTuner")
      .def(py::init<int, double>(), py::arg("full"), py::arg("now"))
      .def("threads", &uwe::cpu::TeamTuner::threads)
      .def("pick_done", py::overload_cast<double, double>(&uwe::cpu::TeamTuner::pick_done), py::arg("work"),
           py::arg("now"));
  m.def("_forget_team_verdicts", &uwe::cpu::forget_team_verdicts, "Internal: every TeamTuner starts afresh.");
  m.attr("ABI") = uwe::abi_table();
  uwe::register_embed_cpu(m);
  uwe::register_select_cpu(m);
  uwe::register_pruned_cpu(m);
}
