"""The loaded library is frozen out of the garbage collector, and a replaced one is still freed."""

from __future__ import annotations

import gc
import weakref

from bot.heap import settle_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle, as a templates environment has


def test_a_library_replaced_after_a_freeze_is_freed_at_the_next_settle() -> None:
    old = _Node()
    ref = weakref.ref(old)
    settle_heap()
    assert gc.get_freeze_count() > 0
    del old
    gc.collect()
    assert ref() is not None  # frozen: a plain collection leaves it alone
    settle_heap()  # what a reload does once the new library serves
    assert ref() is None
    gc.unfreeze()
