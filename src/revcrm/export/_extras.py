"""The optional dependencies of revcrm.export, imported only when a function needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from revcrm.errors import MissingExtraError

__all__ = ["MissingExtraError", "require"]


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(module.split(".")[0], extra, feature) from e
