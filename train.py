"""Train one model, or sweep many with ``-m``: ``python train.py --help`` lists the choices.

The same command as ``python -m rnn_lightning.train`` (``rnn_lightning/train.py``), started from the checkout.
"""

from rnn_lightning.train import main

if __name__ == "__main__":
    main()
