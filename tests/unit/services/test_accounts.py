import pytest

from gridfare import errors
from services.accounts import STATUS_BY_ERROR, _account_id, status_of


@pytest.mark.parametrize(("error", "status"), [
    (errors.UnknownAccount("x"), 404),
    (errors.IdempotencyConflict("x"), 409),
    (errors.VersionConflict("x"), 409),
    (errors.Overdraft(1, "k", 2, 1), 422),
    (errors.InvalidInput("x"), 400),
    (errors.InvalidReading("x"), 400),
    (errors.NotReplicated("x"), 503),
    (errors.StaleEpoch("x"), 503),
    (errors.StoreUnavailable("x"), 503),
    (errors.SeatError("x"), 500),
])
def test_each_error_class_has_one_status(error, status):
    assert status_of(error) == status


def test_every_store_error_is_in_the_table():
    listed = {cls for cls, _ in STATUS_BY_ERROR}
    for name in errors.__all__:
        cls = getattr(errors, name)
        if issubclass(cls, errors.StoreError) and cls is not errors.StoreError:
            assert cls in listed, name


@pytest.mark.parametrize("text", ["abc", "-1", "1.5", "", "9" * 20])
def test_a_bad_account_id_in_the_path_is_refused(text):
    with pytest.raises(errors.InvalidInput, match="must be a positive integer"):
        _account_id(text)
