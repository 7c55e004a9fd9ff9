"""`nsbench report` (not yet available)."""
from __future__ import annotations

from ..utils import NsbenchError


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="(coming)")
    p.set_defaults(handler=run)


def run(args) -> int:
    raise NsbenchError("report is not implemented yet")
