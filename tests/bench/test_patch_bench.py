"""The patch bench (bench/patch_diff.py) runs on the shipped game's views, and every patch it
times turns the old view into the new one exactly, as the pages apply it."""

from __future__ import annotations

from pathlib import Path

from bench import patch_diff


def test_the_patch_bench_times_patches_that_apply_on_real_views(tmp_path: Path) -> None:
    section = patch_diff.run(quick=True, workdir=tmp_path, rounds=3).as_dict()
    details = section["details"]
    cases = [f"{who}.{change}" for who in ("staff", "screen")
             for change in ("clock_1s", "puzzle_solved", "clue_sent")]
    for case in cases:
        result = details[case]
        assert result["view_bytes"] > 500, case   # a real view, not an empty one
        for differ in ("delta", "jsonpatch"):
            if differ not in result:   # the library is optional; the note says so
                assert any("jsonpatch is not installed" in n for n in section["notes"])
                continue
            got = result[differ]
            assert got["applies_exactly"], (case, differ)
            assert got["ops"] > 0 and 0 < got["patch_bytes"] < result["view_bytes"], (case, differ)
            assert got["p50_us"] <= got["p99_us"], (case, differ)
    assert section["notes"] == [] or "jsonpatch" not in details[cases[0]]
