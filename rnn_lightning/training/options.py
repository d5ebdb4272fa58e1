"""Config option names, read from ``conf/``: which option of a group builds a given class.

The YAML files are the one place that says ``optim=sgdm`` means ``torch.optim.SGD``; messages that tell a user what to
type (resume with ``optim=...``) and the run's parameters ask here instead of keeping a copy of that map.
"""

from __future__ import annotations

from functools import cache

from omegaconf import OmegaConf

from rnn_lightning.paths import CONF_DIR


@cache
def group_options(group: str) -> dict[str, str]:
    """``{_target_: option name}`` for the options of a config group (``optim``, ``scheduler``)."""
    options = {}
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        target = (OmegaConf.load(path) or {}).get("_target_")
        if target:
            options[str(target)] = path.stem
    return options


def option_name(group: str, target: str | None) -> str:
    """What to type to get ``target``: ``sgdm`` for torch.optim.SGD; ``none`` for no target."""
    if not target:
        return "none"
    return group_options(group).get(str(target), f"<the option whose _target_ is {target}>")
