"""Shapes, parameter counts and FLOPs of the trainer's GPT, without importing torch.

Parameter conventions (Kaplan et al. 2020, section 2.1), for width d, depth L,
context T and vocabulary V (linear layers without bias, LayerNorm gains only, output
head tied to the token embedding):

* ``non_embedding`` (N): every parameter except the token embedding and the position
  embedding; the tied un-embedding is the token embedding, so it is excluded too.
  Per block 12·d² (attention 4·d², MLP 8·d²) plus 2·d LayerNorm gains, plus d for
  the final LayerNorm: N = L·(12·d² + 2·d) + d.
* ``embedding``: V·d + T·d.
* ``total`` = ``non_embedding`` + ``embedding``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import TrainerError

PARAMS_CONVENTION = (
    "non-embedding N = L*(12*d^2 + 2*d) + d excludes the token and position embeddings "
    "(the tied output head is the token embedding); total = N + V*d + T*d"
)
FLOPS_CONVENTION = (
    "6*N + 6*n_layer*context*width per token (Kaplan et al. 2020, Table 1): "
    "2 FLOPs per non-embedding parameter forward and 4 backward, plus causal "
    "attention scores and value mixing (each query attends to about context/2 "
    "keys: 2*2*width*context/2 forward, times 3 for forward+backward); excludes "
    "the tied embedding/un-embedding matmul (6*vocab*width), norms and softmax"
)

# Dense (no sparsity) bf16 tensor-core peak FLOP/s per GPU, by a substring of
# torch.cuda.get_device_name(); the first match wins, so variants come before the
# generic name (H100 PCIe and NVL before H100 SXM).
PEAK_FLOPS_BF16 = (
    ("B200", 2250e12),
    ("H200 NVL", 835e12),
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10G", 125e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),
)


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a GPT decoder.

    Attributes:
        width: residual stream width d (``d_model``).
        depth: number of transformer blocks L.
        heads: attention heads; ``width`` must be divisible by it.
        context: maximum sequence length T (size of the position embedding).
        vocab_size: vocabulary size V (256 for byte-level tokens).
    """

    width: int
    depth: int
    heads: int
    context: int
    vocab_size: int = 256

    def __post_init__(self) -> None:
        for name in ("width", "depth", "heads", "context", "vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise TrainerError(f"{name} must be a positive integer, got {value!r}")
        if self.width % self.heads:
            raise TrainerError(
                f"width {self.width} is not divisible by heads {self.heads}; "
                f"choose --heads among the divisors of {self.width}"
            )

    @property
    def head_dim(self) -> int:
        """Width of one attention head, ``width // heads``."""
        return self.width // self.heads


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts under both conventions (see the module docstring)."""

    non_embedding: int
    embedding: int
    total: int


def analytic_param_counts(config: GPTConfig) -> ParamCounts:
    """Closed-form parameter counts of :class:`GPT` for ``config``.

    N = L·(12·d² + 2·d) + d; embedding = V·d + T·d; total = N + embedding.
    """
    d, n_layer = config.width, config.depth
    non_embedding = n_layer * (12 * d * d + 2 * d) + d
    embedding = config.vocab_size * d + config.context * d
    return ParamCounts(non_embedding, embedding, non_embedding + embedding)


def flops_per_token(config: GPTConfig) -> int:
    """Training FLOPs per token, forward plus backward, as in :data:`FLOPS_CONVENTION`.

    C_token = 6·N + 6·L·T·d, with N non-embedding parameters, L layers, context T and
    width d. Training compute of a run is C = C_token · B · S (tokens B·S).
    """
    n = analytic_param_counts(config).non_embedding
    return 6 * n + 6 * config.depth * config.context * config.width


#: Width over depth of the shapes :func:`shape_for_params` proposes. Kaplan et al. (2020,
#: section 3.1 and Figure 5) find the loss at fixed N within a few percent over aspect
#: ratios d/L from about 20 to 200; 64 lies inside that flat region and keeps small models
#: more than one block deep.
ASPECT_RATIO = 64.0
#: Widths of proposed shapes are multiples of this (the trainer's default head width).
HEAD_WIDTH = 32
#: Largest |log(N_shape / N)| at which :func:`shape_for_params` lets the aspect ratio decide.
SHAPE_TOLERANCE = 0.03


def shape_for_params(params: float, *, aspect_ratio: float = ASPECT_RATIO, context: int = 128,
                     vocab_size: int = 256) -> GPTConfig:
    """A GPT shape with about ``params`` non-embedding parameters under this module's convention.

    For each depth L, the width d solving L·(12·d² + 2·d) + d = N is rounded down and up
    to a multiple of :data:`HEAD_WIDTH` from 1024 up, of 8 from 256 up, of 4 from 64 up,
    and to an integer below. Among those shapes, the ones within :data:`SHAPE_TOLERANCE` of N compete on
    the aspect ratio (closest to ``aspect_ratio`` in log wins); when none is that close
    (tiny models), the closest in N wins. Heads follow the trainer's default (head width
    about 32, :func:`~.config.default_heads`). ``context`` and ``vocab_size`` only enter
    the embedding, not N.
    """
    from .config import default_heads

    if not (params >= 1 and aspect_ratio > 0):
        raise TrainerError(f"params={params!r} must be >= 1 and aspect_ratio={aspect_ratio!r} > 0")
    shapes = []
    for depth in range(1, max(2, int(round(4 * (params / 12 / aspect_ratio**2) ** (1 / 3)))) + 1):
        a, b = 12 * depth, 2 * depth + 1
        exact = (-b + (b * b + 4 * a * params) ** 0.5) / (2 * a)
        step = HEAD_WIDTH if exact >= 1024 else 8 if exact >= 256 else 4 if exact >= 64 else 1
        for width in {max(step, math.floor(exact / step) * step), max(step, math.ceil(exact / step) * step)}:
            shape = GPTConfig(width, depth, default_heads(width), context, vocab_size)
            miss = abs(math.log(analytic_param_counts(shape).non_embedding / params))
            shapes.append((miss > SHAPE_TOLERANCE, abs(math.log(width / depth / aspect_ratio)) if miss <= SHAPE_TOLERANCE
                           else miss, shape))
    return min(shapes, key=lambda s: s[:2])[2]
