"""The model ladder: the teacher of iteration 0 and the student of each iteration, equal or larger each step."""
from __future__ import annotations

import logging

from ..config import ModelConfig, TrainConfig
from ..models import ModelSpec, build_model, count_params, default_mean_std, inert_stochastic_depth
from ..utils import NsbenchError

log = logging.getLogger(__name__)


def model_config(cfg: TrainConfig, k: int) -> ModelConfig:
    return cfg.teacher if k == 0 else cfg.student_for(k)


def model_key(k: int, cfg: TrainConfig) -> str:
    """Where iteration k's model is configured, for messages (students repeat their last entry)."""
    return "teacher" if k == 0 else f"students.{min(k - 1, len(cfg.students) - 1)}"


def model_spec(m: ModelConfig, num_classes: int, size: int) -> ModelSpec:
    mean, std = default_mean_std(m.arch)
    return ModelSpec(arch=m.arch, num_classes=num_classes, input_size=size, mean=mean, std=std,
                     drop_rate=m.drop_rate, drop_path_rate=m.drop_path_rate, kwargs=dict(m.kwargs))


def check_ladder(cfg: TrainConfig, num_classes: int) -> list[tuple[ModelSpec, int]]:
    """Specs and parameter counts of teacher and students; refuse a student smaller than its teacher."""
    size = cfg.data.image_size
    ladder = [model_spec(cfg.teacher, num_classes, size)] + [
        model_spec(cfg.student_for(k), num_classes, size) for k in range(1, cfg.ns.iterations + 1)]
    out = [(s, count_params(build_model(s))) for s in ladder]
    for k in range(1, len(out)):
        (t, nt), (s, ns) = out[k - 1], out[k]
        if ns < nt and not cfg.ns.allow_smaller_student:
            raise NsbenchError(
                f"iteration {k}: student {s.arch} ({ns:,} parameters) is smaller than its teacher {t.arch} "
                f"({nt:,}); Noisy Student needs an equal-or-larger student (set ns.allow_smaller_student=true "
                f"to allow it)")
    return out


def build(spec: ModelSpec, k: int, cfg: TrainConfig):
    """The model of iteration k; timm's pretrained weights when its ModelConfig says so (one-line error if not)."""
    try:
        return build_model(spec, pretrained=model_config(cfg, k).pretrained)
    except NsbenchError as e:
        raise NsbenchError(f"{model_key(k, cfg)}.pretrained: {e}") from None


def check_pretrained(cfg: TrainConfig, ladder: list[tuple[ModelSpec, int]], done: set[int]) -> None:
    """Build every pretrained model still to train now, so that a missing checkpoint fails at once, not iterations
    later (a student initialised from its teacher never loads its own)."""
    for k in range(cfg.ns.iterations + 1):
        if model_config(cfg, k).pretrained and k not in done and not (k and cfg.ns.init_from_teacher):
            build(ladder[k][0], k, cfg)


def inert_depth_warning(model, spec: ModelSpec, k: int, cfg: TrainConfig) -> str | None:
    """A warning when the configured stochastic depth can never act on this architecture."""
    if spec.drop_path_rate and inert_stochastic_depth(model):
        return (f"{model_key(k, cfg)}.drop_path_rate={spec.drop_path_rate} has no effect: none of {spec.arch}'s "
                f"blocks has a residual connection, where timm applies stochastic depth")
    return None
