"""K same-shape GPTs trained at once: one batched forward and backward over stacked weights.

Small models leave a CPU (or GPU) mostly idle between kernel launches; stacking the
weights of K models of one shape along a leading axis turns K small matrix products
into one batched product (``torch.bmm``) and K attention calls into one. This is the
cheap way to train several seeds of one size (or the same size on different data
orders) side by side.

Equivalence with K separate :class:`~.model.GPT` models: the forward pass is the same
function per model (pre-norm blocks, causal attention, tied head); the total loss is
the sum of the K per-model mean losses, so each model's gradient is the gradient of
its own loss; AdamW is element-wise, so one optimizer over the stacked tensors
updates each model exactly as its own optimizer would; gradient clipping must be per
model (:func:`clip_grad_norm_per_model_`), not global. Results agree with separate
training up to floating-point rounding (batched and unbatched products round
differently).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .model import GPT


class BatchedGPT(nn.Module):
    """K :class:`~.model.GPT` models of one shape with weights stacked on a leading axis.

    Every parameter of :class:`~.model.GPT` named ``a.b`` becomes a parameter of
    shape ``(K, *shape)`` named ``a__b`` here.
    """

    def __init__(self, models: Sequence[GPT]) -> None:
        super().__init__()
        if not models:
            raise ValueError("BatchedGPT needs at least one model")
        configs = {m.config for m in models}
        if len(configs) != 1:
            raise ValueError(f"BatchedGPT needs models of one shape, got {sorted(map(str, configs))}")
        self.config = models[0].config
        self.k = len(models)
        self.names = [name for name, _ in models[0].named_parameters()]
        for name in self.names:
            stacked = torch.stack([m.get_parameter(name).detach() for m in models]).clone()
            self.register_parameter(name.replace(".", "__"), nn.Parameter(stacked))

    def weight(self, name: str) -> torch.Tensor:
        """The stacked parameter of the GPT parameter ``name`` (e.g. ``"blocks.0.mlp.fc.weight"``)."""
        return getattr(self, name.replace(".", "__"))

    def unstack(self) -> list[GPT]:
        """K independent :class:`~.model.GPT` copies of the current weights."""
        models = []
        for index in range(self.k):
            model = GPT(self.config).to(self.weight("wte.weight").device)
            with torch.no_grad():
                for name in self.names:
                    model.get_parameter(name).copy_(self.weight(name)[index])
            models.append(model)
        return models

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        # x (K, M, d_in) @ W^T with W (K, d_out, d_in) -> (K, M, d_out)
        return torch.bmm(x, self.weight(name).transpose(1, 2))

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        gain = self.weight(name)[:, None, :]
        return F.layer_norm(x, (x.shape[-1],)) * gain

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-model mean cross-entropy (K,) for tokens and targets of shape (K, batch, time)."""
        k, b, t = idx.shape
        d, heads = self.config.width, self.config.heads
        if k != self.k or t > self.config.context:
            raise ValueError(f"expected ({self.k}, batch, <= {self.config.context}) tokens, got {tuple(idx.shape)}")
        models = torch.arange(k, device=idx.device)[:, None, None]
        x = self.weight("wte.weight")[models, idx] + self.weight("wpe.weight")[:, None, :t]
        x = x.reshape(k, b * t, d)
        for layer in range(self.config.depth):
            prefix = f"blocks.{layer}."
            qkv = self._linear(self._norm(x, prefix + "ln_attn.weight"), prefix + "attn.qkv.weight")
            q, key, v = (part.reshape(k * b, t, heads, d // heads).transpose(1, 2) for part in qkv.split(d, dim=2))
            y = F.scaled_dot_product_attention(q, key, v, is_causal=True)
            x = x + self._linear(y.transpose(1, 2).reshape(k, b * t, d), prefix + "attn.proj.weight")
            h = F.gelu(self._linear(self._norm(x, prefix + "ln_mlp.weight"), prefix + "mlp.fc.weight"))
            x = x + self._linear(h, prefix + "mlp.proj.weight")
        logits = torch.bmm(self._norm(x, "ln_f.weight"), self.weight("wte.weight").transpose(1, 2))
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="none")
        return losses.view(k, b * t).mean(dim=1)


@torch.no_grad()
def clip_grad_norm_per_model_(model: BatchedGPT, max_norm: float) -> torch.Tensor:
    """Clip each model's gradient to global norm ``max_norm``, like ``clip_grad_norm_`` per model.

    norm_k = sqrt(Σ_params Σ_{i} g[k, i]²); g[k] ← g[k]·min(1, max_norm / (norm_k + 1e-6)).
    Returns the K norms before clipping.
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    squares = torch.stack([g.reshape(model.k, -1).pow(2).sum(dim=1) for g in grads]).sum(dim=0)
    norms = squares.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
    return norms


def build_batched_optimizer(
    model: BatchedGPT, lr: float, weight_decay: float, betas: tuple[float, float], fused: bool | None = None
) -> torch.optim.AdamW:
    """AdamW over the stacked weights with the trainer's decay rule.

    As in :func:`~.training.build_optimizer`, matrices (a GPT parameter with two or
    more dimensions, so three or more once stacked) get ``weight_decay`` and the
    LayerNorm gains none.
    """
    decay = [p for p in model.parameters() if p.dim() >= 3]
    no_decay = [p for p in model.parameters() if p.dim() < 3]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)
