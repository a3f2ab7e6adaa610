from __future__ import annotations

from adieu._entry import run

run()
