"""How the robustness sets were made, in words, once per distinct set: the -C / -P / -A sets each model was scored
on (meta.json `sets`), and for a built -A set what it is, how it was filtered and how strong each filter was."""
from __future__ import annotations

from ..schema import NATURAL_ADVERSARIAL
from . import fmt
from .compare import Report
from .load import EvalResult


def describe(evals: list[EvalResult]) -> list[dict]:
    """One {task, text} per distinct set (by task and folder or source), in the models' order."""
    seen, out = set(), []
    for r in evals:
        for task, info in (r.meta.get("sets") or {}).items():
            if not isinstance(info, dict):
                continue
            key = (task, str(info.get("folder") or info.get("source")))
            if key in seen:
                continue
            seen.add(key)
            text = a_description(info) if task == NATURAL_ADVERSARIAL and "references" in info else fmt.text(info)
            out.append({"task": fmt.task_label(task), "text": text})
    return out


def section(report: Report) -> list[dict]:
    return describe(report.evals)


def a_description(info: dict) -> str:
    """What a built -A set is, how it was filtered and how strong each filter was: a set that weak references
    filtered is easy, one full of label noise rewards fitting the references' mistakes."""
    refs = []
    for x in info["references"]:
        rounds = x.get("rounds")
        cap = ""
        if x.get("cap_binding"):
            gain = f" (last round +{fmt.num(x['last_gain'], 2)} points)" if fmt.finite(x.get("last_gain")) else ""
            cap = f", stopped by the cap of {x.get('max_rounds')} rounds while still improving{gain}"
        reached = (f"held-out top-1 {fmt.num(x['val_top1'])}% after {rounds} round(s){cap}, "
                   if x.get("val_top1") is not None else "")
        refs.append(f"{x.get('arch')} seed {x.get('seed')} ({reached}pool top-1 {fmt.num(x.get('pool_top1'))}%, "
                    f"0% on the kept images by construction)")
    how = info.get("reference_training") or f"{info.get('ref_epochs')} epochs"
    what = info.get("what_it_measures") or "a built -A set: images that reference classifiers of this dataset all get wrong"
    text = (f"{what[0].upper()}{what[1:]}. {info.get('n')} images kept of a pool of {info.get('n_pool')} "
            f"({info.get('pool')}): {info.get('rule')}.")
    c = info.get("consensus")
    if isinstance(c, dict) and c.get("n_references", 0) >= 2:
        top = ", ".join(f"{k} {v}" for k, v in list((c.get("by_true_class") or {}).items())[:3])
        agreed = ", ".join(f"{k} {v}" for k, v in list((c.get("by_agreed_class") or {}).items())[:3])
        fate = "excluded from the set" if c.get("rule") == "exclude" else "kept in the set"
        text += (f" Of the {info.get('n_all_wrong')} images every reference gets wrong, {c.get('n')} "
                 f"({fmt.num(100 * c['rate']) if fmt.finite(c.get('rate')) else '–'}%) have all references naming the same "
                 f"wrong class, likely label noise, {fate} (true classes: {top or '–'}; named: {agreed or '–'}).")
    if info.get("skipped_unreadable"):
        text += f" {info['skipped_unreadable']} unreadable pool image(s) skipped."
    limit = info.get("ref_train_limit")
    images = f"{limit} training images" if limit else "all training images"
    return (f"{text} Reference models trained on {images} ({how}): "
            f"{'; '.join(refs)}. The weaker the references, the easier the set: compare their held-out accuracy with "
            f"the models' clean accuracy.")
