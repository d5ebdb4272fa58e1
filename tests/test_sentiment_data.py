"""Tests for SentimentDataModule on the real rt-polarity files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra_compose import compose_config
from omegaconf import read_write

from rnn_lightning.data.polarity import read_reviews
from rnn_lightning.data.sentiment import SentimentDataModule
from rnn_lightning.data.tokenizer import TOKENIZER_VERSION, tokenize
from rnn_lightning.data.vocab import Vocabulary
from rnn_lightning.errors import ConfigError, DataError
from rnn_lightning.paths import user_path


def _ready(polarity_dir: Path, **kwargs: object) -> SentimentDataModule:
    dm = SentimentDataModule(data_dir=str(polarity_dir), download=False, **kwargs)  # type: ignore[arg-type]
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def dm(polarity_dir: Path) -> SentimentDataModule:
    return _ready(polarity_dir)


@pytest.fixture(scope="module")
def files(polarity_dir: Path) -> tuple[list[str], list[str]]:
    return read_reviews(polarity_dir)


def test_split_sizes_and_labels(dm: SentimentDataModule) -> None:
    assert dm.train_set is not None and dm.val_set is not None and dm.test_set is not None
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (7200, 800, 2662)
    for dataset, per_class in ((dm.train_set, 3600), (dm.val_set, 400), (dm.test_set, 1331)):
        labels = dataset.tensors[2]
        assert int(labels.sum()) == per_class  # stratified: as many positives as negatives
        assert set(labels.tolist()) == {0, 1}


def test_test_set_is_the_tail_of_each_file(dm: SentimentDataModule, files: tuple[list[str], list[str]]) -> None:
    pos, neg = files
    assert dm.test_set is not None
    labels = dm.test_set.tensors[2].tolist()
    assert sorted(t for t, y in zip(dm.test_texts, labels) if y == 1) == sorted(pos[4000:])
    assert sorted(t for t, y in zip(dm.test_texts, labels) if y == 0) == sorted(neg[4000:])


@pytest.mark.parametrize("split", ["val", "test"])
def test_every_prefix_of_validation_and_test_is_balanced(dm: SentimentDataModule, split: str) -> None:
    """What trainer.limit_val_batches or limit_test_batches reads must hold both classes."""
    labels = getattr(dm, f"{split}_set").tensors[2]
    positives = labels.cumsum(0)  # (N,)
    seen = torch.arange(1, len(labels) + 1)
    assert ((2 * positives - seen).abs() <= 1).all()
    assert labels[:64].tolist() != sorted(labels[:64].tolist())  # alternating, not sorted


def test_the_test_order_is_the_same_for_every_seed(polarity_dir: Path) -> None:
    orders = []
    for seed in (1, 2):
        data = SentimentDataModule(data_dir=str(polarity_dir), seed=seed, download=False)
        data.setup("fit")
        orders.append((data.test_texts, data.val_texts))
    assert orders[0][0] == orders[1][0]
    assert orders[0][1] != orders[1][1]  # validation is drawn with the seed


def test_validation_is_carved_from_training_only(dm: SentimentDataModule, files: tuple[list[str], list[str]]) -> None:
    pos, neg = files
    assert sorted(dm.train_texts + dm.val_texts) == sorted(pos[:4000] + neg[:4000])
    assert not set(dm.val_texts) & set(dm.train_texts)
    assert not set(dm.val_texts) & set(dm.test_texts)


def test_vocabulary_comes_from_training_reviews_only(dm: SentimentDataModule) -> None:
    assert dm.vocab == Vocabulary.build(tokenize(t) for t in dm.train_texts)
    train_words = {w for t in dm.train_texts for w in tokenize(t)}
    test_only = sorted({w for t in dm.test_texts for w in tokenize(t)} - train_words)
    val_only = sorted({w for t in dm.val_texts for w in tokenize(t)} - train_words)
    assert test_only and val_only
    assert dm.vocab.encode(test_only + val_only) == [Vocabulary.UNK] * (len(test_only) + len(val_only))
    # And the encoded test tensor really holds UNK where such a word stands.
    row, position = next(
        (i, tokenize(t).index(w))
        for i, t in enumerate(dm.test_texts)
        for w in test_only
        if w in tokenize(t) and tokenize(t).index(w) < dm.max_len
    )
    assert dm.test_set is not None
    assert int(dm.test_set.tensors[0][row, position]) == Vocabulary.UNK


def test_padding_truncation_and_lengths(dm: SentimentDataModule) -> None:
    assert dm.test_set is not None and dm.vocab is not None
    tokens, lengths, _ = dm.test_set.tensors  # (N, T), (N,)
    assert tokens.shape == (2662, 51)
    assert int(lengths.min()) >= 1 and int(lengths.max()) == 51
    positions = torch.arange(51)  # (T,)
    padding = positions[None, :] >= lengths[:, None]  # (N, T)
    assert bool((tokens[padding] == Vocabulary.PAD).all())
    assert bool((tokens[~padding] != Vocabulary.PAD).all())
    for row in [*range(50), *range(2612, 2662)]:
        ids = dm.vocab.encode(tokenize(dm.test_texts[row]))
        assert int(lengths[row]) == min(len(ids), 51)
        assert tokens[row, : lengths[row]].tolist() == ids[:51]


def test_long_review_is_cut_at_max_len(polarity_dir: Path, dm: SentimentDataModule) -> None:
    # Training neg line 310 has 56 whitespace tokens, more with punctuation split.
    text = dm.train_texts[dm.train_texts.index(read_reviews(polarity_dir)[1][309])]
    assert len(tokenize(text)) > 51
    row = dm.train_texts.index(text)
    assert dm.train_set is not None and dm.vocab is not None
    assert int(dm.train_set.tensors[1][row]) == 51
    assert dm.train_set.tensors[0][row].tolist() == dm.vocab.encode(tokenize(text))[:51]


def test_batches(dm: SentimentDataModule) -> None:
    for loader, n in (
        (dm.train_dataloader(), 7200),
        (dm.val_dataloader(), 800),
        (dm.test_dataloader(), 2662),
    ):
        batch = next(iter(loader))
        assert isinstance(batch, tuple) and len(batch) == 3
        tokens, lengths, labels = batch
        assert tokens.shape == (64, 51) and lengths.shape == (64,) and labels.shape == (64,)
        assert tokens.dtype == lengths.dtype == labels.dtype == torch.long
        assert len(loader) == -(-n // 64)
    # Validation and test batches come in a fixed order; training batches are shuffled.
    first_val = next(iter(dm.val_dataloader()))[0]
    assert torch.equal(first_val, next(iter(dm.val_dataloader()))[0])
    first_train_labels = next(iter(dm.train_dataloader()))[2]
    assert 0 < int(first_train_labels.sum()) < 64


def test_same_seed_same_data_other_seed_other_split(polarity_dir: Path) -> None:
    a = _ready(polarity_dir, seed=3, shuffle_before_split=True)
    b = _ready(polarity_dir, seed=3, shuffle_before_split=True)
    c = _ready(polarity_dir, seed=4, shuffle_before_split=True)
    assert a.test_texts == b.test_texts and a.val_texts == b.val_texts
    assert a.vocab == b.vocab
    for x, y in zip(next(iter(a.train_dataloader())), next(iter(b.train_dataloader())), strict=True):
        assert torch.equal(x, y)
    assert set(a.test_texts) != set(c.test_texts)
    assert set(a.val_texts) != set(c.val_texts)
    # Shuffled before the split, the test set is no longer the tail of each file, but still 1331 + 1331.
    pos, neg = read_reviews(polarity_dir)
    assert a.test_texts != pos[4000:] + neg[4000:]
    assert sum(t in set(pos) for t in a.test_texts) == 1331


def test_tokenizer_settings(dm: SentimentDataModule) -> None:
    assert dm.vocab is not None
    assert dm.tokenizer_settings() == {
        "max_len": 51,
        "tokenizer_version": TOKENIZER_VERSION,
        "vocab_size": len(dm.vocab),
    }
    assert 15000 < len(dm.vocab) < 18000


def test_before_setup_clear_errors(tmp_path: Path) -> None:
    dm = SentimentDataModule(data_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match=r"call setup\(\) before tokenizer_settings"):
        dm.tokenizer_settings()
    with pytest.raises(RuntimeError, match=r"call setup\(\) before asking for a dataloader"):
        dm.train_dataloader()


def test_relative_data_dir_is_resolved_against_where_the_command_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # outside Hydra (an earlier test may have composed one)
    assert SentimentDataModule(data_dir="data/rt-polarity").data_dir == tmp_path / "data" / "rt-polarity"
    assert SentimentDataModule(data_dir=str(tmp_path / "x")).data_dir == tmp_path / "x"
    cfg = compose_config([], tmp_path / "run")
    with read_write(cfg.hydra):
        cfg.hydra.runtime.cwd = str(tmp_path / "started")  # where a launch started, whatever folder its job runs in
    HydraConfig.instance().set_config(cfg)
    assert user_path("data/rt-polarity") == tmp_path / "started" / "data" / "rt-polarity"


def test_missing_files_without_download(tmp_path: Path) -> None:
    dm = SentimentDataModule(data_dir=str(tmp_path / "empty"), download=False)
    with pytest.raises(FileNotFoundError, match="data.download=false"):
        dm.prepare_data()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_len": 0}, "data.max_len must be an integer >= 1, got 0"),
        ({"batch_size": -4}, "data.batch_size must be an integer >= 1, got -4"),
        ({"min_freq": 0}, "data.min_freq must be an integer >= 1"),
        ({"num_workers": -1}, "data.num_workers must be an integer >= 0"),
        ({"val_size": 0}, "data.val_size must be an integer >= 2"),
        ({"val_size": 7999}, "use val_size <= 7998"),
        ({"data_dir": " "}, "data.data_dir is empty"),
        ({"max_len": 5.5}, "data.max_len must be an integer"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        SentimentDataModule(**kwargs)  # type: ignore[arg-type]


def test_train_per_class_must_leave_a_test_set(polarity_dir: Path) -> None:
    dm = SentimentDataModule(data_dir=str(polarity_dir), train_per_class=5331, download=False)
    with pytest.raises(ValueError, match="leaves no test reviews: the pos file has 5331 reviews"):
        dm.setup()


def _copy_with(polarity_dir: Path, folder: Path, neg: bytes | None = None) -> Path:
    """The real files in ``folder``, the negative one replaced by ``neg`` when given."""
    folder.mkdir()
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        (folder / name).write_bytes((polarity_dir / name).read_bytes())
    if neg is not None:
        (folder / "rt-polarity.neg").write_bytes(neg)
    return folder


def test_a_file_cut_in_half_is_refused_saying_how_to_fix_it(polarity_dir: Path, tmp_path: Path) -> None:
    raw = (polarity_dir / "rt-polarity.neg").read_bytes()
    cut = _copy_with(polarity_dir, tmp_path / "cut", neg=raw[: len(raw) // 2])  # the last review ends mid-word
    dm = SentimentDataModule(data_dir=str(cut), download=False)
    with pytest.raises(DataError) as refused:
        dm.setup()
    message = str(refused.value)
    assert message.startswith(
        f"rt-polarity.neg has {len(raw[: len(raw) // 2].splitlines())} reviews in {cut}, not 5331"
    )
    assert "cut short" in message and "download the original" in message and "data.expected_reviews=null" in message
    assert dm.vocab is None and dm.train_set is None


def test_own_data_of_any_size_says_so_and_an_unbalanced_test_set_is_reported(
    polarity_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = (polarity_dir / "rt-polarity.neg").read_bytes()
    own = _copy_with(polarity_dir, tmp_path / "own", neg=b"".join(raw.splitlines(keepends=True)[:4500]))
    dm = SentimentDataModule(data_dir=str(own), download=False, expected_reviews=None)
    with caplog.at_level(logging.WARNING, logger="rnn_lightning.data.sentiment"):
        dm.setup()
    assert (len(dm.train_texts) + len(dm.val_texts), len(dm.test_texts)) == (8000, 1331 + 500)
    assert "the test set is 73% positive (1331 positive, 500 negative reviews)" in caplog.text


def test_a_published_count_is_a_positive_number() -> None:
    with pytest.raises(ConfigError, match="data.expected_reviews must be an integer >= 1, got 0"):
        SentimentDataModule(expected_reviews=0)


def test_a_changed_copy_is_warned_about_once_however_often_lightning_prepares_the_data(
    polarity_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = (polarity_dir / "rt-polarity.neg").read_bytes()
    edited = _copy_with(polarity_dir, tmp_path / "edited", neg=raw.replace(b"tedious", b"tiresome", 1))
    dm = SentimentDataModule(data_dir=str(edited), download=False)
    with caplog.at_level(logging.WARNING, logger="rnn_lightning.data.sentiment"):
        for _ in range(3):  # the build, then Lightning in fit and in test
            dm.prepare_data()
    warned = [r.message for r in caplog.records if "differs from the original release" in r.message]
    assert warned == [
        f"{edited / 'rt-polarity.neg'} differs from the original release (sha256); results may not be comparable."
    ]
