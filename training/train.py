"""``python -m training.train``: data -> CNN -> int8 TFLite -> head -> evaluation -> artifacts.

Stages: load -> split -> fit (cross-fitting) -> calibrate -> export (:mod:`training.pipeline`) ->
evaluate -> charts and card (:mod:`training.report`). Example (``make train``, then
``make install-model`` copies the artifacts into the package)::

    python -m training.train --data ../shared/data/ct-hemorrhage --out build/model --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training import cnn, pipeline, report
from training.progress import Stopwatch

CROSS_FIT_FOLDS = 4  # grouped folds of the training split: OOF scores for head choice, calibration, threshold, OOD


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ct-hemorrhage", help="data root (three layouts read)")
    parser.add_argument("--out", default="build/model",
                        help="artifact folder (this pipeline's files are replaced; `make install-model` copies them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=cnn.CNNConfig.epochs)
    parser.add_argument("--input-size", type=int, default=cnn.CNNConfig.input_size)
    parser.add_argument("--trunks", type=int, default=cnn.CNNConfig.trunks)
    parser.add_argument("--folds", type=int, default=CROSS_FIT_FOLDS)
    parser.add_argument("--synthetic", action="store_true", help="mark the artifacts as trained on phantoms")
    parser.add_argument("--quick", action="store_true", help="a few epochs, fewer bootstrap reps (CI smoke run)")
    return parser.parse_args(argv)


def command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (recorded in the model card)."""
    return " ".join(["python -m training.train", "--data", str(args.data), "--out", str(args.out), "--seed", str(args.seed),
                     "--epochs", str(args.epochs), "--input-size", str(args.input_size), "--trunks", str(args.trunks),
                     "--folds", str(args.folds)] + ["--synthetic"] * args.synthetic + ["--quick"] * args.quick)


def plan(args: argparse.Namespace) -> pipeline.Run:
    config = cnn.CNNConfig(input_size=args.input_size, epochs=3 if args.quick else args.epochs,
                           trunks=1 if args.quick else args.trunks)
    return pipeline.Run(data=Path(args.data), out=Path(args.out), seed=args.seed, config=config,
                        folds=2 if args.quick else args.folds, quick=args.quick,
                        synthetic=bool(args.synthetic or "phantom" in str(args.data).lower()),
                        command=command(args), watch=Stopwatch())


def run(args: argparse.Namespace) -> dict:
    """Every stage in order; returns the metrics (``metrics.json`` plus the run time)."""
    cnn.configure(args.seed)
    job = plan(args)
    data = pipeline.split(job, pipeline.load(job))
    cross = pipeline.fit(job, data)
    point = pipeline.calibrate(data, cross)
    model = pipeline.export_model(job, data, cross, point)
    metrics, proba = report.evaluate_model(job, data, cross, point, model)
    report.write_report(job, data, cross, point, model, metrics, proba)
    metrics["runtime_s"] = round(job.watch.seconds, 1)
    return metrics


def summary(metrics: dict) -> str:
    lines = [f"model version {metrics['model_version']}  (test: {metrics['n_images']} images, {metrics['n_groups']} groups)"]
    for key, v in metrics["metrics"].items():
        lines.append(f"  {key:28s} {v['value']:.3f}  [{v['ci_low']:.3f}, {v['ci_high']:.3f}]")
    lines.append(f"  decision rule: {metrics['decision_rule']}")
    lines.append(f"  confusion matrix {metrics['confusion_matrix']['values']}  runtime {metrics['runtime_s']} s")
    lines.append(f"  OOD false-refusal rate (test) {metrics['ood_false_refusal_rate']}")
    for row in metrics["heads"]["table"]:
        lines.append(f"  head {row['head']:20s} OOF AUC {row['oof_roc_auc']:.3f}  macro-F1 {row['oof_macro_f1']:.3f}")
    dup = metrics["duplicates"]
    lines.append(f"  near-duplicate pairs {dup['pairs_found']} ({dup['new_pairs']} not in groups.csv): "
                 + ", ".join(f"{p['a']}~{p['b']}" for p in dup["pairs"] if not p["already_grouped"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    print(summary(run(parse_args(argv))))


if __name__ == "__main__":
    main()
