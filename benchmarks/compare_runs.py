"""Compare two run folders: the raw sha256 of every iteration's checkpoint, history.csv and pseudo-label store file,
then their content (state-dict tensors byte by byte; metadata, history and split.json with the wall-clock fields and
keys only one side has masked). Runs with a live clock differ in raw bytes (checkpoint `created`, train_seconds and
the parent's hash that chains them); benchmarks/frozen_train.py makes them comparable byte for byte.

    python benchmarks/compare_runs.py RUN_A RUN_B      # exit status 0 when the content is identical
"""
import hashlib, json, sys
from pathlib import Path
import pandas as pd, torch

TIMING_META = [("created",), ("metrics", "train_seconds"), ("parent_sha256",)]
TIMING_HIST = ["seconds", "images_per_s"]

def sha(p): return hashlib.sha256(Path(p).read_bytes()).hexdigest()

def content(p):
    obj = torch.load(p, map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    for k, v in obj["state_dict"].items():
        h.update(k.encode()); h.update(str(v.dtype).encode()); h.update(str(tuple(v.shape)).encode())
        h.update(v.numpy().tobytes())
    meta = json.loads(obj["meta"])
    for path in TIMING_META:
        d = meta
        for key in path[:-1]: d = d.get(key, {})
        d.pop(path[-1], None)
    return h.hexdigest(), hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()

a, b = Path(sys.argv[1]), Path(sys.argv[2])
ok = True
for ck in sorted(a.glob("iter*.pt")):
    ra, rb = sha(ck), sha(b / ck.name)
    (sa, ma), (sb, mb) = content(ck), content(b / ck.name)
    print(f"{ck.name}: raw {ra[:16]} vs {rb[:16]} {'SAME' if ra == rb else 'differ'} | tensors {sa[:16]} vs {sb[:16]} "
          f"{'SAME' if sa == sb else 'DIFFER'} | meta-minus-timing {'SAME' if ma == mb else 'DIFFER'}")
    ok &= sa == sb and ma == mb
for f in ["history.csv"] + [str(p.relative_to(a)) for p in sorted(a.glob("iter*/pseudo/*"))] + ["split.json", "config.yaml"]:
    ra, rb = sha(a / f), sha(b / f)
    line = f"{f}: raw {ra[:16]} vs {rb[:16]} {'SAME' if ra == rb else 'differ'}"
    if f == "history.csv":
        ha, hb = pd.read_csv(a / f).drop(columns=TIMING_HIST), pd.read_csv(b / f).drop(columns=TIMING_HIST)
        same = ha.equals(hb); ok &= same
        line += f" | minus {TIMING_HIST}: {'SAME' if same else 'DIFFER'}"
    elif f == "split.json":  # newer runs add keys (e.g. "classes"); the keys both have must agree
        ja, jb = json.loads((a / f).read_text()), json.loads((b / f).read_text())
        added = sorted(set(jb) - set(ja)); jb = {k: v for k, v in jb.items() if k in ja}
        ok &= ja == jb
        line += f" | json minus added keys {added}: {'SAME' if ja == jb else 'DIFFER'}"
    elif f.endswith("stats.json"):
        ja, jb = json.loads((a / f).read_text()), json.loads((b / f).read_text()); ok &= ja == jb
        line += f" | json {'SAME' if ja == jb else 'DIFFER'}"
    else:
        ok &= ra == rb
    print(line)
print("ALL CONTENT IDENTICAL" if ok else "CONTENT DIFFERS")
sys.exit(0 if ok else 1)
