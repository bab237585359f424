"""Device placement, with an injected inventory so it runs without a GPU."""

import pytest

from widgetd.devices import Accelerator, choose_device
from widgetd.errors import ModelResolutionError

GIB = 1024**3
TWO_GPUS = [Accelerator("cuda:0", 3 * GIB, 80 * GIB), Accelerator("cuda:1", 70 * GIB, 80 * GIB)]


def test_cpu_when_no_accelerator_is_visible():
    assert choose_device(None, []) == "cpu"
    assert choose_device("auto", []) == "cpu"


def test_the_accelerator_with_the_most_free_memory():
    assert choose_device(None, TWO_GPUS) == "cuda:1"


def test_an_explicit_device_wins():
    assert choose_device("cpu", TWO_GPUS) == "cpu"
    assert choose_device("cuda:0", TWO_GPUS) == "cuda:0"
    assert choose_device("cuda", TWO_GPUS) == "cuda:0"


@pytest.mark.parametrize("requested", ["cuda:2", "cuda", "gpu", "cuda:x"])
def test_a_device_that_is_not_there_is_refused(requested):
    with pytest.raises(ModelResolutionError, match="--device"):
        choose_device(requested, [] if requested == "cuda" else TWO_GPUS)
