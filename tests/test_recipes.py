"""Training recipes: files in pipelines/recipes whose every knob reaches the optimizer, model or data."""

from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from timm.data.auto_augment import RandAugment
from timm.data.random_erasing import RandomErasing
from timm.layers import DropPath
from timm.loss import SoftTargetCrossEntropy
from timm.optim import RMSpropTF
from timm.scheduler import CosineLRScheduler, StepLRScheduler

from oak.classifier import Classifier
from oak.config import load_config
from oak.errors import OakError
from oak.models import create_model
from oak.train import datamodule_for

ROOT = Path(__file__).parents[1]
PARAMS = ROOT / "params.yaml"
RECIPES = sorted(path.stem for path in (ROOT / "pipelines" / "recipes").glob("*.yaml"))


def recipe_config(recipe: str, *overrides: str, shards: Path | None = None):
    paths = [f"paths.shards={shards}"] if shards else []
    return load_config(PARAMS, [f"recipe={recipe}", *paths, *overrides])


def build(config, model: str = "resnet18", *, devices: int = 1) -> tuple[Classifier, L.Trainer]:
    """The module and optimizer a training with `config` would start from, without training."""
    recipe = config.train
    net = create_model(model, num_classes=4, drop_rate=recipe.drop_rate, drop_path_rate=recipe.drop_path_rate)
    classifier = Classifier(net, num_classes=4, recipe=recipe)
    trainer = L.Trainer(
        **OmegaConf.to_container(config.trainer) | {"accelerator": "cpu", "devices": devices}, logger=False, enable_checkpointing=False
    )
    classifier.trainer = trainer
    return classifier, trainer


def test_the_paper_recipes_ship_with_the_demo_one() -> None:
    assert {"demo", "resnet_he2016", "resnet_rs", "efficientnet"} <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_builds_a_module_optimizer_and_transforms(recipe: str, shards: Path) -> None:
    config = recipe_config(recipe, "trainer.precision=32-true", shards=shards)
    classifier, _ = build(config)
    optimization = classifier.configure_optimizers()
    assert optimization["optimizer"].param_groups
    datamodule = datamodule_for(config, classifier.net, batch_size=2, num_workers=0)
    assert datamodule.train_transform is not None and datamodule.eval_transform is not None


def test_params_yaml_refines_the_recipe_and_overrides_refine_both(tmp_path: Path) -> None:
    (tmp_path / "pipelines" / "recipes").mkdir(parents=True)
    (tmp_path / "pipelines" / "recipes" / "mine.yaml").write_text("train:\n  lr: 0.5\n  epochs: 7\n")
    (tmp_path / "params.yaml").write_text("recipe: mine\ntrain:\n  epochs: 3\n")
    config = load_config(tmp_path / "params.yaml", ["train.batch_size=4"])
    assert (config.train.lr, config.train.epochs, config.train.batch_size) == (0.5, 3, 4)


def test_an_unknown_recipe_names_the_known_ones() -> None:
    with pytest.raises(OakError, match=r"recipe 'resnet_rz': .*not found; known recipes: demo, efficientnet"):
        load_config(PARAMS, ["recipe=resnet_rz"])


def test_a_recipe_sets_only_train_and_trainer(tmp_path: Path) -> None:
    (tmp_path / "pipelines" / "recipes").mkdir(parents=True)
    (tmp_path / "pipelines" / "recipes" / "bad.yaml").write_text("models: [resnet18]\n")
    with pytest.raises(OakError, match=r"bad.yaml: a recipe sets only train and trainer; move models to params.yaml"):
        load_config(tmp_path / "missing.yaml", ["recipe=bad"])


def test_he2016_momentum_sgd_with_linear_lr_scaling_and_step_decay() -> None:
    config = recipe_config("resnet_he2016", "trainer.accumulate_grad_batches=2")
    classifier, _ = build(config)
    optimization = classifier.configure_optimizers()
    optimizer, scheduler = optimization["optimizer"], optimization["lr_scheduler"]["scheduler"]
    assert type(optimizer) is torch.optim.SGD
    assert (optimizer.defaults["momentum"], optimizer.defaults["nesterov"]) == (0.9, False)
    global_batch = 32 * 2  # per device x accumulation, on one device
    assert optimizer.defaults["lr"] == pytest.approx(0.1 * global_batch / 256)
    assert isinstance(scheduler, StepLRScheduler)
    scheduler.step(epoch=65)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * global_batch / 256 * 0.1**2)


def test_no_weight_decay_on_norms_and_biases() -> None:
    classifier, _ = build(recipe_config("resnet_he2016"))
    groups = classifier.configure_optimizers()["optimizer"].param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, parameter in classifier.net.named_parameters():
        assert (id(parameter) in decayed) == (parameter.ndim > 1), name


def test_efficientnet_tensorflow_rmsprop_and_its_stepped_decay() -> None:
    classifier, _ = build(recipe_config("efficientnet"), "efficientnet_b0")
    optimization = classifier.configure_optimizers()
    optimizer, scheduler = optimization["optimizer"], optimization["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, RMSpropTF)
    assert (optimizer.defaults["eps"], optimizer.defaults["alpha"], optimizer.defaults["momentum"]) == (1e-3, 0.9, 0.9)
    scheduler.step(epoch=12)  # after 5 warmup epochs: 12 // 2.4 = 5 decays
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.256 * 128 / 4096 * 0.97**5)
    drop_paths = [m for m in classifier.net.modules() if isinstance(m, DropPath)]
    assert drop_paths and max(m.drop_prob for m in drop_paths) == pytest.approx(0.2, abs=0.02)
    assert classifier.net.drop_rate == 0.2


def test_resnet_rs_regularisation_reaches_the_model_and_data(shards: Path) -> None:
    config = recipe_config("resnet_rs", "train.drop_path_rate=0.1", shards=shards)
    classifier, trainer = build(config)
    assert isinstance(classifier.configure_optimizers()["lr_scheduler"]["scheduler"], CosineLRScheduler)
    assert classifier.train_loss.label_smoothing == 0.1
    assert classifier.net.drop_rate == 0.25
    assert max(m.drop_prob for m in classifier.net.modules() if isinstance(m, DropPath)) == pytest.approx(0.1)
    assert classifier.ema is not None and classifier.ema.decay == 0.9999
    assert classifier._evaluated_net() is classifier.ema.module
    assert classifier.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert trainer.precision == "bf16-mixed"
    datamodule = datamodule_for(config, classifier.net, batch_size=2, num_workers=0)
    assert any(isinstance(t, RandAugment) for t in datamodule.train_transform.transforms)
    train_crop = datamodule.train_transform.transforms[0].size
    eval_crop = [t for t in datamodule.eval_transform.transforms if type(t).__name__ == "CenterCrop"][0].size
    assert (train_crop, eval_crop) == ((160, 160), (224, 224))


def test_mixup_and_cutmix_replace_the_loss_with_soft_targets() -> None:
    config = recipe_config("demo", "train.mixup_alpha=0.2", "train.cutmix_alpha=1.0", "train.label_smoothing=0.1")
    classifier, _ = build(config)
    assert (classifier.mixup.mixup_alpha, classifier.mixup.cutmix_alpha, classifier.mixup.label_smoothing) == (0.2, 1.0, 0.1)
    assert isinstance(classifier.train_loss, SoftTargetCrossEntropy)
    with pytest.raises(OakError, match=r"train.batch_size=15: mixup and cutmix pair the images"):
        build(recipe_config("demo", "train.mixup_alpha=0.2", "train.batch_size=15"))


def test_random_erasing_is_in_the_training_transform(shards: Path) -> None:
    config = recipe_config("demo", "train.random_erasing=0.25", shards=shards)
    classifier, _ = build(config)
    transforms = datamodule_for(config, classifier.net, batch_size=2, num_workers=0).train_transform.transforms
    [erasing] = [t for t in transforms if isinstance(t, RandomErasing)]
    assert erasing.probability == 0.25


def test_trainer_knobs_reach_lightning() -> None:
    config = recipe_config(
        "demo", "trainer.sync_batchnorm=true", "trainer.deterministic=true", "trainer.precision=bf16-mixed", "trainer.strategy=ddp"
    )
    _, trainer = build(config, devices=2)
    assert trainer.precision == "bf16-mixed"
    assert trainer.strategy._layer_sync is not None  # SyncBatchNorm conversion under DDP
    assert torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)


def test_compile_compiles_the_network_in_place() -> None:
    classifier, _ = build(recipe_config("demo", "train.compile=true"))
    assert classifier.net._compiled_call_impl is not None
    assert all(not name.startswith("_orig_mod") for name in classifier.net.state_dict())
