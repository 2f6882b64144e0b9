"""Where data files are looked up: the data dir, then the current directory.

The data dir is `$T2T_DATA_DIR` when set, else `~/.cache/t2t_lite/data` (where
`scripts/download_multi30k.sh` puts its files) if it exists.
"""

from __future__ import annotations

import os

from t2t_lite.data.errors import DataError

ENV_VAR = "T2T_DATA_DIR"


def data_dir() -> str | None:
    """The data dir (see the module docstring), or None when it is not set and the cache
    directory does not exist."""
    env = os.environ.get(ENV_VAR)
    if env:
        return os.path.abspath(os.path.expanduser(env))
    cache = os.path.expanduser(os.path.join("~", ".cache", "t2t_lite", "data"))
    return cache if os.path.isdir(cache) else None


def resolve_path(path: str) -> str:
    """The existing file `path` names.

    Absolute paths (and `~/...`) are used as they are; a relative path is tried against the
    data dir, then the current directory.

    Raises:
        DataError: no file exists at any of the tried places; the message lists them.
    """
    expanded = os.path.expanduser(path)
    if os.path.isabs(expanded):
        tried = [expanded]
    else:
        root = data_dir()
        tried = ([os.path.join(root, expanded)] if root else []) + [os.path.abspath(expanded)]
    for candidate in tried:
        if os.path.isfile(candidate):
            return candidate
    hint = "" if os.environ.get(ENV_VAR) else f" (set ${ENV_VAR} to point at the data dir)"
    raise DataError(f"file not found: {path!r}; tried {', '.join(tried)}{hint}")
