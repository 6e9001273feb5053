"""`msm4sr info`: counts, time range, feature and model status, read without torch."""
import json
import subprocess
import sys

from core.cli import main
from core.workspace import Item


def _fill(ws):
    with ws.transaction() as db:
        ws.upsert_items([Item("a", title="A", image="/x/a.png"), Item("b", title="B")], db)
        ws.add_interactions([("u1", "a", 1_000_000_000), ("u1", "b", 1_000_086_400),
                             ("u2", "a", 1_000_000_500)], db)
        ws.set_keywords([("a", "catalog-tags", [("red", 1.0)])], db)
        ws.set_meta("image_modality", {"available": False, "reason": "no CLIP weights"}, db)


def test_info_json_reports_counts_time_range_and_status(workspace, capsys):
    _fill(workspace)
    assert main(["info", str(workspace.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["users"], info["items"], info["interactions"]) == (2, 2, 3)
    assert info["items_with_image"] == 1
    assert info["time_range"] == [1_000_000_000, 1_000_086_400]
    assert info["keyword_sources"] == {"catalog-tags": 1}
    assert info["features"] == {"text": None, "image": None}
    assert info["image_unavailable"] == "no CLIP weights"
    assert info["models"] == []


def test_info_text_is_plain_and_torch_free(workspace):
    _fill(workspace)
    code = ("import sys; from core.cli import main; rc = main(['info', sys.argv[1]]); "
            "assert 'torch' not in sys.modules, 'info imported torch'; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, str(workspace.path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "interactions   3" in out.stdout
    assert "2001-09-09 .. 2001-09-10" in out.stdout
    assert "image: unavailable: no CLIP weights" in out.stdout
    assert "text: not built" in out.stdout


def test_info_on_a_missing_workspace_is_a_clear_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope")]) == 2
    assert "not a workspace" in capsys.readouterr().err
