"""Callbacks of a training run, one concern a file; conf/callbacks/ lists which a run uses."""
