"""Evaluation task kinds, one module each; every module here registers itself with nsbench.bench.registry."""
