"""Test support for host applications: hypothesis strategies and storage contract suites."""

__all__: list[str] = []
