"""Did you mean ...? The key a user most likely meant by a mistyped one, which Hydra does not say.

:func:`check_command_line` runs in ``train.py`` before Hydra composes, on the command line alone: a key that no config
file and no schema field has anywhere (``epoch=3``, ``optim.learning_rate=0.1``) stops there with the key that was
meant, instead of Hydra's hint to add it with ``+``, which no code would read. The candidates are read from the
schema and the YAML files of ``conf/``, without composing a config. Keys that exist somewhere are left to Hydra and
the preflight, which know what the composed config holds.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from rnn_lightning.training import schema

LISTS_THEM = "python train.py --cfg job lists every setting"
# Hydra's flags that take a value which is not an override (`--cfg job`, `-sc install=bash`).
VALUE_FLAGS = {"-c", "--cfg", "-p", "--package", "-cp", "--config-path", "-cn", "--config-name", "-cd",
               "--config-dir", "-sc", "--shell-completion", "--experimental-rerun", "-i", "--info"}  # fmt: skip
OPEN_NODES = ("data", "module", "optim", "scheduler", "trainer", "callbacks")  # handed to a class: its arguments
NODES = ("model", "monitor", "paths", *OPEN_NODES)


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


@cache
def known_keys(conf_dir: Path) -> frozenset[str]:
    """Every key some config could have: the schema's fields, and each YAML file's keys under its package (a group's
    files under the group's name, ``@package _global_`` files at the top)."""
    keys = set(_fields(schema.Config, ""))
    for path in conf_dir.rglob("*.yaml"):
        group = path.parent.relative_to(conf_dir).parts
        if group[:1] == ("hydra",):
            continue
        content = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
        glob = "@package _global_" in path.read_text().split("\n", 1)[0] or not group
        prefix = "" if glob else f"{group[0]}."
        keys.update(_leaves({k: v for k, v in content.items() if k != "defaults"}, prefix))
    return frozenset(keys)


def check_command_line(argv: list[str], conf_dir: Path) -> None:
    """Stop with the key that was meant for each override whose key no config has (a SystemExit), and for each
    ``+key`` under the schema's own settings, which are all known: nothing would read it. A ``+key`` under a node
    handed to a class (``+optim.amsgrad=true``) may be an argument of that class: the preflight reads its signature."""
    keys = known_keys(conf_dir)
    problems = []
    for override in _overrides(argv):
        key = override.key_or_group
        if override.is_hydra_override() or override.package is not None or "/" in key or key in NODES:
            continue
        if (conf_dir / key).is_dir():
            continue  # a config group (task=sine): Hydra lists its options when one is unknown
        if key in keys or any(known.startswith(key + ".") for known in keys):
            continue
        adding = override.is_add() or override.is_force_add()
        meant = closest(key, keys)
        if adding and key.split(".")[0] in OPEN_NODES or not adding and meant is None:
            continue  # for the preflight, or for Hydra's own message
        value = override.input_line.split("=", 1)[1] if "=" in override.input_line else ""
        problem = f"nothing reads {key}, so the run would ignore it" if adding else f"there is no setting {key}"
        hint = f"did you mean {meant}={value}? ({LISTS_THEM})" if meant else f"{LISTS_THEM}."
        if not adding and key.split(".")[0] in OPEN_NODES:  # a class's argument the config does not list may be it
            hint += f" To pass {key} to the class {key.split('.')[0]} is handed to, add it: +{override.input_line}"
        problems.append(f"{override.input_line}: {problem}; {hint}")
    if problems:
        raise SystemExit("\n".join(problems))


def _fields(node_type: Any, prefix: str) -> list[str]:
    found = []
    for field in dataclasses.fields(node_type):
        nested = getattr(node_type, "__dataclass_fields__", {})[field.name].default_factory
        if dataclasses.is_dataclass(nested if callable(nested) else None):
            found.extend(_fields(nested, f"{prefix}{field.name}."))
        else:
            found.append(prefix + field.name)
    return found


def _leaves(node: Any, prefix: str) -> list[str]:
    if not isinstance(node, dict) or not node:
        return [prefix[:-1]] if prefix else []
    return [leaf for key, value in node.items() for leaf in _leaves(value, f"{prefix}{key}.")]


def _overrides(argv: list[str]) -> list[Any]:
    """The overrides of a command line (Hydra's parser), without its flags and their values; [] if it cannot parse."""
    lines, skip = [], False
    for argument in argv:
        if skip or argument.startswith("-"):
            skip = not skip and argument in VALUE_FLAGS and "=" not in argument
            continue
        lines.append(argument)
    try:
        return OverridesParser.create().parse_overrides(lines)
    except Exception:
        return []  # Hydra reports a malformed override in its own words
