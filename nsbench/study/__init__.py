"""Studies: a base recipe, named variants, seeds and one suite, run as one resumable job into one report
(`nsbench study`). spec.py reads and checks a study file; runner.py trains, scores and reports it."""
from .runner import run_study
from .spec import Study, load_study

__all__ = ["Study", "load_study", "run_study"]
