"""`oak evaluate MODEL`: top-1, top-5 and loss of a trained checkpoint, or given weights, on the val shards."""

import json
import time
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from oak.data.info import read_info
from oak.errors import OakError
from oak.files import file_sha256, write_json
from oak.layout import CHECKPOINT_FILE, RUN_FILE, Layout
from oak.models import check_model_name, parameter_count
from oak.models.facts import model_facts
from oak.models.published import ImageNetClasses, Published, load_published
from oak.models.weights import load_weights
from oak.tracking.tracker import Tracker, dataset_input, run_params
from oak.training.classifier import Classifier
from oak.training.progress import shows_bar
from oak.training.setup import build_net, datamodule_for, progress_callbacks, use_cpu_threads


def preprocessing_layer(published: str) -> tuple[str, list[str]]:
    """The released weights' own preprocessing (oak.models.published) as a layer of settings, for `load_config`."""
    settings = [f"train.{key}={value}" for key, value in Published.parse(published).preprocessing().items()]
    return f"the preprocessing of {published}", settings


def evaluate(config: DictConfig, model: str, weights: Path | None = None, *, run: str | None = None, published: str | None = None) -> dict:
    """Evaluate `model` on every val sample and write its metrics, named `run` (default: the model).

    By default the checkpoint of that training run, adding the results to its MLflow run; with
    `weights`, that file (checkpoint, state_dict or safetensors) in a run of its own; with
    `published`, released weights (oak.models.published) in a run of their own.
    """
    run = run or model
    check_model_name(model)
    if weights is not None and weights.exists() and not weights.is_file():
        raise OakError(f"{weights}: not a file (a folder, pipe or device); give the checkpoint, state_dict or .safetensors file itself")
    use_cpu_threads(config.train)
    tracker = Tracker(config)
    tracker.check_login()
    layout = Layout.of(config)
    info = read_info(layout.shards)
    if published:
        net, weights = load_published(Published.parse(published), layout.weights)
        net = ImageNetClasses(net, info.classes)
    else:
        net = build_net(config.train, model, info.num_classes)  # the trained architecture, auxiliary classifier included
        folder = layout.run_folder(run)
        if weights is None and not (folder / CHECKPOINT_FILE).exists():
            raise OakError(f"{folder / CHECKPOINT_FILE}: checkpoint not found; run `oak train` for this model first")
        load_weights(net, weights or folder / CHECKPOINT_FILE)
    run_file = layout.run_folder(run) / RUN_FILE
    run_id = json.loads(run_file.read_text())["run_id"] if run_file.exists() and weights is None else None
    run_id = run_id and tracker.existing_run(run_id)
    out = layout.published_metrics(run) if published else layout.weights_metrics(run) if weights else layout.eval_metrics(run)
    logger = tracker.run_logger(model=model, run=run, stage="evaluate", info=info, run_id=run_id)
    if run_id is None:  # a run of its own: what it evaluated, as a training's run says what it trained
        logger.log_hyperparams(run_params(config, model, info) | ({"weights": published} if published else {}))
    trainer = L.Trainer(
        accelerator=config.trainer.accelerator,
        devices=config.trainer.devices,  # with several, each sample is still counted once (see oak.loading.loader)
        num_nodes=config.trainer.num_nodes,
        strategy=config.trainer.strategy,
        precision=config.trainer.precision,
        logger=logger,
        enable_progress_bar=shows_bar(config.trainer.enable_progress_bar),
        enable_checkpointing=False,  # it trains nothing (and Lightning's checkpointing comes with an advertisement)
        callbacks=progress_callbacks(config, model),
    )
    start = time.perf_counter()
    [results] = trainer.test(
        Classifier(net, num_classes=info.num_classes),
        verbose=False,  # the command prints the results
        datamodule=datamodule_for(
            config, batch_size=config.evaluate.batch_size, num_workers=config.evaluate.num_workers, eval_crops=config.train.eval_crops
        ),
    )
    seconds = time.perf_counter() - start
    # The parameters the model classifies with: Inception-v3's auxiliary head only serves training.
    metrics = {
        "top1": results["eval/top1"],
        "top5": results["eval/top5"],
        "loss": results["eval/loss"],
        "params": parameter_count(net) - (parameter_count(net.AuxLogits) if getattr(net, "aux_logits", False) else 0),
        "samples": int(results["eval/samples"]),
    }
    if metrics["samples"] != info.samples("val"):
        raise OakError(
            f"evaluated {metrics['samples']} samples but the shard info lists {info.samples('val')}; run `oak verify` on the shards"
        )
    if not trainer.is_global_zero:
        return metrics
    if published:  # where the numbers come from: the weights, their file, the data
        metrics |= {"weights": published, "file": weights.name, "sha256": file_sha256(weights), "data": info.label}
    write_json(out, metrics)
    if published or weights is None:  # a pipeline stage's: `--weights` by hand is not one
        write_json(
            layout.timings("evaluate", run), {"seconds": round(seconds, 2), "images_per_second": round(metrics["samples"] / seconds, 1)}
        )
    # As the model is published (1000 classes) and at the resolution it was evaluated: not the params
    # of this run's head, and not under MLflow's own word "params".
    facts = model_facts(model, config.train.eval_image_size or config.train.image_size)
    logger.log_metrics({"model/parameters": facts.params, "model/gmacs": facts.macs / 1e9, "eval/seconds": round(seconds, 2)})
    logger.log_dataset(dataset_input(config, info, context="evaluation"))
    logger.set_tags({"stage": "train,evaluate" if run_id else "evaluate"} | ({"weights": published or str(weights)} if weights else {}))
    logger.log_artifact(out)
    logger.close()  # the wait for an absent tracking server comes after the results are on disk
    return metrics
