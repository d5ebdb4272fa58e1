"""One training job from a composed config: seed, build, fit, test on the best checkpoint, record.

``train.py`` calls :func:`train` under ``@hydra.main``; tests call it with a config from Hydra's compose
API. It returns the best value of the monitored metric (not the last epoch's), so that an optimizing
sweeper can use it.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from rnn_lightning.callbacks import EpochSummary
from rnn_lightning.run_record import RunRecord

log = logging.getLogger("rnn_lightning")
# Lightning 2.6 calls a torch.utils._pytree API that torch 2.13 deprecates; nothing for a user to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def train(cfg: DictConfig) -> float | None:
    output_dir = Path(cfg.paths.output_dir)
    record = RunRecord(
        output_dir / "metrics.json",
        task=cfg.task_name,
        monitor=cfg.monitor.metric,
        mode=cfg.monitor.mode,
        overrides=job_overrides(),
        params=run_params(cfg),
    )
    try:
        return fit_and_test(cfg, output_dir, record)
    except KeyboardInterrupt as interrupt:
        record.finish("interrupted", interrupt)
        raise
    except Exception as error:
        record.finish("failed", error)
        raise


def fit_and_test(cfg: DictConfig, output_dir: Path, record: RunRecord) -> float | None:
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    # Built before the Trainer so that the module can be sized by the data (the vocabulary).
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, **datamodule.model_inputs())
    checkpoint = ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="best-epoch{epoch:03d}",
        auto_insert_metric_name=False,
        monitor=cfg.monitor.metric,
        mode=cfg.monitor.mode,
    )
    logger = TensorBoardLogger(output_dir, name="tensorboard", version=run_name(), default_hp_metric=False)
    trainer = instantiate(
        cfg.trainer,
        callbacks=[checkpoint, last_checkpoint(output_dir), *extra_callbacks(cfg)],
        logger=logger,
        enable_progress_bar=is_terminal(),
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    best = None if checkpoint.best_model_score is None else float(checkpoint.best_model_score)
    record.update(best_val=best, epochs=trainer.current_epoch)
    tested = trainer.test(module, datamodule=datamodule, ckpt_path=checkpoint.best_model_path or None)
    test_metrics = {name: float(value) for name, value in tested[0].items()}
    hparam_metrics = {f"hparams/{name}": value for name, value in test_metrics.items()}
    hparam_metrics["hparams/best_val"] = math.nan if best is None else best
    logger.log_hyperparams(run_params(cfg), metrics=hparam_metrics)
    record.finish("completed", test=test_metrics, epochs=trainer.current_epoch)
    log.info("best %s = %s; test %s; outputs in %s", cfg.monitor.metric, best, test_metrics, output_dir)
    return best


def build_module(cfg: DictConfig, **data_inputs: Any) -> L.LightningModule:
    """The task's LightningModule from plain values only, so its checkpoint loads with weights_only=True."""
    arguments = OmegaConf.to_container(cfg.module, resolve=True)
    module_class = get_class(arguments.pop("_target_"))
    # The optimizer config stays data; the module builds the optimizer in configure_optimizers.
    return module_class(**arguments, **data_inputs, optim=OmegaConf.to_container(cfg.optim, resolve=True))


def last_checkpoint(output_dir: Path) -> ModelCheckpoint:
    """``last.ckpt`` after every epoch. Lightning 2.6's ``save_last=True`` refreshes it only in epochs that
    also save a new best, so a crash after a run of non-improving epochs would lose them all."""
    return ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
    )


def extra_callbacks(cfg: DictConfig) -> list[L.Callback]:
    callbacks: list[L.Callback] = [RichProgressBar() if is_terminal() else EpochSummary()]
    if cfg.early_stopping_patience:
        callbacks.append(
            EarlyStopping(monitor=cfg.monitor.metric, mode=cfg.monitor.mode, patience=cfg.early_stopping_patience)
        )
    return callbacks


def is_terminal() -> bool:
    return sys.stdout.isatty()


def run_name() -> str:
    """The job's overrides (``batch=200,optim=adam``), so TensorBoard names each sweep job by what differs."""
    if not HydraConfig.initialized():
        return "default"
    # A "/" in an override value (a path) would nest folders; keep the run one folder deep.
    return (HydraConfig.get().job.override_dirname or "default").replace("/", "_")


def job_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def run_params(cfg: DictConfig) -> dict[str, Any]:
    """The few values that tell jobs apart in a report or TensorBoard's hparams view."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    return {
        "task": cfg.task_name,
        "model": cfg.model.cell,
        "optim": choices.get("optim", cfg.optim._target_.rsplit(".", 1)[-1].lower()),
        "lr": cfg.optim.lr,
        "batch": cfg.batch,
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "hidden_size": cfg.model.hidden_size,
        "num_layers": cfg.model.num_layers,
        "bidirectional": cfg.model.bidirectional,
        "impl": cfg.model.impl,
    }
