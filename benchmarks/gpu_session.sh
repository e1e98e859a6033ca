#!/usr/bin/env bash
# The GPU checks of a session that is lent a device, as one prepared script (run it with the device tool:
#   run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=540)
# ). The device machine has no network: it uses that machine's python3 and torch, the checkout on PYTHONPATH, and
# wheels carried in .whl/ for whatever it lacks (see .library/device/README.md). Each step writes its output, with
# the device, torch version and command, under $OUT/benchmarks/results/ (copy them into benchmarks/results/ here
# and commit). Each step has its own time limit, so one slow step cannot eat the budget; the whole script stays
# under 8 minutes on one H100. What it checks:
#   - CUDA equivalence of the pack against one network at a time (float64 and float32 tolerances) and pack
#     independence on CUDA (pack_equivalence);
#   - the pack replayed as CUDA graphs gives the eager pack's bytes, and networks/hour against one network at a
#     time on the same card, nws_fixed and a realistic nws_main slice (pack_throughput --cuda-graphs);
#   - the sweep: width x {eager, CUDA graph} x {fp32, TF32} x cudnn.benchmark, with the measured µs per kernel
#     that `python benchmarks/zoo_projection.py --eager-us X --graph-us Y` turns into the projected full zoo
#     (gpu_sweep; the projection itself runs on CPU, anywhere);
#   - the compiled regions (generate --compile, builder.engine.fused): their equivalence and pack independence
#     on CUDA, and the padded nws_main pack eager against compiled, with and without CUDA graphs, fp32 and TF32
#     (gpu_sweep --compile).
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
print(f"# {sys.argv[1]}\n# device: {name}; torch {torch.__version__}; CUDA {torch.version.cuda}; python {platform.python_version()}")
PY
}
run() {  # run NAME LIMIT COMMAND...
  local name="$1" limit="$2"; shift 2
  { stamp "$*"; timeout "$limit" "$@"; echo "# exit code $?"; } > "$RESULTS/$name.txt" 2>&1
  tail -n 25 "$RESULTS/$name.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$RESULTS/device.txt" 2>&1
run pack_equivalence_cuda 80 python3 benchmarks/pack_equivalence.py --device cuda
run gpu_sweep 130 python3 benchmarks/gpu_sweep.py --device cuda --widths 1 16 64 256 --steps 20 --pack 256
run pack_compiled_cuda 90 python3 benchmarks/gpu_sweep.py --device cuda --steps 20 --pack 256 --compile
run pack_equivalence_compiled_cuda 50 python3 benchmarks/pack_equivalence.py --device cuda --compile --networks 4 \
  --epochs 1
run pack_throughput_cuda 90 python3 benchmarks/pack_throughput.py --device cuda --networks 64 --epochs 1 \
  --per-shape 13 --train-images 12000 --cuda-graphs
run train_throughput_cuda 30 python3 benchmarks/train_throughput.py --device cuda
