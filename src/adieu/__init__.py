"""Adieu: make leaving a mailing list easy, respectful and final."""

from __future__ import annotations

__version__ = "0.1.0"
