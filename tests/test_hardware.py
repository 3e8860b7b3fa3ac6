"""Hours of a run on stated hardware: the one formula of `sweep --dry-run` and `report`."""

import pytest

from bayescale.defaults import PLAN_MFU, PLAN_PEAK_FLOPS
from bayescale.hardware import Hardware, Throughput, format_hours, time_text


def test_hours_are_flops_over_achieved_flops_per_second():
    h = Hardware(gpus=4, peak_flops=1e12, mfu=0.5)
    assert h.gpu_hours(1.8e16) == pytest.approx(1.8e16 / 5e11 / 3600) == pytest.approx(10.0)
    assert h.hours(1.8e16) == pytest.approx(2.5)  # the GPU-hours split over 4 GPUs
    assert h.describe() == "4 GPUs at 0.5 TFLOP/s each (peak 1 TFLOP/s x MFU 0.5)"
    assert Hardware() == Hardware(gpus=1, peak_flops=PLAN_PEAK_FLOPS, mfu=PLAN_MFU)


@pytest.mark.parametrize("kwargs,needle", [
    ({"mfu": 0.0}, r"MFU in \(0, 1\]"), ({"mfu": 1.5}, r"MFU in \(0, 1\]"), ({"peak_flops": 0.0}, "positive peak"),
    ({"gpus": 0}, "gpus=0 must be a whole number >= 1"),
])
def test_impossible_hardware_is_refused(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        Hardware(**kwargs)


@pytest.mark.parametrize("hours,text", [(0.25 / 3600, "0.25 s"), (0.3, "18 min"), (5.25, "5.25 h"),
                                        (47.0, "47 h"), (72.0, "3 days")])
def test_durations_read_in_the_unit_that_fits(hours, text):
    assert format_hours(hours) == text


def test_a_measured_throughput_gives_every_size_its_flop_rate():
    """1e5 tokens/s on a 1M-parameter model (6e6 FLOPs per token): 0.6 TFLOP/s, so an hour
    is 2.16e15 FLOPs for a run of any size."""
    measured = Throughput(1e5, 1e6, 6e6)
    assert measured.flops_per_second == pytest.approx(6e11)
    assert measured.hours(2.16e15) == pytest.approx(1.0)
    assert time_text(2.16e15, measured) == "1 h at 0.6 TFLOP/s (1e+05 tokens/s measured on N=1e+06)"
    assert Hardware(gpus=4, peak_flops=1e15, mfu=0.5).flops_per_second == pytest.approx(2e15)
