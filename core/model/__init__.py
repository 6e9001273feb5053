"""The models: MSM4SR (multimodal) and SASRec (ID-only baseline). `build(...)` makes either."""
from __future__ import annotations

from core.config import Config


def build(cfg: Config, n_items: int, text_dim: int | None = None, image_dim: int | None = None):
    """A fresh model. For msm4sr, pass the feature dims of the modalities it will use."""
    if cfg.model == "sasrec":
        from core.model.sasrec import SASRec
        return SASRec(cfg, n_items)
    from core.model.msm4sr import MSM4SR
    return MSM4SR(cfg, n_items, text_dim, image_dim)
