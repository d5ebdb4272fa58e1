"""LightningDataModule for rt-polarity sentence sentiment (label 1 = positive, 0 = negative)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from rnn_lightning.data.download import ensure_polarity_files
from rnn_lightning.data.encoding import encode_batch
from rnn_lightning.data.polarity import (
    EXPECTED_LINES,
    EXPECTED_SHA256,
    OFFICIAL_URL,
    check_review_counts,
    file_sha256,
    missing_polarity_files,
    read_reviews,
)
from rnn_lightning.data.sampling import EpochShuffle, EvenShards, ResumableLoader
from rnn_lightning.data.tokenizer import TOKENIZER_VERSION, tokenize
from rnn_lightning.data.vocab import Vocabulary
from rnn_lightning.errors import ConfigError, MissingFileError
from rnn_lightning.paths import user_path

__all__ = ["SentimentDataModule", "resolve_data_dir"]

log = logging.getLogger(__name__)


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def resolve_data_dir(data_dir: str | Path) -> Path:
    """``~`` expanded; a relative path is taken relative to the folder the command was started in (Hydra's own
    outputs/ is too), whatever folder a job runs in."""
    return user_path(data_dir)


def _collate(samples: list[tuple[torch.Tensor, ...]]) -> Batch:
    """Stack samples into ``(tokens (B, T), lengths (B,), labels (B,))``.

    The default collate would return a list; a tuple unpacks the same and is what the model expects.
    """
    tokens, lengths, labels = zip(*samples, strict=True)
    return torch.stack(tokens), torch.stack(lengths), torch.stack(labels)


def alternate_classes(pos: list[str], neg: list[str], seed: list[int]) -> tuple[list[str], list[int]]:
    """Each class in a seeded order, then positive, negative, positive, ... (labels 1, 0, 1, ...): every prefix
    holds as many of one class as of the other, give or take one."""
    rng = np.random.default_rng(seed)
    pos = [pos[i] for i in rng.permutation(len(pos))]
    neg = [neg[i] for i in rng.permutation(len(neg))]
    texts: list[str] = []
    labels: list[int] = []
    for k in range(max(len(pos), len(neg))):
        for reviews, label in ((pos, 1), (neg, 0)):
            if k < len(reviews):
                texts.append(reviews[k])
                labels.append(label)
    return texts, labels


def _check_int(name: str, value: Any, minimum: int) -> None:
    """Raise ConfigError unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"data.{name} must be an integer >= {minimum}, got {value!r}; set data.{name}=...")


class SentimentDataModule(L.LightningDataModule):
    """Train / validation / test splits of rt-polarity, encoded as padded id tensors.

    Each class file is split in file order (or after a seeded shuffle when
    ``shuffle_before_split``): its first ``train_per_class`` reviews are the training part, the rest
    (1331 each with the defaults) the test set. ``val_size`` reviews are drawn from the training
    part, seeded and stratified by class; the test set is never touched. The vocabulary is built
    from the remaining training reviews only.

    Batches are ``(tokens (B, T) long, lengths (B,) long, labels (B,) long)``, T = ``max_len``.
    """

    def __init__(
        self,
        data_dir: str = "data/rt-polarity",
        max_len: int = 51,
        min_freq: int = 1,
        train_per_class: int = 4000,
        val_size: int = 800,
        shuffle_before_split: bool = False,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        download: bool = True,
        url: str = OFFICIAL_URL,
        expected_reviews: int | None = EXPECTED_LINES,
    ) -> None:
        """Store and check the settings; nothing is read until :meth:`setup`.

        Args:
            expected_reviews: how many reviews each of the two files must hold: 5331, as the published rt-polarity
                files do, so that a copy cut short (an interrupted download or copy) or grown is refused instead of
                training on a smaller, unbalanced test set. ``None`` for reviews of your own: any number per file,
                and a test set whose classes are unbalanced is only reported.

        Raises:
            ConfigError: a setting out of range; the message names it and the valid range.
        """
        super().__init__()
        if not str(data_dir).strip():
            raise ConfigError("data.data_dir is empty; set data.data_dir=<folder with rt-polarity.pos/.neg>.")
        _check_int("max_len", max_len, 1)
        _check_int("min_freq", min_freq, 1)
        _check_int("train_per_class", train_per_class, 2)
        _check_int("val_size", val_size, 2)
        _check_int("batch_size", batch_size, 1)
        _check_int("num_workers", num_workers, 0)
        _check_int("seed", seed, 0)
        if expected_reviews is not None:
            _check_int("expected_reviews", expected_reviews, 1)
        # Each class needs at least one validation and one training review.
        if val_size > 2 * train_per_class - 2:
            raise ConfigError(
                f"data.val_size={val_size} leaves too few training reviews out of "
                f"2 x train_per_class = {2 * train_per_class}; use val_size <= {2 * train_per_class - 2} "
                "(800 is the default)."
            )
        # Recorded in checkpoints as datamodule_hyper_parameters, so a run can be rebuilt from one.
        self.save_hyperparameters()
        self.data_dir = resolve_data_dir(data_dir)
        self.max_len = max_len
        self.min_freq = min_freq
        self.train_per_class = train_per_class
        self.val_size = val_size
        self.shuffle_before_split = shuffle_before_split
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.download = download
        self.url = url
        self.expected_reviews = expected_reviews
        # Lightning calls prepare_data again in fit and in test: the check of files already there is made once.
        self._files_checked = False

        self.vocab: Vocabulary | None = None
        self.train_texts: list[str] = []
        self.val_texts: list[str] = []
        self.test_texts: list[str] = []
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None

    def prepare_data(self) -> None:
        """Make sure both review files exist, downloading them when allowed.

        Files already present are used as they are; a copy that differs from the original release
        only logs a warning, because the user put it there on purpose.

        Raises:
            MissingFileError: files missing and ``download`` is false, or the download failed (the message says
                where to put the files by hand).
        """
        missing = missing_polarity_files(self.data_dir)
        if not missing:
            if self._files_checked:
                return
            self._files_checked = True
            for name, expected in EXPECTED_SHA256.items():
                if file_sha256(self.data_dir / name) != expected:
                    log.warning(
                        "%s differs from the original release (sha256); results may not be comparable.",
                        self.data_dir / name,
                    )
            return
        if not self.download:
            raise MissingFileError(
                f"{', '.join(missing)} not found in {self.data_dir} and data.download=false. Put the files "
                f"there, set data.data_dir=<folder that has them>, or set data.download=true to fetch "
                f"{self.url}."
            )
        ensure_polarity_files(self.data_dir, url=self.url)

    def setup(self, stage: str | None = None) -> None:
        """Read, split, build the vocabulary and encode; later calls do nothing.

        Raises:
            MissingFileError / DataError: from reading the files.
            DataError: a file does not hold ``expected_reviews`` reviews.
            ConfigError: ``train_per_class`` leaves no test reviews for a class.
        """
        if self.vocab is not None:
            return
        pos, neg = read_reviews(self.data_dir)
        if self.expected_reviews is not None:
            check_review_counts(self.data_dir, len(pos), len(neg), self.expected_reviews, self.url)
        train_pos, val_pos, test_pos = self._split_class(pos, "pos", (self.val_size + 1) // 2, offset=1)
        train_neg, val_neg, test_neg = self._split_class(neg, "neg", self.val_size // 2, offset=2)

        # Training reviews only: a word seen only in validation or test must stay <unk>.
        self.train_texts = train_pos + train_neg
        self.vocab = Vocabulary.build((tokenize(t) for t in self.train_texts), min_freq=self.min_freq)
        self.train_set = self._encode(self.train_texts, [1] * len(train_pos) + [0] * len(train_neg))
        # Validation and test alternate the classes in a seeded order, so that any prefix of them is balanced
        # (trainer.limit_val_batches=2 validates on both classes, not on positives only). The test order does not
        # follow the run's seed: every run reads the same test reviews in the same order.
        self.val_texts, val_labels = alternate_classes(val_pos, val_neg, [self.seed, 21])
        self.test_texts, test_labels = alternate_classes(test_pos, test_neg, [22])
        self.val_set = self._encode(self.val_texts, val_labels)
        self.test_set = self._encode(self.test_texts, test_labels)
        self._note_unbalanced_test_set(len(test_pos), len(test_neg))
        log.info(
            "rt-polarity: %d train, %d val, %d test reviews; vocabulary %d (min_freq=%d); %.1f%% of "
            "training reviews fill all max_len=%d positions (longer ones are cut).",
            len(self.train_texts),
            len(self.val_texts),
            len(self.test_texts),
            len(self.vocab),
            self.min_freq,
            100.0 * float((self.train_set.tensors[1] == self.max_len).float().mean()),
            self.max_len,
        )

    def _note_unbalanced_test_set(self, n_pos: int, n_neg: int) -> None:
        """Own data (any number of reviews per file) may leave the test classes unbalanced: said, not refused."""
        share = n_pos / (n_pos + n_neg)
        if abs(share - 0.5) > 0.05:
            log.warning(
                "the test set is %.0f%% positive (%d positive, %d negative reviews): accuracy on it is not the "
                "accuracy on a balanced set; test/f1 says more.",
                100 * share,
                n_pos,
                n_neg,
            )

    def _split_class(
        self, reviews: list[str], name: str, n_val: int, offset: int
    ) -> tuple[list[str], list[str], list[str]]:
        """Split one class into (train, val, test) lists.

        ``offset`` gives each class and purpose its own random stream, so that changing one
        (e.g. turning ``shuffle_before_split`` on) leaves the others' draws as they were.
        """
        if self.train_per_class >= len(reviews):
            raise ConfigError(
                f"data.train_per_class={self.train_per_class} leaves no test reviews: the {name} file has "
                f"{len(reviews)} reviews. Use train_per_class < {len(reviews)} (4000 is the default)."
            )
        order = np.arange(len(reviews))
        if self.shuffle_before_split:
            order = np.random.default_rng([self.seed, offset]).permutation(len(reviews))
        train_idx, test_idx = order[: self.train_per_class], order[self.train_per_class :]
        val_pick = np.random.default_rng([self.seed, 10 + offset]).permutation(len(train_idx))[:n_val]
        val_mask = np.zeros(len(train_idx), dtype=bool)
        val_mask[val_pick] = True
        # Kept in file order; the training loader shuffles anyway.
        train = [reviews[i] for i in train_idx[~val_mask]]
        val = [reviews[i] for i in train_idx[val_mask]]
        test = [reviews[i] for i in test_idx]
        return train, val, test

    def _encode(self, texts: list[str], labels: list[int]) -> TensorDataset:
        """(tokens (N, T), lengths (N,), labels (N,)) tensors of these reviews."""
        assert self.vocab is not None
        tokens, lengths = encode_batch(texts, self.vocab, self.max_len)  # (N, T), (N,)
        return TensorDataset(tokens, lengths, torch.tensor(labels, dtype=torch.long))

    def _loader(self, dataset: TensorDataset | None, shuffle: bool) -> DataLoader[Batch]:
        """A DataLoader over one split; needs :meth:`setup` first."""
        if dataset is None:
            raise RuntimeError("SentimentDataModule: call setup() before asking for a dataloader.")
        # Shuffled: each epoch's order from (seed, epoch) alone, and resumable mid-epoch (see sampling.py).
        loader_class = ResumableLoader if shuffle else DataLoader
        return loader_class(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochShuffle(len(dataset), self.seed) if shuffle else EvenShards(len(dataset)),
            num_workers=self.num_workers,
            collate_fn=_collate,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader[Batch]:
        """Shuffled training batches; each epoch's order depends only on ``seed`` and the epoch number."""
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader[Batch]:
        """Validation batches in a fixed order."""
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader[Batch]:
        """Test batches in the order of ``test_texts`` (the classes alternate)."""
        return self._loader(self.test_set, shuffle=False)

    def tokenizer_settings(self) -> dict[str, Any]:
        """What a checkpoint must record to encode new text the same way.

        Raises:
            RuntimeError: before :meth:`setup`, when there is no vocabulary yet.
        """
        if self.vocab is None:
            raise RuntimeError("SentimentDataModule: call setup() before tokenizer_settings().")
        return {
            "max_len": self.max_len,
            "tokenizer_version": TOKENIZER_VERSION,
            "vocab_size": len(self.vocab),
        }

    def model_inputs(self) -> dict[str, Any]:
        """What the classifier is built with besides its config: the vocabulary and how text was encoded."""
        settings = self.tokenizer_settings()
        return {"vocab_size": settings["vocab_size"], "vocab": list(self.vocab.itos), "tokenizer": settings}
