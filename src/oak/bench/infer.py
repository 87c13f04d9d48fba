"""`oak bench infer`: inference throughput at batch N and latency at batch 1, per model, on this device.

Randomly initialised weights (speed does not depend on their values), eval mode, no autograd.
Each figure is the median of repeated timed runs after warm-up, with the device synchronised.
"""

import platform
import statistics
import time

import torch

from oak.models import create_model


def device_name(device: torch.device) -> str:
    return (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
    )


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(run, device: torch.device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_infer(model_name: str, *, resolution: int, batch_size: int, device: torch.device, warmup: int = 2, repeats: int = 5) -> dict:
    model = create_model(model_name, num_classes=1000).to(device).eval()
    batch = torch.randn(batch_size, 3, resolution, resolution, device=device)
    single = batch[:1]
    with torch.inference_mode():
        for _ in range(warmup):
            model(batch)
            model(single)
        batch_seconds = _median_seconds(lambda: model(batch), device, repeats)
        single_seconds = _median_seconds(lambda: model(single), device, repeats)
    return {
        "model": model_name,
        "device": device_name(device),
        "resolution": resolution,
        "batch_size": batch_size,
        "images_per_second": round(batch_size / batch_seconds, 2),
        "latency_ms": round(1000 * single_seconds, 3),
    }
