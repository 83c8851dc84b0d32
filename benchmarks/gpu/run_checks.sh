#!/usr/bin/env bash
# Issue 15 item 4: the GPU checks, in one command on a GPU machine (see docs/speed.md, "GPU checks").
#   bash benchmarks/gpu/run_checks.sh all|checks|fold [OUT_FOLDER]
# checks: the CUDA tests, bench_detect.py, bench_train.py and bench_memory.py on --device cuda;
# fold:   one ResNet-50 fold at the paper's scale (benchmarks/bench_fold.py), stopped at the
#         time left before DEADLINE seconds (default 560) and resumed by running `fold` again.
# Needs the wheels of benchmarks/gpu/fetch_wheels.sh in .whl/. Every figure and log goes to
# OUT_FOLDER (default $OUT, else benchmarks/gpu-out).
# DRY=1: a rehearsal on a CPU machine (device cpu, ResNet-18 only, a 12-subject tiny cohort),
# to check that the script and the carried wheels work before spending GPU time.
set -uo pipefail
cd "$(dirname "$0")/../.."
stage=${1:-all}
out=${2:-${OUT:-benchmarks/gpu-out}}
deadline=${DEADLINE:-560}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheels did not install: run benchmarks/gpu/fetch_wheels.sh here first"; exit 3; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
threads=$(nproc)
device=cuda depths="18 50" repeats=5 fold_args=(--depth 50)
if [ "${DRY:-0}" = 1 ]; then
    device=cpu depths=18 repeats=1
    fold_args=(--depth 18 --subjects 12 --size tiny --train-args
               "--max-epochs 2 --spacing 8 8 8 --shape 24 28 24 --widen-factor 0.125")
fi

if [ "$stage" = all ] || [ "$stage" = checks ]; then
    { nvidia-smi; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and
torch.cuda.get_device_name(0))"; } > "$out/device.txt" 2>&1
    timeout 200 python3 -m pytest -q -p no:cacheprovider -rA -s \
        Testing/engine/test_cuda_detect.py Testing/train/test_cuda_training.py > "$out/cuda-tests.log" 2>&1
    echo "cuda tests: exit $?" | tee -a "$out/device.txt"
    # shellcheck disable=SC2086  # $depths is a list of numbers
    timeout 120 python3 benchmarks/bench_detect.py --device "$device" --depths $depths --repeats "$repeats" \
        --threads "$threads" --out "$out/results-detect-$device.json" > "$out/bench.log" 2>&1
    echo "bench_detect: exit $? at ${SECONDS} s" | tee -a "$out/device.txt"
    timeout 100 python3 benchmarks/bench_train.py --device "$device" --depths $depths \
        --out "$out/results-train-$device.json" >> "$out/bench.log" 2>&1
    echo "bench_train: exit $? at ${SECONDS} s" | tee -a "$out/device.txt"
    timeout 200 python3 benchmarks/bench_memory.py --device "$device" --depths $depths --repeats 1 \
        --out "$out/results-memory-$device.json" >> "$out/bench.log" 2>&1
    echo "bench_memory: exit $? at ${SECONDS} s" | tee -a "$out/device.txt"
    echo "benchmarks done at ${SECONDS} s" | tee -a "$out/device.txt"
fi

if [ "$stage" = all ] || [ "$stage" = fold ]; then
    left=$((deadline - SECONDS - 60))  # 60 s for the cohort (reused on a second call) and for stopping
    if [ "$left" -lt 60 ]; then
        echo "no time left for the fold (${SECONDS} s used): run 'fold' on its own" | tee -a "$out/device.txt"
    else
        python3 benchmarks/bench_fold.py --device "$device" "${fold_args[@]}" --work .gpu-work --time-limit "$left" \
            --out "$out/results-fold-$device.json" > "$out/fold.log" 2>&1
        echo "fold: exit $? at ${SECONDS} s" | tee -a "$out/device.txt"
    fi
fi
cat "$out/device.txt"
