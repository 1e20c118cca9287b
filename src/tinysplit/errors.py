"""Exception hierarchy: every error a user can cause is a :class:`TinysplitError`.

The CLI turns these into one line on stderr and a non-zero exit; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class TinysplitError(Exception):
    """Root of all tinysplit errors caused by input, configuration or environment."""


class ConfigError(TinysplitError):
    """A bad option value, profile name or configuration file."""


class ModelError(TinysplitError):
    """A model that cannot be loaded, imported or executed (missing file, unsupported op, ...)."""


class PartitionError(TinysplitError):
    """A model that cannot be split as asked (too few devices, a layer larger than any device)."""


class MissingExtraError(TinysplitError):
    """An optional dependency is needed; the message names the ``pip install`` extra."""


class FrameError(TinysplitError):
    """A received frame the wire-protocol decoder rejects (``docs/protocol.md``).

    Attributes:
        code: why, as the firmware's ``ts_err_name()`` spells it: ``short``, ``version``,
            ``length``, ``crc``, ``type`` or ``field``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class BoardError(TinysplitError):
    """A board or its serial port misbehaved: missing, unplugged, silent, or answering an error.

    The message names the board and its port.
    """
