"""Feature files at scale: memory-mapped, not read whole; a damaged file is refused before
a page past its end can be touched."""
import json
import struct

import pytest
import torch

from core.features import store


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2 ** 20


def test_feature_vectors_are_memory_mapped(tmp_path):
    n, v, d = 100_000, 10, 128          # 256 MB of float16
    ids = [f"i{k}" for k in range(n)]
    vec = torch.zeros(n, v, d, dtype=torch.float16)
    vec[12345, 3, 7] = 1.5
    store.save(tmp_path, "text", store.FeatureSet(ids, vec, torch.ones(n, v, dtype=torch.bool), {"model": "m"}))
    del vec
    before = _rss_mb()
    fs = store.load(tmp_path, "text")
    grew = _rss_mb() - before
    assert fs.vectors.dtype == torch.float16 and tuple(fs.vectors.shape) == (n, v, d)
    assert float(fs.vectors[12345, 3, 7]) == 1.5 and fs.ids[12345] == "i12345"
    assert grew < 100, f"loading mapped {grew:.0f} MB into memory; the vectors are 256 MB"
    # copy-on-write: changing the tensor never changes the file
    fs.vectors[0, 0, 0] = 9.0
    assert float(store.load(tmp_path, "text").vectors[0, 0, 0]) == 0.0


def test_truncated_or_lying_feature_files_are_refused(tmp_path):
    ids = ["a", "b", "c"]
    store.save(tmp_path, "text", store.FeatureSet(ids, torch.ones(3, 2, 4).half(),
                                                  torch.ones(3, 2, dtype=torch.bool), {}))
    path = store.path_for(tmp_path, "text")
    data = path.read_bytes()
    path.write_bytes(data[:-5])                       # cut short
    with pytest.raises(ValueError, match="does not fit"):
        store.load(tmp_path, "text")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header["vectors"]["shape"] = [3000, 2, 4]         # claims more rows than the file holds
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
    with pytest.raises(ValueError, match="does not fit"):
        store.load(tmp_path, "text")
