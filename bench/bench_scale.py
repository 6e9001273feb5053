"""Large catalogs end to end: import, training steps, evaluation, recommendation and search,
each phase in a fresh process (its peak RSS is its own; evaluation's is measured after
training's memory is let go and the peak reset), and the same at 3.4k items.

    .venv/bin/python bench/bench_scale.py --items 1000000 --interactions 10000000 [--json]
    .venv/bin/python bench/bench_scale.py --items 200000 --interactions 2000000   # CI-sized
    .venv/bin/python bench/bench_scale.py --sweep 5000,20000,50000,100000        # auto threshold

A synthetic catalog (titles from a small word list, items drawn Zipf-like, 20 interactions
a user) is written as a TSV and imported with the real importer. `--features random` (the
default) writes random float16 text vectors (10 x 384, Sentence-BERT's shape) instead of
running Sentence-BERT, and says so. Training figures are items/s over `--steps` fine-tuning
steps of SASRec and MSM4SR (the sampled softmax switches on by itself above
full_softmax_max_items); an epoch at 10M interactions is 1,500 steps, hours on a CPU.
Evaluation ranks the test items of up to 10k users against the whole catalog. Recommend
times `Recommender.recommend` (what `msm4sr recommend` runs) on 30 test histories, their
own items left out, as the CLI does on a catalog without repeats.
The sweep compares the full and the sampled softmax step at each size (the auto threshold).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = ("red blue green small large steel glass lab kit set pro mini digital manual clear "
         "heavy light portable sterile round flat micro macro basic premium").split()

PREP = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from core.importers import ImportOptions, import_catalog
from core.workspace import Workspace
tsv, items_tsv, wsdir, V = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
t = time.perf_counter()
with Workspace.create(wsdir) as ws:
    rep = import_catalog(ws, "tsv", {"interactions": tsv, "items": items_tsv}, ImportOptions(kcore=5))
    import_s = time.perf_counter() - t
    import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ids = sorted(i.id for i in ws.items())
import torch   # after the import's peak: the importer itself never loads torch
from core.features import store
n, g = len(ids), torch.Generator().manual_seed(0)
x = torch.empty(n, V, 384, dtype=torch.float16)
for lo in range(0, n, 65536):   # in chunks: one float32 draw of 1M x 10 x 384 is 15 GB
    x[lo:lo + 65536] = torch.nn.functional.normalize(torch.randn(len(x[lo:lo + 65536]), V, 384, generator=g), dim=-1).half()
store.save(Path(wsdir) / "features", "text", store.FeatureSet(ids, x, torch.ones(n, V, dtype=torch.bool),
                                                               {"model": "random (bench_scale --features random)"}))
print(json.dumps({"import_s": import_s, "import_peak_rss_mb": import_rss, "users": rep.users,
                  "items": rep.items, "interactions": rep.interactions}))
"""

TRAIN = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
from core.config import load_config
from core.data import batches, load_dataset, windows
from core.model import build
from core.model.sampled import NegativeSampler, use_sampled
from core.optim import make_optimizer
from core.train import keep_freed_memory
from core.workspace import Workspace
keep_freed_memory()
kind, steps = sys.argv[3], int(sys.argv[4])
cfg = load_config(overrides={"model": kind})
with Workspace.open(sys.argv[2]) as ws:
    ds = load_dataset(ws, cfg)
torch.manual_seed(0)
model = build(cfg, ds.n_items, ds.dims().get("text"), ds.dims().get("image"))
if use_sampled(cfg, ds.n_items):
    model.sampler = NegativeSampler.for_dataset(ds.train, ds.n_items, cfg.sampled_negatives)
if kind == "msm4sr":
    model.seen.copy_(torch.from_numpy(ds.seen).float())
    model.set_features(ds.features)
    model.use_ids = True
opt = make_optimizer(model, cfg, "finetune")
rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
it = batches(windows(ds.train, cfg.max_len), cfg.max_len, cfg.finetune_batch, rng)
n, spent = 0, 0.0
for step in range(steps + 1):
    inp, tgt = next(it)
    t = time.perf_counter()
    loss, _ = model.loss(inp, tgt, "finetune", gen)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if step:   # the first step allocates: left out
        spent += time.perf_counter() - t
        n += int((tgt > 0).sum())
out = {"items_per_s": n / spent, "sampled": use_sampled(cfg, ds.n_items),
       "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
def hwm_mb():   # this process's peak resident set since the last reset (Linux)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
if kind == "msm4sr":   # what the app does with the model: evaluate, recommend, search
    from core.evaluate import rank_cases
    from core.recommend import Recommender
    model.eval()
    # the evaluation's own peak, as if a fresh process loaded the model: training's optimiser
    # and the feature pages it read are let go, then the peak is reset (clear_refs 5)
    del opt
    import gc; gc.collect()
    for x, _ in model.feats.values():
        x.release_pages()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    out["rss_before_eval_mb"] = hwm_mb()
    with Workspace.open(sys.argv[2]) as ws:
        t = time.perf_counter()   # the item vectors and the [N, K] table, as `msm4sr recommend` loads them
        rec = Recommender(model, cfg, {"item_ids": ds.item_ids, "model": "msm4sr",
                                       "modalities": list(ds.features)}, None, ws, torch.device("cpu"))
        out["item_table_s"] = time.perf_counter() - t
        cases = ds.test[:10_000]
        t = time.perf_counter()
        rank_cases(model, cases, cfg.max_len, table=rec.table, inputs=rec.inputs)
        out["eval_s"], out["eval_users"] = time.perf_counter() - t, len(cases)
        lat = []
        for h, _ in ds.test[:30]:   # the CLI's default on a catalog without repeats: history left out
            seq = [ds.item_ids[i - 1] for i in h[-cfg.max_len:]]
            t = time.perf_counter()
            rec.recommend(seq, k=10, exclude=seq)
            lat.append(time.perf_counter() - t)
        out["recommend_ms_median"] = 1000 * float(np.median(lat))
        lat = []
        for q in ("steel", "red kit", "mini", "portable lab", "glass 12", "zzz"):
            t = time.perf_counter()
            ws.search(q, limit=200)
            lat.append(time.perf_counter() - t)
    out["search_ms_median"] = 1000 * float(np.median(lat))
    out["eval_peak_rss_mb"] = hwm_mb()
print(json.dumps(out))
"""

STEP = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
from core.config import load_config
from core.data import batches, windows
from core.model import build
from core.model.sampled import NegativeSampler
from core.optim import make_optimizer
what, n, steps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
p = 1.0 / np.arange(1, n + 1) ** 0.8
p /= p.sum()
seqs = list(rng.choice(n, size=(max(n // 2, 1), 20), p=p) + 1)
cfg = load_config(overrides={"softmax": what})
g = torch.Generator().manual_seed(0)
x = torch.empty(n + 1, 10, 384, dtype=torch.float16)
for lo in range(0, n + 1, 65536):
    x[lo:lo + 65536] = torch.randn(len(x[lo:lo + 65536]), 10, 384, generator=g).half()
model = build(cfg, n, 384, None)
model.set_features({"text": (x, torch.ones(n + 1, 10, dtype=torch.bool))})
model.seen[1:] = 1
model.use_ids = True
model.sampler = NegativeSampler.for_dataset(seqs, n, cfg.sampled_negatives)
opt = make_optimizer(model, cfg, "finetune")
it = batches(windows(seqs, cfg.max_len), cfg.max_len, cfg.finetune_batch, rng)
times = []
for step in range(steps + 1):
    inp, tgt = next(it)
    t = time.perf_counter()
    loss, _ = model.loss(inp, tgt, "finetune", g)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if step:
        times.append(time.perf_counter() - t)
print(json.dumps({"step_s": float(np.median(times)),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, *args) -> dict:
    r = subprocess.run([sys.executable, "-c", code, str(REPO), *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"bench_scale: a phase failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def write_catalog(folder: Path, n_items: int, m: int) -> tuple[Path, Path]:
    import numpy as np
    rng = np.random.default_rng(0)
    items = folder / "items.tsv"
    with open(items, "w") as f:
        f.write("item_id\ttitle\tcategories\n")
        w = rng.integers(0, len(WORDS), size=(n_items, 3)).tolist()
        f.writelines(f"i{k}\t{WORDS[a]} {WORDS[b]} {WORDS[c]} {k % 97}\tcat{k % 40}\n"
                     for k, (a, b, c) in enumerate(w))
    p = 1.0 / np.arange(1, n_items + 1) ** 0.7
    p /= p.sum()
    inter = folder / "interactions.tsv"
    with open(inter, "w") as f:
        f.write("user_id\titem_id\ttimestamp\n")
        for lo in range(0, m, 1_000_000):
            k = np.arange(lo, min(lo + 1_000_000, m))
            it = rng.choice(n_items, size=len(k), p=p)
            f.writelines(f"u{u}\ti{i}\t{1_600_000_000 + t}\n"
                         for u, i, t in zip((k // 20).tolist(), it.tolist(), k.tolist()))
    return inter, items


def measure(n_items: int, m: int, steps: int, vectors: int, tmp: Path, log) -> dict:
    folder = tmp / f"n{n_items}"
    folder.mkdir()
    inter, items = write_catalog(folder, n_items, m)
    out = child(PREP, inter, items, folder / "ws", vectors)
    log(f"  imported: {json.dumps(out)}")
    train = {k: child(TRAIN, folder / "ws", k, steps) for k in ("sasrec", "msm4sr")}
    log(f"  trained:  {json.dumps(train)}")
    ms = train["msm4sr"]
    out.update(finetune_items_per_s={k: v["items_per_s"] for k, v in train.items()},
               sampled_softmax={k: v["sampled"] for k, v in train.items()},
               train_peak_rss_mb=max(v["peak_rss_mb"] for v in train.values()),
               eval_s=ms["eval_s"], eval_users=ms["eval_users"], eval_peak_rss_mb=ms["eval_peak_rss_mb"],
               item_table_s=ms["item_table_s"], recommend_ms_median=ms["recommend_ms_median"],
               search_ms_median=ms["search_ms_median"], features="random")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--interactions", type=int, default=None, help="default: 10 per item")
    ap.add_argument("--features", choices=("random",), default="random",
                    help="random float16 vectors instead of Sentence-BERT (the only choice here)")
    ap.add_argument("--vectors", type=int, default=10, help="text vectors per item")
    ap.add_argument("--steps", type=int, default=10, help="fine-tuning steps timed per model")
    ap.add_argument("--small", type=int, default=3_416, help="the small catalog of the ratios")
    ap.add_argument("--sweep", default=None, help="item counts: full against sampled softmax steps")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if a.json else (lambda s: print(s, flush=True))
    if a.sweep:
        rows = []
        for n in (int(s) for s in a.sweep.split(",")):
            got = {w: child(STEP, w, n, a.steps) for w in ("full", "sampled")}
            rows.append({"items": n, **{f"{w}_step_s": v["step_s"] for w, v in got.items()},
                         **{f"{w}_peak_rss_mb": v["peak_rss_mb"] for w, v in got.items()}})
            log(json.dumps(rows[-1]))
        if not a.json:
            print(f"\n{'items':>9} {'full s':>8} {'sampled s':>10} {'full/sampled':>13}")
            for r in rows:
                print(f"{r['items']:>9,} {r['full_step_s']:>8.2f} {r['sampled_step_s']:>10.2f} "
                      f"{r['full_step_s'] / r['sampled_step_s']:>13.2f}")
        else:
            print(json.dumps(rows, indent=2))
        return 0
    log("features: random float16 vectors (--features random), Sentence-BERT not run")
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "bench" / "results") as d:  # ignored by git
        tmp = Path(d)
        log(f"{a.items:,} items:")
        big = measure(a.items, a.interactions or 10 * a.items, a.steps, a.vectors, tmp, log)
        log(f"{a.small:,} items:")
        big["small"] = measure(a.small, 300 * a.small, a.steps, a.vectors, tmp, log)
    if a.json:
        print(json.dumps(big, indent=2))
        return 0
    s = big["small"]
    print(f"\n{'':24} {a.items:>12,} {a.small:>10,} {'ratio':>7}")
    for key in ("import_s", "import_peak_rss_mb", "train_peak_rss_mb", "eval_s", "eval_peak_rss_mb",
                "item_table_s", "recommend_ms_median", "search_ms_median"):
        print(f"{key:24} {big[key]:>12.1f} {s[key]:>10.1f} {big[key] / max(s[key], 1e-9):>7.2f}")
    for k in ("sasrec", "msm4sr"):
        b, sm = big["finetune_items_per_s"][k], s["finetune_items_per_s"][k]
        print(f"{'items/s ' + k:24} {b:>12.0f} {sm:>10.0f} {b / sm:>7.2f}"
              f"{'  (sampled softmax)' if big['sampled_softmax'][k] else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
