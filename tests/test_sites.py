"""The shipped site table against the real Sites.xml, and site recognition."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import pytest
from conftest import COFFEE, DATA

from lima.curate.sites import SHIPPED, is_meta, load_groups, site_from_path
from lima.curate.sources.stackexchange import scan_site, total_funnel
from lima.errors import ConfigError


def main_sites() -> set[str]:
    root = ET.parse(DATA / "Sites.xml").getroot()
    hosts = {
        r.attrib["Url"].split("://", 1)[1].rstrip("/") for r in root if "ParentId" not in r.attrib
    }
    return {h for h in hosts if not is_meta(h)}


def test_every_main_site_is_classified_once() -> None:
    groups = load_groups()
    assert main_sites() <= set(groups)  # every 2018 main site, plus the ones launched since
    rows = list(csv.DictReader(resources.files("lima.data").joinpath(SHIPPED).open()))
    assert len({r["site"] for r in rows}) == len(rows) == len(groups) == 183
    assert all(r["reason"].startswith(r["group"] + ":") for r in rows)
    added = {r["site"] for r in rows if r["source"] != "sites_xml_2018"}
    assert added == set(groups) - main_sites()
    assert {"cardano.stackexchange.com", "genai.stackexchange.com"} <= added
    counts = {g: list(groups.values()).count(g) for g in ("stem", "other", "excluded")}
    assert counts == {"stem": 87, "other": 91, "excluded": 5}
    assert groups["quantumcomputing.stackexchange.com"] == "stem"
    assert groups["beer.stackexchange.com"] == "other"
    # LIMA's released set has Portuguese and Spanish Stack Overflow examples
    assert groups["pt.stackoverflow.com"] == groups["es.stackoverflow.com"] == "stem"
    assert groups["codegolf.stackexchange.com"] == "excluded"


def test_unknown_site_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "coffee.stackexchange.com"
    d.mkdir()
    (d / "Posts.xml").write_bytes((COFFEE / "Posts.xml").read_bytes())
    groups = {k: v for k, v in load_groups().items() if k != "coffee.stackexchange.com"}
    scan = scan_site(d, groups=groups, show_progress=False)
    assert scan.group == "other"
    assert scan.funnel["warnings"] == [
        "coffee.stackexchange.com is not in the sites table; grouped as 'other'"
    ]
    assert total_funnel([scan])["warnings"] == [f"{d}: {scan.funnel['warnings'][0]}"]
    assert "not in the sites table" in capsys.readouterr().err


def test_site_named_in_the_config(tmp_path: Path) -> None:
    d = tmp_path / "dump-2015"
    d.mkdir()
    (d / "Posts.xml").write_bytes((COFFEE / "Posts.xml").read_bytes())
    with pytest.raises(ConfigError, match="cannot tell which site"):
        scan_site(d, groups=load_groups(), show_progress=False)
    scan = scan_site(d, groups=load_groups(), site="coffee.stackexchange.com", show_progress=False)
    assert scan.site == "coffee.stackexchange.com" and scan.group == "other"
    assert scan.frame["id"][0].startswith("se/coffee.stackexchange.com/")


def test_overrides(tmp_path: Path) -> None:
    assert (
        load_groups(overrides={"beer.stackexchange.com": "stem"})["beer.stackexchange.com"]
        == "stem"
    )
    with pytest.raises(ConfigError, match="group must be one of"):
        load_groups(overrides={"beer.stackexchange.com": "tasty"})
    table = tmp_path / "sites.csv"
    table.write_text("site,group\nbeer.stackexchange.com,stem\ncoffee.stackexchange.com,bad\n")
    with pytest.raises(ConfigError, match=r"sites\.csv: line 3"):
        load_groups(table)


@pytest.mark.parametrize(
    ("path", "site"),
    [
        ("dumps/beer.stackexchange.com.7z", "beer.stackexchange.com"),
        ("dumps/stackoverflow.com-Posts.7z", "stackoverflow.com"),
        ("dumps/coffee.stackexchange.com", "coffee.stackexchange.com"),
        ("dumps/coffee.stackexchange.com/Posts.xml", "coffee.stackexchange.com"),
        ("dumps/Coffee.StackExchange.com/posts.xml", "coffee.stackexchange.com"),
        ("dumps/posts.xml", None),
    ],
)
def test_site_from_path(path: str, site: str | None) -> None:
    assert site_from_path(Path(path)) == site


def test_meta_sites() -> None:
    assert is_meta("alcohol.meta.stackexchange.com")
    assert is_meta("meta.stackexchange.com")
    assert not is_meta("beer.stackexchange.com")
