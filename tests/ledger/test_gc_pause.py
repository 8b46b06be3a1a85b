"""The engine's pause of the cyclic collector restores the host's setting, also when
analyses overlap in several threads."""

from __future__ import annotations

import gc
import threading

from revcrm.metrics._engine import _no_gc


def test_a_pause_restores_an_enabled_collector() -> None:
    assert gc.isenabled()
    with _no_gc():
        assert not gc.isenabled()
        with _no_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause is still running
    assert gc.isenabled()


def test_a_pause_leaves_a_host_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with _no_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_pauses_in_threads_end_with_the_collector_enabled() -> None:
    # Thread one enters first and leaves first; a naive save-and-restore in thread two
    # would have recorded "disabled" and left the collector off.
    entered, release_one, release_two = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def one() -> None:
        with _no_gc():
            entered.set()
            release_one.wait(5)

    def two() -> None:
        entered.wait(5)
        with _no_gc():
            release_one.set()
            release_two.wait(5)
            seen.append(gc.isenabled())

    a, b = threading.Thread(target=one), threading.Thread(target=two)
    a.start()
    b.start()
    a.join(5)
    assert not gc.isenabled()  # thread two still builds
    release_two.set()
    b.join(5)
    assert seen == [False]
    assert gc.isenabled()
