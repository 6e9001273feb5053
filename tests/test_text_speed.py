"""Text features encode each distinct sentence once: the real `msm4sr features` on a catalog
whose items repeat boilerplate sentences gives the vectors the real MiniLM gives each item's
sentences encoded one item at a time (cosine >= 0.999 per vector)."""
from __future__ import annotations

import torch

from core import cli
from core.features import store
from core.features.text import TextEncoder, item_sentences
from core.workspace import Item, Workspace

BOILER = "Made in a certified factory. Ships in recyclable packaging."


def _items() -> list[Item]:
    out = []
    for k in range(12):
        text = f"Model {k} measures up to {k * 10} millilitres. {BOILER}" if k % 3 else BOILER
        out.append(Item(id=f"p{k}", title=f"Lab beaker {k}", brand="Acme" if k % 2 else "",
                        categories="Lab|Glassware", text=text))
    return out


def test_features_with_repeated_sentences_match_encoding_each_item_alone(tmp_path):
    items = _items()
    ws = Workspace.create(tmp_path / "ws")
    with ws.transaction() as db:
        ws.upsert_items(items, db)
    ws.close()
    assert cli.main(["features", str(tmp_path / "ws"), "--keywords-from", "none",
                     "--batch-size", "5"]) == 0
    fs = store.load(tmp_path / "ws" / "features", "text")
    enc = TextEncoder()
    flat = [s for it in items for s in item_sentences(it)]
    assert len(set(flat)) < len(flat)          # the catalog does repeat sentences
    for it in items:
        sents = item_sentences(it)
        alone = enc.st.encode(sents, convert_to_tensor=True, show_progress_bar=False).float().cpu()
        row = fs.ids.index(it.id)
        assert fs.mask[row].sum().item() == len(sents)
        got = fs.vectors[row, :len(sents)].float()
        cos = torch.nn.functional.cosine_similarity(got, alone)
        assert cos.min().item() >= 0.999, (it.id, cos)


def test_encode_returns_one_row_per_sentence_in_order():
    enc = TextEncoder()
    sents = ["alpha beta", "gamma", "alpha beta", "delta epsilon zeta", "gamma"]
    out = enc.encode(sents)
    assert out.shape == (5, enc.dim)
    assert torch.equal(out[0], out[2]) and torch.equal(out[1], out[4])
    assert torch.nn.functional.cosine_similarity(out[0:1], out[1:2]).item() < 0.99
    single = enc.encode(["delta epsilon zeta"])
    assert torch.nn.functional.cosine_similarity(out[3:4], single).item() >= 0.999
