"""Small file-system helpers shared by the writers of plans, exports and archives."""

from __future__ import annotations

import os


def current_umask() -> int:
    """The process umask (read by setting it and putting it back).

    Temporary files and directories are created private; writers apply ``0o666 & ~umask`` (files)
    or ``0o777 & ~umask`` (directories) before renaming them into place, so results get the
    permissions the user expects.
    """
    mask = os.umask(0)
    os.umask(mask)
    return mask
