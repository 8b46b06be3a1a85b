"""A reference integration: a WHMCS-like panel's tables synced into revcrm.

* :mod:`.schema`: the panel's own SQLAlchemy tables (users, services, invoices,
  invoice_items, transactions, credits, products);
* :mod:`.panel`: what the panel does to them (register, buy, suspend, pay, refund...);
* :mod:`.sync`: the glue, :func:`sync_all`, reading those tables into ``revcrm.sync``.

Run ``python -m examples.host_panel`` (from the repository root) for a short demo.
"""

from .panel import HostPanel
from .sync import sync_all

__all__ = ["HostPanel", "sync_all"]
