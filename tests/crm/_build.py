"""The shared builders under their old name, for modules not yet moved to
:mod:`tests._builders` (tests/storage/test_segment_pushdown.py)."""

from __future__ import annotations

from tests._builders import customer, eur, invoice, payment, service, t, usd

__all__ = ["customer", "eur", "invoice", "payment", "service", "t", "usd"]
