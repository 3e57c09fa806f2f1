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


def test_the_coalescing_limits_are_checked_and_name_the_key():
    from services.accounts import THREADS, ProcessorConfig

    assert ProcessorConfig.from_mapping(None) == ProcessorConfig(in_flight=1, max_batch=64)
    assert ProcessorConfig.from_mapping({"max_batch": 1}).max_batch == 1
    for values, key in [({"in_flight": 0}, "in_flight"), ({"in_flight": THREADS + 1},
                                                          "in_flight"),
                        ({"max_batch": True}, "max_batch"), ({"max_batch": 2.0}, "max_batch"),
                        ({"max_batch": 5001}, "max_batch"), ({"batch": 3}, "'batch'")]:
        with pytest.raises(errors.ConfigError, match=key):
            ProcessorConfig.from_mapping(values)


def test_a_batch_answer_is_what_the_request_alone_would_get():
    from actors.accounts_client import answer_of
    from gridfare.store.operations import Operation, OperationResult, Outcome

    pay = Operation.make(7, "payment", 100, "p")
    fee = Operation.make(7, "deduction", 500, "d")
    applied = OperationResult("p", 7, pay.kind, 100, Outcome.APPLIED, 100, 1, 1)
    refused = OperationResult("d", 7, fee.kind, 500, Outcome.REFUSED_OVERDRAFT, 100, 1, 1)
    assert answer_of(pay, applied) is applied
    overdraft = answer_of(fee, refused)
    assert isinstance(overdraft, errors.Overdraft) and "d" in str(overdraft)
    missing = answer_of(pay, None)
    assert isinstance(missing, errors.UnknownAccount) and "account 7" in str(missing)


def test_the_processors_replicas_run_without_serves_disconnect_watch():
    # services.ingress's callback travels in the processors' own runtime_env (read by each
    # replica's HTTP server in HAProxy mode), beside the shared replica settings
    from services.accounts import AccountsProcessor
    from services.ingress import DISCONNECT_WATCH_OFF_ENV
    from services.replica_settings import REPLICA_ENV

    env = AccountsProcessor.ray_actor_options["runtime_env"]["env_vars"]
    assert env == {**REPLICA_ENV, **DISCONNECT_WATCH_OFF_ENV}
