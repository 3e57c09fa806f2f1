from __future__ import annotations

import gridfare.seats as seats


def test_public_names_are_sorted_and_exist():
    assert seats.__all__ == sorted(seats.__all__)
    for name in seats.__all__:
        assert hasattr(seats, name), name


def test_the_core_imports_no_ray():
    import subprocess
    import sys

    code = "import sys, gridfare.seats; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
