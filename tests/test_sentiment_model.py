"""The sentiment classifier: padding never changes a prediction, readouts, checkpoint with vocabulary."""

import lightning as L
import pytest
import torch

from rnn_lightning.models.readout import pool
from rnn_lightning.models.sentiment import SentimentClassifier

VOCAB = ["<pad>", "<unk>", "good", "bad", "film", "a", "very"]


MODEL_KEYS = ("cell", "bidirectional", "num_layers", "impl")


def classifier(**kwargs):
    torch.manual_seed(0)
    settings = {"max_len": 8, "tokenizer_version": "v1", "vocab_size": len(VOCAB)}
    return SentimentClassifier(
        vocab_size=len(VOCAB),
        vocab=VOCAB,
        tokenizer=settings,
        model={"hidden_size": 6, **{k: kwargs.pop(k) for k in MODEL_KEYS if k in kwargs}},
        embedding_dim=4,
        **kwargs,
    ).eval()


@pytest.mark.parametrize("readout", ["last", "mean", "max", "max_mean"])
@pytest.mark.parametrize("cell,bidirectional", [("lstm", False), ("gru", True), ("rnn", True)])
def test_extra_padding_does_not_change_the_output(cell, bidirectional, readout):
    model = classifier(cell=cell, bidirectional=bidirectional, readout=readout, num_layers=2)
    tokens = torch.tensor([[5, 6, 2, 4], [3, 4, 0, 0]])  # (B, T), the second review right-padded
    lengths = torch.tensor([4, 2])
    logits = model(tokens, lengths)
    assert logits.shape == (2, 2)
    longer = torch.cat([tokens, torch.zeros(2, 7, dtype=torch.long)], dim=1)  # 7 more pad positions
    torch.testing.assert_close(model(longer, lengths), logits, rtol=0, atol=1e-6)
    # And the second review alone, unpadded, gets the same logits as inside the padded batch.
    torch.testing.assert_close(model(tokens[1:, :2], lengths[1:]), logits[1:], rtol=0, atol=1e-6)


def test_pooling_reads_real_steps_only():
    outputs = torch.tensor([[[1.0], [3.0], [100.0]], [[-2.0], [-4.0], [-6.0]]])  # (B=2, T=3, F=1)
    lengths = torch.tensor([2, 3])
    torch.testing.assert_close(pool(outputs, lengths, "mean"), torch.tensor([[2.0], [-4.0]]))
    torch.testing.assert_close(pool(outputs, lengths, "max"), torch.tensor([[3.0], [-2.0]]))
    torch.testing.assert_close(pool(outputs, lengths, "max_mean"), torch.tensor([[3.0, 2.0], [-2.0, -4.0]]))
    with pytest.raises(ValueError, match="unknown readout 'median'"):
        pool(outputs, lengths, "median")


def test_frozen_embeddings_do_not_train():
    model = classifier(freeze_embeddings=True)
    assert not model.embedding.weight.requires_grad
    assert model.embedding.weight[0].abs().sum() == 0  # <pad> row


def test_checkpoint_carries_vocabulary_and_tokenizer_settings(tmp_path):
    model = classifier(cell="gru", head_hidden=5, head_activation="sigmoid")
    trainer = L.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu", max_epochs=0)
    trainer.strategy.connect(model)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = SentimentClassifier.load_from_checkpoint(path, weights_only=True).eval()
    assert loaded.vocab == VOCAB
    assert loaded.hparams.tokenizer["max_len"] == 8 and "vocab" not in loaded.hparams
    tokens, lengths = torch.tensor([[2, 4, 0]]), torch.tensor([2])
    torch.testing.assert_close(loaded(tokens, lengths), model(tokens, lengths), rtol=0, atol=0)


def test_word_dropout_replaces_words_with_unk_only_while_training():
    model = classifier(word_dropout=0.5)
    seen = []
    model.embedding.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].clone()))
    tokens = torch.tensor([[2, 3, 4, 5, 6, 2, 3, 4, 0, 0]])  # (1, 10), two pad positions
    lengths = torch.tensor([8])
    model.eval()
    model(tokens, lengths)
    torch.testing.assert_close(seen[-1], tokens, rtol=0, atol=0)  # evaluation reads every word
    model.train()
    torch.manual_seed(0)
    model(tokens, lengths)
    dropped = seen[-1] != tokens
    assert dropped.any() and (seen[-1][dropped] == 1).all()  # dropped words became <unk>
    assert (seen[-1][0, 8:] == 0).all()  # padding stays padding
    with pytest.raises(ValueError, match=r"module.word_dropout=1.0 must be in \[0, 1\)"):
        classifier(word_dropout=1.0)


def test_train_loss_and_accuracy_are_logged_once_per_epoch_as_means_over_its_reviews():
    # lr 0 keeps the weights fixed, so the logged values can be recomputed afterwards; the batches are of
    # unequal size (5 and 2), so an unweighted mean of batch means would differ.
    model = classifier(optim={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.0})
    tokens = torch.tensor([[2, 4, 0], [3, 0, 0], [5, 6, 2], [3, 4, 4], [2, 2, 0], [6, 3, 0], [4, 0, 0]])
    lengths = torch.tensor([2, 1, 3, 3, 2, 2, 1])
    labels = torch.tensor([1, 0, 1, 0, 1, 0, 1])
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(tokens, lengths, labels), batch_size=5)
    seen = {}

    class EpochEndReader(L.Callback):  # like the epoch summary line, which Lightning calls before the module's hook
        def on_train_epoch_end(self, trainer, module):
            seen.update({k: v for k, v in trainer.callback_metrics.items() if k.startswith("train/")})

    trainer = L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        accelerator="cpu",
        max_epochs=1,
        callbacks=[EpochEndReader()],
    )
    trainer.fit(model, train_dataloaders=data)
    model.eval()
    logits = model(tokens, lengths)
    expected_loss = torch.nn.functional.cross_entropy(logits, labels)
    expected_acc = (logits.argmax(dim=1) == labels).float().mean()
    torch.testing.assert_close(trainer.callback_metrics["train/loss"], expected_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(trainer.callback_metrics["train/acc"], expected_acc)
    # Callbacks' epoch-end hooks already see this epoch's values.
    torch.testing.assert_close(seen["train/loss"], expected_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(seen["train/acc"], expected_acc)


@pytest.mark.parametrize("head_hidden", [0, 5])
def test_head_dropout_drops_the_input_of_the_last_linear_layer_while_training(head_hidden):
    model = classifier(head_hidden=head_hidden, head_activation="sigmoid", head_dropout=0.5)  # sigmoid: no zeros
    last = model.head if head_hidden == 0 else model.head[-1]
    seen = []
    last.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
    tokens, lengths = torch.tensor([[2, 3, 4, 5, 6, 2]] * 8), torch.tensor([6] * 8)
    model.eval()
    model(tokens, lengths)
    assert (seen[-1] != 0).all()  # evaluation drops nothing
    model.train()
    torch.manual_seed(0)
    model(tokens, lengths)
    dropped = seen[-1] == 0
    assert 0.2 < dropped.float().mean() < 0.8
    # The same reviews in eval mode give the kept features at half the size (dropout scales by 1 / (1 - p)).
    model.eval()
    model(tokens, lengths)
    torch.testing.assert_close(seen[-2][~dropped], 2 * seen[-1][~dropped])
