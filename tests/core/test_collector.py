"""The garbage collector's tuning for allocation-heavy work (guanxi.core.base.collector): frozen
heap and raised thresholds inside the block, Python's settings restored after it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from guanxi.core.base.collector import THRESHOLDS, tuned_gc


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tuned_block_freezes_the_heap_and_raises_thresholds_then_restores_both() -> None:
    gc.set_threshold(700, 10, 10)
    alive = [object()]  # a container the collector tracks, allocated before the block
    with tuned_gc():
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0
        assert not any(o is alive for o in gc.get_objects()), "objects alive at the start are out of the collector's sight"
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
    assert any(o is alive for o in gc.get_objects())


def test_settings_are_restored_when_the_block_raises() -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), tuned_gc():
        raise RuntimeError("the import failed")
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)


def test_nested_blocks_leave_the_work_to_the_outermost() -> None:
    gc.set_threshold(700, 10, 10)
    with tuned_gc():
        frozen = gc.get_freeze_count()
        with tuned_gc():
            assert (gc.get_threshold(), gc.get_freeze_count()) == (THRESHOLDS, frozen)
        # the inner block's end must not restore anything while the outer one still runs
        assert (gc.get_threshold(), gc.get_freeze_count()) == (THRESHOLDS, frozen)
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)


def test_a_heap_frozen_before_stays_frozen_after_the_block() -> None:
    """A server process froze its start-up heap for good (tune_gc); a block inside it must not
    unfreeze that heap when it ends."""
    gc.freeze()
    frozen = gc.get_freeze_count()
    with tuned_gc():
        pass
    assert gc.get_freeze_count() == frozen


def test_disabled_block_changes_nothing() -> None:
    gc.set_threshold(700, 10, 10)
    with tuned_gc(enabled=False):
        assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)
