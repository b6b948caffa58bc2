"""The benchmarks' timer: tools of one column run in rounds, not back to back."""

from __future__ import annotations

from pathlib import Path

import timing


def test_tools_of_a_column_are_timed_in_rounds(tmp_path: Path) -> None:
    log = tmp_path / "order"

    def tool(name: str) -> list[str]:
        return ["sh", "-c", f"echo {name} >> '{log}'"]

    t = timing.Table("input", 1000, ["1 core", "2 cores"])
    t.measure("a", "1 core", tool("a"), 3, [0])
    t.measure("b", "1 core", tool("b"), 3, [0])
    t.measure("once", "1 core", tool("once"), 1, [0])
    t.measure("broken", "1 core", ["sh", "-c", "echo broken >> '" + str(log) + "'; exit 3"], 3, [0])
    t.measure("a", "2 cores", tool("a2"), 2, [0])  # another column: the first one runs now
    assert log.read_text().split() == ["a", "b", "once", "broken", "a", "b", "a", "b"]
    table = t.markdown("a", ["b", "broken"])
    assert log.read_text().split()[8:] == ["a2", "a2"]
    assert set(t.rows) == {"a", "b", "once"}  # the failing tool is left out, not retried
    assert set(t.rows["a"]) == {"1 core", "2 cores"}
    assert "| **a / b** |" in table and "broken" not in table


def test_the_native_module_loads_without_the_lima_package() -> None:
    """The current build is timed like the older one: the library file alone, not the
    `lima` package's imports on top."""
    import subprocess
    import sys

    call = "print('lima' in sys.modules, hasattr(_core, 'scan_pushshift'))"
    out = subprocess.run(
        [sys.executable, "-c", timing.lima_core_code(call)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out == ["False", "True"]
