from core.splits import choose_cold, dedup, kcore, leave_one_out


def test_dedup_keeps_earliest_pair():
    rows = [("u", "a", 5), ("u", "b", 1), ("u", "a", 2)]
    assert dedup(rows) == [("u", "b", 1), ("u", "a", 2)]


def test_kcore_is_iterative():
    # item c has 1 interaction; dropping it leaves user v with 1, which then goes too
    rows = [("u", "a", 1), ("u", "b", 2), ("v", "a", 1), ("v", "c", 2), ("w", "a", 1), ("w", "b", 2)]
    out = kcore(rows, 2)
    assert {r[0] for r in out} == {"u", "w"} and {r[1] for r in out} == {"a", "b"}


def test_leave_one_out_and_cold_start():
    seqs = {"u": ["a", "b", "x", "c", "d", "e"]}
    s = leave_one_out(seqs, cold_items={"x"})
    assert s.train == [["a", "b", "c"]]
    assert s.valid == [(["a", "b", "c"], "d")]
    assert s.test == [(["a", "b", "c", "d"], "e")]
    assert s.cold == [(["a", "b"], "x")]


def test_choose_cold_is_reproducible():
    ids = [str(i) for i in range(100)]
    assert choose_cold(ids, 0.1, seed=3) == choose_cold(ids, 0.1, seed=3)
    assert len(choose_cold(ids, 0.1)) == 10
