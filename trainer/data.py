"""Corpora for the trainer: byte-level text that needs no download, or user data.

Three sources (:func:`load_corpus`):

* **Default** (``path=None``): the Python standard library's own source files,
  ``sysconfig.get_paths()["stdlib"]/**/*.py`` in sorted order, skipping the folders
  ``site-packages``, ``test``, ``tests``, ``idle_test``, ``__pycache__`` and
  ``pydoc_data`` (the last holds the out-of-domain prose). Tokens are bytes
  (vocabulary 256). A file belongs to the held-out ``in_domain`` split when the first
  8 bytes of SHA-256 of its relative path, read as a big-endian integer, fall in the
  lowest ``holdout_fraction`` of the range, so the split is deterministic and does not
  move when other files are added. The ``out_of_domain`` split is English prose
  shipped with Python: the values of ``pydoc_data.topics.topics`` sorted by key and
  joined by blank lines.
* **A text file or folder**: its bytes (a folder: every regular file below it that
  contains no NUL byte, sorted by relative path, concatenated). The last
  ``holdout_fraction`` of the bytes is the ``in_domain`` split; ``out_of_domain`` is
  the pydoc prose above (same byte tokens).
* **A pre-tokenized ``.bin`` file**: a flat little-endian uint16 array (nanoGPT
  layout), read through ``numpy.memmap``. The vocabulary is the largest token + 1;
  the last ``holdout_fraction`` of the tokens is ``in_domain``; there is no
  ``out_of_domain`` split, because the prose would need the same tokenizer.

**Fingerprint**: for each split, SHA-256 of its tokens as stored (uint8 bytes, or
uint16 little-endian), then SHA-256 over the lines ``"<split> <n_tokens> <hex>\\n"``
in the order train, in_domain, out_of_domain. Equal fingerprints mean identical
token streams and splits.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import TrainerError

EXCLUDED_DIRS = frozenset({"site-packages", "test", "tests", "idle_test", "__pycache__", "pydoc_data"})
HOLDOUT_FRACTION = 0.05
SPLITS = ("in_domain", "out_of_domain")


@dataclass(frozen=True)
class Corpus:
    """Token streams of one corpus.

    Attributes:
        name: ``stdlib``, ``text`` or ``bin``.
        source: where the tokens came from (a path, or the stdlib folder).
        train: training tokens (uint8 or uint16 array, possibly a memmap).
        eval_splits: held-out splits by name, ``in_domain`` first.
        vocab_size: number of distinct token ids the model must represent.
        fingerprint: SHA-256 described in the module docstring.
        split_digests: per split, ``{"tokens": n, "sha256": hex}``.
    """

    name: str
    source: str
    train: np.ndarray
    eval_splits: dict[str, np.ndarray]
    vocab_size: int
    fingerprint: str
    split_digests: dict[str, dict[str, int | str]] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        """JSON-ready summary for run metadata."""
        return {
            "name": self.name,
            "source": self.source,
            "vocab_size": self.vocab_size,
            "fingerprint": self.fingerprint,
            "fingerprint_convention": "sha256 over '<split> <n_tokens> <sha256 of token bytes>' lines",
            "splits": self.split_digests,
        }


def _digest(tokens: np.ndarray) -> str:
    data = np.ascontiguousarray(tokens)
    if data.dtype == np.uint16:
        data = data.astype("<u2", copy=False)
    hasher = hashlib.sha256()
    view = memoryview(data.reshape(-1).view(np.uint8))
    step = 1 << 24
    for start in range(0, len(view), step):
        hasher.update(view[start : start + step])
    return hasher.hexdigest()


def _make_corpus(name: str, source: str, train: np.ndarray, splits: dict[str, np.ndarray], vocab_size: int) -> Corpus:
    digests: dict[str, dict[str, int | str]] = {}
    lines = []
    for split, tokens in [("train", train), *splits.items()]:
        hexdigest = _digest(tokens)
        digests[split] = {"tokens": int(tokens.size), "sha256": hexdigest}
        lines.append(f"{split} {tokens.size} {hexdigest}\n")
    fingerprint = hashlib.sha256("".join(lines).encode()).hexdigest()
    return Corpus(name, source, train, splits, vocab_size, fingerprint, digests)


def stdlib_root() -> Path:
    """Folder of the running interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def _in_holdout(relative: str, fraction: float) -> bool:
    value = int.from_bytes(hashlib.sha256(relative.encode()).digest()[:8], "big")
    return value < fraction * 2**64


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The ``*.py`` files of the default corpus, sorted by relative path."""
    root = stdlib_root() if root is None else root
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS)
        found.extend(Path(folder) / f for f in sorted(files) if f.endswith(".py"))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def ood_prose() -> np.ndarray:
    """The out-of-domain split: ``pydoc_data.topics.topics`` values as UTF-8 bytes."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key] for key in sorted(topics))
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


@functools.lru_cache(maxsize=4)
def _stdlib_corpus(holdout_fraction: float) -> Corpus:
    root = stdlib_root()
    train_parts, held_parts = [], []
    for path in stdlib_files(root):
        data = path.read_bytes()
        relative = path.relative_to(root).as_posix()
        (held_parts if _in_holdout(relative, holdout_fraction) else train_parts).append(data)
    train = np.frombuffer(b"".join(train_parts), dtype=np.uint8)
    held = np.frombuffer(b"".join(held_parts), dtype=np.uint8)
    return _make_corpus("stdlib", str(root), train, {"in_domain": held, "out_of_domain": ood_prose()}, 256)


def _tail_split(tokens: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    cut = len(tokens) - round(len(tokens) * fraction)
    return tokens[:cut], tokens[cut:]


def _read_text_source(path: Path) -> np.ndarray:
    if path.is_file():
        return np.frombuffer(path.read_bytes(), dtype=np.uint8)
    parts = []
    for file in sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix()):
        if any(part.startswith(".") for part in file.relative_to(path).parts):
            continue
        data = file.read_bytes()
        if b"\0" not in data:
            parts.append(data)
    if not parts:
        raise TrainerError(f"folder {path} holds no text files; give a folder of text files or a .bin file")
    return np.frombuffer(b"".join(parts), dtype=np.uint8)


def load_corpus(path: str | os.PathLike[str] | None = None, holdout_fraction: float = HOLDOUT_FRACTION) -> Corpus:
    """Load a corpus (see the module docstring for the sources and splits).

    Raises:
        TrainerError: the path does not exist, a folder holds no text, a ``.bin`` file
            is empty or has an odd number of bytes.
    """
    if not 0 < holdout_fraction < 1:
        raise TrainerError(f"holdout_fraction must lie in (0, 1), got {holdout_fraction!r}")
    if path is None:
        return _stdlib_corpus(holdout_fraction)
    source = Path(path)
    if not source.exists():
        raise TrainerError(f"corpus {source} does not exist; give an existing text file, folder or .bin file to --data")
    if source.is_file() and source.suffix == ".bin":
        size = source.stat().st_size
        if size == 0 or size % 2:
            raise TrainerError(
                f"{source} has {size} bytes, not a non-empty uint16 array; write tokens with numpy.uint16.tofile"
            )
        tokens = np.memmap(source, dtype="<u2", mode="r")
        train, held = _tail_split(tokens, holdout_fraction)
        vocab = int(tokens.max()) + 1
        return _make_corpus("bin", str(source), train, {"in_domain": held}, vocab)
    tokens = _read_text_source(source)
    train, held = _tail_split(tokens, holdout_fraction)
    return _make_corpus("text", str(source), train, {"in_domain": held, "out_of_domain": ood_prose()}, 256)


def check_corpus_size(corpus: Corpus, context: int, batch_seqs: int, eval_tokens: int) -> None:
    """Raise :class:`TrainerError` when a split is too small for the requested shapes.

    Training needs at least ``batch_seqs`` distinct windows of ``context + 1`` tokens
    (``context + batch_seqs`` tokens); each evaluation split needs ``eval_tokens + 1``
    tokens so that its windows (see :func:`eval_windows`) do not overlap.
    """
    need_train = context + batch_seqs
    if corpus.train.size < need_train:
        raise TrainerError(
            f"corpus {corpus.source} is too small: {corpus.train.size} training tokens, need at least "
            f"{need_train} for context {context} and {batch_seqs} sequences per batch; give more data to --data"
        )
    for split, tokens in corpus.eval_splits.items():
        need = eval_tokens + 1
        if tokens.size < need:
            raise TrainerError(
                f"corpus {corpus.source}: split {split} has {tokens.size} tokens, fewer than the "
                f"{need} that --eval-tokens {eval_tokens} needs; lower --eval-tokens or give more data"
            )


def eval_windows(tokens: np.ndarray, context: int, eval_tokens: int) -> np.ndarray:
    """Start offsets of the fixed evaluation windows of one split.

    ``max(1, eval_tokens // context)`` windows of ``context + 1`` tokens (inputs plus
    shifted targets), spread evenly over the split: offset_i = round(i·(n−T−1)/(k−1)).
    The same offsets serve every evaluation of a run.
    """
    count = max(1, eval_tokens // context)
    last = tokens.size - context - 1
    if count == 1:
        return np.zeros(1, dtype=np.int64)
    return np.round(np.linspace(0, last, count)).astype(np.int64)
