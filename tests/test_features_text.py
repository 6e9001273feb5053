"""Sentence-BERT text features with the real bundled all-MiniLM-L6-v2."""
from __future__ import annotations

import pytest

from core.errors import StudioError
from core.features.text import MAX_VECTORS, item_sentences, split_sentences
from core.workspace import Item


@pytest.fixture(scope="module")
def encoder():
    from core.features.build import text_encoder
    return text_encoder()  # cached per process: loaded once for all feature tests


def _titles(ml1m, n=50):
    lines = (ml1m / "movies.dat").read_text(encoding="latin-1").splitlines()[:n]
    return {int(x.split("::")[0]): x.split("::")[1] for x in lines}


@pytest.mark.realdata
def test_real_titles_similar_closer_than_unrelated(encoder, ml1m):
    titles = _titles(ml1m)
    assert titles[1] == "Toy Story (1995)" and titles[6] == "Heat (1995)"
    extra = ["Toy Story 2 (1999)"]
    vecs = encoder.encode(list(titles.values()) + extra)
    assert vecs.shape == (len(titles) + 1, 384)
    ids = list(titles)
    toy, heat, toy2 = vecs[ids.index(1)], vecs[ids.index(6)], vecs[-1]
    assert float(toy @ toy2) > float(toy @ heat) + 0.2
    # unit length: the bundled model ends with a Normalize module
    assert abs(float(vecs.norm(dim=1).mean()) - 1.0) < 1e-3
    # the nearest of the 50 real titles to "Toy Story 2" is "Toy Story"
    sims = vecs[:-1] @ toy2
    assert ids[int(sims.argmax())] == 1


def test_identity_is_stable_and_short(encoder):
    assert encoder.identity == "all-MiniLM-L6-v2:384"
    assert encoder.dim == 384


def test_encode_empty_list(encoder):
    assert tuple(encoder.encode([]).shape) == (0, 384)


def test_item_sentences_title_first_then_description():
    it = Item(id="7", title="Heat (1995)", brand="Warner", categories="Action|Crime",
              text="A cop hunts a thief. The thief plans one last job! Who wins?")
    s = item_sentences(it)
    assert s == ["Heat (1995). Warner. Action, Crime", "A cop hunts a thief.",
                 "The thief plans one last job!", "Who wins?"]


def test_item_sentences_capped_and_never_empty():
    long = Item(id="x", title="T", text=" ".join(f"Sentence {k}." for k in range(40)))
    assert len(item_sentences(long)) == MAX_VECTORS
    assert item_sentences(Item(id="only-id")) == ["only-id"]
    assert split_sentences("") == []


def test_unknown_text_model_is_a_plain_error(tmp_path):
    from core.features.text import TextEncoder
    with pytest.raises(StudioError, match="cannot load the text model"):
        TextEncoder(str(tmp_path / "no-such-model"))


SENTENCES = ["Toy Story (1995)", "Heat (1995)",
             "Borosilicate glass beakers, 250 ml, graduated, autoclavable up to 140 C.",
             "A digital caliper with a stainless steel body reads to 0.01 mm and holds its zero.",
             "Nitrile gloves"]


def test_bf16_vectors_match_fp32(encoder):
    from core.features.text import TextEncoder
    fp32 = TextEncoder(precision="fp32").encode(SENTENCES)
    bf16 = TextEncoder(precision="bf16").encode(SENTENCES)
    cos = (fp32 * bf16).sum(-1) / (fp32.norm(dim=-1) * bf16.norm(dim=-1))
    assert float(cos.min()) >= 0.999          # bench_features measures the whole catalogs
    assert not bool((fp32 == bf16).all())      # bf16 really ran: the vectors differ a little


def test_auto_precision_follows_the_cpu_and_bad_names_are_refused(encoder):
    from core.features.text import TextEncoder, native_bf16
    assert encoder.precision == ("bf16" if native_bf16() else "fp32")
    with pytest.raises(StudioError, match="text precision must be one of auto, fp32, bf16, got 'fp16'"):
        TextEncoder(precision="fp16")


def test_features_command_records_the_precision_it_used(tmp_path, capsys):
    from core.cli import main
    from core.features import store
    from core.workspace import Workspace
    ws = Workspace.create(tmp_path / "ws")
    with ws.transaction() as db:
        ws.upsert_items([Item(id=str(k), title=t) for k, t in enumerate(SENTENCES)], db)
    ws.close()
    assert main(["features", str(tmp_path / "ws"), "--keywords-from", "none",
                 "--text-precision", "fp32"]) == 0
    fs = store.load(tmp_path / "ws" / "features", "text")
    assert fs.meta["precision"] == "fp32"
    with pytest.raises(SystemExit):   # argparse names the allowed values
        main(["features", str(tmp_path / "ws"), "--text-precision", "int4"])
    assert "invalid choice: 'int4'" in capsys.readouterr().err
