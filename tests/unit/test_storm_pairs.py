"""The login-storm scenario publishes its median idle/storm pair, not the best one."""

from __future__ import annotations

from tools.bench.loadspec import Result
from tools.bench.scenarios import StormPair, median_pair


def result(p99: float) -> Result:
    return Result("wrk", 1000, 10.0, 0.5, 1.0, p99, 0, {200: 1000})


def pair(idle_p99: float, storm_p99: float) -> StormPair:
    return StormPair(result(idle_p99), result(storm_p99), result(500.0))


def test_the_median_ratio_is_chosen_whatever_the_order() -> None:
    low, middle, high = pair(2.0, 3.0), pair(1.0, 2.5), pair(1.5, 6.0)  # 1.5x, 2.5x, 4x
    for order in ([low, middle, high], [high, low, middle], [middle, high, low]):
        assert median_pair(order) is middle


def test_an_even_count_takes_the_upper_middle_and_one_pair_is_itself() -> None:
    pairs = [pair(1.0, 1.0), pair(1.0, 2.0), pair(1.0, 3.0), pair(1.0, 4.0)]
    assert median_pair(pairs).ratio == 3.0
    only = pair(2.0, 5.0)
    assert median_pair([only]) is only and only.ratio == 2.5


def test_a_zero_idle_p99_is_not_a_division_error() -> None:
    assert pair(0.0, 3.0).ratio == 0.0
