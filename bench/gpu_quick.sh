#!/usr/bin/env bash
# The quick model benchmark on CUDA (bf16 autocast): ~1000 users of ml-1m-posters,
# 1 minute of training per model, then the printed throughput (items/s per stage),
# evaluation-pass seconds and recommendation latency. Well within 10 minutes on one GPU
# once the workspace is cached (first run: import + text features, a few minutes).
#   bash bench/gpu_quick.sh [extra bench_model.py args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$PY" bench/bench_model.py --quick --device cuda "$@"
"$PY" - <<'PY'
import json
r = json.load(open("bench/results/bench_model_quick_cuda.json"))
for name, m in r["models"].items():
    t = {s: round(v["items_per_s"]) for s, v in m["timing"].items()}
    print(f"{name:<20} items/s {t}  eval pass {m['eval_pass_s']}s  test ndcg@10 {m['test']['ndcg@10']:.4f}")
PY
