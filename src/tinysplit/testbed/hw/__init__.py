"""Hardware testbed: real ESP32-S3 boards driven over USB serial, or emulated boards on ptys.

Modules (imported on demand; importing this package imports nothing heavy):

* :mod:`~tinysplit.testbed.hw.inventory`: the ``boards.toml`` inventory (boards, scribe, power
  meter, transport settings) and its validation; its parts live in ``inventory_specs``.
* :mod:`~tinysplit.testbed.hw.serial_port`: opening serial ports by path, URL or USB serial number;
  the only module that imports ``serial`` (pyserial).
* :mod:`~tinysplit.testbed.hw.console`: the board console protocol v1 (``TS1`` lines,
  ``docs/protocol.md``) over any :class:`~tinysplit.testbed.hw.serial_port.SerialLike` stream;
  the line grammar lives in ``console_lines``.

Hardware access (``serial``, ``esptool``, ``bleak``) is imported only inside the modules that
need it, so ``import tinysplit.testbed`` stays cheap on machines without boards.
"""

from __future__ import annotations
