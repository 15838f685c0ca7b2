"""The one Retry-After parser that downloads and the MLLM callers share."""

from __future__ import annotations

import email.utils

import pytest

from motionedit.retry_after import retry_after_s

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), (" 120 ", 120.0), ("0.5", 0.5), ("0", 0.0), ("-3", 0.0)],
)
def test_delay_seconds(value, seconds):
    assert retry_after_s(value, now=NOW) == seconds


def test_http_dates_count_from_now_and_a_past_date_is_no_wait():
    future = email.utils.formatdate(NOW + 30, usegmt=True)
    assert retry_after_s(future, now=NOW) == pytest.approx(30.0)
    assert retry_after_s("Thu, 01 Jan 1970 00:00:00 GMT", now=NOW) == 0.0
    # An obsolete form without a zone is taken as UTC.
    assert retry_after_s("Tue, 14 Nov 2023 22:13:50", now=NOW) == pytest.approx(30.0)


@pytest.mark.parametrize("value", [None, "", "  ", "soon", "nan", "inf", "Mon, 99 Foo"])
def test_unreadable_values_are_none(value):
    assert retry_after_s(value, now=NOW) is None
