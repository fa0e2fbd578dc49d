"""`squall chaos nightly`'s index is a page a person clicks through, and its replay commands rerun the same runs."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest


@pytest.mark.slow
def test_every_index_link_resolves_and_the_chaos_replay_reruns_the_same_duration(squall, tmp_path: Path) -> None:
    got = squall("chaos", "nightly", "--out", "nightly", "--duration", "3", "--seeds", "1-2", "--scenarios", "smoke", "--sweep-scenario", "smoke", "--jobs", "1")
    index_md = tmp_path / "nightly" / "index.md"
    assert index_md.exists(), got.stderr[-2000:]
    links = re.findall(r"\]\(([^)]+)\)", index_md.read_text())
    assert len(links) == 3  # one chaos run, two sweep seeds
    for link in links:
        assert not Path(link).is_absolute()
        assert (index_md.parent / link).is_file(), f"index.md links to {link}, which is not a file next to the index"

    chaos = next(r for r in json.loads((tmp_path / "nightly" / "index.json").read_text())["runs"] if r["kind"] == "chaos")
    assert chaos["replay"] == "squall chaos run smoke --seed 1 --duration 3"
    again = squall(*shlex.split(chaos["replay"])[1:], "--out", "replayed", "--json")
    assert again.returncode in (0, 1), again.stderr[-2000:]
    report = json.loads(again.stdout)  # chaos run --json: report.json on stdout, nothing else
    assert report == {**json.loads((tmp_path / "replayed" / "report.json").read_text()), "run_dir": "replayed"}
    assert report["virtual_seconds"] == 3 and report["replay"] == chaos["replay"]
