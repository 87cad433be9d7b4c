"""Keep the garbage collector off the loaded library.

The library's index is hundreds of thousands of long-lived objects (more with a larger library). Left
in the collector's generations, every full collection walks all of them while a parent waits: the
slowest answers were collections, not matching. Frozen once loaded, they are left alone; after a
reload they are unfrozen and collected with the old library.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collect what loading left behind, then freeze everything alive now (gc.freeze).

    Unfrozen first: after a reload the old library may hold reference cycles (its templates'
    environment does), which only a collection over the formerly frozen objects can free."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
