"""One trainer for both stages (pre-train, fine-tune) and both models (MSM4SR, SASRec).

Each step trains every position of a batch of windows (see core.data). Stages:
  pretrain  MSM4SR only: NIP + lambda * CMCL; valid NDCG@10 scored from content alone
            picks the epoch kept, with early stopping (pretrain_patience; 0 = keep the last)
  finetune  MSM4SR with ID embeddings, or SASRec: CE over all items, early stopping on
            valid NDCG@10; the best epoch's weights are kept.
Optimiser: AdamW (decoupled weight decay) with no decay on biases, norms and embeddings
(core.optim); `optimizer = "adam"` is Adam with L2 decay on every weight, as
RecBole and the paper use it (the "paper" preset).
Runs live in WS/runs/<run>/ (config.json, progress.jsonl, <stage>/last = resumable
state of the last completed epoch, <stage>/best, pretrain/model); the final model
goes to WS/models/<run>/. Randomness is re-seeded from (seed, stage, epoch) at each
epoch start, so a resumed run repeats exactly what an uninterrupted one would do.

Cancellation: `should_stop()` is polled after every step; the trainer then emits
"cancelled" pointing at the last completed epoch's resumable state and returns
(the command line exits 0). Work done in the unfinished epoch is not kept.

Data-parallel (`torchrun --nproc_per_node N -m core.cli train ...`, see core.distributed):
every rank draws the same seeded global order of windows and the same global batches
(item drop included); each global batch is cut into N contiguous, near-equal row shards
(core.distributed.shard_of), one per rank: a DistributedSampler-style split of one
shared order, so per-rank batch = global batch / N. The losses gather the query vectors
from all ranks (core.distributed.all_gather, autograd-aware), so their in-batch negatives
and their means are those of the global batch; DDP averages the gradients. Per-row random
draws (mixup swaps, query positions) are drawn for the whole global batch and cut, so they
equal one process's; dropout masks come from each rank's own torch seed (seed + rank), so
with dropout > 0 a run is statistically, not bitwise, the one-process run. Only rank 0
writes files and emits events; evaluation is sharded and its metric sums all-reduced.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from core import checkpoint, config as config_mod, distributed as dd, train_plan
from core.config import Config
from core.data import Dataset, batches, load_dataset, n_batches, windows
from core.errors import CheckpointError, InputError
from core.evaluate import evaluate, flat, mine, rank_cases, reduce_metrics
from core.optim import make_optimizer
from core.workspace import Workspace

STAGES = ("pretrain", "finetune")
Event = Callable[[dict], None]


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("--device mps: MPS is not available")
    return torch.device(name)


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def keep_freed_memory() -> bool:
    """Keep freed tensor memory in the process instead of handing it back to the kernel.

    glibc returns every large freed block to the kernel (munmap), so each training step
    page-faults its big tensors (the [targets, items] logits) in again: a fresh CPU
    fine-tuning run spent a third of its CPU time in the kernel. Turning off mmap for
    allocations and heap trimming keeps that memory for the next step (bench/bench_cpu_steps.py).
    Process-wide, so only training processes call it (the app trains in a subprocess).
    Linux with glibc only; elsewhere nothing changes. Returns whether it took effect."""
    import ctypes
    import sys
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


@dataclass
class RunResult:
    run: str
    run_dir: Path
    model_dir: Path | None = None
    metrics: dict = field(default_factory=dict)
    cancelled: bool = False
    epochs: dict = field(default_factory=dict)   # stage -> epochs completed
    curve: list = field(default_factory=list)    # (stage, epoch, wall seconds, valid ndcg@10)
    timing: dict = field(default_factory=dict)   # stage -> {"items_per_s", "epoch_s"}


def stages_for(cfg: Config, which: str) -> list[str]:
    """`which`: pretrain | finetune | train (both)."""
    if cfg.model == "sasrec":
        if which == "pretrain":
            raise InputError("SASRec has no pre-training stage; use `msm4sr train --model sasrec`")
        return ["finetune"]
    if which == "train":
        return ["pretrain", "finetune"] if cfg.pretrain else ["finetune"]
    return [which]


def manifest_for(model, cfg: Config, ds: Dataset, stage: str, metrics: dict) -> dict:
    return {
        "model": cfg.model, "stage": stage, "config": cfg.to_dict(),
        "item_ids": ds.item_ids, "dims": ds.dims(), "modalities": list(ds.features),
        "use_ids": bool(getattr(model, "use_ids", True)),
        "features": ds.identities,
        "dataset": {"fingerprint": ds.fingerprint, "users": len(ds.valid),
                    "train_sequences": len(ds.train), "cold_cases": len(ds.cold)},
        "metrics": flat(metrics), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


class Trainer:
    def __init__(self, ws: Workspace, cfg: Config, run: str | None = None, on_event: Event | None = None,
                 should_stop: Callable[[], bool] | None = None, resume: bool = False,
                 step_interval: float = 0.2,
                 resume_changes: dict | None = None):
        self.ws = ws
        self.run = run or f"{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}"
        if not self.run.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise InputError(f"run name {self.run!r}: use letters, digits, '-', '_' or '.'")
        self.run_dir = ws.runs_dir / self.run
        self.resume = resume
        if resume:
            saved = self.run_dir / "config.json"
            if not saved.is_file():
                raise InputError(f"nothing to resume: {saved} does not exist")
            cfg = config_mod.from_dict(json.loads(saved.read_text()))
            if resume_changes:  # e.g. fewer epochs; fit() saves the changed config with the run
                cfg = config_mod.load_config(base=cfg, overrides=config_mod.resume_overrides(cfg, resume_changes))
        elif self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise InputError(f"run {self.run!r} already exists in {ws.runs_dir}; "
                             f"use --resume to continue it or --run to name a new one")
        dd.barrier()  # every rank has checked before rank 0 creates the run folder
        self.main = dd.is_main()
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.should_stop = should_stop or (lambda: False)
        self.step_interval = step_interval
        self._listeners = [on_event] if on_event else []
        self._log = None
        if self.main:  # only rank 0 writes files and emits events
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._log = open(self.run_dir / "progress.jsonl", "a")
        self.t0 = time.perf_counter()
        self.result = RunResult(self.run, self.run_dir)

    # ---- events ---------------------------------------------------------
    def emit(self, event: dict) -> None:
        if not self.main:
            return
        line = json.dumps(event)
        self._log.write(line + "\n")
        self._log.flush()
        for f in self._listeners:
            f(event)

    # ---- the whole run ----------------------------------------------------
    def fit(self, which: str = "train", init_from=None) -> RunResult:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if self.device.type == "cpu":
            keep_freed_memory()
        try:
            if self.main:
                config_mod.save(cfg, self.run_dir / "config.json")
            ds = load_dataset(self.ws, cfg)
            self.ds = ds
            self.emit({"event": "start", "stage": which, "run": self.run, "device": str(self.device),
                       "config": cfg.to_dict()})
            stages = stages_for(cfg, which)
            self.emit(train_plan.describe(cfg, ds, stages, self.ws.counts()))
            model = None
            if init_from is not None:
                model = self._from_pretrained(init_from, ds)
            for stage in stages:
                model = self._stage(stage, ds, model)
                if self.result.cancelled:
                    return self.result
            final = self._finish(model, stages[-1], ds)
            self.emit({"event": "done", "checkpoint": str(final), "metrics": self.result.metrics})
            return self.result
        except Exception as e:
            self.emit({"event": "error", "message": str(e)})
            raise
        finally:
            if self._log:
                self._log.close()

    def _new_model(self, ds: Dataset):
        from core.model import build
        from core.model.sampled import NegativeSampler, use_sampled
        torch.manual_seed(self.cfg.seed)
        dims = ds.dims()
        model = build(self.cfg, ds.n_items, dims.get("text"), dims.get("image"))
        if use_sampled(self.cfg, ds.n_items):  # large catalogs: in-batch + drawn negatives
            model.sampler = NegativeSampler.for_dataset(ds.train, ds.n_items, self.cfg.sampled_negatives,
                                                        self.cfg.negative_sampler)
        if self.cfg.model == "msm4sr":
            model.seen.copy_(torch.from_numpy(ds.seen).float())
            model.set_features(ds.features)
        return model.to(self.device)

    def _from_pretrained(self, path, ds: Dataset):
        model, cfg, manifest, folder = checkpoint.load_model(path, self.device)
        if manifest["model"] != "msm4sr":
            raise CheckpointError(f"{folder}: --from needs an MSM4SR checkpoint, got {manifest['model']}")
        if manifest["item_ids"] != ds.item_ids:
            raise CheckpointError(f"{folder}: the checkpoint's items differ from this workspace's")
        diffs = checkpoint.feature_differences(manifest, ds.identities)
        if diffs or manifest.get("modalities") != list(ds.features):
            raise CheckpointError(f"{folder}: " + ("; ".join(diffs) or "modalities differ: checkpoint "
                                  f"{manifest.get('modalities')}, now {list(ds.features)}"))
        fresh = self._new_model(ds)
        fresh.load_state_dict(model.state_dict())
        return fresh

    def _stage(self, stage: str, ds: Dataset, model):
        cfg = self.cfg
        sdir = self.run_dir / stage
        done_flag = sdir / "done.json"
        if self.resume and done_flag.is_file():  # finished earlier: take its result and move on
            model = self._new_model(ds) if model is None else model
            model.use_ids = stage == "finetune" if cfg.model == "msm4sr" else True
            tensors = checkpoint.load_tensors(sdir / "best" / checkpoint.WEIGHTS)
            model.load_state_dict(tensors)
            self.result.epochs[stage] = json.loads(done_flag.read_text())["epochs"]
            return model
        if model is None:
            model = self._new_model(ds)
        if cfg.model == "msm4sr":
            model.use_ids = stage == "finetune"
        opt = make_optimizer(model, self.cfg, stage)
        step_fn = _LossOf(model)  # DDP hooks forward(); the model's loss is its forward here
        if dd.active():
            step_fn = torch.nn.parallel.DistributedDataParallel(
                step_fn, device_ids=[torch.cuda.current_device()] if self.device.type == "cuda" else None,
                find_unused_parameters=stage == "pretrain" or cfg.proj_heads)  # id_emb / heads: unused
        epochs = cfg.pretrain_epochs if stage == "pretrain" else cfg.finetune_epochs
        st = {"epoch": 0, "best": -1.0, "best_epoch": 0, "bad": 0, "elapsed": 0.0, "stage_s": 0.0,
              "train_s": 0.0, "valid_s": 0.0, "valid_n": 0}   # seconds training / validating
        budget = 60 * (cfg.pretrain_minutes if stage == "pretrain" else cfg.finetune_minutes)
        cadence = train_plan.Cadence.of(cfg, stage)
        last = checkpoint.state_folder(sdir / "last") if self.resume else None
        if last is not None:
            st.update(checkpoint.load_state(last, model, opt))
            self.t0 -= st["elapsed"]
        wins = windows(ds.train, cfg.max_len)
        bs = cfg.pretrain_batch if stage == "pretrain" else cfg.finetune_batch
        steps = n_batches(len(wins), bs)
        stage_id = STAGES.index(stage)
        last_emit = 0.0
        for epoch in range(st["epoch"] + 1, epochs + 1):
            seed = [cfg.seed, stage_id, epoch]
            rng = np.random.default_rng(seed)
            torch.manual_seed(int(np.random.default_rng(seed).integers(2**62)) + dd.rank())  # dropout
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            model.train()
            t_epoch, n_targets = time.perf_counter(), 0
            drop = cfg.item_drop_max if stage == "pretrain" else 0.0
            for step, (inp, tgt) in enumerate(batches(wins, cfg.max_len, bs, rng, drop), 1):
                n_targets += int((tgt > 0).sum())  # of the global batch
                rows = len(inp)  # the last batch of an epoch is smaller: fewer in-batch negatives
                shard = None
                if dd.active():  # this rank's rows of the global batch
                    shard = dd.shard_of(len(inp))
                    inp, tgt = inp[shard.start:shard.stop], tgt[shard.start:shard.stop]
                inp, tgt = inp.to(self.device, non_blocking=True), tgt.to(self.device, non_blocking=True)
                with autocast(self.device):
                    loss, parts = step_fn(inp, tgt, stage, gen, shard)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                now = time.perf_counter()
                if now - last_emit >= self.step_interval or step == steps:
                    last_emit = now
                    rate = n_targets / max(now - t_epoch, 1e-9)
                    per_step = (now - t_epoch) / step
                    left = (steps - step) + steps * (epochs - epoch)
                    self.emit({"event": "step", "stage": stage, "epoch": epoch, "step": step,
                               "steps": steps, "rows": rows, "batch": bs, "loss": float(loss.detach()),
                               "losses": {k: float(v.detach()) for k, v in parts.items()},
                               "items_per_s": round(rate, 1), "eta_s": round(per_step * left, 1)})
                if dd.any_rank(self.should_stop()):
                    return self._cancel(stage, model, opt, st)
            seconds = time.perf_counter() - t_epoch
            self.result.timing[stage] = {"items_per_s": n_targets / seconds, "epoch_s": seconds}
            valid, v_s = {}, 0.0
            st["train_s"] += seconds
            ending = epoch == epochs or bool(budget and st["stage_s"] + seconds >= budget)
            if dd.any_rank(cadence.due(epoch, ending, st)):   # the same choice on every rank
                t_valid = time.perf_counter()
                valid = reduce_metrics(rank_cases(model, mine(ds.valid), cfg.max_len, cfg.eval_batch))
                valid = {k: valid[k] for k in ("ndcg@10", "recall@10")}
                v_s = time.perf_counter() - t_valid
                st["valid_s"], st["valid_n"] = st["valid_s"] + v_s, st["valid_n"] + 1
                self.result.curve.append((stage, epoch, time.perf_counter() - self.t0, valid["ndcg@10"]))
            share = st["valid_s"] / max(st["train_s"] + st["valid_s"], 1e-9)
            self.emit({"event": "epoch", "stage": stage, "epoch": epoch, "valid": valid,
                       "seconds": round(seconds, 2), "valid_s": round(v_s, 4),
                       "valid_share": round(share, 4)})   # validation's share of the stage so far
            st["epoch"], st["elapsed"] = epoch, time.perf_counter() - self.t0
            st["stage_s"] += time.perf_counter() - t_epoch
            patience = cfg.patience if stage == "finetune" else cfg.pretrain_patience
            improved = valid and valid["ndcg@10"] > st["best"]
            if improved or (patience == 0 and valid):  # patience 0: the last epoch is kept
                st.update(best=valid["ndcg@10"], best_epoch=epoch, bad=0)
                if self.main:
                    checkpoint.save_tensors(_mk(sdir / "best") / checkpoint.WEIGHTS, model.state_dict())
            elif valid:
                st["bad"] += 1
            if self.main:
                checkpoint.save_state(sdir / "last", model, opt, st)
            self.emit({"event": "checkpoint", "path": str(sdir / "last")})
            if patience and st["bad"] >= patience:
                break
            if dd.any_rank(bool(budget and st["stage_s"] >= budget)):  # budget spent (any rank): end stage
                break
        if self.main and not (sdir / "best" / checkpoint.WEIGHTS).is_file():  # no epoch evaluated: keep last
            checkpoint.save_tensors(_mk(sdir / "best") / checkpoint.WEIGHTS, model.state_dict())
        dd.barrier()  # rank 0 has written best/ before every rank reads it
        model.load_state_dict(checkpoint.load_tensors(sdir / "best" / checkpoint.WEIGHTS))
        self.result.epochs[stage] = st["epoch"]
        if self.main:  # done.json last: a stage marked done has all its files
            if stage == "pretrain":
                checkpoint.save_model(sdir / "model", model, manifest_for(model, self.cfg, ds, stage, {}))
            done_flag.write_text(json.dumps({"epochs": st["epoch"], "best_epoch": st["best_epoch"]}))
        dd.barrier()
        return model

    def _cancel(self, stage, model, opt, st):
        last = self.run_dir / stage / "last"
        if self.main and not (last / checkpoint.STATE).is_file():  # nothing completed yet: keep what we have
            checkpoint.save_state(last, model, opt, st)
        self.result.cancelled = True
        self.emit({"event": "cancelled", "checkpoint": str(last)})
        return model

    def _finish(self, model, stage: str, ds: Dataset) -> Path:
        metrics = evaluate(model, ds, self.cfg.max_len, batch=self.cfg.eval_batch)
        self.result.metrics = metrics
        out = self.ws.models_dir / self.run
        if self.main:
            if out.exists():
                shutil.rmtree(out)
            checkpoint.save_model(out, model, manifest_for(model, self.cfg, ds, stage, metrics))
        dd.barrier()
        self.result.model_dir = out
        return out


class _LossOf(torch.nn.Module):
    """The model's training loss as forward(), so DistributedDataParallel can wrap it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, inp, tgt, stage, gen, shard):
        if shard is None:
            return self.model.loss(inp, tgt, stage, gen)
        return self.model.loss(inp, tgt, stage, gen, shard=shard)


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def train(ws: Workspace, cfg: Config, which: str = "train", run: str | None = None,
          init_from=None, resume: bool = False, on_event: Event | None = None,
          should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Train `which` (pretrain | finetune | train) and write WS/models/<run>/."""
    return Trainer(ws, cfg, run, on_event, should_stop, resume).fit(which, init_from)
