"""`nsbench eval` (not yet available)."""
from __future__ import annotations

from ..utils import NsbenchError


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="(coming)")
    p.set_defaults(handler=run)


def run(args) -> int:
    raise NsbenchError("eval is not implemented yet")
