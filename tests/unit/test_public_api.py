import gridfare
import gridfare.errors


def test_public_names_are_sorted_and_exist():
    assert gridfare.__all__ == sorted(gridfare.__all__)
    for name in gridfare.__all__:
        assert hasattr(gridfare, name), name


def test_public_api_is_connect_and_the_errors():
    errors = set(gridfare.errors.__all__)
    assert set(gridfare.__all__) == errors | {"connect"}
    for name in errors:
        assert issubclass(getattr(gridfare, name), gridfare.GridfareError)
