"""Model pieces on real torch modules: pooling, MoE adaptor, causal transformer,
complementary mixup, item drop, CMCL masking, missing modalities, windows."""
import numpy as np
import pytest
import torch

from core.config import Config, load_config
from core.data import item_drop, windows, left_pad
from core.model import build
from core.model.layers import AttentionPool, MoEAdaptor, SeqEncoder
from core.model.losses import cmcl_loss, nip_loss
from core.model.msm4sr import complementary_mixup, query_positions

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


def test_cmcl_masks_sequences_with_the_same_next_item_or_window():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    rows = torch.arange(6)
    for intra in (True, False):
        same = torch.zeros(6, dtype=torch.long)     # every pair has the same next item
        assert cmcl_loss(q, q + 0.1, same, rows, 14.0, intra).item() == pytest.approx(0.0, abs=1e-6)
        one_window = torch.zeros(6, dtype=torch.long)
        assert cmcl_loss(q, q + 0.1, rows, one_window, 14.0, intra).item() == pytest.approx(0.0, abs=1e-6)
        assert cmcl_loss(q, q + 0.1, rows, rows, 14.0, intra).item() > 0.01


def test_cmcl_with_intra_modal_negatives_is_nt_xent_over_both_views():
    torch.manual_seed(1)
    n, s = 5, 3.0
    a = torch.nn.functional.normalize(torch.randn(n, 8), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(n, 8), dim=-1)
    y, g = torch.tensor([1, 2, 3, 4, 1]), torch.arange(n)     # queries 0 and 4: same next item
    z = torch.cat([a, b])
    want = []
    for i in range(2 * n):
        p = (i + n) % (2 * n)
        negs = [j for j in range(2 * n) if j not in (i, p) and int(y[j % n]) != int(y[i % n])]
        logits = torch.stack([z[i] @ z[j] * s for j in [p] + negs])
        want.append(-torch.log_softmax(logits, 0)[0])
    assert cmcl_loss(a, b, y, g, s, intra=True).item() == pytest.approx(torch.stack(want).mean().item(), rel=1e-5)
    # cross only: the other view's vectors are the negatives, in both directions
    cross = []
    for i in range(n):
        for anchor, other in ((a, b), (b, a)):
            negs = [j for j in range(n) if j != i and int(y[j]) != int(y[i])]
            logits = torch.stack([anchor[i] @ other[j] * s for j in [i] + negs])
            cross.append(-torch.log_softmax(logits, 0)[0])
    assert cmcl_loss(a, b, y, g, s, intra=False).item() == pytest.approx(torch.stack(cross).mean().item(), rel=1e-5)


def test_nip_with_several_views_is_the_authors_joint_form():
    torch.manual_seed(2)
    q1, q2 = torch.randn(4, 6), torch.randn(4, 6)
    items, label = torch.randn(3, 6), torch.tensor([0, 2, 1, 2])
    one = nip_loss([q1], items, label, 2.0)
    assert one.item() == pytest.approx(torch.nn.functional.cross_entropy(q1 @ items.T * 2, label).item())
    l1, l2 = (q1 @ items.T * 2).exp(), (q2 @ items.T * 2).exp()
    r = torch.arange(4)
    want = -torch.log((l1[r, label] + l2[r, label]) / (l1.sum(1) + l2.sum(1))).mean()
    assert nip_loss([q1, q2], items, label, 2.0).item() == pytest.approx(want.item(), rel=1e-5)


def test_query_positions_every_target_or_k_per_window():
    tgt = torch.tensor([[0, 0, 5, 6, 7], [1, 2, 3, 4, 0], [0, 0, 0, 0, 9]])
    rows, pos = query_positions(tgt, 0)
    assert sorted(zip(rows.tolist(), pos.tolist())) == [(0, 2), (0, 3), (0, 4), (1, 0), (1, 1),
                                                       (1, 2), (1, 3), (2, 4)]
    rows, pos = query_positions(tgt, 2, torch.Generator().manual_seed(0))
    assert torch.all(tgt[rows, pos] > 0)
    assert np.bincount(rows.numpy()).tolist() == [2, 2, 1]


def test_moe_experts_end_in_their_own_layer_norm():
    torch.manual_seed(0)
    moe = MoEAdaptor(6, 5, 3, dropout=0.0, norm=True).eval()
    with torch.no_grad():
        moe.bias.normal_()
        moe.gate.normal_()
        moe.norm_weight.uniform_(0.5, 2.0)
        moe.norm_bias.normal_()
    x = torch.randn(4, 6)
    g = torch.softmax(x @ moe.gate, -1)
    ln = lambda y, k: torch.nn.functional.layer_norm(y, (5,), eps=1e-12) * moe.norm_weight[k] + moe.norm_bias[k]  # noqa: E731
    want = sum(g[:, k:k + 1] * ln((x - moe.bias[k]) @ moe.weight[k], k) for k in range(3))
    assert torch.allclose(moe(x), want, atol=1e-5)
    # at initialisation a unit feature vector maps to ~2.7 (8 experts, LN each) against ~0.06
    # without the norms, while position embeddings start near 0.16: content now leads
    fresh = MoEAdaptor(384, 64, 8, dropout=0.0, norm=True)
    plain = MoEAdaptor(384, 64, 8, dropout=0.0, norm=False)
    unit = torch.nn.functional.normalize(torch.randn(50, 384), dim=-1)
    assert fresh(unit).norm(dim=-1).mean() > 1.5 and plain(unit).norm(dim=-1).mean() < 0.1


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


def _pretrain_parts(n, D, feats, inp, tgt, **flags):
    torch.manual_seed(0)  # the same weights for every variant
    model = build(_tiny(dropout=0.0, attn_dropout=0.0, adaptor_dropout=0.0, **flags), n, D, D)
    model.set_features(feats)
    total, parts = model.loss(inp, tgt, "pretrain", torch.Generator().manual_seed(0))
    return {k: v.item() for k, v in parts.items()}, model, total


def _ablation_case():
    torch.manual_seed(0)
    n, V, D = 6, 2, 10
    feats = {"text": (torch.randn(n + 1, V, D), torch.ones(n + 1, V, dtype=torch.bool)),
             "image": (torch.randn(n + 1, V, D), torch.ones(n + 1, V, dtype=torch.bool))}
    inp = torch.tensor([[1, 2, 3, 4], [2, 3, 4, 5], [0, 0, 1, 3]])
    tgt = torch.tensor([[2, 3, 4, 5], [3, 4, 5, 6], [0, 0, 3, 6]])
    return n, D, feats, inp, tgt


def test_ablation_flags_change_what_is_computed():
    n, D, feats, inp, tgt = _ablation_case()
    run = lambda **f: _pretrain_parts(n, D, feats, inp, tgt, **f)[0]  # noqa: E731
    base = run()
    assert set(base) == {"nip_text", "nip_image", "cmcl"}
    assert run(cmcl_negatives="cross")["cmcl"] != base["cmcl"]
    assert run(nip_positions=1)["nip_text"] != base["nip_text"]
    assert run(expert_norm=True)["nip_text"] != base["nip_text"]
    heads, model, _ = _pretrain_parts(n, D, feats, inp, tgt, proj_heads=True)
    assert heads["nip_text"] != base["nip_text"] and set(model.heads) == {"text", "image"}
    loss, _ = model.loss(inp, tgt, "pretrain", torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.heads.parameters())


def test_mixup_off_feeds_each_modality_its_own_sequence():
    """mixup=False is exactly mixing with p = 0, and differs from the default random p."""
    n, D, feats, inp, tgt = _ablation_case()
    run = lambda **f: _pretrain_parts(n, D, feats, inp, tgt, **f)[0]  # noqa: E731
    base, off, p0 = run(), run(mixup=False), run(mixup_p_fixed=0.0)
    # NIP scores every position (no random draw), so only the mixing can change it
    assert off["nip_text"] == p0["nip_text"] and off["nip_image"] == p0["nip_image"]
    assert off["nip_text"] != base["nip_text"] and off["nip_image"] != base["nip_image"]
    # and the sequences themselves: the encoder sees the unmixed embeddings
    _, model, _ = _pretrain_parts(n, D, feats, inp, tgt, mixup=False)
    seen = []
    real = model._encode
    model._encode = lambda emb, pad: seen.append({m: e.detach().clone() for m, e in emb.items()}) \
        or real(emb, pad)
    model.loss(inp, tgt, "pretrain", torch.Generator().manual_seed(0))
    own = model._embed(inp)
    assert all(torch.equal(seen[0][m], own[m]) for m in ("text", "image"))


def test_a_fixed_mixup_p_replaces_the_random_draw(monkeypatch):
    n, D, feats, inp, tgt = _ablation_case()
    run = lambda **f: _pretrain_parts(n, D, feats, inp, tgt, **f)[0]  # noqa: E731
    base, p3, p5 = run(), run(mixup_p_fixed=0.3), run(mixup_p_fixed=0.5)
    assert p5 == run(mixup_p_fixed=0.5)                       # deterministic for a given p
    assert p3["nip_text"] != p5["nip_text"]                   # the value of p is what is used
    assert p5["nip_text"] != base["nip_text"] and p3["nip_text"] != base["nip_text"]
    # the random p is drawn from the step's generator; a fixed p is passed to the mixing as it is
    _, model, _ = _pretrain_parts(n, D, feats, inp, tgt, mixup_p_fixed=0.3)
    from core.model import msm4sr as mod
    real, p_seen = mod.complementary_mixup, []
    monkeypatch.setattr(mod, "complementary_mixup",
                        lambda a, b, pad, p, g, shard=None: p_seen.append(p) or real(a, b, pad, p, g, shard))
    gen = torch.Generator().manual_seed(0)
    model.loss(inp, tgt, "pretrain", gen)
    model.cfg.mixup_p_fixed = None
    model.loss(inp, tgt, "pretrain", gen)
    assert p_seen[0] == 0.3 and p_seen[1] != 0.3 and 0 <= p_seen[1] <= model.cfg.mixup_p_max


def test_cmcl_off_leaves_nip_alone_and_adds_no_contrastive_term():
    n, D, feats, inp, tgt = _ablation_case()
    base, _, base_total = _pretrain_parts(n, D, feats, inp, tgt)
    parts, model, total = _pretrain_parts(n, D, feats, inp, tgt, cmcl=False)
    assert set(parts) == {"nip_text", "nip_image"}
    # NIP is computed before CMCL draws its positions: switching CMCL off changes nothing else
    assert parts["nip_text"] == base["nip_text"] and parts["nip_image"] == base["nip_image"]
    assert total.item() == pytest.approx(parts["nip_text"] + parts["nip_image"], rel=1e-6)
    want = base["nip_text"] + base["nip_image"] + model.cfg.cmcl_weight * base["cmcl"]
    assert base_total.item() == pytest.approx(want, rel=1e-6) and base_total.item() != total.item()


def test_nip_off_trains_on_cmcl_alone():
    n, D, feats, inp, tgt = _ablation_case()
    base, _, _ = _pretrain_parts(n, D, feats, inp, tgt, cmcl_weight=1.0)
    parts, model, total = _pretrain_parts(n, D, feats, inp, tgt, nip=False, cmcl_weight=1.0)
    assert set(parts) == {"cmcl"}
    # NIP over every position draws nothing, so CMCL sees the same positions either way
    assert parts["cmcl"] == pytest.approx(base["cmcl"], rel=1e-6)
    assert total.item() == pytest.approx(parts["cmcl"], rel=1e-6)
    with pytest.raises(ValueError, match="needs NIP or CMCL"):
        _pretrain_parts(n, D, feats, inp, tgt, nip=False, cmcl=False)


def test_finetuning_uses_id_embeddings_of_seen_items_only():
    torch.manual_seed(0)
    n, V, D = 6, 2, 10
    feats = {"text": (torch.randn(n + 1, V, D), torch.ones(n + 1, V, dtype=torch.bool)),
             "image": (torch.randn(n + 1, V, D), torch.ones(n + 1, V, dtype=torch.bool))}
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


def test_feature_slots_no_item_uses_are_cut_and_pooling_is_unchanged():
    from core.data import align_features
    from core.features.store import FeatureSet
    torch.manual_seed(0)
    ids = ["a", "b", "c"]
    x = torch.randn(3, 10, 6).half()
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[:, 0] = True
    mask[1, :3] = True          # the widest item uses 3 of the 10 slots
    fs = FeatureSet(ids, x, mask, {"model": "t"})
    vec, m = align_features(fs, ["c", "a", "zz", "b"])
    assert vec.shape == (5, 3, 6) and m.shape == (5, 3)
    assert torch.equal(vec[4], x[1, :3]) and not m[3].any()      # 'zz' has no features
    pool = AttentionPool(6, 4)
    full = pool(x.float()[[2, 0, 1]], mask[[2, 0, 1]])
    assert torch.allclose(pool(vec[[1, 2, 4]].float(), m[[1, 2, 4]]), full, atol=1e-6)



def test_id_dropout_scores_a_share_of_items_from_content_alone():
    torch.manual_seed(0)
    n, V, D = 6, 2, 10
    feats = {"text": (torch.randn(n + 1, V, D), torch.ones(n + 1, V, dtype=torch.bool))}
    inp = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    tgt = torch.tensor([[0, 2, 3, 4], [2, 3, 4, 5]])

    def ce(**kw):
        torch.manual_seed(1)
        model = build(_tiny(dropout=0.0, attn_dropout=0.0, adaptor_dropout=0.0, **kw), n, D, None).train()
        model.set_features(feats)
        with torch.no_grad():
            model.id_emb.weight.normal_()
            model.seen[1:] = 1
        model.use_ids = True
        out = model.loss(inp, tgt, "finetune", torch.Generator().manual_seed(5))[0].item()  # keeps 2, 3, 4
        model.use_ids = False
        return out, model.loss(inp, tgt, "finetune")[0].item()

    with_ids, content = ce()
    some, _ = ce(id_dropout=0.5)
    assert some == ce(id_dropout=0.5)[0]                  # drawn from the step's generator
    assert some not in (with_ids, content)
    nearly_all, _ = ce(id_dropout=0.9999)
    assert nearly_all == pytest.approx(content, abs=1e-6)  # every ID left out: content only


def test_text_vectors_pools_only_the_first_sentences_everywhere():
    """text_vectors=1 scores an item by its title sentence alone, in training and for new items."""
    torch.manual_seed(0)
    n, V, D = 5, 4, 12
    tx, tm = torch.randn(n + 1, V, D), torch.ones(n + 1, V, dtype=torch.bool)
    full = build(_tiny(text_vectors=0), n, D, None).eval()   # 0: every vector pooled
    first = build(_tiny(text_vectors=1), n, D, None).eval()
    first.load_state_dict(full.state_dict())
    full.set_features({"text": (tx[:, :1], tm[:, :1])})   # the reference: features of one vector
    first.set_features({"text": (tx, tm)})                # all four stored, one used
    idx = torch.arange(n + 1)
    assert torch.allclose(first.item_vectors(idx)["text"], full.item_vectors(idx)["text"])
    new = first.encode_features({"text": (tx[1:2], tm[1:2])})["text"]
    assert torch.allclose(new, full.item_vectors(idx[1:2])["text"])
    full.set_features({"text": (tx, tm)})                 # with all four, the vectors differ
    assert not torch.allclose(first.item_vectors(idx)["text"], full.item_vectors(idx)["text"])
