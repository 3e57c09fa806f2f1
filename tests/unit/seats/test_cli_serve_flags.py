"""``gridfare seats serve`` hands its HTTP options to ``rayjobs.seats_serve`` unchanged, and
leaves unset ones to that module's defaults (one set of defaults)."""

import rayjobs.seats_serve
from gridfare.cli import main


def _argv_seen(monkeypatch, *args):
    seen = []
    monkeypatch.setattr(rayjobs.seats_serve, "main", lambda argv: seen.append(argv) or 0)
    assert main(["seats", "serve", "--root", "/tmp/seats", *args]) == 0
    return seen[0]


def test_the_http_options_are_forwarded(monkeypatch):
    argv = _argv_seen(monkeypatch, "--ingress", "proxy", "--replicas", "2",
                      "--in-flight", "3", "--max-batch", "64")
    assert argv[argv.index("--ingress") + 1] == "proxy"
    assert argv[argv.index("--replicas") + 1] == "2"
    assert argv[argv.index("--in-flight") + 1] == "3"
    assert argv[argv.index("--max-batch") + 1] == "64"


def test_unset_options_keep_the_jobs_defaults(monkeypatch):
    argv = _argv_seen(monkeypatch)
    assert not {"--ingress", "--replicas", "--in-flight", "--max-batch"} & set(argv)
