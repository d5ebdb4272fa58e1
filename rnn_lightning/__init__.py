"""rnn-lightning: recurrent cells written from their equations, trained with Lightning and Hydra."""
