"""The labeling round trip against a real Label Studio server (issue 15): `mine`'s labeling config and tasks are
accepted by the server, a labeler's brush annotations come back through its JSON export, and `import-labels`
turns them into exactly the masks that were painted.

Label Studio runs from its own venv (`make labelstudio`, `.venv-labelstudio/`: its pins clash with ours), offline,
on a free local port, with its data in a temporary folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthlabel.cli import main
from synthlabel.data.datasets import open_dataset
from synthlabel.mining import labelstudio as ls

REPO = Path(__file__).resolve().parents[2]
LABEL_STUDIO = REPO / ".venv-labelstudio" / "bin" / "label-studio"
TOKEN = "synthlabel0test0token0000000000000000000"

pytestmark = pytest.mark.skipif(
    not LABEL_STUDIO.is_file(), reason="Label Studio is not installed: run `make labelstudio` (make test does)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Token {TOKEN}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
        return json.loads(text) if text else None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("label_studio")
    port = free_port()
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(home), "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true", "HOME": str(home)}  # fmt: skip
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [str(LABEL_STUDIO), "start", "--no-browser", "--port", str(port), "--internal-host", "127.0.0.1",
         "--username", "labeler@example.com", "--password", "synthlabel-test", "--user-token", TOKEN],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    api = Server(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 240
    try:
        while True:
            try:
                api.call("GET", "/api/projects")
                break
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = (home / "server.log").read_text()[-3000:]
                    raise RuntimeError("Label Studio did not start:\n" + tail) from exc
                time.sleep(2)
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_tasks_go_to_a_real_server_and_its_export_comes_back_as_the_painted_masks(server, demo_root, tmp_path):
    seg = tmp_path / "seg"
    overrides = [f"data.path={demo_root}", "data.size=[32, 48]", "model.width=8", "model.depth=3",
                 "train.steps=2", "train.batch_size=2", "train.warmup_steps=1"]  # fmt: skip
    assert main(["train-seg", *overrides, "--out", str(seg)]) == 0
    frames = tmp_path / "frames"
    frames.mkdir()
    for n, record in enumerate(open_dataset(demo_root, "test").records[:3]):
        (frames / f"f{n}.png").write_bytes(record.image.read_bytes())
    out = tmp_path / "mine"
    assert main(["mine", str(frames), "--segmenter", str(seg / "model"), "--k", "3", "--duplicates", "0",
                 "--out", str(out)]) == 0  # fmt: skip
    config = (out / "labeling_config.xml").read_text()
    project = server.call("POST", "/api/projects", {"title": "synthlabel round trip", "label_config": config})
    tasks = json.loads((out / "tasks.json").read_text())
    server.call("POST", f"/api/projects/{project['id']}/import", tasks)
    listed = server.call("GET", f"/api/tasks?project={project['id']}&page_size=100")
    listed = listed["tasks"] if isinstance(listed, dict) else listed
    assert len(listed) == 3
    spec = open_dataset(demo_root, "test").out_spec
    rng = np.random.default_rng(0)
    painted = {}
    for t in listed:  # a labeler paints road over the left half and a random pedestrian blob, nothing else
        road, ped = np.zeros((32, 48), bool), rng.random((32, 48)) < 0.2
        road[:, :24] = True
        results = [
            {"from_name": ls.FROM_NAME, "to_name": ls.TO_NAME, "type": "brushlabels", "original_width": 48,
             "original_height": 32, "image_rotation": 0,
             "value": {"format": "rle", "rle": ls.mask_to_rle(m), "brushlabels": [name]}}
            for name, m in (("road", road), ("pedestrian", ped))
        ]  # fmt: skip
        server.call("POST", f"/api/tasks/{t['id']}/annotations", {"result": results})
        label = np.full((32, 48), spec.ignore_index, np.uint8)
        label[road], label[ped] = spec.id_of("road"), spec.id_of("pedestrian")
        painted[t["data"]["frame"]] = label
    export = server.call("GET", f"/api/projects/{project['id']}/export?exportType=JSON")
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert main(["import-labels", str(tmp_path / "export.json"), "--queue", str(out), "--out",
                 str(tmp_path / "labeled")]) == 0  # fmt: skip
    ds = open_dataset(tmp_path / "labeled", "train")
    assert sorted(r.image.name for r in ds.records) == sorted(painted)
    for record in ds.records:
        raw = np.array(Image.open(record.mask))
        assert np.array_equal(raw, painted[record.image.name]), record.image.name
