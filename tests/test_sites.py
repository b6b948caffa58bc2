"""The shipped site table against the real Sites.xml, and site recognition."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import DATA

from lima.curate.sites import is_meta, load_groups, site_from_path
from lima.errors import ConfigError


def main_sites() -> set[str]:
    root = ET.parse(DATA / "Sites.xml").getroot()
    hosts = {
        r.attrib["Url"].split("://", 1)[1].rstrip("/") for r in root if "ParentId" not in r.attrib
    }
    return {h for h in hosts if not is_meta(h)}


def test_every_main_site_is_classified_once() -> None:
    groups = load_groups()
    assert set(groups) == main_sites()
    counts = {g: list(groups.values()).count(g) for g in ("stem", "other", "excluded")}
    # the paper's split is 75 / 99 / 5 of 179; this 2018 list has 172 main sites
    assert counts == {"stem": 74, "other": 93, "excluded": 5}
    assert groups["quantumcomputing.stackexchange.com"] == "stem"
    assert groups["beer.stackexchange.com"] == "other"
    assert groups["ru.stackoverflow.com"] == "excluded"


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
