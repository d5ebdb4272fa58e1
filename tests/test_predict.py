"""predict given a run folder: its best checkpoint (or last.ckpt), saying which; a folder without one says what to
give. A checkpoint is read once."""

from __future__ import annotations

import pytest
import torch
from saved_models import save_checkpoint, tiny_classifier

from rnn_lightning.cli import predict
from rnn_lightning.errors import ConfigError
from rnn_lightning.models.checkpoint import read_checkpoint


def test_a_run_folder_is_read_through_its_best_checkpoint(tmp_path, capsys):
    best = save_checkpoint(tmp_path / "run" / "checkpoints" / "best-epoch003.ckpt", tiny_classifier(seed=1))
    save_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", tiny_classifier(seed=2))
    predict.main([f"ckpt_path={tmp_path / 'run'}", "text=a charming film"])
    out, err = capsys.readouterr()
    assert f"note: using {best}, its best checkpoint, the one its test numbers come from" in err
    label, probability = predict.classify(tiny_classifier(seed=1), ["a charming film"])[0]
    assert out == f"{label}\t{probability:.3f}\ta charming film\n"


def test_a_run_folder_without_a_best_checkpoint_is_read_through_its_last(tmp_path, capsys):
    last = save_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", tiny_classifier(seed=2))
    model = predict.load_classifier(tmp_path / "run" / "checkpoints")
    assert f"note: using {last}, its last checkpoint: it has no best one yet" in capsys.readouterr().err
    assert all((p == q).all() for p, q in zip(model.parameters(), tiny_classifier(seed=2).parameters()))


def test_a_folder_without_checkpoints_says_what_to_give(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(SystemExit) as refused:
        predict.main([f"ckpt_path={tmp_path / 'run'}", "text=a fine film"])
    message = str(refused.value)
    assert f"ckpt_path={tmp_path / 'run'} is a folder, not a checkpoint file. It holds no .ckpt file" in message
    assert "does not exist" not in message


def test_the_reader_given_a_folder_names_the_checkpoints_in_it(tmp_path):
    last = save_checkpoint(tmp_path / "checkpoints" / "last.ckpt", tiny_classifier(seed=2))
    with pytest.raises(ConfigError) as refused:
        read_checkpoint(tmp_path)
    assert str(refused.value) == (
        f"ckpt_path={tmp_path} is a folder, not a checkpoint file. Give one of its checkpoints: {last} "
        "(last.ckpt: where the run stopped; best-*.ckpt: its best validation score)."
    )


def test_a_checkpoint_is_read_once_into_the_model_it_saved(tmp_path, monkeypatch):
    saved = tiny_classifier(seed=3)
    path = save_checkpoint(tmp_path / "best-epoch001.ckpt", saved)
    reads = []
    load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: reads.append(args[0]) or load(*args, **kwargs))
    model, checkpoint = predict.read_classifier(path)
    assert reads == [path] and checkpoint.path == path
    assert model.vocab == saved.vocab and not model.training
    assert all((p == q).all() for p, q in zip(model.state_dict().values(), saved.state_dict().values()))
