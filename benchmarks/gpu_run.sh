#!/usr/bin/env bash
# Every GPU check of minibn in one call, for a GPU machine lent for a few minutes.
#
#   OUT=/some/folder bash benchmarks/gpu_run.sh [--dry-run] [--cpu] [--budget SECONDS]
#
# Run from anywhere (it changes to the repository root). Writes at most 8 files to $OUT
# (default results/gpu_run): summary.md (one line per step, the targets, the environment),
# tests.log (a), agreement.log (b), kernels.log (c), drift.log (d), syncs.json (e), bench.md and
# bench.json (f). Scratch files go to a temporary folder outside $OUT.
#
# Steps (run in this order; each with its own timeout, all within a budget of GPU_RUN_BUDGET
# seconds, default 450: a step that would start with less than 20 s left is skipped):
#   setup  the python that has CuPy (or $PYTHON); minibn from this checkout on PYTHONPATH (no
#          install, no network); nvidia-smi and the versions, into summary.md
#   (c)    tests/test_cuda_kernels.py with NUMBA_ENABLE_CUDASIM unset: the numba-cuda kernels on the device
#   (b1)   tests/test_gpu.py: every layer of the gradient-check table, CPU vs GPU, float64, train
#          and eval, forward and backward
#   (e)    host-device synchronizations in one training step (benchmarks/gpu_checks.py syncs)
#   (f)    minibn bench's GPU rows (benchmarks/gpu_checks.py bench)
#   (a)    the GPU cases of the suite: pytest -m gpu (the cupy parameter of the backend_name
#          fixture and the gpu-marked tests; (b) and (c)'s files are left to them)
#   (b2)   minibn gradcheck --backend cupy
#   (d)    minibn drift --backend cupy --steps 2000, then MINIBN_BACKEND=cupy minibn reproduce all --fast
#          (the reproduce commands have no --backend option: they take the active backend)
#   (a2)   informational: the CPU unit tests with MINIBN_BACKEND=cupy as the default backend
#
# Without CuPy and a CUDA device (or with --cpu) every GPU step is "skipped: no CuPy", and runs
# its command on the CPU at a small size instead, so that the script and its report can be
# checked anywhere (tests/test_gpu_run.py). --dry-run lists the commands and runs none.
# GPU_RUN_ONLY="e f" runs only those steps (keys: a b1 b2 c d1 d2 e f a2), e.g. to redo one.
# MNIST for (d): $MINIBN_DATA, else results/gpu-data, shared/data or ../shared/data (a folder
# holding mnist/); on the GPU machine carry it, e.g. results/gpu-data.

set -uo pipefail

DRY=0
FORCE_CPU=${GPU_RUN_FORCE_CPU:-0}
BUDGET=${GPU_RUN_BUDGET:-450}
while (($#)); do
    case $1 in
        --dry-run) DRY=1 ;;
        --cpu) FORCE_CPU=1 ;;
        --budget) BUDGET=${2:?--budget needs a number of seconds}; shift ;;
        -h | --help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "gpu_run.sh: unknown argument $1 (--help lists them)" >&2; exit 2 ;;
    esac
    shift
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || exit 2
cd "$REPO" || exit 2
OUT=${OUT:-$REPO/results/gpu_run}
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/minibn-gpu-run.XXXXXX") || exit 2
STEPS=$WORK/steps.tsv
: >"$STEPS"
T0=$SECONDS
RESERVE=10   # seconds kept for the summary at the end
MIN_STEP=20  # a step with less than this left is skipped
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
unset MINIBN_BACKEND  # set per step where a step wants it

# -- the python: the first that imports cupy, else the first that imports numpy -------------------
pick_python() {
    local c first=""
    if [[ -n ${PYTHON:-} ]]; then
        PY=$PYTHON
        return
    fi
    for c in python3 python /opt/torch/.venv/bin/python3 /usr/bin/python3; do
        command -v "$c" >/dev/null 2>&1 || continue
        if timeout 60 "$c" -c "import cupy" >/dev/null 2>&1; then
            PY=$(command -v "$c")
            return
        fi
        if [[ -z $first ]] && timeout 60 "$c" -c "import numpy" >/dev/null 2>&1; then
            first=$(command -v "$c")
        fi
    done
    PY=${first:-python3}
}
pick_python

MODE=cpu-fallback
if ((FORCE_CPU == 0)) && timeout 90 "$PY" -c "import cupy, sys; sys.exit(0 if cupy.cuda.runtime.getDeviceCount() > 0 else 1)" >/dev/null 2>&1; then
    MODE=gpu
    unset NUMBA_ENABLE_CUDASIM  # the kernels run on the device
fi
((DRY)) && MODE=dry-run

DATA=""
for d in "${MINIBN_DATA:-}" "$REPO/results/gpu-data" "$REPO/shared/data" "$REPO/../shared/data"; do
    if [[ -n $d && -f $d/mnist/train-images-idx3-ubyte.gz ]]; then
        DATA=$(cd "$d" && pwd)
        break
    fi
done
[[ -n $DATA ]] && export MINIBN_DATA=$DATA

PYTEST=("$PY" -m pytest -o addopts= -p no:cacheprovider -q -rfEs --color=no --continue-on-collection-errors)
if timeout 60 "$PY" -c "import pytest_timeout" >/dev/null 2>&1; then
    PYTEST+=(--timeout=120)  # a hung test fails alone instead of using up its step
fi

# -- the summary, re-written after every step (a run cut short still leaves one) ------------------
render() {
    if ! "$PY" "$REPO/benchmarks/gpu_checks.py" summary --steps "$STEPS" --work "$WORK" --out "$OUT" \
        --mode "$MODE" --budget "$BUDGET" --elapsed "$((SECONDS - T0))" >"$WORK/render.err" 2>&1; then
        {
            echo "# minibn on the GPU: \`benchmarks/gpu_run.sh\` (plain summary: the Python renderer failed)"
            echo
            echo "Mode: $MODE. Elapsed $((SECONDS - T0)) s of a $BUDGET s budget. Python: $PY."
            echo
            echo "| step | result | exit | seconds | log | note | command |"
            echo "| --- | --- | --- | --- | --- | --- | --- |"
            sed 's/|/\//g; s/\t/ | /g; s/^/| /; s/$/ |/' "$STEPS"
            echo
            echo '```'
            tail -n 30 "$WORK/render.err"
            echo '```'
        } >"$OUT/summary.md"
    fi
}

# GPU_RUN_ONLY="KEY ...": run only these steps (a b1 b2 c d1 d2 e f a2), e.g. to redo one that failed
GPU_RUN_ONLY=${GPU_RUN_ONLY:-}
selected() { [[ -z $GPU_RUN_ONLY || " $GPU_RUN_ONLY " == *" $1 "* ]]; }

record() { # KEY STATUS RC SECONDS LOG NOTE COMMAND (tabs and newlines in a field become spaces)
    local f fields=()
    for f in "$@"; do
        f=${f//$'\t'/ }
        fields+=("${f//$'\n'/ }")
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${fields[@]}" >>"$STEPS"
}

# run_step KEY LOG LIMIT COMMAND...: run COMMAND with a timeout of LIMIT seconds (less if the
# budget has less), its output into $WORK/KEY.out and appended to $OUT/LOG ("-": no shared log).
# In the CPU fallback the step is "skipped: no CuPy", its CPU run's result in the note.
run_step() {
    local key=$1 log=$2 limit=$3
    shift 3
    local cmd out="$WORK/$key.out" left rc t0 status note=""
    cmd=$(printf '%q ' "$@")
    cmd=${cmd% }
    left=$((BUDGET - (SECONDS - T0) - RESERVE))
    if ! selected "$key"; then
        record "$key" "not selected" "" 0 "$log" "GPU_RUN_ONLY=$GPU_RUN_ONLY" "$cmd"
        return 0
    fi
    if ((DRY)); then
        record "$key" "dry run: not run" "" 0 "$log" "" "$cmd"
        return 0
    fi
    if ((left < MIN_STEP)); then
        record "$key" "skipped: out of time" "" 0 "$log" "the ${BUDGET} s budget was spent" "$cmd"
        render
        return 0
    fi
    ((limit > left)) && limit=$left
    local logfile=/dev/null
    [[ $log != - ]] && logfile=$OUT/$log
    printf '\n===== (%s) %s, timeout %s s: %s\n' "$key" "$(date -u +%H:%M:%S)" "$limit" "$cmd" >>"$logfile"
    echo "gpu_run.sh: ($key) $cmd (timeout $limit s)"
    t0=$SECONDS
    timeout -s INT -k 15 "$limit" "$@" </dev/null 2>&1 | tee "$out" >>"$logfile"
    rc=${PIPESTATUS[0]}
    case $rc in
        0) status="passed" ;;
        124) status="timed out after $limit s" ;;
        137) status="killed after $limit s" ;;
        *) status="failed (exit $rc)" ;;
    esac
    if [[ $MODE == cpu-fallback ]]; then
        note="CPU fallback: $status in $((SECONDS - t0)) s"
        status="skipped: no CuPy"
    fi
    record "$key" "$status" "$rc" "$((SECONDS - t0))" "$log" "$note" "$cmd"
    render
    return 0
}

skip_step() { # KEY LOG STATUS NOTE COMMAND
    if selected "$1"; then
        record "$1" "$3" "" 0 "$2" "$4" "$5"
    else
        record "$1" "not selected" "" 0 "$2" "GPU_RUN_ONLY=$GPU_RUN_ONLY" "$5"
    fi
    ((DRY)) || render
}

gpu() { [[ $MODE == gpu || $MODE == dry-run ]]; }

# -- setup ------------------------------------------------------------------------------------------
: >"$OUT/tests.log"
: >"$OUT/agreement.log"
: >"$OUT/kernels.log"
: >"$OUT/drift.log"
echo "gpu_run.sh: mode $MODE, python $PY, budget $BUDGET s, out $OUT, MNIST ${DATA:-not found}"
if ((DRY == 0)); then
    t0=$SECONDS
    {
        timeout 30 nvidia-smi 2>&1 || echo "(nvidia-smi: not available here)"
        timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
            --format=csv 2>&1 || true
    } >"$WORK/nvidia-smi.txt"
    timeout 120 "$PY" "$REPO/benchmarks/gpu_checks.py" env --out "$WORK/env.json" >"$WORK/env.out" 2>&1
    rc=$?
    if gpu; then # which devices numba-cuda sees, at the head of kernels.log
        timeout 60 "$PY" -c "from numba import cuda; cuda.detect()" >>"$OUT/kernels.log" 2>&1
    fi
    record env "$([[ $rc == 0 ]] && echo passed || echo "failed (exit $rc)")" "$rc" "$((SECONDS - t0))" - \
        "python $PY; minibn from PYTHONPATH=$REPO" "$PY benchmarks/gpu_checks.py env"
    render
else
    record env "dry run: not run" "" 0 - "python $PY" "$PY benchmarks/gpu_checks.py env"
fi

# -- the steps --------------------------------------------------------------------------------------
if gpu; then
    # (c) the numba-cuda kernels on the device (conftest.py turns the simulator on only without CuPy)
    run_step c kernels.log 120 env -u NUMBA_ENABLE_CUDASIM "${PYTEST[@]}" tests/test_cuda_kernels.py
    # (b) CPU vs GPU, every layer of the gradient-check table
    run_step b1 agreement.log 150 "${PYTEST[@]}" tests/test_gpu.py
    # (e) synchronizations in a training step; (f) the GPU rows of the benchmark
    run_step e - 90 "$PY" benchmarks/gpu_checks.py syncs --out "$OUT/syncs.json"
    run_step f - 180 "$PY" benchmarks/gpu_checks.py bench --md "$OUT/bench.md" --json "$OUT/bench.json"
    # (a) the suite's GPU cases; (b) the gradient checks on the GPU
    run_step a tests.log 180 "${PYTEST[@]}" -m gpu tests --ignore=tests/test_gpu.py \
        --ignore=tests/test_cuda_kernels.py
    run_step b2 agreement.log 120 "$PY" -m minibn gradcheck --backend cupy
    # (d) the experiments on the GPU
    if [[ -n $DATA || $MODE == dry-run ]]; then
        run_step d1 drift.log 120 "$PY" -m minibn drift --backend cupy --steps 2000 --quiet \
            --out "$WORK/drift" --data "${DATA:-\$MINIBN_DATA}"
        [[ -f $WORK/drift/summary.json ]] && cat "$WORK/drift/summary.json" >>"$OUT/drift.log"
        run_step d2 drift.log 150 env MINIBN_BACKEND=cupy "$PY" -m minibn reproduce all --fast --quiet \
            --out "$WORK/reproduce" --data "${DATA:-\$MINIBN_DATA}"
        [[ -f $WORK/reproduce/provenance.json ]] && cat "$WORK/reproduce/provenance.json" >>"$OUT/drift.log"
    else
        why="no MNIST (set MINIBN_DATA, or carry a folder holding mnist/ as results/gpu-data)"
        skip_step d1 drift.log "skipped: $why" "" "$PY -m minibn drift --backend cupy --steps 2000"
        skip_step d2 drift.log "skipped: $why" "" "MINIBN_BACKEND=cupy $PY -m minibn reproduce all --fast"
    fi
    # (a2) not a target: which CPU unit tests assume NumPy when the default backend is CuPy
    run_step a2 tests.log 90 env MINIBN_BACKEND=cupy "${PYTEST[@]}" -m "not gpu and not slow" tests/nn \
        tests/functional tests/test_registry.py tests/test_optim.py tests/test_train.py tests/test_training.py \
        tests/test_adapt.py tests/test_gradcheck.py tests/test_backend.py
else
    # the CPU fallback: each step's command, small, on the CPU (the GPU cases skip cleanly there)
    run_step c kernels.log 120 "${PYTEST[@]}" tests/test_cuda_kernels.py -k strided
    run_step b1 agreement.log 60 "${PYTEST[@]}" tests/test_gpu.py
    skip_step b2 agreement.log "skipped: no CuPy" "" "$PY -m minibn gradcheck --backend cupy"
    run_step a tests.log 60 "${PYTEST[@]}" -m gpu tests/test_backend.py
    run_step e - 60 "$PY" benchmarks/gpu_checks.py syncs --out "$OUT/syncs.json"
    run_step f - 90 "$PY" benchmarks/gpu_checks.py bench --tiny --md "$OUT/bench.md" --json "$OUT/bench.json"
    if [[ -n $DATA ]]; then
        run_step d1 drift.log 60 "$PY" -m minibn drift --backend numpy --steps 10 --bn --quiet \
            --out "$WORK/drift" --data "$DATA"
    else
        skip_step d1 drift.log "skipped: no CuPy" "and no MNIST" "$PY -m minibn drift --backend cupy --steps 2000"
    fi
    skip_step d2 drift.log "skipped: no CuPy" "" "MINIBN_BACKEND=cupy $PY -m minibn reproduce all --fast"
    skip_step a2 tests.log "skipped: no CuPy" "" "MINIBN_BACKEND=cupy pytest -m 'not gpu and not slow' tests/..."
fi

render
rm -f "$OUT"/*.tmp
echo
cat "$OUT/summary.md"
rm -rf "$WORK"
exit 0
