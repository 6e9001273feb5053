"""Images -> keywords with CLIP zero-shot classification over a word vocabulary.

The open_clip zero-shot pattern: each vocabulary word is put in prompt templates,
encoded by CLIP's text tower and normalised; an image's score for a word is the
softmax over 100 * cosine. The top m words become the image's keywords (MSM4SR).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path

from core import paths
from core.errors import StudioError

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_TAG = "laion2b_s34b_b79k"
# One prompt template: the vocabulary is encoded once per (model, vocabulary) and cached, but
# on a CPU each template costs minutes with ViT-B-32 (77-token context per word).
TEMPLATES = ("a photo of {}.",)
VOCABULARY = paths.vocabulary_file()   # the shipped word list (core.paths: wheel or checkout)
_HINT = "Pass --clip-weights FILE.safetensors, or continue without image keywords."


class ClipUnavailable(StudioError):
    """CLIP weights cannot be had; image keywords are skipped, the rest goes on."""


# ---- vocabulary ----------------------------------------------------------
def base_vocabulary(path: Path = VOCABULARY) -> list[str]:
    words = [w.strip().lower() for w in Path(path).read_text(encoding="utf-8").splitlines()]
    return [w for w in words if w]


def catalog_words(items, min_count: int = 2) -> list[str]:
    """Lowercase alphabetic tokens (>= 3 letters, no stop words) of titles, categories and
    descriptions that occur at least `min_count` times in the catalog."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    counts: Counter[str] = Counter()
    for it in items:
        text = " ".join((it.title, it.categories.replace("|", " "), it.text)).lower()
        counts.update(re.findall(r"[a-z]{3,}", text))
    return sorted(w for w, n in counts.items() if n >= min_count and w not in ENGLISH_STOP_WORDS)


def build_vocabulary(items, base: list[str] | None = None) -> list[str]:
    """The base list plus the catalog's own frequent words, sorted, without repeats."""
    base = base_vocabulary() if base is None else [w.strip().lower() for w in base if w.strip()]
    return sorted(set(base) | set(catalog_words(items)))


def vocab_sha256(words: list[str]) -> str:
    return hashlib.sha256("\n".join(words).encode()).hexdigest()


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- weights ---------------------------------------------------------------
def _offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub.constants import is_offline_mode
        return bool(is_offline_mode())
    except ImportError:
        return False


def _reachable(timeout: float = 3.0) -> bool:
    """A quick connect to the hub, so that no network fails in seconds, not after retries."""
    import socket
    from urllib.parse import urlparse
    from huggingface_hub import constants
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


def _pretrained_file(model: str, tag: str) -> str:
    """The local file of open_clip's weights `tag` for `model`: cached, or downloaded
    (hub calls use a short timeout; none at all when offline)."""
    import open_clip
    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        known = ", ".join(t for m, t in open_clip.list_pretrained() if m == model) or "none"
        raise ClipUnavailable(f"CLIP weights for {model} ({tag}) are not available: open_clip "
                              f"knows no such tag for {model} (known: {known}). {_HINT}")
    def cant(why: str = "") -> ClipUnavailable:
        return ClipUnavailable(f"CLIP weights for {model} ({tag}) are not available: open_clip "
                               f"could not download them (no network?{why}). {_HINT}")
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
        repo, filename = os.path.split(hub)  # open_clip's 'org/name/file' form
        filename = filename or "open_clip_pytorch_model.bin"
        names = [filename]
        if filename.endswith((".bin", ".pth")):  # prefer a safetensors twin, as open_clip does
            names.insert(0, "open_clip_model.safetensors" if filename == "open_clip_pytorch_model.bin"
                         else filename[:-4] + ".safetensors")
        for name in names:
            cached = try_to_load_from_cache(repo, name)
            if isinstance(cached, str):
                return cached
        if _offline():
            raise cant("; offline mode is set: HF_HUB_OFFLINE")
        if not _reachable():
            raise cant("; the model hub cannot be reached")
        for name in names:
            try:
                return hf_hub_download(repo, name, etag_timeout=5)
            except Exception as e:  # noqa: BLE001 - any failure: weights are not to be had
                last = e
        raise cant(f"; {type(last).__name__}")
    url = cfg.get("url", "")
    ours = paths.cache_dir() / "clip"           # downloads go to the platform's cache folder;
    for folder in (ours, Path("~/.cache/clip").expanduser()):   # open_clip's own is read too
        cached = folder / os.path.basename(url)
        if url and cached.is_file():
            return str(cached)
    if not url or _offline():
        raise cant()
    import socket
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)  # urllib has no timeout of its own here
    try:
        return open_clip.download_pretrained_from_url(url, cache_dir=str(ours))
    except Exception as e:  # noqa: BLE001
        raise cant(f"; {type(e).__name__}") from e
    finally:
        socket.setdefaulttimeout(old)


class KeywordExtractor:
    def __init__(self, clip, preprocess, tokenizer, model: str, pretrained: str | None,
                 weights_sha256: str | None, weights: str | None, device: str):
        self.clip, self.preprocess, self.tokenizer = clip, preprocess, tokenizer
        self.model, self.pretrained = model, pretrained
        self.weights_sha256, self.weights = weights_sha256, weights
        self.device = device
        self.words: list[str] = []
        self.vocab_sha256 = ""
        self._vocab = None
        self._short_ok: bool | None = None

    @classmethod
    def load(cls, model: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_TAG,
             weights=None, device: str | None = None) -> "KeywordExtractor":
        """CLIP `model` with open_clip's weights `pretrained`, or a local .safetensors `weights`
        file. Raises ClipUnavailable when the weights cannot be had."""
        import open_clip
        device = device or "cpu"
        if model not in open_clip.list_models():
            raise ClipUnavailable(f"unknown CLIP architecture {model!r}; open_clip knows e.g. "
                                  f"{DEFAULT_MODEL}. {_HINT}")
        sha = None
        if weights is not None:
            path = Path(weights)
            if path.suffix.lower() != ".safetensors":
                raise ClipUnavailable(f"{path}: only .safetensors CLIP weight files are accepted "
                                      "(other formats can run code when loaded, so they are never "
                                      "unpickled)")
            if not path.is_file():
                raise ClipUnavailable(f"{path}: CLIP weights file not found. {_HINT}")
            sha, file, cfg, pretrained = file_sha256(path), str(path), {}, None
        elif not pretrained:
            raise ClipUnavailable(f"no CLIP weights given for {model}: name a pretrained tag. {_HINT}")
        else:
            file = _pretrained_file(model, pretrained)
            cfg = open_clip.get_pretrained_cfg(model, pretrained)
        pre = {k: cfg[c] for k, c in (("image_mean", "mean"), ("image_std", "std"),
                                      ("image_interpolation", "interpolation"),
                                      ("image_resize_mode", "resize_mode")) if cfg.get(c)}
        clip, _, preprocess = open_clip.create_model_and_transforms(
            model, pretrained=None, pretrained_text=False, device=device, **pre)
        try:
            open_clip.load_checkpoint(clip, file, device=device)
        except Exception as e:  # noqa: BLE001 - wrong architecture, corrupt file
            raise ClipUnavailable(f"{file}: not usable CLIP weights for {model}: {e}") from e
        clip.eval()
        return cls(clip, preprocess, open_clip.get_tokenizer(model), model, pretrained, sha,
                   str(Path(weights).resolve()) if weights is not None else None, device)

    @property
    def source(self) -> str:
        """'clip:MODEL:TAG' or 'clip:MODEL:file=SHA256[:12]' (the keyword source string)."""
        if self.weights_sha256:
            return f"clip:{self.model}:file={self.weights_sha256[:12]}"
        return f"clip:{self.model}:{self.pretrained}"

    def meta(self) -> dict:
        out = {"source": self.source, "clip_model": self.model, "vocab_sha256": self.vocab_sha256}
        if self.weights_sha256:
            out["clip_weights_sha256"] = self.weights_sha256
        else:
            out["clip_pretrained"] = self.pretrained
        return out

    # ---- vocabulary embeddings -------------------------------------------
    def set_vocabulary(self, words: list[str], cache_dir=None, progress=None, batch_size: int = 256):
        """Encode the vocabulary (normalised, templates averaged); cached per (source, vocab)."""
        import torch
        from safetensors.torch import save_file
        self.words, self.vocab_sha256 = list(words), vocab_sha256(words)
        cache = None
        if cache_dir is not None:
            cache = vocab_cache_path(cache_dir, self.source, self.vocab_sha256)
            if self.load_cached_vocabulary(cache_dir, self.vocab_sha256):
                return
        rows = []
        with torch.no_grad():
            for start in range(0, len(self.words), batch_size):
                chunk = self.words[start:start + batch_size]
                per_template = []
                for t in TEMPLATES:
                    tokens = self.tokenizer([t.format(w) for w in chunk]).to(self.device)
                    e = self._encode_prompts(tokens)
                    per_template.append(e / e.norm(dim=-1, keepdim=True))
                e = torch.stack(per_template).mean(0)
                rows.append(e / e.norm(dim=-1, keepdim=True))
                if progress:
                    progress("vocabulary", min(start + batch_size, len(self.words)), len(self.words))
        self._vocab = torch.cat(rows) if rows else torch.zeros(0, 1)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            save_file({"embeddings": self._vocab.cpu().contiguous()}, str(tmp),
                      metadata={"source": self.source, "vocab_sha256": self.vocab_sha256,
                                "words": json.dumps(self.words)})
            os.replace(tmp, cache)

    def _encode_prompts(self, tokens):
        """CLIP text features of short prompts. In a causal text tower the padding after the
        end token changes nothing, so the context is cut to the longest prompt (about 8x
        faster than 77 tokens on a CPU). Checked once against encode_text; else not used."""
        import torch
        if self._short_ok is None:
            full = self.clip.encode_text(tokens[:8]).float()
            short = self._encode_short(tokens[:8])
            self._short_ok = short is not None and torch.allclose(full, short, rtol=1e-3, atol=1e-4)
        if self._short_ok:
            return self._encode_short(tokens)
        return self.clip.encode_text(tokens).float()

    def _encode_short(self, tokens):
        c = self.clip
        needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask")
        if not all(getattr(c, a, None) is not None for a in needed) or \
                getattr(c, "text_pool_type", "argmax") not in ("argmax", "eos"):
            return None
        try:
            import torch
            from open_clip.transformer import text_global_pool
            L = int((tokens != 0).sum(dim=1).max())  # 0 pads; start and end tokens are not 0
            t = tokens[:, :L]
            cast = c.transformer.get_cast_dtype()
            x = c.token_embedding(t).to(cast) + c.positional_embedding[:L].to(cast)
            x = c.ln_final(c.transformer(x, attn_mask=c.attn_mask[:L, :L]))
            x = text_global_pool(x, t, c.text_pool_type, eos_token_id=getattr(c, "text_eos_id", None))
            if c.text_projection is not None:
                x = c.text_projection(x) if isinstance(c.text_projection, torch.nn.Linear) \
                    else x @ c.text_projection
            return x.float()
        except Exception:  # noqa: BLE001 - an unexpected tower: use encode_text
            return None

    def load_cached_vocabulary(self, cache_dir, vocab_sha: str) -> bool:
        """Use a cached vocabulary (words and embeddings); False when absent or unusable."""
        path = vocab_cache_path(cache_dir, self.source, vocab_sha)
        if not path.is_file():
            return False
        try:
            words, emb, _ = load_vocab_cache(path)
        except Exception:  # noqa: BLE001 - a bad cache file is rebuilt
            return False
        if len(words) != emb.shape[0] or vocab_sha256(words) != vocab_sha:
            return False
        self.words, self.vocab_sha256, self._vocab = words, vocab_sha, emb.to(self.device)
        return True

    def top_keywords(self, images, m: int = 15) -> list[list[tuple[str, float]]]:
        """For each PIL image, its m best words with their softmax(100 * cosine) scores."""
        import torch
        if self._vocab is None:
            self.set_vocabulary(base_vocabulary())
        if not images:
            return []
        with torch.no_grad():
            batch = torch.stack([self.preprocess(im) for im in images]).to(self.device)
            f = self.clip.encode_image(batch).float()
            f = f / f.norm(dim=-1, keepdim=True)
            probs = (100.0 * f @ self._vocab.T).softmax(dim=-1)
            k = min(m, len(self.words))
            scores, idx = probs.topk(k, dim=-1)
        return [[(self.words[j], float(s)) for s, j in zip(srow.tolist(), irow.tolist())]
                for srow, irow in zip(scores, idx)]


def vocab_cache_path(cache_dir, source: str, vocab_sha: str) -> Path:
    key = hashlib.sha256(f"{source}\n{vocab_sha}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"vocab-{key}.safetensors"


def load_vocab_cache(path) -> tuple[list[str], "torch.Tensor", dict]:  # noqa: F821
    """Words, embeddings and metadata of a features/cache/vocab-*.safetensors file."""
    from safetensors.torch import load_file
    from core.features.store import read_meta
    meta = read_meta(Path(path))
    return json.loads(meta["words"]), load_file(str(path))["embeddings"], meta
