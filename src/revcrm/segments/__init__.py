"""Customer segments: High Value, Active, At Risk, Churned, New, Never Purchased, custom."""

__all__: list[str] = []
