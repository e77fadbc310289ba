"""Peak memory per trial: each trial's own peak, whatever ran before it in the same process."""

from __future__ import annotations

import pytest
import torch

from workbench.trial import cost
from workbench.trial.cost import PeakMemory, reset_peak_rss

_MIB = 1024 * 1024


def _block(mib: int) -> dict[str, float]:
    with PeakMemory(torch.device("cpu")) as peak:
        block = torch.ones(mib * _MIB // 4)  # touched: resident
        del block
    return peak.result()


@pytest.mark.skipif(not reset_peak_rss(), reason="the high-water mark cannot be reset on this system")
def test_a_small_trial_after_a_large_one_reports_its_own_peak():
    large = _block(160)
    small = _block(4)  # after the large one, in the same process: the old high-water mark must not leak in
    again = _block(160)
    assert large["peak_rss_increase_mb"] >= 150 and again["peak_rss_increase_mb"] >= 150
    assert small["peak_rss_increase_mb"] < 40
    assert small["peak_rss_mb"] < large["peak_rss_mb"] - 100  # order does not raise the later, smaller trial
    assert again["peak_rss_mb"] > small["peak_rss_mb"] + 100


def test_without_a_resettable_mark_no_per_trial_peak_is_claimed(monkeypatch, tmp_path):
    monkeypatch.setattr(cost, "_CLEAR_REFS", str(tmp_path / "missing" / "clear_refs"))
    assert reset_peak_rss() is False
    values = _block(8)
    assert "peak_rss_mb" not in values  # the process's high-water mark is not passed off as the trial's
    assert values["peak_rss_increase_mb"] >= 0
