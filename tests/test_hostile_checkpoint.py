"""Hostile checkpoints (issue 12): each test builds one attack on a real saved model and
checks it is refused with a clear CheckpointError before harm is done; one bad model
folder never breaks `msm4sr info` or the models dialog."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from core import checkpoint
from core.cli import main
from core.config import load_config
from core.errors import CheckpointError, InputError
from core.model import build
from core.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real tiny MSM4SR model folder (12 items, text and image features of width 8)."""
    cfg = load_config(overrides={"hidden": 16, "inner": 32, "heads": 2, "layers": 1, "max_len": 6,
                                 "experts": 2, "pool_dim": 4})
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hostile") / "model"
    checkpoint.save_model(folder, build(cfg, 12, 8, 8), {
        "model": "msm4sr", "stage": "finetune", "config": cfg.to_dict(),
        "item_ids": [f"i{k}" for k in range(12)], "dims": {"text": 8, "image": 8},
        "modalities": ["text", "image"], "use_ids": True,
        "features": {"text": {"model": "t", "dim": 8}, "image": {"model": "t", "dim": 8}}})
    return folder


@pytest.fixture
def model(saved, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(saved, dst)
    return dst


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _write(folder: Path, manifest: dict, weights: bytes | None = None, rehash: bool = True) -> None:
    if weights is not None:
        (folder / "weights.safetensors").write_bytes(weights)
    if rehash:   # the attacker controls both files: the hash and size agree with the weights
        data = (folder / "weights.safetensors").read_bytes()
        manifest["weights_sha256"] = hashlib.sha256(data).hexdigest()
        manifest["weights_bytes"] = len(data)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _refused(folder: Path, match: str) -> str:
    with pytest.raises(CheckpointError, match=match) as e:
        checkpoint.load_model(folder)
    return str(e.value)


# ---- 1: a big model described, 20 bytes of weights ------------------------------------
BIG = {"hidden": 2048, "layers": 8, "inner": 8192, "heads": 8}


def _craft_big(folder: Path) -> int:
    """The issue's manifest: hidden 2048, 8 layers, inner 8192, matching shapes, 20 bytes of
    weights with their hash. Returns the bytes the shapes describe."""
    m = _manifest(folder)
    cfg = load_config(overrides=dict(m["config"], **BIG))
    with torch.device("meta"):
        state = build(cfg, len(m["item_ids"]), 8, 8).state_dict()
    m["config"] = cfg.to_dict()
    m["tensors"] = {k: list(v.shape) for k, v in state.items()}
    m["dtypes"] = {k: "float32" for k in state}
    m.pop("weights_bytes")
    (folder / "weights.safetensors").write_bytes(b"x" * 20)
    m["weights_sha256"] = hashlib.sha256(b"x" * 20).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m))
    return sum(v.numel() * 4 for v in state.values())


def test_a_big_model_with_a_tiny_weights_file_is_refused_before_building(model):
    nbytes = _craft_big(model)
    assert nbytes > 1 << 30
    msg = _refused(model, "20 bytes, but the manifest's tensors need")
    assert f"{nbytes:,} bytes of data" in msg


def test_the_big_model_costs_no_memory(model):
    """Peak RSS of a fresh process that loads the crafted checkpoint, over the same process
    just before: the model it describes (over 1 GiB) must never be allocated."""
    nbytes = _craft_big(model)
    code = ("import resource, sys; from core import checkpoint, config, model; import torch\n"
            "with torch.device('meta'): model.build(config.Config(), 10, 8, 8)\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n    checkpoint.load_model(sys.argv[1])\nexcept checkpoint.CheckpointError as e:\n"
            "    print('refused:', e)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    out = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    grew_kib = int(out.stdout.split()[-1])
    assert "refused:" in out.stdout
    assert grew_kib * 1024 < nbytes / 10, f"peak RSS grew {grew_kib} KiB"


def test_a_model_over_the_size_cap_is_refused_from_its_manifest_alone(model):
    m = _manifest(model)
    cfg = load_config(overrides=dict(m["config"], hidden=4096, layers=32, inner=16384, heads=64))
    with torch.device("meta"):
        state = build(cfg, 12, 8, 8).state_dict()
    m["config"], m["tensors"] = cfg.to_dict(), {k: list(v.shape) for k, v in state.items()}
    m["dtypes"] = {k: "float32" for k in state}
    _write(model, m)
    _refused(model, r"describes a model of [\d.,]+ GiB, more than the 4 GiB allowed")


@pytest.mark.parametrize("key, value", [("hidden", 65536), ("layers", 64), ("inner", 1 << 18),
                                        ("max_len", 65536), ("experts", 1024), ("pool_dim", 65536)])
def test_config_sizes_are_capped_at_what_a_real_model_needs(model, key, value):
    m = _manifest(model)
    m["config"][key] = value
    _write(model, m)
    _refused(model, f"manifest config is invalid: {key} must be in")


# ---- 2: nesting -------------------------------------------------------------------------
DEEP = "[" * 200_000 + "]" * 200_000


def test_a_deeply_nested_manifest_is_refused_clearly(model):
    (model / "manifest.json").write_text(DEEP)
    _refused(model, "nested more than 16 levels deep")
    nested: dict = {"q": 1}
    for key in "abcdefghijklmnop":      # 18 levels in all: far under the JSON parser's own limit
        nested = {key: nested}
    (model / "manifest.json").write_text(json.dumps({"format": "msm4sr-studio/1", "metrics": nested}))
    _refused(model, "nested more than 16 levels deep")


def test_one_bad_model_never_breaks_info(tmp_path, saved, capsys):
    ws = Workspace.create(tmp_path / "ws")
    ws.close()
    shutil.copytree(saved, tmp_path / "ws" / "models" / "good")
    for name, text in (("deep", DEEP), ("nullfeatures", None), ("metrics-list", None)):
        shutil.copytree(saved, tmp_path / "ws" / "models" / name)
        m = _manifest(saved)
        if name == "nullfeatures":
            m["features"] = None
        if name == "metrics-list":
            m["metrics"] = [1, 2]
        (tmp_path / "ws" / "models" / name / "manifest.json").write_text(text or json.dumps(m))
    fifo = tmp_path / "ws" / "models" / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "manifest.json")          # reading it would block for ever
    assert main(["info", str(tmp_path / "ws")]) == 0
    out = capsys.readouterr().out
    assert "model          deep: cannot be used: unreadable manifest (nested more than 16" in out
    assert "model          nullfeatures: cannot be used: manifest field 'features'" in out
    assert "model          fifo: cannot be used: not a regular file" in out
    assert "model          good: msm4sr finetune" in out
    assert "model          metrics-list: msm4sr finetune" in out
    assert main(["info", str(tmp_path / "ws"), "--json"]) == 0
    models = {Path(m["path"]).name: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert "problem" not in models["good"] and models["deep"]["problem"]


def test_one_bad_model_never_breaks_the_models_dialog(qtbot, tmp_path, saved):
    from gui.models_dialog import ModelsDialog
    from gui.state import Session
    from gui.workers import wait_all
    root = tmp_path / "builtin"
    shutil.copytree(saved, root / "good")
    shutil.copytree(saved, root / "deep")
    (root / "deep" / "manifest.json").write_text(DEEP)
    shutil.copytree(saved, root / "odd")
    m = _manifest(saved)
    m["modalities"], m["features"] = [1, 2], []
    (root / "odd" / "manifest.json").write_text(json.dumps(m))
    dialog = ModelsDialog(Session(), builtin_dir=root)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: len(dialog.entries) == 3, timeout=20_000)
    wait_all()
    entries = {Path(e["path"]).name: e for e in dialog.entries}
    assert set(entries) == {"good", "deep", "odd"}
    assert entries["good"]["problem"] is None
    assert entries["deep"]["problem"] == "unreadable manifest (nested more than 16 levels deep)"
    assert "modalities must be a list of distinct names" in entries["odd"]["problem"]
    for name in ("deep", "odd", "good"):
        assert dialog.select_path(root / name)
        assert (entries[name]["problem"] or "msm4sr") in dialog.details.toPlainText()


# ---- 3: features null or a list ---------------------------------------------------------
@pytest.mark.parametrize("value", [None, [], "text", {"text": [1]}])
def test_features_that_are_not_identities_are_refused(model, value):
    m = _manifest(model)
    m["features"] = value
    _write(model, m)
    _refused(model, "manifest field 'features' must map each modality")
    with pytest.raises(CheckpointError, match="'features' must map"):
        checkpoint.feature_differences(m, {"text": {"model": "t", "dim": 8}})


def test_modalities_as_a_string_is_refused(model):
    m = _manifest(model)
    m["modalities"] = "text"
    _write(model, m)
    _refused(model, r"modalities must be a list of distinct names from \['text', 'image'\], got \"text\"")


# ---- 4: non-finite and out-of-range config values ---------------------------------------
@pytest.mark.parametrize("key, value, match", [
    ("dropout", float("nan"), "dropout must be a finite number, got nan"),
    ("dropout", float("inf"), "dropout must be a finite number, got inf"),
    ("attn_dropout", -0.1, r"attn_dropout must be in \[0, 1\]"),
    ("adaptor_dropout", 1.0, "adaptor_dropout must be below 1"),
    ("temperature", 0.0, r"temperature must be in \[0.001, 1000\]"),
    ("temperature", float("-inf"), "temperature must be a finite number"),
    ("cmcl_weight", [1], "cmcl_weight must be a finite number"),
])
def test_non_finite_and_out_of_range_config_values_are_refused(model, key, value, match):
    m = _manifest(model)
    m["config"][key] = value
    _write(model, m)            # json writes NaN and Infinity, as the attack did
    _refused(model, "manifest config is invalid: " + match)
    with pytest.raises(InputError, match=match):
        load_config(overrides={key: value})


def test_set_on_the_command_line_refuses_nan_too():
    with pytest.raises(InputError, match="dropout must be a finite number"):
        load_config(overrides={"dropout": "nan"})


# ---- 6: dtypes and non-finite weights ---------------------------------------------------
def test_the_manifest_records_every_tensor_dtype_and_the_weights_size(saved):
    m = _manifest(saved)
    assert set(m["dtypes"]) == set(m["tensors"]) and set(m["dtypes"].values()) == {"float32"}
    assert m["weights_bytes"] == (saved / "weights.safetensors").stat().st_size


def _state(folder: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(folder / "weights.safetensors"))


@pytest.mark.parametrize("dtype", [torch.bool, torch.int64, torch.float16, torch.float64])
def test_wrong_dtypes_are_refused(model, dtype):
    state = _state(model)
    state["encoder.pos.weight"] = state["encoder.pos.weight"].to(dtype)
    m = _manifest(model)
    # the manifest tells the truth about the file: the model still needs float32
    m["dtypes"]["encoder.pos.weight"] = str(dtype).removeprefix("torch.")
    _write(model, m, save(state))
    _refused(model, f"tensor encoder.pos.weight is {str(dtype)[6:]}, the model needs float32")
    # the manifest lies (float32) about an int64 file: the file's header gives it away
    m["dtypes"]["encoder.pos.weight"] = "float32"
    _write(model, m)
    _refused(model, "tensor encoder.pos.weight in the file is|the manifest's tensors need")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(model, value):
    state = _state(model)
    state["encoder.ln.weight"][3] = value
    _write(model, _manifest(model), save(state))
    _refused(model, "tensor encoder.ln.weight holds NaN or infinite values")


def test_all_nan_weights_are_refused(model):
    state = {k: torch.full_like(v, float("nan")) for k, v in _state(model).items()}
    _write(model, _manifest(model), save(state))
    _refused(model, "holds NaN or infinite values")


def test_an_older_manifest_without_dtypes_is_checked_against_the_model(model):
    """Manifests written before dtypes were recorded load when the file holds the model's own
    dtypes (float32) and are refused otherwise."""
    m = _manifest(model)
    del m["dtypes"], m["weights_bytes"]
    _write(model, m, rehash=False)
    loaded, *_ = checkpoint.load_model(model)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in _state(model).items())
    state = _state(model)
    state["seen"] = state["seen"].to(torch.int64)
    (model / "weights.safetensors").write_bytes(save(state))
    m["weights_sha256"] = hashlib.sha256(save(state)).hexdigest()
    (model / "manifest.json").write_text(json.dumps(m))
    _refused(model, "tensor seen in the file is")


def test_the_committed_demo_model_still_loads():
    demo = REPO / "trained_models" / "demo"
    loaded, cfg, m, _ = checkpoint.load_model(demo)
    assert "dtypes" not in m or set(m["dtypes"]) == set(m["tensors"])
    assert all(bool(v.isfinite().all()) for v in loaded.state_dict().values())


# ---- smaller ----------------------------------------------------------------------------
def test_weights_that_link_to_dev_zero_are_not_called_missing(model):
    w = model / "weights.safetensors"
    w.unlink()
    w.symlink_to("/dev/zero")
    msg = _refused(model, "not a regular file")
    assert "missing" not in msg
    w.unlink()
    _refused(model, "weights.safetensors: missing")


def test_a_manifest_that_is_a_device_or_huge_is_refused(model):
    m = model / "manifest.json"
    m.unlink()
    m.symlink_to("/dev/zero")
    _refused(model, "manifest.json: not a regular file")
    m.unlink()
    with open(m, "wb") as f:
        f.truncate(65 << 20)   # sparse: no disk used
    _refused(model, "implausibly large")


# ---- fuzz: the manifest reader, nesting depth included -----------------------------------
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from core import manifest as manifest_mod  # noqa: E402
from core.status import model_entry  # noqa: E402


def _nested(kinds: str, depth: int, leaf: str) -> str:
    """JSON text nesting `depth` containers, cycling through kinds ('[' list, '{' dict)."""
    opens = "".join('{"k": ' if kinds[d % len(kinds)] == "{" else "[" for d in range(depth))
    closes = "".join("}" if kinds[d % len(kinds)] == "{" else "]" for d in reversed(range(depth)))
    return opens + leaf + closes


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(kinds=st.text(alphabet="[{", min_size=1, max_size=6),
       depth=st.one_of(st.integers(0, 20), st.integers(0, 40), st.integers(900, 1100),
                       st.integers(100_000, 300_000)),
       leaf=st.sampled_from(["1", '"x"', "null", "NaN", "{}", "", "[", "}"]),
       wrap=st.booleans(), cut=st.one_of(st.none(), st.none(), st.integers(0, 50)))
def test_fuzz_the_manifest_reader(tmp_path_factory, saved, kinds, depth, leaf, wrap, cut):
    text = _nested(kinds, depth, leaf)
    if wrap:   # inside a real manifest (manifest > dims > deep), where a crafted one would hide it
        real = (saved / "manifest.json").read_text()
        assert '"dims": {' in real
        text = real.replace('"dims": {', '"dims": {"deep": ' + text + ", ", 1)
    cut = cut if cut is not None and cut < len(text) else None
    if cut is not None:
        text = text[:cut]
    folder = tmp_path_factory.mktemp("fuzzmanifest")
    (folder / "manifest.json").write_text(text)
    # an empty leaf is valid JSON inside a list ([]), not after a key ({"k": })
    empty_ok = leaf == "" and depth > 0 and kinds[(depth - 1) % len(kinds)] == "["
    valid = cut is None and (leaf not in ("", "[", "}") or empty_ok)
    levels = depth + (leaf == "{}") + (2 if wrap else 0)
    is_object = wrap or (kinds[0] == "{" if depth else leaf == "{}")
    try:
        got = manifest_mod.read_json(folder / "manifest.json")
    except CheckpointError as e:
        assert "unreadable manifest" in str(e)
        if valid and levels > manifest_mod.MAX_DEPTH:
            assert "nested more than 16 levels deep" in str(e)
        event("refused")
    else:
        assert valid and levels <= manifest_mod.MAX_DEPTH and is_object and isinstance(got, dict)
        event("read")
    entry = model_entry(folder)               # never raises: info lists it with its problem
    assert entry["path"] == str(folder)
    if not (wrap and valid and levels <= manifest_mod.MAX_DEPTH):
        assert entry["problem"]
