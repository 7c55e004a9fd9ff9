"""nsbench: Noisy Student Training (Xie et al., CVPR 2020) in PyTorch, and an honest robustness scorecard."""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("evaluate", "train", "ModelInfo", "ScoreSettings"):  # imported lazily: `import nsbench` stays light
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'nsbench' has no attribute {name!r}")
