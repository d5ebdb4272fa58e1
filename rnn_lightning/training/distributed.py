"""What differs when several processes train one model (DDP): who writes the run's files, what cannot run on
several processes, and that they all built the same model.

``train()`` writes metrics.json before any Trainer exists, so it cannot ask ``trainer.is_global_zero``. The launchers
put each process's rank into the environment first: Lightning's own ``ddp`` launcher (LOCAL_RANK, NODE_RANK), torchrun
(RANK) and SLURM (SLURM_PROCID). The global-zero process is the one where all of them are 0 or unset.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

from rnn_lightning.errors import ConfigError
from rnn_lightning.training.parallel import usable_cores

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def is_launch_zero() -> bool:
    """Whether this process is global rank 0 (or the only process), as its launcher says."""
    return all(os.environ.get(name, "0").strip() in ("", "0") for name in RANK_VARIABLES)


def end_process_group() -> None:
    """Leave DDP's process group after fit, so that a later single-process test does not wait for the others.

    torchmetrics synchronises ``compute()`` whenever a default process group exists; with the other processes gone,
    rank 0's test would wait for them forever.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def module_fingerprint(module: L.LightningModule) -> str:
    """A digest of what the data decided about the module: its hyperparameters and vocabulary."""
    content = {"hparams": dict(module.hparams), "vocab": getattr(module, "vocab", None)}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


class SameModelEverywhere(L.Callback):
    """Fails when DDP processes built different modules from their data (e.g. different vocabularies).

    Every process reads the data and builds its vocabulary itself before the Trainer exists. That is deterministic
    (words ordered by count, then alphabetically), but a process reading other files (a node with another data_dir)
    would silently map words to other embedding rows while DDP averages their gradients.
    """

    def setup(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        if trainer.world_size < 2:
            return
        mine = module_fingerprint(module)
        zero: Any = trainer.strategy.broadcast(mine, src=0)
        if not trainer.strategy.reduce_boolean_decision(mine == zero, all=True):
            raise RuntimeError(
                "the DDP processes built different models from their data (hyperparameters or vocabulary differ from "
                f"rank 0's; this is rank {trainer.global_rank}). Give every node the same data.data_dir contents and "
                "the same data settings."
            )


def check_processes(trainer: L.Trainer, settings: dict[str, Any], lbfgs: bool) -> None:
    """What Lightning accepts but cannot work: checked on the Trainer, whose devices Lightning has parsed."""
    devices = settings.get("devices")
    if trainer.accelerator.__class__.__name__ == "CPUAccelerator" and trainer.num_devices > usable_cores():
        # A CPU "device" under DDP is one process; more processes than cores only time-share them.
        raise ConfigError(
            f"trainer.devices={devices} asks for more than this machine has: {usable_cores()} CPU cores. Set "
            f"trainer.devices to at most {usable_cores()} (1 trains without data parallelism); under SLURM or torchrun "
            "it is the number per node."
        )
    if trainer.world_size > 1 and lbfgs:
        raise ConfigError(
            f"optim=lbfgs cannot run on {trainer.world_size} processes (trainer.devices={devices}, "
            f"trainer.num_nodes={trainer.num_nodes}): each process would take its own line-search decisions from its "
            "own loss, and the processes would drift apart. Train it in one process (trainer.devices=1 "
            "trainer.num_nodes=1, trainer=cpu or gpu), or use optim=adam."
        )
    strategy = str(settings.get("strategy", "auto"))
    relaunches = strategy.startswith("ddp") and not strategy.startswith(("ddp_spawn", "ddp_fork", "ddp_notebook"))
    in_sweep = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    started_by_cluster = SLURMEnvironment.detect() or TorchElasticEnvironment.detect()  # one process per device
    if trainer.world_size > 1 and relaunches and in_sweep and not started_by_cluster:
        raise ConfigError(
            f"trainer.strategy={strategy} with {trainer.world_size} processes inside a -m sweep: Lightning starts the "
            "extra processes by running `python train.py` again with the same arguments, which would start the whole "
            "sweep again in each. Use trainer=ddp_spawn in sweeps on one machine, or hydra/launcher=slurm (one task "
            "per device)."
        )
