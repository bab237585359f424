"""Device placement, with an injected inventory so it runs without a GPU."""

import pytest

from widgetd.devices import Accelerator, choose_device, split_plan
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


GIB = 2**30
FOUR_SMALL_GPUS = [Accelerator(f"cuda:{index}", 10 * GIB, 16 * GIB) for index in range(4)]


def test_a_model_that_fits_its_gpu_is_not_split():
    assert split_plan(5 * GIB, "cuda:0", FOUR_SMALL_GPUS) is None
    assert split_plan(50 * GIB, "cpu", []) is None
    assert split_plan(50 * GIB, "cuda:0", FOUR_SMALL_GPUS[:1]) is None  # one GPU: nothing to split over


def test_a_model_too_large_for_one_gpu_is_split_across_all_of_them():
    plan = split_plan(20 * GIB, "cuda:0", FOUR_SMALL_GPUS)
    assert set(plan) == {"cuda:0", "cuda:1", "cuda:2", "cuda:3"}
    assert all(memory == int(10 * GIB * 0.9) for memory in plan.values())
    assert split_plan(100 * GIB, "cuda:0", FOUR_SMALL_GPUS) is None  # fits nowhere: the load says so
