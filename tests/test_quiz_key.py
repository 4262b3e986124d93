"""The ps3 quiz key against a real run: both networks of the notebook trained for one epoch
with its hyperparameters, on the offline data (the Fashion-MNIST stand-in, see
nncourse/datasets.py), and the two mathematical statements computed."""

import contextlib
import io

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from nncourse.checks.ps3 import QUIZ_KEY
from nncourse.datasets import write_offline_datasets
from tests.helpers import reference_namespace


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = write_offline_datasets(str(tmp_path_factory.mktemp("data")))
    namespace = reference_namespace("ps3")
    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize((0.2860,), (0.3530,))])
    hyperparams = namespace["hyperparams"]
    namespace["train_loader"] = DataLoader(
        datasets.FashionMNIST(root, train=True, download=True, transform=transform),
        batch_size=hyperparams["batch_size"], shuffle=True)
    namespace["test_loader"] = DataLoader(
        datasets.FashionMNIST(root, train=False, download=True, transform=transform),
        batch_size=hyperparams["test_batch_size"])
    results = {}
    for name in ("ANN_sigmoid", "ANN_relu"):
        torch.manual_seed(hyperparams["seed"])
        model = namespace[name](784, 10)
        with contextlib.redirect_stdout(io.StringIO()):
            grads = namespace["train_and_test"](model, hyperparams)
            accuracy = namespace["test"](model, namespace["test_loader"])
        results[name] = {"accuracy": accuracy, "grads": [float(np.mean(g)) for g in grads]}
    return results


def test_a_the_sigmoid_network_performs_poorly_after_one_epoch(runs):
    poor = runs["ANN_sigmoid"]["accuracy"] < 0.5
    assert poor == QUIZ_KEY["a_"], runs


def test_b_sigmoid_gradients_are_smaller_not_higher_in_lower_layers(runs):
    first, second, third = runs["ANN_sigmoid"]["grads"]
    higher_in_lower_layers = first > third
    assert first < second < third  # they vanish towards the input
    assert higher_in_lower_layers == QUIZ_KEY["b_"], runs


def test_c_the_sigmoid_derivative_never_exceeds_a_quarter():
    x = torch.linspace(-20, 20, 400001, dtype=torch.float64)
    derivative = torch.sigmoid(x) * (1 - torch.sigmoid(x))
    assert (float(derivative.max()) <= 0.25 and float(derivative.max()) > 0.25 - 1e-9) == QUIZ_KEY["c_"]


def test_d_the_relu_network_is_much_better_after_one_epoch(runs):
    much_better = runs["ANN_relu"]["accuracy"] > runs["ANN_sigmoid"]["accuracy"] + 0.2
    assert much_better == QUIZ_KEY["d_"], runs


def test_e_other_activations_do_not_have_derivatives_above_one():
    x = torch.linspace(-5, 5, 1001, dtype=torch.float64, requires_grad=True)
    derivatives = []
    for function in (torch.relu, torch.tanh, torch.nn.functional.leaky_relu):
        (gradient,) = torch.autograd.grad(function(x).sum(), x)
        derivatives.append(gradient)
    always_above_one = all(bool((d > 1).all()) for d in derivatives)
    assert always_above_one == QUIZ_KEY["e_"]
