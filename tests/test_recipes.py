"""Training recipes: files in pipelines/recipes whose every knob reaches the optimizer, model or data."""

import math
import re
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from params_files import params_file
from timm.data.auto_augment import AutoAugment, RandAugment
from timm.layers import DropPath
from timm.loss import SoftTargetCrossEntropy
from timm.optim import RMSpropTF
from timm.scheduler import CosineLRScheduler, PolyLRScheduler, StepLRScheduler

from oak.config.load import load_config, read_yaml
from oak.config.notes import recipe_notes
from oak.config.resolve import batch_note
from oak.report.differences import differences_page
from oak.errors import OakError
from oak.training.classifier import Classifier, WarmupEma
from oak.training.setup import build_net, datamodule_for

ROOT = Path(__file__).parents[1]
PARAMS = ROOT / "params.yaml"
RECIPES = sorted(path.stem for path in (ROOT / "pipelines" / "recipes").glob("*.yaml"))


def recipe_config(recipe: str, *overrides: str, shards: Path | None = None):
    paths = [f"paths.shards={shards}"] if shards else []
    return load_config(PARAMS, [f"recipe={recipe}", *paths, *overrides])


UPDATES = 10  # optimizer updates per epoch in these tests


def build(config, model: str = "resnet18", *, devices: int = 1) -> tuple[Classifier, L.Trainer]:
    """The module and optimizer a training with `config` would start from, without training.

    Without a fit Lightning cannot count an epoch's batches, so the schedule is built for UPDATES per epoch.
    """
    net = build_net(config.train, model, num_classes=4)
    classifier = Classifier(net, num_classes=4, recipe=config.train)
    trainer = L.Trainer(
        **OmegaConf.to_container(config.trainer) | {"accelerator": "cpu", "devices": devices}, logger=False, enable_checkpointing=False
    )
    classifier.trainer = trainer
    classifier.updates_per_epoch = lambda: UPDATES
    return classifier, trainer


def lr_after(optimization: dict, epochs: float) -> float:
    """The learning rate the scheduler sets after `epochs` epochs of updates."""
    optimization["lr_scheduler"]["scheduler"].step_update(num_updates=round(epochs * UPDATES))
    return optimization["optimizer"].param_groups[0]["lr"]


def test_the_paper_recipes_ship_with_the_demo_one() -> None:
    assert {"demo", "resnet_he2016", "resnet_rs", "efficientnet"} <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_builds_a_module_optimizer_and_transforms(recipe: str, shards: Path) -> None:
    config = recipe_config(recipe, "trainer.precision=32-true", shards=shards)
    classifier, _ = build(config)
    optimization = classifier.configure_optimizers()
    assert optimization["optimizer"].param_groups
    datamodule = datamodule_for(config, batch_size=2, num_workers=0)
    assert datamodule.train_transform is not None and datamodule.eval_transform is not None


def test_params_yaml_refines_the_recipe_and_overrides_refine_both(tmp_path: Path) -> None:
    (tmp_path / "pipelines" / "recipes").mkdir(parents=True)
    (tmp_path / "pipelines" / "recipes" / "mine.yaml").write_text("train:\n  lr: 0.5\n  epochs: 7\n")
    config = load_config(params_file(tmp_path, "recipe: mine\ntrain:\n  epochs: 3\n"), ["train.batch_size=4"])
    assert (config.train.lr, config.train.epochs, config.train.batch_size) == (0.5, 3, 4)


def test_an_unknown_recipe_names_the_known_ones() -> None:
    with pytest.raises(OakError, match=r"recipe 'resnet_rz': .*not found; known recipes: demo, efficientnet"):
        load_config(PARAMS, ["recipe=resnet_rz"])


def test_a_recipe_sets_only_train_and_trainer(tmp_path: Path) -> None:
    (tmp_path / "pipelines" / "recipes").mkdir(parents=True)
    (tmp_path / "pipelines" / "recipes" / "bad.yaml").write_text("models: [resnet18]\n")
    with pytest.raises(OakError, match=r"bad.yaml: a recipe sets only train and trainer; move models to params.yaml"):
        load_config(params_file(tmp_path), ["recipe=bad"])


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
    assert optimization["lr_scheduler"]["interval"] == "step"
    assert lr_after(optimization, 65) == pytest.approx(0.1 * global_batch / 256 * 0.1**2)


@pytest.mark.parametrize(("recipe", "fused"), [("demo", True), ("resnet_he2016", True), ("efficientnet", False)])
def test_pytorchs_optimizers_take_their_fused_step_and_timms_own_keep_theirs(recipe: str, fused: bool) -> None:
    classifier, _ = build(recipe_config(recipe), "efficientnet_b0" if recipe == "efficientnet" else "resnet18")
    assert classifier.configure_optimizers()["optimizer"].defaults.get("fused", False) is fused


def test_no_weight_decay_on_norms_and_biases() -> None:
    classifier, _ = build(recipe_config("resnet_he2016"))
    groups = classifier.configure_optimizers()["optimizer"].param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, parameter in classifier.net.named_parameters():
        assert (id(parameter) in decayed) == (parameter.ndim > 1), name


def test_efficientnet_tensorflow_rmsprop_per_update_staircase_decay_and_batchnorm() -> None:
    classifier, _ = build(recipe_config("efficientnet"), "efficientnet_b0")
    optimization = classifier.configure_optimizers()
    optimizer = optimization["optimizer"]
    assert isinstance(optimizer, RMSpropTF)
    assert (optimizer.defaults["eps"], optimizer.defaults["alpha"], optimizer.defaults["momentum"]) == (1e-3, 0.9, 0.9)
    peak = 0.016 * 128 / 256  # 0.256 at 4096
    assert lr_after(optimization, 1) == pytest.approx(peak / 5)  # warmup from 0 over 5 epochs, per update
    assert lr_after(optimization, 12) == pytest.approx(peak * 0.97**5)  # 12 // 2.4 = 5 decays
    assert lr_after(optimization, 12.5) == pytest.approx(peak * 0.97**5)  # a staircase
    assert lr_after(optimization, 12.1 + 0.05) == pytest.approx(peak * 0.97**5)
    assert lr_after(optimization, 14.4) == pytest.approx(peak * 0.97**6)  # decays mid-epoch, on the update that crosses 6 x 2.4
    drop_paths = [m for m in classifier.net.modules() if isinstance(m, DropPath)]
    assert drop_paths and max(m.drop_prob for m in drop_paths) == pytest.approx(0.2, abs=0.02)
    assert classifier.net.drop_rate == 0.2 and classifier.train_loss.label_smoothing == 0.1
    norms = [m for m in classifier.net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all((m.momentum, m.eps) == (0.01, 1e-3) for m in norms)  # TensorFlow's 0.99 and 1e-3


def test_efficientnet_evaluates_a_bicubic_centre_crop_padded_by_32_pixels(shards: Path) -> None:
    # tensorflow/tpu's preprocessing.py crops size / (size + 32) of the shorter side: B1's 240 px resizes to 272, where
    # the fraction rounded to four places (0.8824) would resize to 271
    for size in (240, 300, 600):
        config = recipe_config("efficientnet", f"train.image_size={size}", shards=shards)
        datamodule = datamodule_for(config, batch_size=2, num_workers=0)
        resize, crop = datamodule.eval_transform.transform.transforms[:2]
        assert (resize.size, crop.size, resize.interpolation.value) == (size + 32, (size, size), "bicubic")
    assert any(isinstance(t, AutoAugment) for t in datamodule.train_transform.transform.transforms)


def test_resnet_rs_regularisation_reaches_the_model_and_data(shards: Path) -> None:
    config = recipe_config("resnet_rs", "train.drop_path_rate=0.1", shards=shards)
    classifier, trainer = build(config)
    optimization = classifier.configure_optimizers()
    assert isinstance(optimization["lr_scheduler"]["scheduler"], CosineLRScheduler)
    assert optimization["optimizer"].defaults["nesterov"] is True
    peak = 0.1 * 128 / 256
    assert lr_after(optimization, 2.5) == pytest.approx(peak / 2)  # half way through the 5 warmup epochs
    assert lr_after(optimization, 175) == pytest.approx(peak / 2)  # cosine over all 350 epochs, warmup inside them, as TF2's
    assert classifier.train_loss.label_smoothing == 0.1
    assert classifier.net.drop_rate == 0.25
    assert max(m.drop_prob for m in classifier.net.modules() if isinstance(m, DropPath)) == pytest.approx(0.1)
    assert classifier.ema is not None and classifier.ema.decay == pytest.approx(0.9999 ** (128 / 4096))  # per update at 128, not 4096
    assert classifier._evaluated_net() is classifier.ema.module
    assert all(m.momentum == 1.0 for m in classifier.net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert classifier.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert trainer.precision == "bf16-mixed"
    datamodule = datamodule_for(config, batch_size=2, num_workers=0)
    assert any(isinstance(t, RandAugment) for t in datamodule.train_transform.transform.transforms)
    train_crop = datamodule.train_transform.transform.transforms[0].size
    eval_crop = [t for t in datamodule.eval_transform.transform.transforms if type(t).__name__ == "CenterCrop"][0].size
    assert (train_crop, eval_crop) == ((160, 160), (160, 160))  # the configs evaluate at the training size


def test_resnet_rs_randaugment_applies_every_chosen_op_at_the_configs_magnitude_as_tensorflow(shards: Path) -> None:
    """distort_image_with_randaugment applies its selected op every time at magnitude/10 of the op's range, unclamped:
    timm clamps at 10 and applies each op with p=0.5 unless the policy says mmax and p."""
    from oak.studies.plan import plan_runs
    from oak.studies.study import load_studies

    runs = plan_runs(load_studies(ROOT / "pipelines" / "studies"), "imagenet", PARAMS)
    m15 = next(run for run in runs.values() if "rand-m15" in str(run.study_settings()))  # RS-101 at 192 px and larger
    config = load_config(PARAMS, [f"paths.shards={shards}"], study=m15.study_settings())
    assert config.train.auto_augment == "rand-m15-n2-mmax15-p1.0"
    for auto_augment, magnitude in ((config.train.auto_augment, 15), (recipe_config("resnet_rs").train.auto_augment, 10)):
        step_config = recipe_config("resnet_rs", f"train.auto_augment={auto_augment}", shards=shards)
        transforms = datamodule_for(step_config, batch_size=2, num_workers=0).train_transform.transform.transforms
        ops = next(t for t in transforms if isinstance(t, RandAugment)).ops
        assert {(op.magnitude, op.magnitude_max or 10, op.prob) for op in ops} == {(magnitude, max(magnitude, 10), 1.0)}


def test_inception_recipe_keeps_the_papers_lr_per_image_dropout_and_auxiliary_loss(shards: Path) -> None:
    config = recipe_config("inception_szegedy2016", "train.aux_loss_weight=0.4", "trainer.accumulate_grad_batches=2", shards=shards)
    classifier, _ = build(config, "inception_v3")
    optimization = classifier.configure_optimizers()
    assert optimization["optimizer"].defaults["lr"] == pytest.approx(0.045 * 64 / 32)  # 0.045 per 32 images
    assert lr_after(optimization, 4) == pytest.approx(0.045 * 2 * 0.94**2)
    assert classifier.net.aux_logits and classifier.aux_loss_weight == 0.4
    assert classifier.net.head_drop.p == 0.2  # keep probability 0.8
    assert all((m.momentum, m.eps) == (3e-4, 1e-3) for m in classifier.net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    images, targets = torch.randn(2, 3, 299, 299), torch.tensor([0, 1])  # the auxiliary head needs 17x17 features
    main, aux = classifier.net(images)
    expected = classifier.train_loss(main, targets) + 0.4 * classifier.train_loss(aux, targets)
    assert float(classifier.training_loss((main, aux), targets)) == pytest.approx(float(expected))
    normalise = datamodule_for(config, batch_size=2, num_workers=0).pixels
    assert (normalise.mean.flatten().tolist(), normalise.std.flatten().tolist()) == ([0.5] * 3, [0.5] * 3)


def test_an_auxiliary_loss_needs_a_model_with_an_auxiliary_classifier() -> None:
    with pytest.raises(OakError, match=r"inception_v4 has no auxiliary classifier .*set train.aux_loss_weight=0"):
        build(recipe_config("inception_szegedy2016", "train.aux_loss_weight=0.4"), "inception_v4")


def test_shufflenet_recipe_decays_linearly_to_zero_per_update() -> None:
    classifier, _ = build(recipe_config("shufflenet_ma2018"), "shufflenet_v2_x1_0")
    optimization = classifier.configure_optimizers()
    assert isinstance(optimization["lr_scheduler"]["scheduler"], PolyLRScheduler)
    peak = 0.5 * 128 / 1024
    assert optimization["optimizer"].defaults["lr"] == pytest.approx(peak)
    assert lr_after(optimization, 60) == pytest.approx(peak * 0.75)
    assert lr_after(optimization, 239.9) == pytest.approx(peak * 0.1 / 240, rel=1e-3)
    assert classifier.train_loss.label_smoothing == 0.1


def test_the_evaluation_protocol_comes_from_the_recipe_not_the_models_timm_defaults(shards: Path) -> None:
    config = recipe_config("demo", shards=shards)
    transforms = datamodule_for(config, batch_size=2, num_workers=0).eval_transform.transform.transforms
    resize = transforms[0]
    assert (resize.size, resize.interpolation.value) == (36, "bilinear")  # floor(32 / 0.875), for resnet18 as for plain18


def test_ten_crop_evaluation_averages_the_softmax_of_the_corners_centre_and_mirrors(shards: Path) -> None:
    import io

    from PIL import Image

    config = recipe_config("demo", "train.eval_crops=10", shards=shards)
    transform = datamodule_for(config, batch_size=2, num_workers=0, eval_crops=10).eval_transform
    jpeg = io.BytesIO()
    Image.new("RGB", (90, 70), (200, 10, 10)).save(jpeg, "JPEG")
    crops = transform(jpeg.getvalue())
    assert crops.shape == (10, 3, 32, 32) and crops.dtype == torch.uint8
    classifier = Classifier(build_net(config.train, "resnet18", num_classes=4).eval(), num_classes=4)
    images = torch.randn(3, 10, 3, 64, 64)
    logged = {}
    classifier._log_metrics = lambda stage, logits, targets, loss: logged.update(logits=logits)
    with torch.no_grad():
        classifier.validation_step((images, torch.tensor([0, 1, 2])), 0)
        expected = classifier.net(images.flatten(0, 1)).softmax(-1).view(3, 10, 4).mean(1)
    assert torch.allclose(logged["logits"].exp(), expected, atol=1e-6)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.eval_crops=5", r"train.eval_crops=5: use 1 \(centre crop\) or 10"),
        ("train.interpolation=lanczos", r"train.interpolation=lanczos: use one of bilinear, bicubic"),
        ("train.epochs=0", r"train.epochs=0: use 1 or more$"),
        ("train.batch_size=0", r"train.batch_size=0: use 1 or more$"),
        ("train.schedule=linear", r"train.schedule=linear: use one of cosine, step, poly"),
        ("train.eval_crops=abc", r"key 'train.eval_crops'"),
        ("train.eval_crop=10", r"unknown key 'train.eval_crop'"),
        ("trainer.precision=bogus", r"trainer.precision=bogus: use one of 32-true, 16-mixed, bf16-mixed"),
        ("trainer.devices=abc", r"trainer.devices=abc: use a count \(2\), -1 or auto"),
        ("train.optimizer=bogus", r"train.optimizer=bogus: use a timm optimizer name"),
        ("train.auto_augment=bogus", r"train.auto_augment=bogus: use a timm policy"),
        ("train.auto_augment=rand-x9", r"train.auto_augment=rand-x9: use a timm policy"),
        ("train.lr_batch_size=0", r"train.lr_batch_size=0: use 1 or more \(the global batch the lr is for; null: the lr as given\)"),
        ("train.cpu_threads=0", r"train.cpu_threads=0: use 1 or more \(threads; null: one per core\)"),
    ],
)
def test_an_evaluation_or_recipe_setting_that_cannot_work_is_one_clear_error(override: str, message: str) -> None:
    with pytest.raises(OakError, match=message):
        recipe_config("demo", override)


def test_batchnorm_momentum_one_without_an_ema_is_refused() -> None:
    with pytest.raises(OakError, match=r"train.bn_momentum=1 keeps only the last batch's BatchNorm statistics"):
        recipe_config("resnet_rs", "train.ema_decay=null")


def test_mixup_and_cutmix_replace_the_loss_with_soft_targets() -> None:
    config = recipe_config("demo", "train.mixup_alpha=0.2", "train.cutmix_alpha=1.0", "train.label_smoothing=0.1")
    classifier, _ = build(config)
    assert (classifier.mixup.mixup_alpha, classifier.mixup.cutmix_alpha, classifier.mixup.label_smoothing) == (0.2, 1.0, 0.1)
    assert isinstance(classifier.train_loss, SoftTargetCrossEntropy)
    with pytest.raises(OakError, match=r"train.batch_size=15: mixup and cutmix pair the images"):
        build(recipe_config("demo", "train.mixup_alpha=0.2", "train.batch_size=15"))


def test_random_erasing_erases_part_of_each_chosen_training_image_on_the_device() -> None:
    classifier, _ = build(recipe_config("demo", "train.random_erasing=1.0"))
    images, targets = classifier.augmented(torch.zeros(4, 3, 64, 64), torch.tensor([0, 1, 2, 3]))
    erased = (images != 0).flatten(1).float().mean(1)
    assert all(0 < fraction < 1 for fraction in erased)  # every image (probability 1), part of each (timm: 2-33% of the area)
    assert targets.tolist() == [0, 1, 2, 3]


def test_trainer_knobs_reach_lightning() -> None:
    config = recipe_config(
        "demo", "trainer.sync_batchnorm=true", "trainer.deterministic=true", "trainer.precision=bf16-mixed", "trainer.strategy=ddp"
    )
    _, trainer = build(config, devices=2)
    assert trainer.precision == "bf16-mixed"
    assert trainer.strategy._layer_sync is not None  # SyncBatchNorm conversion under DDP
    assert torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)


def test_the_recipe_fixes_the_compute_threads_where_it_says_so() -> None:
    from oak.training.setup import use_cpu_threads

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        use_cpu_threads(recipe_config("demo", "train.cpu_threads=null").train)
        assert torch.get_num_threads() == 3  # null leaves PyTorch's as they are
        use_cpu_threads(recipe_config("demo").train)
        assert torch.get_num_threads() == 1  # the demo's
    finally:
        torch.set_num_threads(threads)


def test_channels_last_training_saves_its_weights_in_the_usual_layout() -> None:
    classifier, _ = build(recipe_config("demo", "train.channels_last=true"))
    assert not classifier.net.conv1.weight.is_contiguous()  # trained in NHWC
    checkpoint = {"state_dict": classifier.state_dict()}
    classifier.on_save_checkpoint(checkpoint)
    assert all(value.is_contiguous() for value in checkpoint["state_dict"].values())
    assert torch.equal(checkpoint["state_dict"]["net.conv1.weight"], classifier.net.conv1.weight)


def test_compile_compiles_the_network_in_place() -> None:
    classifier, _ = build(recipe_config("demo", "train.compile=true"))
    assert classifier.net._compiled_call_impl is not None
    assert all(not name.startswith("_orig_mod") for name in classifier.net.state_dict())


def test_ema_decay_warms_up_as_tensorflows_moving_average() -> None:
    """tf.train.ExponentialMovingAverage(decay, num_updates): min(decay, (1 + n) / (10 + n))."""
    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    ema = WarmupEma(net, decay=0.9999)
    assert [ema.get_decay(n) for n in (1, 10, 1000, 10**6)] == [2 / 11, 11 / 20, 1001 / 1010, 0.9999]
    initial_share = 1.0
    for update in range(1, 11):  # the weight is `update` after each update
        net.weight.data.fill_(update)
        ema.update(net, step=update)
        initial_share *= ema.get_decay(update)
    expected, share = 0.0, 1.0  # the EMA as a weighted sum of the trajectory 0 (initial), 1, ..., 10
    for update in range(10, 0, -1):
        expected += share * (1 - ema.get_decay(update)) * update
        share *= ema.get_decay(update)
    assert float(ema.module.weight) == pytest.approx(expected)
    assert initial_share == pytest.approx(math.prod((1 + n) / (10 + n) for n in range(1, 11)))
    assert initial_share < 1e-4  # without the warm-up: 0.9999 ** 10, the initial weights almost untouched


# Words that say a setting departs from the source; in a recipe's comments they may only point to its `differences`.
DIFFERENCE_WORDS = re.compile(r"differ\w*|depart\w*|instead of|unlike|not reproduced|stands? in|named", re.IGNORECASE)
POINTER = re.compile(r"Where Oak departs from [^,]*, `differences` below says how and why\.|see differences")


def comment_text(path: Path) -> str:
    return " ".join(line.split("#", 1)[1].strip() for line in path.read_text().splitlines() if "#" in line)


def test_comments_name_no_difference_the_recipe_does_not_declare_as_data() -> None:
    for path in (ROOT / "pipelines" / "recipes").glob("*.yaml"):
        named = DIFFERENCE_WORDS.findall(POINTER.sub("", comment_text(path)))
        assert not named, f"{path.name}: its comments name a difference ({named}); declare it under `differences:` instead"


def test_every_paper_recipe_cites_its_source_and_declares_its_differences() -> None:
    for path in (ROOT / "pipelines" / "recipes").glob("*.yaml"):
        notes = recipe_notes(read_yaml(path), path)
        assert notes.source, path.name
        if path.stem not in ("demo", "published"):
            assert notes.differences, path.name
            assert recipe_config(path.stem).train.reference_batch_size, f"{path.name}: the source's global batch is not declared"


def test_the_differences_page_lists_every_declared_difference_and_each_global_batch_unlike_the_sources() -> None:
    page = differences_page(PARAMS)
    for path in (ROOT / "pipelines" / "recipes").glob("*.yaml"):
        assert f"## `{path.stem}`" in page
        for difference in recipe_notes(read_yaml(path), path).differences:
            assert all(text.replace("|", "\\|") in page for text in (difference.source_value, difference.oak_value, difference.cited)), difference
    rs = page.split("## `resnet_rs`")[1].split("## ")[0]
    assert "| `train.global_batch_size` | 4096 | 128 (128 per device" in rs and "EMA decay per update 0.9999969" in rs
    assert "train.global_batch_size" not in page.split("## `demo`")[1].split("## ")[0]  # the demo has no source batch


def test_the_differences_page_lists_each_studys_declared_differences_after_the_recipes() -> None:
    from oak.studies.study import load_studies

    page = differences_page(PARAMS)
    recipes, studies = page.split("# Differences of the studies")
    declaring = [study for study in load_studies(ROOT / "pipelines" / "studies") if study.differences]
    assert {"fig3_training_methods", "fig4_depth_width", "table2"} <= {study.name for study in declaring}
    for study in declaring:
        section = studies.split(f"## `{study.name}`: ")[1].split("\n## ")[0]
        for difference in study.differences:
            assert all(text.replace("|", "\\|") in section for text in (difference.source_value, difference.oak_value, difference.cited)), difference
    assert "30, 60 and 80 of 90" in studies.split("## `fig3_training_methods`")[1].split("\n## ")[0]


def test_a_study_difference_without_a_field_or_with_an_unknown_one_is_one_error_naming_the_file(tmp_path: Path) -> None:
    from oak.studies.study import load_study

    study = "title: T\nsource: s\nmetric: top1\nrows:\n  - {label: A, model: resnet18}\ndifferences:\n  - %s\n"
    cases = [
        ("{setting: train.schedule, source_value: steps, oak_value: cosine, cited: Sec. 4}", "t.yaml: difference 1 ('train.schedule'): no 'why'"),
        ("{setting: train.schedule, source_value: s, oak_value: o, why: w, cited: c, paper: 1}", "t.yaml: difference 1: unknown field 'paper'"),
        ("{setting: train.shedule, source_value: s, oak_value: o, why: w, cited: c}", "no setting 'train.shedule'"),
    ]
    for entry, message in cases:
        path = tmp_path / "t.yaml"
        path.write_text(study % entry)
        with pytest.raises(OakError, match=re.escape(message)) as error:
            load_study(path)
        assert "\n" not in str(error.value)
    path.write_text("title: T\nsource: s\nmetric: top1\nrows:\n  - {label: A, model: resnet18}\ndifferences: {setting: x}\n")
    with pytest.raises(OakError, match=r"t\.yaml: 'differences' must be a list"):
        load_study(path)


@pytest.mark.parametrize(
    "difference, message",
    [
        ("{setting: train.epochs, source_value: '120', oak_value: '90', cited: Sec. 3.4}", "difference 1 ('train.epochs'): no 'why'"),
        ("{setting: train.colour_jitter, source_value: PCA, oak_value: '0.4', why: timm, cited: Sec. 3.4}", "no setting 'train.colour_jitter'"),
        ("{setting: train.epochs, source: '120', oak_value: '90', why: fixed, cited: Sec. 3.4}", "unknown field 'source'"),
        ("{setting: train.epochs, source_value: '', oak_value: '90', why: fixed, cited: Sec. 3.4}", "difference 1 ('train.epochs'): no 'source_value'"),
    ],
)
def test_a_recipe_difference_without_a_field_or_naming_no_setting_is_one_error_naming_the_file(
    tmp_path: Path, difference: str, message: str
) -> None:
    params = params_file(tmp_path)
    (tmp_path / "pipelines" / "recipes" / "bad.yaml").write_text(f"source: He et al. 2016\ndifferences:\n  - {difference}\ntrain:\n  epochs: 1\n")
    with pytest.raises(OakError, match=re.escape(message)) as error:
        load_config(params, ["recipe=bad"])
    assert "bad.yaml" in str(error.value)


def test_the_ema_decay_per_update_keeps_the_sources_average_over_epochs_at_any_global_batch() -> None:
    """0.9999 per update at 4096 averages about 10,000 updates, 32 epochs of ImageNet; at 128 it must average as many epochs."""
    one_device = recipe_config("resnet_rs").train
    assert one_device.global_batch_size == 128
    assert one_device.ema_decay_per_update == pytest.approx(0.9999 ** (128 / 4096))
    epochs_averaged = 128 / (1 - one_device.ema_decay_per_update) / 1_281_167
    assert epochs_averaged == pytest.approx(4096 / (1 - 0.9999) / 1_281_167, rel=1e-3)  # about 32 epochs either way
    sources_batch = recipe_config("resnet_rs", "trainer.devices=8", "trainer.num_nodes=2", "trainer.accumulate_grad_batches=2").train
    assert (sources_batch.global_batch_size, sources_batch.ema_decay_per_update) == (4096, 0.9999)
    assert batch_note(sources_batch) is None
    assert batch_note(one_device) == "global batch 128, the source's is 4096: lr scaled linearly from its value at 256; EMA decay per update 0.9999 -> 0.99999687"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.global_batch_size=4096", "train.global_batch_size=4096: Oak resolves it"),
        ("train.eval_crop_pct=0.9", "train.eval_crop_pct=0.9 and train.eval_crop_padding=32 both set the evaluation crop"),
    ],
)
def test_a_resolved_setting_or_two_crop_rules_at_once_are_refused(override: str, message: str) -> None:
    with pytest.raises(OakError, match=re.escape(message)):
        recipe_config("resnet_rs", override)


@pytest.mark.parametrize("size, resize", [(160, 192), (224, 256), (320, 352)])
def test_resnet_rs_evaluates_the_centre_crop_tensorflow_pads_by_32_pixels(shards: Path, size: int, resize: int) -> None:
    """tensorflow/tpu resnet_preprocessing.py: a centre square of size / (size + 32) of the shorter side, resized to size."""
    config = recipe_config("resnet_rs", f"train.image_size={size}", shards=shards)
    assert config.train.eval_crop_pct == pytest.approx(size / (size + 32))
    resize_step, crop = datamodule_for(config, batch_size=2, num_workers=0).eval_transform.transform.transforms[:2]
    assert (resize_step.size, crop.size) == (resize, (size, size))


def test_inception_crops_5_to_100_percent_of_the_area_as_slim_does() -> None:
    assert recipe_config("inception_szegedy2016").train.scale_min == 0.05


def test_a_run_says_in_its_tags_and_params_when_its_global_batch_is_not_its_sources(shards: Path) -> None:
    from oak.data.info import read_info
    from oak.tracking.tracker import run_params, run_tags

    info = read_info(shards)
    one_device = recipe_config("resnet_rs", shards=shards)
    assert run_tags(one_device, "train", info, "resnet50")["global_batch"] == batch_note(one_device.train)
    assert run_params(one_device, "resnet50", info)["train.global_batch_size"] == 128
    sources_batch = recipe_config("resnet_rs", "trainer.devices=32", shards=shards)
    assert "global_batch" not in run_tags(sources_batch, "train", info, "resnet50")


@pytest.mark.parametrize("recipe", ["resnet_rs", "efficientnet"])
def test_tensorflow_recipes_crop_at_least_the_tenth_of_the_image_min_object_covered_asks(recipe: str) -> None:
    """sample_distorted_bounding_box(min_object_covered=0.1, area_range=(0.08, 1.0)) over the whole image: 0.1 to 1."""
    assert recipe_config(recipe).train.scale_min == 0.1
