"""The INCB registry: country keys, endpoints, estimates and assessments as signed snapshots."""

__all__: list[str] = []
