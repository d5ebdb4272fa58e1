"""Classify new text with a trained sentiment checkpoint; no data files needed.

    python -m rnn_lightning.cli.predict ckpt_path=outputs/.../checkpoints/last.ckpt text="an utterly charming film"

``ckpt_path`` may also be a run folder: its best checkpoint is used (the one its test numbers come from), or its
``last.ckpt`` where it has no best one yet; stderr says which.
Several ``text=...`` arguments classify several reviews. Each prints one row, ``label  p(label)  text``, whatever the
text holds: a newline, a tab or another character that is not printable is written as its Python escape (``\\n``,
``\\t``, ``\\x1b``) and a backslash as ``\\\\``. A text cut to the model's ``max_len`` tokens, or one with no word
the model knows, gets a note on stderr.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import torch

from rnn_lightning.data.encoding import encode_batch
from rnn_lightning.data.tokenizer import TOKENIZER_VERSION, tokenize
from rnn_lightning.data.vocab import Vocabulary
from rnn_lightning.errors import ConfigError
from rnn_lightning.models.checkpoint import Checkpoint, read_checkpoint
from rnn_lightning.models.sentiment import LABELS, SentimentClassifier

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
    return ckpt_path, texts


def run_checkpoint(folder: Path) -> tuple[Path, str] | None:
    """The checkpoint to use from a run folder (or its checkpoints/ folder), and which one it is: the best one, the
    model the run was tested with, else ``last.ckpt``; None where there is neither (read_checkpoint says what to give).

    Raises:
        SystemExit: several best checkpoints, so that which one is meant is not clear.
    """
    checkpoints = folder if folder.name == "checkpoints" else folder / "checkpoints"
    best = sorted(checkpoints.glob("best-*.ckpt"))
    if len(best) > 1:
        raise SystemExit(
            f"{checkpoints} has {len(best)} best-*.ckpt files; give the one you mean: {', '.join(map(str, best))}"
        )
    if best:
        return best[0], "its best checkpoint, the one its test numbers come from"
    if (checkpoints / "last.ckpt").is_file():
        return checkpoints / "last.ckpt", "its last checkpoint: it has no best one yet"
    return None


def read_classifier(ckpt_path: Path) -> tuple[SentimentClassifier, Checkpoint]:
    """The sentiment model of a checkpoint and the checkpoint's contents, from one read of the file.

    Built as ``load_from_checkpoint`` builds it (the saved hyperparameters the constructor takes, then the vocabulary
    and the weights), but from the contents already read instead of reading the file again.

    Raises:
        SystemExit: the file is not a readable sentiment checkpoint of this tokenizer; the message says why.
    """
    try:
        checkpoint = read_checkpoint(ckpt_path)
    except ConfigError as error:
        raise SystemExit(str(error)) from None
    if checkpoint.task != SentimentClassifier.task:
        raise SystemExit(f"{ckpt_path} is a {checkpoint.task} checkpoint; predict classifies text with a sentiment one")
    version = (checkpoint.hparams.get("tokenizer") or {}).get("tokenizer_version")
    if version != TOKENIZER_VERSION:
        raise SystemExit(
            f"{ckpt_path} was trained with tokenizer {version!r}, this code has {TOKENIZER_VERSION!r}; "
            "retrain, or use the version of rnn-lightning it was trained with"
        )
    accepted = inspect.signature(SentimentClassifier).parameters
    model = SentimentClassifier(**{key: value for key, value in checkpoint.hparams.items() if key in accepted})
    model.on_load_checkpoint(checkpoint.contents)
    model.load_state_dict(checkpoint.contents["state_dict"])
    return model.eval(), checkpoint


def load_classifier(ckpt_path: Path) -> SentimentClassifier:
    """The sentiment model of a checkpoint file, or of a run folder (see :func:`run_checkpoint`)."""
    if ckpt_path.is_dir() and (found := run_checkpoint(ckpt_path)) is not None:
        ckpt_path, which = found
        print(f"note: using {ckpt_path}, {which}", file=sys.stderr)
    return read_classifier(ckpt_path)[0]


@torch.no_grad()
def classify(model: SentimentClassifier, texts: list[str]) -> list[tuple[str, float]]:
    """(label, probability of that label) for each text."""
    tokens, lengths = encode_batch(texts, Vocabulary(model.vocab), model.hparams.tokenizer["max_len"])
    dtype_device = next(model.parameters())
    probabilities = model(tokens.to(dtype_device.device), lengths).softmax(dim=1)  # (B, 2)
    best = probabilities.argmax(dim=1)
    return [(LABELS[int(i)], float(p[i])) for i, p in zip(best, probabilities)]


def notes(model: SentimentClassifier, texts: list[str]) -> list[str]:
    """What the model did not read: words past ``max_len``, or a text of words it never saw (all ``<unk>``)."""
    vocab, max_len = Vocabulary(model.vocab), model.hparams.tokenizer["max_len"]
    found = []
    for number, text in enumerate(texts, 1):
        tokens = tokenize(text)
        read = vocab.encode(tokens[:max_len])
        if len(tokens) > max_len:
            found.append(f"text {number}: cut to its first {max_len} of {len(tokens)} tokens (the model's max_len)")
        if all(token == Vocabulary.UNK for token in read):
            what = "has no words" if not tokens else "has no word the model knows (every word is <unk>)"
            found.append(f"text {number} {what}: its label is a guess that says nothing about the text")
    return found


def one_line(text: str) -> str:
    """``text`` on one row: backslashes doubled, characters that are not printable as their Python escapes."""
    text = text.replace("\\", "\\\\")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def main(argv: list[str] | None = None) -> None:
    ckpt_path, texts = parse_arguments(sys.argv[1:] if argv is None else argv)
    model = load_classifier(ckpt_path)
    for text, (label, probability) in zip(texts, classify(model, texts)):
        print(f"{label}\t{probability:.3f}\t{one_line(text)}")
    for note in notes(model, texts):
        print(f"note: {note}", file=sys.stderr)


if __name__ == "__main__":
    main()
