"""Published constants, keyed by name, each with its source. The only place such numbers live.

The CSV files under `reference_data/` are verbatim copies of the project's reference facts; their README there
gives every source. Loading them (rather than pasting numbers here) keeps one copy of each fact.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

_DIR = Path(__file__).resolve().parent / "reference_data"

# AlexNet's clean ImageNet top-1 error, the normaliser of relative CE. Source: torchvision
# AlexNet_Weights.IMAGENET1K_V1 (acc@1 56.522); the ImageNet-C paper rounds it to 43.5
# (Hendrycks & Dietterich, ICLR 2019, relative mCE definition).
ALEXNET_CLEAN_ERR = 0.43478

# The 15 corruptions that mCE averages and the 4 held-out validation ones (Hendrycks & Dietterich, ICLR 2019,
# section 3; the order of hendrycks/robustness ImageNet-C/test.py and imagecorruptions.get_corruption_names()).
C_BENCHMARK = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
               "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
               "jpeg_compression")
C_VALIDATION = ("speckle_noise", "gaussian_blur", "spatter", "saturate")

# The 10 ImageNet-P test perturbations that mFR / mT5D average (Hendrycks & Dietterich, ICLR 2019, section 3).
P_TEST = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow", "brightness", "translate", "rotate",
          "tilt", "scale")
P_VALIDATION = ("speckle_noise", "gaussian_blur", "spatter", "shear")


def _rows(name: str) -> list[dict]:
    with open(_DIR / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@lru_cache(maxsize=None)
def alexnet_c_errors() -> dict[str, tuple[float, ...]]:
    """AlexNet top-1 error per ImageNet-C corruption, severities 1..5.

    Source: hendrycks/robustness README "AlexNet ImageNet-C Error" (commit 76d93933); the averages match
    `ALEXNET_ERR` in google-research/augmix imagenet.py.
    """
    return {r["corruption"]: tuple(float(r[f"severity_{s}"]) for s in range(1, 6))
            for r in _rows("imagenet_c_alexnet_error.csv")}


@lru_cache(maxsize=None)
def alexnet_p() -> dict[str, dict[str, float]]:
    """AlexNet flip probability and top-5 distance per ImageNet-P perturbation.

    Source: Hendrycks & Dietterich, ICLR 2019, appendix E (draft in hendrycks/robustness, commit de7653a).
    """
    return {r["perturbation"]: {"fp": float(r["flip_probability"]), "t5d": float(r["top5_distance"]),
                                "split": r["split"]} for r in _rows("imagenet_p_alexnet.csv")}


@lru_cache(maxsize=None)
def imagenet_a_classes() -> tuple[tuple[int, ...], tuple[str, ...]]:
    """(indices into the 1000-way output, wnids) of the 200 ImageNet-A classes.

    Source: hendrycks/natural-adv-examples eval.py (`indices_in_1k`).
    """
    rows = _rows("imagenet_a_classes.csv")
    return tuple(int(r["index_in_1k"]) for r in rows), tuple(r["wnid"] for r in rows)


@lru_cache(maxsize=None)
def imagenet_r_classes() -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The 200 ImageNet-R classes. Source: hendrycks/imagenet-r eval.py."""
    rows = _rows("imagenet_r_classes.csv")
    return tuple(int(r["index_in_1k"]) for r in rows), tuple(r["wnid"] for r in rows)


@lru_cache(maxsize=None)
def published_results() -> list[dict]:
    """Headline published numbers (model, metric, value, source, note) for reference rows in reports."""
    return [{**r, "value": float(r["value"])} for r in _rows("published_results.csv")]


# --- official shifted sets and the scorecard: ImageNet-C-bar's severities, published numbers matched by model -------
@lru_cache(maxsize=None)
def imagenet_c_bar_severities() -> dict[str, tuple[float, ...]]:
    """ImageNet-C-bar corruption parameters of severities 1..5; make_imagenet_c_bar.py names a severity folder
    "{:.2f}" of its parameter. Source: facebookresearch/augmentation-corruption imagenet_c_bar/imagenet_c_bar.csv
    (commit c7d90e3)."""
    return {r["corruption"]: tuple(float(r[f"severity_{s}"]) for s in range(1, 6))
            for r in _rows("imagenet_c_bar_severities.csv")}


@lru_cache(maxsize=None)
def published_scorecard() -> list[dict]:
    """Published numbers matched to scored models by name (`match`: nsbench model names), each with the protocol that
    produced it. Sources per row (reference_data/README.md)."""
    out = []
    for r in _rows("published_scorecard.csv"):
        out.append({**r, "value": float(r["value"]), "value_text": r["value"], "match": tuple(m for m in r["match"].split(";") if m),
                    "img_size": int(r["img_size"]) if r["img_size"] else None,
                    "crop_pct": float(r["crop_pct"]) if r["crop_pct"] else None,
                    "n_images": int(r["n_images"]) if r["n_images"] else None})
    return out
