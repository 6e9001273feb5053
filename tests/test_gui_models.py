"""Models dialog: listing checkpoints, showing manifests, loading good and refusing bad ones."""
from __future__ import annotations

import json
import shutil

import pytest

from gui_support import save_shot
from gui_tiny import tiny_model

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def model(tmp_path_factory, ml1m):
    ws, ckpt = tiny_model(tmp_path_factory, ml1m)
    models = ws / "models"
    # broken copies of the real checkpoint, beside it
    trunc = models / "zz-truncated"
    if not trunc.exists():
        shutil.copytree(ckpt, trunc)
        w = trunc / "weights.safetensors"
        data = w.read_bytes()
        w.write_bytes(data[: len(data) // 2])
    garbage = models / "zz-garbage"
    if not garbage.exists():
        shutil.copytree(ckpt, garbage)
        (garbage / "manifest.json").write_text("{ this is not json")
    crafted = models / "zz-crafted"
    if not crafted.exists():
        shutil.copytree(ckpt, crafted)
        m = json.loads((crafted / "manifest.json").read_text())
        m["config"]["hidden"] = 32                 # says one thing, the weights another
        (crafted / "manifest.json").write_text(json.dumps(m))
    return ws, ckpt


@pytest.fixture
def setup(qtbot, model, tmp_path):
    from gui.models_dialog import ModelsDialog
    from gui.state import Session
    s = Session()
    s.open_workspace(model[0])
    messages = []
    s.message.connect(lambda level, text: messages.append((level, text)))
    d = ModelsDialog(s, builtin_dir=tmp_path / "no-builtins")
    qtbot.addWidget(d)
    d.show()
    qtbot.waitUntil(lambda: len(d.entries) > 0, timeout=10_000)
    yield s, d, messages
    from gui.workers import wait_all
    wait_all()


def test_lists_checkpoints_with_their_manifests(qtbot, setup, model):
    session, dialog, _ = setup
    ws, ckpt = model
    paths = {e["path"]: e for e in dialog.entries}
    assert str(ckpt) in paths and paths[str(ckpt)]["group"] == "Workspace models"
    # the pre-trained model a run leaves behind is listed under the runs
    pre = ws / "runs" / "tiny" / "pretrain" / "model"
    assert str(pre) in paths and paths[str(pre)]["group"] == "Training runs"
    assert paths[str(models_garbage(ws))]["problem"].startswith("unreadable manifest")
    assert dialog.select_path(ckpt)
    html = dialog.details.toPlainText()
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["model"] in html and manifest["stage"] in html
    assert "Metrics" in html and "Feature identities" in html
    assert "hidden" in html
    dialog.resize(900, 520)
    qtbot.wait(50)
    save_shot(dialog, "models_dialog.png")


def models_garbage(ws):
    return ws / "models" / "zz-garbage"


def test_loads_a_checkpoint_on_a_worker(qtbot, setup, model):
    session, dialog, _ = setup
    ws, ckpt = model
    assert dialog.select_path(ckpt)
    with qtbot.waitSignal(session.modelChanged, timeout=60_000):
        dialog.load_btn.click()
    assert session.recommender is not None and session.model_path == ckpt
    assert session.recommender.manifest["model"] == "msm4sr"
    assert "(loaded)" in dialog.tree.currentItem().text(0)


@pytest.mark.parametrize("name, reason", [("zz-truncated", "truncated"),
                                          ("zz-garbage", "unreadable manifest"),
                                          ("zz-crafted", "shape")])
def test_a_bad_checkpoint_is_refused_with_the_reason(qtbot, setup, model, name, reason):
    session, dialog, messages = setup
    ws, ckpt = model
    before = session.recommender
    assert dialog.select_path(ws / "models" / name)
    with qtbot.waitSignal(dialog.loadFailed, timeout=60_000) as failed:
        dialog.load_btn.click()
    assert reason in failed.args[0]
    assert failed.args[0] in dialog.details.toPlainText()      # the whole reason, beside the manifest
    assert "Refused" in dialog.status.text()
    assert messages and messages[-1][0] == "error"
    assert session.recommender is before                       # the app keeps what it had
    assert dialog.isVisible() and dialog.load_btn.isEnabled()
    if name == "zz-truncated":
        save_shot(dialog, "models_dialog_refused.png")
    assert dialog.select_path(ckpt)                            # and goes on: a good one loads
    with qtbot.waitSignal(dialog.modelLoaded, timeout=60_000):
        dialog.load_btn.click()
    assert session.recommender is not None


def test_features_that_differ_from_the_workspace_are_refused(qtbot, model, tmp_path):
    """The same model against a copy of its workspace whose text features came from another encoder."""
    from core.features import store
    from gui.models_dialog import ModelsDialog
    from gui.state import Session
    ws, ckpt = model
    other = tmp_path / "other-ws"
    shutil.copytree(ws, other, ignore=shutil.ignore_patterns("runs", "zz-*"))
    for m in (other / "models").iterdir():   # other test modules add models to the shared workspace
        if m.name != ckpt.name:
            shutil.rmtree(m)
    fs = store.load(other / "features", "text")
    fs.meta["model"] = "another-sentence-encoder"
    store.save(other / "features", "text", fs)
    s = Session()
    s.open_workspace(other)
    d = ModelsDialog(s, builtin_dir=tmp_path / "none")
    qtbot.addWidget(d)
    qtbot.waitUntil(lambda: len(d.entries) == 1, timeout=10_000)
    assert d.select_path(other / "models" / ckpt.name)
    with qtbot.waitSignal(d.loadFailed, timeout=60_000) as failed:
        d.load_btn.click()
    assert "features do not match" in failed.args[0] and "another-sentence-encoder" in failed.args[0]
    assert s.recommender is None
