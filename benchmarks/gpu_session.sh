#!/usr/bin/env bash
# The GPU checks of a session that is lent a device, as one prepared script (run it with the device tool:
#   run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=540)
# ). The device machine has no network: it uses that machine's python3 and torch, the checkout on PYTHONPATH, and
# wheels carried in .whl/ for whatever it lacks (see .library/device/README.md). It runs the training and pack
# benchmarks on CUDA and writes each one's output, with the device, torch version and command, under
# $OUT/benchmarks/results/ (copy them into benchmarks/results/ here and commit). Each step has its own time limit,
# so one slow step cannot eat the budget.
set -uo pipefail
OUT="${OUT:-$(pwd)/gpu-out}"
RESULTS="$OUT/benchmarks/results"
mkdir -p "$RESULTS"
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
python3 -c "import torch, numpy, safetensors, pyarrow, fsspec, tqdm, sklearn" \
  || { echo "missing packages there: carry them as wheels in .whl/"; exit 1; }
stamp() {
  python3 - "$1" <<'PY'
import sys, platform, torch
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
print(f"# {sys.argv[1]}\n# device: {name}; torch {torch.__version__}; python {platform.python_version()}")
PY
}
run() {  # run NAME LIMIT COMMAND...
  local name="$1" limit="$2"; shift 2
  { stamp "$*"; timeout "$limit" "$@"; echo "# exit code $?"; } > "$RESULTS/$name.txt" 2>&1
  tail -n 25 "$RESULTS/$name.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$RESULTS/device.txt" 2>&1
run train_throughput_cuda 120 python3 benchmarks/train_throughput.py --device cuda
run pack_throughput_cuda 360 python3 benchmarks/pack_throughput.py --device cuda --networks 64 --epochs 1 --per-shape 13 \
  --train-images 12000
run pack_equivalence_cuda 180 python3 benchmarks/pack_equivalence.py --device cuda
run pack_width_cuda 120 python3 benchmarks/pack_width.py --device cuda --batches 32
run pack_launches 60 python3 benchmarks/pack_launches.py --widths 1 8 64 256
