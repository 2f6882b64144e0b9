"""Stop requests: the votes, the reason all workers agree on, SIGINT and SIGTERM."""

import signal
import threading

import numpy as np
import pytest

from t2t_lite.training.stopping import STOP_REASONS, StopRequests, agreed_reason

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def votes_for(*reasons: str, count: float = 1.0) -> list[float]:
    return [count if r in reasons else 0.0 for r in STOP_REASONS]


@pytest.fixture
def received():
    """Harmless SIGINT and SIGTERM handlers during the test; the signals they received.

    A StopRequests that failed to catch a signal hands it to these, so the test fails on
    an assertion instead of interrupting or killing the test process.
    """
    signals: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: signals.append(signum)) for s in SIGNALS}
    yield signals
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def send(signum: int) -> None:
    """Raises `signum` in this process; a KeyboardInterrupt fails the test, not the session."""
    try:
        signal.raise_signal(signum)
    except KeyboardInterrupt:
        pytest.fail(f"{signal.Signals(signum).name} aborted")


def test_no_vote_is_no_reason():
    assert agreed_reason(votes_for()) is None


@pytest.mark.parametrize("reason", STOP_REASONS)
def test_any_vote_is_the_agreed_reason(reason):
    assert agreed_reason(votes_for(reason)) == reason
    assert agreed_reason(votes_for(reason, count=3.0)) == reason  # summed over 3 replicas


def test_reasons_take_precedence_in_their_order():
    assert agreed_reason(votes_for(*STOP_REASONS)) == "SIGINT"
    assert agreed_reason(votes_for("SIGTERM", "max_minutes", "early_stopping")) == "SIGTERM"
    assert agreed_reason(votes_for("early_stopping", "max_minutes")) == "max_minutes"


def test_votes_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError):
        agreed_reason([0.0] * (len(STOP_REASONS) - 1))


def test_votes_follow_the_requests():
    requests = StopRequests()
    assert requests.votes().dtype == np.float32
    np.testing.assert_array_equal(requests.votes(), votes_for())
    requests.early_stopping = True
    np.testing.assert_array_equal(requests.votes(), votes_for("early_stopping"))
    requests.time_up = True
    np.testing.assert_array_equal(requests.votes(), votes_for("early_stopping", "max_minutes"))
    requests.signal = "SIGTERM"
    expected = votes_for("early_stopping", "max_minutes", "SIGTERM")
    np.testing.assert_array_equal(requests.votes(), expected)


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
def test_a_signal_becomes_a_vote(received, signum):
    with StopRequests() as requests:
        assert agreed_reason(requests.votes()) is None
        send(signum)
        assert requests.signal == signum.name
        assert agreed_reason(requests.votes()) == signum.name
    assert received == []


@pytest.mark.parametrize("first", SIGNALS, ids=lambda s: s.name)
def test_a_sigint_after_a_signal_aborts_at_once(received, first):
    with StopRequests():
        send(first)
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert received == []


def test_a_second_sigterm_does_not_abort(received):
    with StopRequests() as requests:
        send(signal.SIGTERM)
        send(signal.SIGTERM)
        assert requests.signal == "SIGTERM"
    assert received == []


def test_the_previous_handlers_are_restored(received):
    before = [signal.getsignal(s) for s in SIGNALS]
    with pytest.raises(KeyboardInterrupt), StopRequests():
        assert [signal.getsignal(s) for s in SIGNALS] != before
        send(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
    assert [signal.getsignal(s) for s in SIGNALS] == before
    for signum in SIGNALS:
        send(signum)
    assert received == list(SIGNALS)


def test_off_the_main_thread_the_handlers_stay(received):
    seen = []

    def body():
        with StopRequests() as requests:
            seen.append([signal.getsignal(s) for s in SIGNALS])
            requests.time_up = True
            seen.append(agreed_reason(requests.votes()))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    handlers = [signal.getsignal(s) for s in SIGNALS]
    assert seen == [handlers, "max_minutes"]
