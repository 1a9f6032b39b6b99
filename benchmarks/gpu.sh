#!/usr/bin/env bash
# Every GPU figure of the project in one call, for a GPU lent for a few minutes.
#
#   bash benchmarks/gpu.sh [OUT_DIR]        (default OUT_DIR: benchmarks/results/gpu)
#
# Runs, each step under its own time limit so that the whole script ends in about 8 minutes on
# one H100 and a slow step cannot starve the others (a step that hits its limit is recorded in
# steps.json and the script goes on):
#   1. benchmarks/models.py: inference and training events/s of every model and the two plain
#      references, eager and torch.compile'd, bf16 autocast (the H100 targets: transformer
#      train >= 150k and infer >= 1M events/s, GAT+GAP-32 train >= 300k events/s);
#   2. benchmarks/train.py: the training loop to validation AUC 0.92 on the embedded sample;
#   3. benchmarks/feed.py: loader events/s against training events/s (is the GPU fed?) and
#      what length bucketing saves;
#   4. benchmarks/filter.py: the filter's end-to-end throughput, when the script exists.
# All JSON goes into OUT_DIR with environment.json (GPU name, driver, torch, CUDA, cuDNN, git
# commit, the command) and steps.json (each step's command, exit status and seconds).
#
# With no CUDA device visible the script stops with exit status 1 (it never measures the CPU
# under a GPU label). SMARTBKG_BENCH_DEVICE=cpu SMARTBKG_BENCH_SIZE=tiny runs every step at a
# tiny size on the CPU: that is how the test suite keeps this script working.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/gpu}
DEVICE=${SMARTBKG_BENCH_DEVICE:-cuda}
SIZE=${SMARTBKG_BENCH_SIZE:-full}
PY=${PYTHON:-python}

if [[ $DEVICE == cuda* ]]; then
    "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" || {
        echo "error: no CUDA device visible (torch.cuda.is_available() is false); nothing measured" >&2
        exit 1
    }
fi
mkdir -p "$OUT"

"$PY" - "$OUT" "$DEVICE" "$SIZE" "$0 $*" <<'EOF'
import json, platform, shutil, subprocess, sys, time
import torch
out, device, size, command = sys.argv[1:]
info = {"command": f"bash {command}".strip(), "device": device, "size": size,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "python": platform.python_version(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "platform": platform.platform()}
if device.startswith("cuda"):
    info.update(gpu=torch.cuda.get_device_name(device), cudnn=torch.backends.cudnn.version(),
                capability=".".join(map(str, torch.cuda.get_device_capability(device))))
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True)
        info["nvidia_smi"] = smi.stdout.strip()
git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
info["git_commit"] = git.stdout.strip() or None
open(f"{out}/environment.json", "w").write(json.dumps(info, indent=1) + "\n")
print(json.dumps(info))
EOF

if [[ $SIZE == tiny ]]; then
    MODELS_ARGS=(--events 40 --batch-size 16 --train-batch-size 16 --particles 20 --repeat 1 --max-seconds 0.01
                 --source synthetic --models gatgap32,deepsets)
    TRAIN_ARGS=(--events 300 --epochs 1 --batch-size 32 --models deepsets)
    FEED_ARGS=(--events 300 --batch-size 32 --bucket-window 2 --models deepsets)
    FILTER_ARGS=(--events 200 --run-events 200 --repeat 1 --batch-size 64 --models gatgap32)
    LIMITS=(120 120 120 120)
else
    MODELS_ARGS=(--source synthetic --compile all --repeat 2 --max-seconds 3)
    TRAIN_ARGS=(--stop-at-target --epochs 4)
    FEED_ARGS=(--events 20000)
    FILTER_ARGS=()
    LIMITS=(300 75 60 45)
fi

STEPS_JSON="$OUT/steps.jsonl"
: > "$STEPS_JSON"
FAILED=0
step() {  # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout --signal=INT --kill-after=10 "$limit" "$@"
    local status=$?
    [[ $status -ne 0 ]] && FAILED=1
    "$PY" -c 'import json, sys; print(json.dumps({"step": sys.argv[1], "status": int(sys.argv[2]), "seconds": int(sys.argv[3]), "timed_out": sys.argv[2] in ("124", "130", "137"), "command": sys.argv[4:]}))' \
        "$name" "$status" "$((SECONDS - start))" "$@" >> "$STEPS_JSON"
}

step models "${LIMITS[0]}" "$PY" benchmarks/models.py --device "$DEVICE" "${MODELS_ARGS[@]}" --out "$OUT/models_$DEVICE.json"
step train "${LIMITS[1]}" "$PY" benchmarks/train.py --device "$DEVICE" "${TRAIN_ARGS[@]}" --out "$OUT/train_$DEVICE.json"
step feed "${LIMITS[2]}" "$PY" benchmarks/feed.py --device "$DEVICE" "${FEED_ARGS[@]}" --out "$OUT/feed_$DEVICE.json"
if [[ -f benchmarks/filter.py ]]; then
    step filter "${LIMITS[3]}" "$PY" benchmarks/filter.py --device "$DEVICE" "${FILTER_ARGS[@]}" --out "$OUT/filter_$DEVICE.json"
fi
"$PY" -c 'import json, sys; rows = [json.loads(l) for l in open(sys.argv[1])]; open(sys.argv[2], "w").write(json.dumps(rows, indent=1) + "\n")' \
    "$STEPS_JSON" "$OUT/steps.json" && rm "$STEPS_JSON"
echo "wrote $OUT"
exit $FAILED
