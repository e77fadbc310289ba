"""The study's saved landing view: the experiment tag MLflow's UI (3.17) loads from ``viewStateShareKey``.

The browser test in test_ui.py checks that the UI shows what this tag says; here: what it says.
"""

from __future__ import annotations

import json
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.tracking.landing_view import (
    KNOB_COLUMNS,
    REGISTERED_COLUMN,
    SPARSITY_METRIC,
    VIEW_TAG_PREFIX,
    landing_view,
    landing_view_tag,
    view_key,
    view_url,
)


def test_the_tag_is_a_saved_view_envelope_holding_the_view_as_json():
    key, value = landing_view_tag("my study", metric="accuracy", now_ms=1234)
    assert key == VIEW_TAG_PREFIX + view_key("my study")
    envelope = json.loads(value)
    assert envelope["name"] == "my study: best accuracy"  # listed under "Views" by this name
    assert envelope["createdAt"] == envelope["updatedAt"] == 1234
    assert json.loads(envelope["state"]) == landing_view("my study", metric="accuracy")


def test_the_view_shows_the_metric_first_then_reached_sparsity_and_the_knobs_best_first():
    view = landing_view("s", metric="top1")
    shown = ["metrics.`top1`", f"metrics.`{SPARSITY_METRIC}`", *(f"params.`{k}`" for k in KNOB_COLUMNS)]
    assert view["selectedColumns"] == shown
    assert view["columnOrder"] == shown and set(view["columnWidths"]) == set(shown)  # widths apply to ordered ones
    assert view["orderByKey"] == "metrics.`top1`" and view["orderByAsc"] is False
    assert view["searchFilter"] == "tags.`optuna.study_name` = 's'"


def test_the_address_carries_the_share_key_alone():
    # the UI ignores a shared view when the address also holds a search facet (searchFilter, orderByKey...)
    url = view_url("http://h:5000", "7", "my study")
    assert url.startswith("http://h:5000/#/experiments/7/runs?")
    assert urllib.parse.parse_qs(url.partition("?")[2]) == {"viewStateShareKey": [view_key("my study")]}


@given(st.text(min_size=1, max_size=80))
def test_share_keys_are_url_and_tag_safe_and_tell_studies_apart(name):
    key = view_key(name)
    assert key.startswith("study-") and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    assert view_key(name + "x") != key


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: view_key(""), "^study: '' is not allowed"),
        (lambda: landing_view("s", metric=""), "^metric: '' is not allowed"),
        (lambda: landing_view("s", knobs="pattern"), "^knobs: 'pattern' is not allowed"),
    ],
)
def test_bad_arguments_name_the_key(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_minimised_metric_lands_lowest_first():
    view = landing_view("s", metric="perplexity", direction="minimize")
    assert view["orderByKey"] == "metrics.`perplexity`" and view["orderByAsc"] is True
    assert landing_view("s")["orderByAsc"] is False
    with pytest.raises(ValueError, match="direction"):
        landing_view("s", direction="down")


def test_a_study_of_several_seeds_shows_the_configuration_mean_spread_and_seed_best_mean_first():
    view = landing_view("s", metric="accuracy", knobs=["pattern", "pruning_scope"], seeds=True)
    config = ["metrics.`config/accuracy_mean`", "metrics.`config/accuracy_std`", "metrics.`config/n_seeds`"]
    assert view["selectedColumns"] == [
        "metrics.`accuracy`",
        *config,
        f"metrics.`{SPARSITY_METRIC}`",
        "params.`pattern`",
        "params.`pruning_scope`",
        "params.`seed`",
    ]
    assert view["orderByKey"] == config[0] and view["orderByAsc"] is False  # the mean ranks, not the lucky seed
    assert set(view["columnWidths"]) == set(view["selectedColumns"])
    assert "params.`seed`" not in landing_view("s", knobs=["pattern"])["selectedColumns"]  # one seed: as before


def test_a_study_that_keeps_its_models_points_at_the_registered_versions():
    view = landing_view("s", models=True)
    assert view["selectedColumns"][-1] == f"tags.`{REGISTERED_COLUMN}`" == "tags.`workbench.registered_model`"
    assert not any(c.startswith("tags.") for c in landing_view("s")["selectedColumns"])
    _, value = landing_view_tag("s", now_ms=0, knobs=["pattern"], seeds=True, models=True)
    assert json.loads(json.loads(value)["state"]) == landing_view("s", knobs=["pattern"], seeds=True, models=True)


@given(st.lists(st.sampled_from(["pattern", "criterion", "sparsity_decay_type", "pruning_scope", "lr"]), unique=True))
def test_the_view_shows_exactly_the_knobs_it_is_given(knobs):
    params = [c for c in landing_view("s", knobs=knobs)["selectedColumns"] if c.startswith("params.")]
    assert params == [f"params.`{k}`" for k in knobs]
