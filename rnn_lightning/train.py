"""Train one model, or sweep many with ``-m``: ``python -m rnn_lightning.train --help`` lists the choices.

The same command as ``train.py`` in a checkout, for an installed package: its configs ship inside it
(``rnn_lightning/paths.py``), and every output goes below the folder it is started in.
"""

from __future__ import annotations

import sys

import hydra
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

import rnn_lightning.training.schema  # noqa: F401  registers the config's schema, which conf/config.yaml starts from
from rnn_lightning.errors import UserError
from rnn_lightning.paths import CONF_DIR

# Hydra's flags that print and exit without a config to check (and need no torch).
PRINT_AND_EXIT = {"-h", "--help", "--hydra-help", "-i", "--info", "-sc", "--shell-completion"}


class ShownAlone(CompactHydraException):
    """A user error as it reaches Hydra, which prints such an error's message alone, without a traceback
    (``HYDRA_FULL_ERROR=1`` shows it, the error it was raised from included)."""


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def task(cfg: DictConfig) -> float | None:
    # Imported here, not at the top: torch and Lightning take seconds to import, and --help or --cfg job need neither.
    from rnn_lightning.training.run import train

    try:
        return train(cfg)
    except UserError as error:  # train() has written the traceback to train.log
        raise ShownAlone(str(error)) from error


def main() -> None:
    if not PRINT_AND_EXIT & {argument.split("=")[0] for argument in sys.argv[1:]}:
        from rnn_lightning.training.suggest import check_command_line

        check_command_line(sys.argv[1:], CONF_DIR)  # `epoch=3`: did you mean epochs=3? (not Hydra's `+epoch=3`)
    task()


if __name__ == "__main__":
    main()
