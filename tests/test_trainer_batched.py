"""Several same-shape models in one batched forward/backward match separate training."""

from __future__ import annotations

import pytest
import torch
from bayescale.trainer import GPT, GPTConfig, TrainConfig
from bayescale.trainer.batched import BatchedGPT, build_batched_optimizer, clip_grad_norm_per_model_
from bayescale.trainer.training import build_optimizer


def test_batched_training_matches_separate_models() -> None:
    shape = GPTConfig(32, 2, 2, 16)
    config = TrainConfig(width=32, depth=2, heads=2, context=16, batch_tokens=64, steps=10, lr=3e-3)
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(GPT(shape))
    batched = BatchedGPT(models)
    separate = [build_optimizer(m, config, torch.device("cpu")) for m in models]
    joint = build_batched_optimizer(batched, config.lr, config.weight_decay, (config.beta1, config.beta2), fused=True)
    generator = torch.Generator().manual_seed(0)
    for _ in range(6):
        idx = torch.randint(0, 256, (3, 4, 16), generator=generator)
        targets = torch.randint(0, 256, (3, 4, 16), generator=generator)
        losses = batched(idx, targets)
        losses.sum().backward()
        clip_grad_norm_per_model_(batched, config.grad_clip)
        joint.step()
        joint.zero_grad(set_to_none=True)
        for k, (model, optimizer) in enumerate(zip(models, separate, strict=True)):
            loss = model(idx[k], targets[k])
            assert loss.item() == pytest.approx(losses[k].item(), abs=1e-5)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    for model, copy in zip(models, batched.unstack(), strict=True):
        for (name, a), b in zip(model.named_parameters(), copy.parameters(), strict=True):
            assert torch.allclose(a, b, atol=1e-5), name


def test_batched_needs_one_shape() -> None:
    with pytest.raises(ValueError, match="one shape"):
        BatchedGPT([GPT(GPTConfig(16, 1, 1, 8)), GPT(GPTConfig(32, 1, 1, 8))])
