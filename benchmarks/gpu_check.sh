#!/usr/bin/env bash
# One script for a GPU machine: under 6 minutes on one H100/H200.
#   1. pytest -m gpu (the engine grid with cupy and cuda-graph, sampled gradcheck/parity on CuPy)
#   2. benchmarks/gpu_layers.py: LSTM/GRU/RNN x small/mid/large/xl/batch1, FP32 and TF32,
#      training step and forward, against cuDNN in one process
#   3. every example with --quick --device cuda
#   4. one minute of `scratchrnn train --device cuda` (characters per second, validation loss)
# and a summary. Results land in $OUT (or ./gpu-check-out).
#
# Before calling it through the device tool, in the repo's root here (see the device README):
#   echo /.whl/ >> .git/info/exclude; echo /.data/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl \
#       array-api-compat array-api-strict safetensors
#   mkdir -p .data && cp -r ../shared/data/names ../shared/data/ag_news \
#       ../shared/data/tinyshakespeare .data/
# and run: bash benchmarks/gpu_check.sh   with carry [".whl", ".data"].
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export SCRATCHRNN_DATA="${SCRATCHRNN_DATA:-$PWD/.data}" MPLBACKEND=Agg PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import cupy, torch; print('cupy', cupy.__version__, 'torch', torch.__version__, \
'cudnn', torch.backends.cudnn.version())" | tee -a "$out/gpu.txt"

start=$SECONDS
echo "== 1. pytest -m gpu"
timeout 200 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_engines.py \
    tests/test_index_add.py 2>&1 | tee "$out/pytest_gpu.txt" | tail -15
tests_rc=${PIPESTATUS[0]}

echo "== 2. layers against cuDNN"
timeout 150 python3 benchmarks/gpu_layers.py --repeats 15 --json "$out/gpu_layers.json" \
    2>&1 | tee "$out/gpu_layers.md"

echo "== 3. examples --quick --device cuda"
: > "$out/examples.txt"
for ex in examples/*.py; do
    case "$ex" in */_*) continue ;; esac
    t0=$SECONDS
    if timeout 60 python3 "$ex" --quick --device cuda --out "/tmp/gpu-ex" >/tmp/ex.log 2>&1; then
        echo "ok   $ex ($((SECONDS - t0)) s)" | tee -a "$out/examples.txt"
    else
        echo "FAIL $ex: $(tail -3 /tmp/ex.log | tr '\n' ' ')" | tee -a "$out/examples.txt"
    fi
done

echo "== 4. scratchrnn train --device cuda, one minute"
timeout 150 python3 -m scratchrnn train --device cuda --minutes 1 --out /tmp/gpu-train \
    2>&1 | tee "$out/train.txt" | tail -8

echo "== summary ($((SECONDS - start)) s)"
{
    echo "pytest -m gpu: $(grep -E 'passed|failed' "$out/pytest_gpu.txt" | tail -1) (rc $tests_rc)"
    cat "$out/gpu_layers.md"
    cat "$out/examples.txt"
    echo "train: $(grep -iE 'chars/s|characters/s|tokens/s|validation' "$out/train.txt" | tail -3)"
} | tee "$out/summary.md"
