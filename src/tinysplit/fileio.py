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


def write_text_atomic(path: str | os.PathLike[str], text: str, *, what: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same directory, then rename.

    A reader sees the old file or the new one, never a partial one; the new file gets the
    umask's permissions.

    Raises:
        ConfigError: the directory or file cannot be written (the message names ``what`` and the
            path).
    """
    import tempfile
    from pathlib import Path

    from tinysplit.errors import ConfigError

    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write {what} {str(target)!r}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {what} {str(target)!r}: {exc.strerror}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
