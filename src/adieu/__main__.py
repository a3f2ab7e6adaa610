from __future__ import annotations

from adieu.cli import main

main()
