"""Which Stack Exchange sites are STEM, other, or excluded.

The shipped table (``lima/data/stackexchange_sites.csv``, with the reasoning in
``stackexchange_sites.md``) covers every main site of the 2018 ``Sites.xml`` and
the sites launched since that we know of, each with a one-line reason. A user
table or per-site overrides from the config take precedence. A site that is in
no table is scanned as ``other`` with a warning (see ``sources.stackexchange``).
"""

from __future__ import annotations

import csv
import re
from importlib import resources
from pathlib import Path

from lima.errors import ConfigError

GROUPS = ("stem", "other", "excluded")
SHIPPED = "stackexchange_sites.csv"


def _read(text: str, origin: str) -> dict[str, str]:
    table: dict[str, str] = {}
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or not {"site", "group"} <= set(reader.fieldnames):
        raise ConfigError(f"{origin}: needs a header with 'site' and 'group' columns")
    for line, row in enumerate(reader, start=2):
        site, group = (row.get("site") or "").strip().lower(), (row.get("group") or "").strip()
        if not site or group not in GROUPS:
            raise ConfigError(
                f"{origin}: line {line}: expected a site and one of {GROUPS}, got {row!r}"
            )
        table[site] = group
    return table


def load_groups(
    path: Path | None = None, overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """Site host name -> group."""
    if path is None:
        text = resources.files("lima.data").joinpath(SHIPPED).read_text(encoding="utf-8")
        table = _read(text, f"lima/data/{SHIPPED}")
    else:
        try:
            table = _read(path.read_text(encoding="utf-8"), str(path))
        except FileNotFoundError as e:
            raise ConfigError(f"{path}: sites table not found") from e
    for site, group in (overrides or {}).items():
        if group not in GROUPS:
            raise ConfigError(f"site override {site!r}: group must be one of {GROUPS}")
        table[site.lower()] = group
    return table


_SUFFIXES = (".7z", ".zst", ".xml")


def site_from_path(path: Path) -> str | None:
    """The site a dump belongs to, from its archive or folder name.

    ``beer.stackexchange.com.7z``, ``stackoverflow.com-Posts.7z``, a folder
    ``coffee.stackexchange.com/`` or ``coffee.stackexchange.com/Posts.xml``.
    """
    p = path
    if p.name.lower() in ("posts.xml", "posts.xml.zst"):
        p = p.parent
    name = p.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    name = re.sub(r"-posts$", "", name, flags=re.IGNORECASE)
    name = name.lower()
    return name if "." in name else None


def is_meta(site: str) -> bool:
    return site.startswith("meta.") or ".meta." in site
