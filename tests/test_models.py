"""The model registry: timm's names and Oak's additions under one call; unknown names get suggestions."""

import pytest
import torch

from oak.errors import OakError
from oak.models import create_model, parameter_count


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0", "shufflenet_v2_x0_5"])
def test_models_build_with_the_requested_classes(name: str) -> None:
    model = create_model(name, num_classes=7)
    model.eval()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)


def test_shufflenet_v2_x1_0_has_its_published_size() -> None:
    # torchvision's model card: 2,278,604 parameters with 1000 classes
    assert parameter_count(create_model("shufflenet_v2_x1_0", num_classes=1000)) == 2_278_604


def test_an_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(OakError, match=r"unknown model 'resnet181'; closest: .*resnet18"):
        create_model("resnet181", num_classes=10)


def test_dropout_where_the_model_has_none_is_refused() -> None:
    with pytest.raises(OakError, match="shufflenet_v2_x1_0 has no dropout"):
        create_model("shufflenet_v2_x1_0", num_classes=10, drop_rate=0.2)
