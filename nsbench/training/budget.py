"""Training budgets, counted as the paper and the released code count them.

An epoch is one pass over the *labeled* set (google-research/noisystudent main.py: steps_per_epoch =
num_train_images / train_batch_size); every student step also takes unlabeled_ratio x batch_size pseudo-labeled
images, whatever the size of the pseudo-labeled set (1k or 1M images: the budget does not move with it). The
teacher of iteration k is the model of iteration k - 1; by default (ns.student_budget=at-least-teacher) a student
trains at least as many optimizer steps and images as its teacher did.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..config import OptimConfig, TrainConfig


def steps_per_epoch(n_labeled: int, batch_size: int, world: int = 1) -> int:
    """Optimizer steps in one pass over the labeled set (the last, partial batch counts as a step)."""
    return max(1, math.ceil(n_labeled / (batch_size * world)))


def quarter_mark(epochs: int) -> int | None:
    """The epoch after which a stage's final quarter starts (epochs - floor(epochs / 4)). Stages validate there
    always, so that each records its final-quarter gain (records.final_quarter_gain); None below 4 epochs."""
    return epochs - epochs // 4 if epochs >= 4 else None


@dataclass
class Budget:
    iteration: int
    epochs: int  # passes over the labeled set
    steps_per_epoch: int
    labeled_batch: int  # global (all ranks)
    pseudo_batch: int  # global; 0 for the teacher
    configured_epochs: int
    teacher_steps: int | None = None
    teacher_images: int | None = None
    warning: str | None = None

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def images(self) -> int:
        return self.steps * (self.labeled_batch + self.pseudo_batch)

    def optim(self, cfg: OptimConfig) -> OptimConfig:
        """`cfg` with this budget's epochs (a copy: the recipe's value stays in config.yaml)."""
        return dataclasses.replace(cfg, epochs=self.epochs)

    def describe(self, n_labeled: int) -> str:
        what = "teacher" if self.iteration == 0 else "student"
        text = (f"iteration {self.iteration}: {what} budget {self.steps:,} steps = {self.epochs} epochs x "
                f"{self.steps_per_epoch} steps over {n_labeled:,} labeled images (batch {self.labeled_batch} labeled"
                + (f" + {self.pseudo_batch} pseudo-labeled" if self.pseudo_batch else "") + f"), {self.images:,} images")
        if self.teacher_steps is not None:
            text += f"; its teacher trained {self.teacher_steps:,} steps, {self.teacher_images:,} images"
        if self.epochs != self.configured_epochs:
            text += f"; raised from the configured {self.configured_epochs} epochs to match the teacher"
        return text


def plan(cfg: TrainConfig, n_labeled: int, world: int = 1) -> list[Budget]:
    """The budget of iteration 0 (teacher) .. cfg.ns.iterations (students), from the config and the labeled count."""
    t = cfg.teacher_optim
    out = [Budget(0, t.epochs, steps_per_epoch(n_labeled, t.batch_size, world), t.batch_size * world, 0, t.epochs)]
    s, ratio = cfg.student_optim, cfg.ns.unlabeled_ratio
    for k in range(1, cfg.ns.iterations + 1):
        prev = out[-1]
        spe = steps_per_epoch(n_labeled, s.batch_size, world)
        b = Budget(k, s.epochs, spe, s.batch_size * world, s.batch_size * ratio * world, s.epochs,
                   teacher_steps=prev.steps, teacher_images=prev.images)
        if cfg.ns.student_budget == "at-least-teacher":
            per_step = b.labeled_batch + b.pseudo_batch
            need_steps = max(prev.steps, math.ceil(prev.images / per_step))
            b.epochs = max(b.epochs, math.ceil(need_steps / spe))
        elif b.steps < prev.steps or b.images < prev.images:
            b.warning = (f"iteration {k}: the student trains {b.steps:,} steps ({b.images:,} images), fewer than its "
                         f"teacher's {prev.steps:,} steps ({prev.images:,} images): student_optim.epochs={s.epochs} "
                         f"passes over {n_labeled:,} labeled images at batch {s.batch_size}; a student needs at least "
                         f"its teacher's budget (ns.student_budget=at-least-teacher gives it)")
        out.append(b)
    return out
