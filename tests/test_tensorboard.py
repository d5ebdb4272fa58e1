"""What TensorBoard shows of a real sweep, read the way TensorBoard reads it: its event files, the hparams plugin's
experiment and session groups, the scalar tags and their steps, the images and the text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra_compose import QUICK_LBFGS, TINY_SINE, compose_config
from matplotlib.colors import to_rgb
from omegaconf import OmegaConf, open_dict, read_write
from tensorboard import context
from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

from rnn_lightning.models.figures import confusion_figure
from rnn_lightning.models.misclassified import misclassified_markdown
from rnn_lightning.training.naming import run_name, swept_keys
from rnn_lightning.training.run import train

ROOT = Path(__file__).resolve().parents[1]
SINE_RESULTS = ["best_val", "test/forecast_mse", "test/forecast_mse_seq0", "test/forecast_mse_seq1", "test/train_mse"]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory, polarity_dir: Path) -> Path:
    """One log folder: a real two-job sine sweep (batch=49,98) and, beside it, a tiny sentiment run."""
    folder = tmp_path_factory.mktemp("logdir")
    sweep = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "-m",
            *TINY_SINE,
            QUICK_LBFGS,
            "trainer=cpu",
            "scheduler=cosine",
            "epochs=3",
            "batch=49,98",
            f"hydra.sweep.dir={folder / 'sweep'}",
        ],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tiny = ["model.hidden_size=8", "module.embeddings=null", "epochs=2", "trainer.limit_train_batches=2"]
    limits = ["trainer.limit_val_batches=2", "trainer.limit_test_batches=3"]
    train(compose_config([f"data.data_dir={polarity_dir}", *tiny, *limits], folder / "sentiment"))
    output, _ = sweep.communicate(timeout=240)
    assert sweep.returncode == 0, output[-3000:]
    return folder


def run_of(job: Path) -> Path:
    (run,) = (job / "tensorboard").iterdir()
    return run


def events_of(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run))
    events.Reload()
    return events


def scalars_of(run: Path) -> dict[str, list[tuple[int, float]]]:
    events = events_of(run)
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_sweep_runs_are_named_by_the_swept_override_alone(logdir):
    assert sorted(run_of(job).name for job in (logdir / "sweep").iterdir() if job.is_dir()) == ["batch=49", "batch=98"]


def test_every_curve_is_drawn_at_its_epoch_so_jobs_with_other_batch_sizes_line_up(logdir):
    curves = {"sine/train/loss", "sine/train/lr", "sine/val/forecast_mse", "sine/val/forecast_mse_best"}
    for job in ("0", "1"):
        scalars = scalars_of(run_of(logdir / "sweep" / job))
        assert {tag for tag, points in scalars.items() if len(points) > 1} == curves
        for tag in curves:
            assert [step for step, _ in scalars[tag]] == [0, 1, 2], (job, tag)
        assert not any(tag.endswith("epoch") for tag in scalars)  # Lightning's `epoch` scalar is not drawn
    sentiment = scalars_of(run_of(logdir / "sentiment"))
    assert [step for step, _ in sentiment["sentiment/val/acc"]] == [0, 1]


def test_the_curves_open_first_and_the_single_point_results_come_after_them(logdir):
    """TensorBoard lists groups and charts by name: the Time Series tab by code point, the Scalars tab ignoring case.
    In both orders every curve comes before every single point (the results, at the end of the run)."""
    for run, task in ((run_of(logdir / "sweep" / "0"), "sine"), (run_of(logdir / "sentiment"), "sentiment")):
        scalars = scalars_of(run)
        for order in (sorted(scalars), sorted(scalars, key=str.lower)):
            curve_flags = [len(scalars[tag]) > 1 for tag in order]
            assert curve_flags == sorted(curve_flags, reverse=True), order
            assert all(tag.startswith(f"{task}/~") for tag in order if len(scalars[tag]) == 1), order
        (last_epoch,) = {points[-1][0] for tag, points in scalars.items() if len(points) > 1}
        assert {points[0][0] for tag, points in scalars.items() if len(points) == 1} == {last_epoch + 1}


def test_sine_and_sentiment_runs_in_one_folder_share_no_chart(logdir):
    tags = {}
    for task, run in (("sine", run_of(logdir / "sweep" / "0")), ("sentiment", run_of(logdir / "sentiment"))):
        found = events_of(run).Tags()
        tags[task] = {*found["scalars"], *found["images"], *found["tensors"]} - {
            "_hparams_/experiment",
            "_hparams_/session_start_info",
            "_hparams_/session_end_info",
        }
        assert all(tag.startswith(f"{task}/") for tag in tags[task]), tags[task]
    assert "sine/train/loss" in tags["sine"] and "sentiment/train/loss" in tags["sentiment"]
    assert not tags["sine"] & tags["sentiment"]


def hparams_of(folder: Path) -> tuple[api_pb2.Experiment, api_pb2.ListSessionGroupsResponse]:
    """The hparams plugin's answers to the requests its dashboard sends (experiment, then session groups)."""
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(folder))
    multiplexer.Reload()
    tb_context = base_plugin.TBContext(
        logdir=str(folder), multiplexer=multiplexer, data_provider=MultiplexerDataProvider(multiplexer, str(folder))
    )
    backend = backend_context.Context(tb_context)
    request = context.RequestContext()
    experiment = get_experiment.Handler(request, backend, "", api_pb2.GetExperimentRequest(hparams_limit=1000)).run()
    statuses = [api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING]
    groups = list_session_groups.Handler(
        request, backend, "", api_pb2.ListSessionGroupsRequest(allowed_statuses=statuses, slice_size=100)
    ).run()
    return experiment, groups


def test_hparams_table_has_each_job_once_the_swept_setting_first_and_the_results_by_their_names(logdir):
    experiment, groups = hparams_of(logdir / "sweep")
    names = [info.name for info in experiment.hparam_infos]
    assert names[0] == "batch" and [info.differs for info in experiment.hparam_infos].count(True) == 1
    assert names[1:] == sorted(names[1:]) and {"task", "optim", "scheduler", "epochs", "seed"} <= set(names)
    # TensorBoard builds the table from the jobs' sessions: every scalar is a column, the results among them.
    assert {info.name.tag for info in experiment.metric_infos if "~" in info.name.tag} == {
        f"sine/~{name}" for name in SINE_RESULTS
    }
    assert len(groups.session_groups) == 2  # one row per job
    for group in groups.session_groups:
        (session,) = group.sessions
        assert session.status == api_pb2.STATUS_SUCCESS
        job = logdir / "sweep" / ("0" if group.hparams["batch"].number_value == 49 else "1")
        record = json.loads((job / "metrics.json").read_text())
        assert group.hparams["optim"].string_value == "lbfgs" and group.hparams["epochs"].number_value == 3
        values = {v.name.tag.split("~", 1)[1]: v.value for v in group.metric_values if "~" in v.name.tag}
        assert values == pytest.approx({"best_val": record["best_val"], **record["test"]})


def test_the_confusion_matrix_and_the_misclassified_list_sit_with_the_results(logdir):
    events = events_of(run_of(logdir / "sentiment"))
    assert events.Tags()["images"] == ["sentiment/~test/confusion_matrix"]
    (text,) = events.Tensors("sentiment/~test/misclassified/text_summary")
    markdown = text.tensor_proto.string_val[0].decode()
    record = json.loads((logdir / "sentiment" / "metrics.json").read_text())
    wrong = round((1 - record["test"]["test/acc"]) * 192)  # 3 test batches of 64
    items = [line for line in markdown.splitlines() if line[:1].isdigit() and ". **" in line]
    assert markdown.startswith(f"{wrong} of the 192 test reviews are misclassified; here ")
    assert len(items) == min(wrong, 50) and items[0].startswith("1. **") and items[-1].startswith(f"{len(items)}. **")


def test_misclassified_list_says_how_many_it_shows_and_puts_the_surest_mistakes_first():
    texts = [f"review {i} with *stars* and a [link]" for i in range(100)]
    labels = torch.zeros(100, dtype=torch.long)
    positive = torch.linspace(0.0, 1.0, 100)  # the last 60 are predicted positive: wrong
    predictions = (positive > 0.4).long()
    markdown = misclassified_markdown(texts, predictions, positive, labels, ["negative", "positive"])
    lines = markdown.splitlines()
    assert lines[0] == (
        "60 of the 100 test reviews are misclassified; here the 50 most confident, most confident first "
        "(true → predicted label, p(positive), the review)."
    )
    assert len(lines) == 2 + 50 and lines[1] == ""
    assert lines[2] == "1. **negative → positive**, 1.000: review 99 with \\*stars\\* and a \\[link\\]"
    shown = [float(line.split("**, ")[1].split(":")[0]) for line in lines[2:]]
    assert [abs(p - 0.5) for p in shown] == sorted((abs(p - 0.5) for p in shown), reverse=True)
    few = misclassified_markdown(texts[:3], predictions[-3:], positive[-3:], labels[:3], ["negative", "positive"])
    assert "3 of the 3 test reviews are misclassified; here all of them" in few and len(few.splitlines()) == 2 + 3


@pytest.mark.parametrize("matrix", [[[1200, 131], [100, 1231]], [[600, 731], [650, 681]], [[1331, 0], [1331, 0]]])
def test_confusion_counts_are_legible_on_their_cells_and_the_figure_has_a_title(matrix):
    figure = confusion_figure(np.array(matrix), ["negative", "positive"], "test set, best checkpoint")
    (ax,) = figure.axes
    (image,) = ax.get_images()
    assert ax.get_title().startswith("test set, best checkpoint\n2662 reviews, ")
    for text in ax.texts:
        i, j = round(text.get_position()[1]), round(text.get_position()[0])
        assert text.get_text().split("\n")[0] == str(matrix[i][j])
        cell = image.cmap(image.norm(image.get_array()[i, j]))[:3]
        assert contrast(to_rgb(text.get_color()), cell) >= 4.5, (matrix, i, j)  # WCAG's level for normal text


def contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """The WCAG contrast ratio of two sRGB colours."""

    def luminance(rgb: tuple[float, ...]) -> float:
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _as_sweep_job(cfg, sweep_dir: Path, command: list[str] | None, job: list[str]) -> None:
    """Hydra's config as a job of a sweep launched with ``command`` (None: a sweeper that keeps no record)."""
    with read_write(cfg.hydra), open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweep.dir = str(sweep_dir)
        cfg.hydra.overrides.task = job
    if command is not None:
        OmegaConf.save({"hydra": {"overrides": {"task": command}}}, sweep_dir / "multirun.yaml")
    HydraConfig.instance().set_config(cfg)


def test_swept_keys_come_from_the_sweep_command_and_the_sweepers_params(tmp_path):
    cfg = compose_config([], tmp_path)
    job = ["optim=adam", "batch=200", "epochs=3", "paths.output_dir=/x"]
    _as_sweep_job(cfg, tmp_path, ["optim=adam,sgdm", "batch=200,500", "epochs=3", "paths.output_dir=/x"], job)
    assert swept_keys() == ["optim", "batch"] and run_name() == "batch=200,optim=adam"
    with read_write(cfg.hydra), open_dict(cfg):
        cfg.hydra.sweeper.params = {"model.hidden_size": "choice(8, 16)"}
        cfg.hydra.overrides.task = [*job, "model.hidden_size=16"]
    HydraConfig.instance().set_config(cfg)
    assert swept_keys() == ["optim", "batch", "model.hidden_size"]
    (tmp_path / "multirun.yaml").unlink()  # e.g. the Optuna sweeper: each override of the job counts as swept
    assert swept_keys() == ["optim", "batch", "epochs", "model.hidden_size"]
    assert run_name() == "batch=200,epochs=3,model.hidden_size=16,optim=adam"
