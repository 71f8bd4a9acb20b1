#!/usr/bin/env bash
# The whole GPU check as one bounded call on a bare GPU machine (python3 with torch, triton,
# nvcc, cmake, ninja and pybind11; no network): build with CUDA for this GPU's architecture,
# the cuda/triton test matrix, then the GPU benchmark rows (bench/device_check.py).
#
#   bench/device_check.sh [OUT_DIR] [--rehearse] [--skip-build]
#
# OUT_DIR defaults to $OUT, else bench/results/device. It receives 7 files: steps.tsv (each
# step's exit code and seconds), build.log, tests_cuda.log, tests_triton.log, bench.log,
# device_check.json and summary.md. Every step has its own time limit (SIGINT first, so pytest
# still prints its summary; UWE_CHECK_*_S override them), so a hang cannot eat the run:
# 270 + 55 + 65 + 90 s = 8 minutes in all.
# --rehearse (on a machine without a GPU): compile for sm_90 only, run the Triton tests under
# TRITON_INTERPRET=1 and the benchmark script on tiny CPU shapes. PYTHON picks the interpreter
# (default python3); in a rehearsal, point it at a virtual environment. --skip-build reuses the
# package installed by an earlier run (a second call on a machine still warm).
set -u
cd "$(dirname "$0")/.."

REHEARSE=0
SKIP_BUILD=0
OUT_DIR=""
for arg in "$@"; do
  case "$arg" in
    --rehearse) REHEARSE=1 ;;
    --skip-build) SKIP_BUILD=1 ;;
    *) OUT_DIR="$arg" ;;
  esac
done
OUT_DIR="${OUT_DIR:-${OUT:-bench/results/device}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
export PY="${PYTHON:-python3}"
BUILD_S="${UWE_CHECK_BUILD_S:-270}"
TESTS_CUDA_S="${UWE_CHECK_TESTS_CUDA_S:-55}"
TESTS_TRITON_S="${UWE_CHECK_TESTS_TRITON_S:-65}"
BENCH_S="${UWE_CHECK_BENCH_S:-90}"
STEPS="$OUT_DIR/steps.tsv"
printf 'step\trc\tseconds\n' >"$STEPS"

# step NAME LIMIT_S CMD...: runs CMD with a time limit, its output in NAME.log.
step() {
  local name="$1" limit="$2"
  shift 2
  local t0 rc
  t0=$(date +%s)
  echo "== $name (limit ${limit}s)"
  # timeout runs programs, not shell functions: the steps' functions and arrays travel in bash -c.
  local prelude
  prelude="$(declare -f build tests)"
  if declare -p TEST_FILES >/dev/null 2>&1; then prelude+=$'\n'"$(declare -p TEST_FILES)"; fi
  timeout -s INT -k 20 "$limit" bash -c "$prelude"$'\n''"$@"' step "$@" >"$OUT_DIR/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - t0))" >>"$STEPS"
  tail -n 5 "$OUT_DIR/$name.log"
  return $rc
}

# The GPU's architecture, e.g. 90 for compute capability 9.0 (sm_90 in a rehearsal).
if [ "$REHEARSE" = 1 ]; then
  ARCH=90
else
  ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
  if [ -z "$ARCH" ]; then
    ARCH=$("$PY" -c 'import torch; print("%d%d" % torch.cuda.get_device_capability())')
  fi
fi
export ARCH
echo "architecture: sm_$ARCH, output: $OUT_DIR"

# pip install first (the wheel users get); if this image's build tools cannot make a wheel,
# build the extensions in place instead and test the source tree.
build() {
  export UWE_KERNELS_CUDA=on UWE_KERNELS_CUDA_ARCHS="$ARCH" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)"
  nvcc --version | tail -n 1
  if "$PY" -m pip install -v --no-build-isolation --no-deps . ; then
    echo "installed: $(cd / && "$PY" -c 'import uwe_kernels; print(uwe_kernels.__file__)')"
  else
    echo "pip install failed: building in place"
    "$PY" setup.py build_ext --inplace
  fi
}
if [ "$SKIP_BUILD" = 0 ]; then
  step build "$BUILD_S" build
fi
if ! (cd / && "$PY" -c "import uwe_kernels" 2>/dev/null); then
  echo "no installed package: testing the source tree"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

# Tests: -P keeps the source tree off sys.path, so the installed package is tested (the tests'
# own helpers come from python_tests/, which pytest adds). cuda first: its kernels are built;
# triton's compile on first use.
# With pytest-xdist, 8 workers, and the Ctrl-C cases (SIGINT to the process) afterwards on their own.
tests() {
  # A test file whose optional dependency is missing there must not stop the others.
  local run=("$PY" -P -m pytest "${TEST_FILES[@]}" -q --maxfail=25 -p no:cacheprovider -o addopts="" -rs
    --continue-on-collection-errors)
  if "$PY" -c "import xdist" 2>/dev/null; then
    "${run[@]}" -n 8 -k "($1) and not ctrl_c and not interrupt" && "${run[@]}" -k "($1) and (ctrl_c or interrupt)"
  else
    "${run[@]}" --durations=10 -k "$1"
  fi
}
if [ "$REHEARSE" = 1 ]; then
  export TRITON_INTERPRET=1
  TEST_FILES=(python_tests/test_selection.py python_tests/test_device_draw.py)
  step tests_triton "$TESTS_TRITON_S" tests "triton and not ctrl_c and not interrupt"
else
  TEST_FILES=(python_tests)
  step tests_cuda "$TESTS_CUDA_S" tests "cuda or gpu"
  step tests_triton "$TESTS_TRITON_S" tests "triton"
fi

# Benchmark rows: device_check.py stops starting rows 15 s before its own limit.
BENCH_ARGS=("$OUT_DIR" --deadline "$((BENCH_S - 15))")
[ "$REHEARSE" = 1 ] && BENCH_ARGS+=(--rehearse)
step bench "$BENCH_S" "$PY" -P bench/device_check.py "${BENCH_ARGS[@]}"

"$PY" -P bench/device_check_summary.py "$OUT_DIR" >"$OUT_DIR/summary.md" 2>&1
cat "$OUT_DIR/summary.md"
