import pytest

from gridfare.errors import InvalidInput
from gridfare.loadshare.routes import route


def test_routes_map_to_manager_calls():
    assert route("GET", "status", b"") == ("ensure", ())
    assert route("POST", "start", b"") == ("command", ("start",))
    assert route("POST", "signal", b'{"event": "release", "end": true}') == (
        "signal", ("release", True))
    assert route("GET", "signal", b"") is None
    assert route("POST", "elsewhere", b"") is None


@pytest.mark.parametrize("body, rule", [
    (b"{", "malformed JSON"),
    (b'{"event": ""}', "field 'event'"),
    (b'["release"]', "field 'event'"),
    (b'{"event": "x", "end": "yes"}', "field 'end'"),
])
def test_a_bad_signal_is_refused_by_rule(body, rule):
    with pytest.raises(InvalidInput, match=rule):
        route("POST", "signal", body)
