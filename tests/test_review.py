"""The review page: decisions survive restarts, the build uses them, and dump
text is shown as text. The browser test drives Debian's Chromium headless."""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import LocalPage, chromium, headless_chrome

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


class Server(LocalPage):
    def __init__(self, out: Path) -> None:
        super().__init__(review.serve(out, port=0))

    def post(self, body: Any, path: str = "/api/decide") -> Any:
        return super().post(path, body)


@pytest.fixture()
def server(built: Path) -> Iterator[Server]:
    s = Server(built)
    yield s
    s.stop()


def test_binds_to_loopback(server: Server) -> None:
    assert server.server.server_address[0] == "127.0.0.1"


def test_decisions_survive_a_restart_and_feed_the_build(built: Path, server: Server) -> None:
    progress = server.get("/api/progress")
    assert progress["buckets"]["reddit/askreddit"]["quota"] == 10
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
        assert again.get("/api/progress")["buckets"]["reddit/askreddit"]["accepted"] == 2
    finally:
        again.stop()

    result = build.run(config.sample_config(), built)
    reddit_test = result.splits["test"].filter(pl.col("source") == "reddit")
    test_prompts = [c[0] for c in reddit_test["conversations"]]
    assert sorted(reddit_test["id"]) == sorted([items[0]["id"], items[2]["id"]])
    assert edited[0] in test_prompts
    assert result.selection["reddit/askreddit"].short_by == 8  # reviewed: 2 of 10
    # the rejected candidate is gone from every split, and the manifest says what review did
    assert all(items[1]["id"] not in f["id"].to_list() for f in result.splits.values())
    record = result.manifest["review"]
    assert record["changed_selection"] is True
    assert record["accepted"] == 2 and record["edited"] == 1
    assert record["rejected_removed_from_candidates"] == 1
    assert record["selection"] == {
        # both accepted were among the automatic first 10; the other 8 of those are left out
        "reddit/askreddit": {"from_review": 2, "edited": 1, "differs_from_automatic": 0,
                             "automatic_left_out": 8}
    }  # fmt: skip
    assert record["examples_from_review"] == 2
    on_disk = json.loads((built / "manifest.json").read_text())
    assert on_disk["review"] == record


def test_every_bucket_has_its_quota_from_the_manifest(demo: Any) -> None:
    items = review.load_items(demo.out)
    quotas = review.quotas(demo.out)
    buckets = {it.bucket for it in items}
    assert len(buckets) == 6
    wanted = {k: v["wanted"] for k, v in demo.manifest["selection"].items()}
    assert {b: quotas[b] for b in buckets} == {b: wanted[b] for b in buckets}


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
        assert "reddit/askreddit: 2/10 accepted, 1 rejected" in progress

        # restart the server; the page opens at the first undecided candidate and shows
        # every decision again
        s.stop()
        s = Server(built)
        driver.get(s.url)
        wait.until(lambda d: d.find_element(By.ID, "position").text.startswith("4 /"))
        assert driver.find_element(By.ID, "status").text == "undecided"
        driver.find_element(By.TAG_NAME, "body").send_keys("k")
        wait.until(lambda d: d.find_element(By.ID, "status").text == "accepted (edited)")
        assert "An edited prompt?" in driver.find_element(By.ID, "turns").text
        driver.find_element(By.TAG_NAME, "body").send_keys("k")
        wait.until(lambda d: d.find_element(By.ID, "status").text == "rejected")
        driver.find_element(By.TAG_NAME, "body").send_keys("k")
        wait.until(lambda d: d.find_element(By.ID, "status").text == "accepted")
        assert s.get("/api/item/0")["id"] == first and s.get("/api/item/1")["id"] == second
    finally:
        driver.quit()
        s.stop()


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium and chromium-driver")
def test_page_resumes_filters_undoes_and_loses_no_key(built: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    s = Server(built)
    total = s.get("/api/progress")["total"]
    ids = [s.get(f"/api/item/{i}")["id"] for i in range(6)]
    for i in (0, 1):
        s.post({"id": ids[i], "decision": "accept"})
    driver = headless_chrome()
    try:
        wait = WebDriverWait(driver, 15)
        position = lambda: driver.find_element(By.ID, "position").text  # noqa: E731
        driver.get(s.url)
        # resumes at the first undecided candidate
        wait.until(lambda d: position() == f"3 / {total}")
        assert driver.find_element(By.ID, "status").text == "undecided"

        # three keys at once, while each decision is still in flight: none is lost
        driver.find_element(By.TAG_NAME, "body").send_keys("aar")
        wait.until(lambda d: position() == f"6 / {total}")
        decided = [s.get(f"/api/item/{i}")["decision"] for i in range(6)]
        assert decided == ["accept", "accept", "accept", "accept", "reject", None]

        # undo walks back through this tab's decisions, and the database follows
        driver.find_element(By.TAG_NAME, "body").send_keys("u")
        wait.until(lambda d: position() == f"5 / {total}")
        assert driver.find_element(By.ID, "status").text == "undecided"
        assert s.get("/api/item/4")["decision"] is None
        driver.find_element(By.TAG_NAME, "body").send_keys("u")
        wait.until(lambda d: position() == f"4 / {total}")
        wait.until(lambda d: s.get("/api/item/3")["decision"] is None)
        assert s.get("/api/item/2")["decision"] == "accept"

        # a bucket filter opens at that bucket's first undecided candidate
        Select(driver.find_element(By.ID, "bucket")).select_by_value("stackexchange/stem")
        wait.until(lambda d: position() == "1 / 17")
        assert "stackexchange/stem" in driver.find_element(By.ID, "where").text
        # a search within it
        items = review.load_items(built)
        stem = [it for it in items if it.bucket == "stackexchange/stem"]
        want = [it for it in stem if "qubit" in "\n".join([it.id, *it.conversations]).casefold()]
        assert 0 < len(want) < 17
        box = driver.find_element(By.ID, "search")
        box.send_keys("qubit\n")
        wait.until(lambda d: position() == f"1 / {len(want)}")
        assert want[0].id in driver.find_element(By.ID, "where").text
        assert "qubit" in driver.find_element(By.ID, "turns").text.lower()
        # decide the first, step back, and "next undecided" skips it
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys("a")
        wait.until(lambda d: position() == f"2 / {len(want)}")
        body.send_keys("k")
        wait.until(lambda d: driver.find_element(By.ID, "status").text == "accepted")
        body.send_keys("n")
        wait.until(lambda d: position() == f"2 / {len(want)}")
        assert want[1].id in driver.find_element(By.ID, "where").text
        assert s.get("/api/progress")["buckets"]["stackexchange/stem"]["accepted"] == 1
    finally:
        driver.quit()
        s.stop()
