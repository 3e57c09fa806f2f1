import pytest

from gridfare.loadshare.watch import LoadReading, Watched, parse_prometheus, read_load

SCRAPE = """\
# HELP ray_serve_num_router_requests_total The number of requests processed by the router.
# TYPE ray_serve_num_router_requests_total counter
ray_serve_num_router_requests_total{application="quote",deployment="Quote",handle="h1"} 120.0
ray_serve_num_router_requests_total{application="seats",deployment="SeatsHTTP",handle="h2"} 7.0
ray_serve_deployment_queued_queries{application="quote",deployment="Quote",handle="h1"} 14.0
ray_serve_num_ongoing_requests_at_replicas{application="quote",deployment="Quote",handle="h1"} 5.0
ray_gridfare_sections_queued{run_id="r1"} 30.0
ray_gridfare_sections_queued_bogus 3
ray_serve_deployment_request_counter_total{deployment="Quote"} 99.0
"""


def test_parse_keeps_the_watched_names_and_their_labels():
    samples = parse_prometheus(SCRAPE)
    assert [s.name for s in samples].count("ray_serve_num_router_requests_total") == 2
    assert samples[0].labels["application"] == "quote" and samples[0].value == 120.0
    assert not any(s.name.endswith("bogus") for s in samples)


def test_read_load_sums_a_deployment_by_name_and_optionally_app():
    samples = parse_prometheus(SCRAPE)
    reading = read_load(samples, [Watched("Quote")], at=10.0)
    assert (reading.requests_total, reading.queue, reading.billing_queued) == (120.0, 19, 30)
    assert read_load(samples, [Watched("Quote", app="other")], at=0).requests_total == 0
    both = read_load(samples, [Watched("Quote"), Watched("SeatsHTTP", "seats")], at=0)
    assert both.requests_total == 127.0


def test_rate_is_the_counter_delta_over_time_never_negative():
    first = LoadReading(at=10.0, requests_total=100, queue=0, billing_queued=0)
    later = LoadReading(at=12.0, requests_total=160, queue=0, billing_queued=0)
    assert later.rate_since(first) == pytest.approx(30.0)
    assert later.rate_since(None) == 0.0
    reset = LoadReading(at=14.0, requests_total=5, queue=0, billing_queued=0)
    assert reset.rate_since(later) == 0.0


def test_a_reading_missing_an_earlier_source_is_unknown():
    samples = parse_prometheus(SCRAPE)
    source = {id(s): "head" for s in samples}
    first = read_load(samples, [Watched("Quote")], at=1.0, source=source)
    assert first.sources == {"head"} and first.known_after(None)
    # The head did not answer this time: its counters are missing, not zero.
    gap = read_load([], [Watched("Quote")], at=2.0, missing=["head"])
    assert not gap.known_after(first)
    # A node that never fed the watched series may miss a scrape without harm.
    other = read_load(samples, [Watched("Quote")], at=3.0, source=source, missing=["burst-1"])
    assert other.known_after(first)
