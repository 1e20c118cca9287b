"""tinysplit: split a neural network across ESP32-S3 boards and compare the radios that link them.

Importing the package is cheap: it never imports matplotlib, torch or bleak.
"""

from __future__ import annotations

from tinysplit.errors import (
    ConfigError,
    MissingExtraError,
    ModelError,
    PartitionError,
    TinysplitError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "MissingExtraError",
    "ModelError",
    "PartitionError",
    "TinysplitError",
    "__version__",
]
