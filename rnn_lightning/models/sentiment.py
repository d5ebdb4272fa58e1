"""Many-to-one classification of movie reviews: embedding -> recurrent layer -> readout -> head."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MaxMetric, MeanMetric, Metric
from torchmetrics.classification import BinaryAccuracy, BinaryConfusionMatrix, BinaryF1Score

from rnn_lightning.data.vocab import Vocabulary
from rnn_lightning.models.base import RecurrentTask, recurrent_layer
from rnn_lightning.models.head import make_head
from rnn_lightning.models.metrics import Accuracy
from rnn_lightning.models.readout import READOUTS, last_state, pool, readout_width

log = logging.getLogger("rnn_lightning")
LABELS = ["negative", "positive"]


class SentimentClassifier(RecurrentTask):
    """``model`` holds the recurrent layer's settings (``model.*``, one dict: ``models/base.py``). ``vocab`` (the
    words, index order) is needed to train and to read new text; it travels in the checkpoint beside the weights
    rather than in the hyperparameters, which stay small enough for TensorBoard's hparams view. ``embeddings`` names
    pretrained vectors ("kumo" or a GloVe text file) used to initialise the embedding when a model is first built,
    never when one is loaded."""

    task = "sentiment"
    EPOCH_METRICS = {
        "train/loss": "min",
        "train/acc": "max",
        "val/loss": "min",
        "val/acc": "max",
        "val/acc_best": "max",
    }

    def __init__(
        self,
        vocab_size: int,
        model: dict[str, Any] | None = None,
        embedding_dim: int = 50,
        embeddings: str | None = None,
        freeze_embeddings: bool = False,
        embedding_dropout: float = 0.0,
        word_dropout: float = 0.0,
        readout: str = "last",
        head_hidden: int = 0,
        head_activation: str = "relu",
        head_dropout: float = 0.0,
        tokenizer: dict[str, Any] | None = None,
        vocab: list[str] | None = None,
        optim: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(optim, scheduler)
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"module.word_dropout={word_dropout} must be in [0, 1)")
        if readout not in READOUTS:
            raise ValueError(f"unknown readout {readout!r}; choose one of {list(READOUTS)}")
        self.save_hyperparameters(ignore=["vocab"], logger=False)
        self.vocab = vocab
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=Vocabulary.PAD)
        if embeddings and vocab is not None:
            self._load_pretrained(embeddings, vocab)
        self.embedding.weight.requires_grad_(not freeze_embeddings)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.rnn = recurrent_layer(model, embedding_dim)
        features = readout_width(readout, self.rnn.output_size)
        self.head = make_head(features, len(LABELS), head_hidden, head_activation, head_dropout)
        # head_dropout acts on the input of the head's last linear layer: between the layers of a two-layer
        # head (make_head puts it there), on the pooled features of a one-layer head (here).
        self.feature_dropout = nn.Dropout(head_dropout if head_hidden == 0 else 0.0)
        self.train_acc = Accuracy()  # updated every training step: no host read (metrics.py)
        self.val_acc, self.test_acc = BinaryAccuracy(), BinaryAccuracy()
        self.val_loss, self.test_f1 = MeanMetric(), BinaryF1Score()
        self.val_acc_best = MaxMetric()
        # Saved in checkpoints, so a resumed run logs what an uninterrupted one does (an older checkpoint without
        # them loads too: torchmetrics then keeps the fresh state).
        for running in (self.train_acc, self.val_acc_best):
            running.persistent(True)
        self.test_confusion = BinaryConfusionMatrix()
        self.test_predictions: list[tuple[Tensor, Tensor, Tensor]] = []

    def _load_pretrained(self, source: str, vocab: list[str]) -> None:
        from rnn_lightning.data.glove import GloveNotInstalledError, load_glove_vectors

        if len(vocab) != self.embedding.num_embeddings:
            raise ValueError(f"vocab has {len(vocab)} words but vocab_size={self.embedding.num_embeddings}")
        try:
            vectors, _ = load_glove_vectors(
                Vocabulary(vocab), source, dim=self.embedding.embedding_dim
            )  # logs coverage
        except GloveNotInstalledError as missing:
            # The default run must still run where the vectors are not installed; it learns its embeddings instead
            # (a few points less accurate, docs/results.md).
            log.warning("%s Training with randomly initialised embeddings instead (module.embeddings=null).", missing)
            return
        self.embedding.weight.data.copy_(vectors)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """tokens: (B, T) word ids, right-padded; lengths: (B,) real tokens -> logits (B, 2)."""
        if self.training and self.hparams.word_dropout > 0:
            # Whole words become <unk> while training, so the model cannot lean on any single word.
            dropped = torch.rand(tokens.shape, device=tokens.device) < self.hparams.word_dropout
            tokens = tokens.masked_fill(dropped & (tokens != Vocabulary.PAD), Vocabulary.UNK)
        x = self.embedding_dropout(self.embedding(tokens))  # (B, T, E)
        outputs, state = self.rnn(x, lengths=lengths)  # (B, T, D * H)
        if self.hparams.readout == "last":
            features = last_state(state[0], self.rnn.directions)  # (B, D * H)
        else:
            features = pool(outputs, lengths, self.hparams.readout)  # (B, D * H)
        return self.head(self.feature_dropout(features))

    def training_loss(self, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        tokens, lengths, labels = batch
        logits = self(tokens, lengths)
        self.train_acc.update(logits.argmax(dim=1), labels)  # logged once per epoch, like train/loss
        return F.cross_entropy(logits, labels)

    def training_epoch_metrics(self) -> dict[str, Metric]:
        return {**super().training_epoch_metrics(), "train/acc": self.train_acc}

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        tokens, lengths, labels = batch
        logits = self(tokens, lengths)
        self.val_loss(F.cross_entropy(logits, labels), weight=len(labels))
        self.val_acc(logits.argmax(dim=1), labels)
        self.log("val/loss", self.val_loss, prog_bar=False)
        self.log("val/acc", self.val_acc, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def on_test_epoch_start(self) -> None:
        self.test_predictions.clear()

    def test_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        tokens, lengths, labels = batch
        probabilities = self(tokens, lengths).softmax(dim=1)  # (B, 2)
        predictions = probabilities.argmax(dim=1)
        for metric in (self.test_acc, self.test_f1, self.test_confusion):
            metric.update(predictions, labels)
        self.log("test/acc", self.test_acc)
        self.log("test/f1", self.test_f1)
        self.test_predictions.append((predictions, probabilities[:, 1], labels))  # moved to the CPU once, at the end

    def on_test_epoch_end(self) -> None:
        # Kept for the test report (training's callbacks draw the matrix and list the mistakes), on the host once.
        self.test_confusion_matrix = self.test_confusion.compute().cpu().numpy()  # (2, 2): true x predicted
        self.test_confusion.reset()
        if self.test_predictions:
            predictions, positive, labels = (torch.cat(parts).cpu() for parts in zip(*self.test_predictions))
            self.test_predictions = [(predictions, positive, labels)]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["vocabulary"] = self.vocab

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.vocab = checkpoint.get("vocabulary")
