"""The optional dependencies of revcrm.export, imported only when a function needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from revcrm.errors import RevcrmError

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(RevcrmError, ImportError):
    """An optional dependency is not installed; names the extra that installs it."""

    def __init__(self, module: str, extra: str, feature: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{feature} needs {module}, which is not installed: pip install 'revcrm[{extra}]'"
        )


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(module.split(".")[0], extra, feature) from e
