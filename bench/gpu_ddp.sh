#!/usr/bin/env bash
# Data-parallel smoke benchmark for a GPU machine: the same small training run once as a
# plain process and once through torchrun (DDP, nccl; NPROC processes, default 1 = the
# one-GPU path), each capped at a few minutes, then items/s per stage and the final test
# NDCG@10 of both. Workspace: the first USERS (default 1000) users of ml-1m-posters with
# made-up feature vectors (tests/model_fixtures.py), built once under $BENCH_DIR.
# Well within 10 minutes:  bash bench/gpu_ddp.sh   (NPROC=2 on a 2-GPU machine)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
NPROC=${NPROC:-1}
DEVICE=${DEVICE:-cuda}   # DEVICE=cpu: a dry run of this script (gloo) on a machine without a GPU
USERS=${USERS:-1000}
BENCH_DIR=${BENCH_DIR:-/tmp/msm4sr-gpu-ddp}
ML1M=${ML1M:-$(cd .. && pwd)/shared/datasets/ml-1m-posters}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=4 PYTHONPATH=$PWD
[ "$DEVICE" = cpu ] || "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), torch.__version__)"
[ -d "$ML1M" ] || { echo "ml-1m-posters not found at $ML1M (set ML1M=...)"; exit 2; }
WS=$BENCH_DIR/ws-$USERS
# the marker is written last: a folder without it is a build that stopped half-way
if [ -f "$WS.done" ]; then
  echo "workspace $WS: reused (built $(cat "$WS.done"))"
else
  [ -e "$WS" ] && echo "workspace $WS: no done marker, rebuilding" && rm -rf "$WS"
  mkdir -p "$BENCH_DIR"
  "$PY" -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from model_fixtures import make_workspace; make_workspace(Path('$WS'), Path('$ML1M'), users=$USERS, dim=384, vectors=4).close()"
  date -u +%Y-%m-%dT%H:%MZ > "$WS.done"
fi
SETS=(--device "$DEVICE" --set pretrain_epochs=3 --set finetune_epochs=3 --set pretrain_minutes=1 --set finetune_minutes=1
      --set pretrain_batch=256 --set finetune_batch=256 --progress-json)
STAMP=$(date +%H%M%S)
timeout 240 "$PY" -m core.cli train "$WS" --run one-$STAMP "${SETS[@]}" > "$BENCH_DIR/one.jsonl"
timeout 240 "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m core.cli -- \
  train "$WS" --run ddp-$STAMP "${SETS[@]}" > "$BENCH_DIR/ddp.jsonl"
"$PY" - "$BENCH_DIR" "$NPROC" <<'PY'
import json, sys
for name in ("one", "ddp"):
    ev = [json.loads(x) for x in open(f"{sys.argv[1]}/{name}.jsonl") if x.startswith("{")]
    rate = {}
    for e in ev:
        if e["event"] == "step":
            rate[e["stage"]] = e["items_per_s"]
    done = [e for e in ev if e["event"] == "done"]
    ndcg = done[-1]["metrics"]["test"]["ndcg@10"] if done else float("nan")
    label = "1 process" if name == "one" else f"torchrun x{sys.argv[2]}"
    print(f"{label:<12} items/s {rate}  epochs {sum(e['event'] == 'epoch' for e in ev)}  test ndcg@10 {ndcg:.4f}")
PY
