"""Corpora: the standard-library default, user text and .bin files, splits, fingerprints."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from bayescale.trainer import TrainerError, load_corpus
from bayescale.trainer.data import (
    EXCLUDED_DIRS,
    _stdlib_corpus,
    check_corpus_size,
    eval_windows,
    ood_prose,
    stdlib_files,
    stdlib_root,
)


def test_stdlib_corpus_is_deterministic_and_split() -> None:
    corpus = load_corpus()
    assert corpus.name == "stdlib" and corpus.vocab_size == 256
    assert set(corpus.eval_splits) == {"in_domain", "out_of_domain"}
    # Several MB of source for training, a few percent held out.
    assert corpus.train.size > 1_000_000
    held = corpus.eval_splits["in_domain"].size
    assert 0.01 < held / (held + corpus.train.size) < 0.15
    assert corpus.train.dtype == np.uint8
    files = stdlib_files()
    assert files == sorted(files, key=lambda p: p.relative_to(stdlib_root()).as_posix())
    assert all(p.suffix == ".py" for p in files)
    assert not any(set(p.relative_to(stdlib_root()).parts) & EXCLUDED_DIRS for p in files)
    # The prose is English documentation, not code.
    prose = bytes(ood_prose()[:2000]).decode()
    assert "statement" in prose
    # The fingerprint follows its documented convention ...
    lines = "".join(
        f"{name} {tokens.size} {hashlib.sha256(tokens.tobytes()).hexdigest()}\n"
        for name, tokens in [("train", corpus.train), *corpus.eval_splits.items()]
    )
    assert hashlib.sha256(lines.encode()).hexdigest() == corpus.fingerprint == corpus.describe()["fingerprint"]
    # ... and a fresh read of the files (bypassing the cache) reproduces it.
    _stdlib_corpus.cache_clear()
    assert load_corpus().fingerprint == corpus.fingerprint


def test_text_file_and_folder(tmp_path: Path) -> None:
    text = ("the quick brown fox jumps over the lazy dog\n" * 200).encode()
    (tmp_path / "a.txt").write_bytes(text)
    corpus = load_corpus(tmp_path / "a.txt", holdout_fraction=0.1)
    assert corpus.name == "text"
    assert corpus.train.size + corpus.eval_splits["in_domain"].size == len(text)
    assert bytes(corpus.train) + bytes(corpus.eval_splits["in_domain"]) == text
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.md").write_bytes(b"second\n" * 100)
    (folder / "sub" / "a.md").write_bytes(b"first\n" * 100)
    (folder / "image.bin").write_bytes(b"\0\1\2")  # binary: skipped
    (folder / ".hidden").write_bytes(b"hidden\n")  # hidden: skipped
    corpus = load_corpus(folder)
    joined = bytes(corpus.train) + bytes(corpus.eval_splits["in_domain"])
    assert joined == b"second\n" * 100 + b"first\n" * 100
    assert load_corpus(folder).fingerprint == corpus.fingerprint
    (folder / "b.md").write_bytes(b"changed\n" * 100)
    assert load_corpus(folder).fingerprint != corpus.fingerprint


def test_bin_file(tmp_path: Path) -> None:
    tokens = (np.arange(10_000) % 1000).astype(np.uint16)
    path = tmp_path / "tokens.bin"
    tokens.tofile(path)
    corpus = load_corpus(path)
    assert corpus.name == "bin" and corpus.vocab_size == 1000
    assert list(corpus.eval_splits) == ["in_domain"]
    assert np.array_equal(np.concatenate([corpus.train, corpus.eval_splits["in_domain"]]), tokens)
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\0\0\0")
    with pytest.raises(TrainerError, match=r"odd\.bin has 3 bytes"):
        load_corpus(odd)


def test_missing_and_empty_corpus(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match=r"nope\.txt does not exist.*--data"):
        load_corpus(tmp_path / "nope.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainerError, match="holds no text files"):
        load_corpus(tmp_path / "empty")


def test_too_small_corpus(tmp_path: Path) -> None:
    (tmp_path / "small.txt").write_bytes(b"x" * 600)
    corpus = load_corpus(tmp_path / "small.txt", holdout_fraction=0.5)
    with pytest.raises(TrainerError, match=r"too small: 300 training tokens.*give more data"):
        check_corpus_size(corpus, context=256, batch_seqs=64, eval_tokens=64)
    with pytest.raises(TrainerError, match=r"split in_domain has 300 tokens.*lower --eval-tokens"):
        check_corpus_size(corpus, context=32, batch_seqs=4, eval_tokens=1024)
    check_corpus_size(corpus, context=32, batch_seqs=4, eval_tokens=256)


def test_eval_windows_are_fixed_and_spread() -> None:
    tokens = np.arange(10_000, dtype=np.uint16)
    starts = eval_windows(tokens, context=64, eval_tokens=1024)
    assert len(starts) == 16 and starts[0] == 0 and starts[-1] == 10_000 - 65
    assert np.array_equal(starts, eval_windows(tokens, context=64, eval_tokens=1024))
    assert np.all(np.diff(starts) >= 64)
