"""What the study needs to know of each model in its zoo: family, year, reference and the parameter
count its model card publishes. Metadata only: nothing here changes how a model is built or
trained, so the training stages do not depend on this file.
"""

from dataclasses import dataclass

from oak.models.registry import SHUFFLENETS
from oak.models.scaled import EFFICIENTNET_B0_SCALINGS

LARGE, LIGHT = "large-scale", "lightweight"
OUTSIDE_ZOO = "outside the zoo"  # the family of a timm model the study does not name
TIMM_CARD = "timm model card (huggingface.co/timm)"
TV_CARD = "torchvision model card (weights meta num_params)"


@dataclass(frozen=True)
class ModelCard:
    family: str
    year: int | None  # None: a timm model outside the zoo, whose year Oak does not know
    reference: str
    published_params: int | None  # None: no published count; Oak's own count stands alone
    source: str


def _cards(names: list[str], family: str, year: int, reference: str, published_m: list[float | None], source: str) -> dict[str, ModelCard]:
    return {
        name: ModelCard(family, year, reference, None if count is None else round(count * 1e6), source)
        for name, count in zip(names, published_m, strict=True)
    }


RESNET_RS = [f"resnetrs{depth}" for depth in (50, 101, 152, 200, 270, 350, 420)]
EFFICIENTNETS = [f"efficientnet_b{phi}" for phi in range(8)]

ZOO: dict[str, ModelCard] = {
    **_cards(
        ["plain18", "plain34"], LARGE, 2016, "He et al. 2016, Deep Residual Learning (plain baselines)", [None, None], "none published"
    ),
    **_cards(
        ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
        LARGE,
        2016,
        "He et al. 2016, Deep Residual Learning",
        [11.689512, 21.797672, 25.557032, 44.549160, 60.192808],
        TV_CARD,
    ),
    **_cards(
        ["resnet18a", "resnet34a"],
        LARGE,
        2016,
        "He et al. 2016, Deep Residual Learning (option A shortcuts, as its Table 2)",
        [None, None],
        "none published",
    ),
    **_cards(
        ["resnet200"], LARGE, 2016, "He et al. 2016, Identity Mappings in Deep Residual Networks (200 layers)", [None], "none published"
    ),
    **_cards(
        RESNET_RS, LARGE, 2021, "Bello et al. 2021, Revisiting ResNets", [35.69, 63.62, 86.62, 93.21, 129.86, 163.96, 191.89], TIMM_CARD
    ),
    **_cards(["inception_v3"], LARGE, 2016, "Szegedy et al. 2016, Rethinking the Inception Architecture", [23.83], TIMM_CARD),
    **_cards(
        ["inception_v4", "inception_resnet_v2", "inception_resnet_v1"],
        LARGE,
        2017,
        "Szegedy et al. 2017, Inception-v4, Inception-ResNet",
        [42.68, 55.84, None],
        TIMM_CARD,
    ),
    **_cards(SHUFFLENETS, LIGHT, 2018, "Ma et al. 2018, ShuffleNet V2", [1.366792, 2.278604, 3.503624, 7.393996], TV_CARD),
    **_cards(EFFICIENTNETS, LIGHT, 2019, "Tan & Le 2019, EfficientNet", [5.29, 7.79, 9.11, 12.23, 19.34, 30.39, 43.04, 66.35], TIMM_CARD),
    **_cards(
        ["resnet18_w1_5", "resnet50_w1_5"],
        LARGE,
        2016,
        "He et al. 2016's ResNet, every stage 1.5x wider (Oak's, for Fig. 4)",
        [None, None],
        "none published",
    ),
    **_cards(["resnet50_w2"], LARGE, 2016, "He et al. 2016's ResNet-50, every stage 2x wider (Oak's, for Fig. 4)", [None], "none published"),
    **_cards(
        ["resnet200_se"],
        LARGE,
        2021,
        "He et al. 2016's ResNet-200 with ResNet-RS's squeeze-and-excitation (Oak's, for Fig. 3/6; Bello et al. 2021)",
        [None],
        "none published",
    ),
    **_cards(
        list(EFFICIENTNET_B0_SCALINGS),
        LIGHT,
        2019,
        "Tan & Le 2019's EfficientNet-B0 scaled in one dimension (Oak's, for Fig. 9)",
        [None] * len(EFFICIENTNET_B0_SCALINGS),
        "none published",
    ),
    **_cards(["alexnet"], LARGE, 2012, "Krizhevsky et al. 2012, ImageNet Classification with Deep CNNs", [61.100840], TV_CARD),
    **_cards(["vgg16"], LARGE, 2014, "Simonyan & Zisserman 2014, Very Deep Convolutional Networks", [138.357544], TV_CARD),
    **_cards(["googlenet"], LARGE, 2015, "Szegedy et al. 2015, Going Deeper with Convolutions", [6.624904], TV_CARD),
    **_cards(["squeezenet1_1"], LIGHT, 2016, "Iandola et al. 2016, SqueezeNet", [1.235496], TV_CARD),
    **_cards(["mobilenetv1_100"], LIGHT, 2017, "Howard et al. 2017, MobileNets", [4.23], TIMM_CARD),
    **_cards(["mobilenetv2_100"], LIGHT, 2018, "Sandler et al. 2018, MobileNetV2", [3.50], TIMM_CARD),
    **_cards(["mobilenetv3_large_100"], LIGHT, 2019, "Howard et al. 2019, Searching for MobileNetV3", [5.48], TIMM_CARD),
}


def model_card(name: str) -> ModelCard:
    """The zoo's card for `name`, or, for any other timm model (which trains and evaluates as well), one saying
    only that: no family, year or published count to compare with."""
    return ZOO.get(name) or ModelCard(OUTSIDE_ZOO, None, f"timm's {name} (not in the study's zoo)", None, "none published")
