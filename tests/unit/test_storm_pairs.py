"""The login-storm scenario publishes its median idle/storm pair, not the best one; the
gateway/nginx rows their median alternated pair."""

from __future__ import annotations

from tools.bench.loadspec import Result
from tools.bench.scenarios import ProxyPair, StormPair, median_pair


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


def throughput(rps: float) -> Result:
    return Result("wrk", int(rps * 10), 10.0, 0.5, 1.0, 2.0, 0, {200: int(rps * 10)})


def test_the_gateway_nginx_pair_with_the_median_throughput_ratio_is_published() -> None:
    # Gateway/nginx 0.40, 0.55, 0.70: the published pair is 0.55, whatever the order.
    a = ProxyPair(throughput(4_000), throughput(10_000))
    b = ProxyPair(throughput(5_500), throughput(10_000))
    c = ProxyPair(throughput(7_000), throughput(10_000))
    for order in ([a, b, c], [c, a, b], [b, c, a]):
        assert median_pair(order) is b
    assert round(b.ratio, 2) == 0.55
    assert ProxyPair(throughput(5_000), throughput(0)).ratio == 0.0
