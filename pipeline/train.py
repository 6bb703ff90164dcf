"""``python -m pipeline.train``: train a model on an HDF5 dataset, evaluate it, log and register it in MLflow.

Pipeline position: after ``data_prep.ingest`` (or ``data_prep.openfwi``); its outputs are an MLflow run
(config, per-epoch metrics, images, system metrics, dataset lineage), a model bundle
(``outputs/<run_id>/bundle``, see ``pipeline.bundle``) and a registered pyfunc model version (alias
``champion`` for the best by validation SSIM), which ``pipeline.evaluate`` and ``pipeline.infer`` use.

With no arguments it runs the embedded default: if the default dataset is absent it synthesizes and ingests
it (cached under ``data/``), trains the dual U-Net, evaluates it on the test split, logs to ``./mlflow.db``,
registers the model and prints the metrics table and the line that opens the dashboard::

    python -m pipeline.train
    python -m pipeline.train --data data/cfb.h5 --model inversionnet --set epochs=50 --set max_total_time_s=null
    python -m pipeline.train --config configs/train/openfwi.yaml --tracking-uri http://127.0.0.1:5000
    python -m pipeline.train --resume              # continue the latest interrupted run (same MLflow run)
    python -m pipeline.train --compare             # every model on the same data: see pipeline.compare

This module is the command line; the training itself is the ``pipeline.training`` package, whose public
names are re-exported here (``from pipeline.train import TrainConfig, train``):

* ``pipeline.training.config``: ``TrainConfig`` and its sections, ``TrainResult``;
* ``pipeline.training.trainer``: ``train(config)``, one ``model.fit`` with the callbacks of
  ``pipeline.training.callbacks`` (data order and curriculum, metrics, early stopping, checkpoint, MLflow
  logging, validation images, progress) and ``pipeline.training.budget`` (the time budget);
* ``pipeline.training.checkpointing`` (``--resume``), ``.optimization`` (optimizer and schedule),
  ``.distribution`` (strategies, precision, seeds), ``.default_dataset``, ``.summary`` (``run_summary.json``);
* the model presets and the model setting's resolution are ``models.presets``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from core.cli import add_common_arguments, make_parser, run_main
from core.config import add_config_arguments, load_config
from pipeline.training.config import (
    CurriculumStage,
    DataConfig,
    DefaultDatasetConfig,
    EarlyStoppingConfig,
    OptimizerConfig,
    RuntimeConfig,
    TrackingConfig,
    TrainConfig,
    TrainResult,
)
from pipeline.training.default_dataset import default_dataset_path, ensure_default_dataset
from pipeline.training.trainer import train

__all__ = [
    "CurriculumStage",
    "DataConfig",
    "DefaultDatasetConfig",
    "EarlyStoppingConfig",
    "OptimizerConfig",
    "RuntimeConfig",
    "TrackingConfig",
    "TrainConfig",
    "TrainResult",
    "build_parser",
    "config_from_args",
    "default_dataset_path",
    "ensure_default_dataset",
    "main",
    "train",
]


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "python -m pipeline.train",
        "Train a velocity-inversion model, evaluate it on the test split, log it to MLflow and register it "
        "(alias champion for the best by validation SSIM). With no arguments: the embedded default (the "
        "default dataset synthesized and ingested under data/ if absent, the dual U-Net, ./mlflow.db).",
        examples=[
            "python -m pipeline.train",
            "python -m pipeline.train --config configs/train/quick.yaml   # a smoke run of a few minutes",
            "python -m pipeline.train --data data/cfb.h5 --model inversionnet --set epochs=50 --set max_total_time_s=null",
            "python -m pipeline.train --config configs/train/openfwi.yaml --tracking-uri http://127.0.0.1:5000",
            "python -m pipeline.train --resume   # continue the latest interrupted run (same MLflow run)",
            "python -m pipeline.train --init-from models:/seisinvert-general@champion --data mine.h5 --freeze encoder",
            "python -m pipeline.train --compare --data data/cfb.h5   # every model under one budget",
        ],
    )
    parser.add_argument(
        "--model", help="unet | inversionnet | lstm | transformer | a configs/model name | a YAML path"
    )
    parser.add_argument("--data", help="training dataset (.h5); default: the cached default dataset")
    parser.add_argument(
        "--tracking-uri", help="MLflow store (default: sqlite:///mlflow.db in the working directory)"
    )
    parser.add_argument("--experiment", help="MLflow experiment name")
    parser.add_argument("--epochs", type=int, help="number of epochs")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="RUN_ID",
        help="continue an interrupted run (the latest unfinished one without RUN_ID) in the same MLflow run",
    )
    parser.add_argument(
        "--init-from",
        metavar="MODEL",
        help="fine-tune this model (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/... or a bundle folder): its "
        "architecture, weights, normalisation and geometry",
    )
    parser.add_argument(
        "--freeze",
        choices=("encoder",),
        help="with --init-from: keep the parent's encoder fixed and train the decoders only",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="train every model family on the same data as child runs (configs/experiment/compare.yaml)",
    )
    add_config_arguments(parser)
    add_common_arguments(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = {
        "model": args.model,
        "epochs": args.epochs,
        "init_from": args.init_from,
        "freeze": args.freeze,
        "data": {"path": args.data},
        "tracking": {"tracking_uri": args.tracking_uri, "experiment": args.experiment},
    }
    return load_config(TrainConfig, files=args.config, values=values, overrides=args.overrides)


def _main(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    echo = (lambda *_: None) if args.quiet else (lambda text: print(text, flush=True))
    if args.compare:
        from pipeline.compare import compare_from_args

        compare_from_args(args, echo)
        return 0
    config = config_from_args(args)
    if args.resume:
        # The checkpoint holds the configuration; only the checkpoint folder comes from the command line.
        train(config, resume=args.resume, echo=echo)
        return 0
    train(config, echo=echo)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
