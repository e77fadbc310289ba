"""One colour per pattern and one marker per criterion, the same in every study (workbench.results.styles)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.colors import to_rgba

from workbench.results.figures import plot_metric_vs_sparsity
from workbench.results.styles import CRITERION_MARKERS, PATTERN_COLORS, color_map, color_of, marker_map, marker_of
from workbench.trial.space import allowed_values


def test_known_patterns_and_criteria_have_distinct_fixed_entries():
    assert len(set(PATTERN_COLORS.values())) == len(PATTERN_COLORS)
    assert len(set(CRITERION_MARKERS.values())) == len(CRITERION_MARKERS)
    assert set(allowed_values("criterion")) <= set(CRITERION_MARKERS)  # every built-in criterion has its marker
    for pattern in ("1x1", "4x1", "2:4", "channelx1", "1x4", "2x2"):  # the shipped experiments' patterns
        assert pattern in PATTERN_COLORS


# a loaded machine (several test runs at once) makes generation look slow: not what is tested here
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    st.lists(st.sampled_from(["1x1", "4x1", "2:4", "channelx1", "1x4", "plugin-a", "plugin-b"]), min_size=1, max_size=8)
)
def test_a_value_keeps_its_colour_whatever_else_the_study_holds(patterns):
    alone = {p: color_map("pattern", [p])[p] for p in patterns}
    together = color_map("pattern", patterns)
    assert together == {p: alone[p] for p in sorted(set(patterns))}


@SETTINGS
@given(st.text(min_size=1, max_size=20))
def test_an_unknown_value_gets_a_valid_colour_and_marker_that_do_not_collide_with_the_tables(value):
    if value.strip().lower() in PATTERN_COLORS:
        return
    to_rgba(color_of("pattern", value))  # matplotlib accepts it
    assert color_of("pattern", value) not in PATTERN_COLORS.values()
    if value.strip().lower() not in CRITERION_MARKERS:
        assert marker_of("criterion", value) not in CRITERION_MARKERS.values()


@pytest.mark.e2e
def test_the_hash_is_stable_across_processes():
    code = "from workbench.results.styles import color_of, marker_of; print(color_of('pattern', 'my:pat'), marker_of('criterion', 'mine'))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": s, "PATH": ""},
        ).stdout
        for s in ("1", "2")
    }
    assert outs == {f"{color_of('pattern', 'my:pat')} {marker_of('criterion', 'mine')}\n"}


def test_the_study_figure_draws_2_4_in_its_colour_in_two_different_studies():
    def colour_of_2_4(patterns):
        rows = [
            {"trial": i, "pattern": p, "criterion": "magnitude", "sparsity": 0.5, "accuracy": 0.9}
            for i, p in enumerate(patterns)
        ]
        fig = plot_metric_vs_sparsity(rows)
        legend = {h.get_label(): h.get_color() for h in fig.axes[0].get_legend().legend_handles}
        return to_rgba(legend["pattern 2:4"])

    assert colour_of_2_4(["2:4", "4x1"]) == colour_of_2_4(["1x1", "2:4", "channelx1"]) == to_rgba(PATTERN_COLORS["2:4"])
    assert marker_map("criterion", ["snip", "magnitude"]) == {"magnitude": "o", "snip": "D"}


def test_no_figure_numbers_its_own_colours():
    """Colour by position (``C0`` for the first value met) changes between studies: styles.py owns colours."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "workbench"
    numbered = [
        f"{path.relative_to(root)}:{i}"
        for path in root.rglob("*.py")
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"f\"C\{", line)
    ]
    assert numbered == []
