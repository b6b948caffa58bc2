"""Human annotation: sides drawn per annotator, models never shown, answers stored in the
files' own terms and exported as verdicts that `agreement` reads; the page driven in headless
Chromium like the review page."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, LocalPage, chromium, headless_chrome, lima_eval

from lima.errors import ConfigError
from lima.evaluate import annotate

ALPACA = ROOT / "tests" / "data" / "alpaca_eval"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """The first 6 AlpacaEval prompts, alpaca-7b's and text-davinci-003's answers."""
    out = []
    for name in ("alpaca-7b", "text_davinci_003"):
        rows = json.loads((ALPACA / f"{name}.model_outputs.json").read_text())[:6]
        (tmp_path / f"{name}.json").write_text(json.dumps(rows))
        out.append(tmp_path / f"{name}.json")
    return out[0], out[1]


class Server(LocalPage):
    def __init__(self, files: list[Path], db: Path) -> None:
        super().__init__(annotate.serve(files, db, port=0))

    def page(self) -> str:
        with urllib.request.urlopen(self.url + "/") as r:
            return str(r.read().decode())

    def post(self, body: Any, path: str = "/api/annotate") -> Any:
        return super().post(path, body)


@pytest.fixture
def server(files: tuple[Path, Path], tmp_path: Path) -> Iterator[Server]:
    s = Server(list(files), tmp_path / "ann.sqlite")
    yield s
    s.stop()


def _outputs(path: Path) -> dict[str, str]:
    return {r["output"]: r["generator"] for r in json.loads(path.read_text())}


def test_pairs_are_shuffled_per_annotator_and_models_hidden(
    files: tuple[Path, Path], server: Server, tmp_path: Path
) -> None:
    a_texts, b_texts = _outputs(files[0]), _outputs(files[1])
    assert server.get("/api/task")["kind"] == "pairwise"
    orders: dict[str, list[bool]] = {}
    for who in ("alice", "bob"):
        orders[who] = []
        for i in range(6):
            item = server.get(f"/api/item/{i}?annotator={who}")
            blob = json.dumps(item)
            assert "alpaca-7b" not in blob and "text_davinci_003" not in blob
            first = item["responses_html"][0]
            a_first = any(annotate.render(t) == first for t in a_texts)
            assert a_first or any(annotate.render(t) == first for t in b_texts)
            orders[who].append(a_first)
            # alice prefers alpaca-7b's answer wherever it is shown; bob picks response 2 always
            choice = ("1" if a_first else "2") if who == "alice" else "2"
            if who == "bob" and i == 5:
                choice = "neither"
            server.post({"annotator": who, "id": item["id"], "choice": choice})
    # both sides come first somewhere, and the two annotators do not see the same order
    assert any(orders["alice"]) and not all(orders["alice"])
    assert orders["alice"] != orders["bob"]
    assert "alpaca" not in server.page() and "davinci" not in server.page()
    assert server.get("/api/task")["annotators"] == {"alice": 6, "bob": 6}
    again = server.get("/api/item/0?annotator=alice")
    assert again["choice"] == ("1" if orders["alice"][0] else "2") and again["done"] == 6

    out = tmp_path / "export"
    done = lima_eval("export-annotations", str(tmp_path / "ann.sqlite"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    alice = [json.loads(x) for x in (out / "alice.verdicts.jsonl").open()]
    bob = [json.loads(x) for x in (out / "bob.verdicts.jsonl").open()]
    assert [r["verdict"] for r in alice] == ["a"] * 6
    assert alice[0]["model_a"] == "alpaca-7b" and alice[0]["model_b"] == "text_davinci_003"
    bob_by_id = {r["id"]: r["verdict"] for r in bob}
    ids = [server.get(f"/api/item/{i}?annotator=bob")["id"] for i in range(6)]
    want = ["b" if a_first else "a" for a_first in orders["bob"][:5]] + ["tie"]
    assert [bob_by_id[i] for i in ids] == want
    # crowd-crowd agreement, tie-discounted: 1 per "a", 0 per "b", 0.5 for the tie
    agree = lima_eval(
        "agreement", str(out / "alice.verdicts.jsonl"), str(out / "bob.verdicts.jsonl")
    )
    assert agree.returncode == 0, agree.stderr
    assert json.loads(agree.stdout)["agreement"] == pytest.approx((want.count("a") + 0.5) / 6)


def test_answers_survive_a_restart_and_bad_requests_are_refused(
    files: tuple[Path, Path], server: Server, tmp_path: Path
) -> None:
    item = server.get("/api/item/2?annotator=carol")
    server.post({"annotator": "carol", "id": item["id"], "choice": "neither"})
    for body in (
        {"annotator": "carol", "id": item["id"], "choice": "a"},  # sides are 1 and 2
        {"annotator": "carol", "id": "nope", "choice": "1"},
        {"annotator": "", "id": item["id"], "choice": "1"},
        {"annotator": "<script>", "id": item["id"], "choice": "1"},
    ):
        with pytest.raises(urllib.error.HTTPError) as info:
            server.post(body)
        assert info.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as info:
        server.get("/api/item/99?annotator=carol")
    assert info.value.code == 404
    server.stop()
    again = Server(list(files), tmp_path / "ann.sqlite")
    try:
        assert again.get("/api/item/2?annotator=carol")["choice"] == "neither"
        assert again.get("/api/task")["annotators"] == {"carol": 1}
    finally:
        again.stop()


def test_absolute_labels_by_people_read_like_a_judges(tmp_path: Path) -> None:
    chats = tmp_path / "chats.jsonl"
    first = {"id": "81#1", "prompt": "Write a haiku.", "response": "Leaves fall.", "model": "m"}
    second = {"id": "81#2", "context": ["Write a haiku.", "Leaves fall."], "model": "m",
              "prompt": "Now in French.", "response": "Les feuilles tombent."}  # fmt: skip
    rows = [first, second]
    chats.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = Server([chats], tmp_path / "abs.sqlite")
    try:
        assert s.get("/api/task")["choices"] == ["fail", "pass", "excellent"]
        second = s.get("/api/item/1?annotator=dan")
        assert second["context"] == ["Write a haiku.", "Leaves fall."]
        s.post({"annotator": "dan", "id": "81#1", "choice": "excellent"})
        s.post({"annotator": "dan", "id": "81#2", "choice": "fail"})
    finally:
        s.stop()
    out = tmp_path / "export"
    assert lima_eval("export-annotations", str(tmp_path / "abs.sqlite"), "--out",
                     str(out)).returncode == 0  # fmt: skip
    done = lima_eval("absolute", str(out / "dan.labels.jsonl"), "--out", str(tmp_path / "abs"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "abs" / "summary.json").read_text())["runs"][0]
    assert summary["counts"] == {"fail": 1, "pass": 0, "excellent": 1, "unparsed": 0, "failed": 0}


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium and chromium-driver")
def test_annotation_page_in_headless_chromium(files: tuple[Path, Path], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = headless_chrome()
    s = Server(list(files), tmp_path / "ann.sqlite")
    a_texts = _outputs(files[0])
    try:
        wait = WebDriverWait(driver, 10)
        driver.get(s.url)
        # no name yet: the page asks for one
        wait.until(lambda d: d.find_element(By.ID, "who").is_displayed())
        name = driver.find_element(By.ID, "annotator")
        name.send_keys("erin\n")
        wait.until(lambda d: d.find_element(By.ID, "position").text == "1 / 6")
        page = driver.find_element(By.TAG_NAME, "body").text
        assert "alpaca-7b" not in page and "text_davinci_003" not in page
        body = driver.find_element(By.TAG_NAME, "body")
        picks = []
        for key, position in (("1", "2 / 6"), ("n", "3 / 6"), ("2", "4 / 6")):
            shown = driver.find_elements(By.CSS_SELECTOR, ".response")[0].text
            a_first = any(t.strip()[:40] in shown for t in a_texts)
            picks.append((key, a_first))
            body.send_keys(key)
            wait.until(lambda d, p=position: d.find_element(By.ID, "position").text == p)
        assert driver.find_element(By.ID, "done").text == "3 of 6 answered"
        # back to the first: the answer shows, under the side the annotator saw
        body.send_keys("k")
        body.send_keys("k")
        body.send_keys("k")
        wait.until(lambda d: d.find_element(By.ID, "position").text == "1 / 6")
        wait.until(lambda d: "Response 1 is better" in d.find_element(By.ID, "choice").text)
        # a second annotator through the link they were handed
        driver.get(s.url + "/?annotator=frank")
        wait.until(lambda d: d.find_element(By.ID, "position").text == "1 / 6")
        assert driver.find_element(By.ID, "done").text == "0 of 6 answered"
        driver.find_element(By.TAG_NAME, "body").send_keys("2")
        wait.until(lambda d: d.find_element(By.ID, "done").text == "1 of 6 answered")
    finally:
        driver.quit()
        s.stop()
    out = tmp_path / "export"
    annotate.export(tmp_path / "ann.sqlite", out)
    erin = [json.loads(x) for x in (out / "erin.verdicts.jsonl").open()]
    by_prompt = {r["prompt"]: r["verdict"] for r in erin}
    prompts = [r["instruction"] for r in json.loads(files[0].read_text())]
    want = {"1": lambda a_first: "a" if a_first else "b", "n": lambda _: "tie",
            "2": lambda a_first: "b" if a_first else "a"}  # fmt: skip
    assert [by_prompt[p] for p in prompts[:3]] == [want[k](f) for k, f in picks]
    assert (out / "frank.verdicts.jsonl").exists()


def test_hostile_text_is_shown_as_text_and_a_corrupt_database_is_named(tmp_path: Path) -> None:
    hostile = '<script>alert("x1")</script> and <img src=x onerror=alert("x2")>'
    rows = [{"id": "1", "prompt": hostile, "response": hostile, "model": "m",
             "context": [hostile, hostile]}]  # fmt: skip
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n")
    s = Server([path], tmp_path / "ok.sqlite")
    try:
        item = s.get("/api/item/0?annotator=eve")
    finally:
        s.stop()
    for html in [item["prompt_html"], *item["responses_html"], *item["context_html"]]:
        assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html

    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"not a database " * 100)
    with pytest.raises(ConfigError, match=r"corrupt.sqlite: not an annotation database"):
        annotate.serve([path], corrupt, port=0)
    done = lima_eval("export-annotations", str(corrupt), "--out", str(tmp_path / "x"))
    assert done.returncode == 1 and "corrupt.sqlite: not an annotation database" in done.stderr
    assert "Traceback" not in done.stderr


def test_export_keeps_annotator_names_distinct(files: tuple[Path, Path], tmp_path: Path) -> None:
    names = ["ann b", "ann_b", "ann@b", "Ann", "ann", ".hidden"]
    s = Server(list(files), tmp_path / "ann.sqlite")
    try:
        item = s.get("/api/item/0?annotator=x")
        for k, name in enumerate(names):
            s.post({"annotator": name, "id": item["id"], "choice": ["1", "2", "neither"][k % 3],
                    "comment": f"from {name}"})  # fmt: skip
    finally:
        s.stop()
    written = annotate.export(tmp_path / "ann.sqlite", tmp_path / "export")
    got = {p.name: [json.loads(x) for x in p.open()] for p in written}
    assert sorted(got) == sorted([
        "ann%20b.verdicts.jsonl", "ann_b.verdicts.jsonl", "ann%40b.verdicts.jsonl",
        "Ann.verdicts.jsonl", "ann~2.verdicts.jsonl", "%2Ehidden.verdicts.jsonl"])  # fmt: skip
    # one file per person, each holding that person's answer and comment only
    owners = {rows[0]["annotator"] for rows in got.values()}
    assert owners == set(names) and all(len(rows) == 1 for rows in got.values())
    assert all(rows[0]["comment"] == f"from {rows[0]['annotator']}" for rows in got.values())


def test_a_database_from_before_comments_still_opens_and_exports(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript(
        """CREATE TABLE tasks (task TEXT PRIMARY KEY, kind TEXT NOT NULL, model_a TEXT NOT NULL,
                               model_b TEXT);
           CREATE TABLE annotations (task TEXT NOT NULL, item TEXT NOT NULL,
               annotator TEXT NOT NULL, label TEXT NOT NULL, prompt TEXT NOT NULL,
               shown_b_first INTEGER, updated_at TEXT NOT NULL,
               PRIMARY KEY (task, item, annotator));
           INSERT INTO tasks VALUES ('absolute:m', 'absolute', 'm', NULL);
           INSERT INTO annotations VALUES ('absolute:m', '1', 'old', 'pass', 'p', NULL, 'now');"""
    )
    con.close()
    assert [json.loads(x)["label"] for x in annotate.export(db, tmp_path / "e")[0].open()] == [
        "pass"
    ]
    s = Server(list(files), db)  # adds the comment column
    try:
        item = s.get("/api/item/0?annotator=new")
        s.post({"annotator": "new", "id": item["id"], "choice": "1", "comment": "fine"})
        assert s.get("/api/item/0?annotator=new")["comment"] == "fine"
    finally:
        s.stop()


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium and chromium-driver")
def test_page_resumes_shows_guidelines_keeps_comments_and_every_key(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    s = Server(list(files), tmp_path / "ann.sqlite")
    for i in (0, 1):
        item = s.get(f"/api/item/{i}?annotator=gina")
        s.post({"annotator": "gina", "id": item["id"], "choice": "neither"})
    driver = headless_chrome()
    try:
        wait = WebDriverWait(driver, 15)
        position = lambda: driver.find_element(By.ID, "position").text  # noqa: E731
        driver.get(s.url + "/?annotator=gina")
        # resumes at gina's first unanswered item, with the guidelines people judge by
        wait.until(lambda d: position() == "3 / 6")
        guide = driver.find_element(By.ID, "guidelines").text
        assert "super-intelligent AI assistant" in guide and "Neither" in guide
        assert annotate.guidelines("pairwise")["text"][0][:40] in guide
        # a comment goes with the answer; keys typed in the comment are text, not answers
        comment = driver.find_element(By.ID, "comment")
        comment.send_keys("1 is too long")
        comment.send_keys(Keys.ESCAPE)
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys("1")
        wait.until(lambda d: position() == "4 / 6")
        assert driver.find_element(By.ID, "comment").get_attribute("value") == ""
        # three answers at once while each is in flight: all three land, in order
        body.send_keys("2n1")
        wait.until(lambda d: d.find_element(By.ID, "done").text == "6 of 6 answered")
        assert position() == "6 / 6"
        got = [s.get(f"/api/item/{i}?annotator=gina") for i in range(6)]
        assert [g["choice"] for g in got] == ["neither", "neither", "1", "2", "neither", "1"]
        assert got[2]["comment"] == "1 is too long"
        # a comment changed after answering is saved when the field is left
        body.send_keys("k")
        wait.until(lambda d: position() == "5 / 6")
        comment = driver.find_element(By.ID, "comment")
        comment.send_keys("both wrong")
        comment.send_keys(Keys.ESCAPE)
        wait.until(lambda d: s.get("/api/item/4?annotator=gina")["comment"] == "both wrong")
        assert s.get("/api/item/4?annotator=gina")["choice"] == "neither"
        # everything answered: the page opens at the start and says so
        driver.get(s.url + "/?annotator=gina")
        wait.until(lambda d: position() == "1 / 6")
        wait.until(lambda d: "All answered" in d.find_element(By.ID, "notice").text)
    finally:
        driver.quit()
        s.stop()
    rows = [
        json.loads(x) for x in annotate.export(tmp_path / "ann.sqlite", tmp_path / "e")[0].open()
    ]
    assert sorted(r.get("comment", "") for r in rows) == ["", "", "", "", "1 is too long",
                                                          "both wrong"]  # fmt: skip
