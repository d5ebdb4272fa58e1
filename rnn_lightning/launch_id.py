"""``${launch_id:}``: a short random id, fixed for the life of the process, that makes output folders unique.

``hydra.run.dir`` and ``hydra.sweep.dir`` end in ``${now:%H-%M-%S}``, one second of resolution: two sweeps started in
the same second would share a folder and overwrite each other's jobs. The id is appended to the time.

Why per process and cached: every job of one ``-m`` sweep must land in the same sweep folder, so the value may not
change between two resolutions in the launching process. The resolver also uses OmegaConf's cache: the submitit
launcher recomposes each job's config in another process, where this module would draw another id; Hydra sends the
registered resolvers there in its singleton state and copies the launching config's resolver cache into the job's
config, so the job resolves the launcher's id.
"""

from __future__ import annotations

import secrets

from omegaconf import OmegaConf

RESOLVER = "launch_id"
_ID = secrets.token_hex(3)  # 6 hex digits: 16.7 million values, against launches that share one second


def launch_id() -> str:
    return _ID


def register_launch_id() -> None:
    """Make ``${launch_id:}`` resolvable; safe to call more than once."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, launch_id, use_cache=True)
