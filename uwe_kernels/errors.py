"""Exceptions raised by uwe_kernels."""
from __future__ import annotations


class BackendUnavailable(RuntimeError):
    """No backend can run this call; the message lists every candidate's reasons."""

    def __init__(self, op: str, reasons: dict[str, list[str]]) -> None:
        self.op = op
        self.reasons = reasons
        lines = [f"no uwe_kernels backend can run {op}():"]
        for name, why in reasons.items():
            lines.append(f"  {name}: " + "; ".join(why))
        super().__init__("\n".join(lines))


class NonFiniteError(ValueError):
    """An input holds NaN or +-inf; `row` is the first row that does."""

    def __init__(self, name: str, row: int) -> None:
        self.name = name
        self.row = row
        super().__init__(f"{name} has a non-finite value (NaN or inf) in row {row}")
