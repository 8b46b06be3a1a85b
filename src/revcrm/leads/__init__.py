"""The lead pipeline: prospects worked from New to Converted or Lost."""

__all__: list[str] = []
