"""Ensembles of trained sentiment models: averaged probabilities, members read through their own vocabularies."""

import json

import pytest
import torch
from hydra_compose import compose_config
from torchmetrics.functional.classification import binary_f1_score

from rnn_lightning.cli import ensemble
from rnn_lightning.models.sentiment import SentimentClassifier
from rnn_lightning.training.run import train

TINY = ["model=gru", "model.hidden_size=16", "epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2"]


def member(vocab, seed):
    torch.manual_seed(seed)
    settings = {"max_len": 6, "tokenizer_version": "v1", "vocab_size": len(vocab)}
    return SentimentClassifier(vocab_size=len(vocab), vocab=vocab, tokenizer=settings, hidden_size=4).eval()


def test_ensemble_averages_member_probabilities_read_through_each_vocabulary():
    # The two members index the same words differently, as members trained on different seeds do.
    first = member(["<pad>", "<unk>", "good", "bad", "film"], seed=0)
    second = member(["<pad>", "<unk>", "film", "good", "dull"], seed=1)
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
    with pytest.raises(SystemExit, match="no runs with checkpoints"):
        ensemble.find_checkpoints([tmp_path])


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
