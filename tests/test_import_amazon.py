"""Amazon Review Data (2018) importer, and image downloads from a real local HTTP server."""
from __future__ import annotations

import gzip
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.errors import InputError
from core.importers import ImportOptions, import_catalog
from core.importers.download import DownloadError, download_images, fetch, file_stem

K0 = ImportOptions(kcore=0)
def _jpeg() -> bytes:
    """A real JPEG (downloads must pass the image loader), padded after its end marker to
    10,240 bytes so the size caps below are exact."""
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.frombytes("RGB", (32, 32), bytes(range(256)) * 12).save(buf, "JPEG")
    return buf.getvalue().ljust(10240, b"\0")


JPEG = _jpeg()


def jsonl(path: Path, objs, gz=False) -> Path:
    text = "".join(o if isinstance(o, str) else json.dumps(o) + "\n" for o in objs)
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


REVIEWS = [{"reviewerID": "R1", "asin": "B001", "unixReviewTime": 1500000000, "overall": 5.0},
           {"reviewerID": "R1", "asin": "B002", "unixReviewTime": 1500000100},
           {"reviewerID": "R2", "asin": "B002", "unixReviewTime": "1500000200"},
           {"reviewerID": "R2", "asin": "B003", "unixReviewTime": 1500000300}]


def meta_objs(base="http://127.0.0.1:1"):
    return [
        {"asin": "B001", "title": "Tom &amp; Jerry <b>Mug</b>", "brand": "Acme&#39;s",
         "description": ["<p>A mug.</p>", "Holds &quot;coffee&quot;."],
         "category": ["Home &amp; Kitchen", "Mugs|Cups"],
         "imageURLHighRes": [f"{base}/ok.jpg"], "imageURL": [f"{base}/small.jpg"]},
        {"asin": "B002", "title": "Plate", "description": "Round &lt;b&gt;plate&lt;/b&gt;",
         "imageURL": [f"{base}/page.html"]},
        {"asin": "B003", "title": "Unusual", "category": "Odd", "description": 7},
        {"asin": "B009", "title": "Never reviewed"},
    ]


def test_amazon_gz_files_and_html_cleaning(workspace, tmp_path):
    reviews = jsonl(tmp_path / "Mugs.json.gz", REVIEWS, gz=True)
    meta = jsonl(tmp_path / "meta_Mugs.json.gz", meta_objs(), gz=True)
    report = import_catalog(workspace, "amazon2018", {"reviews": reviews, "meta": meta}, K0)
    assert (report.users, report.items, report.interactions) == (2, 3, 4)
    mug = workspace.item("B001")
    assert (mug.title, mug.brand, mug.categories, mug.text) == \
        ("Tom & Jerry Mug", "Acme's", "Home & Kitchen|Mugs/Cups", 'A mug. Holds "coffee".')
    assert workspace.item("B002").text == "Round plate"
    assert (workspace.item("B003").categories, workspace.item("B003").text) == ("Odd", "")
    assert workspace.sequences() == {"R1": ["B001", "B002"], "R2": ["B002", "B003"]}
    assert report.items_without_image == ["B001", "B002", "B003"]   # no folder, no download


def test_images_folder_by_asin(workspace, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    (imgs / "B001.webp").write_bytes(b"w")
    (imgs / "B001.jpg").write_bytes(b"j")
    (imgs / "B002.PNG").write_bytes(b"p")
    (imgs / "B003.txt").write_bytes(b"t")
    r = import_catalog(workspace, "amazon2018", {"reviews": jsonl(tmp_path / "r.json", REVIEWS),
                                                "images": imgs}, K0)
    assert workspace.item("B001").image == str(imgs.resolve() / "B001.jpg")
    assert workspace.item("B002").image == str(imgs.resolve() / "B002.PNG")
    assert r.items_without_image == ["B003"]


def test_truncated_gzip_is_named(workspace, tmp_path):
    good = gzip.compress(("".join(json.dumps(o) + "\n" for o in REVIEWS * 50)).encode())
    bad = tmp_path / "cut.json.gz"
    bad.write_bytes(good[: len(good) // 2])
    import_catalog(workspace, "amazon2018", {"reviews": jsonl(tmp_path / "r.json", REVIEWS)}, K0)
    before = workspace.sequences()
    with pytest.raises(InputError, match=rf"{bad}: truncated gzip file"):
        import_catalog(workspace, "amazon2018", {"reviews": bad}, K0)
    junk = tmp_path / "junk.json.gz"
    junk.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(InputError, match=rf"{junk}: corrupt gzip file"):
        import_catalog(workspace, "amazon2018", {"reviews": junk}, K0)
    assert workspace.sequences() == before


@pytest.mark.parametrize("line, reason", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object, found list"),
    ('{"asin": "B1", "unixReviewTime": 5}', "missing or empty 'reviewerID'"),
    ('{"reviewerID": "R", "asin": "", "unixReviewTime": 5}', "missing or empty 'asin'"),
    ('{"reviewerID": "R", "asin": "B1", "unixReviewTime": 5.5}', "missing or non-integer"),
    ('{"reviewerID": "R", "asin": "B1", "unixReviewTime": "later"}', "is not an integer"),
    ("[" * 100000, "not valid JSON"),
])
def test_bad_review_lines(workspace, tmp_path, line, reason):
    path = jsonl(tmp_path / "r.json", REVIEWS + [line + "\n"])
    with pytest.raises(InputError) as e:
        import_catalog(workspace, "amazon2018", {"reviews": path}, K0)
    assert str(e.value).startswith(f"{path}:5: ") and reason in str(e.value)
    r = import_catalog(workspace, "amazon2018", {"reviews": path},
                       ImportOptions(kcore=0, skip_bad_lines=True))
    assert r.interactions == 4 and len(r.skipped_lines) == 1


def test_meta_repeats_identical_ok_differing_named(workspace, tmp_path):
    objs = meta_objs()
    same = jsonl(tmp_path / "m1.json", objs + [objs[0]])
    assert import_catalog(workspace, "amazon2018", {"meta": same}).items == 4
    other = jsonl(tmp_path / "m2.json", objs + [{**objs[0], "title": "Other"}])
    with pytest.raises(InputError, match=rf"{other}:5: duplicate asin 'B001' \(first on line 1\)"):
        import_catalog(workspace, "amazon2018", {"meta": other})


# ---- downloads -------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    hits: dict = {}
    ranges: list = []

    def log_message(self, *a):
        pass

    def _send(self, code, ctype, body, extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if body is not None:
            self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self):
        path = self.path
        n = self.hits[path] = self.hits.get(path, 0) + 1
        if path in ("/ok.jpg", "/ok2.jpg"):                    # supports Range
            rng = self.headers.get("Range")
            if rng:
                self.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0])
                return self._send(206, "image/jpeg", JPEG[start:],
                                  [("Content-Range", f"bytes {start}-{len(JPEG) - 1}/{len(JPEG)}")])
            return self._send(200, "image/jpeg", JPEG)
        if path == "/norange.png":                            # ignores Range
            return self._send(200, "image/png", JPEG)
        if path == "/flaky.jpg":                              # fails once, then works
            if n == 1:
                return self._send(503, "text/plain", b"busy")
            return self._send(200, "image/jpeg", JPEG)
        if path == "/page.html":
            return self._send(200, "text/html", b"<html>hi</html>")
        if path == "/big.jpg":                                # honest Content-Length
            return self._send(200, "image/jpeg", JPEG * 3)
        if path == "/big-unsized.jpg":                        # no length, streams too much
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(JPEG * 3)
            return
        if path == "/to-ftp":
            return self._send(302, "text/plain", b"", [("Location", "ftp://127.0.0.1/x.jpg")])
        if path == "/to-ok":
            return self._send(302, "text/plain", b"", [("Location", "/ok.jpg")])
        if path == "/gone.jpg":
            return self._send(404, "text/plain", b"no")
        return self._send(500, "text/plain", b"?")


@pytest.fixture
def server():
    Handler.hits, Handler.ranges = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_ok_redirect_and_skip_when_complete(server, tmp_path):
    p = fetch(f"{server}/ok.jpg", tmp_path, "A", allow_private=True)
    assert p == tmp_path.resolve() / "A.jpg" and p.read_bytes() == JPEG
    assert fetch(f"{server}/ok.jpg", tmp_path, "A", allow_private=True) == p
    assert Handler.hits["/ok.jpg"] == 1
    assert fetch(f"{server}/to-ok", tmp_path, "B", allow_private=True).read_bytes() == JPEG
    assert not list(tmp_path.glob("*.part"))


def test_fetch_resumes_a_part_file_with_range(server, tmp_path):
    (tmp_path / "A.part").write_bytes(JPEG[:1000])
    assert fetch(f"{server}/ok.jpg", tmp_path, "A", allow_private=True).read_bytes() == JPEG
    assert Handler.ranges == ["bytes=1000-"]
    (tmp_path / "B.part").write_bytes(b"garbage that the server will not continue")
    restarted = fetch(f"{server}/norange.png", tmp_path, "B", allow_private=True)
    assert restarted.read_bytes() == JPEG and restarted.suffix == ".jpg"   # named by content


def test_fetch_retries_with_backoff(server, tmp_path):
    assert fetch(f"{server}/flaky.jpg", tmp_path, "F", allow_private=True, backoff=0.01).read_bytes() == JPEG
    assert Handler.hits["/flaky.jpg"] == 2
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(f"{server}/gone.jpg", tmp_path, "G", allow_private=True, backoff=0.01)
    assert Handler.hits["/gone.jpg"] == 1         # a 404 is not retried


@pytest.mark.parametrize("url, reason", [
    ("/page.html", "not an image (content type text/html)"),
    ("/big.jpg", "image larger than 20000 bytes (30720)"),
    ("/big-unsized.jpg", "image larger than 20000 bytes"),
    ("/to-ftp", "refused redirect to ftp://"),
    ("file:///etc/passwd", "refused file URL"),
    ("ftp://127.0.0.1/x.jpg", "refused ftp URL"),
    ("javascript:alert(1)", "refused javascript URL"),
])
def test_fetch_refuses(server, tmp_path, url, reason):
    url = server + url if url.startswith("/") else url
    with pytest.raises(DownloadError) as e:
        fetch(url, tmp_path, "X", allow_private=True, max_bytes=20000, backoff=0.01)
    assert reason in str(e.value)
    assert list(tmp_path.iterdir()) == []           # nothing left behind


def test_file_names_stay_inside_the_folder():
    for hostile in ("../../etc/passwd", "/abs", "a/b", "..", ".hidden", "x" * 500, "CON\x00"):
        stem = file_stem(hostile)
        assert "/" not in stem and not stem.startswith(".") and len(stem) <= 100
    assert file_stem("B00ABC123") == "B00ABC123"


def test_import_downloads_into_workspace_images_and_resumes(workspace, server, tmp_path):
    objs = meta_objs(server) + [{"asin": "../../evil", "title": "x",
                                 "imageURL": [f"{server}/ok2.jpg"]},
                                {"asin": "B010", "imageURL": ["file:///etc/passwd"]}]
    meta = jsonl(tmp_path / "meta.json", objs)
    got = []
    report = import_catalog(workspace, "amazon2018",
                            {"meta": meta, "download": True, "allow_private": True},
                            progress=lambda s, d, t: got.append((s, d, t)))
    images = (workspace.path / "images").resolve()
    mug = workspace.item("B001")
    assert mug.image == str(images / "B001.jpg") and Path(mug.image).read_bytes() == JPEG
    evil = workspace.item("../../evil")
    assert Path(evil.image).parent == images and Path(evil.image).read_bytes() == JPEG
    assert sorted(report.items_without_image) == ["B002", "B003", "B009", "B010"]
    assert "content type text/html" in report.download_failures["B002"]
    assert "refused file URL" in report.download_failures["B010"]
    assert ("B002", "image") in [(i, s) for i, s, _ in workspace.problems()]
    assert all(p.resolve().parent == images for p in images.iterdir())
    assert ("download", 4, 4) in got
    hits = dict(Handler.hits)
    import_catalog(workspace, "amazon2018", {"meta": meta, "download": True, "allow_private": True})
    assert Handler.hits["/ok.jpg"] == hits["/ok.jpg"]     # complete files are not fetched again


def test_download_images_reports_each_failure(server, tmp_path):
    got, failed = download_images({"a": f"{server}/ok.jpg", "b": f"{server}/gone.jpg"},
                                  tmp_path / "imgs", backoff=0.01, allow_private=True)
    assert list(got) == ["a"] and "404" in failed["b"]
    assert os.path.isfile(got["a"])


def test_a_later_successful_download_clears_the_problem(workspace, server, tmp_path):
    meta = jsonl(tmp_path / "m.json", [{"asin": "A1", "imageURL": [f"{server}/gone.jpg"]}])
    r = import_catalog(workspace, "amazon2018", {"meta": meta, "download": True, "allow_private": True})
    assert "HTTP 404" in r.download_failures["A1"]
    assert [p[:2] for p in workspace.problems()] == [("A1", "image")]
    meta = jsonl(tmp_path / "m.json", [{"asin": "A1", "imageURL": [f"{server}/ok.jpg"]}])
    r = import_catalog(workspace, "amazon2018", {"meta": meta, "download": True, "allow_private": True})
    assert r.download_failures == {} and workspace.problems() == []
    assert workspace.get_meta("import")["sources"]["download"] == str(workspace.path / "images")


def test_links_planted_in_the_images_folder_are_not_followed(server, tmp_path):
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"precious")
    dest = tmp_path / "images"
    dest.mkdir()
    os.symlink(outside, dest / "A.part")
    os.symlink(outside, dest / "B.jpg")
    a = fetch(f"{server}/ok.jpg", dest, "A", allow_private=True)
    b = fetch(f"{server}/ok.jpg", dest, "B", allow_private=True)
    assert outside.read_bytes() == b"precious"
    assert a.read_bytes() == JPEG and not a.is_symlink()
    assert b.suffix == ".jpg" and not b.is_symlink() and b.read_bytes() == JPEG
