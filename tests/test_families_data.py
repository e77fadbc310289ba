"""The task families' torch-only parts: metrics, dict batches, CIFAR transforms, extras, fingerprints."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.benchmarks.families import (
    DictBatches,
    ImageBatches,
    augment,
    classification_metrics,
    confusion_matrix,
    normalise,
    require,
)
from workbench.benchmarks.families.hf_loading import fingerprint, subset_indices
from workbench.pruner import ConfigError


def test_binary_metrics_match_a_hand_computation():
    # TP=2 (rows 1, 4), FP=1 (row 2), FN=0, TN=2: precision 2/3, recall 1
    m = classification_metrics(torch.tensor([0, 1, 1, 0, 1]), torch.tensor([0, 1, 0, 0, 1]), 2)
    precision, recall = 2 / 3, 1.0
    assert m["accuracy"] == pytest.approx(4 / 5)
    assert m["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert m["matthews_correlation"] == pytest.approx((2 * 2 - 1 * 0) / math.sqrt(3 * 2 * 2 * 3))


def test_multiclass_f1_is_the_macro_average_and_mcc_gorodkins():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    preds = torch.tensor([0, 1, 1, 1, 2, 0])
    # per class: 0: tp1 fp1 fn1 -> 1/2; 1: tp2 fp1 fn0 -> 4/5; 2: tp1 fp0 fn1 -> 2/3
    m = classification_metrics(preds, labels, 3)
    assert m["f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    c, s = 4, 6
    t, p = [2, 2, 2], [2, 3, 1]
    expected = (c * s - sum(a * b for a, b in zip(t, p))) / math.sqrt((s**2 - sum(x * x for x in p)) * (s**2 - 12))
    assert m["matthews_correlation"] == pytest.approx(expected)
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_a_constant_prediction_has_zero_mcc():
    m = classification_metrics(torch.ones(6, dtype=torch.long), torch.tensor([0, 1, 1, 0, 1, 1]), 2)
    assert m["matthews_correlation"] == 0.0
    assert m["f1"] == pytest.approx(2 * (4 / 6) / (4 / 6 + 1))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_metrics_stay_in_range_and_perfect_predictions_score_one(pairs):
    preds = torch.tensor([p for p, _ in pairs])
    labels = torch.tensor([t for _, t in pairs])
    m = classification_metrics(preds, labels, 4)
    assert int(confusion_matrix(preds, labels, 4).sum()) == len(pairs)
    assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["f1"] <= 1.0
    assert -1.0 - 1e-9 <= m["matthews_correlation"] <= 1.0 + 1e-9
    perfect = classification_metrics(labels, labels, 4)
    assert perfect["accuracy"] == 1.0 and perfect["f1"] == 1.0
    assert perfect["matthews_correlation"] in (0.0, pytest.approx(1.0))  # 0 when only one class occurs


def test_metrics_refuse_a_label_outside_the_classes():
    with pytest.raises(ConfigError, match="labels: 3 is not a class"):
        classification_metrics(torch.tensor([0, 1]), torch.tensor([0, 3]), 2)


def test_dict_batches_cover_every_sample_once_per_epoch_and_trim_padding():
    ids = torch.arange(10).repeat_interleave(6).reshape(10, 6)
    mask = torch.zeros(10, 6, dtype=torch.long)
    for row in range(10):
        mask[row, : 1 + row % 4] = 1  # lengths 1..4: columns 4 and 5 are always padding
    batches = DictBatches(
        {"input_ids": ids, "attention_mask": mask, "labels": torch.arange(10)},
        batch_size=3,
        trim="attention_mask",
        generator=torch.Generator().manual_seed(0),
        aliases={"target": "labels"},
    )
    seen = []
    for batch in batches:
        longest = int(batch["attention_mask"].sum(1).max())
        assert batch["input_ids"].shape[1] == longest == batch["attention_mask"].shape[1]
        assert batch["target"] is batch["labels"]
        assert torch.equal(batch["input_ids"][:, 0], batch["labels"])
        seen += batch["labels"].tolist()
    assert sorted(seen) == list(range(10)) and len(batches) == 4


def test_dict_batches_refuse_columns_of_different_lengths():
    with pytest.raises(ConfigError, match="same number"):
        DictBatches({"a": torch.zeros(3), "b": torch.zeros(4)}, batch_size=2)


def test_augment_crops_a_window_of_the_padded_image_maybe_flipped():
    images = torch.randint(1, 256, (16, 3, 6, 6), dtype=torch.uint8)
    out = augment(images, 2, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    flips = 0
    for i in range(16):
        windows = [padded[i, :, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        plain = any(torch.equal(out[i], w) for w in windows)
        flipped = any(torch.equal(out[i], w.flip(-1)) for w in windows)
        assert plain or flipped
        flips += flipped and not plain
    assert 0 < flips < 16  # both kinds occur in 16 draws (p = 2 * 0.5**16 of failing by chance)


def test_image_batches_normalise_and_evaluation_keeps_order_and_pixels():
    images = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    batches = ImageBatches(images, torch.arange(5), batch_size=2, mean=mean, std=std, train=False)
    xs, ys = zip(*batches)
    assert torch.equal(torch.cat(ys), torch.arange(5))
    x = torch.cat(xs)
    assert torch.allclose(x[:, 1], (images[:, 1].float() / 255 - 0.2) / 0.25)
    assert torch.allclose(x, normalise(images, mean, std))


def test_subset_indices_are_seeded_and_capped():
    assert subset_indices(10, None, 0, "k") is None
    assert subset_indices(10, 4, 3, "k") == subset_indices(10, 4, 3, "k")
    assert subset_indices(10, 50, 0, "k") == list(range(10))
    with pytest.raises(ConfigError, match="train_size"):
        subset_indices(10, 0, 0, "train_size")


def test_fingerprint_keeps_short_params_and_digests_content():
    assert fingerprint({"model_type": "bert"}) == {"model_type": "bert"}
    a, b = {"train": torch.zeros(3)}, {"train": torch.ones(3)}
    assert fingerprint(a) != fingerprint(b) and fingerprint(a) == fingerprint({"train": torch.zeros(3)})
    long = {"text": ["word"] * 200}
    assert isinstance(fingerprint(long), str) and len(fingerprint(long)) < 40


def test_a_missing_extra_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(ConfigError) as err:
        require("transformers", extra="hf", family="hf-text-classification")
    message = str(err.value)
    assert "\n" not in message and "[hf]" in message and "pip install -e '.[hf]'" in message


def test_rebatched_keeps_the_data_and_follows_the_generator():
    tensors = {"input_ids": torch.arange(20).reshape(10, 2), "attention_mask": torch.ones(10, 2, dtype=torch.long)}
    dict_batches = DictBatches(tensors, batch_size=4, trim="attention_mask")
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    image_batches = ImageBatches(images, torch.arange(10), batch_size=4, mean=(0.5,) * 3, std=(0.5,) * 3)
    for batches, first in ((dict_batches, lambda b: b["input_ids"]), (image_batches, lambda b: b[0])):
        a = batches.rebatched(batch_size=3, generator=torch.Generator().manual_seed(5))
        b = batches.rebatched(batch_size=3, generator=torch.Generator().manual_seed(5))
        assert len(a) == 4 and all(torch.equal(first(x), first(y)) for x, y in zip(a, b))
