"""Train one model, or sweep many with ``-m``: ``python train.py --help`` lists the choices."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parent / "conf"
# Hydra's flags that print and exit: they run no job, so there is no setting to check (and no torch to import).
PRINT_AND_EXIT = {"-h", "--help", "--hydra-help", "-i", "--info", "-sc", "--shell-completion", "-c", "--cfg"}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    # Imported here, not at the top: torch and Lightning take seconds to import, and --help or --cfg job need neither.
    from rnn_lightning.training.checks import UserError, is_user_error
    from rnn_lightning.training.run import train

    try:
        return train(cfg)
    except Exception as error:
        if is_user_error(error):
            # Hydra prints a UserError's message alone; train() has written the traceback to train.log.
            raise UserError(str(error)) from error
        raise


if __name__ == "__main__":
    if not PRINT_AND_EXIT & {argument.split("=")[0] for argument in sys.argv[1:]}:
        from rnn_lightning.training.typos import check_command_line

        check_command_line(sys.argv[1:], CONF_DIR)  # `epoch=3`: did you mean epochs=3? (not Hydra's `+epoch=3`)
    main()
