"""Tasks: pure functions of arrays plus an options dataclass, returning arrays."""
