"""Fuzzing the checkpoint reader: whatever manifest.json and weights.safetensors hold,
checkpoint.load_model returns a whole model or raises CheckpointError; never another
exception, never a partial load (a model that loads has every tensor the manifest names,
with the bytes that were written).

Each test counts its cases; the total is printed at the end of the module and each test
must reach a floor.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from core import checkpoint
from core.config import load_config
from core.errors import CheckpointError
from core.model import build

N = 150
SETTINGS = settings(max_examples=N, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
RAN: Counter = Counter()
JSONV = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                     max_leaves=8)
# values that reach the model builder: sizes (huge, negative, zero), wrong types
SIZES = st.one_of(st.integers(-3, 70), st.sampled_from([0, 2**31, 2**62, 10**30, 1.5, "8", None, True]))
TOP = ["format", "model", "stage", "config", "item_ids", "dims", "tensors", "weights_sha256",
       "use_ids", "modalities", "features", "metrics", "extra"]
CFG = ["hidden", "inner", "heads", "layers", "max_len", "experts", "pool_dim", "model", "dropout",
       "temperature", "modalities", "unknown"]


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    yield
    text = f"fuzz cases run: {sum(RAN.values())} ({', '.join(f'{k} {v}' for k, v in sorted(RAN.items()))})"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture:
        with capture.global_and_fixture_disabled():
            print("\n" + text)
    else:
        print(text)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A real tiny MSM4SR model folder (12 items, text and image features of width 8)."""
    cfg = load_config(overrides={"hidden": 16, "inner": 32, "heads": 2, "layers": 1, "max_len": 6,
                                 "experts": 2, "pool_dim": 4})
    torch.manual_seed(0)
    model = build(cfg, 12, 8, 8)
    folder = tmp_path_factory.mktemp("fuzzckpt") / "model"
    checkpoint.save_model(folder, model, {
        "model": "msm4sr", "stage": "finetune", "config": cfg.to_dict(),
        "item_ids": [f"i{k}" for k in range(12)], "dims": {"text": 8, "image": 8},
        "modalities": ["text", "image"], "use_ids": True})
    return folder


def _copy(folder: Path) -> Path:
    dst = Path(tempfile.mkdtemp(prefix="fuzzckpt-")) / "model"
    shutil.copytree(folder, dst)
    return dst


def _load_or_refuse(folder: Path) -> str:
    """load_model: CheckpointError, or a model whose every tensor is the file's (never partial)."""
    try:
        model, _, manifest, _ = checkpoint.load_model(folder)
    except CheckpointError as e:
        assert str(e)
        return "refused"
    state = model.state_dict()
    written = load_file(str(folder / checkpoint.WEIGHTS))
    assert set(state) == set(written) == set(manifest["tensors"])
    # bit-for-bit what was written (a changed byte can make a NaN, which == would reject)
    same = lambda a, b: bool(((a == b) | (a.isnan() & b.isnan())).all())  # noqa: E731
    assert all(state[k].shape == written[k].shape and same(state[k], written[k]) for k in written)
    return "loaded"


def _rehash(folder: Path) -> None:
    """Make the manifest's weights hash match the (fuzzed) weights, so the parser itself is hit."""
    m = json.loads((folder / checkpoint.MANIFEST).read_text())
    m["weights_sha256"] = hashlib.sha256((folder / checkpoint.WEIGHTS).read_bytes()).hexdigest()
    (folder / checkpoint.MANIFEST).write_text(json.dumps(m))


def _run(original: Path, name: str, mutate) -> str:
    folder = _copy(original)
    try:
        mutate(folder)
        out = _load_or_refuse(folder)
    finally:
        shutil.rmtree(folder.parent)
    RAN[name] += 1
    return out


def _floor(name: str) -> None:
    assert RAN[name] >= N // 2, f"{name} ran only {RAN[name]} cases"


# ---- manifest.json -----------------------------------------------------------
@SETTINGS
@given(data=st.binary(max_size=300))
def _manifest_bytes(original, data):
    out = _run(original, "manifest bytes", lambda f: (f / checkpoint.MANIFEST).write_bytes(data))
    assert out == "refused"


def test_fuzz_manifest_bytes(original):
    _manifest_bytes(original)
    _floor("manifest bytes")


@SETTINGS
@given(value=JSONV)
def _manifest_json(original, value):
    out = _run(original, "manifest json", lambda f: (f / checkpoint.MANIFEST).write_text(json.dumps(value)))
    assert out == "refused"


def test_fuzz_manifest_json(original):
    _manifest_json(original)
    _floor("manifest json")


@SETTINGS
@given(key=st.sampled_from(TOP), value=st.one_of(JSONV, SIZES), delete=st.booleans())
def _manifest_field(original, key, value, delete):
    def mutate(f):
        m = json.loads((f / checkpoint.MANIFEST).read_text())
        if delete:
            m.pop(key, None)
        else:
            m[key] = value
        (f / checkpoint.MANIFEST).write_text(json.dumps(m))
    _run(original, "manifest field", mutate)


def test_fuzz_manifest_fields(original):
    _manifest_field(original)
    _floor("manifest field")


@SETTINGS
@given(where=st.sampled_from(["config", "dims", "tensors"]), key=st.sampled_from(CFG + ["text", "image"]),
       value=st.one_of(SIZES, JSONV))
@example(where="config", key="layers", value=2**31)    # once never finished building
@example(where="config", key="experts", value=2**62)
@example(where="config", key="hidden", value=2**40)
@example(where="dims", key="text", value=-1)
def _manifest_nested(original, where, key, value):
    def mutate(f):
        m = json.loads((f / checkpoint.MANIFEST).read_text())
        target = m[where]
        if where == "tensors":
            key2 = sorted(target)[(CFG + ["text", "image"]).index(key) * 7 % len(target)]
            target[key2] = value if not isinstance(value, int) else [value]
        else:
            target[key] = value
        (f / checkpoint.MANIFEST).write_text(json.dumps(m))
    _run(original, "manifest nested", mutate)


def test_fuzz_manifest_nested_values(original):
    _manifest_nested(original)
    _floor("manifest nested")


# ---- weights.safetensors -------------------------------------------------------
@SETTINGS
@given(cut=st.floats(0, 1, exclude_max=True), rehash=st.booleans())
def _weights_truncated(original, cut, rehash):
    def mutate(f):
        data = (f / checkpoint.WEIGHTS).read_bytes()
        (f / checkpoint.WEIGHTS).write_bytes(data[:int(len(data) * cut)])
        if rehash:
            _rehash(f)
    assert _run(original, "weights truncated", mutate) == "refused"


def test_fuzz_weights_truncated(original):
    _weights_truncated(original)
    _floor("weights truncated")


@SETTINGS
@given(data=st.binary(max_size=400), header=st.booleans(), rehash=st.booleans())
def _weights_bytes(original, data, header, rehash):
    def mutate(f):
        if header:  # a plausible length prefix, then garbage
            data2 = len(data).to_bytes(8, "little") + data
        else:
            data2 = data
        (f / checkpoint.WEIGHTS).write_bytes(data2)
        if rehash:
            _rehash(f)
    assert _run(original, "weights bytes", mutate) == "refused"


def test_fuzz_weights_bytes(original):
    _weights_bytes(original)
    _floor("weights bytes")


@SETTINGS
@given(pos=st.floats(0, 1, exclude_max=True), byte=st.integers(0, 255), rehash=st.booleans())
@example(pos=0.75, byte=127, rehash=True)   # makes a NaN weight: loads whole, compared bitwise-equal
def _weights_flipped(original, pos, byte, rehash):
    def mutate(f):
        data = bytearray((f / checkpoint.WEIGHTS).read_bytes())
        data[int(len(data) * pos)] = byte
        (f / checkpoint.WEIGHTS).write_bytes(bytes(data))
        if rehash:
            _rehash(f)
    out = _run(original, "weights byte changed", mutate)
    if not rehash:  # the manifest's hash no longer matches unless the byte was unchanged
        orig = (original / checkpoint.WEIGHTS).read_bytes()
        assert out == "refused" or orig[int(len(orig) * pos)] == byte


def test_fuzz_weights_byte_changes(original):
    _weights_flipped(original)
    _floor("weights byte changed")
