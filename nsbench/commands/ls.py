"""`nsbench ls`: list shipped recipes, studies and suites with their headline."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("ls", help="list shipped training recipes, studies and evaluation suites")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..resources import headline, list_shipped

    kinds = (("recipe", "recipes (nsbench train --recipe NAME)"), ("study", "studies (nsbench study NAME)"),
             ("suite", "suites (nsbench eval --suite NAME)"))
    width = max(16, *(len(p.stem) for kind, _ in kinds for p in list_shipped(kind)))
    for kind, title in kinds:
        print(title)
        for path in list_shipped(kind):
            print(f"  {path.stem:<{width}} {headline(path)}")
    return 0
