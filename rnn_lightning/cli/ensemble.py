"""Test accuracy of an ensemble of trained sentiment models: their class probabilities, averaged.

    python train.py -m experiment=best_random seed=1,2,3,4,5
    python -m rnn_lightning.cli.ensemble multirun/DATE/TIME_ID [--data-dir DIR] [--json]

Each argument is a sweep folder, a run folder, or a ``.ckpt`` file; without one, the newest sweep under multirun/.
A run takes part with its best checkpoint only if its ``metrics.json`` says it completed: a running, interrupted or
failed job (or one without a record) is left out, and the output names it and why.
Each member reads the test reviews through its own vocabulary (the validation split, and so the vocabulary,
follows the seed), so members trained on different seeds combine. The test split itself must be the same
for all of them; checkpoints that disagree on it are refused. Prints each member's test accuracy, their
mean and spread, and the ensemble's accuracy and F1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_accuracy, binary_f1_score

from rnn_lightning.cli.predict import read_classifier
from rnn_lightning.cli.sweeps import ReportError, find_jobs, newest_sweep
from rnn_lightning.data.encoding import encode_batch
from rnn_lightning.data.sentiment import SentimentDataModule
from rnn_lightning.data.vocab import Vocabulary
from rnn_lightning.models.sentiment import SentimentClassifier

# Why a job's model is not a member, by its record's status (the report's names for a job without a readable one).
LEFT_OUT = {
    "running": "still training, or stopped without recording its end (killed)",
    "interrupted": "stopped before the end (its checkpoints/last.ckpt resumes it)",
    "missing": "no record (no metrics.json): it crashed before writing one, or has not started",
}

# Data settings that decide which reviews are the test set; the seed does only when the files are shuffled.
SPLIT_KEYS = ("train_per_class", "shuffle_before_split")


def find_checkpoints(paths: list[Path]) -> tuple[list[Path], dict[str, str]]:
    """The best checkpoint of every completed run under ``paths`` (a .ckpt file stands for itself), in path order,
    and the runs left out, each with the reason.

    Raises:
        SystemExit: nothing to ensemble, or a completed run without exactly one best checkpoint.
    """
    found: list[Path] = []
    left_out: dict[str, str] = {}
    for path in paths:
        if path.is_file() and path.suffix == ".ckpt":
            found.append(path)
            continue
        if not path.is_dir():
            raise SystemExit(f"{path} is neither a checkpoint file nor a folder; pass a sweep or run folder")
        jobs = find_jobs(path)
        if not jobs and (path / "checkpoints").is_dir():
            left_out[str(path)] = f"missing: {LEFT_OUT['missing']}"
        for job in jobs:
            run = path / job.name
            status, error = job.record.get("status"), job.record.get("error")
            if status != "completed":
                left_out[str(run)] = f"{status}: {LEFT_OUT.get(status) or error or 'not completed'}"
                continue
            best = sorted((run / "checkpoints").glob("best-*.ckpt"))
            if len(best) != 1:
                raise SystemExit(
                    f"{run} completed with {len(best)} best-*.ckpt files, expected one; pass the .ckpt you mean instead"
                )
            found.append(best[0])
    if not found:
        reasons = "".join(f"\n  {run}: {reason}" for run, reason in left_out.items())
        raise SystemExit(f"no completed runs with checkpoints under {', '.join(map(str, paths))}{reasons}")
    return found, left_out


def check_same_test_split(settings: list[dict[str, Any]], paths: list[Path]) -> None:
    def split_of(s: dict[str, Any]) -> tuple:
        keys = SPLIT_KEYS + (("seed",) if s.get("shuffle_before_split") else ())
        return tuple((k, s.get(k)) for k in keys)

    first = split_of(settings[0])
    for s, path in zip(settings[1:], paths[1:]):
        if split_of(s) != first:
            raise SystemExit(
                f"{path} was tested on another split ({dict(split_of(s))}) than {paths[0]} ({dict(first)}); "
                "an ensemble needs members tested on the same reviews"
            )


@torch.no_grad()
def probabilities(model: SentimentClassifier, texts: list[str]) -> Tensor:
    """p(positive) for each text, through the model's own vocabulary: (N,)."""
    tokens, lengths = encode_batch(texts, Vocabulary(model.vocab), model.hparams.tokenizer["max_len"])
    return model(tokens, lengths).softmax(dim=1)[:, 1]


def accuracy_and_f1(positive: Tensor, labels: Tensor) -> tuple[float, float]:
    """Accuracy, and F1 of the positive class, of the predictions ``positive > 0.5``: the same torchmetrics
    measures the classifier's test step logs."""
    return float(binary_accuracy(positive, labels)), float(binary_f1_score(positive, labels))


def evaluate(models: list[SentimentClassifier], texts: list[str], labels: Tensor) -> dict[str, Any]:
    members = torch.stack([probabilities(m, texts) for m in models])  # (M, N)
    member_acc = [accuracy_and_f1(p, labels)[0] for p in members]
    accuracy, f1 = accuracy_and_f1(members.mean(dim=0), labels)
    return {
        "members": len(models),
        "member_acc": member_acc,
        "member_acc_mean": statistics.mean(member_acc),
        "member_acc_std": statistics.stdev(member_acc) if len(member_acc) > 1 else 0.0,
        "ensemble_acc": accuracy,
        "ensemble_f1": f1,
    }


def test_reviews(settings: dict[str, Any], data_dir: str | None) -> tuple[list[str], Tensor]:
    """The test texts and labels (1 positive, 0 negative) of the split the checkpoints were tested on."""
    split = ("max_len", "train_per_class", "val_size", "seed", "expected_reviews")
    keep = {k: v for k, v in settings.items() if k in split}
    keep["shuffle_before_split"] = settings.get("shuffle_before_split", False)
    data = SentimentDataModule(
        data_dir=data_dir or settings.get("data_dir", "data/rt-polarity"), download=False, **keep
    )
    data.prepare_data()
    data.setup("test")
    assert data.test_set is not None
    return data.test_texts, data.test_set.tensors[2]


def ensemble_of(paths: list[Path], data_dir: str | None = None) -> dict[str, Any]:
    """Find, load and check the members under ``paths`` (each checkpoint read once), and evaluate them alone and
    averaged on the test set.

    Raises:
        SystemExit: no completed runs, an ambiguous run folder, or members tested on other reviews.
    """
    checkpoints, left_out = find_checkpoints(paths)
    members = [read_classifier(path) for path in checkpoints]
    settings = [dict(checkpoint.contents.get("datamodule_hyper_parameters") or {}) for _, checkpoint in members]
    check_same_test_split(settings, checkpoints)
    texts, labels = test_reviews(settings[0], data_dir)
    models = [model for model, _ in members]
    return {
        "checkpoints": [str(p) for p in checkpoints],
        "left_out": left_out,
        "test_reviews": len(texts),
        **evaluate(models, texts, labels),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m rnn_lightning.cli.ensemble", description=__doc__.split("\n")[0])
    parser.add_argument(
        "paths", nargs="*", type=Path, help="sweep folders, run folders or .ckpt files (default: the newest sweep)"
    )
    parser.add_argument("--data-dir", help="folder with rt-polarity.pos/.neg (default: the one the runs used)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not args.paths:
        try:
            args.paths = [newest_sweep()]
        except ReportError as error:
            raise SystemExit(str(error)) from None
        print(f"ensemble of {args.paths[0]}, the newest sweep under multirun/", file=sys.stderr)
    result = ensemble_of(args.paths, args.data_dir)
    if args.json:
        print(json.dumps(result, indent=1))
        return result
    for run, reason in result["left_out"].items():
        print(f"left out  {run}  {reason}")
    for path, accuracy in zip(result["checkpoints"], result["member_acc"]):
        print(f"{accuracy:7.2%}  {path}")
    print(
        f"{result['members']} members: {result['member_acc_mean']:.2%} ± {result['member_acc_std']:.2%} each; "
        f"ensemble {result['ensemble_acc']:.2%} test accuracy, F1 {result['ensemble_f1']:.3f} "
        f"({result['test_reviews']} test reviews)"
    )
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
