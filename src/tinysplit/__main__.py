"""``python -m tinysplit``: same as the ``tinysplit`` command."""

from __future__ import annotations

import sys

from tinysplit.cli import main

sys.exit(main())
