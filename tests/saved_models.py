"""Small sentiment checkpoints written as train.py's would be (task, hyperparameters, weights, vocabulary, data
settings), for the commands that read them; no training needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rnn_lightning.models.sentiment import SentimentClassifier

VOCAB = ["<pad>", "<unk>", "good", "bad", "film", "dull", "charming"]
DATA = {"data_dir": "data/rt-polarity", "max_len": 51, "train_per_class": 4000, "val_size": 800, "seed": 0}


def tiny_classifier(seed: int, vocab: list[str] = VOCAB) -> SentimentClassifier:
    torch.manual_seed(seed)
    tokenizer = {"max_len": 6, "tokenizer_version": "v1", "vocab_size": len(vocab)}
    return SentimentClassifier(vocab_size=len(vocab), vocab=vocab, tokenizer=tokenizer, embedding_dim=4).eval()


def save_checkpoint(path: Path, model: SentimentClassifier, **data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    contents = {
        "task": model.task,
        "hyper_parameters": dict(model.hparams),
        "state_dict": model.state_dict(),
        "vocabulary": model.vocab,
        "datamodule_hyper_parameters": DATA | data,
    }
    torch.save(contents, path)
    return path
