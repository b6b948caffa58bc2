"""The review page: decisions survive restarts, the build uses them, and dump
text is shown as text. The browser test drives Debian's Chromium headless."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import chromium, headless_chrome

from lima.curate import build, config, review

XSS = '<script>alert("x1")</script> and <img src=x onerror=alert("x2")>'


@pytest.fixture()
def built(tmp_path: Path) -> Path:
    """A demo build whose first candidate carries hostile markup."""
    out = tmp_path / "out"
    build.run(config.sample_config(), out)
    # the page lists files by name; keep the AskReddit candidates first
    for name in ("natural_instructions", "wikihow"):
        (out / "candidates" / f"{name}.parquet").unlink()
    path = out / "candidates" / "reddit_askreddit.parquet"
    frame = pl.read_parquet(path)
    first = frame["conversations"][0][0]
    hostile = [XSS + " " + first]
    frame = frame.with_columns(
        conversations=pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit(pl.Series([hostile])))
        .otherwise(pl.col("conversations"))
    )
    frame.write_parquet(path)
    return out


class Server:
    def __init__(self, out: Path) -> None:
        self.server = review.serve(out, port=0)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path) as r:
            return json.loads(r.read())

    def post(self, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.url + "/api/decide",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def server(built: Path) -> Iterator[Server]:
    s = Server(built)
    yield s
    s.stop()


def test_binds_to_loopback(server: Server) -> None:
    assert server.server.server_address[0] == "127.0.0.1"


def test_decisions_survive_a_restart_and_feed_the_build(built: Path, server: Server) -> None:
    progress = server.get("/api/progress")
    assert progress["buckets"]["reddit/AskMen"]["quota"] == 10
    assert progress["buckets"]["stackexchange/stem"]["candidates"] == 17
    items = [server.get(f"/api/item/{i}") for i in range(3)]
    server.post({"id": items[0]["id"], "decision": "accept"})
    server.post({"id": items[1]["id"], "decision": "reject"})
    edited = ["What is the best advice you ever got from your father?"]
    server.post({"id": items[2]["id"], "decision": "accept", "turns": edited})
    server.stop()

    again = Server(built)  # a new process would see the same file
    try:
        got = [again.get(f"/api/item/{i}") for i in range(3)]
        assert [g["decision"] for g in got] == ["accept", "reject", "accept"]
        assert got[2]["turns"] == edited and got[2]["edited"] is True
        assert again.get("/api/progress")["buckets"]["reddit/AskMen"]["accepted"] == 2
    finally:
        again.stop()

    result = build.run(config.sample_config(), built)
    reddit_test = result.splits["test"].filter(pl.col("source") == "reddit")
    test_prompts = [c[0] for c in reddit_test["conversations"]]
    assert sorted(reddit_test["id"]) == sorted([items[0]["id"], items[2]["id"]])
    assert edited[0] in test_prompts
    assert result.selection["reddit/askreddit"].short_by == 8  # reviewed: 2 of 10


def test_bad_requests_are_refused(server: Server) -> None:
    item = server.get("/api/item/0")
    for body in (
        {"id": "nope", "decision": "accept"},
        {"id": item["id"], "decision": "maybe"},
        {"id": item["id"], "decision": "accept", "turns": ["a", "b", "c"]},
    ):
        with pytest.raises(urllib.error.HTTPError) as info:
            server.post(body)
        assert info.value.code == 400
    assert server.get("/api/progress")["reviewed"] == 0


def test_markup_in_dump_text_is_escaped(server: Server) -> None:
    item = server.get("/api/item/0")
    html = item["turns_html"][0]
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img" in html


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium and chromium-driver")
def test_page_in_headless_chromium(built: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver = headless_chrome()
    s = Server(built)
    try:
        wait = WebDriverWait(driver, 10)
        driver.get(s.url)
        wait.until(lambda d: d.find_element(By.ID, "position").text.startswith("1 /"))
        turns = driver.find_element(By.ID, "turns")
        # the hostile markup is on the page as text; nothing ran, no image was made
        assert '<script>alert("x1")</script>' in turns.text
        assert not turns.find_elements(By.TAG_NAME, "img")
        assert not turns.find_elements(By.TAG_NAME, "script")
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018

        body = driver.find_element(By.TAG_NAME, "body")
        first = s.get("/api/item/0")["id"]
        body.send_keys("a")  # accept, moves on
        wait.until(lambda d: d.find_element(By.ID, "position").text.startswith("2 /"))
        second = s.get("/api/item/1")["id"]
        body.send_keys("r")  # reject
        wait.until(lambda d: d.find_element(By.ID, "position").text.startswith("3 /"))
        body.send_keys("e")  # edit
        area = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "textarea.edit"))
        area.clear()
        area.send_keys("An edited prompt?")
        area.send_keys(Keys.CONTROL, Keys.ENTER)
        wait.until(lambda d: d.find_element(By.ID, "position").text.startswith("4 /"))
        progress = driver.find_element(By.ID, "progress").text
        assert "reddit/AskMen: 2/10 accepted, 1 rejected" in progress

        # restart the server; the page shows every decision again
        s.stop()
        s = Server(built)
        driver.get(s.url)
        wait.until(lambda d: d.find_element(By.ID, "position").text.startswith("1 /"))
        assert driver.find_element(By.ID, "status").text == "accepted"
        driver.find_element(By.TAG_NAME, "body").send_keys("j")
        wait.until(lambda d: d.find_element(By.ID, "status").text == "rejected")
        driver.find_element(By.TAG_NAME, "body").send_keys("j")
        wait.until(lambda d: d.find_element(By.ID, "status").text == "accepted (edited)")
        assert "An edited prompt?" in driver.find_element(By.ID, "turns").text
        assert s.get("/api/item/0")["id"] == first and s.get("/api/item/1")["id"] == second
    finally:
        driver.quit()
        s.stop()
