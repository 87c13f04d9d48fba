#!/usr/bin/env bash
# How long the published profile takes on one GPU (issue 16), in one call on a machine with a CUDA
# GPU and no network: every planned published run's `oak evaluate --published`, as dvc.yaml runs it,
# on 2,000 generated ImageNet-sized JPEGs (oak.preparing.fullsize), with randomly initialised weights of
# each architecture saved under the names the real files have (the speed does not depend on the
# values). Start-up costs count in the 2,000 images, so the hours for 50,000 err long. Writes $OUT/metrics/devices/<gpu>/published.json: per run its images/s and the hours its
# 50,000 validation images would take, and their sum; plus each run's log.
# Usage: OUT=folder pipelines/measure_published_gpu.sh   (copy $OUT/metrics into metrics/ and commit it)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the results go to}"
python3 -m pip install --quiet --no-deps --no-build-isolation --editable . 2>&1 | tail -2 || true
WORK=$(mktemp -d)
python3 - "$WORK" <<'PY'
import sys
from pathlib import Path

import timm
import torch
import torchvision
from safetensors.torch import save_file

from oak.preparing.fullsize import fullsize_shards
from oak.models.published import Published
from oak.studies.plan import plan_runs
from oak.studies.study import load_studies

work = Path(sys.argv[1])
fullsize_shards(work, train=dict.fromkeys(range(100), 1), val=dict.fromkeys(range(100), 20), samples_per_shard=256)
for run in plan_runs(load_studies(), "published").values():
    published = Published.parse(run.weights)
    path = work / "weights" / published.file_name()
    path.parent.mkdir(exist_ok=True)
    if published.library == "timm":
        save_file(timm.create_model(published.name, pretrained=False).state_dict(), path)
    else:
        torch.save(torchvision.models.get_model(published.name.partition(".")[0], weights=None).state_dict(), path)
    print(run.name, run.weights, path.name, flush=True)
PY
oak plan published >/dev/null
python3 - "$WORK" "$OUT" <<'PY'
import json
import subprocess
import sys
from pathlib import Path

import torch
import yaml

work, out = Path(sys.argv[1]), Path(sys.argv[2])
device = torch.cuda.get_device_name(0)
slug = device.lower().replace("nvidia ", "").replace(" ", "-")
runs = yaml.safe_load(Path("pipelines/plan.yaml").read_text())["published"]
settings = [f"paths.shards={work / 'shards'}", f"paths.weights={work / 'weights'}", f"paths.metrics={work / 'metrics'}"]
settings += [f"tracking.uri=sqlite:///{work / 'mlflow.db'}", "trainer.accelerator=gpu", "trainer.devices=1", "evaluate.batch_size=128"]
results = {}
for name, run in runs.items():
    command = ["oak", "evaluate", "--run", name, run["model"], "--published", run["weights"], *run["args"].split(), *settings]
    done = subprocess.run(command, capture_output=True, text=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "logs" / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        results[name] = {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    else:
        timing = json.loads((work / "metrics" / "timings" / "evaluate" / f"{name}.json").read_text())
        results[name] = {"weights": run["weights"], "images_per_second": timing["images_per_second"], "hours_for_50000": round(50_000 / timing["images_per_second"] / 3600, 3)}
    print(name, results[name], flush=True)
total = sum(result.get("hours_for_50000", 0) for result in results.values())
summary = {"device": device, "images": 2000, "precision": "32-true", "batch_size": 128, "runs": results, "total_hours_for_50000_each": round(total, 2)}
path = out / "metrics" / "devices" / slug / "published.json"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(summary, indent=2) + "\n")
print(f"published profile on {device}: {total:.2f} h for 16 x 50,000 images (from 2,000 each); {path}")
PY
oak plan demo >/dev/null
