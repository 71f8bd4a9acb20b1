// Python bindings of the CUDA module. Kernels take raw device pointers, sizes and a
// cudaStream_t passed as an integer, all extracted in Python: no libtorch, no torch ABI.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <string>

#include "common/abi_export.h"

namespace py = pybind11;

namespace uwe {
void register_embed_cuda(py::module_& m);
void register_select_cuda(py::module_& m);
}  // namespace uwe

namespace {

py::dict build_info() {
  py::dict info;
  info["module"] = "_ext_cuda";
  info["compiler"] = UWE_BUILD_COMPILER;
  info["build_type"] = UWE_BUILD_TYPE;
  info["cuda_version"] = UWE_BUILD_CUDA_VERSION;
  info["cuda_archs"] = UWE_BUILD_CUDA_ARCHS;
  int runtime = 0;
  info["cuda_runtime_version"] = cudaRuntimeGetVersion(&runtime) == cudaSuccess ? runtime : 0;
  return info;
}

// (count, reason): reason says why no device is usable when count is 0.
py::tuple device_status() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return py::make_tuple(0, std::string("no usable CUDA device: ") + cudaGetErrorString(err));
  }
  if (count == 0) return py::make_tuple(0, std::string("no CUDA device present"));
  return py::make_tuple(count, std::string());
}

}  // namespace

PYBIND11_MODULE(_ext_cuda, m) {
  m.doc() = "uwe_kernels CUDA kernels (raw device pointers + stream handles)";
  m.def("build_info", &build_info, "CUDA version and architectures this module was built for.");
  m.def("device_status", &device_status, "(device count, reason when none is usable).");
  m.attr("ABI") = uwe::abi_table();
  uwe::register_embed_cuda(m);
  uwe::register_select_cuda(m);
}
