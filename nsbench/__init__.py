"""nsbench: Noisy Student Training (Xie et al., CVPR 2020) in PyTorch, and an honest robustness scorecard."""

__version__ = "0.1.0"
