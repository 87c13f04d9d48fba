#!/usr/bin/env bash
# The GPU measurements issue 15 asks for, in one call on a machine with a CUDA GPU (the data path
# and the training step at the per-device batch a GPU takes), writing everything under $OUT:
#   - `oak bench throughput`: resnet50, resnet18, efficientnet_b0 and shufflenet_v2_x1_0 at 224 px in
#     bf16, batch 256: `oak train` end to end decoding on the GPU and in the loader, beside the model
#     alone (metrics/devices/<gpu>/throughput.json);
#   - `oak bench cost --profile imagenet`: every planned imagenet run's training throughput
#     (metrics/devices/<gpu>/cost.json).
# Targets (issue 15, ratios from one run): end to end >= 0.9x the model alone for resnet50, >= 0.8x
# for the light three; resnet50 alone >= 3,000 img/s; the GPU path >= 2x the loader path for resnet18.
# Usage: OUT=folder pipelines/measure_gpu.sh   (copy $OUT/metrics into metrics/ and commit them)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the results go to}"
python3 -m pip install --quiet --no-deps --no-build-isolation --editable . 2>&1 | tail -2 || true
python3 - <<'PY'
import importlib
missing = [name for name in ("torch", "torchvision", "lightning", "timm", "mlflow", "webdataset", "omegaconf") if importlib.util.find_spec(name) is None]
print("missing packages:", ", ".join(missing) or "none")
PY
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.csv"
python3 -m oak.cli bench throughput "paths.metrics=$OUT/metrics" 2>&1 | tee "$OUT/throughput.log"
python3 -m oak.cli bench cost --profile imagenet "paths.metrics=$OUT/metrics" 2>&1 | tee "$OUT/cost.log" | tail -5
