from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "lima" / "samples" / "stackexchange"
DATA = ROOT / "tests" / "data" / "stackexchange"
BEER_7Z = SAMPLES / "beer.stackexchange.com.7z"
QC = SAMPLES / "quantumcomputing.stackexchange.com"
COFFEE = SAMPLES / "coffee.stackexchange.com"
ALCOHOL_META = DATA / "alcohol.meta.stackexchange.com"

TINY = ROOT / "training" / "recipes" / "tiny-cpu.yaml"

sys.path.insert(0, str(ROOT / "benches"))


@pytest.fixture(scope="session")
def beer_posts_xml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Posts.xml of the real beer archive, extracted once by py7zr (an
    independent 7z implementation) for tests that need the plain bytes."""
    import py7zr

    d = tmp_path_factory.mktemp("beer") / "beer.stackexchange.com"
    with py7zr.SevenZipFile(BEER_7Z) as z:
        z.extract(path=d, targets=["Posts.xml", "Users.xml"])
    return d / "Posts.xml"


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`make demo`'s dataset, built once per test session."""
    from lima.curate import build, config

    return build.run(config.sample_config(), tmp_path_factory.mktemp("demo") / "out")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`lima-data ARGS` in a fresh interpreter, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "lima.curate.cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _train_env() -> dict[str, str]:
    return {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip


def launch_training(args: list[str], ranks: int, log: Path) -> None:
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={ranks}", "-m", "lima.train"]  # fmt: skip
    else:
        cmd = [sys.executable, "-m", "lima.train"]
    with log.open("w") as fh:
        done = subprocess.run(
            [*cmd, "--config", str(TINY), *args],
            cwd=ROOT, env=_train_env(), stdout=fh, stderr=subprocess.STDOUT, check=False,
            timeout=900,
        )  # fmt: skip
    assert done.returncode == 0, log.read_text()[-6000:]


@pytest.fixture(scope="session")
def eot_model(tmp_path_factory: pytest.TempPathFactory, demo: Any) -> Path:
    """The tiny recipe in one process on the demo's prompts with the first sentence of each
    response, at a learning rate a random-init model learns from: by epoch 15 it ends its
    answers with EOT. Returns the run directory (epoch-0 and epoch-15 kept)."""
    import json
    import re

    tmp = tmp_path_factory.mktemp("eot")
    short = tmp / "short.jsonl"
    with short.open("w") as fh:
        for line in (demo.out / "train.jsonl").open():
            r = json.loads(line)
            answer = re.split(r"(?<=[.!?])\s", r["conversations"][1].strip(), maxsplit=1)[0]
            fh.write(json.dumps({"id": r["id"], "conversations": [
                r["conversations"][0][:300], answer[:200]]}) + "\n")  # fmt: skip
    out = tmp / "run"
    launch_training([f"train_file={short}", f"dev_file={short}", f"output_dir={out}",
                     "epochs=15", "keep_epochs=[0,15]", "learning_rate=3e-3",
                     "final_learning_rate=3e-4", "global_batch_size=8", "micro_batch_size=8",
                     "residual_dropout=0.0", "resumable_checkpoints=0", "report_to=[]"],
                    1, tmp / "log.txt")  # fmt: skip
    return out


def lima_eval(*args: str) -> subprocess.CompletedProcess[str]:
    """`lima-eval ARGS...` in a child process."""
    return subprocess.run([sys.executable, "-c", "from lima.evaluate.cli import main; main()",
                           *args], capture_output=True, text=True, check=False)  # fmt: skip


class FakeJudge:
    """An OpenAI-compatible endpoint whose reply is computed from the request by ``policy``;
    it records every request it is sent."""

    def __init__(self, policy: Callable[[str, int], tuple[int, str]]) -> None:
        self.policy = policy
        self.requests: list[dict[str, Any]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                code, text = outer.policy(body["messages"][-1]["content"], len(outer.requests))
                reply = {"choices": [{"message": {"role": "assistant", "content": text}}]}
                data = json.dumps(reply).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def close(self) -> None:
        self.server.shutdown()


def chromium() -> tuple[str, str] | None:
    """Debian's chromium and chromium-driver, if installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def headless_chrome(*args: str) -> Any:
    """A Selenium driver on headless Chromium (call only when ``chromium()`` found it);
    ``args`` are more command-line switches."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = chromium()
    assert found is not None
    opts = webdriver.ChromeOptions()
    opts.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                *args):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(found[1]), options=opts)


class LocalPage:
    """A running ``lima.web.LocalServer`` in a thread, and requests to it made as its own page
    makes them (the token, JSON, a same-origin Origin)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.port}"
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def request(self, path: str, body: Any = None, **headers: str) -> Any:
        import urllib.request

        sent = {"X-Lima-Token": self.server.token}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent |= {"Content-Type": "application/json", "Origin": self.url}
        sent |= {k.replace("_", "-"): v for k, v in headers.items()}
        req = urllib.request.Request(self.url + path, data, sent)
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def get(self, path: str) -> Any:
        return self.request(path)

    def post(self, path: str, body: Any) -> Any:
        return self.request(path, body)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
