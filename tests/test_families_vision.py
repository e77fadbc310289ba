"""``torchvision-classification``: the task with an injected model and in-memory images; torchvision when it imports."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from torch import nn

from workbench.benchmarks import BENCHMARKS, DenseRecipe, Task
from workbench.benchmarks.families import build_torchvision_model, torchvision_classification
from workbench.pruner import ConfigError


def _torchvision_error() -> str | None:
    try:
        importlib.import_module("torchvision.models")
    except Exception as err:  # a build for another torch fails with RuntimeError at import
        return f"torchvision does not import here ({type(err).__name__}: {str(err)[:80]})"
    return None


TORCHVISION_MISSING = _torchvision_error()


def images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k images are bright in channel k (3 classes), 12x12, with noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    x = torch.randint(0, 100, (n, 3, 12, 12), generator=g)
    x[torch.arange(n), labels] += 150
    return x.to(torch.uint8), labels


def small_cnn(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes)
    )


def vision_task(**overrides) -> Task:
    params = {"model": small_cnn, "dataset": {"train": images(48, 0), "test": images(21, 1)}, "batch_size": 16}
    return torchvision_classification(**{**params, **overrides})


def test_the_family_is_registered_by_name():
    assert BENCHMARKS["torchvision-classification"] is torchvision_classification


def test_task_shape_with_an_injected_model_and_images():
    task = vision_task(dense_steps=30)
    model = task.build_model()
    assert model[-1].out_features == 3  # classes from the labels
    x, y = next(iter(task.train_batches))
    assert x.shape == (16, 3, 12, 12) and x.dtype == torch.float32 and y.dtype == torch.long
    assert abs(float(x.mean())) < 0.5  # normalised with the training images' statistics
    assert (task.metric, task.direction) == ("accuracy", "maximize")
    assert isinstance(task.dense, DenseRecipe) and task.dense.steps == 30 and task.dense.optimizer == "sgd"
    assert sum(len(y) for _, y in task.eval_batches) == 21


def test_loss_decreases_and_accuracy_is_the_share_of_right_answers():
    task = vision_task()
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    batch = next(iter(task.eval_batches))
    before = float(task.loss(model, batch).detach())
    for _ in range(30):
        for train_batch in task.train_batches:
            optimizer.zero_grad()
            task.loss(model, train_batch).backward()
            optimizer.step()
    after = float(task.loss(model, batch).detach())
    assert math.isfinite(before) and after < before
    accuracy = task.evaluate(model)["accuracy"]
    with torch.no_grad():
        right = sum(int((model(x).argmax(1) == y).sum()) for x, y in task.eval_batches)
    assert accuracy == pytest.approx(right / 21) and accuracy > 1 / 3


def test_subsets_and_bad_params():
    task = vision_task(train_size=10, eval_size=5, num_classes=4)
    assert sum(len(y) for _, y in task.train_batches) == 10 and sum(len(y) for _, y in task.eval_batches) == 5
    assert task.build_model()[-1].out_features == 4
    with pytest.raises(ConfigError, match="dataset"):
        vision_task(dataset="imagenet")
    with pytest.raises(ConfigError, match="dense_steps"):
        vision_task(dense_steps=0)


@pytest.mark.skipif(TORCHVISION_MISSING is None, reason="torchvision imports here")
def test_a_broken_or_missing_torchvision_is_one_line_naming_the_extra():
    with pytest.raises(ConfigError) as err:
        build_torchvision_model("resnet18", 10)
    assert "\n" not in str(err.value) and "pip install -e '.[vision]'" in str(err.value)


@pytest.mark.skipif(TORCHVISION_MISSING is not None, reason=TORCHVISION_MISSING or "")
def test_resnet18_gets_the_cifar_stem_and_the_classes():
    model = build_torchvision_model("resnet18", 10)
    assert model.fc.out_features == 10 and model.conv1.stride == (1, 1) and isinstance(model.maxpool, nn.Identity)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    mobile = build_torchvision_model("mobilenet_v3_small", 100)
    assert mobile(torch.randn(2, 3, 32, 32)).shape == (2, 100)


@pytest.mark.skipif(TORCHVISION_MISSING is not None, reason=TORCHVISION_MISSING or "")
def test_a_torchvision_model_by_name_on_injected_images():
    task = vision_task(model="resnet18")
    x, _ = next(iter(task.eval_batches))
    assert task.build_model()(x).shape == (16, 3)
