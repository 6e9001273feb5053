"""Model pieces on real torch modules: pooling, MoE adaptor, causal transformer,
complementary mixup, item drop, CMCL masking, missing modalities, windows."""
import numpy as np
import pytest
import torch

from core.config import Config, load_config
from core.data import item_drop, windows, left_pad
from core.model import build
from core.model.layers import AttentionPool, MoEAdaptor, SeqEncoder
from core.model.msm4sr import cmcl_loss, complementary_mixup

torch.set_num_threads(1)


def test_attention_pool_ignores_masked_vectors_and_missing_rows_are_zero():
    torch.manual_seed(0)
    pool = AttentionPool(8, 4)
    x = torch.randn(3, 4, 8)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    out = pool(x, mask).detach()
    x2 = x.clone()
    x2[0, 2:] = 100.0  # masked vectors changed: no effect
    assert torch.allclose(pool(x2, mask), out)
    assert torch.allclose(out[1], x[1, 0], atol=1e-6)   # one vector: pooling returns it
    assert torch.all(out[2] == 0)
    # weights are a softmax: the pooled vector of row 0 lies between its two vectors
    w = (out[0] - x[0, 1]) / (x[0, 0] - x[0, 1])
    assert torch.allclose(w, w[0].expand_as(w), atol=1e-4) and 0 < float(w[0]) < 1


def test_moe_adaptor_is_gated_sum_of_whitening_experts():
    torch.manual_seed(0)
    moe = MoEAdaptor(6, 5, 3, dropout=0.0).eval()
    with torch.no_grad():
        moe.bias.normal_()
        moe.gate.normal_()
    x = torch.randn(4, 6)
    g = torch.softmax(x @ moe.gate, -1)
    want = sum(g[:, k:k + 1] * ((x - moe.bias[k]) @ moe.weight[k]) for k in range(3))
    assert torch.allclose(moe(x), want, atol=1e-5)


def test_transformer_is_causal_and_returns_attention():
    torch.manual_seed(0)
    enc = SeqEncoder(16, 2, 2, 32, 10, 0.0, 0.0).eval()
    x = torch.randn(2, 6, 16)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, :2] = True  # left padding
    out, att = enc(x, pad, need_weights=True)
    x2 = x.clone()
    x2[:, 4:] += 5.0  # change the future
    out2 = enc(x2, pad)
    assert torch.allclose(out[:, :4], out2[:, :4], atol=1e-5)
    assert not torch.allclose(out[:, 4:], out2[:, 4:])
    assert len(att) == 2 and att[0].shape == (2, 2, 6, 6)
    for a in att:
        assert torch.allclose(a.sum(-1), torch.ones(2, 2, 6), atol=1e-5)
        assert torch.all(a.triu(1) == 0)
        assert torch.all(a[1, :, 2:, :2] == 0)  # nobody attends to padding
    # the SDPA path (training) and the explicit path agree
    assert torch.allclose(enc(x, pad), out, atol=1e-5)


def test_complementary_mixup_swaps_same_positions_never_padding():
    g = torch.Generator().manual_seed(1)
    t, v = torch.randn(4, 12, 8), torch.randn(4, 12, 8)
    pad = torch.zeros(4, 12, dtype=torch.bool)
    pad[:, :3] = True
    mt, mv = complementary_mixup(t, v, pad, 0.4, g)
    swapped = (mt != t).any(-1)
    assert torch.equal(swapped, (mv != v).any(-1))              # same positions in both
    assert torch.equal(mt[swapped], v[swapped]) and torch.equal(mv[swapped], t[swapped])
    assert not swapped[pad].any()
    share = swapped[~pad].float().mean().item()
    assert 0.2 < share < 0.6
    mt0, mv0 = complementary_mixup(t, v, pad, 0.0, g)
    assert torch.equal(mt0, t) and torch.equal(mv0, v)


def test_item_drop_keeps_order_and_padding():
    rng = np.random.default_rng(0)
    arr = left_pad([np.arange(1, 31), np.arange(100, 105), np.array([7, 8])], 40)
    out = item_drop(arr, 0.3, rng)
    for before, after in zip(arr, out):
        b, a = before[before > 0], after[after > 0]
        assert np.all(after[: len(after) - len(a)] == 0)         # still left-padded
        assert set(a) <= set(b) and list(a) == sorted(a, key=list(b).index)
        assert len(a) >= 2
    assert 10 <= (out[0] > 0).sum() <= 28                         # about 30% of 30 gone
    assert list(out[2][-2:]) == [7, 8]                            # too short to drop from


def test_windows_cover_every_target_once():
    seqs = [np.arange(1, 123), np.arange(1, 4), np.array([5])]
    wins = windows(seqs, 50)
    assert all(len(w) <= 51 for w in wins)
    targets = sorted(int(t) for w in wins for t in w[1:])
    want = sorted(list(range(2, 123)) + [2, 3])
    assert targets == want


def test_cmcl_masks_sequences_with_the_same_next_item():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    same = torch.zeros(6, dtype=torch.long)
    assert cmcl_loss(q, q + 0.1, same, 14.0).item() == pytest.approx(0.0, abs=1e-6)
    assert cmcl_loss(q, q + 0.1, torch.arange(6), 14.0).item() > 0.01


def _tiny(**kw):
    return load_config(overrides=dict(hidden=16, inner=32, max_len=8, experts=2, pool_dim=8, **kw))


def test_missing_image_falls_back_to_text_and_text_only_has_no_image_terms():
    torch.manual_seed(0)
    cfg = _tiny()
    n, V, D = 5, 3, 12
    tx, ix = torch.randn(n + 1, V, D), torch.randn(n + 1, V, D)
    tm, im = torch.ones(n + 1, V, dtype=torch.bool), torch.ones(n + 1, V, dtype=torch.bool)
    im[2] = False  # item 2: no image
    model = build(cfg, n, D, D).eval()
    model.set_features({"text": (tx, tm), "image": (ix, im)})
    vecs = model.item_vectors(torch.arange(n + 1))
    assert torch.allclose(vecs["image"][2], vecs["text"][2])
    assert not torch.allclose(vecs["image"][3], vecs["text"][3])
    assert torch.all(vecs["text"][0] == 0)                       # padding
    inp = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    tgt = torch.tensor([[0, 2, 3, 4], [2, 3, 4, 5]])
    model.train()
    loss, parts = model.loss(inp, tgt, "pretrain", torch.Generator().manual_seed(0))
    assert set(parts) == {"nip_text", "nip_image", "cmcl"}
    loss.backward()
    assert model.mods["image"]["adaptor"].weight.grad.abs().sum() > 0
    text_only = build(cfg, n, D, None)
    text_only.set_features({"text": (tx, tm)})
    loss, parts = text_only.loss(inp, tgt, "pretrain", torch.Generator().manual_seed(0))
    assert set(parts) == {"nip_text"} and "image" not in text_only.mods


def test_ablation_flags_change_the_losses():
    torch.manual_seed(0)
    n, V, D = 6, 2, 10
    feats = {"text": (torch.randn(n + 1, V, D), torch.ones(n + 1, V, dtype=torch.bool)),
             "image": (torch.randn(n + 1, V, D), torch.ones(n + 1, V, dtype=torch.bool))}
    inp = torch.tensor([[1, 2, 3, 4], [2, 3, 4, 5]])
    tgt = torch.tensor([[2, 3, 4, 5], [3, 4, 5, 6]])
    for flags, want in (({"cmcl": False}, {"nip_text", "nip_image"}), ({"nip": False}, {"cmcl"}),
                        ({"mixup": False}, {"nip_text", "nip_image", "cmcl"})):
        model = build(_tiny(**flags), n, D, D)
        model.set_features(feats)
        _, parts = model.loss(inp, tgt, "pretrain", torch.Generator().manual_seed(0))
        assert set(parts) == want, flags
    # fine-tuning scores with ID embeddings only for items seen in training
    model = build(_tiny(), n, D, D).eval()
    model.set_features(feats)
    model.use_ids = True
    with torch.no_grad():
        model.id_emb.weight.normal_()
        model.seen[1:4] = 1
    a = model.item_vectors(torch.arange(n + 1))
    model.use_ids = False
    b = model.item_vectors(torch.arange(n + 1))
    assert not torch.allclose(a["text"][1:4], b["text"][1:4])
    assert torch.allclose(a["text"][4:], b["text"][4:])


def test_sasrec_ce_over_all_items_learns_a_fixed_pattern():
    torch.manual_seed(0)
    cfg = _tiny(model="sasrec", dropout=0.0, attn_dropout=0.0)
    model = build(cfg, 20)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    inp = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 9, 10, 11, 12, 13, 14]])
    tgt = torch.tensor([[2, 3, 4, 5, 6, 7, 8, 9], [0, 0, 10, 11, 12, 13, 14, 15]])
    first = None
    for _ in range(60):
        loss, _ = model.loss(inp, tgt)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    model.eval()
    top = (model.user_vectors(inp) @ model.item_table().T).argmax(-1) + 1
    assert top.tolist() == [9, 15]


def test_config_layers_defaults_toml_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('model = "sasrec"\n[train]\nfinetune_lr = 0.002\nhidden = 32\n')
    cfg = load_config(f, {"hidden": "48", "mixup_p_fixed": "0.3", "mixup": "false"})
    assert (cfg.model, cfg.finetune_lr, cfg.hidden, cfg.mixup_p_fixed, cfg.mixup) == \
        ("sasrec", 0.002, 48, 0.3, False)
    assert cfg.layers == Config().layers
    from core.errors import InputError
    with pytest.raises(InputError, match="unknown setting"):
        load_config(overrides={"hiden": "3"})
    with pytest.raises(InputError, match="hidden"):
        load_config(overrides={"hidden": "abc"})
