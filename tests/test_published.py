"""Released weights (the published profile): found offline, read safely, evaluated with their own
preprocessing, and shown beside the paper's values. No network: the weight files are made here,
randomly initialised, under the names and keys the real ones have."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from omegaconf import OmegaConf
from PIL import Image
from safetensors.torch import load_file, save_file
from test_pipeline import SHRINK, copy_repository

from oak.errors import OakError
from oak.loading.transforms import eval_transform
from oak.models.published import Published, load_published
from oak.report.claims import FAILS, HOLDS, published_claims
from oak.studies.study import Row, RunSpec, Study

BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def empty_download_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights come from the folder each test fills, never from this machine's caches."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)


def save_timm_weights(folder: Path, tag: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(timm.create_model(tag, pretrained=False).state_dict(), folder / f"{tag}.safetensors")


def save_torchvision_weights(folder: Path, spec: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    builder = spec.removeprefix("torchvision:").partition(".")[0]
    path = folder / Published.parse(spec).file_name()
    torch.save(torchvision.models.get_model(builder, weights=None).state_dict(), path)
    return path


def test_timm_weights_in_the_weights_folder_load_into_their_architecture(tmp_path: Path) -> None:
    save_timm_weights(tmp_path, "tf_efficientnet_b0.aa_in1k")
    net, path = load_published(Published.parse("timm:tf_efficientnet_b0.aa_in1k"), tmp_path)
    assert path == tmp_path / "tf_efficientnet_b0.aa_in1k.safetensors"
    assert torch.equal(net.state_dict()["conv_stem.weight"], load_file(path)["conv_stem.weight"])


def test_torchvision_weights_are_found_under_their_download_name(tmp_path: Path) -> None:
    path = save_torchvision_weights(tmp_path, "torchvision:resnet18.IMAGENET1K_V1")
    assert path.name == "resnet18-f37072fd.pth"  # as torch.hub saves it: copy it from ~/.cache/torch/hub/checkpoints
    net, found = load_published(Published.parse("torchvision:resnet18.IMAGENET1K_V1"), tmp_path)
    assert found == path and net.fc.out_features == 1000


def test_two_weights_of_one_architecture_get_their_own_transforms(tmp_path: Path) -> None:
    """resnet50.a1_in1k is tested at 288 px with a crop fraction of 1.0, resnet50.tv_in1k at 224 px and 0.875."""
    base = OmegaConf.create({"image_size": 64, "eval_image_size": None, "eval_crop_pct": 0.875, "interpolation": "bilinear"})
    image = Image.new("RGB", (500, 375), "gray")
    image.save(tmp_path / "image.jpg")
    sizes = {}
    for tag in ("resnet50.a1_in1k", "resnet50.tv_in1k"):
        settings = Published.parse(f"timm:{tag}").preprocessing()
        recipe = OmegaConf.merge(base, settings)
        sizes[tag] = tuple(eval_transform(recipe)((tmp_path / "image.jpg").read_bytes()).shape)
        assert settings["interpolation"] == ("bicubic" if tag.endswith("a1_in1k") else "bilinear")
    assert sizes == {"resnet50.a1_in1k": (3, 288, 288), "resnet50.tv_in1k": (3, 224, 224)}


def test_torchvisions_resize_is_kept_exactly(tmp_path: Path) -> None:
    """ShuffleNet-v2 2.0x's weights resize to 232 then crop 224: 224 / (224 / 232) floors to 231 unless the fraction is nudged."""
    settings = Published.parse("torchvision:shufflenet_v2_x2_0.IMAGENET1K_V1").preprocessing()
    assert settings["eval_image_size"] == 224 and int(224 / settings["eval_crop_pct"]) == 232


def test_a_missing_file_is_one_error_naming_the_file_and_where_it_is_published(tmp_path: Path) -> None:
    with pytest.raises(OakError) as error:
        load_published(Published.parse("timm:inception_v3.tf_in1k"), tmp_path / "weights")
    message = str(error.value)
    assert str(tmp_path / "weights" / "inception_v3.tf_in1k.safetensors") in message
    assert "https://huggingface.co/timm/inception_v3.tf_in1k" in message


def test_unknown_weights_are_refused_by_name() -> None:
    with pytest.raises(OakError, match="no such pretrained tag"):
        Published.parse("timm:tf_efficientnet_b0.not_a_tag")
    with pytest.raises(OakError, match="no 'V9' weights"):
        Published.parse("torchvision:resnet18.V9")


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_that_carries_code_is_refused_and_never_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"state_dict": RunsCode()}, tmp_path / Published.parse("torchvision:resnet18.IMAGENET1K_V1").file_name())
    with pytest.raises(OakError, match="refused"):
        load_published(Published.parse("torchvision:resnet18.IMAGENET1K_V1"), tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_a_paper_value_reproduces_from_released_weights_when_inside_the_measurements_interval() -> None:
    released = {"published": RunSpec(weights="timm:x")}  # the weights the rows name, which the measurements are of
    rows = [Row("A", "resnet18", paper=76.3, profiles=released), Row("B", "resnet34", paper=76.3, profiles=released)]
    study = Study("T", "a paper", "top1", rows=rows, name="t")
    on_imagenet = {"weights": "timm:x", "data": "imagenet-1k", "samples": 50_000, "top5": 90}
    measured = {"t/A": on_imagenet | {"top1": 76.66}, "t/B": on_imagenet | {"top1": 77.00}}  # the interval: about +-0.37 points
    verdicts = {claim.text.split(":")[0]: claim.verdict for claim in published_claims([study], measured)}
    assert verdicts == {"A": HOLDS, "B": FAILS}


STUDY = """title: "Released weights"
source: "a test"
metric: top1
profiles: {demo: {recipe: demo}}
rows:
  - {label: ResNet-18, model: resnet18, paper: 69.758, profiles: {published: {weights: "torchvision:resnet18.IMAGENET1K_V1"}}}
  - label: ShuffleNet-v2 0.5x
    model: shufflenet_v2_x0_5
    paper: 60.552
    profiles: {published: {weights: "timm:resnet18.tv_in1k", stand_in: resnet18, variant: timm}}
  - {label: plain-18, model: plain18, paper: 72.0, profiles: {published: {skip: "never released"}}}
"""


@pytest.mark.slow
def test_the_published_profile_runs_end_to_end_on_the_demo_data(tmp_path: Path) -> None:
    repo = copy_repository(tmp_path / "oak", study=STUDY, params=SHRINK)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    planned = subprocess.run(["oak", "plan", "published"], cwd=repo, env=env, capture_output=True, text=True)
    assert planned.returncode == 0, planned.stderr
    plan = (repo / "pipelines" / "plan.yaml").read_text()
    assert "runs: {}" in plan and "resnet18-published:" in plan and "plain18" not in plan
    save_torchvision_weights(repo / "data" / "weights", "torchvision:resnet18.IMAGENET1K_V1")
    save_timm_weights(repo / "data" / "weights", "resnet18.tv_in1k")
    done = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    measured = json.loads((repo / "metrics" / "published" / "resnet18-published.json").read_text())
    assert measured["weights"] == "torchvision:resnet18.IMAGENET1K_V1" and measured["samples"] == 4 * 6
    assert measured["data"] == "oak-demo (synthetic)" and len(measured["sha256"]) == 64
    table = (repo / "reports" / "tables" / "small.md").read_text()
    assert "published weights, Oak top-1 (%)" in table
    assert "`torchvision:resnet18.IMAGENET1K_V1`" in table and "`timm:resnet18.tv_in1k`" in table
    assert "only show that the path works" in table
    assert "plain-18: never released" in table
    claims = (repo / "reports" / "claims.md").read_text()
    assert "ResNet-18: top-1 (%) 69.758 (from the released weights) | not checked |" in claims
    status = subprocess.run(["dvc", "status"], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout
    assert "up to date" in status


def test_smoke_testing_the_published_profile_is_refused_and_writes_nothing() -> None:
    repo = Path(__file__).parents[1]
    done = subprocess.run([BIN / "oak", "smoke", "published"], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 2 and "trains nothing" in done.stderr
    assert not (repo / "metrics" / "smoke" / "published.json").exists()
