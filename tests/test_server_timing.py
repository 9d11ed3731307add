"""The ``Server-Timing`` header's format and its parser (the overhead bench reads it)."""

from __future__ import annotations

import time

from bench.common import parse_server_timing
from service.http.middleware import RequestRecord, server_timing


def test_server_timing_lists_the_stages_then_the_app_time():
    started = time.perf_counter() - 0.010
    value = server_timing(RequestRecord("id", {"decode": 1.25, "inference": 30.0}), started)
    timing = parse_server_timing(value)
    assert list(timing) == ["decode", "inference", "app"]
    assert timing["decode"] == 1.25 and timing["inference"] == 30.0
    assert 10.0 <= timing["app"] < 1000.0
    assert list(parse_server_timing(server_timing(RequestRecord("id"), time.perf_counter()))) == ["app"]


def test_parse_server_timing_reads_what_other_servers_send():
    value = 'cache;desc="Cache Read";dur=23.2, db;dur=53, app;dur=47.2, miss, total;DUR=oops, ;dur=1'
    assert parse_server_timing(value) == {"cache": 23.2, "db": 53.0, "app": 47.2}
    assert parse_server_timing("") == {}
