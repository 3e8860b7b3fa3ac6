"""Run tables: the contract between the trainer, the fitter and outside data.

A run table is a long table with one row per evaluation point (docs/run-table.md):

=================  ========  ====================================================
column             required  meaning
=================  ========  ====================================================
run                yes       unique run id
params             yes       N, non-embedding parameters
batch_tokens       yes       B, tokens per optimizer step
step               yes       S, optimizer steps completed (> 0)
loss               yes       evaluation loss, nats per token (per byte for byte-level models)
tokens             no        B * S (checked against the other two when present)
split / group      no        evaluation split or any grouping for the hierarchy
learning_rate      no        the learning rate in effect at that step (>= 0)
schedule           no        schedule shape, one of :data:`bayescale.schedules.KINDS`
warmup_steps       no        linear warm-up steps of the schedule
final_lr_fraction  no        final rate / peak rate, in [0, 1]
decay_fraction     no        share of the steps in the WSD decay, in (0, 1]
total_steps        no        planned last step of the schedule (>= the last row's)
vocab_size         no        tokens in the model's vocabulary (a whole number > 0);
                             256 means byte-level: losses are nats per byte
lr, seed,          no        recorded when known (``lr`` is the peak rate)
params_total,
context
=================  ========  ====================================================

A run's schedule, for the laws that read one (:func:`bayescale.schedules.table_features`),
comes from its ``learning_rate`` column, else from its specification, else it is assumed
constant after warm-up with a warning.

``run`` and the grouping columns (``split``, ``group`` and any ``--group-by`` column)
may not be blank. ``params``, ``batch_tokens`` and ``step`` may not exceed
:data:`MAX_SCALE` (1e15): no training run comes near it, so a larger value is a units or
parsing error, and the model, which computes in float32 (largest number about 3.4e38),
is kept far from overflow.

:func:`load_runs` reads CSV, Parquet or JSON lines and :func:`validate_runs` checks every
rule; each problem is reported with the file, the row and the fix. Rows are never
dropped silently: with ``on_invalid="drop"`` they are counted and reported in a warning.
Adapters (:func:`load_gadre2024`, :func:`load_gemstones2025`) map public formats onto
the schema.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from bayescale.defaults import SCHEDULE_KINDS

REQUIRED_COLUMNS = ("run", "params", "batch_tokens", "step", "loss")
POSITIVE_COLUMNS = ("params", "batch_tokens", "step", "loss")
OPTIONAL_NUMERIC = ("tokens", "lr", "warmup_steps", "seed", "params_total", "context", "learning_rate",
                    "final_lr_fraction", "decay_fraction", "total_steps", "vocab_size")
#: Columns that specify a run's schedule; :mod:`bayescale.schedules` reads them from a run's
#: first row, so they may not change within a run.
SCHEDULE_SPEC_COLUMNS = ("schedule", "warmup_steps", "final_lr_fraction", "decay_fraction", "total_steps")
#: Relative tolerance when checking that the rows of one step (one per split) agree on ``learning_rate``.
LEARNING_RATE_RTOL = 1e-6
#: Columns whose values group rows (evaluation split, dataset); they may not be blank.
GROUP_COLUMNS = ("split", "group")
#: Largest ``params``, ``batch_tokens`` or ``step`` a run table may hold (module docstring).
MAX_SCALE = 1e15
SCALE_COLUMNS = ("params", "batch_tokens", "step")

#: Relative tolerance when checking ``tokens`` against ``batch_tokens * step``.
TOKENS_RTOL = 1e-3


class RunTableError(ValueError):
    """A run table that breaks the schema; the message names the file, row and fix."""


def _where(source: str, index: int) -> str:
    return f"{source}: row {index + 1}"


def _blank(column: pd.Series) -> np.ndarray:
    """True for missing cells and for text cells with nothing but white space."""
    empty = column.astype(object).map(lambda v: isinstance(v, str) and not v.strip())
    return (column.isna() | empty.astype(bool)).to_numpy(bool)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, Parquet or JSON-lines file into a DataFrame (no validation)."""
    path = Path(path)
    if not path.exists():
        raise RunTableError(f"{path}: no such file; give the path of a run table (CSV, Parquet or JSON lines)")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".ndjson", ".json"):
            return pd.read_json(path, lines=suffix != ".json")
    except ImportError as err:
        raise RunTableError(f"{path}: reading Parquet needs pyarrow; install with `pip install bayescale[parquet]` ({err})") from err
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise RunTableError(f"{path}: cannot be parsed as {suffix[1:]} ({err}); check the file format") from err
    raise RunTableError(f"{path}: unknown table format '{suffix}'; use .csv, .tsv, .parquet or .jsonl")


def validate_runs(
    table: pd.DataFrame,
    source: str = "<run table>",
    on_invalid: Literal["raise", "drop"] = "raise",
    group_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Check a run table against the schema and return a clean copy sorted by run and step.

    Rules: required columns present; no blank ``run`` and no blank cell in the grouping
    columns (:data:`GROUP_COLUMNS` and ``group_columns``, e.g. a ``--group-by`` column);
    numeric columns finite and, for ``params``, ``batch_tokens``, ``step`` and ``loss``,
    positive; ``params``, ``batch_tokens`` and ``step`` at most :data:`MAX_SCALE`; no
    duplicated (run, step, split) rows; ``tokens`` equal to ``batch_tokens * step`` within
    :data:`TOKENS_RTOL`; ``vocab_size`` a whole number above 0 where given; the schedule
    columns usable (:func:`_check_schedule_cells`); ``params``, ``batch_tokens``,
    ``vocab_size`` and the schedule's specification (:data:`SCHEDULE_SPEC_COLUMNS`)
    constant within a run; a ``learning_rate`` above 0 at some step of every run that
    gives one.

    With ``on_invalid="raise"`` the first broken rule raises :class:`RunTableError`; with
    ``"drop"`` offending rows are removed, counted and reported in one warning (missing
    columns and inconsistent runs always raise, since no row-level fix exists).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise RunTableError(
            f"{source}: missing required column(s) {', '.join(missing)} (found: {', '.join(map(str, table.columns))}); "
            "rename them or map them: --column-map params=N_no_embed on the command line, "
            "columns={'params': 'N_no_embed'} in Python"
        )
    if table.empty:
        raise RunTableError(f"{source}: the table has no rows; give a file with at least one evaluation point")
    df = table.reset_index(drop=True).copy()
    bad = np.zeros(len(df), dtype=bool)
    problems: list[str] = []

    def flag(mask: np.ndarray, message: str | Callable[[int], str]) -> None:
        if not mask.any():
            return
        first = int(np.flatnonzero(mask)[0])
        text = f"{_where(source, first)}: {message(first) if callable(message) else message}"
        if on_invalid == "raise":
            extra = f" ({int(mask.sum())} rows in all)" if mask.sum() > 1 else ""
            raise RunTableError(text + extra)
        bad[:] |= mask
        problems.append(f"{int(mask.sum())} x {text}")

    for col in ("run", *(c for c in dict.fromkeys((*GROUP_COLUMNS, *group_columns)) if c in df.columns)):
        need = "a run id" if col == "run" else f"a {col}, since rows are grouped by it (fill it in or remove the row)"
        flag(_blank(df[col]), f"{col} is blank; every row needs {need}")
    df["run"] = df["run"].astype(str)
    if "split" in df.columns:
        df["split"] = df["split"].astype(str)
    for col in (*POSITIVE_COLUMNS, *(c for c in OPTIONAL_NUMERIC if c in df.columns)):
        values = pd.to_numeric(df[col], errors="coerce")
        nonnumeric = values.isna() & df[col].notna()
        flag(nonnumeric.to_numpy(), lambda i, col=col: f"{col}={df[col].iloc[i]!r} is not a number; fix or remove the row")
        df[col] = values.astype(float)
    for col in POSITIVE_COLUMNS:
        values = df[col].to_numpy()
        flag(~np.isfinite(values) & ~bad, lambda i, col=col: f"{col}={values[i]} is not finite; every {col} must be a finite number")
        flag((values <= 0) & np.isfinite(values) & ~bad,
             lambda i, col=col: f"{col}={values[i]:g} must be > 0 (steps count completed optimizer steps, losses are in nats)")
    for col in SCALE_COLUMNS:
        values = df[col].to_numpy()
        flag((values > MAX_SCALE) & ~bad,
             lambda i, col=col: f"{col}={values[i]:g} is above {MAX_SCALE:g}, far beyond any training run (the model "
                                "computes in float32 and would overflow); check the units or remove the row")
    if "tokens" in df.columns:
        tok = df["tokens"].to_numpy()
        expected = df["batch_tokens"].to_numpy() * df["step"].to_numpy()
        off = np.isfinite(tok) & (np.abs(tok - expected) > TOKENS_RTOL * np.abs(expected)) & ~bad
        flag(off, lambda i: f"tokens={tok[i]:g} but batch_tokens*step={expected[i]:g}; tokens must equal B*S (fix the batch size or drop the tokens column)")
    if "vocab_size" in df.columns:
        vocab = df["vocab_size"].to_numpy()
        whole = np.isfinite(vocab) & (vocab >= 1) & (vocab == np.round(vocab))
        flag(~np.isnan(vocab) & ~whole & ~bad,
             lambda i: f"vocab_size={vocab[i]:g} must be a whole number of tokens > 0 (256 for byte-level models), "
                       "or blank")
    key = ["run", "step"] + (["split"] if "split" in df.columns else [])
    dup = df.duplicated(key, keep="first").to_numpy() & ~bad
    flag(dup, lambda i: f"duplicates an earlier row with the same ({', '.join(key)}) = {tuple(df.loc[i, key])}; keep one row per evaluation point")
    _check_schedule_cells(df, bad, flag)

    if bad.any():
        warnings.warn(f"{source}: dropped {int(bad.sum())} of {len(df)} rows: " + "; ".join(problems), stacklevel=2)
        df = df.loc[~bad].reset_index(drop=True)
        if df.empty:
            raise RunTableError(f"{source}: no valid rows are left after dropping invalid ones")

    for col in ("params", "batch_tokens", *(c for c in (*SCHEDULE_SPEC_COLUMNS, "vocab_size") if c in df.columns)):
        counts = df.groupby("run")[col].nunique()
        changed = counts[counts > 1]
        if len(changed):
            run = changed.index[0]
            seen = sorted(df.loc[df["run"] == run, col].dropna().unique())
            raise RunTableError(
                f"{source}: run '{run}' changes {col} mid-run ({', '.join(map(_cell, seen))}); "
                "give each configuration its own run id"
            )
    if "learning_rate" in df.columns:
        peak = df.groupby("run")["learning_rate"].max()
        stopped = peak[peak == 0]
        if len(stopped):
            raise RunTableError(
                f"{source}: run '{stopped.index[0]}' has learning_rate 0 at every step; give the rate in effect "
                "at each step, or leave the cells blank to use the run's schedule"
            )
    return df.sort_values(["run", *(["split"] if "split" in df.columns else []), "step"]).reset_index(drop=True)


def vocab_size_of(table: pd.DataFrame) -> int | None:
    """The vocabulary size that every row of a validated run table gives (its ``vocab_size``
    column), or ``None`` when the table has no such column, leaves a cell blank, or its
    runs disagree: then the losses' units and ceiling are unknown."""
    if "vocab_size" not in table.columns:
        return None
    values = table["vocab_size"]
    if values.isna().any() or values.nunique() != 1:
        return None
    return int(values.iloc[0])


def _cell(value: object) -> str:
    """A value of a run table in a message: numbers as ``%g``, text as it is."""
    return f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)


def _check_schedule_cells(df: pd.DataFrame, bad: np.ndarray,
                          flag: Callable[[np.ndarray, str | Callable[[int], str]], None]) -> None:
    """Flag (through ``validate_runs``' ``flag``) the rows whose schedule columns are unusable.

    ``learning_rate`` finite and >= 0, one rate per (run, step); ``schedule`` one of
    :data:`bayescale.schedules.KINDS`; ``final_lr_fraction`` in [0, 1], ``decay_fraction``
    in (0, 1], ``total_steps`` finite and at least the run's last step. Blank cells pass:
    :func:`bayescale.schedules.table_features` then falls back to the next source. Blank
    ``schedule`` cells become missing values.
    """
    if "learning_rate" in df.columns:
        rate = df["learning_rate"].to_numpy()
        flag(~np.isnan(rate) & ~(np.isfinite(rate) & (rate >= 0)) & ~bad,
             lambda i: f"learning_rate={rate[i]:g} must be a finite number >= 0 (the rate in effect at that step)")
        first = df["learning_rate"].where(~bad).groupby([df["run"], df["step"]]).transform("first").to_numpy()
        clash = ~np.isnan(rate) & ~np.isnan(first) & ~np.isclose(rate, first, rtol=LEARNING_RATE_RTOL, atol=0) & ~bad
        flag(clash, lambda i: f"learning_rate={rate[i]:g} but an earlier row of run '{df['run'].iloc[i]}' at step "
                              f"{df['step'].iloc[i]:g} says {first[i]:g}; the rows of one step (one per split) share "
                              "the rate in effect at that step")
    if "schedule" in df.columns:
        blank = _blank(df["schedule"])
        df.loc[blank, "schedule"] = np.nan
        kind = df["schedule"]
        flag(~blank & ~kind.isin(SCHEDULE_KINDS).to_numpy() & ~bad,
             lambda i: f"schedule={kind.iloc[i]!r} is not a schedule bayescale knows; use one of {', '.join(SCHEDULE_KINDS)}, "
                       "or leave it blank")
    ranges = (("final_lr_fraction", lambda v: (v >= 0) & (v <= 1), "in [0, 1] (final rate / peak rate)"),
              ("decay_fraction", lambda v: (v > 0) & (v <= 1), "in (0, 1] (share of the steps in the WSD decay)"),
              ("total_steps", lambda v: (v > 0) & np.isfinite(v), "> 0 (the planned last step of the schedule)"))
    for col, inside, need in ranges:
        if col in df.columns:
            values = df[col].to_numpy()
            flag(~np.isnan(values) & ~inside(values) & ~bad,
                 lambda i, col=col, values=values, need=need: f"{col}={values[i]:g} must be {need}")
    if "total_steps" in df.columns:
        total = df["total_steps"].to_numpy()
        last = df["step"].where(~bad).groupby(df["run"]).transform("max").to_numpy()
        flag((total < last) & ~bad,
             lambda i: f"total_steps={total[i]:g} but run '{df['run'].iloc[i]}' reaches step {last[i]:g}; "
                       "total_steps is the planned last step of the schedule, at least the last step logged "
                       "(fix it or leave it blank)")


def load_runs(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    on_invalid: Literal["raise", "drop"] = "raise",
    group_columns: Sequence[str] = (),
    batch_tokens: float | None = None,
    context: float | None = None,
) -> pd.DataFrame:
    """Load and validate a run table from CSV, Parquet or JSON lines.

    ``columns`` maps schema names to the file's names, e.g.
    ``{"params": "N_no_embed", "loss": "eval_loss"}``. A column of the file that already
    has a mapped schema name (a ``loss`` column when ``loss`` maps to ``eval_loss``) is
    kept as ``<name>_original``. ``group_columns`` names further columns that group rows
    (a ``--group-by`` column), which may not be blank. ``batch_tokens`` and ``context``
    fill in a batch the file does not give in tokens (:func:`set_batch`).
    """
    table = read_table(path)
    if columns:
        absent = [src for src in columns.values() if src not in table.columns]
        if absent:
            raise RunTableError(f"{path}: column mapping names absent column(s) {', '.join(absent)} (found: {', '.join(map(str, table.columns))})")
        displaced = {dst: f"{dst}_original" for dst, src in columns.items()
                     if dst in table.columns and dst != src and dst not in columns.values()}
        table = table.rename(columns={**displaced, **{src: dst for dst, src in columns.items()}})
    table = set_batch(table, batch_tokens, context, source=str(path))
    return validate_runs(table, source=str(path), on_invalid=on_invalid, group_columns=group_columns)


#: Gadre et al. (2024) models embed a 50,432-token vocabulary (the GPT-NeoX tokenizer's,
#: padded): ``N - N_no_embed`` is 50,432 x width for every one of the 104 published runs.
GADRE_VOCAB = 50_432


def load_gadre2024(path: str | Path, loss_column: str = "loss_c4_val") -> pd.DataFrame:
    """Final losses of Gadre et al. (2024), "Language models scale reliably with over-training".

    One row per run: ``params`` = ``N_no_embed``, ``params_total`` = ``N``,
    ``batch_tokens`` = ``global_bs_seqs * seq_len``, ``tokens`` = ``D_tokens``, ``step`` =
    tokens / batch (fractional where the published token count is not a whole number of
    batches), ``loss`` = ``loss_column`` (C4 validation by default), ``group`` =
    ``dataset``, ``vocab_size`` = :data:`GADRE_VOCAB`.

    Where the recorded batch disagrees with the published step count (``D_tokens !=
    global_bs_seqs * seq_len * steps``) and the launch arguments' batch
    (``global_bs_from_args``) agrees with it, the launch arguments' batch is used: the
    6.9B runs record a batch of one sequence but ran 2,048 per step.

    Every run decays its learning rate on a cosine to ``lr_cooldown_end`` at its last
    step, so each row gets the schedule's specification: ``schedule`` = ``cosine``,
    ``total_steps`` = ``step`` (the loss is the final one), ``final_lr_fraction`` =
    ``lr_cooldown_end / lr`` when both columns are present, and ``lr`` and
    ``warmup_steps`` copied when present (the recorded values, not the launch
    arguments').
    """
    raw = read_table(path)
    need = ["name", "dataset", "N", "N_no_embed", "D_tokens", "global_bs_seqs", "seq_len", loss_column]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise RunTableError(f"{path}: not a Gadre et al. 2024 table (missing {', '.join(missing)})")
    batch = raw["global_bs_seqs"].astype(float) * raw["seq_len"].astype(float)
    if {"steps", "global_bs_from_args"} <= set(raw.columns):
        implied = raw["D_tokens"].astype(float) / raw["steps"].astype(float)
        from_args = raw["global_bs_from_args"].astype(float) * raw["seq_len"].astype(float)
        use_args = ((np.abs(batch - implied) > TOKENS_RTOL * implied)
                    & (np.abs(from_args - implied) <= TOKENS_RTOL * implied))
        batch = batch.where(~use_args, from_args)
    table = pd.DataFrame({
        "run": raw["name"].astype(str),
        "params": raw["N_no_embed"].astype(float),
        "params_total": raw["N"].astype(float),
        "batch_tokens": batch,
        "step": raw["D_tokens"].astype(float) / batch,
        "tokens": raw["D_tokens"].astype(float),
        "loss": raw[loss_column].astype(float),
        "group": raw["dataset"].astype(str),
        "context": raw["seq_len"].astype(float),
        "vocab_size": float(GADRE_VOCAB),
    })
    for column in ("lr", "warmup_steps"):
        if column in raw.columns:
            table[column] = raw[column].astype(float)
    table["schedule"] = "cosine"
    table["total_steps"] = table["step"]
    if {"lr", "lr_cooldown_end"} <= set(raw.columns):
        table["final_lr_fraction"] = raw["lr_cooldown_end"].astype(float) / raw["lr"].astype(float)
    return validate_runs(table, source=str(path))


#: Gemstones models use untied input and output embeddings over a 50,304-token vocabulary.
GEMSTONES_VOCAB = 50_304


def load_gemstones2025(path: str | Path) -> pd.DataFrame:
    """Training-loss curves of McLeish et al. (2025), "Gemstones".

    ``params_active_precise`` counts embeddings; the non-embedding count is
    ``params_active_precise - 2 * 50304 * width`` (untied input and output embeddings).
    The remainder equals ``depth * (15 width^2 + 2 width) + width`` (attention, gated
    MLP and norms) for 20 of the 22 published models; the two of width 384 have 49,152
    (= 384 x 128) fewer per layer, a detail of their blocks that does not touch the
    embeddings. The batch is ``tokens / step`` (2048 x 2048 tokens) and the loss is the
    training loss, so ``split`` is ``train``; ``vocab_size`` is :data:`GEMSTONES_VOCAB`.
    The learning rate is constant after a warm-up the table does not give: ``schedule``
    is ``constant``, with ``warmup_steps`` copied when the table has the column.
    """
    raw = read_table(path)
    need = ["run_name", "params_active_precise", "width", "depth", "tokens", "step", "final_loss"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise RunTableError(f"{path}: not a Gemstones 2025 curve table (missing {', '.join(missing)})")
    total = raw["params_active_precise"].astype(float)
    width = raw["width"].astype(float)
    table = pd.DataFrame({
        "run": raw["run_name"].astype(str),
        "params": total - 2.0 * GEMSTONES_VOCAB * width,
        "params_total": total,
        "batch_tokens": raw["tokens"].astype(float) / raw["step"].astype(float),
        "step": raw["step"].astype(float),
        "tokens": raw["tokens"].astype(float),
        "loss": raw["final_loss"].astype(float),
        "split": "train",
        "schedule": "constant",
        "vocab_size": float(GEMSTONES_VOCAB),
    })
    if "warmup_steps" in raw.columns:
        table["warmup_steps"] = raw["warmup_steps"].astype(float)
    return validate_runs(table, source=str(path))


def set_batch(
    table: pd.DataFrame,
    batch_tokens: float | None = None,
    context: float | None = None,
    source: str = "<run table>",
) -> pd.DataFrame:
    """Fill in the batch of a table that does not record it in tokens (before validation).

    ``batch_tokens`` is a constant batch (tokens per optimizer step) for every row.
    ``context`` (tokens per sequence) is recorded in the ``context`` column, and where the
    table gives its batch in sequences (a ``batch_sequences`` column) the batch is
    ``batch_sequences * context``. A table that has a ``batch_tokens`` column keeps it;
    a constant or a sequence batch that disagrees with it raises :class:`RunTableError`.
    """
    sequences = "batch_sequences" in table.columns
    if batch_tokens is None and context is None and not (sequences and "batch_tokens" not in table.columns):
        return table
    df = table.copy()
    if context is not None:
        if "context" in df.columns:
            have = pd.to_numeric(df["context"], errors="coerce")
            if (np.abs(have - context) > TOKENS_RTOL * context).any():
                raise RunTableError(f"{source}: --context {context:g} disagrees with the table's context column "
                                    f"({', '.join(f'{v:g}' for v in sorted(have.dropna().unique())[:3])}); drop one")
        df["context"] = float(context)
    given = []  # (batch in tokens per row, where it comes from), applied in this order
    if sequences and context is not None:
        given.append((pd.to_numeric(df["batch_sequences"], errors="coerce") * float(context),
                      f"batch_sequences x --context {context}"))
    elif sequences and batch_tokens is None and "batch_tokens" not in df.columns:
        raise RunTableError(f"{source}: the batch is given in sequences (batch_sequences); "
                            "give --context (tokens per sequence) to turn it into batch_tokens")
    if batch_tokens is not None:
        given.append((pd.Series(float(batch_tokens), index=df.index), f"--batch-tokens {batch_tokens:g}"))
    for values, what in given:
        if "batch_tokens" not in df.columns:
            df["batch_tokens"] = values
            continue
        have = pd.to_numeric(df["batch_tokens"], errors="coerce")
        off = (np.abs(have - values) > TOKENS_RTOL * values).to_numpy()
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise RunTableError(f"{source}: row {i + 1}: {what} gives batch_tokens={values.iloc[i]:g} but the "
                                f"table's batch_tokens column says {have.iloc[i]:g}; drop the option or the column")
    return df


def select_runs(
    table: pd.DataFrame,
    max_params: float | None = None,
    where: str | None = None,
    source: str = "<run table>",
) -> pd.DataFrame:
    """The rows of a validated run table with ``params <= max_params`` and for which the
    :meth:`pandas.DataFrame.query` expression ``where`` holds (a held-out split:
    ``"params < 1e6 and split == 'in_domain'"``). An expression that does not parse, names
    an unknown column or does not give one truth value per row, and a selection that leaves
    no row, raise :class:`RunTableError`.
    """
    df = table
    if max_params is not None:
        df = df.loc[df["params"] <= max_params]
        if df.empty:
            raise RunTableError(f"{source}: no rows with params <= {max_params:g} (smallest params: "
                                f"{table['params'].min():g}); raise --max-params")
    if where:
        try:
            kept = df.query(where)
        except pd.errors.UndefinedVariableError as err:
            raise RunTableError(f"{source}: --where {where!r}: {err} (columns: {', '.join(map(str, df.columns))})") from err
        except Exception as err:  # SyntaxError, TypeError, ValueError... from pandas' parser
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise RunTableError(f"{source}: --where {where!r} cannot be evaluated ({type(err).__name__}: {message}); "
                                "use pandas query syntax, e.g. \"params < 1e6 and split == 'in_domain'\"") from err
        if not isinstance(kept, pd.DataFrame):
            raise RunTableError(f"{source}: --where {where!r} does not select rows; give a condition, e.g. params < 1e6")
        df = kept
        if df.empty:
            raise RunTableError(f"{source}: --where {where!r} leaves no rows; loosen the condition")
    return df.reset_index(drop=True)


#: Column names W&B uses for the run and the step in its exports, in order of preference.
WANDB_RUN_COLUMNS = ("run", "Name", "name", "run_name", "run_id", "id")
WANDB_STEP_COLUMNS = ("Step", "_step", "step", "trainer/global_step", "global_step")
#: Metric names under which runs commonly log the learning rate of each step, in order of preference.
WANDB_LR_COLUMNS = ("learning_rate", "lr", "train/learning_rate", "train/lr")
#: Suffixes of the band columns in W&B's chart export (dropped).
WANDB_BAND_SUFFIXES = ("__MIN", "__MAX")


def _per_run(value: Mapping[str, float] | float, runs: pd.Series, what: str, source: str) -> pd.Series:
    """A constant, or a run -> value mapping looked up for every row (every run must be in it)."""
    if isinstance(value, Mapping):
        lookup = {str(k): float(v) for k, v in value.items()}
        absent = sorted(set(runs) - set(lookup))
        if absent:
            raise RunTableError(f"{source}: no {what} given for run(s) {', '.join(absent[:5])}"
                                f"{' ...' if len(absent) > 5 else ''}; add them to the {what} mapping")
        return runs.map(lookup).astype(float)
    return pd.Series(float(value), index=runs.index)


def _chart_columns(columns: Sequence[str], metric: str) -> list[str]:
    """The ``<run name> - <metric>`` columns of a W&B chart export."""
    suffix = f" - {metric}"
    return [c for c in columns if c.endswith(suffix) and len(c) > len(suffix)]


def _chart_metric(raw: pd.DataFrame, step_col: str, metric: str) -> pd.DataFrame | None:
    """One metric of a W&B chart export in long form (``run``, ``step``, ``value``), or ``None``
    when the export does not have it."""
    columns = _chart_columns(list(raw.columns), metric)
    if not columns:
        return None
    melted = raw[[step_col, *columns]].melt(id_vars=step_col, var_name="run", value_name="value")
    return pd.DataFrame({"run": melted["run"].str[:-len(f" - {metric}")], "step": melted[step_col],
                         "value": melted["value"]})


def _last_logged(values: pd.Series, runs: pd.Series, steps: pd.Series) -> pd.Series:
    """Per row, the last value logged at or before its step in its run (W&B leaves a cell
    empty at steps where the metric was not logged)."""
    frame = pd.DataFrame({"run": runs, "step": pd.to_numeric(steps, errors="coerce"), "value": values})
    ordered = frame.sort_values(["run", "step"], kind="stable")
    return ordered.groupby("run")["value"].ffill().reindex(frame.index)


def load_wandb(
    path: str | Path | pd.DataFrame,
    loss: str,
    params: Mapping[str, float] | float,
    batch_tokens: Mapping[str, float] | float,
    split: str | None = None,
    run_column: str | None = None,
    step_column: str | None = None,
    learning_rate: str | None = None,
) -> pd.DataFrame:
    """A run table from a Weights & Biases export (a file or a DataFrame).

    Two layouts are read:

    * long: one row per logged step, with a run column (``run``, ``Name``, ``name``,
      ``run_name``, ``run_id`` or ``id``; or ``run_column``), a step column (``Step``,
      ``_step``, ``step``, ``trainer/global_step``, ``global_step``; or ``step_column``)
      and metric columns, among them ``loss`` (e.g. ``"eval/loss"``);
    * wide: W&B's "export CSV" of a chart, a ``Step`` column and one column per run
      named ``<run name> - <metric>``; the ``__MIN``/``__MAX`` band columns are dropped.

    ``params`` and ``batch_tokens`` (tokens per optimizer step) are a constant or a
    mapping from run name to value. Rows where the loss was not logged (W&B leaves the
    cell empty when other metrics were logged at that step) are not evaluation points
    and are left out; rows at step 0 (the loss before training) are left out with a
    warning. With ``split`` every row gets that ``split``.

    ``learning_rate`` names the metric that logs the learning rate at each step (default:
    the first of :data:`WANDB_LR_COLUMNS` the export has, as a column or as ``<run name>
    - <metric>`` columns); it becomes the ``learning_rate`` column, each row taking the
    rate last logged at or before its step in its run. Returns the validated table
    (:func:`validate_runs`).
    """
    if isinstance(path, pd.DataFrame):
        raw, source = path, "<W&B export>"
    else:
        raw, source = read_table(path), str(path)
    columns = [str(c) for c in raw.columns]
    raw = raw.set_axis(columns, axis=1)
    if loss in columns or not _chart_columns(columns, loss):
        if loss not in columns:
            metrics = sorted({c.rsplit(" - ", 1)[1] for c in columns if " - " in c and not c.endswith(WANDB_BAND_SUFFIXES)})
            hint = f"; the chart export has metric(s) {', '.join(metrics)}" if metrics else ""
            raise RunTableError(f"{source}: no loss column {loss!r} (found: {', '.join(columns)}){hint}; "
                                "pass the metric's name as loss=")
        run_col = run_column or next((c for c in WANDB_RUN_COLUMNS if c in columns), None)
        step_col = step_column or next((c for c in WANDB_STEP_COLUMNS if c in columns), None)
        for found, what, options in ((run_col, "run", WANDB_RUN_COLUMNS), (step_col, "step", WANDB_STEP_COLUMNS)):
            if found is None or found not in columns:
                raise RunTableError(f"{source}: no {what} column (looked for {found or ', '.join(options)}; found: "
                                    f"{', '.join(columns)}); name it with {what}_column=")
        long = pd.DataFrame({"run": raw[run_col].astype(str), "step": raw[step_col], "loss": raw[loss]})
        rate_col = learning_rate or next((c for c in WANDB_LR_COLUMNS if c in columns), None)
        if rate_col is not None and rate_col in columns:
            long["learning_rate"] = raw[rate_col]
    else:
        step_col = step_column or next((c for c in WANDB_STEP_COLUMNS if c in columns), None)
        if step_col is None or step_col not in columns:
            raise RunTableError(f"{source}: a chart export needs a Step column (found: {', '.join(columns)}); "
                                "name it with step_column=")
        long = _chart_metric(raw, step_col, loss).rename(columns={"value": "loss"})
        rate_col = learning_rate or next((m for m in WANDB_LR_COLUMNS if _chart_columns(columns, m)), None)
        rates = None if rate_col is None else _chart_metric(raw, step_col, rate_col)
        if rates is not None:
            long = long.merge(rates.rename(columns={"value": "learning_rate"}), on=["run", "step"], how="left")
    if learning_rate is not None and "learning_rate" not in long.columns:
        raise RunTableError(f"{source}: no learning-rate metric {learning_rate!r} (found: {', '.join(columns)}); "
                            "pass its name as learning_rate=, or leave it out to look for "
                            f"{', '.join(WANDB_LR_COLUMNS)}")
    if "learning_rate" in long.columns:
        long["learning_rate"] = _last_logged(long["learning_rate"], long["run"], long["step"])
    long = long.loc[long["loss"].notna()].reset_index(drop=True)
    if long.empty:
        raise RunTableError(f"{source}: the metric {loss!r} has no logged values")
    step = pd.to_numeric(long["step"], errors="coerce")
    start = (step == 0).to_numpy()
    if start.any():
        warnings.warn(f"{source}: left out {int(start.sum())} rows at step 0 (the loss before training)", stacklevel=2)
        long = long.loc[~start].reset_index(drop=True)
    long["params"] = _per_run(params, long["run"], "params", source)
    long["batch_tokens"] = _per_run(batch_tokens, long["run"], "batch_tokens", source)
    if split is not None:
        long["split"] = split
    keep = ["run", "params", "batch_tokens", "step", "loss", *(["split"] if split else []),
            *(["learning_rate"] if "learning_rate" in long.columns else [])]
    return validate_runs(long[keep], source=source)
