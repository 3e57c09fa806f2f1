"""``gridfare accounts``: bad input and a missing cluster are one line and exit 2, before
any cluster is joined."""

import subprocess
import sys

from gridfare.cli import main


def test_a_bad_amount_is_refused_before_the_cluster_is_joined(capsys):
    code = main(["accounts", "pay", "7", "0", "--key", "k", "--store", "/nonexistent",
                 "--cluster", "127.0.0.1:1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("gridfare: error: operation k: amount_fen 0 must be in 1..")


def test_an_unreachable_cluster_fails_in_seconds():
    # a fresh process: one that already joined a cluster (the session's) stays in it
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from gridfare.cli import main; "
         "sys.exit(main(sys.argv[1:]))", "accounts", "show", "7", "--store", "/nonexistent",
         "--cluster", "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 5 and len(err) == 1  # gridfare/exit_codes.py: ClusterUnavailable
    assert "no Ray cluster answers at 127.0.0.1:1" in err[0]


def test_bad_coalescing_limits_are_refused_before_the_cluster_is_joined(capsys):
    code = main(["accounts", "serve", "--store", "/nonexistent", "--cluster", "127.0.0.1:1",
                 "--max-batch", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert "max_batch: must be an integer in 1..5000, got 0" in err[0]
