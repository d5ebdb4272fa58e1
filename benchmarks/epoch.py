"""End-to-end epoch timing: what Lightning costs over a plain loop, and what the fused cells buy.

    python -m benchmarks.epoch [--repeats 3] [--impls loop fused] [--data-dir DIR]

For each recurrent implementation, one sentiment training epoch (an LSTM, hidden 128, random embeddings, batch 64,
Adam: the model of docs/performance.md's epoch row) is timed twice over the same model, data and optimizer: through
``lightning.Trainer.fit`` (no logger, no checkpoints, no progress bar, no validation) and through a
plain PyTorch loop (the module's ``training_loss``, backward, step). The two are interleaved and repeated,
and the medians are compared, so load from other processes hits both sides alike. Prints a table
and the ratios trainer/plain and loop/fused.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import lightning as L
import torch

from rnn_lightning.data.sentiment import SentimentDataModule
from rnn_lightning.models.sentiment import SentimentClassifier

ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}


def build(data: SentimentDataModule, impl: str) -> SentimentClassifier:
    torch.manual_seed(0)
    return SentimentClassifier(
        **data.model_inputs(), model={"cell": "lstm", "hidden_size": 128, "impl": impl}, optim=ADAM
    )


def plain_epoch(model: SentimentClassifier, data: SentimentDataModule) -> float:
    optimizer = model.configure_optimizers()
    model.train()
    started = time.perf_counter()
    for batch in data.train_dataloader():
        optimizer.zero_grad()
        # The module's own training_loss, so that both sides do the same work (accuracy update
        # included); its self.log is a no-op without a Trainer.
        loss = model.training_loss(batch)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


class EpochClock(L.Callback):
    """Times the epoch itself, apart from ``fit``'s one-off setup and teardown."""

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.started


def trainer_epoch(model: SentimentClassifier, data: SentimentDataModule) -> tuple[float, float]:
    """(seconds of the epoch, seconds of the whole ``fit`` call)."""
    clock = EpochClock()
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[clock],
    )
    started = time.perf_counter()
    trainer.fit(model, train_dataloaders=data.train_dataloader())
    return clock.seconds, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    warnings.filterwarnings("ignore", message=".*self.log.*")  # the plain loop logs into nothing, on purpose
    warnings.filterwarnings("ignore", message=".*val_dataloader.*")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--impls", nargs="+", default=["loop", "fused"], choices=["loop", "fused"])
    parser.add_argument("--data-dir", default=os.environ.get("RNN_LIGHTNING_DATA_DIR", "data/rt-polarity"))
    args = parser.parse_args(argv)
    data = SentimentDataModule(data_dir=args.data_dir, batch_size=64, download=False)
    data.setup("fit")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; one sentiment epoch "
        f"({len(data.train_dataloader())} batches of 64), median of {args.repeats}"
    )
    medians = {}
    for impl in args.impls:
        plain, epoch, fit = [], [], []
        for _ in range(args.repeats):
            plain.append(plain_epoch(build(data, impl), data))
            seconds, whole = trainer_epoch(build(data, impl), data)
            epoch.append(seconds)
            fit.append(whole)
        medians[impl] = (statistics.median(plain), statistics.median(epoch))
        p, t, f = medians[impl][0], medians[impl][1], statistics.median(fit)
        print(
            f"{impl:>6}: plain loop {p:6.2f} s   Trainer epoch {t:6.2f} s   Trainer/plain {t / p:5.3f}   "
            f"(whole fit() call {f:6.2f} s, {f / p:5.3f}x)"
        )
    if "loop" in medians and "fused" in medians:
        print(f"loop/fused through the Trainer: {medians['loop'][1] / medians['fused'][1]:.2f}x")


if __name__ == "__main__":
    main()
