"""The shipped efficiency factors reproduce published measurements within the target (docs/pricing.md)."""

from __future__ import annotations

from pricing.calibration import measurements, predict, summarize


def _summary(metric: str, split: str | None = None):
    rows = [r for r in measurements() if r.metric == metric and (split is None or r.split == split)]
    return summarize([(predict(r), r.value) for r in rows])


def test_throughput_median_error_at_most_20_percent_and_nothing_off_by_2_5x() -> None:
    for split in ("fit", "holdout", None):
        summary = _summary("output_tok_s", split)
        assert summary.count >= 15
        assert summary.median_abs_error <= 0.20, (split, summary)
        assert summary.worst_ratio <= 2.5, (split, summary)


def test_latencies_are_within_the_same_bounds() -> None:
    for metric in ("ttft_ms", "tpot_ms"):
        summary = _summary(metric)
        assert summary.median_abs_error <= 0.20 and summary.worst_ratio <= 2.5, (metric, summary)
