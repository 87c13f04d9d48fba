"""The study's model zoo: every model builds, trains, has its published size, and its facts."""

import pytest
import torch
from timm.models.resnet import BasicBlock

from oak.errors import OakError
from oak.models import create_model, parameter_count, zero_init_residual
from oak.models.calculations import TABLE_3, compound_scaling, measured_conv_macs, regular_calculations, separable_calculations
from oak.models.cards import OUTSIDE_ZOO, ZOO
from oak.models.facts import count_macs_and_activations, facts_table, model_facts
from oak.models.plain import PlainBlock

# The smallest input each architecture takes without its feature maps vanishing.
SMALL_INPUT = {name: 96 if name.startswith("inception") else 64 for name in ZOO}


@pytest.mark.parametrize("name", list(ZOO))
def test_forward_backward_reaches_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    model.train()
    size = SMALL_INPUT[name]
    output = model(torch.randn(2, 3, size, size))
    assert output.shape == (2, 7)
    output.square().mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("name", [n for n, card in ZOO.items() if card.published_params])
def test_parameter_count_equals_the_published_one(name: str) -> None:
    with torch.device("meta"):
        count = parameter_count(create_model(name, num_classes=1000))
    published = ZOO[name].published_params
    # timm's cards round to 0.01M; torchvision's give exact counts
    assert abs(count - published) <= (5_000 if published % 10_000 == 0 else 0), f"{name}: {count:,} vs {published:,}"


@pytest.mark.parametrize("name", ["plain18", "plain34"])
def test_plain_nets_carry_no_shortcut(name: str) -> None:
    model = create_model(name, num_classes=10).eval()
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert blocks and all(isinstance(b, PlainBlock) and b.downsample is None for b in blocks)
    assert all(torch.equal(b.bn2.weight, torch.ones_like(b.bn2.weight)) for b in blocks)  # no zero-init: the net trains
    with torch.no_grad():
        for block in blocks:
            block.conv2.weight.zero_()
            x = torch.rand(1, block.conv1.in_channels, 8, 8) + 1
            assert torch.count_nonzero(block(x)) == 0  # a residual block would pass relu(x) through


def test_plain_and_residual_differ_only_by_the_shortcut_projections() -> None:
    projections = sum(
        parameter_count(b.downsample) for b in create_model("resnet18", 10).modules() if isinstance(b, BasicBlock) and b.downsample
    )
    assert parameter_count(create_model("resnet18", 10)) - parameter_count(create_model("plain18", 10)) == projections


def test_regularisation_reaches_the_model() -> None:
    resnet = create_model("resnet50", num_classes=10, drop_rate=0.3, drop_path_rate=0.1)
    assert resnet.drop_rate == 0.3
    assert [b.drop_path.drop_prob for b in resnet.layer4][-1] == pytest.approx(0.1)
    assert create_model("alexnet", num_classes=10, drop_rate=0.25).classifier[0].p == 0.25


def test_zero_init_residual_starts_each_residual_block_of_an_efficientnet_as_the_identity() -> None:
    net = create_model("efficientnet_b0", num_classes=10).eval()

    def blocks_passing_their_input_unchanged() -> list[bool]:
        unchanged: list[bool] = []
        residual = [block for block in net.modules() if getattr(block, "has_skip", False)]

        def record(_: torch.nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
            unchanged.append(torch.equal(inputs[0], output))

        hooks = [block.register_forward_hook(record) for block in residual]
        with torch.no_grad():
            net(torch.randn(2, 3, 64, 64))
        for hook in hooks:
            hook.remove()
        return unchanged

    assert not any(blocks_passing_their_input_unchanged())
    zero_init_residual(net)
    assert blocks_passing_their_input_unchanged() == [True] * 9  # B0's blocks of stride 1 whose width stays


@pytest.mark.parametrize("name", ["plain18", "plain34"])
def test_zero_init_residual_leaves_a_net_without_shortcuts_as_it_was(name: str) -> None:
    torch.manual_seed(0)
    net = create_model(name, num_classes=10)
    before = {key: value.clone() for key, value in net.state_dict().items()}
    zero_init_residual(net)
    assert all(torch.equal(before[key], value) for key, value in net.state_dict().items())


def test_options_a_model_lacks_are_refused() -> None:
    with pytest.raises(OakError, match="plain networks have no residual branch"):
        create_model("plain18", num_classes=10, drop_path_rate=0.1)


def test_an_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(OakError, match=r"unknown model 'resnet181'; closest: .*resnet18"):
        create_model("resnet181", num_classes=10)


def test_facts_of_a_model() -> None:
    facts = model_facts("resnet50", resolution=224)
    assert facts.params == 25_557_032
    assert facts.macs == pytest.approx(4.1e9, rel=0.02)  # the well-known 4.1 GMACs of ResNet-50 at 224
    assert facts.family == "large-scale" and facts.year == 2016
    assert facts.data.interpolation == "bicubic" and len(facts.data.mean) == 3
    assert model_facts("shufflenet_v2_x1_0").data.test_size == 224  # from torchvision's weights' preset


def test_a_timm_model_outside_the_zoo_has_facts_and_run_params_that_say_so() -> None:
    """What training logs (run_params) and evaluation logs (model_facts) for any timm name, not only the zoo's."""
    from oak.config.load import load_config
    from oak.data.info import ShardInfo, SplitInfo
    from oak.layout import PARAMS_FILE
    from oak.tracking.tracker import run_params

    name = "mobilenetv3_small_050"
    assert name not in ZOO
    facts = model_facts(name, resolution=32)
    assert (facts.family, facts.year, facts.published_params) == (OUTSIDE_ZOO, None, None)
    assert facts.params == 1_593_224
    assert name in facts_table([facts])
    info = ShardInfo("demo", {}, ["n01440764"] * 10, {"train": SplitInfo(5, [], [], []), "val": SplitInfo(3, [], [], [])}, {}, {})
    assert run_params(load_config(PARAMS_FILE), name, info)["family"] == OUTSIDE_ZOO


@pytest.mark.parametrize("name", list(ZOO))
def test_macs_are_those_torchs_flop_counter_counts(name: str) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = create_model(name, num_classes=10)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.empty(1, 3, 112, 112, device="meta"))
    layers = list(model.modules())
    assert count_macs_and_activations(model, 112)[0] == counter.get_total_flops() // 2
    assert list(model.modules()) == layers  # the BatchNorms bypassed for the count are back in place


def test_table_3_is_reproduced_exactly() -> None:
    depthwise, pointwise = separable_calculations(TABLE_3)
    assert (depthwise, pointwise, depthwise + pointwise) == (675, 9600, 10275)
    assert regular_calculations(TABLE_3) == 86400
    assert round(86400 / 10275, 1) == 8.4
    assert measured_conv_macs(TABLE_3) == (86400, 10275)


def test_one_dimension_scalings_change_that_dimension_alone() -> None:
    with torch.device("meta"):
        b0, wide, deep = (create_model(name, num_classes=1000) for name in ("efficientnet_b0", "efficientnet_b0_w2", "efficientnet_b0_d4"))
        resnet18, resnet18_wide = (create_model(name, num_classes=1000) for name in ("resnet18", "resnet18_w1_5"))
    blocks = [len(stage) for stage in b0.blocks]
    assert [len(stage) for stage in deep.blocks] == [4 * n for n in blocks] and deep.conv_stem.out_channels == b0.conv_stem.out_channels
    assert [len(stage) for stage in wide.blocks] == blocks and wide.conv_stem.out_channels == 2 * b0.conv_stem.out_channels
    stages = [resnet18.layer1, resnet18.layer2, resnet18.layer3, resnet18.layer4]
    wide_stages = [resnet18_wide.layer1, resnet18_wide.layer2, resnet18_wide.layer3, resnet18_wide.layer4]
    assert [len(s) for s in wide_stages] == [len(s) for s in stages]
    assert [s[0].conv1.out_channels for s in wide_stages] == [round(1.5 * s[0].conv1.out_channels) for s in stages]


def test_fig4s_width_line_has_a_2x_point_and_fig3s_chain_an_se_step_without_resnet_d() -> None:
    with torch.device("meta"):
        resnet50, wide, resnet200, with_se, rs200 = (
            create_model(name, num_classes=1000) for name in ("resnet50", "resnet50_w2", "resnet200", "resnet200_se", "resnetrs200")
        )
    stages = ("layer1", "layer2", "layer3", "layer4")
    assert [getattr(wide, s)[0].conv1.out_channels for s in stages] == [2 * getattr(resnet50, s)[0].conv1.out_channels for s in stages]
    assert 3.5 < model_facts("resnet50_w2", 224).macs / model_facts("resnet50", 224).macs < 4.5
    # ResNet-200's stem and depth, each block squeezed and excited at ratio 0.25 as ResNet-RS-200's
    assert [len(getattr(with_se, s)) for s in stages] == [len(getattr(resnet200, s)) for s in stages]
    assert with_se.conv1.out_channels == resnet200.conv1.out_channels == 64 and not isinstance(with_se.conv1, torch.nn.Sequential)
    assert isinstance(rs200.conv1, torch.nn.Sequential)  # ResNet-D's deep stem is what ResNet-RS adds after it
    se = with_se.layer1[0].se
    assert se.fc1.out_channels == 256 // 4 and type(se) is type(rs200.layer1[0].se)
    params = {name: sum(p.numel() for p in model.parameters()) for name, model in (("se", with_se), ("rs", rs200))}
    assert params["se"] == pytest.approx(params["rs"], rel=0.002)


def test_each_scaling_costs_about_what_it_is_compared_with() -> None:
    macs = {name: model_facts(name, resolution).macs for name, resolution in [
        ("resnet34", 224), ("resnet18_w1_5", 224), ("resnet101", 224), ("resnet50_w1_5", 224),
        ("efficientnet_b0", 224), ("efficientnet_b0_w2", 224), ("efficientnet_b0_d4", 224), ("efficientnet_b3", 300),
    ]}  # fmt: skip
    # Fig. 4: widening 1.5x costs about what doubling the depth does.
    assert macs["resnet18_w1_5"] == pytest.approx(macs["resnet34"], rel=0.1)
    assert macs["resnet50_w1_5"] == pytest.approx(macs["resnet101"], rel=0.2)
    # Fig. 9: each one-dimension scaling of B0 costs about 4x B0, as does twice the resolution and, nearly, B3.
    b0 = macs["efficientnet_b0"]
    for name in ("efficientnet_b0_w2", "efficientnet_b0_d4"):
        assert 3.5 < macs[name] / b0 < 4.5, name
    assert model_facts("efficientnet_b0", 448).macs / b0 == pytest.approx(4, rel=0.01)
    assert 4.0 < macs["efficientnet_b3"] / b0 < 5.0

    # Three steps a line, each costing more than the last: the saturation needs points past the 4x step
    steps = {"width": ("efficientnet_b0_w1_4", "efficientnet_b0_w2", "efficientnet_b0_w2_6"),
             "depth": ("efficientnet_b0_d2", "efficientnet_b0_d4", "efficientnet_b0_d8")}  # fmt: skip
    for line, names in steps.items():
        costs = [model_facts(name, 224).macs / b0 for name in names]
        assert costs == sorted(costs) and costs[0] < 2.1 and costs[-1] > 6, (line, costs)


def test_compound_scaling_beside_the_released_models() -> None:
    rows = compound_scaling()
    assert [r.width_measured for r in rows] == [r.released_width for r in rows]
    assert [r.blocks for r in rows][0] == 16
    assert all(later.macs > earlier.macs for earlier, later in zip(rows, rows[1:]))
    # The released models grow by about (alpha beta^2 gamma^2)^phi = 1.92^phi, well short of 2^phi by B7.
    assert rows[7].macs_vs_b0 == pytest.approx(rows[7].formula_flops_factor, rel=0.1)
    assert rows[7].macs_vs_b0 < 0.8 * rows[7].two_to_phi


@pytest.mark.parametrize("resnet, plain", [("resnet18a", "plain18"), ("resnet34a", "plain34")])
def test_table1_resnets_have_zero_padded_identity_shortcuts_and_their_plain_twins_parameters(resnet: str, plain: str) -> None:
    """He et al. 2016, Table 2: option A shortcuts add no parameters to the plain net."""
    from oak.models.resnet_a import ZeroPadShortcut

    model = create_model(resnet, num_classes=1000)
    assert parameter_count(model) == parameter_count(create_model(plain, num_classes=1000))
    assert sum(isinstance(m, ZeroPadShortcut) for m in model.modules()) == 3  # one per stage that widens
    shortcut = ZeroPadShortcut(stride=2, extra_channels=3)
    x = torch.randn(1, 2, 4, 4)
    padded = shortcut(x)
    assert padded.shape == (1, 5, 2, 2) and torch.equal(padded[:, :2], x[:, :, ::2, ::2]) and not padded[:, 2:].any()


@pytest.mark.parametrize("resnet, plain", [("resnet18a", "plain18"), ("resnet34a", "plain34")])
def test_table1_resnets_start_every_block_as_he_did_and_as_their_plain_twins(resnet: str, plain: str) -> None:
    """He et al. 2016 zeroed no BatchNorm scale; timm's zero_init_last would favour the residual rows of Table 1."""
    for name in (resnet, plain):
        last_norms = [block.bn2.weight for stage in ("layer1", "layer2", "layer3", "layer4") for block in getattr(create_model(name, 10), stage)]
        assert all(torch.equal(scale, torch.ones_like(scale)) for scale in last_norms), name


def test_shufflenet_v2_2x_drops_out_the_pooled_features_before_its_classifier_as_megviis_code() -> None:
    """megvii-model/ShuffleNet-Series, ShuffleNetV2/network.py: Dropout(0.2) before the classifier of 2.0x."""
    net = create_model("shufflenet_v2_x2_0", num_classes=10, drop_rate=0.2)
    assert list(net.state_dict()) == list(create_model("shufflenet_v2_x2_0", num_classes=10).state_dict())  # the same names
    features = torch.ones(4, net.fc.in_features)
    net.fc.eval()
    assert torch.equal(net.fc(features), torch.nn.functional.linear(features, net.fc.weight, net.fc.bias))
    net.fc.train()
    dropped = net.fc.dropout(features)
    assert 0.1 < float((dropped == 0).float().mean()) < 0.3
