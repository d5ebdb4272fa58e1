"""Bad input fails before any training, with a message that names the value and says what to do; nothing saved is lost.

One table: each row is the overrides of one mistake and a fragment its message must contain. Most rows run train() in
this process on the composed config; the three unknown config options run a real ``python train.py``, since the
message there is Hydra's own (it names the option and lists the choices).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra_compose import QUICK_LBFGS, TINY_SINE, compose_config

from rnn_lightning.models.sentiment import SentimentClassifier
from rnn_lightning.models.sine import SineForecaster
from rnn_lightning.training.run import train

ROOT = Path(__file__).resolve().parents[1]
TINY_SENTIMENT = [
    "model.hidden_size=4",
    "epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
]
HYDRA_OPTIONS = {
    "optim=nope": "Could not find 'optim/nope'\n\nAvailable options in 'optim':\n\tadam\n\tlbfgs\n\tsgdm",
    "model=nope": "Could not find 'model/nope'\n\nAvailable options in 'model':\n\tgru\n\tlstm\n\trnn",
    "task=nope": "Could not find 'task/nope'\n\nAvailable options in 'task':\n\tsentiment\n\tsine",
    "scheduler=nope": "Could not find 'scheduler/nope'\n\nAvailable options in 'scheduler':\n\t"
    + "\n\t".join(["cosine", "none", "plateau", "step"]),
}
DDP_SWEEP = ["-m", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", *TINY_SINE, "optim=adam"]
# Rows whose message only a real `python train.py` shows: Hydra's composition errors, and a check about -m sweeps.
SCRIPT_ROWS = [[option] for option in HYDRA_OPTIONS] + [DDP_SWEEP]
NO_GPU = pytest.mark.skipif(torch.cuda.device_count() > 0, reason="this machine has a GPU")

# (overrides, fragment of the message). {data}: the real rt-polarity folder; {tmp}: this case's folder (with the files
# the case's setup wrote); {sine_ckpt}/{sentiment_ckpt}: real checkpoints; {port}: a closed local port.
CASES = [
    pytest.param(["batch=0"], "batch=0 must be a positive whole number", id="batch=0"),
    pytest.param(["batch=-3"], "batch=-3 must be a positive whole number", id="batch=-3"),
    pytest.param(["epochs=0"], "epochs=0 must be a positive whole number of passes", id="epochs=0"),
    pytest.param(["model.hidden_size=0"], "model.hidden_size=0 must be a positive whole number", id="hidden_size=0"),
    pytest.param(["optim.lr=-1"], "optim.lr=-1 must be a positive learning rate; try optim.lr=0.001", id="lr=-1"),
    pytest.param(["data.max_len=0"], "data.max_len must be an integer >= 1, got 0; set data.max_len=", id="max_len=0"),
    pytest.param(["optim=nope"], HYDRA_OPTIONS["optim=nope"], id="optim=nope"),
    pytest.param(["model=nope"], HYDRA_OPTIONS["model=nope"], id="model=nope"),
    pytest.param(["task=nope"], HYDRA_OPTIONS["task=nope"], id="task=nope"),
    pytest.param(["scheduler=nope"], HYDRA_OPTIONS["scheduler=nope"], id="scheduler=nope"),
    pytest.param(
        ["scheduler=step", "scheduler.step_size=0"],
        "scheduler.step_size=0 must be a positive whole number of epochs",
        id="step_size=0",
    ),
    pytest.param(
        ["scheduler=cosine", "scheduler.T_max=-1"], "scheduler.T_max=-1 must be a positive whole number", id="T_max=-1"
    ),
    pytest.param(
        ["scheduler=cosine", "scheduler._target_=torch.optim.lr_scheduler.Nope"],
        "scheduler._target_=torch.optim.lr_scheduler.Nope is not a learning-rate scheduler class. Choose "
        "scheduler=none, cosine, plateau or step",
        id="scheduler-unknown-target",
    ),
    pytest.param(
        ["scheduler=step", "scheduler._target_=torch.optim.SGD"],
        "scheduler._target_=torch.optim.SGD is not a learning-rate scheduler class",
        id="scheduler-target-is-an-optimizer",
    ),
    pytest.param(
        ["scheduler=plateau", "scheduler.factor=2"],
        "torch.optim.lr_scheduler.ReduceLROnPlateau cannot be built from its settings (ValueError: Factor should be "
        "< 1.0.). Fix that scheduler.* value",
        id="plateau-factor=2",
    ),
    pytest.param(
        ["scheduler=plateau", "scheduler.monitor=val/forecast_mse"],
        "scheduler=plateau watches scheduler.monitor=val/forecast_mse, which the sentiment task does not log in time. "
        "Set scheduler.monitor to one of train/loss, train/acc, val/loss, val/acc, val/acc_best;",
        id="plateau-unlogged-metric",
    ),
    pytest.param(
        [*TINY_SINE, "scheduler=plateau", "scheduler.mode=max"],
        "scheduler.mode=max but val/forecast_mse improves when it goes down; set scheduler.mode=min",
        id="plateau-wrong-mode",
    ),
    pytest.param(
        [*TINY_SINE, "scheduler=plateau", "trainer.limit_val_batches=0"],
        "scheduler=plateau watches val/forecast_mse, which needs validation after every epoch, but this run "
        "validates never",
        id="plateau-without-validation",
    ),
    pytest.param(
        DDP_SWEEP,
        "trainer.strategy=ddp with 2 processes inside a -m sweep: Lightning starts the extra processes by running "
        "`python train.py` again",
        id="ddp-in-sweep",
        marks=pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores for 2 CPU processes"),
    ),
    pytest.param(
        ["data.data_dir={tmp}/absent", "data.download=false"],
        "rt-polarity.pos, rt-polarity.neg not found in {tmp}/absent and data.download=false. Put the files there",
        id="missing-data-dir",
    ),
    pytest.param(
        ["data.data_dir={tmp}/empty", "+data.url=http://127.0.0.1:{port}/x.tar.gz"],
        "Could not fetch the rt-polarity files: could not connect to http://127.0.0.1:{port}/x.tar.gz",
        id="download-fails",
    ),
    pytest.param(["data.data_dir={tmp}/empty_file"], "rt-polarity.pos is empty or has only blank", id="empty-file"),
    pytest.param(["data.data_dir={tmp}/blank_lines"], "rt-polarity.pos is empty or has only blank", id="blank-lines"),
    pytest.param(["data.data_dir={tmp}/binary"], "rt-polarity.pos is not a text file (it contains NUL", id="binary"),
    pytest.param(
        ["ckpt_path={tmp}/nowhere/last.ckpt"], "ckpt_path={tmp}/nowhere/last.ckpt does not exist", id="no-ckpt"
    ),
    pytest.param(
        ["ckpt_path={sine_ckpt}"],
        "ckpt_path={sine_ckpt} is a sine checkpoint, but this run has task=sentiment. Resume it with task=sine",
        id="sine-ckpt-to-sentiment",
    ),
    pytest.param(
        [*TINY_SINE, "ckpt_path={sentiment_ckpt}"],
        "is a sentiment checkpoint, but this run has task=sine. Resume it with task=sentiment",
        id="sentiment-ckpt-to-sine",
    ),
    pytest.param(
        ["model.hidden_size=5", "ckpt_path={sentiment_ckpt}"],
        "holds a model of another shape than this run's (model.hidden_size=5); its weights cannot load. Resume with "
        "the checkpoint's settings: model.hidden_size=4",
        id="ckpt-of-another-shape",
    ),
    pytest.param(
        ["model.hidden_size=4", "optim=sgdm", "ckpt_path={sentiment_ckpt}"],
        "was trained with torch.optim.Adam, this run uses torch.optim.SGD (optim=sgdm); the saved optimizer state "
        "only loads into the same optimizer. Resume with optim=adam.",
        id="ckpt-of-another-optimizer",
    ),
    pytest.param(
        ["model.hidden_size=4", "optim.lr=0.01", "ckpt_path={sentiment_ckpt}"],
        "was trained with other optim=adam settings than this run's (optim.lr=0.01); the checkpoint's optimizer "
        "state would replace them without a word. Resume with the checkpoint's settings: optim.lr=0.001",
        id="ckpt-with-another-learning-rate",
    ),
    pytest.param(
        ["model.hidden_size=4", "scheduler=cosine", "ckpt_path={sentiment_ckpt}"],
        "was trained with scheduler=none, this run uses scheduler=cosine; the checkpoint's scheduler state only "
        "continues the same schedule. Resume with scheduler=none.",
        id="ckpt-of-another-scheduler",
    ),
    pytest.param(
        [*TINY_SINE, QUICK_LBFGS, "scheduler=cosine", "epochs=3", "ckpt_path={cosine_ckpt}"],
        "was trained with other scheduler=cosine settings than this run's (scheduler.T_max=3); the checkpoint's "
        "scheduler state would replace them without a word. Resume with the checkpoint's settings: scheduler.T_max=1",
        id="ckpt-of-other-scheduler-settings",
    ),
    pytest.param(
        ["optim=lbfgs", "trainer.precision=16-mixed"],
        "optim=lbfgs cannot train with trainer.precision=16-mixed",
        id="lbfgs-16-mixed",
    ),
    pytest.param(
        [*TINY_SINE, "trainer.precision=bf16-mixed"],
        "optim=lbfgs cannot train with trainer.precision=bf16-mixed",
        id="lbfgs-bf16-mixed",
    ),
    pytest.param(
        [*TINY_SINE, "model.bidirectional=true"],
        "model.bidirectional=true is impossible on the sine task",
        id="sine-bidirectional",
    ),
    pytest.param(
        ["trainer.accelerator=cpu", "trainer.devices={too_many}"],
        "trainer.devices={too_many} asks for more than this machine has: {cores} CPU cores. Set trainer.devices to at "
        "most {cores}",
        id="cpu-devices>cores",
    ),
    pytest.param(
        ["trainer.accelerator=gpu"],
        "trainer.accelerator=gpu trainer.devices=1 cannot run here; Lightning says: No supported gpu backend found! "
        "Use trainer=cpu",
        id="gpu-without-gpu",
        marks=NO_GPU,
    ),
    pytest.param(
        [*TINY_SINE, "trainer=ddp", "trainer.devices=1", "trainer.num_nodes=2"],
        "optim=lbfgs cannot run on 2 processes (trainer.devices=1, trainer.num_nodes=2)",
        id="lbfgs-ddp",
    ),
]


FOUND_AS_FIT_STARTS = {"plateau-factor=2"}


def _free_port() -> int:
    """A local port nobody listens on: bound, then closed, so a connection to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _review_folder(folder: Path, positive: bytes, negative_from: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "rt-polarity.pos").write_bytes(positive)
    shutil.copy(negative_from / "rt-polarity.neg", folder / "rt-polarity.neg")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, polarity_dir: Path) -> dict[str, Path]:
    """A real last.ckpt of each task, from the smallest runs that write one."""
    sine = tmp_path_factory.mktemp("sine_run")
    train(compose_config([*TINY_SINE, QUICK_LBFGS, "epochs=1"], sine))
    sentiment = tmp_path_factory.mktemp("sentiment_run")
    train(compose_config([f"data.data_dir={polarity_dir}", *TINY_SENTIMENT], sentiment))
    # The sine checkpoint as if trained with scheduler=cosine over its 1 epoch (only the hyperparameters are read).
    cosine = torch.load(sine / "checkpoints" / "last.ckpt", weights_only=True)
    cosine["hyper_parameters"]["scheduler"] = {
        "_target_": "torch.optim.lr_scheduler.CosineAnnealingLR",
        "_partial_": True,
        "T_max": 1,
        "eta_min": 0.0,
    }
    torch.save(cosine, sine / "cosine.ckpt")
    return {
        "sine": sine / "checkpoints" / "last.ckpt",
        "sentiment": sentiment / "checkpoints" / "last.ckpt",
        "cosine": sine / "cosine.ckpt",
    }


def test_epoch_metrics_are_what_the_tasks_log(checkpoints):
    """EPOCH_METRICS (what scheduler=plateau may watch) against the scalars each task's run wrote to TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for task, module in (("sine", SineForecaster), ("sentiment", SentimentClassifier)):
        events = EventAccumulator(str(next((checkpoints[task].parent.parent / "tensorboard").iterdir())))
        events.Reload()
        # TensorBoard's tags carry the task (training/tensorboard.py): sentiment/val/acc is the module's val/acc.
        logged = {tag.removeprefix(f"{task}/") for tag in events.Tags()["scalars"]}
        logged = {tag for tag in logged if tag.startswith(("train/", "val/"))}
        assert set(module.EPOCH_METRICS) <= logged, task
        assert logged - set(module.EPOCH_METRICS) <= {"train/lr"}, task  # the schedule's own output


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, subprocess.CompletedProcess], Path]:
    """The SCRIPT_ROWS through real `python train.py` processes, started together to save time."""
    folder = tmp_path_factory.mktemp("script_runs")
    running = {
        " ".join(row): subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "train.py"),
                *row,
                f"hydra.run.dir={folder}/{n}",
                f"hydra.sweep.dir={folder}/{n}",
            ],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, row in enumerate(SCRIPT_ROWS)
    }
    results = {}
    for key, process in running.items():
        out, err = process.communicate(timeout=180)
        results[key] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return results, folder


@pytest.mark.parametrize(("overrides", "fragment"), CASES)
def test_bad_input_fails_before_training(overrides, fragment, request, tmp_path, polarity_dir):
    if overrides in SCRIPT_ROWS:
        results, folder = request.getfixturevalue("script_runs")
        done = results[" ".join(overrides)]
        assert done.returncode != 0
        assert fragment in done.stderr, done.stderr[-2000:]
        if overrides[0] in HYDRA_OPTIONS:
            assert not (folder / str(SCRIPT_ROWS.index(overrides))).exists()  # Hydra stopped before any run folder
        return
    ckpts = request.getfixturevalue("checkpoints") if any("_ckpt}" in o for o in overrides) else {}
    port = _free_port()
    _review_folder(tmp_path / "empty_file", b"", polarity_dir)
    _review_folder(tmp_path / "blank_lines", b"\n  \n\t\n\n", polarity_dir)
    _review_folder(tmp_path / "binary", bytes(range(256)) * 4, polarity_dir)
    values = {
        "tmp": tmp_path,
        "data": polarity_dir,
        "port": port,
        "cores": len(os.sched_getaffinity(0)),
        "too_many": len(os.sched_getaffinity(0)) + 1,
        **{f"{task}_ckpt": path for task, path in ckpts.items()},
    }
    overrides = [o.format(**values) for o in overrides]
    if not any(o.startswith(("task=", "data.data_dir=")) for o in overrides) and "task=sine" not in overrides:
        overrides.append(f"data.data_dir={polarity_dir}")
    run = tmp_path / "run"
    with pytest.raises(Exception) as raised:
        train(compose_config(overrides, run))
    message = fragment.format(**values)
    assert message in str(raised.value)
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "failed" and message.splitlines()[0] in record["error"]
    # Before any training: the Trainer never wrote a checkpoint, nor a TensorBoard run where the mistake is found
    # before fit (a scheduler's own checks run when Lightning sets up the optimizers, as fit starts).
    assert not (run / "checkpoints").exists()
    assert not (run / "tensorboard").exists() or request.node.callspec.id in FOUND_AS_FIT_STARTS


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_failed_check_keeps_the_earlier_runs_files(checkpoints, tmp_path):
    """Two refused launches into a finished run's folder leave it as it was: its checkpoints and its metrics.json
    byte for byte (the refusals are in the error raised, and in train.log under Hydra)."""
    run = tmp_path / "run"
    shutil.copytree(checkpoints["sine"].parent.parent, run)
    earlier_record = (run / "metrics.json").read_text()
    saved, names = _digest(run / "checkpoints"), sorted(p.name for p in run.iterdir())
    assert "last.ckpt" in saved and json.loads(earlier_record)["status"] == "completed"

    with pytest.raises(ValueError, match="batch=0 must be a positive whole number"):
        train(compose_config([*TINY_SINE, QUICK_LBFGS, "batch=0"], run))
    with pytest.raises(ValueError, match="already holds checkpoints of an earlier run") as refused:
        train(compose_config([*TINY_SINE, QUICK_LBFGS, "epochs=1"], run))
    assert f"Continue that run with ckpt_path={run / 'checkpoints' / 'last.ckpt'}" in str(refused.value)

    assert _digest(run / "checkpoints") == saved
    assert (run / "metrics.json").read_text() == earlier_record
    assert sorted(p.name for p in run.iterdir()) == names  # no metrics.earlier-*.json either


@pytest.mark.triton
def test_impl_triton_where_it_cannot_run_is_refused_before_training(tmp_path, monkeypatch):
    from rnn_lightning.nn.triton import launch

    monkeypatch.setattr(launch, "interpreted", lambda: False)  # this CPU without Triton's interpreter
    with pytest.raises(ValueError, match="model.impl=triton runs on CUDA tensors, and this input is on cpu"):
        train(compose_config([*TINY_SINE, QUICK_LBFGS, "model.impl=triton"], tmp_path))
    assert not (tmp_path / "checkpoints").exists()
