"""A study's runs as one table: one row per completed run.

Columns (docs/results-format.md, "The aggregated table"), in this order:

- identity: ``source``, ``study``, ``run_id``, ``model``, ``dataset``, ``data_source``,
  ``seed``, ``arch``, ``latent_dim``, ``max_steps`` (training length), ``batch_size``,
  ``lr``, ``strength_name`` and ``strength`` (the model's regularisation strength, the
  hyperparameter the study sweeps), then ``hp.<name>`` for every hyperparameter;
- status: ``state``, ``step``, ``attempts``, ``device``, ``host``;
- timings: ``started_at``, ``finished_at``, ``duration_s`` (Unix times, seconds);
- evaluation settings: ``eval_settings`` (the preset's name), ``eval_key`` (a hash of
  the complete settings but the seed: two runs are comparable when their keys are equal)
  and ``eval_boosting`` (the gradient-boosted trees behind DCI and the downstream task:
  ``sklearn``, the reference's, or ``fast``);
- ``setting_key``: a hash of the run's identity but its seed (runs with equal keys
  differ only by seed);
- ``train.<term>``: the loss terms at the last step;
- ``heldout.<term>``: reconstruction loss, KL and ELBO on a fixed sample
  (``disbench.metrics.heldout``);
- ``generation.<space>.<set>``: Frechet distances of decoded prior samples and of
  reconstructions to real images (``disbench.metrics.generation``);
- ``udr.lasso``, ``udr.spearman``, ``udr.models``: UDR within the run's group of seeds
  (``disbench.aggregate.udr``);
- ``mean.<metric>.<score>`` and ``sampled.<metric>.<score>``: the metric scores on the
  mean and the sampled representation.

Only ``status.json``, ``metrics.json`` and (for UDR) ``udr_sample.npz`` are read. Runs
that are not completed, or whose files cannot be read, are left out and listed as
``Skipped`` with the reason. Rows are sorted by study and run id, so the same store
always gives the same table.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from disbench import store
from disbench.aggregate.udr import add_udr
from disbench.errors import DisbenchError
from disbench.launch.state import run_state

TABLE_FORMAT = 1  # bump when columns change meaning; older tables are refused on reading
FORMAT_KEY = b"disbench.table_format"

IDENTITY = ["source", "study", "run_id", "model", "dataset", "data_source", "seed", "arch",
            "latent_dim", "max_steps", "batch_size", "lr", "strength_name", "strength"]
STATUS = ["state", "step", "attempts", "device", "host"]
TIMINGS = ["started_at", "finished_at", "duration_s"]
EVAL = ["eval_settings", "eval_key", "eval_boosting"]
SCORES = ("train.", "udr.", *(f"{part}." for part in store.SCORE_PARTS))  # column prefixes
PREFIXES = ("hp.", *SCORES)


@dataclass(frozen=True)
class Skipped:
    """A run left out of the table, and why."""

    study: str
    run_id: str
    state: str
    reason: str


@dataclass
class Aggregate:
    table: pd.DataFrame
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the table could not fill in


def eval_key(settings: dict | None) -> str | None:
    """A short hash of complete evaluation settings. The seed is left out: each run is
    scored with its own seed (its training seed), as part of what varies between runs."""
    if not settings:
        return None
    settings = {k: v for k, v in store.recorded_eval_settings(settings).items() if k != "seed"}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def setting_key(identity: dict) -> str:
    """A short hash of a run's identity without its seed: equal for the runs of one
    setting (objective, hyperparameters, data, architecture, training) over seeds."""
    rest = {k: v for k, v in identity.items() if k != "seed"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:10]


def boosting_of(settings: dict | None) -> str | None:
    """Which gradient-boosted trees scored DCI and the downstream task (``sklearn`` for
    scores stored before the setting existed)."""
    return store.recorded_eval_settings(settings)["boosting"] if settings else None


@functools.cache
def strength_of(model: str) -> str | None:
    """The name of the hyperparameter that sets a model's regularisation strength; None
    for a model without one, or a plug-in that cannot be imported here."""
    from disbench import models
    from disbench.errors import DisbenchError

    try:
        return models.resolve(model).strength
    except DisbenchError:
        return None


def _number(value):
    """Numbers as floats, lists (e.g. Adam betas) as JSON text: one scalar per cell."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def run_row(status: dict, metrics: dict) -> dict:
    """The table row of one completed run from its status.json and metrics.json."""
    ident = status["identity"]
    model = dict(ident["model"])
    name = model.pop("name")
    trainer = ident.get("trainer", {})
    strength = strength_of(name)
    settings = metrics.get("eval") or {}
    scored = "mean" in metrics
    row = {
        "source": "disbench",
        "study": status.get("study"),
        "run_id": status["run_id"],
        "model": name,
        "dataset": ident["data"]["name"],
        "data_source": status.get("data_source"),
        "seed": int(ident["seed"]),
        "arch": ident.get("arch", {}).get("name"),
        "latent_dim": ident.get("arch", {}).get("latent_dim"),
        "max_steps": trainer.get("max_steps"),
        "batch_size": trainer.get("batch_size"),
        "lr": trainer.get("lr"),
        "strength_name": strength,
        "strength": _number(model.get(strength)) if strength else None,
        "state": status.get("state"),
        "step": status.get("step"),
        "attempts": status.get("attempts"),
        "device": status.get("device"),
        "host": status.get("host"),
        "started_at": status.get("started_at"),
        "finished_at": status.get("finished_at"),
        "duration_s": status.get("duration_s"),
        "eval_settings": settings.get("name") if scored else None,
        "eval_key": eval_key(settings) if scored else None,
        "eval_boosting": boosting_of(settings) if scored else None,
        "setting_key": setting_key(ident),
    }
    row.update({f"hp.{k}": _number(v) for k, v in model.items()})
    for part in ("train", *store.SCORE_PARTS):
        row.update({f"{part}.{k}": float(v) for k, v in (metrics.get(part) or {}).items()})
    return row


def _why_not_completed(run: store.RunDir, status: dict) -> tuple[str, str]:
    state = run_state(run)
    if state == "failed":
        return state, f"failed: {status.get('reason') or 'no reason recorded'}"
    if state == "trained":
        return state, (f"trained, not yet scored (eval.defer): `disbench eval {run.path.parent}` "
                       f"scores it")
    if state == "running":
        return state, f"still running (step {status.get('step', 0)} of {status.get('max_steps')})"
    return state, (f"incomplete: stopped at step {status.get('step', 0)} of "
                   f"{status.get('max_steps')}; `disbench sweep` or `disbench train` resumes it")


def read_run(run: store.RunDir, study: str) -> dict | Skipped:
    """A completed run's row, or why it is left out."""
    name = run.path.name
    try:
        status = run.status()
    except store.CorruptFile as err:
        return Skipped(study, name, "unreadable", str(err))
    if status["state"] != store.COMPLETED:
        return Skipped(study, name, *_why_not_completed(run, status))
    try:
        metrics = json.loads(run.metrics.read_text())
    except (OSError, ValueError) as err:
        return Skipped(study, name, "unreadable",
                       f"{run.metrics} cannot be read ({err}); `disbench eval {run.path} "
                       f"--force` scores the run again and rewrites it")
    try:
        return run_row(status, metrics)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return Skipped(study, name, "unreadable",
                       f"status.json or metrics.json lacks a field: {err!r}")


def read_study(root: Path) -> Aggregate:
    """Every run under a study directory (the subdirectories holding a status.json)."""
    study = root.name
    rows, runs, skipped = [], [], []
    for path in sorted(p for p in root.iterdir() if (p / "status.json").exists()):
        run = store.RunDir(path)
        got = read_run(run, study)
        if isinstance(got, Skipped):
            skipped.append(got)
        else:
            rows.append(got)
            runs.append(run)
    if not rows and not skipped:
        raise DisbenchError(f"study '{study}' ({root}) holds no runs: no subdirectory has a "
                            f"status.json. Launch some with `disbench sweep`.")
    notes = add_udr(rows, runs)
    return Aggregate(to_frame(rows), skipped, notes)


def ordered_columns(columns) -> list[str]:
    """The table's column order: fixed groups, then each prefixed group sorted."""
    fixed = [c for c in IDENTITY if c in columns]
    prefixed = {p: sorted(c for c in columns if c.startswith(p)) for p in PREFIXES}
    rest = [c for c in STATUS + TIMINGS + EVAL if c in columns]
    others = sorted(set(columns) - set(fixed) - set(rest) - {c for v in prefixed.values()
                                                             for c in v})
    return fixed + prefixed["hp."] + rest + others + [c for p in PREFIXES[1:]
                                                      for c in prefixed[p]]


def to_frame(rows: list[dict]) -> pd.DataFrame:
    columns = IDENTITY + STATUS + TIMINGS + EVAL
    frame = pd.DataFrame(rows, columns=ordered_columns(
        set(columns).union(*(r.keys() for r in rows)) if rows else columns))
    for column in ("seed", "latent_dim", "max_steps", "batch_size", "step", "attempts"):
        frame[column] = frame[column].astype("Int64")
    return sort_rows(frame)


def sort_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["study", "run_id"], kind="stable").reset_index(drop=True)


def combine(parts: list[Aggregate]) -> Aggregate:
    """Several studies (or imported tables) as one table."""
    frames = [p.table for p in parts if len(p.table)]
    if frames:
        table = pd.concat(frames, ignore_index=True)
        table = sort_rows(table[ordered_columns(table.columns)])
    else:
        table = parts[0].table
    twice = table.duplicated(["study", "run_id"])
    if twice.any():
        dup = ", ".join(sorted(set(table["study"][twice] + "/" + table["run_id"][twice]))[:5])
        raise DisbenchError(f"the same run appears twice in the sources: {dup}; aggregate each "
                            f"study once.")
    return Aggregate(table, [s for p in parts for s in p.skipped],
                     [n for p in parts for n in p.notes])


def mixed_settings(table: pd.DataFrame) -> dict[str, int]:
    """Evaluation settings in use, with their run counts, when a table mixes several
    (scores under different settings are not comparable)."""
    scored = table[table["eval_key"].notna()]
    labels = scored["eval_settings"].fillna("?").astype(str) + " (" + scored["eval_key"] + ")"
    counts = labels.value_counts().sort_index()
    return {k: int(v) for k, v in counts.items()} if len(counts) > 1 else {}


# -- files ---------------------------------------------------------------------------
def write_table(table: pd.DataFrame, stem: Path) -> list[Path]:
    """``stem.parquet`` (with the table format in its metadata) and ``stem.csv``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stem.parent.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                           FORMAT_KEY: str(TABLE_FORMAT).encode()})
    parquet, csv = stem.with_name(stem.name + ".parquet"), stem.with_name(stem.name + ".csv")
    tmp = parquet.with_name(f".{parquet.name}.tmp")
    pq.write_table(arrow, tmp)
    tmp.replace(parquet)
    store.write_atomic(csv, table.to_csv(index=False, lineterminator="\n"))
    return [parquet, csv]


def read_table(path: Path) -> pd.DataFrame:
    """A table written by ``write_table``; one of another format version is refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise DisbenchError(f"{path} is not a readable parquet table: {err}") from None
    found = (arrow.schema.metadata or {}).get(FORMAT_KEY)
    if found != str(TABLE_FORMAT).encode():
        version = found.decode() if found else "none (written by an older disbench or another tool)"
        raise DisbenchError(f"{path} has table format {version}; this disbench reads format "
                            f"{TABLE_FORMAT}. Write it again with `disbench aggregate STUDY`.")
    table = arrow.to_pandas()
    missing = [c for c in IDENTITY + STATUS + TIMINGS + EVAL if c not in table.columns]
    if missing:
        raise DisbenchError(f"{path} lacks the columns {', '.join(missing)}; write it again with "
                            f"`disbench aggregate STUDY`.")
    return table

