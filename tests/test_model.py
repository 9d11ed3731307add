"""The network: output shape, size, no unused layers, input checks."""

from __future__ import annotations

import pytest
import torch

from model_export.__main__ import main
from model_export.model import StackedHourglass, count_parameters


@pytest.mark.parametrize(
    ("stacks", "features", "joints", "order", "height", "width"),
    [(1, 8, 16, 4, 64, 128), (2, 8, 5, 2, 32, 48), (3, 8, 1, 1, 8, 16)],
)
def test_output_shape_is_every_stack_at_quarter_resolution(
    stacks: int, features: int, joints: int, order: int, height: int, width: int
) -> None:
    model = StackedHourglass(stacks, features, joints, order).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, height, width))
    assert out.shape == (2, stacks, joints, height // 4, width // 4)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_eight_stack_mpii_model_has_25_43_million_parameters() -> None:
    params = count_parameters(StackedHourglass(8, 256, 16))
    assert abs(params - 25.43e6) <= 0.005 * 25.43e6, params


def test_every_parameter_is_used() -> None:
    """A gradient reaches every parameter: the network carries no dead layers.

    Eval mode: with batch statistics, a conv bias in front of a batch norm gets an exactly-zero gradient.
    """
    torch.manual_seed(0)
    model = StackedHourglass(2, 8, 3, order=2).eval()
    model(torch.rand(2, 3, 16, 16)).square().sum().backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert unused == []


def test_default_configuration_is_the_papers() -> None:
    model = StackedHourglass()
    assert model.config == {"stacks": 8, "features": 256, "joints": 16, "order": 4}
    assert model.input_multiple == 64


@pytest.mark.parametrize(("height", "width"), [(100, 64), (64, 96), (65, 64), (32, 64)])
def test_input_sizes_that_are_not_multiples_of_64_raise_value_error(height: int, width: int) -> None:
    model = StackedHourglass(1, 8, 4)
    with pytest.raises(ValueError, match="multiples of 64"):
        model(torch.zeros(1, 3, height, width))


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 1, 64, 64), (1, 4, 64, 64)])
def test_inputs_that_are_not_rgb_batches_raise_value_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        StackedHourglass(1, 8, 4)(torch.zeros(shape))


@pytest.mark.parametrize("kwargs", [{"stacks": 0}, {"features": 0}, {"joints": 0}, {"order": 0}, {"features": 15}])
def test_bad_configurations_raise_value_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        StackedHourglass(**{"stacks": 1, "features": 8, "joints": 2, **kwargs})


def test_summary_command_prints_parameters_and_macs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--stacks", "1", "--features", "16", "--size", "64"]) == 0
    out = capsys.readouterr().out
    expected = count_parameters(StackedHourglass(1, 16, 16))
    assert f"parameters: {expected:,}" in out
    assert "multiply-accumulates per 64x64 image" in out
