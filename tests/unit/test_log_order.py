"""deployctl.targets.log_lines.oldest_first: what both log readers (CloudWatch, local engine) print."""

from __future__ import annotations

from deployctl.targets import log_lines as logs


def line(ms: int, stream: str) -> logs.Line:
    return logs.Line("api", "t", stream, ms, f"{stream}@{ms}")


def test_lines_of_several_streams_interleave_by_time_and_are_capped() -> None:
    lines = [line(30, "b"), line(10, "b"), line(20, "a"), line(20, "0")]
    ordered, cut = logs.oldest_first(lines)
    assert [x.message for x in ordered] == ["b@10", "0@20", "a@20", "b@30"] and cut is False
    many = [line(i, "s") for i in range(logs.MAX_EVENTS + 5, 0, -1)]
    ordered, cut = logs.oldest_first(many)
    assert cut is True and len(ordered) == logs.MAX_EVENTS
    assert ordered[0].timestamp_ms == 1 and ordered[-1].timestamp_ms == logs.MAX_EVENTS  # the oldest are kept
