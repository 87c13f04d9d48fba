"""The paper's figures make its point: Fig. 5 compares both families' training speed at one setting (a batch halved
where it did not fit, as Bello et al. time), Fig. 6 shows every step of the chain by kind, Fig. 4's lines have enough
points for their shape, Fig. 9 shows Tan and Le's values beside Oak's runs."""

from collections import defaultdict

import pytest

from oak.report.claims import FAILS, HOLDS, UNCHECKED, UNRESOLVED
from oak.report.scaling import PAPER_PANEL, scaling_caption, scaling_panels, scaling_reference, scaling_title
from oak.report.speed import EFFICIENTNET, NAMED_PAIR, RESNET_RS, SpeedPoint, why_unjudgeable, speed_claim, speed_figure, speed_points
from oak.report.steps import KIND_COLOURS, paper_steps, run_steps, steps_figure
from oak.studies.plan import Run, plan_rows, row_key
from oak.studies.study import load_studies

STUDIES = load_studies()
IMAGENET = plan_rows(STUDIES, "imagenet")
BY_NAME = {study.name: study for study in STUDIES}


def timed(batch: int, precision: str, images_per_second: float) -> dict:
    return {"batch_size": batch, "precision": precision, "images_per_second": images_per_second}


def test_fig5_has_every_planned_point_of_both_families_and_names_the_ones_not_timed_at_its_setting() -> None:
    measurement = {
        "device": "a GPU",
        "runs": {
            "efficientnet_b0": timed(128, "bf16-mixed", 1500.0) | {"channels_last": False},
            "efficientnet_b6": timed(64, "bf16-mixed", 90.0),  # another batch, not for want of memory: not comparable
            "efficientnet_b7": timed(64, "bf16-mixed", 55.0) | {"batch_limited_by": "memory"},  # 128 did not fit
            "resnetrs200": timed(128, "bf16-mixed", 700.0) | {"channels_last": True},
            "resnet200": timed(32, "16-mixed", 600.0),  # Fig. 3's plain ResNet-200: neither family
        },
    }
    setting, points = speed_points(STUDIES, IMAGENET, measurement)
    assert setting == (128, "bf16-mixed")
    labels = {point.label: point for point in points}
    assert {label for label, point in labels.items() if point.family == EFFICIENTNET} == {f"EfficientNet-B{phi}" for phi in range(8)}
    assert {label for label, point in labels.items() if point.family == RESNET_RS} == {
        row.label for row in BY_NAME["fig5_resnet_rs"].rows
    }
    assert not any("ResNet-200" in label and "RS" not in label for label in labels)
    assert not any(label.startswith("B0 ") for label in labels)  # Fig. 9's B0 at 448 px is no compound point
    assert labels["EfficientNet-B0"].images_per_second == 1500.0 and labels["EfficientNet-B0"].channels_last is False
    assert labels["EfficientNet-B6"].images_per_second is None and labels["EfficientNet-B6"].missing == "timed at batch 64, bf16-mixed"
    b7 = labels["EfficientNet-B7"]  # Bello et al.: "an initial training batch size of 128 images, which is divided by 2 until it fits"
    assert b7.images_per_second == 55.0 and b7.halved and b7.batch == 64
    assert labels["ResNet-RS-270-256"].missing == "not measured"
    assert len([point for point in points if point.run == "efficientnet_b3"]) == 1  # Table 5's and Table 6's B3: one run, one point


def point(label: str, family: str, top1: float, speed: float | None, batch: int = 128, halved: bool = False) -> SpeedPoint:
    channels_last = family == RESNET_RS  # as the recipes time them: ResNet-RS channels_last, EfficientNet NCHW
    return SpeedPoint(label, family, top1, label, speed, "" if speed else "not measured", batch, channels_last, halved)


RS420, B7 = NAMED_PAIR


@pytest.mark.parametrize(
    ("rs_speed", "verdict"),
    [(300.0, HOLDS), (104.0, UNRESOLVED), (50.0, FAILS)],  # B7 at 100 images/s; one timing: within 10% is noise
)
def test_fig5s_claim_is_judged_on_the_pair_the_paper_names_and_states_how_each_was_timed(rs_speed: float, verdict: str) -> None:
    points = [
        point(B7, EFFICIENTNET, 84.4, 100.0, batch=64, halved=True),
        point(RS420, RESNET_RS, 84.4, rs_speed),
        point("EfficientNet-B6", EFFICIENTNET, 84.0, 10.0),  # a pair far faster for ResNet-RS: listed, not judged on
        point("ResNet-RS-50-160", RESNET_RS, 78.8, 10_000.0),  # far faster, but far less accurate: not a pair
        point("ResNet-RS-350-256", RESNET_RS, 84.0, None),
    ]
    claim = speed_claim(points, "a GPU", (128, "bf16-mixed"))
    assert claim.verdict == verdict
    assert "on a GPU, batch 128 (EfficientNet-B7: 64, the largest that fit), bf16-mixed" in claim.text
    assert "ResNet-RS channels_last" in claim.text and "EfficientNet NCHW" in claim.text
    assert f"{RS420} (84.4, batch 128)" in claim.evidence and f"{B7} (84.4, batch 64)" in claim.evidence
    assert "ResNet-RS-50-160" not in claim.evidence and "1 planned points not measured" in claim.evidence
    assert "not judged on" in claim.evidence and "EfficientNet-B6" in claim.evidence


def test_fig5s_claim_is_not_checked_where_the_papers_pair_was_not_both_timed() -> None:
    points = [
        point("EfficientNet-B6", EFFICIENTNET, 84.0, 100.0), point(RS420, RESNET_RS, 84.4, 250.0), point(B7, EFFICIENTNET, 84.4, None)
    ]
    claim = speed_claim(points, "a GPU", (128, "bf16-mixed"))
    assert claim.verdict == UNCHECKED and f"{B7} missing" in claim.evidence


def test_timings_of_a_capped_batch_or_a_few_steps_judge_no_speed_claim() -> None:
    """The CPU's file: 2 steps after 1 warm-up at a batch capped at 2; its speeds are drawn, never judged."""
    cpu = {"device": "a CPU", "device_kind": "cpu", "batch_size_cap": 2, "steps": 2, "warmup": 1}
    reason = why_unjudgeable(cpu)
    assert "batch capped at 2" in reason and "2 timed steps after 1 warm-up, no repeats" in reason
    assert why_unjudgeable({"device": "a GPU", "device_kind": "cuda", "batch_size_cap": None, "steps": 20, "warmup": 5}) == ""
    points = [point(B7, EFFICIENTNET, 84.4, 1.0, batch=2), point(RS420, RESNET_RS, 84.4, 0.5, batch=2)]
    claim = speed_claim(points, "a CPU", (2, "32-true"), unjudged=reason)
    assert claim.verdict == UNCHECKED and claim.evidence.startswith("not judged: batch capped at 2")
    figure = speed_figure(points, "a CPU", (2, "32-true"), unjudged=reason)
    assert "not judged" in figure.axes[0].get_title() and any("Not judged" in text.get_text() for text in figure.texts)


def test_fig5s_figure_states_device_batch_precision_memory_formats_and_lists_the_missing_points() -> None:
    points = [
        point("EfficientNet-B0", EFFICIENTNET, 76.3, 1500.0),
        point(B7, EFFICIENTNET, 84.4, 55.0, batch=64, halved=True),
        point("ResNet-RS-200-256", RESNET_RS, 83.4, 700.0),
        point("ResNet-RS-270-256", RESNET_RS, 83.8, None),
    ]
    figure = speed_figure(points, "a GPU", (128, "bf16-mixed"))
    [axes] = figure.axes
    texts = " ".join(text.get_text() for text in figure.texts + axes.texts + [axes.title]).replace("\n", " ")
    assert "a GPU" in texts and "batch 128" in texts and "bf16-mixed" in texts
    assert "ResNet-RS channels_last" in texts and "EfficientNet NCHW" in texts
    assert "B7 (batch 64)" in texts  # the halved batch marked at its point
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert "ResNet-RS (channels_last)" in legend and "EfficientNet (NCHW)" in legend
    assert any("batch 64: 128 did not fit" in entry for entry in legend)
    assert "not measured: ResNet-RS-270-256" in texts


def test_only_the_speed_figure_is_titled_as_the_papers_fig5() -> None:
    fig5 = BY_NAME["fig5_resnet_rs"]
    assert "Fig. 5" not in scaling_title(fig5) and "ResNet-RS" in scaling_title(fig5)
    assert scaling_caption(fig5).startswith(scaling_title(fig5)) and "not the paper's Fig. 5" in scaling_caption(fig5)
    assert scaling_title(BY_NAME["fig4_depth_width"]) == "Fig. 4" and scaling_caption(BY_NAME["fig4_depth_width"]) == "the paper's Fig. 4"


def test_fig9_has_a_panel_of_tan_and_les_values_showing_compound_scaling_past_where_one_dimension_saturates() -> None:
    from oak.report.build import evaluation_sizes

    fig9 = BY_NAME["fig9_single_dimension"]
    panels = scaling_panels(fig9, {row_key(fig9, row): "no run" for row in fig9.rows}, {}, {}, evaluation_sizes(IMAGENET))
    paper = panels[PAPER_PANEL]
    assert set(paper) == {"width", "depth", "resolution", "compound"}
    tops = {series: [top1 for _, top1, _ in points] for series, points in paper.items()}
    # Tan and Le 2019 (ICML), Table 7: B0 76.3, each dimension at about 4x MACs 78.9-79.1, compound (B3) 81.1
    assert tops == {"width": [76.3, 78.9], "depth": [76.3, 79.0], "resolution": [76.3, 79.1], "compound": [76.3, 81.1]}
    level, _ = scaling_reference(fig9)
    assert max(top[-1] for series, top in tops.items() if series != "compound") < level < tops["compound"][-1]


def test_fig6_shows_every_step_of_the_chain_by_its_kind() -> None:
    chain = BY_NAME["fig3_training_methods"]
    steps = paper_steps(chain)
    assert [label for label, _, _ in steps] == [row.label for row in chain.rows]
    kinds = [kind for _, kind, _ in steps]
    assert kinds[0] == "baseline" and set(kinds[1:]) <= set(KIND_COLOURS) and kinds[-1] == "architecture"
    assert "regularisation" in kinds and "training methods" in kinds
    assert all(value is not None for _, _, value in steps)  # Bello et al.'s Table 1 gives every step


def test_fig6_names_a_step_without_a_run_in_the_profile_instead_of_drawing_it() -> None:
    chain = BY_NAME["fig3_training_methods"]
    demo = plan_rows(STUDIES, "demo")
    evaluated = {run.name: {"top1": 50.0} for run in demo.values() if isinstance(run, Run)}
    steps = run_steps(chain, demo, evaluated)
    skipped = [label for label, _, value in steps if value is None]
    assert skipped and all(not isinstance(demo[row_key(chain, row)], Run) for row in chain.rows if row.label in skipped)
    figure = steps_figure({"paper": paper_steps(chain), "runs": steps}, title="Fig. 6")
    assert [text.get_text() for text in figure.axes[1].texts].count("no run") == len(skipped)


def test_every_depth_line_of_fig4_has_at_least_three_depths_in_the_imagenet_profile() -> None:
    depth_lines = defaultdict(set)
    study = BY_NAME["fig4_depth_width"]
    for row in study.rows:
        train = row.profiles["imagenet"].settings["train"]
        for series in row.series:
            if series.startswith("depth"):
                depth_lines[(series, train["epochs"])].add(row.model)
    assert len(depth_lines) == 12  # 4 resolutions x 3 training lengths
    assert all(len(models) >= 3 for models in depth_lines.values()), depth_lines
    assert all(len(models) == 4 for (series, _), models in depth_lines.items() if series == "depth")  # 224 px: 50 to 200


def test_a_throughput_figure_says_the_batch_precision_and_threads_its_runs_trained_at() -> None:
    from omegaconf import OmegaConf

    from oak.report.speed import training_setting

    def config(batch: int, threads: int | None) -> OmegaConf:
        return OmegaConf.create({"train": {"batch_size": batch, "cpu_threads": threads}, "trainer": {"precision": "32-true"}})

    assert training_setting([config(32, 1), config(32, 1)]) == "batch 32, 32-true, 1 CPU thread"
    assert training_setting([config(32, 1), config(64, None), config(32, 1)]) == (
        "batch 32, 32-true, 1 CPU thread (2 runs); batch 64, 32-true, one CPU thread per core (1 run)"
    )


def test_a_curves_figure_of_many_runs_keeps_its_legend_beside_the_plot_and_gives_each_run_its_own_look() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from oak.report.figures import training_curves

    curves = {f"run{index}": [{"epoch": 0, "val/top1": 10.0 + index}, {"epoch": 1, "val/top1": 20.0 + index}] for index in range(20)}
    figure = training_curves(curves, "val/top1", "validation top-1 (%)", title="Training curves")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # lays the figure out as saving it does
    renderer = canvas.get_renderer()
    [axes] = figure.axes
    legend = axes.get_legend().get_window_extent(renderer)
    assert legend.x0 >= axes.get_window_extent(renderer).x1  # beside the plot, not over its lines or its title
    assert legend.x1 <= figure.bbox.x1  # and inside the figure
    looks = {(line.get_color(), line.get_linestyle()) for line in axes.get_lines()}
    assert len(looks) == 20


def test_a_scaling_figures_lines_share_a_colour_per_resolution_and_a_style_per_way_of_scaling() -> None:
    from oak.report.figures import series_styles

    styles = series_styles(["depth", "width", "depth, 128 px", "width, 128 px"])
    assert styles["depth, 128 px"]["color"] == styles["width, 128 px"]["color"] != styles["depth"]["color"]
    assert styles["depth"]["linestyle"] == styles["depth, 128 px"]["linestyle"] != styles["width"]["linestyle"]
    alone = series_styles(["width", "depth", "resolution", "compound"])  # Fig. 9: one group, a colour per way
    assert len({style["color"] for style in alone.values()}) == 4
