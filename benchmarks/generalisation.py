"""Out-of-distribution skill: leave-family-out training of the general recipe, a 1-D baseline, fine-tuning.

Usage (from the repository root)::

    python -m benchmarks.generalisation                          # the general recipe's data, 900 s per model
    python -m benchmarks.generalisation --budget-s 600 --finetune-budget-s 240 --held-out structural
    python -m benchmarks.generalisation --epochs 20 --finetune-epochs 15   # load-independent: fixed epochs
    python -m benchmarks.generalisation --epochs 20 --finetune-epochs 5 10 20 --finetune-samples 500
    python -m benchmarks.generalisation --report                 # the table from the rows already measured
    python -m benchmarks.generalisation --rescore                # ... their saved models scored again first
    python -m benchmarks.generalisation --count 1000 --work-dir W --epochs 8 --held-out structural \
        --rows "general without K" --no-write                    # 2.5x the samples, the same sample-passes

What it measures, on the general recipe's dataset (``configs/train/general.yaml``: every family, each sample
with its own source; synthesized and cached under ``--work-dir`` the first time):

* **leave-family-out**: for every held-out group K (default: ``salt`` = salt + structural-salt,
  ``curvefault-b``, ``structural`` = structural + structural-salt) the general recipe is trained on every
  *other* family and scored on K's validation and test samples, which it has never seen;
* the **1-D baseline** of every row: the per-depth mean velocity of that row's *training* samples, the best
  a model can do that knows the depth trend and nothing of the data; ``skill = 1 - MAE(model) / MAE(baseline)``
  (0 = no better than the baseline, 1 = perfect);
* a **FlatVel-A model** (trained on FlatVel-A alone, as the default run is) and the **general model** (every
  family, K included: an in-distribution reference, not a held-out score);
* **fine-tuning**: the model trained without K, fine-tuned (``--init-from``) on K's training samples (the
  first ``--finetune-samples`` of them) for ``--finetune-budget-s`` (or ``--finetune-epochs``), against a model
  trained from scratch on the same samples for the same budget; several budgets give the curve of what
  fine-tuning is worth against the time a user spends;
* for every row, what the edge task is meant to improve: the MAE within two cells of the true interfaces
  and the total variation of the error map (m/s per cell; lower is smoother), next to MAE and SSIM;
* and where the error lies (``error_split``): the bias, and the MAE left once the model's depth trend is
  corrected, against the truth's own lateral variation (a model with no lateral structure scores that).

Each training run appends its scores to ``--work-dir/results.jsonl`` as soon as it ends, and a later call with
the same settings skips the rows already there, so an interrupted benchmark resumes. The table goes to the
``generalisation`` section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from benchmarks.report import machine_description, markdown_table, run_isolated, update_section

REPOSITORY = Path(__file__).resolve().parent.parent
GENERAL_CONFIG = REPOSITORY / "configs" / "train" / "general.yaml"

#: Held-out groups: a name and the families left out together (a family that shares the structure goes too:
#: structural-salt holds salt and structural layering).
HELD_OUT_GROUPS: dict[str, tuple[str, ...]] = {
    "salt": ("salt", "structural-salt"),
    "curvefault-b": ("curvefault-b",),
    "structural": ("structural", "structural-salt"),
}
SECTION = "generalisation"


# ----------------------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------------------


def family_indices(dataset_path: Path, families: Sequence[str], splits: Sequence[str]) -> np.ndarray:
    """Dataset indices of the samples of ``families`` in ``splits`` (sorted)."""
    from data_prep import schema
    from pipeline.feeding import read_sample_families

    with schema.open_dataset(dataset_path) as h5:
        all_splits = schema.read_splits(h5)
        sample_families = read_sample_families(h5)
    chosen = np.concatenate([np.asarray(all_splits[name], dtype=np.int64) for name in splits])
    return np.sort(chosen[np.isin(sample_families[chosen], list(families))])


def depth_baseline_mps(dataset_path: Path, families: Sequence[str]) -> np.ndarray:
    """``(depth,)`` mean velocity per depth row of the training split's samples of ``families``, m/s."""
    from data_prep import schema

    indices = family_indices(dataset_path, families, ("train",))
    with schema.open_dataset(dataset_path) as h5:
        total = np.zeros(h5[schema.VELOCITY].shape[1], dtype=np.float64)
        for start in range(0, len(indices), 256):
            total += h5[schema.VELOCITY][indices[start : start + 256]].astype(np.float64).sum(axis=(0, 2))
        return total / (len(indices) * h5[schema.VELOCITY].shape[2])


def velocity_scores(
    true_mps: np.ndarray, predicted_mps: np.ndarray, baseline_mps: np.ndarray, edges: np.ndarray
) -> dict[str, float]:
    """Scores of ``(batch, depth, x)`` velocity predictions, m/s, against the truth and the 1-D baseline.

    Returns:
        ``mae_mps``, ``ssim`` (OpenFWI's, on 1500-4500 m/s), ``baseline_mae_mps``, ``baseline_ssim``, ``skill``
        (1 - MAE / baseline MAE), ``interface_mae_mps`` (MAE over cells within two cells of a true edge),
        ``error_tv_mps`` (mean absolute difference of the error map between neighbouring cells, m/s per cell)
        and the error's split (``error_split``): ``bias_mps``, ``lateral_mae_mps``, ``truth_lateral_mps``;
        ``skill_by_depth_third``: the skill over the top, middle and bottom thirds of the rows (what the data
        constrain shrinks with depth: a window's offsets reach 690 m and its record 1 s).
    """
    from models.metrics import error_total_variation, interface_mae, ssim_per_sample

    true_mps = np.asarray(true_mps, np.float64)
    predicted_mps = np.asarray(predicted_mps, np.float64)
    baseline = np.broadcast_to(np.asarray(baseline_mps, np.float64)[None, :, None], true_mps.shape)

    def unit(values):  # OpenFWI's SSIM is computed on the velocity scaled from 1500-4500 m/s to [0, 1]
        return np.clip((values - 1500.0) / 3000.0, 0.0, 1.0)

    mae = float(np.abs(predicted_mps - true_mps).mean())
    baseline_mae = float(np.abs(baseline - true_mps).mean())
    thirds = np.array_split(np.arange(true_mps.shape[1]), 3)
    by_third = [
        1.0
        - np.abs(predicted_mps[:, rows] - true_mps[:, rows]).mean()
        / max(np.abs(baseline[:, rows] - true_mps[:, rows]).mean(), 1e-9)
        for rows in thirds
    ]
    return {
        "mae_mps": mae,
        "ssim": float(ssim_per_sample(unit(true_mps), unit(predicted_mps)).mean()),
        "baseline_mae_mps": baseline_mae,
        "baseline_ssim": float(ssim_per_sample(unit(true_mps), unit(baseline)).mean()),
        "skill": 1.0 - mae / baseline_mae if baseline_mae > 0 else float("nan"),
        "interface_mae_mps": interface_mae(true_mps, predicted_mps, edges),
        "error_tv_mps": error_total_variation(true_mps, predicted_mps),
        **error_split(true_mps, predicted_mps),
        "skill_by_depth_third": [float(value) for value in by_third],
    }


def error_split(true_mps: np.ndarray, predicted_mps: np.ndarray) -> dict[str, float]:
    """Where a model's error lies: in its depth trend or in the lateral structure.

    Returns:
        ``bias_mps``: the mean of ``predicted - true`` (a velocity level too high or too low).
        ``lateral_mae_mps``: the MAE left when each sample's error is made zero on average along every depth
        row, i.e. with the model's depth trend corrected; what remains is its lateral structure's error.
        ``truth_lateral_mps``: the same for a model of no lateral structure at all (each row of the truth
        replaced by its mean): the size of the truth's lateral variation. ``lateral_mae_mps`` near it says
        that the model gets no lateral structure right; well below it, that it does.
        ``predicted_lateral_mps``: the same measure of the prediction itself: how much lateral structure
        the model puts in its sections at all (near 0: 1-D sections, whatever the data).
    """
    true_mps = np.asarray(true_mps, np.float64)
    predicted = np.asarray(predicted_mps, np.float64)
    error = predicted - true_mps
    return {
        "bias_mps": float(error.mean()),
        "lateral_mae_mps": float(np.abs(error - error.mean(axis=-1, keepdims=True)).mean()),
        "truth_lateral_mps": float(np.abs(true_mps - true_mps.mean(axis=-1, keepdims=True)).mean()),
        "predicted_lateral_mps": float(np.abs(predicted - predicted.mean(axis=-1, keepdims=True)).mean()),
    }


def bundle_predictions(bundle, dataset_path: Path, indices: np.ndarray) -> SimpleNamespace:
    """A loaded bundle's velocity for the samples ``indices`` of ``dataset_path``, as ``bundle.predict`` gives
    it (``plain``) and mirror-averaged (``mirrored``; None for a geometry that does not mirror onto itself),
    with the samples' ``true_mps`` and ``edges``; all in the dataset reader's order."""
    from core.errors import UserError
    from pipeline.feeding import SeismicDataset, average_with_mirror, mirrored_seismic

    try:
        shot_order = bundle.mirror_order()
    except UserError:
        shot_order = None
    dataset = SeismicDataset(dataset_path, indices=indices, batch_size=16, stats=bundle.stats)
    order = dataset.epoch_order()
    true, edges, plain, mirrored = [], [], [], []
    for start in range(0, len(order), 32):
        raw, velocity_mps, edge = dataset.read(order[start : start + 32])
        true.append(velocity_mps)
        edges.append(edge)
        plain.append(bundle.predict(raw)["velocity_mps"])
        if shot_order is not None:  # ModelBundle.predict(mirror_average=True), without its plain pass again
            flipped = bundle.predict(mirrored_seismic(raw, shot_order))["velocity_mps"]
            mirrored.append(average_with_mirror(plain[-1], flipped))
    return SimpleNamespace(
        true_mps=np.concatenate(true),
        edges=np.concatenate(edges),
        plain=np.concatenate(plain),
        mirrored=None if shot_order is None else np.concatenate(mirrored),
    )


def score_model(
    bundle, dataset_path: Path, families: Sequence[str], baseline_mps: np.ndarray
) -> dict[str, float]:
    """Scores a loaded bundle on the validation and test samples of ``families`` (``bundle_predictions``):
    as predicted, and mirror-averaged (keys ``mirror_*``, absent for a geometry that does not mirror)."""
    indices = family_indices(dataset_path, families, ("val", "test"))
    predictions = bundle_predictions(bundle, dataset_path, indices)
    scores = velocity_scores(predictions.true_mps, predictions.plain, baseline_mps, predictions.edges)
    return {**scores, **mirror_scores(predictions, baseline_mps), "samples": int(len(indices))}


def mirror_scores(predictions: SimpleNamespace, baseline_mps: np.ndarray) -> dict[str, Any]:
    """``MIRROR_SCORES`` of ``bundle_predictions``' mirror-averaged velocity, prefixed ``mirror_`` (empty
    when there is none)."""
    if predictions.mirrored is None:
        return {}
    scores = velocity_scores(predictions.true_mps, predictions.mirrored, baseline_mps, predictions.edges)
    return {f"mirror_{key}": scores[key] for key in MIRROR_SCORES}


#: The scores kept of the mirror-averaged prediction (``score_model``).
MIRROR_SCORES = ("mae_mps", "ssim", "skill", "skill_by_depth_third")


# ----------------------------------------------------------------------------------------------------------
# Training runs
# ----------------------------------------------------------------------------------------------------------


def general_config(overrides: Sequence[str] = ()):
    from core.config import load_config
    from pipeline.train import TrainConfig

    return load_config(TrainConfig, files=[GENERAL_CONFIG], overrides=list(overrides))


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long each model trains: whole-run wall clock (``seconds``) or a fixed number of ``epochs``.

    A wall-clock budget is what a user's run gets; an epoch budget gives the same model on a loaded machine
    as on a quiet one (a shared machine's load then changes the time a row takes, not its scores).
    """

    seconds: float | None = None
    epochs: int | None = None

    @property
    def label(self) -> str:
        return f"{self.epochs} epochs" if self.epochs else f"{self.seconds:.0f} s"

    def overrides(self) -> list[str]:
        if self.epochs:
            return [f"epochs={self.epochs}", "max_total_time_s=null"]
        return [f"max_total_time_s={self.seconds}"]


def train_row(
    dataset_path: Path,
    work_dir: Path,
    families: Sequence[str],
    budget: Budget,
    seed: int,
    init_from: str | None = None,
    extra: Sequence[str] = (),
):
    """Trains the general recipe on ``families`` of the dataset within ``budget``."""
    from pipeline.train import train

    config = general_config(
        [
            f"data.path={dataset_path}",
            f"data.families=[{', '.join(families)}]",
            *budget.overrides(),
            f"runtime.seed={seed}",
            f"runtime.checkpoint_dir={work_dir / 'checkpoints'}",
            f"runtime.output_dir={work_dir / 'outputs'}",
            f"tracking.tracking_uri=sqlite:///{work_dir / 'mlflow.db'}",
            "tracking.experiment=generalisation-benchmark",
            "tracking.register=false",
            "tracking.system_metrics=false",
            *extra,
        ]
    )
    if init_from:
        config = dataclasses.replace(config, init_from=init_from)
    return train(config, echo=lambda text: print(f"    {text}", flush=True))


# ----------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------


def _load_results(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append(path: Path, row: Mapping[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(row, sort_keys=True) + "\n")


#: The rows trained on K's own samples: their key holds how many.
TUNING_ROWS = ("fine-tuned on K", "scratch on K")
#: What ``--rows`` takes: "fine-tuning" trains the pair of TUNING_ROWS.
ROW_CHOICES = ("flatvel-a model", "general without K", "general (K seen)", "fine-tuning")


def _key(row: Mapping[str, Any]) -> tuple:
    # Rows written before epoch budgets existed carry only budget_s; rows before --set, no settings.
    budget = row.get("budget") or Budget(seconds=row["budget_s"]).label
    samples = row.get("train_samples") if row["row"] in TUNING_ROWS else None
    return (row["row"], row["held_out"], row["seed"], budget, samples, tuple(row.get("settings") or ()))


def _load_range(results: Sequence[Mapping[str, Any]]) -> str:
    """The 1-minute load averages recorded as the rows finished, as a range (what the timings ran under)."""
    loads = [float(str(row["load"]).split("/")[0]) for row in results if row.get("load")]
    if not loads:
        return "load not recorded"
    return f"1-minute load {min(loads):.1f}–{max(loads):.1f} on 2 cores as the rows finished"


def report(results: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> str:
    """The markdown section: one table per held-out group, then the fine-tuning verdicts."""
    change = settings.get("settings") or ()
    title = "## Out-of-distribution skill (leave-family-out)"
    if change:
        title += ", the recipe changed by " + ", ".join(f"`{item}`" for item in change)
    if settings.get("title"):
        title += f", {settings['title']}"
    lines = [
        title,
        "",
        f"`{settings['command']}` — {settings['machine']}; {_load_range(results)}.",
        "",
        "Each held-out group K is left out of training and scored on its validation and test samples. The 1-D "
        "baseline is the per-depth mean velocity of each row's own training samples; skill = 1 − MAE / baseline "
        'MAE. "near interfaces" is the MAE within two cells of a true edge, "error TV" the mean jump of the '
        'error map between neighbouring cells (lower is smoother). "bias" is the mean of predicted − true; '
        '"depth trend corrected" the MAE left when each sample\'s error is made zero on average along every '
        "depth row: the error of the lateral structure alone, to compare with the truth's own lateral "
        "variation (the MAE of a model with exact depth trends and no lateral structure, given under each "
        'heading; `error_split`); "predicted lateral" the same measure of the predicted sections themselves '
        "(how much lateral structure the model draws at all; near 0 for 1-D sections); the skill is also given "
        'over the top, middle and bottom thirds of the depth rows. "mirror-averaged" scores the same model '
        "with each sample also predicted mirrored left to right and the two sections averaged (the test-time "
        "augmentation of `pipeline.infer --set mirror_average=true`). Rows: a model trained on FlatVel-A alone, the "
        "general recipe without K, that model fine-tuned on K's training samples, a model trained from scratch on "
        "the same samples within the same budget, and (when run) the general recipe with K seen, an "
        "in-distribution reference. Training budgets (whole-run wall clock on this machine, or epochs): "
        f"{settings['budget']} per model, {settings['finetune_budget']} for fine-tuning and its "
        "from-scratch twin (each on the same samples of K).",
        "",
    ]
    order = ["flatvel-a model", "general without K", "general (K seen)", "fine-tuned on K", "scratch on K"]
    for group in settings["held_out"]:
        rows = [r for r in results if r["held_out"] == group]
        if not rows:
            continue
        table = []
        for name in order:
            for row in (r for r in rows if r["row"] == name):
                label = f"{name} ({row.get('train_samples', '?')} samples)" if name in TUNING_ROWS else name
                table.append(
                    [
                        label,
                        row["seed"],
                        f"{row['mae_mps']:.0f}",
                        f"{row['ssim']:.3f}",
                        f"{row['baseline_mae_mps']:.0f}",
                        f"{row['skill']:+.2f}",
                        f"{row['interface_mae_mps']:.0f}",
                        f"{row['error_tv_mps']:.1f}",
                        _scored(row, "bias_mps", "{:+.0f}"),
                        _scored(row, "lateral_mae_mps", "{:.0f}"),
                        _scored(row, "predicted_lateral_mps", "{:.0f}"),
                        " / ".join(f"{v:+.2f}" for v in row["skill_by_depth_third"])
                        if "skill_by_depth_third" in row
                        else "–",
                        _mirror_scores(row),
                        row.get("epochs", ""),
                        f"{row.get('train_s', float('nan')):.0f}",
                    ]
                )
        families = ", ".join(HELD_OUT_GROUPS.get(group, (group,)))
        lateral = next((r["truth_lateral_mps"] for r in rows if "truth_lateral_mps" in r), None)
        variation = "" if lateral is None else f"; the truth's lateral variation {lateral:.0f} m/s"
        lines += [f"### K = {group} ({families}; {rows[0]['samples']} samples scored{variation})", ""]
        lines.append(
            markdown_table(
                ["model", "seed", "MAE m/s", "SSIM", "1-D MAE m/s", "skill", "near interfaces m/s",
                 "error TV m/s", "bias m/s", "depth trend corrected m/s", "predicted lateral m/s",
                 "skill top / middle / bottom third", "mirror-averaged: MAE / SSIM / skill", "epochs",
                 "train s"],
                table,
            )
        )  # fmt: skip
        tuned = {_key(r)[2:5]: r for r in rows if r["row"] == "fine-tuned on K"}
        scratch = {_key(r)[2:5]: r for r in rows if r["row"] == "scratch on K"}
        for pair in sorted(set(tuned) & set(scratch), key=_pair_order):
            seed, budget, samples = pair
            gain = 1 - tuned[pair]["mae_mps"] / scratch[pair]["mae_mps"]
            verdict = "meets" if gain >= 0.2 else "does not meet"
            lines += [
                "",
                f"Fine-tuning vs from scratch on K's {samples if samples is not None else '?'} training samples, "
                f"{budget} each (seed {seed}): MAE {tuned[pair]['mae_mps']:.0f} vs {scratch[pair]['mae_mps']:.0f} "
                f"m/s, {100 * gain:.0f} % lower: **{verdict}** the ≥ 20 % goal (an accuracy verdict at an equal "
                f"budget; 1/5/15-minute load {tuned[pair].get('load', '?')} fine-tuning, "
                f"{scratch[pair].get('load', '?')} from scratch).",
            ]
        lines.append("")
    return "\n".join(lines)


def _scored(row: Mapping[str, Any], key: str, form: str) -> str:
    """A score of ``row``, or "–" for rows scored before it existed (``--rescore`` adds it)."""
    return form.format(row[key]) if key in row else "–"


def _mirror_scores(row: Mapping[str, Any]) -> str:
    """MAE / SSIM / skill of the mirror-averaged prediction, or "–" (not scored, or an asymmetric geometry)."""
    if "mirror_mae_mps" not in row:
        return "–"
    return f"{row['mirror_mae_mps']:.0f} / {row['mirror_ssim']:.3f} / {row['mirror_skill']:+.2f}"


def _pair_order(pair: tuple) -> tuple:
    """Fine-tuning verdicts by seed, samples, then budget (epochs or seconds, smallest first)."""
    seed, budget, samples = pair
    amount = float(budget.split()[0]) if budget.split()[0].replace(".", "", 1).isdigit() else 0.0
    return (seed, samples or 0, budget.split()[-1], amount)


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.generalisation", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, help="a general-recipe dataset (default: built in --work-dir)")
    parser.add_argument("--work-dir", type=Path, default=Path("data/benchmarks/generalisation"))
    parser.add_argument(
        "--count",
        type=int,
        help="samples per family of the dataset built in --work-dir without --data (default: the general "
        "recipe's); give each count its own --work-dir",
    )
    parser.add_argument(
        "--held-out", nargs="+", default=list(HELD_OUT_GROUPS), help=f"groups: {', '.join(HELD_OUT_GROUPS)}"
    )
    parser.add_argument("--budget-s", type=float, default=900.0, help="whole-run budget of each model, s")
    parser.add_argument(
        "--finetune-budget-s", type=float, nargs="+", default=[300.0], help="fine-tuning budget(s), s"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="train each model this many epochs instead of --budget-s (load-independent)",
    )
    parser.add_argument(
        "--finetune-epochs",
        type=int,
        nargs="+",
        help="fine-tune (and train its from-scratch twin) this many epochs (several: one pair per budget)",
    )
    parser.add_argument(
        "--finetune-samples",
        type=int,
        help="fine-tune and train from scratch on the first N of K's training samples (default: all of them)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--rows",
        nargs="+",
        choices=ROW_CHOICES,
        default=list(ROW_CHOICES),
        help="which rows to train (fine-tuning = the fine-tuned and from-scratch pair)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a change to the general recipe for every model of this call (repeatable), e.g. "
        "data.augmentation.velocity_scale_probability=0.5: rows are recorded and reported per setting",
    )
    parser.add_argument(
        "--section",
        default=SECTION,
        help="the docs/benchmarks.md section the table replaces (give a --set call its own)",
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score the saved models of this command's recorded rows again (scores added since they were "
        "measured), train nothing, then write the table",
    )
    parser.add_argument(
        "--title",
        help="words added to the section's heading (what sets this call's rows apart, e.g. a rerun)",
    )
    parser.add_argument(
        "--score-data",
        type=Path,
        help="score the held-out groups on this dataset's validation and test samples instead of --data's "
        "(e.g. the mix made without a synthesis change such as data.default.trend, so that rows stay "
        "comparable, or your own models ingested with the same geometry); the 1-D baseline stays that of the "
        "training samples",
    )
    parser.add_argument("--report", action="store_true", help="only write the table from results.jsonl")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/ alone")
    return parser


def _dataset(args, work_dir: Path) -> Path:
    if args.data:
        return args.data
    from pipeline.training.default_dataset import ensure_default_dataset

    overrides = [f"data.default.directory={work_dir}"]
    if args.count is not None:
        overrides.append(f"data.default.count={args.count}")
    config = general_config(overrides)
    return ensure_default_dataset(config.data.default, echo=lambda text: print(text, flush=True))


def score_bundle(
    bundle_dir: Path,
    dataset_path: Path,
    group: str,
    families_trained: Sequence[str],
    score_path: Path | None = None,
) -> dict[str, float]:
    """``score_model`` of a saved bundle on the held-out ``group``, against the 1-D baseline of
    ``families_trained`` (in ``dataset_path``, the training data); the group's samples come from
    ``score_path`` when given (``--score-data``), else from ``dataset_path``."""
    from pipeline.bundle import load_bundle

    baseline = depth_baseline_mps(dataset_path, families_trained)
    scored_on = dataset_path if score_path is None else score_path
    # Scored from the saved bundle (what inference would load), then everything of the run is let go: one
    # process trains a dozen models, and keeping each one's graphs and caches ran it out of memory.
    bundle = load_bundle(bundle_dir)
    scores = score_model(bundle, scored_on, HELD_OUT_GROUPS[group], baseline)
    del bundle
    _release_memory()
    return scores


def rescore(results_path: Path, wanted, score_path: Path | None = None) -> int:
    """Scores the saved bundles of the recorded rows that ``wanted(row)`` selects again, so that a row
    gains the scores added since it was measured (on ``score_path``'s samples when given, which the row then
    records, else on those it was scored on); rewrites ``results_path`` (atomically). Rows whose bundle
    is gone keep their scores. Returns the number of rows scored again."""
    from core.atomic import write_text_atomic

    rows, count = _load_results(results_path), 0
    for row in rows:
        if not wanted(row):
            continue
        if not Path(row.get("bundle", "/nonexistent")).is_dir():
            print(
                f"  {row['held_out']:>13} | {row['row']:<18}: bundle {row.get('bundle')} is gone, kept as is"
            )
            continue
        if score_path is not None:
            row["score_dataset"] = str(score_path)
        scored_on = row.get("score_dataset")
        row.update(
            score_bundle(
                Path(row["bundle"]),
                Path(row["dataset"]),
                row["held_out"],
                row["trained_on"],
                None if scored_on is None else Path(scored_on),
            )
        )
        count += 1
        print(f"  {row['held_out']:>13} | {row['row']:<18} seed {row['seed']}: scored again", flush=True)
    write_text_atomic(results_path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
    return count


def trained_summary(*args, **kwargs) -> SimpleNamespace:
    """``train_row``, reduced to what a row records (bundle folder, epochs, wall time): picklable."""
    result = train_row(*args, **kwargs)
    return SimpleNamespace(
        bundle_dir=Path(result.bundle_dir), history=list(result.history), wall_time_s=result.wall_time_s
    )


def _load() -> str:
    return "{:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


class Runs:
    """The benchmark's training runs on one dataset: each row trained, scored and appended to
    ``work_dir/results.jsonl`` as soon as it ends; rows already there are skipped (an interrupted call resumes).
    """

    def __init__(
        self,
        dataset_path: Path,
        work_dir: Path,
        model_budget: Budget,
        tune_budgets: Sequence[Budget],
        rows,
        tune_samples: int | None = None,
        settings: Sequence[str] = (),
        score_path: Path | None = None,
    ):
        from data_prep import schema
        from pipeline.feeding import read_sample_families

        self.dataset_path, self.work_dir = dataset_path, work_dir
        self.model_budget, self.tune_budgets, self.rows = model_budget, tuple(tune_budgets), tuple(rows)
        self.tune_samples, self.settings = tune_samples, tuple(settings)
        self.score_path = score_path
        self.results_path = work_dir / "results.jsonl"
        with schema.open_dataset(dataset_path) as h5:
            self.all_families = sorted(set(read_sample_families(h5).tolist()))
        self.done = {_key(row) for row in _load_results(self.results_path)}

    def wanted(self, name: str, group: str, seed: int, budget: Budget, samples: int | None = None) -> bool:
        return (name, group, seed, budget.label, samples, self.settings) not in self.done

    def train(self, families, budget: Budget, seed: int, extra: Sequence[str] = (), **options):
        extra = [*self.settings, *extra]  # a row's own settings (fine-tuning's learning rate) come last
        return run_isolated(
            trained_summary, self.dataset_path, self.work_dir, families, budget, seed, extra=extra, **options
        )

    def record(self, name, group, seed, budget: Budget, result, families_trained, extra=None) -> dict:
        """Scores ``result``'s model on the held-out group and appends the row."""
        scores = score_bundle(result.bundle_dir, self.dataset_path, group, families_trained, self.score_path)
        row = {
            "row": name, "held_out": group, "seed": seed, "budget": budget.label, **scores,
            "epochs": len(result.history), "train_s": result.wall_time_s, "trained_on": list(families_trained),
            "load": _load(), "dataset": str(self.dataset_path), "bundle": str(result.bundle_dir),
            "settings": list(self.settings), **(extra or {}),
            **({} if self.score_path is None else {"score_dataset": str(self.score_path)}),
        }  # fmt: skip
        _append(self.results_path, row)
        self.done.add(_key(row))
        print(
            f"  {group:>13} | {name:<18} seed {seed}: MAE {scores['mae_mps']:.0f} m/s "
            f"(1-D {scores['baseline_mae_mps']:.0f}), SSIM {scores['ssim']:.3f}, skill {scores['skill']:+.2f}",
            flush=True,
        )
        return row

    def reference_rows(self, group: str, seed: int, shared: dict[str, Any]) -> None:
        """The FlatVel-A-only model and the general model with K seen, each trained once per seed."""
        budget = self.model_budget
        for name, key, families in (
            ("flatvel-a model", "flatvel", ["flatvel-a"]),
            ("general (K seen)", "general", self.all_families),
        ):
            if name in self.rows and self.wanted(name, group, seed, budget):
                if key not in shared:
                    print(f"training on {', '.join(families)} ({budget.label}) ...", flush=True)
                    shared[key] = self.train(families, budget, seed)
                self.record(name, group, seed, budget, shared[key], families)

    def held_out_rows(self, group: str, seed: int) -> None:
        """The general recipe without K; that model fine-tuned on K against a model trained from scratch on
        the same samples of K within the same budget, for each fine-tuning budget."""
        held = HELD_OUT_GROUPS[group]
        rest = [family for family in self.all_families if family not in held]
        budget = self.model_budget
        available = len(family_indices(self.dataset_path, held, ("train",)))
        samples = available if self.tune_samples is None else min(self.tune_samples, available)
        wanted_without = "general without K" in self.rows and self.wanted(
            "general without K", group, seed, budget
        )
        tunes = [
            tune
            for tune in self.tune_budgets
            if "fine-tuning" in self.rows
            and any(self.wanted(name, group, seed, tune, samples) for name in TUNING_ROWS)
        ]
        # A recorded model without K is reused as the parent when its bundle is still on disk.
        parent = next(
            (
                row["bundle"]
                for row in _load_results(self.results_path)
                if _key(row) == ("general without K", group, seed, budget.label, None, self.settings)
                and Path(row.get("bundle", "/nonexistent")).is_dir()
            ),
            None,
        )
        if wanted_without or (tunes and parent is None):
            print(f"training without {group} ({budget.label}) ...", flush=True)
            without = self.train(rest, budget, seed)
            parent = str(without.bundle_dir)
            if self.wanted("general without K", group, seed, budget):
                self.record("general without K", group, seed, budget, without, rest)
        extra = {"train_samples": samples, "available_samples": available}
        # The first ``samples`` of K's training split (the split's order: by family, then sample).
        limit = [] if samples == available else [f"data.max_train_samples={samples}"]
        for tune in tunes:
            if self.wanted("fine-tuned on K", group, seed, tune, samples):
                print(f"fine-tuning on {samples} of {group}'s samples ({tune.label}) ...", flush=True)
                # A short warm-up and a lower peak rate, so that the parent is adapted, not erased.
                settings = ["optimizer.learning_rate=2.0e-4", "optimizer.warmup_epochs=0.5", *limit]
                tuned = self.train(held, tune, seed, init_from=parent, extra=settings)
                self.record("fine-tuned on K", group, seed, tune, tuned, held, extra)
            if self.wanted("scratch on K", group, seed, tune, samples):
                print(
                    f"training from scratch on {samples} of {group}'s samples ({tune.label}) ...", flush=True
                )
                scratch = self.train(held, tune, seed, extra=limit)
                self.record("scratch on K", group, seed, tune, scratch, held, extra)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    work_dir = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    results_path = work_dir / "results.jsonl"
    unknown = [group for group in args.held_out if group not in HELD_OUT_GROUPS]
    if unknown:
        raise SystemExit(f"Unknown held-out group(s) {unknown}: choose from {', '.join(HELD_OUT_GROUPS)}.")
    model_budget = Budget(seconds=None if args.epochs else args.budget_s, epochs=args.epochs)
    tune_budgets = (
        [Budget(seconds=None, epochs=epochs) for epochs in args.finetune_epochs]
        if args.finetune_epochs
        else [Budget(seconds=seconds) for seconds in args.finetune_budget_s]
    )
    settings = {
        # The command that measures these rows (a --report call rewrites the table of that command).
        "command": "python -m benchmarks.generalisation "
        + shlex.join(
            a
            for a in (argv if argv is not None else sys.argv[1:])
            if a not in ("--report", "--rescore", "--no-write")
        ),
        "machine": machine_description(),
        "load": _load(),
        "budget": model_budget.label,
        "finetune_budget": ", ".join(tune.label for tune in tune_budgets),
        "held_out": args.held_out,
        "settings": args.settings,
        "title": args.title,
    }
    if args.rescore:
        count = rescore(
            results_path, lambda row: _reported(row, args, model_budget, tune_budgets), args.score_data
        )
        print(f"{count} recorded row(s) scored again", flush=True)
    elif not args.report:
        runs = Runs(
            _dataset(args, work_dir),
            work_dir,
            model_budget,
            tune_budgets,
            args.rows,
            args.finetune_samples,
            args.settings,
            args.score_data,
        )
        for seed in args.seeds:
            shared: dict[str, Any] = {}  # the FlatVel-A and the general model serve every group of a seed
            for group in args.held_out:
                runs.reference_rows(group, seed, shared)
                runs.held_out_rows(group, seed)
    results = [row for row in _load_results(results_path) if _reported(row, args, model_budget, tune_budgets)]
    markdown = report(results, settings)
    print(markdown)
    if not args.no_write:
        print(f"wrote {update_section(args.section, markdown)}")
    return 0


def _reported(row: Mapping[str, Any], args, model_budget: Budget, tune_budgets: Sequence[Budget]) -> bool:
    """Whether ``row`` is one of this command's rows: its seed, budgets and (tuning rows) sample count."""
    name, _, seed, budget, samples, settings = _key(row)
    if seed not in args.seeds or settings != tuple(args.settings):
        return False
    if name not in TUNING_ROWS:
        return budget == model_budget.label
    available = row.get("available_samples", samples)  # rows before --finetune-samples used all of K's
    wanted = available if args.finetune_samples is None else min(args.finetune_samples, available)
    return budget in {tune.label for tune in tune_budgets} and samples == wanted


def _release_memory() -> None:
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


if __name__ == "__main__":
    raise SystemExit(main())
