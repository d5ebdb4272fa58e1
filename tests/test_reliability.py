"""What a run records is what happened, a fault loses nothing saved and hides nothing, and a user error is one message.

Real ``python train.py`` processes only where Hydra itself is the subject (its job folder, its error printing); they
start together in one fixture. Everything else runs train() in this process on tiny configs. The full disk is a real
one, a 1 MiB tmpfs (skipped where it cannot be mounted), and also a monkeypatched ``open`` that raises ENOSPC after a
few bytes (everywhere).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra_compose import TINY_SINE, compose_config, with_callbacks
from omegaconf import OmegaConf

import rnn_lightning.training.callbacks.checkpoint_io as checkpoint_io
import rnn_lightning.training.record as record_module
from rnn_lightning.cli import predict
from rnn_lightning.errors import ConfigError, UserError
from rnn_lightning.models.sentiment import SentimentClassifier
from rnn_lightning.paths import CONF_DIR
from rnn_lightning.train import task as train_task
from rnn_lightning.training.callbacks.guard import DivergedError
from rnn_lightning.training.record import RunRecord
from rnn_lightning.training.run import train
from rnn_lightning.training.suggest import check_command_line
from rnn_lightning.training.sweep_exit import ExitNonZeroOnFailedJobs

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "model.hidden_size=4",
    "module.embedding_dim=8",
    "module.embeddings=null",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
]


def _sentiment(polarity_dir: Path, *overrides: str) -> list[str]:
    return [f"data.data_dir={polarity_dir}", *TINY, *overrides]


def _record(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _digest(folder: Path) -> dict[str, str]:
    files = (p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory: pytest.TempPathFactory, polarity_dir: Path) -> Path:
    """A finished 2-epoch sentiment run (best and last checkpoints), with the .hydra/ files train.py would write."""
    folder = tmp_path_factory.mktemp("sentiment") / "run"
    train(compose_config(_sentiment(polarity_dir, "epochs=2"), folder))
    (folder / ".hydra").mkdir()
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (folder / ".hydra" / name).write_text(f"# the {name} of the run that wrote these checkpoints\n")
    return folder


# Divergence -----------------------------------------------------------------------------------------------------


def test_a_diverging_finite_loss_fails_the_run_and_keeps_the_last_good_checkpoint(polarity_dir, tmp_path):
    """Epoch 1 at lr=0.001, then the schedule multiplies it by 1e9: epoch 2 trains at lr=1e6 and its loss explodes."""
    schedule = ["scheduler=step", "scheduler.step_size=1", "scheduler.gamma=1e9"]
    with pytest.raises(DivergedError) as raised:
        train(compose_config(_sentiment(polarity_dir, "epochs=3", *schedule), tmp_path))
    message = str(raised.value)
    assert "in epoch 2/3 (global step 4)" in message
    assert "the run has diverged at learning rate 1e+06 (optim.lr=0.001, changed by the schedule)" in message
    assert "times the untrained model's 0.6" in message  # about ln 2, the chance level of two classes
    record = _record(tmp_path)
    assert record["status"] == "failed" and record["error"].startswith("DivergedError: train/loss is ")
    assert record["epochs"] == 1
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best-epoch000.ckpt", "last.ckpt"]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0


# A resumed run, a killed run ------------------------------------------------------------------------------------


def test_a_checkpoint_holds_the_running_metrics_and_an_older_one_without_them_still_resumes(
    sentiment_run, polarity_dir, tmp_path
):
    saved = torch.load(sentiment_run / "checkpoints" / "last.ckpt", weights_only=True)
    best = float(saved["state_dict"]["val_acc_best.max_value"])
    assert best == pytest.approx(_record(sentiment_run)["best_val"])  # val/acc_best of the run, restored on resume
    assert {"train_loss.total", "train_loss.weight", "train_acc.correct"} <= saved["state_dict"].keys()

    run = tmp_path / "run"
    shutil.copytree(sentiment_run / "checkpoints", run / "checkpoints")
    older = {k: v for k, v in saved["state_dict"].items() if not k.startswith(("train_loss.", "train_acc.", "val_acc"))}
    torch.save({**saved, "state_dict": older}, run / "checkpoints" / "last.ckpt")
    train(compose_config(_sentiment(polarity_dir, "epochs=3", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"), run))
    assert _record(run)["status"] == "completed" and _record(run)["epochs"] == 3


# Full disk ------------------------------------------------------------------------------------------------------


def _open_with_room(room: list[int]):
    """``open`` on a disk with ``room[0]`` bytes left: writes past it raise ENOSPC, as a full disk does."""

    class Full:
        def __init__(self, file):
            self.file = file

        def write(self, data):
            if len(data) > room[0]:
                self.file.write(bytes(data[: room[0]]))
                room[0] = 0
                raise OSError(errno.ENOSPC, "No space left on device")
            room[0] -= len(data)
            return self.file.write(data)

        def __getattr__(self, name):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    return lambda path, mode="r", *args, **kwargs: Full(open(path, mode, *args, **kwargs))


def test_a_full_disk_leaves_no_temporary_file_and_reports_the_first_error(tmp_path, monkeypatch):
    """Simulated by monkeypatching each module's ``open``: torch turns the failed write into ``RuntimeError:
    unexpected pos``; the save removes its partial file and raises the ENOSPC."""
    last = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint_io.AtomicCheckpointIO().save_checkpoint({"epoch": 1}, last)
    monkeypatch.setattr(record_module, "open", _open_with_room([200]), raising=False)  # the one writer
    with pytest.raises(OSError) as raised:
        checkpoint_io.AtomicCheckpointIO().save_checkpoint({"epoch": 2, "w": torch.ones(1000)}, last)
    assert raised.value.errno == errno.ENOSPC and f"while writing {last}; the checkpoints written before" in str(
        raised.value
    )
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    assert torch.load(last, weights_only=True) == {"epoch": 1}
    monkeypatch.undo()  # the disk has room again for the record's first write

    record = RunRecord(tmp_path / "metrics.json", task="sine")
    monkeypatch.setattr(record_module, "open", _open_with_room([10]), raising=False)
    with pytest.raises(OSError):
        record.update(epochs=1)
    assert _record(tmp_path)["status"] == "running" and not list(tmp_path.glob("*.tmp"))
    monkeypatch.undo()
    record.finish("failed", raised.value)  # room again: the last record says what happened
    assert _record(tmp_path)["error"].startswith("WriteFailedError: [Errno 28] No space left on device while writing")
    assert isinstance(raised.value, UserError)  # one message, as any user error (the trace goes to train.log)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "metrics.json"]


class FillTheDisk(L.Callback):
    """Fills the disk to the last byte after epoch 2's validation: its checkpoints cannot be written."""

    def __init__(self, disk: Path) -> None:
        self.disk = disk

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            with open(self.disk / "filler", "wb", buffering=0) as filler:  # unbuffered: nothing left to flush
                try:
                    while True:
                        filler.write(bytes(4096))
                except OSError:
                    pass


@pytest.fixture
def small_disk(tmp_path: Path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_real_full_disk_mid_run_is_recorded_as_failed_with_the_first_error(small_disk, monkeypatch):
    run = small_disk / "run"
    log_file = logging.FileHandler(small_disk / "train.log")  # what Hydra's job logging adds to the root logger
    logging.getLogger().addHandler(log_file)
    try:
        with pytest.raises(OSError) as raised:
            filled = with_callbacks(fill=FillTheDisk(small_disk))
            train(compose_config([*TINY_SINE, "optim=adam", "batch=49", "epochs=3", *filled], run))
    finally:
        logging.getLogger().removeHandler(log_file)
        with contextlib.suppress(OSError):  # its buffer cannot reach a full disk either
            log_file.close()
    assert raised.value.errno == errno.ENOSPC and f"while writing {run / 'checkpoints'}/" in str(raised.value)
    record = _record(run)
    assert record["status"] == "failed" and record["error"].startswith("WriteFailedError: [Errno 28] No space left on")
    assert record["epochs"] == 1
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0  # epoch 1's, whole
    leftovers = [p.name for p in run.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    # The disk stays full to the last byte: the record above, written over its own blocks, is the one file that can
    # still say what happened (train.log's appends need blocks the disk no longer has).


# Hydra's run folder and error printing: real train.py processes ---------------------------------------------------


def _without_root_powers() -> list[str]:
    """A command prefix under which permission bits hold: root may write anywhere, unless it drops its capability
    to override them (util-linux's setpriv)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: no folder is unwritable here")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.fixture(scope="module")
def train_py(sentiment_run: Path, polarity_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two train.py launches, started together: a resume refused for another model size, and a run into a folder it
    may not write."""
    base = tmp_path_factory.mktemp("train_py")
    shutil.copytree(sentiment_run, base / "refused")
    (base / "refused" / "train.log").write_text("[earlier] the earlier run's log\n")
    before = _digest(base / "refused")
    locked = Path(tempfile.mkdtemp())
    locked.chmod(0o755)
    (locked / "run").mkdir()
    (locked / "run").chmod(0o555)
    other_size = [o for o in _sentiment(polarity_dir, "epochs=3") if not o.startswith("model.hidden_size=")]
    refused = [*other_size, "model.hidden_size=5"]

    def start(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
        command = [*prefix, sys.executable, str(ROOT / "train.py"), *args]
        return subprocess.Popen(command, cwd=locked, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    last = base / "refused" / "checkpoints" / "last.ckpt"
    processes = {
        "refused": start(*refused, f"ckpt_path={last}", f"hydra.run.dir={base / 'refused'}"),
        "locked": start("epochs=1", f"hydra.run.dir={locked / 'run'}", prefix=tuple(_without_root_powers())),
    }
    done = {name: (*p.communicate(timeout=300), p.returncode) for name, p in processes.items()}
    yield {"base": base, "locked": locked / "run", "before": before, "done": done}
    (locked / "run").chmod(0o755)
    shutil.rmtree(locked)


def test_a_refused_resume_is_one_message_and_leaves_the_run_folder_as_it_was(train_py):
    _, stderr, code = train_py["done"]["refused"]
    folder = train_py["base"] / "refused"
    assert code == 1
    assert "holds a model of another shape than this run's (model.hidden_size=5)" in stderr
    assert "Traceback" not in stderr and "MissingMandatoryValue" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[0].startswith("Error executing job with overrides: [") and lines[1].startswith("ckpt_path=")
    assert lines[2:] == ["Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."]
    logged = (folder / "train.log").read_text()
    assert logged.startswith("[earlier] the earlier run's log\n")
    assert "the run failed: ConfigError: ckpt_path=" in logged and "Traceback" in logged
    # Hydra records each launch's config in .hydra/ before the run starts; the run's own files stay as they were.
    launch = (".hydra", "train.log", ".lock")  # what each launch writes: its config, its log, its process id
    ours = {name: digest for name, digest in _digest(folder).items() if not name.startswith(launch)}
    before = {name: d for name, d in train_py["before"].items() if not name.startswith(launch)}
    assert ours == before  # metrics.json, the checkpoints, TensorBoard: byte for byte, and no metrics.earlier-1.json


def test_a_user_error_reaches_hydra_as_its_message_raised_from_the_original(polarity_dir, tmp_path, monkeypatch):
    """Hydra prints a CompactHydraException's message alone; HYDRA_FULL_ERROR=1 re-raises it, and Python then prints
    the chain, the original ConfigError's traceback first. A crash of our own code reaches Hydra unchanged."""
    task = train_task.__wrapped__  # the task function, without @hydra.main
    with pytest.raises(CompactHydraException) as raised:
        task(compose_config(_sentiment(polarity_dir, "batch=0"), tmp_path / "user"))
    assert str(raised.value).startswith("batch=0 must be a positive whole number")
    assert isinstance(raised.value.__cause__, ConfigError) and raised.value.__cause__.__traceback__ is not None

    def crash(self, batch):
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(SentimentClassifier, "training_loss", crash)
    with pytest.raises(RuntimeError, match="a bug of ours"):  # not a user error: Hydra shows its traceback
        task(compose_config(_sentiment(polarity_dir), tmp_path / "crash"))


def test_an_unwritable_run_folder_is_one_line_that_names_it(train_py):
    _, stderr, code = train_py["done"]["locked"]
    folder = train_py["locked"]
    assert code == 1, stderr
    assert stderr.strip() == (
        f"cannot write the run's outputs into {folder} (Permission denied). Make {folder} writable "
        f"(chmod u+w {folder}) or choose another folder with hydra.run.dir=<folder>."
    )


def test_a_failed_single_run_ends_without_the_sweep_callbacks_error():
    failed = JobReturn(status=JobStatus.FAILED)
    callback = ExitNonZeroOnFailedJobs()
    callback.on_job_end(OmegaConf.create({"hydra": {"job": {"num": "???"}}}), failed)  # a single run: no job number
    callback.on_job_end(OmegaConf.create({"hydra": {"job": {"num": 3}}}), failed)
    assert callback.failed == ["3"]


# User errors ----------------------------------------------------------------------------------------------------


def test_a_user_error_is_a_type_whatever_raised_it(polarity_dir, tmp_path):
    """A constructor's own ValueError (the data module's range check) becomes a ConfigError at the build; a bug of
    ours, the same ValueError raised anywhere else, stays what it is and keeps its traceback."""
    with pytest.raises(ConfigError) as data_error:
        train(compose_config(_sentiment(polarity_dir, "data.max_len=0"), tmp_path / "a"))
    assert "data.max_len must be an integer >= 1" in str(data_error.value)
    assert isinstance(data_error.value, UserError)
    assert not issubclass(ValueError, UserError) and not issubclass(DivergedError, ConfigError)


# Mistyped keys --------------------------------------------------------------------------------------------------


def test_a_mistyped_key_names_the_key_that_was_meant(monkeypatch):
    """Through train.py's own entry point, in this process: it stops before Hydra composes."""
    typed = ["epoch=3", "model.hiden_size=64", "optim.learning_rate=0.1", "trainer.max_epoch=2"]
    monkeypatch.setattr(sys, "argv", ["train.py", *typed])
    with pytest.raises(SystemExit) as raised:
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    lists = "(python train.py --cfg job lists every setting)"
    assert str(raised.value).splitlines() == [
        f"epoch=3: there is no setting epoch; did you mean epochs=3? {lists}",
        f"model.hiden_size=64: there is no setting model.hiden_size; did you mean model.hidden_size=64? {lists}",
        f"optim.learning_rate=0.1: there is no setting optim.learning_rate; did you mean optim.lr=0.1? {lists} To "
        "pass optim.learning_rate to the class optim is handed to, add it: +optim.learning_rate=0.1",
        f"trainer.max_epoch=2: there is no setting trainer.max_epoch; did you mean trainer.max_epochs=2? {lists} To "
        "pass trainer.max_epoch to the class trainer is handed to, add it: +trainer.max_epoch=2",
    ]


def test_a_plus_key_that_nothing_reads_is_refused_and_one_a_constructor_takes_is_not(tmp_path):
    """Under the schema's own settings every key is known, so the command line is refused before Hydra starts; under
    a node handed to a class, the preflight reads the class's signature."""
    lists = "(python train.py --cfg job lists every setting)"
    with pytest.raises(SystemExit) as raised:
        check_command_line(["-m", "+epoch=3", "+model.hiden_size=8", "optim=adam,sgdm"], CONF_DIR)
    assert str(raised.value).splitlines() == [
        f"+epoch=3: nothing reads epoch, so the run would ignore it; did you mean epochs=3? {lists}",
        f"+model.hiden_size=8: nothing reads model.hiden_size, so the run would ignore it; did you mean "
        f"model.hidden_size=8? {lists}",
    ]
    fine = ["+data.url=http://x/y.tar.gz", "+trainer.fast_dev_run=2", "+optim.amsgrad=true", "+module._convert_=all"]
    check_command_line([*fine, "optim.amsgrad=true"], CONF_DIR)  # for the preflight, or Hydra's own message: no exit
    refused = {
        "+optim.learning_rate=0.1": "+optim.learning_rate=0.1: torch.optim.Adam takes no argument learning_rate, so "
        f"the run would ignore it; did you mean optim.lr=0.1? {lists}",
        "+monitor.patience=3": "+monitor.patience=3: nothing reads monitor.patience, so the run would ignore it; "
        "python train.py --cfg job lists every setting.",
        "+scheduler.gamma=0.5": "+scheduler.gamma=0.5: scheduler is none: there is no scheduler to take gamma (choose "
        "one first, e.g. scheduler=step), so the run would ignore it; python train.py --cfg job lists every setting.",
        "+module.readuot=max": "+module.readuot=max: rnn_lightning.models.sentiment.SentimentClassifier takes no "
        f"argument readuot, so the run would ignore it; did you mean module.readout=max? {lists}",
    }
    for override, message in refused.items():
        with pytest.raises(ConfigError) as raised:
            train(compose_config([override, "data.data_dir=/nowhere", "data.download=false"], tmp_path / override))
        assert str(raised.value) == message
    for accepted in fine[:3]:  # an argument of its class: read, and the run goes on to its data
        with pytest.raises(UserError, match="not found in /nowhere"):
            train(compose_config([accepted, "data.data_dir=/nowhere", "data.download=false"], tmp_path / accepted))


def test_a_plus_key_is_refused_before_the_data_is_read(tmp_path):
    absent = [f"data.data_dir={tmp_path}/absent", "data.download=false"]
    cfg = compose_config(["+optim.learning_rate=0.1", *absent], tmp_path)
    with pytest.raises(ConfigError, match=r"^\+optim.learning_rate=0.1: torch.optim.Adam takes no argument"):
        train(cfg)  # not the data module's FileNotFoundError: nothing was read


# predict --------------------------------------------------------------------------------------------------------


def test_predict_names_an_intact_checkpoint_for_a_truncated_one(sentiment_run, tmp_path):
    folder = tmp_path / "checkpoints"
    shutil.copytree(sentiment_run / "checkpoints", folder)
    whole = (folder / "last.ckpt").read_bytes()
    (folder / "truncated.ckpt").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.ckpt").write_bytes(b"")
    with pytest.raises(SystemExit) as raised:
        predict.main([f"ckpt_path={folder / 'truncated.ckpt'}", "text=a fine film"])
    message = str(raised.value)
    assert message.startswith(f"ckpt_path={folder / 'truncated.ckpt'} cannot be read as a checkpoint (")
    best = next(folder.glob("best-*.ckpt"))
    assert message.endswith(f"Intact checkpoints of that run: {best}, {folder / 'last.ckpt'}.")


def test_predict_prints_one_row_per_text_and_says_what_it_did_not_read(sentiment_run, capsys):
    texts = ["a fine\nfilm", "tab\there \\ there", " ".join(["good"] * 60), "zzqxj qqzxv", ""]
    predict.main([f"ckpt_path={sentiment_run / 'checkpoints' / 'last.ckpt'}", *(f"text={t}" for t in texts)])
    out, err = capsys.readouterr()
    rows = [line.split("\t") for line in out.splitlines()]
    assert [row[2] for row in rows] == ["a fine\\nfilm", "tab\\there \\\\ there", texts[2], "zzqxj qqzxv", ""]
    assert all(len(row) == 3 and row[0] in ("negative", "positive") for row in rows)
    assert err.splitlines() == [
        "note: text 3: cut to its first 51 of 60 tokens (the model's max_len)",
        "note: text 4 has no word the model knows (every word is <unk>): its label is a guess that says nothing "
        "about the text",
        "note: text 5 has no words: its label is a guess that says nothing about the text",
    ]
