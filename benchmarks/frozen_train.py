"""`nsbench train ...` with a frozen clock: the wall-clock fields (checkpoint `created`, train_seconds, the history's
seconds / images_per_s) become constants, so two runs of the same recipe can be compared byte for byte: a refactor
that claims to keep training the same gives the same sha256 for every checkpoint and history.csv.

    PYTHONPATH=OLD python benchmarks/frozen_train.py train --recipe default --iterations 2 --out /tmp/a ...
    PYTHONPATH=NEW python benchmarks/frozen_train.py train --recipe default --iterations 2 --out /tmp/b ...
    python benchmarks/compare_runs.py /tmp/a /tmp/b
"""
import datetime
import sys
import time

time.time = lambda: 1764800000.0

import nsbench.checkpoint as ck  # noqa: E402


class _Frozen(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime(2026, 1, 1, tzinfo=tz)


ck._dt = type("frozen_datetime", (), {"datetime": _Frozen, "timezone": datetime.timezone})
from nsbench.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
