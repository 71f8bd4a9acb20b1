#!/usr/bin/env bash
# The whole GPU check as one bounded call on a bare GPU machine (python3 with torch, triton,
# nvcc, cmake, ninja and pybind11; no network): build with CUDA for this GPU's architecture,
# the cuda/triton test matrix, then the GPU benchmark rows (bench/device_check.py).
#
#   bench/device_check.sh [OUT_DIR] [--rehearse]
#
# OUT_DIR defaults to $OUT, else bench/results/device. It receives at most 6 files:
# steps.tsv (each step's exit code and seconds), build.log, tests.log, bench.log,
# device_check.json and summary.md. Every step has its own time limit (SIGINT first, so pytest
# still prints its summary), so a hang cannot eat the run: 8 minutes in all by default.
# --rehearse (on a machine without a GPU): compile for sm_90 only, run the Triton tests under
# TRITON_INTERPRET=1 and the benchmark script on tiny CPU shapes. PYTHON picks the interpreter
# (default python3); in a rehearsal, point it at a virtual environment.
set -u
cd "$(dirname "$0")/.."

REHEARSE=0
OUT_DIR=""
for arg in "$@"; do
  case "$arg" in
    --rehearse) REHEARSE=1 ;;
    *) OUT_DIR="$arg" ;;
  esac
done
OUT_DIR="${OUT_DIR:-${OUT:-bench/results/device}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
PY="${PYTHON:-python3}"
BUILD_S="${UWE_CHECK_BUILD_S:-200}"
TESTS_S="${UWE_CHECK_TESTS_S:-110}"
BENCH_S="${UWE_CHECK_BENCH_S:-150}"
STEPS="$OUT_DIR/steps.tsv"
printf 'step\trc\tseconds\n' >"$STEPS"

# step NAME LIMIT_S CMD...: runs CMD with a time limit, its output in NAME.log.
step() {
  local name="$1" limit="$2"
  shift 2
  local t0 rc
  t0=$(date +%s)
  echo "== $name (limit ${limit}s)"
  timeout -s INT -k 20 "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
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
echo "architecture: sm_$ARCH, output: $OUT_DIR"

# pip install first (the wheel users get); if this image's build tools cannot make a wheel,
# build the extensions in place instead and test the source tree.
build() {
  export UWE_KERNELS_CUDA=on UWE_KERNELS_CUDA_ARCHS="$ARCH" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)"
  nvcc --version | tail -n 1
  if "$PY" -m pip install --no-build-isolation --no-deps . ; then
    echo "installed: $(cd / && "$PY" -c 'import uwe_kernels; print(uwe_kernels.__file__)')"
  else
    echo "pip install failed: building in place"
    "$PY" setup.py build_ext --inplace
  fi
}
step build "$BUILD_S" build

# Tests: -P keeps the source tree off sys.path, so the installed package is tested (the tests'
# own helpers come from python_tests/, which pytest adds).
if [ "$REHEARSE" = 1 ]; then
  export TRITON_INTERPRET=1
  SELECT="triton and not ctrl_c"
  TESTS=(python_tests/test_selection.py python_tests/test_embeddings.py python_tests/test_certified_prefix.py)
else
  SELECT="cuda or triton or gpu"
  TESTS=(python_tests)
fi
step tests "$TESTS_S" "$PY" -P -m pytest "${TESTS[@]}" -q --maxfail=25 -p no:cacheprovider -k "$SELECT" \
  -o addopts="" --durations=15 -rs

# Benchmark rows: device_check.py stops starting rows 15 s before its own limit.
BENCH_ARGS=("$OUT_DIR" --deadline "$((BENCH_S - 15))")
[ "$REHEARSE" = 1 ] && BENCH_ARGS+=(--rehearse)
step bench "$BENCH_S" "$PY" -P bench/device_check.py "${BENCH_ARGS[@]}"

"$PY" -P bench/device_check_summary.py "$OUT_DIR" >"$OUT_DIR/summary.md" 2>&1
cat "$OUT_DIR/summary.md"
