"""GPT shapes, parameter counts under both conventions, FLOPs per token."""

from __future__ import annotations

import pytest
import torch
from bayescale.trainer import (
    GPT,
    GPTConfig,
    TrainConfig,
    TrainerError,
    analytic_param_counts,
    flops_per_token,
    param_counts,
)
from bayescale.trainer.config import default_heads

SHAPES = [(16, 1, 1, 32), (32, 2, 1, 64), (64, 3, 2, 128), (96, 4, 3, 128), (128, 2, 8, 256)]


@pytest.mark.parametrize(("width", "depth", "heads", "context"), SHAPES)
def test_param_counts_match_formula(width: int, depth: int, heads: int, context: int) -> None:
    config = GPTConfig(width, depth, heads, context)
    counts = param_counts(GPT(config))
    # N = L(12 d^2 + 2 d) + d; embedding = V d + T d (the tied head adds nothing).
    assert counts.non_embedding == depth * (12 * width**2 + 2 * width) + width
    assert counts.embedding == 256 * width + context * width
    assert counts.total == counts.non_embedding + counts.embedding
    assert counts == analytic_param_counts(config)
    model = GPT(config)
    assert counts.total == sum(p.numel() for p in model.parameters())
    assert model.wte.weight.data_ptr() == model.state_dict()["wte.weight"].data_ptr()


def test_flops_per_token_convention() -> None:
    config = GPTConfig(64, 2, 2, 128)
    n = analytic_param_counts(config).non_embedding
    assert flops_per_token(config) == 6 * n + 6 * 2 * 128 * 64


def test_forward_shapes_and_loss() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(32, 2, 2, 16))
    idx = torch.randint(0, 256, (3, 16))
    logits = model(idx)
    assert logits.shape == (3, 16, 256)
    targets = torch.randint(0, 256, (3, 16))
    loss = model(idx, targets)
    # At initialisation the prediction is close to uniform: loss near ln(256).
    assert abs(loss.item() - torch.log(torch.tensor(256.0)).item()) < 0.1
    total = model(idx, targets, reduction="sum")
    assert torch.allclose(total / idx.numel(), loss)


def test_attention_is_causal() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(32, 2, 2, 16)).eval()
    idx = torch.randint(0, 256, (1, 16))
    changed = idx.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 256
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert torch.equal(a[0, :10], b[0, :10])
    assert not torch.equal(a[0, 10:], b[0, 10:])


def test_sequence_longer_than_context_is_refused() -> None:
    model = GPT(GPTConfig(16, 1, 1, 8))
    with pytest.raises(ValueError, match="exceeds the context 8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_width_not_divisible_by_heads() -> None:
    with pytest.raises(TrainerError, match="width 30 is not divisible by heads 4"):
        GPTConfig(30, 2, 4, 64)
    with pytest.raises(TrainerError, match=r"width 30 is not divisible by heads 4.*--heads"):
        TrainConfig(width=30, depth=2, heads=4, context=64, batch_tokens=128, steps=10)


@pytest.mark.parametrize(
    ("width", "heads"), [(16, 1), (32, 1), (48, 1), (64, 2), (96, 3), (100, 2), (128, 4), (256, 8)]
)
def test_default_heads(width: int, heads: int) -> None:
    assert default_heads(width) == heads
    assert width % default_heads(width) == 0
