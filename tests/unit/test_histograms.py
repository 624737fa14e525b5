from __future__ import annotations

from inferswarm.histograms import merge, percentile


def test_percentile_is_locusts_rule() -> None:
    assert percentile({10: 98, 500: 2}.items(), 0.99) == 500
    assert percentile({10: 99, 500: 1}.items(), 0.99) == 500  # the slowest 1 % starts at it
    assert percentile({10: 99, 500: 1}.items(), 0.98) == 10
    assert percentile({}.items(), 0.5) is None


def test_merge_sums_bucket_by_bucket() -> None:
    assert merge([{10: 2, 20: 1}, {20: 3, 30: 1}, {}]) == {10: 2, 20: 4, 30: 1}
