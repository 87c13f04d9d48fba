"""The paper's figures make its point: Fig. 5 compares both families' training speed at one setting, Fig. 6 shows
every step of the chain by kind, Fig. 4's lines have enough points for their shape."""

from collections import defaultdict

import pytest

from oak.report.claims import FAILS, HOLDS, UNCHECKED, UNRESOLVED
from oak.report.speed import EFFICIENTNET, RESNET_RS, SpeedPoint, speed_claim, speed_figure, speed_points
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
            "efficientnet_b0": timed(128, "bf16-mixed", 1500.0),
            "efficientnet_b7": timed(64, "bf16-mixed", 55.0),  # another batch: not comparable
            "resnetrs200": timed(128, "bf16-mixed", 700.0),
            "resnet200": timed(32, "16-mixed", 600.0),  # Fig. 3's plain ResNet-200: neither family
        },
    }
    setting, points = speed_points(STUDIES, IMAGENET, measurement)
    assert setting == (128, "bf16-mixed")
    labels = {point.label: point for point in points}
    assert {f"EfficientNet-B{phi}" for phi in range(8)} <= set(labels)
    assert {label for label, point in labels.items() if point.family == RESNET_RS} == {
        row.label for row in BY_NAME["fig5_resnet_rs"].rows
    }
    assert not any("ResNet-200" in label and "RS" not in label for label in labels)
    assert labels["EfficientNet-B0"].images_per_second == 1500.0
    assert labels["EfficientNet-B7"].images_per_second is None and labels["EfficientNet-B7"].missing == "timed at batch 64, bf16-mixed"
    assert labels["ResNet-RS-270-256"].missing == "not measured"
    assert len([point for point in points if point.run == "efficientnet_b3"]) == 1  # Table 5's and Table 6's B3: one run, one point


def point(label: str, family: str, top1: float, speed: float | None) -> SpeedPoint:
    return SpeedPoint(label, family, top1, label, speed, "" if speed else "not measured")


@pytest.mark.parametrize(
    ("rs_speed", "verdict"),
    [(300.0, HOLDS), (104.0, UNRESOLVED), (50.0, FAILS)],  # an EfficientNet at 100 images/s; one timing: within 10% is noise
)
def test_fig5s_claim_compares_each_efficientnet_with_a_resnet_rs_of_similar_top1(rs_speed: float, verdict: str) -> None:
    points = [
        point("B6", EFFICIENTNET, 84.0, 100.0),
        point("RS-420", RESNET_RS, 84.4, rs_speed),
        point("RS-50", RESNET_RS, 78.8, 10_000.0),  # far faster, but far less accurate: not a pair
        point("RS-350", RESNET_RS, 84.2, None),
    ]
    claim = speed_claim(points, "a GPU", (128, "bf16-mixed"))
    assert claim.verdict == verdict
    assert "on a GPU, batch 128, bf16-mixed" in claim.evidence and "RS-420 (84.4)" in claim.evidence
    assert "RS-50" not in claim.evidence and "1 planned points not measured" in claim.evidence


def test_fig5s_claim_is_not_checked_where_no_pair_of_similar_top1_was_timed() -> None:
    points = [point("B0", EFFICIENTNET, 76.3, 1500.0), point("RS-420", RESNET_RS, 84.4, 250.0)]
    assert speed_claim(points, "a GPU", (128, "bf16-mixed")).verdict == UNCHECKED


def test_fig5s_figure_states_device_batch_and_precision_and_lists_the_missing_points() -> None:
    points = [point("EfficientNet-B0", EFFICIENTNET, 76.3, 1500.0), point("ResNet-RS-270-256", RESNET_RS, 83.8, None)]
    figure = speed_figure(points, "a GPU", (128, "bf16-mixed"))
    texts = " ".join(text.get_text() for text in figure.texts) + figure.axes[0].get_title()
    assert "a GPU" in texts and "batch 128, bf16-mixed" in texts
    assert "not measured: ResNet-RS-270-256" in texts


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
