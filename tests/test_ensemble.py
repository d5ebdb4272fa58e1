"""Ensembles of trained sentiment models: averaged probabilities, members read through their own vocabularies."""

import json

import pytest
import torch
from hydra_compose import compose_config
from saved_models import save_checkpoint, tiny_classifier
from torchmetrics.functional.classification import binary_f1_score

from rnn_lightning.cli import ensemble
from rnn_lightning.training.run import train

TINY = ["model=gru", "model.hidden_size=16", "epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2"]


def test_ensemble_averages_member_probabilities_read_through_each_vocabulary():
    # The two members index the same words differently, as members trained on different seeds do.
    first = tiny_classifier(seed=0, vocab=["<pad>", "<unk>", "good", "bad", "film"])
    second = tiny_classifier(seed=1, vocab=["<pad>", "<unk>", "film", "good", "dull"])
    texts = ["good film", "bad film", "dull", "good good bad"]
    labels = torch.tensor([1, 0, 0, 1])
    result = ensemble.evaluate([first, second], texts, labels)
    p = torch.stack([ensemble.probabilities(m, texts) for m in (first, second)])  # (2, 4)
    tokens = torch.tensor([[3, 2, 0], [1, 2, 0]])  # "good film", "bad film" in the second vocabulary
    torch.testing.assert_close(p[1, :2], second(tokens, torch.tensor([2, 2])).softmax(dim=1)[:, 1])
    expected = ((p.mean(dim=0) > 0.5).long() == labels).float().mean()
    assert result["ensemble_acc"] == pytest.approx(float(expected))
    assert result["member_acc"] == [pytest.approx(float(((q > 0.5).long() == labels).float().mean())) for q in p]


def test_f1_is_the_positive_class_f1():
    positive = torch.tensor([0.9, 0.2, 0.7, 0.4, 0.6, 0.1])
    labels = torch.tensor([1, 1, 0, 0, 1, 0])
    accuracy, f1 = ensemble.accuracy_and_f1(positive, labels)
    assert accuracy == pytest.approx(4 / 6)
    assert f1 == pytest.approx(float(binary_f1_score(positive, labels)))


def test_members_tested_on_other_reviews_are_refused(tmp_path):
    same = {"train_per_class": 4000, "shuffle_before_split": False, "seed": 1}
    ensemble.check_same_test_split([same, {**same, "seed": 2}], [tmp_path / "a", tmp_path / "b"])  # seed: val only
    shuffled = {**same, "shuffle_before_split": True}
    with pytest.raises(SystemExit, match="tested on another split"):
        ensemble.check_same_test_split([shuffled, {**shuffled, "seed": 2}], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(SystemExit, match="no completed runs with checkpoints"):
        ensemble.find_checkpoints([tmp_path])


def job(sweep, name, status=None, error=None, seed=0):
    """A sweep's job folder with a best checkpoint and, unless ``status`` is None, a metrics.json saying it."""
    folder = sweep / name
    (folder / ".hydra").mkdir(parents=True)
    save_checkpoint(folder / "checkpoints" / "best-epoch001.ckpt", tiny_classifier(seed))
    if status is not None:
        (folder / "metrics.json").write_text(json.dumps({"status": status, "error": error}))
    return folder


def unfinished_sweep(sweep):
    """Two completed jobs and one of each way a job can be unfinished."""
    job(sweep, "0", "completed", seed=1)
    job(sweep, "1", "running")
    job(sweep, "2", "interrupted", "Interrupted: SIGTERM; last.ckpt saved")
    job(sweep, "3", "failed", "ConfigError: optim.lr=-1 must be positive")
    job(sweep, "4")
    job(sweep, "5", "completed", seed=2)
    return sweep


LEFT_OUT = {
    "1": "running: still training, or stopped without recording its end (killed)",
    "2": "interrupted: stopped before the end (its checkpoints/last.ckpt resumes it)",
    "3": "failed: ConfigError: optim.lr=-1 must be positive",
    "4": "missing: no record (no metrics.json): it crashed before writing one, or has not started",
}


def test_only_completed_jobs_are_members_and_the_others_are_named_with_why(tmp_path):
    sweep = unfinished_sweep(tmp_path / "sweep")
    checkpoints, left_out = ensemble.find_checkpoints([sweep])
    assert checkpoints == [sweep / job / "checkpoints" / "best-epoch001.ckpt" for job in ("0", "5")]
    assert left_out == {str(sweep / job): reason for job, reason in LEFT_OUT.items()}


def test_a_sweep_with_no_completed_job_says_why_of_each(tmp_path):
    sweep = tmp_path / "sweep"
    job(sweep, "0", "running")
    job(sweep, "1", "failed", "OSError: [Errno 28] No space left on device")
    with pytest.raises(SystemExit) as refused:
        ensemble.find_checkpoints([sweep])
    assert str(refused.value) == (
        f"no completed runs with checkpoints under {sweep}\n  {sweep / '0'}: {LEFT_OUT['1']}\n"
        f"  {sweep / '1'}: failed: OSError: [Errno 28] No space left on device"
    )


def test_an_ensemble_of_a_running_sweep_reads_each_members_checkpoint_once(polarity_dir, tmp_path, monkeypatch, capsys):
    sweep = unfinished_sweep(tmp_path / "sweep")
    reads, load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: reads.append(args[0]) or load(*args, **kwargs))
    result = ensemble.main([str(sweep), "--data-dir", str(polarity_dir)])
    members = [sweep / job / "checkpoints" / "best-epoch001.ckpt" for job in ("0", "5")]
    assert reads == members
    assert result["checkpoints"] == [str(p) for p in members] and result["test_reviews"] == 2662
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [f"left out  {sweep / job}  {reason}" for job, reason in LEFT_OUT.items()]
    assert out[4].endswith(str(members[0])) and out[-1].startswith("2 members: ")


def test_ensemble_of_a_seed_sweep_on_the_real_reviews(polarity_dir, tmp_path):
    sweep = tmp_path / "sweep"
    for job, seed in enumerate((1, 2)):
        train(compose_config([f"data.data_dir={polarity_dir}", f"seed={seed}", *TINY], sweep / str(job)))
    result = ensemble.main([str(sweep), "--data-dir", str(polarity_dir), "--json"])
    assert result["members"] == 2 and len(result["checkpoints"]) == 2
    for job, accuracy in enumerate(result["member_acc"]):
        record = json.loads((sweep / str(job) / "metrics.json").read_text())
        assert accuracy == pytest.approx(record["test"]["test/acc"], abs=1e-6)  # the run's own test number
    assert 0.0 <= result["ensemble_acc"] <= 1.0
