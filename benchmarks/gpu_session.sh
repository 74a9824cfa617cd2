#!/usr/bin/env bash
# Every GPU measurement of the speed work in one prepared run (about 12 minutes on one H100/H200), each step under
# its own timeout so one slow step cannot eat the others' time. Logs go to $OUT (default benchmarks/results/gpu):
#
#   bash benchmarks/gpu_session.sh            # on a machine with a CUDA GPU, from the repository root
#
# Order = what the README's speed tables need first: GPU-marked tests, FNO step vs neuraloperator (fp32 and
# bf16-mixed, eager and compiled), generation (Navier-Stokes against its memory-traffic bound, Darcy 421^2 with
# multigrid CG, Burgers float32), Lightning vs a bare loop, compile speed-up per model, the scaling table + PNG.
# Machines without hydra/omegaconf (the lent GPU image) need them installed first (wheels, see the device notes).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline WANDB_SILENT=true
PY=${PYTHON:-python}

step() {  # step NAME SECONDS COMMAND...: run with a timeout, log to $OUT/NAME.log, never stop the session
  local name=$1 seconds=$2
  shift 2
  echo "=== $name (timeout ${seconds}s): $*"
  local t0=$SECONDS
  timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
  echo "=== $name: exit $? after $((SECONDS - t0)) s"
  tail -n 40 "$OUT/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
step gpu_tests 120 "$PY" -m pytest -m gpu -q -p no:cacheprovider
step fno_throughput 180 "$PY" benchmarks/fno_throughput.py --device cuda --configs darcy2d burgers1d fno2d_256 \
  --precision 32 bf16-mixed --compile off on --steps 20 --repeats 3
step generation 120 "$PY" benchmarks/generation_throughput.py --preset paper --device cuda --batch-size auto \
  --batches 1 --set navier_stokes.t_final=2 --set navier_stokes.precision=float32 --set burgers.precision=float32 \
  --set darcy.solver=mgcg
step generation_ns_float64 60 "$PY" benchmarks/generation_throughput.py --preset paper --device cuda --pde navier_stokes \
  --batch-size auto --batches 1 --set navier_stokes.t_final=1
step lightning_overhead 90 "$PY" benchmarks/lightning_overhead.py --override trainer=gpu --repeats 2
step scaling 150 "$PY" benchmarks/scaling.py --device cuda --batch-size 4 --out-dir "$OUT"
echo "done; logs in $OUT"
