"""Train one model, or sweep many with ``-m``: ``python train.py --help`` lists the choices."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    # Imported here, not at the top: torch and Lightning take seconds to import, and --help, --cfg job or a mistyped
    # option need neither.
    from rnn_lightning.training.run import train

    return train(cfg)


if __name__ == "__main__":
    main()
