// select kernels of the CUDA module (filled in by the select kernel work).
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace uwe {
void register_select_cuda(py::module_& m) { (void)m; }
}  // namespace uwe
