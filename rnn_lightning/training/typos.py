"""A mistyped setting: name the key the user meant, and refuse a ``+key`` that nothing reads.

Hydra refuses ``epoch=3`` (the config has no such key) with one hint, ``+epoch=3``, which adds a key that no code
reads: the run then ignores the setting without a word. So:

* :func:`check_command_line` runs in ``train.py`` before Hydra composes. Where Hydra would fail with "Could not
  override 'KEY'", it says which key was meant instead, from the keys of the composed config (``difflib``, and a
  name's initials: ``learning_rate`` -> ``lr``); it also applies the next check, so that a sweep is refused once.
* :func:`check_added_keys` runs in ``check_config``, before anything is read. A ``+key`` under a node that is passed
  whole to a constructor (data, module, model, optim, scheduler, trainer) is read only if that constructor takes the
  argument: its signature says. Any other new key (at the top level, under monitor or paths) is read by nothing.

Hydra's own keys (``hydra.*``) are Hydra's to check. Anything this module cannot work out is left to Hydra, which
reports it in its own words.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf

# Config nodes passed whole to a constructor, and where that constructor's _target_ is; model.* goes to the module.
CONSTRUCTED = {
    "data": "data",
    "module": "module",
    "model": "module",
    "optim": "optim",
    "scheduler": "scheduler",
    "trainer": "trainer",
}
# Arguments the caller passes itself (not from the node), and keys a node holds for its reader rather than for the
# constructor: a plateau schedule's monitor (models/optimization.py).
PASSED = {"optim": ("params",), "scheduler": ("optimizer",)}
READ_BESIDES = {"scheduler": ("monitor",)}
LISTS_THEM = "python train.py --cfg job lists every setting"


def check_added_keys(cfg: DictConfig, overrides: list[str], groups: Iterable[str] = ()) -> list[str]:
    """One message per ``+key`` of ``overrides`` that nothing reads in the composed ``cfg``; [] if none. ``groups``:
    the config groups (``+group=option`` adds a config, not a key)."""
    problems = []
    for override in _parse(overrides) or []:
        if not (override.is_add() or override.is_force_add()) or _not_a_key(override, set(groups)):
            continue
        key = override.key_or_group
        node = key.split(".")[0]
        if node in CONSTRUCTED and "." in key:
            why = _unread_argument(cfg, node, key.split(".")[1])
        elif override.is_force_add():
            continue  # ++key may set a key the config had: only the constructors' nodes can be judged here
        else:
            why = f"nothing reads {'a top-level ' if '.' not in key else ''}{key}"
        if why:
            problems.append(f"{override.input_line}: {why}, so the run would ignore it; {_hint(cfg, override)}")
    return problems


def check_command_line(argv: list[str], conf_dir: Path) -> None:
    """Refuse mistyped keys before Hydra starts, with the key that was meant (a SystemExit with the message)."""
    overrides = _overrides_to_compose(argv)
    if overrides is None:
        return
    missing: list[Override] = []
    while True:
        try:
            cfg = _compose(conf_dir, [o.input_line for o in overrides])
            break
        except ConfigCompositionException as error:
            found = re.match(r"Could not override '([^']+)'", str(error))
            culprit = next((o for o in overrides if found and o.key_or_group == found.group(1)), None)
            if culprit is None:
                return  # another composition error: Hydra's message for it is the right one
            missing.append(culprit)
            overrides.remove(culprit)
        except Exception:
            return
    problems = [_no_such_key(cfg, override) for override in missing]
    problems += check_added_keys(cfg, [o.input_line for o in overrides], cfg.hydra.runtime.choices.keys())
    if problems:
        raise SystemExit("\n".join(problems))


def _no_such_key(cfg: DictConfig, override: Override) -> str:
    key = override.key_or_group
    node, _, rest = key.partition(".")
    if node in CONSTRUCTED and rest and not _unread_argument(cfg, node, rest.split(".")[0]):
        line = override.input_line
        return f"{line}: the config has no {key}, but {_target(cfg, node)} takes {rest}: add it, +{line}"
    return f"{override.input_line}: there is no setting {key}; {_hint(cfg, override)}"


def _hint(cfg: DictConfig, override: Override) -> str:
    key = override.key_or_group
    meant = closest(key, _candidates(cfg)) or closest(key, _arguments_of_node(cfg, key))
    value = override.input_line.split("=", 1)[1] if "=" in override.input_line else ""
    return f"did you mean {meant}={value}? ({LISTS_THEM})" if meant else f"{LISTS_THEM}."


def closest(key: str, candidates: Iterable[str]) -> str | None:
    """The candidate the user most likely meant by ``key``, judged by the last part of each name: a sibling named by
    the initials of its words (``optim.learning_rate`` -> ``optim.lr``), else the closest sibling (``difflib``), else
    a key elsewhere with almost the same name (``hidden_size`` -> ``model.hidden_size``)."""
    parent, _, name = key.rpartition(".")
    others = [c for c in dict.fromkeys(candidates) if c != key]
    siblings = {c.rpartition(".")[2]: c for c in others if c.rpartition(".")[0] == parent}
    anywhere: dict[str, str] = {}
    for candidate in others:
        anywhere.setdefault(candidate.rpartition(".")[2], candidate)
    words = [w for w in name.split("_") if w]
    initials = "".join(w[0] for w in words)
    if len(words) > 1 and initials in siblings:
        return siblings[initials]
    for names, cutoff in ((siblings, 0.6), (anywhere, 0.8)):
        found = difflib.get_close_matches(name, list(names), n=1, cutoff=cutoff)
        if found:
            return names[found[0]]
    return None


def _candidates(cfg: DictConfig) -> list[str]:
    """The keys the config has (Hydra's and _target_-like ones left out)."""
    keys = _leaves(OmegaConf.to_container(cfg, resolve=False), "")
    return [k for k in keys if not k.startswith("hydra.") and not any(p.startswith("_") for p in k.split("."))]


def _arguments_of_node(cfg: DictConfig, key: str) -> list[str]:
    """The other keys ``key``'s node could take: its constructor's arguments (imports that class)."""
    node = key.split(".")[0]
    return [f"{node}.{name}" for name in _arguments(cfg, node) or ()] if node in CONSTRUCTED and "." in key else []


def _leaves(node: Any, prefix: str) -> list[str]:
    if not isinstance(node, dict) or not node:
        return [prefix[:-1]] if prefix else []
    return [leaf for key, value in node.items() for leaf in _leaves(value, f"{prefix}{key}.")]


def _target(cfg: DictConfig, node: str) -> str | None:
    target = OmegaConf.select(cfg, f"{CONSTRUCTED[node]}._target_", default=None)
    return None if target is None else str(target)


def _arguments(cfg: DictConfig, node: str) -> tuple[str, ...] | None:
    """The keyword arguments the node's constructor takes; None when any is taken (``**kwargs``) or unknown."""
    target = _target(cfg, node)
    if target is None:
        return ()
    try:
        from hydra.utils import get_class

        parameters = inspect.signature(get_class(target)).parameters.values()
    except Exception:
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    passed = PASSED.get(node, ())
    return tuple(p.name for p in parameters if p.name not in passed) + READ_BESIDES.get(node, ())


def _unread_argument(cfg: DictConfig, node: str, argument: str) -> str | None:
    """Why ``node.argument`` would be read by nothing, or None if its constructor takes it."""
    if argument.startswith("_"):
        return None  # _target_, _partial_, _convert_: Hydra's instantiate reads them
    accepted = _arguments(cfg, node)
    if accepted is None or argument in accepted:
        return None
    target = _target(cfg, node)
    if target is None:
        return f"{node} is none: there is no {node} to take {argument} (choose one first, e.g. {node}=step)"
    return f"{target} takes no argument {argument}"


def _not_a_key(override: Override, groups: set[str]) -> bool:
    """Hydra's own settings, and config groups (``+experiment=...``), which Hydra checks itself."""
    key = override.key_or_group
    return override.is_hydra_override() or override.package is not None or key in groups or "/" in key


def _parse(overrides: list[str]) -> list[Override] | None:
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except Exception:
        return None


def _overrides_to_compose(argv: list[str]) -> list[Override] | None:
    """The command line's overrides as one plain job (a sweep's first value of each), or None to leave it to Hydra."""
    from hydra._internal.utils import get_args_parser  # the parser @hydra.main uses

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = get_args_parser().parse_args(argv)
    except SystemExit:
        return None  # a bad flag: Hydra says so itself
    if args.help or args.hydra_help or args.info or args.shell_completion or args.experimental_rerun:
        return None
    if args.config_path or args.config_name or args.config_dir:
        return None  # another config than conf/config.yaml
    parsed = _parse(args.overrides)
    if parsed is None:
        return None
    plain = []
    for override in parsed:
        if override.is_hydra_override():
            continue
        if override.is_sweep_override():
            value = override.value()
            try:
                first = str(value.start) if isinstance(value, IntervalSweep) else next(override.sweep_string_iterator())
            except Exception:
                return None  # glob(...) and the like
            override = _parse([f"{override.get_key_element()}={first}"])[0]
        plain.append(override)
    return plain


def _compose(conf_dir: Path, overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3", job_name="train"):
        return compose("config", overrides=overrides, return_hydra_config=True)
