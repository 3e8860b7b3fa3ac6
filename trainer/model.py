"""A small GPT-style decoder (GPT-2 style, pre-norm) and its parameter counts.

Architecture:

    x_0 = wte[tokens] + wpe[positions]
    x_{l+1/2} = x_l + Attn(LN(x_l))              causal multi-head self-attention
    x_{l+1}   = x_{l+1/2} + MLP(LN(x_{l+1/2}))   d -> 4d -> d, GELU
    logits    = LN(x_L) @ wte^T                  weight-tied un-embedding

Linear layers carry no bias and LayerNorms a gain but no bias, so the parameter
count has the closed form of :func:`~.sizing.analytic_param_counts`; the
conventions (non-embedding N, embedding, total) are described in :mod:`.sizing`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .sizing import GPTConfig, ParamCounts, analytic_param_counts


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through ``F.scaled_dot_product_attention``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.width, 3 * config.width, bias=False)
        self.proj = nn.Linear(config.width, config.width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (batch, time, width) to (batch, time, width)."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q = q.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    """Position-wise feed-forward block, d -> 4d -> d with GELU."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.width, 4 * config.width, bias=False)
        self.proj = nn.Linear(4 * config.width, config.width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (..., width) to (..., width)."""
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.width, bias=False)
        self.attn = CausalSelfAttention(config)
        self.ln_mlp = nn.LayerNorm(config.width, bias=False)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to the residual stream."""
        x = x + self.attn(self.ln_attn(x))
        return x + self.mlp(self.ln_mlp(x))


class GPT(nn.Module):
    """Decoder-only transformer with learned positions and a tied output head.

    Initialisation follows GPT-2: normal(0, 0.02) for embeddings and linear layers,
    with the residual output projections scaled by 1/sqrt(2·L).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.width)
        self.wpe = nn.Embedding(config.context, config.width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.ln_f = nn.LayerNorm(config.width, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 initialisation (uses the global torch RNG; seed it first)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.depth)
        for name, p in self.named_parameters():
            if p.dim() < 2:
                nn.init.ones_(p)
            elif name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=residual_std)
            else:
                nn.init.normal_(p, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
        """Logits (batch, time, vocab) for token ids ``idx`` (batch, time), or the loss.

        With ``targets`` (batch, time) it returns the next-token cross-entropy in nats
        per token, computed in fp32 (``reduction`` as in ``F.cross_entropy``), so one
        call serves ``torch.compile`` and DDP.
        """
        t = idx.shape[1]
        if t > self.config.context:
            raise ValueError(f"sequence length {t} exceeds the context {self.config.context}")
        pos = torch.arange(t, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)
        if targets is None:
            return logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction=reduction)


def param_counts(model: GPT) -> ParamCounts:
    """Count the parameters of ``model`` under both conventions.

    Counts the instantiated tensors (shared tensors once), then asserts that
    non-embedding + embedding = total and that the counts match
    :func:`analytic_param_counts`.
    """
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in unique.values())
    embedding = model.wte.weight.numel() + model.wpe.weight.numel()
    non_embedding = sum(p.numel() for p in unique.values() if p is not model.wte.weight and p is not model.wpe.weight)
    assert non_embedding + embedding == total, (non_embedding, embedding, total)
    counts = ParamCounts(non_embedding, embedding, total)
    assert counts == analytic_param_counts(model.config), (counts, model.config)
    return counts
