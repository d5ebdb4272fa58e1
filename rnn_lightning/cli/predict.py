"""Classify new text with a trained sentiment checkpoint; no data files needed.

    python -m rnn_lightning.cli.predict ckpt_path=outputs/.../checkpoints/last.ckpt text="an utterly charming film"

Several ``text=...`` arguments classify several reviews. Each prints ``label  p(label)  text``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from rnn_lightning.data.encoding import encode_batch
from rnn_lightning.data.tokenizer import TOKENIZER_VERSION
from rnn_lightning.data.vocab import Vocabulary
from rnn_lightning.models.sentiment import LABELS, SentimentClassifier
from rnn_lightning.training.checks import ConfigError
from rnn_lightning.training.resume import read_checkpoint

USAGE = 'usage: python -m rnn_lightning.cli.predict ckpt_path=PATH text="a review" [text="another" ...]'


def parse_arguments(argv: list[str]) -> tuple[Path, list[str]]:
    ckpt_path, texts = None, []
    for argument in argv:
        key, sep, value = argument.partition("=")
        if not sep or key not in ("ckpt_path", "text"):
            raise SystemExit(f"unexpected argument {argument!r}\n{USAGE}")
        if key == "ckpt_path":
            ckpt_path = Path(value)
        else:
            texts.append(value)
    if ckpt_path is None or not texts:
        raise SystemExit(f"both ckpt_path=... and at least one text=... are needed\n{USAGE}")
    if not ckpt_path.is_file():
        raise SystemExit(f"checkpoint {ckpt_path} does not exist; pass the path of a .ckpt file from a run")
    return ckpt_path, texts


def load_classifier(ckpt_path: Path) -> SentimentClassifier:
    try:
        checkpoint = read_checkpoint(ckpt_path)
    except ConfigError as error:
        raise SystemExit(str(error)) from None
    if checkpoint.task != SentimentClassifier.task:
        raise SystemExit(f"{ckpt_path} is a {checkpoint.task} checkpoint; predict classifies text with a sentiment one")
    model = SentimentClassifier.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    version = (model.hparams.tokenizer or {}).get("tokenizer_version")
    if version != TOKENIZER_VERSION:
        raise SystemExit(
            f"{ckpt_path} was trained with tokenizer {version!r}, this code has {TOKENIZER_VERSION!r}; "
            "retrain, or use the version of rnn-lightning it was trained with"
        )
    return model.eval()


@torch.no_grad()
def classify(model: SentimentClassifier, texts: list[str]) -> list[tuple[str, float]]:
    """(label, probability of that label) for each text."""
    tokens, lengths = encode_batch(texts, Vocabulary(model.vocab), model.hparams.tokenizer["max_len"])
    dtype_device = next(model.parameters())
    probabilities = model(tokens.to(dtype_device.device), lengths).softmax(dim=1)  # (B, 2)
    best = probabilities.argmax(dim=1)
    return [(LABELS[int(i)], float(p[i])) for i, p in zip(best, probabilities)]


def main(argv: list[str] | None = None) -> None:
    ckpt_path, texts = parse_arguments(sys.argv[1:] if argv is None else argv)
    model = load_classifier(ckpt_path)
    for text, (label, probability) in zip(texts, classify(model, texts)):
        print(f"{label}\t{probability:.3f}\t{text}")


if __name__ == "__main__":
    main()
