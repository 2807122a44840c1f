#!/usr/bin/env bash
# Everything that needs a GPU, in one call on a lent machine (see DEVELOPERS.md, "Hardware"):
#   device run: bash benchmarks/gpu_session.sh      (carry .whl when pydantic etc. are missing there)
# Writes benchmarks/RESULTS.md (appended) and logs under $OUT.
set -o pipefail
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
# 1. the CUDA tests
timeout 240 python3 -m pytest -q tests/test_gpu.py 2>&1 | tee "$OUT/gpu-tests.log"
# 2. the step benchmark, every speed option, both families
timeout 300 python3 benchmarks/train_step.py --device cuda --steps 50 --warmup 10 --repeats 3 \
  --configs off,default,channels_last,bf16,compile,bf16+compile,bf16+channels_last+compile 2>&1 | tee "$OUT/bench.log"
cp benchmarks/RESULTS.md "$OUT/RESULTS.md"
