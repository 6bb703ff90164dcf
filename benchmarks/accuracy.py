"""Accuracy of every model on OpenFWI's FlatVel-A and CurveVel-A recipes at the full OpenFWI geometry, trained
under the same wall-clock budget, with several seeds.

Usage (from the repository root)::

    python -m benchmarks.accuracy                                   # CPU budget; writes docs/benchmarks.md
    python -m benchmarks.accuracy --train-samples 600 --budget-s 120 --seeds 0 --no-write   # a quick look
    python -m benchmarks.accuracy --train-samples 800 --test-samples 100 --budget-s 180 --report  # table only
    KERAS_BACKEND=jax python -m benchmarks.accuracy --gpu           # 24 000 / 6 000 samples, as OpenFWI

For each family a dataset is synthesized (``data_prep.synthesize``, OpenFWI's recipe and geometry: 5 sources,
70 receivers, 1000 samples of 1 ms, 70 × 70 cells of 10 m) and ingested (``data_prep.ingest``) with splits
of exactly ``--train-samples`` / 5 % validation / ``--test-samples``; datasets are cached in ``--data-dir``.
``--families general`` is the general recipe instead (``configs/train/general.yaml``: its mixed dataset of
every family, its batch size, optimiser, loss and augmentation; ``--train-samples``/``--test-samples`` do not
apply), for the edge-head question on varied geology::

    python -m benchmarks.accuracy --families general --models unet unet-no-edges --epochs 5 --seeds 0 1
Each seed then runs ``pipeline.compare`` (the dual U-Net, the same U-Net with one decoder for both tasks
(``unet-shared``: the lighter edge head), the U-Net without its edge head, InversionNet, the LSTM and the
Transformer, each for ``--budget-s`` seconds of training with the cosine schedule fitted to the
budget, best validation epoch kept) as one MLflow parent run in ``--data-dir/mlflow.db``. The dual U-Net is
``--unet``: the default run's half-width ``unet-small`` on CPU, the full-width ``unet`` with ``--gpu``. Calls
with the same settings add up: ``--models unet unet-no-edges --seeds 1`` after a full seed-0 call adds a second
seed for the edge-head question, and the table lists the seeds behind each row. The table gives the
test metrics in OpenFWI's convention (MAE/RMSE on [-1, 1], SSIM on [0, 1]), MAE in m/s and edge F1, as the
mean over seeds ± half the spread (max - min) when there are several, with what the edge task is meant to
improve next to them: the MAE within two cells of a true interface and the total variation of the error map.
Whether the edge head helps is read from the U-Nets' rows on all four: a difference within their seed spreads
is a tie, not a verdict. ``--epochs N`` trains every
model N epochs with no time budget instead (what a model learns per epoch rather than per second), in its own
section of ``docs/benchmarks.md``. InversionNet's published numbers
(OpenFWI, 24 000 training samples, 120 epochs on GPUs) are listed for reference: a CPU budget of minutes
is not expected to reach them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.report import machine_description, markdown_table, run_isolated, update_section

#: ``unet-shared``: the dual U-Net with one decoder for both tasks (``decoder_mode: shared``), the lighter edge head.
MODELS = ("unet", "unet-shared", "unet-no-edges", "inversionnet", "lstm", "transformer")
FAMILIES = ("flatvel-a", "curvevel-a")
#: Not a family: the general recipe's mix of every family (``configs/train/general.yaml``: its dataset, batch
#: size, optimiser, loss and augmentation), for the edge-head question on varied geology.
GENERAL = "general"
#: InversionNet's published test metrics (MAE, RMSE, SSIM), OpenFWI benchmark.
PUBLISHED = {"flatvel-a": (0.0131, 0.0211, 0.9895), "curvevel-a": (0.0685, 0.1273, 0.8074)}
METRICS = (
    "velocity_mae",
    "velocity_rmse",
    "velocity_ssim",
    "velocity_mae_mps",
    "edges_f1",
    "velocity_interface_mae_mps",
    "velocity_error_tv_mps",
)


def build_dataset(family: str, train: int, test: int, seed: int, directory: Path) -> Path:
    """Synthesizes and ingests ``train`` + 5 % + ``test`` samples of ``family`` (cached); ``GENERAL``: the
    general recipe's own mixed dataset in ``directory`` (its sizes, not ``train`` / ``test``)."""
    from data_prep.ingest import IngestConfig, SplitConfig, ingest
    from data_prep.synthesize import SynthesizeConfig, synthesize

    if family == GENERAL:
        from benchmarks.generalisation import general_config
        from pipeline.training.default_dataset import ensure_default_dataset

        config = general_config([f"data.default.directory={directory}", f"data.default.seed={seed}"])
        return ensure_default_dataset(config.data.default, echo=lambda text: print(text, flush=True))

    val = max(1, round(0.05 * train))
    total = train + val + test
    path = directory / f"{family}-{train}-{test}-seed{seed}.h5"
    if path.is_file():
        return path
    segy = directory / f"{family}-{total}-seed{seed}-segy"
    started = time.monotonic()
    print(f"synthesizing {total} {family} models ...", flush=True)
    synthesize(SynthesizeConfig(family=family, count=total, seed=seed), segy, progress=False)
    fractions = (train / total, val / total, 1.0 - train / total - val / total)
    ingest([segy], path, IngestConfig(splits=SplitConfig(fractions=fractions, seed=seed), progress=False))
    print(f"{path}: {time.monotonic() - started:.0f} s", flush=True)
    return path


def run(args: argparse.Namespace) -> list[dict]:
    from core.config import from_dict, load_config
    from pipeline.compare import CompareConfig, CompareModel
    from pipeline.train import TrainConfig

    directory = Path(args.data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{(directory / 'mlflow.db').resolve()}"
    # Every finished comparison is appended here, so an interrupted benchmark resumes where it stopped.
    results_path = directory / "results.jsonl"
    done = []
    if results_path.is_file():
        done = [json.loads(line) for line in results_path.read_text().splitlines() if line.strip()]
    rows = []
    for family in args.families:
        path = build_dataset(family, args.train_samples, args.test_samples, 0, directory)
        for seed in args.seeds:
            settings = {
                "batch_size": args.batch_size,
                "loss": {"velocity_ssim_weight": args.ssim_weight},
                "epochs": args.epochs or args.max_epochs,
                "max_train_time_s": budget_s(args),
                "data": {"path": str(path)},
                "tracking": {
                    "tracking_uri": store,
                    "experiment": "accuracy",
                    "register": False,
                    "image_every_epochs": 10,
                },
                "runtime": {
                    "seed": seed,
                    "checkpoint_dir": str(directory / "checkpoints"),
                    "output_dir": str(directory / "outputs"),
                    "progress_interval_s": 300.0,
                },
            }
            if family == GENERAL:  # the recipe's batch size, loss and time budget stay its own
                from benchmarks.generalisation import GENERAL_CONFIG

                del settings["batch_size"], settings["loss"]
                train = load_config(
                    TrainConfig, [GENERAL_CONFIG], values=settings, overrides=["max_total_time_s=null"]
                )
            else:
                train = from_dict(TrainConfig, settings)
            key = {
                "family": family,
                "seed": seed,
                "budget_s": budget_s(args),
                "max_epochs": args.epochs,
                "dataset": path.name,
                "unet": args.unet,
                "batch_size": train.batch_size,
                "velocity_ssim_weight": train.loss.velocity_ssim_weight,
            }
            cached = [r for r in done if all(r.get(k) == v for k, v in key.items())]
            if {r["model"] for r in cached} >= set(args.models):
                print(f"=== {family} seed {seed}: cached in {results_path}", flush=True)
                rows += [r for r in cached if r["model"] in args.models]
                continue
            entries = []
            for name in args.models:
                if name == "unet":
                    entries.append(CompareModel(name, args.unet))
                elif name == "unet-no-edges":
                    entries.append(CompareModel(name, args.unet, {"edge_head": False}))
                elif name == "unet-shared":
                    entries.append(CompareModel(name, args.unet, {"decoder_mode": "shared"}))
                else:
                    entries.append(CompareModel(name, name))
            config = CompareConfig(
                train=train, models=tuple(entries), run_name=f"accuracy {family} seed {seed}"
            )
            # One spawned process per comparison: see benchmarks.report.run_isolated.
            table = run_isolated(compare_table, config)
            # The comparison's rows name the model's family ("family": unet-small, inversionnet...): kept as
            # "model_family", so that "family" stays the dataset's.
            finished = [
                {**row, "model_family": row.get("family"), **key, "load": os.getloadavg()[0]} for row in table
            ]
            with open(results_path, "a") as handle:
                handle.writelines(json.dumps(row, default=float) + "\n" for row in finished)
            rows += finished
    return finished_rows(args)


def _echo_headings(text: str) -> None:
    if text.startswith("==="):
        print(text, flush=True)


def compare_table(config) -> list[dict]:
    """``pipeline.compare(config)``'s table (what a benchmark row keeps): picklable, for ``run_isolated``."""
    from pipeline.compare import compare

    return list(compare(config, echo=_echo_headings).table)


def budget_s(args: argparse.Namespace) -> float | None:
    """The wall-clock seconds each model trains for; None when the models train equal epochs (``--epochs``)."""
    return None if args.epochs else args.budget_s


def finished_rows(args: argparse.Namespace) -> list[dict]:
    """Every finished comparison in ``results.jsonl`` with these settings, whatever seeds and models each call
    ran (for example all models on seed 0, then the two U-Nets on seed 1 for the edge-head question)."""
    results_path = Path(args.data_dir) / "results.jsonl"
    if not results_path.is_file():
        return []
    done = [json.loads(line) for line in results_path.read_text().splitlines() if line.strip()]
    settings = {"budget_s": budget_s(args), "max_epochs": args.epochs, "unet": args.unet}
    expected = [_family_key(family, args) for family in args.families]
    return [
        r
        for r in done
        if all(r.get(k) == v for k, v in settings.items())
        and any(all(r.get(k) == v for k, v in key.items()) for key in expected)
    ]


def _family_key(family: str, args: argparse.Namespace) -> dict:
    """What a finished row of ``family`` was trained with besides the budget: its dataset, batch size and
    SSIM weight (the general recipe's own for ``GENERAL``)."""
    if family == GENERAL:
        from benchmarks.generalisation import general_config
        from pipeline.training.default_dataset import default_dataset_path

        config = general_config([f"data.default.directory={args.data_dir}"])
        return {
            "dataset": default_dataset_path(config.data.default).name,
            "batch_size": config.batch_size,
            "velocity_ssim_weight": config.loss.velocity_ssim_weight,
        }
    return {
        "dataset": f"{family}-{args.train_samples}-{args.test_samples}-seed0.h5",
        "batch_size": args.batch_size,
        "velocity_ssim_weight": args.ssim_weight,
    }


def mean_and_half_spread(values: list[float]) -> tuple[float, float]:
    """The mean over seeds and half their spread (max - min): the table's ``mean ± half-spread``."""
    return float(np.mean(values)), float(np.max(values) - np.min(values)) / 2


def summarize(rows: list[dict], args: argparse.Namespace) -> str:
    table = []
    models = [m for m in MODELS if any(r["model"] == m for r in rows)]
    for family in args.families:
        for model in models:
            selected = [r for r in rows if r["family"] == family and r["model"] == model]
            if not selected:
                continue
            cells = [family, model]
            for key in METRICS:
                values = [r[key] for r in selected if key in r]
                if not values:
                    cells.append("")
                    continue
                mean, half_spread = mean_and_half_spread(values)
                digits = 1 if key.endswith("_mps") else 4
                cells.append(
                    f"{mean:.{digits}f}" + (f" ± {half_spread:.{digits}f}" if len(values) > 1 else "")
                )
            cells.append(", ".join(str(r["seed"]) for r in sorted(selected, key=lambda r: r["seed"])))
            cells.append(f"{np.mean([r['epochs'] for r in selected]):.0f}")
            cells.append(f"{np.mean([r['training_s'] for r in selected]):.0f}")
            table.append(cells)
        if family in PUBLISHED:
            mae, rmse, ssim = PUBLISHED[family]
            table.append(
                [
                    family,
                    "InversionNet, published (24k samples, GPU)",
                    f"{mae}",
                    f"{rmse}",
                    f"{ssim}",
                    f"{mae * 1500:.1f}",
                    "",
                    "",
                    "",
                    "",
                    "120",
                    "",
                ]
            )
    header = ["family", "model", "MAE", "RMSE", "SSIM", "MAE m/s", "edge F1", "near interfaces m/s",
              "error TV m/s", "seeds", "epochs", "training s"]  # fmt: skip
    verdicts = []
    for family in args.families:
        means, half_spreads = {}, {}
        for model in models:
            selected = [r for r in rows if r["family"] == family and r["model"] == model]
            if not selected:
                continue
            means[model], half_spreads[model] = {}, {}
            for key in VERDICT_KEYS + ("train_samples_per_s", "epochs"):
                values = [r[key] for r in selected if key in r]
                if not values:
                    continue
                means[model][key], half_spreads[model][key] = mean_and_half_spread(values)
        if "unet" not in means:
            continue
        best_mae = min(means, key=lambda m: means[m]["velocity_mae"])
        best_ssim = max(means, key=lambda m: means[m]["velocity_ssim"])
        line = f"- {family}: best MAE **{best_mae}**, best SSIM **{best_ssim}**"
        for dual in ("unet", "unet-shared"):
            if dual in means and "unet-no-edges" in means:
                line += "; " + edge_head_verdict(means, half_spreads, not args.epochs, dual)
        verdicts.append(line)
    loads = [r["load"] for r in rows if "load" in r]
    epochs = [int(r["epochs"]) for r in rows] or [0]
    load = f"{min(loads):.1f}–{max(loads):.1f}" if loads else "not recorded"
    families = ", ".join(args.families)
    if args.epochs:
        budget = f"{args.epochs} epochs, whatever their wall clock (early stopping may end one sooner)"
        flags = f"--epochs {args.epochs}"
        schedule = f"cosine schedule over the {args.epochs} epochs"
        load_effect = "machine: a loaded CPU lengthens the `training s` column, not the metrics"
        closing = (
            f"Every model sees the same {args.epochs} epochs whatever they cost (the `training s` column): the table "
            "compares what each model learns per epoch, not per second, and not converged accuracy."
        )
    else:
        budget = f"{args.budget_s:g} s of wall clock, compilation included"
        flags = f"--budget-s {args.budget_s:g}"
        schedule = "cosine schedule fitted to the budget"
        load_effect = "machine: a loaded CPU trains fewer epochs in the same budget"
        closing = (
            f"At this budget the models train {min(epochs)}–{max(epochs)} epochs (InversionNet's first epoch alone "
            "can exceed\nit): the table ranks what each model learns in the first minutes on this machine, not "
            "converged accuracy."
        )
    if args.families == [GENERAL]:
        from benchmarks.generalisation import general_config

        recipe = general_config().data.default
        return f"""## Accuracy: the general mix (`benchmarks/accuracy.py`)

`python -m benchmarks.accuracy --families general {flags} --unet {args.unet} --seeds ...` — the general
recipe (`configs/train/general.yaml`): its mixed dataset ({recipe.count} samples of each of its
{len(recipe.family_list)} families, OpenFWI geometry, each sample its own source, split per family), its batch
size, learning rate, loss and augmentation; every model trained for {budget} ({schedule}, the weights of the best
validation epoch kept). The dual U-Net and the U-Net without edges are `{args.unet}`. Each row is the mean over
the seeds in its `seeds` column (± half the spread when there are several). MAE/RMSE on OpenFWI's [-1, 1] scale,
SSIM on [0, 1], over the test samples of every family. Machine: {machine_description()}; 1-minute load average
after each comparison {load} (shared {load_effect}).

{markdown_table(header, table)}

{chr(10).join(verdicts)}

{closing}
"""
    return f"""## Accuracy: {families} (`benchmarks/accuracy.py`)

`python -m benchmarks.accuracy --families {" ".join(args.families)} --train-samples {args.train_samples} --test-samples
{args.test_samples} {flags} --batch-size {args.batch_size} --unet {args.unet} --ssim-weight
{args.ssim_weight:g} --seeds ...` — OpenFWI geometry (5 sources, 70 receivers,
1000 samples of 1 ms, 70 × 70 cells of 10 m), synthesized with `data_prep.synthesize`; {args.train_samples} training,
5 % validation and {args.test_samples} test samples per family; every model trained for {budget} ({schedule}, batch {args.batch_size}, AdamW, L1
{f"+ {args.ssim_weight:g} (1 − SSIM) " if args.ssim_weight else ""}on velocity for every model, the weights of the best
validation epoch kept). The dual U-Net and the U-Net without edges are `{args.unet}`. Each row is the mean over
the seeds in its `seeds` column (± half the spread when there are several). MAE/RMSE on OpenFWI's [-1, 1] scale,
SSIM on [0, 1]. Machine: {machine_description()}; 1-minute load average after each comparison {load} (shared
{load_effect}).

{markdown_table(header, table)}

{chr(10).join(verdicts)}

{closing}
"""


#: What the edge-head verdict compares, with its name and the sign of "better" (+1: higher is better).
VERDICT_METRICS = (
    ("velocity_mae", "MAE", -1),
    ("velocity_ssim", "SSIM", 1),
    ("velocity_interface_mae_mps", "MAE near interfaces", -1),
    ("velocity_error_tv_mps", "error TV", -1),
)
VERDICT_KEYS = tuple(key for key, _, _ in VERDICT_METRICS)


def edge_head_verdict(means: dict, half_spreads: dict, budgeted: bool, dual_name: str = "unet") -> str:
    """Whether an edge head helps: ``dual_name`` (``unet`` or ``unet-shared``) against the U-Net without edges
    on MAE and SSIM and on what the edge task claims to give (MAE near interfaces, a smoother error map), a
    difference within the two rows' seed spreads (the sum of their half-spreads) counting as a tie."""
    dual, single = means[dual_name], means["unet-no-edges"]
    outcomes = {}
    for key, name, sign in VERDICT_METRICS:
        if key not in dual or key not in single:
            continue
        margin = half_spreads[dual_name][key] + half_spreads["unet-no-edges"][key]
        gain = sign * (dual[key] - single[key])
        outcomes[name] = "helps" if gain > margin else "hurts" if -gain > margin else "ties"
    head = "edge head" if dual_name == "unet" else f"{dual_name}'s edge head"
    if set(outcomes.values()) == {"helps"}:
        verdict = f"{head} helps"
    elif set(outcomes.values()) == {"hurts"}:
        verdict = f"{head} does not help"
    elif set(outcomes.values()) == {"ties"}:
        verdict = f"{head} neither helps nor hurts beyond the seed spread"
    else:
        verdict = f"{head} " + ", ".join(
            f"{outcome} on {name}" + (" within the seed spread" if outcome == "ties" else "")
            for name, outcome in outcomes.items()
        )
    figures = [f"SSIM {dual['velocity_ssim']:.4f} vs {single['velocity_ssim']:.4f} without",
               f"MAE {dual['velocity_mae']:.4f} vs {single['velocity_mae']:.4f}"]  # fmt: skip
    for key, name, _ in VERDICT_METRICS[2:]:
        if key in dual and key in single:
            figures.append(f"{name} {dual[key]:.1f} vs {single[key]:.1f} m/s")
    cost = 1 - dual["train_samples_per_s"] / single["train_samples_per_s"]
    rates = f"{dual['train_samples_per_s']:.1f} vs {single['train_samples_per_s']:.1f} samples/s"
    speed = (
        f"it costs {100 * cost:.0f} % of the training speed: {rates}"
        if cost >= 0
        else f"no measurable cost in training speed ({rates}: faster than without edges only by the machine's noise)"
    )
    if budgeted:
        speed += f", {dual['epochs']:.1f} vs {single['epochs']:.1f} epochs in the budget"
    return f"{verdict} ({dual_name}: {'; '.join(figures)}; {speed})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--test-samples", type=int, default=200)
    parser.add_argument("--budget-s", type=float, default=600.0, help="training seconds per model")
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="equal epochs instead of equal wall clock: every model trains this many epochs, with no time budget "
        "(separates what a model learns per epoch from what it costs; written to its own section)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--unet",
        default=None,
        help="the dual U-Net of the table (default: the default run's unet-small on CPU, full-width unet with --gpu)",
    )
    parser.add_argument(
        "--ssim-weight",
        type=float,
        default=None,
        help="weight of 1 - SSIM in every model's velocity loss (default: the default run's)",
    )
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    parser.add_argument("--data-dir", default="data/benchmarks/accuracy")
    parser.add_argument(
        "--gpu", action="store_true", help="OpenFWI scale: 24 000 training / 6 000 test samples"
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--report", action="store_true", help="train nothing: write the table of what results.jsonl holds"
    )
    args = parser.parse_args(argv)
    if args.gpu:
        args.train_samples, args.test_samples = 24_000, 6_000
        args.batch_size = max(args.batch_size, 64)
        args.models = [m for m in args.models if m in ("unet", "inversionnet")]
    args.unet = args.unet or ("unet" if args.gpu else "unet-small")
    if args.ssim_weight is None:
        from pipeline.train import TrainConfig

        args.ssim_weight = TrainConfig().loss.velocity_ssim_weight
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args.load_before = os.getloadavg()[0]
    rows = finished_rows(args) if args.report else run(args)
    text = summarize(rows, args)
    print(text)
    if not args.no_write:
        # One section per family set, so that a run of one family leaves the other's table in place.
        section = "accuracy_gpu" if args.gpu else "accuracy"
        if sorted(args.families) != sorted(FAMILIES):
            section += "_" + "_".join(args.families)
        if args.epochs:
            section += "_epochs"
        update_section(section, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
