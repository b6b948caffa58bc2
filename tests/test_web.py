"""The local pages are safe by construction (``lima.web``): a real cross-origin page in headless
Chromium (served by a second local server on another port) tries every way a browser lets it
change state on the review, annotation and picks servers, and changes nothing; a DNS-rebinding
name gets 403; requests without the token, without JSON or with a foreign Host are refused;
binding beyond loopback needs a token. And the blind picks page saves its picks beside it."""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, LocalPage, chromium, headless_chrome, run_cli

from lima.commands import UsageError
from lima.curate import build, config, review
from lima.evaluate import annotate
from lima.train import picks
from lima.web import LocalServer

ALPACA = ROOT / "tests" / "data" / "alpaca_eval"
needs_chromium = pytest.mark.skipif(
    chromium() is None, reason="needs Debian's chromium and chromium-driver"
)


@dataclass
class Target:
    """A page server, the state-changing request an attacker wants, and a look at the state."""

    page: LocalPage
    path: str
    body: dict[str, Any]
    changed: Callable[[], bool]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("web") / "out"
    build.run(config.sample_config(), out)
    return out


def _annotation_files(tmp: Path) -> list[Path]:
    out = []
    for name in ("alpaca-7b", "text_davinci_003"):
        rows = json.loads((ALPACA / f"{name}.model_outputs.json").read_text())[:4]
        (tmp / f"{name}.json").write_text(json.dumps(rows))
        out.append(tmp / f"{name}.json")
    return out


def _run_dir(tmp: Path) -> Path:
    """A lima-train output folder with two epochs of dev generations."""
    gen = tmp / "run" / "dev_generations"
    gen.mkdir(parents=True)
    for k in (5, 10):
        rows = [{"id": f"p{i}", "epoch": k, "prompt": f"<b>prompt {i}</b>",
                 "generation": f"answer {i} of epoch {k}", "stopped_at_eot": True,
                 "new_tokens": 4 + k} for i in range(3)]  # fmt: skip
        (gen / f"epoch-{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp / "run"


def _count(db: Path, table: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        con.close()


@pytest.fixture(params=["review", "annotate", "picks"])
def target(request: pytest.FixtureRequest, built: Path, tmp_path: Path) -> Iterator[Target]:
    if request.param == "review":
        page = LocalPage(review.serve(built, port=0))
        first = page.get("/api/item/0")["id"]
        t = Target(page, "/api/decide", {"id": first, "decision": "reject"},
                   lambda: _count(built / review.DB_NAME, "decisions") > 0)  # fmt: skip
    elif request.param == "annotate":
        db = tmp_path / "ann.sqlite"
        page = LocalPage(annotate.serve(_annotation_files(tmp_path), db, port=0))
        first = page.get("/api/item/0?annotator=alice")["id"]
        t = Target(page, "/api/annotate", {"annotator": "mallory", "id": first, "choice": "1"},
                   lambda: _count(db, "annotations") > 0)  # fmt: skip
    else:
        run = _run_dir(tmp_path)
        page = LocalPage(picks.serve(run, port=0))
        t = Target(page, "/api/pick", {"id": "p0", "epoch": 5},
                   lambda: (run / picks.PICKS).exists())  # fmt: skip
    yield t
    t.page.stop()
    if request.param == "review":
        (built / review.DB_NAME).unlink(missing_ok=True)


ATTACK = """<!doctype html><html><head><title>attacking</title></head><body>
<iframe name="sink"></iframe>
<script>
const T = %(target)s, PATH = %(path)s, BODY = JSON.stringify(%(body)s);
const seen = [];
async function attempt(name, fn) {
  try {
    const r = await fn();
    seen.push(name + ": " + (r && r.type ? r.type + " " + r.status : r));
  } catch (e) { seen.push(name + ": blocked"); }
}
(async () => {
  // a simple request: no preflight, the browser sends it as is
  await attempt("no-cors text/plain", () => fetch(T + PATH, { method: "POST", mode: "no-cors",
      headers: { "Content-Type": "text/plain" }, body: BODY }));
  // JSON needs a CORS preflight, which the server refuses
  await attempt("cors json", () => fetch(T + PATH, { method: "POST",
      headers: { "Content-Type": "application/json" }, body: BODY }));
  // read the page for its token
  await attempt("read page", async () => (await fetch(T + "/")).text());
  await attempt("read api", async () => (await fetch(T + "/api/progress")).text());
  const blob = new Blob([BODY], { type: "text/plain" });
  await attempt("beacon", () => navigator.sendBeacon(T + PATH, blob));
  // the text/plain form trick: the body comes out as the JSON object
  const form = document.createElement("form");
  form.method = "POST"; form.action = T + PATH; form.enctype = "text/plain"; form.target = "sink";
  const input = document.createElement("input");
  input.name = BODY.slice(0, -1) + ', "x": "'; input.value = '"}';
  form.appendChild(input); document.body.appendChild(form); form.submit();
  await new Promise((ok) => setTimeout(ok, 1500));
  document.title = "done";
  document.body.dataset.seen = JSON.stringify(seen);
})();
</script></body></html>"""


class AttackerSite:
    """A second local server, on another port, whose page attacks ``target``."""

    def __init__(self, target: Target) -> None:
        page = ATTACK % {"target": json.dumps(target.page.url), "path": json.dumps(target.path),
                         "body": json.dumps(target.body)}  # fmt: skip
        data = page.encode()

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                return

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@needs_chromium
def test_a_cross_origin_page_in_chromium_changes_nothing(target: Target) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    attacker = AttackerSite(target)
    port = target.page.server.port
    driver = headless_chrome("--host-resolver-rules=MAP evil.example 127.0.0.1")
    try:
        driver.get(attacker.url)
        WebDriverWait(driver, 20).until(lambda d: d.title == "done")
        seen = json.loads(driver.find_element(By.TAG_NAME, "body").get_attribute("data-seen"))
        # DNS rebinding: a name of the attacker's that resolves to 127.0.0.1
        driver.get(f"http://evil.example:{port}/")
        rebound = driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()
        attacker.close()
    refused = target.page.server.refusals
    # the browser sent the simple requests (fetch no-cors, beacon, form), so the test saw a
    # real attack, and each was refused
    posts = [r for r in refused if r.startswith(f"POST {target.path}")]
    assert len(posts) >= 2, (seen, refused)
    assert any(r.startswith(f"OPTIONS {target.path}") for r in refused) or any(
        "cors json: blocked" in s for s in seen
    )
    assert "cors json: blocked" in seen and "read page: blocked" in seen
    assert not target.changed()
    assert "is not this server" in rebound
    assert any(r.startswith("GET /: Host evil.example") for r in refused)
    # the same request from the page's own origin, with its token, goes through
    target.page.post(target.path, target.body)
    assert target.changed()


def _status(page: LocalPage, path: str, body: bytes | None = None, **headers: str) -> int:
    req = urllib.request.Request(page.url + path, body, headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_requests_without_token_json_or_our_host_are_refused(target: Target) -> None:
    page, token, url = target.page, target.page.server.token, target.page.url
    body = json.dumps(target.body).encode()
    good = {"X-Lima-Token": token, "Content-Type": "application/json", "Origin": url}
    read = "/api/picks" if target.path == "/api/pick" else "/api/progress"
    if target.path == "/api/annotate":
        read = "/api/task"
    cases = [
        ({**good, "X-Lima-Token": "guess"}, 403),
        ({k: v for k, v in good.items() if k != "X-Lima-Token"}, 403),
        ({**good, "Content-Type": "text/plain"}, 403),
        ({**good, "Content-Type": "application/x-www-form-urlencoded"}, 403),
        ({**good, "Origin": "http://127.0.0.1:1"}, 403),
        ({**good, "Origin": "null"}, 403),
        ({k: v for k, v in good.items() if k != "Origin"}, 403),  # no Origin, no Sec-Fetch-Site
        ({**good, "Host": f"evil.example:{page.server.port}"}, 403),
        ({**good, "Host": "127.0.0.1:1"}, 403),
        ({**good, "Sec-Fetch-Site": "same-site"}, 403),
    ]
    for headers, want in cases:
        assert _status(page, target.path, body, **headers) == want, headers
    assert not target.changed()
    assert _status(page, read) == 403  # reading needs the token too
    assert _status(page, read, **{"X-Lima-Token": token}) == 200
    other_name = {"X-Lima-Token": token, "Host": f"localhost:{page.server.port}"}
    assert _status(page, read, **other_name) == 200
    for method in ("PUT", "DELETE", "OPTIONS", "PATCH"):
        req = urllib.request.Request(url + target.path, body, good, method=method)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        assert info.value.code == 403
    # a top-level navigation to the page from elsewhere opens it (a link in a chat); the page
    # carries the token only for a same-origin script to read
    nav = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert _status(page, "/", **nav) == 200
    assert _status(page, read, **{**nav, "X-Lima-Token": token}) == 403
    with urllib.request.urlopen(url + "/") as r:
        html = r.read().decode()
        assert f'<meta name="lima-token" content="{token}">' in html
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY"
    assert _status(page, target.path, body, **good) == 200
    assert target.changed()


def test_binding_beyond_loopback_needs_a_token_that_the_page_never_carries(
    built: Path, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match=r"--host 0\.0\.0\.0 .* give --token"):
        review.serve(built, host="0.0.0.0", port=0)
    with pytest.raises(UsageError, match="--token"):
        annotate.serve(_annotation_files(tmp_path), tmp_path / "a.sqlite", host="0.0.0.0", port=0)
    with pytest.raises(UsageError, match="--token"):
        picks.serve(_run_dir(tmp_path), host="0.0.0.0", port=0)
    done = run_cli("review", str(built), "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 2 and "give --token" in done.stderr
    assert "Traceback" not in done.stderr

    server = review.serve(built, host="0.0.0.0", port=0, token="s3cret-for-the-team")
    page = LocalPage(server)
    try:
        assert server.warning is not None and "other machines" in server.warning
        assert server.url().endswith("/#token=s3cret-for-the-team")
        with urllib.request.urlopen(page.url + "/") as r:
            assert "s3cret" not in r.read().decode()  # people bring the token in the link
        # any Host name reaches it (it is meant to be reached by the machine's names) but only
        # with the token
        assert _status(page, "/api/progress", Host="my-box.lan:80") == 403
        assert _status(page, "/api/progress", Host="my-box.lan:80",
                       **{"X-Lima-Token": "s3cret-for-the-team"}) == 200  # fmt: skip
    finally:
        page.stop()
    loop = LocalServer("127.0.0.1", 0, review.Handler)
    try:
        assert loop.warning is None and "#token" not in loop.url()
        assert loop.hosts == frozenset({f"127.0.0.1:{loop.port}", f"localhost:{loop.port}",
                                        f"[::1]:{loop.port}"})  # fmt: skip
    finally:
        loop.server_close()


def test_picks_page_is_blind_and_stable(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    one, two = picks.page(run / "dev_generations"), picks.page(run / "dev_generations")
    assert one == two  # the shuffle is drawn from the prompt ids: a rebuild is byte-identical
    rows = [r for r in one.split("<tr data-id=")[1:]]
    orders = [[c.split(">")[0] for c in r.split("<td data-epoch=")[1:]] for r in rows]
    assert all(sorted(o) == ["10", "5"] for o in orders)
    assert len({tuple(o) for o in orders}) == 2  # shuffled: not every row in epoch order
    assert "&lt;b&gt;prompt 0&lt;/b&gt;" in one and "<b>prompt" not in one
    assert one.count("<span class=reveal hidden>") == 6
    assert "<th>answer A</th><th>answer B</th>" in one


@needs_chromium
def test_picks_are_saved_beside_the_page_and_epochs_shown_after_picking(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run = _run_dir(tmp_path)
    page = LocalPage(picks.serve(run, port=0))
    driver = headless_chrome()
    try:
        wait = WebDriverWait(driver, 15)
        driver.get(page.url)
        wait.until(lambda d: "saved in" in d.find_element(By.ID, "where").text)
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-id='p1']")
        reveals = row.find_elements(By.CSS_SELECTOR, ".reveal")
        assert not any(r.is_displayed() for r in reveals)  # blind before the pick
        cell = row.find_elements(By.CSS_SELECTOR, "td[data-epoch]")[1]
        epoch = int(cell.get_attribute("data-epoch"))
        cell.find_element(By.CSS_SELECTOR, "input").click()
        wait.until(lambda d: (run / picks.PICKS).exists())
        wait.until(lambda d: "1 of 3 rows picked" in d.find_element(By.ID, "where").text)
        assert all(r.is_displayed() for r in reveals)
        assert f"epoch {epoch}" in cell.text
        saved = json.loads((run / picks.PICKS).read_text())
        assert saved["picks"] == {"p1": epoch} and saved["tally"][str(epoch)] == 1
        tally = driver.find_element(By.CSS_SELECTOR, f".tally[data-epoch='{epoch}']").text
        assert tally == "1"
        # a new server (another day) shows the saved pick
        page.stop()
        page = LocalPage(picks.serve(run, port=0))
        driver.get(page.url)
        wait.until(lambda d: "1 of 3 rows" in d.find_element(By.ID, "where").text)
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-id='p1']")
        picked = row.find_element(By.CSS_SELECTOR, "td.picked")
        assert int(picked.get_attribute("data-epoch")) == epoch
        # opened from disk, the page works in the browser and offers the file to download
        html = run / picks.PAGE
        picks.write_page(run / "dev_generations", html)
        driver.get(html.as_uri())
        wait.until(lambda d: "Opened from disk" in d.find_element(By.ID, "where").text)
        assert driver.find_element(By.ID, "download").is_displayed()
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-id='p0']")
        row.find_elements(By.CSS_SELECTOR, "td[data-epoch] input")[0].click()
        assert all(r.is_displayed() for r in row.find_elements(By.CSS_SELECTOR, ".reveal"))
    finally:
        driver.quit()
        page.stop()


def test_a_bad_pick_is_refused(tmp_path: Path) -> None:
    page = LocalPage(picks.serve(_run_dir(tmp_path), port=0))
    try:
        for body in ({"id": "nope", "epoch": 5}, {"id": "p0", "epoch": 7},
                     {"id": "p0", "epoch": True}, ["p0", 5]):  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as info:
                page.post("/api/pick", body)
            assert info.value.code == 400
        assert page.post("/api/pick", {"id": "p2", "epoch": 10})["tally"] == {"5": 0, "10": 1}
    finally:
        page.stop()
