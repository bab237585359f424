"""Python's cyclic garbage collector kept off the serving path.

A loaded model brings millions of objects the collector tracks (modules, parameters, tokenizer tables);
a full collection scans them all, holding the GIL for a few hundred milliseconds, on whichever thread
allocates next: often the event loop, which then answers nothing (`/health` included) until it ends.
Objects alive before and after a model loads are moved out of the collector's sight (``gc.freeze``), so
later collections scan only what serving allocates, and the load's own collections only what it has
made. An unloaded model's objects are released in one full collection of everything (``gc.unfreeze``),
as an unload already collected, and the rest frozen again; a stopping server unfreezes everything, so a
process that runs many servers in turn (a test session) frees each one's models once unreferenced.
"""

from __future__ import annotations

import gc


def keep_out_of_collections() -> None:
    """Keep what is alive now (the server, a model just loaded) out of later collections."""
    gc.freeze()


def release_unloaded() -> None:
    """Collect an unloaded model's objects, cycles included, then keep the survivors out of sight again."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def stop_keeping() -> None:
    """Everything back in the collector's sight: the server stops, and its models are garbage once unreferenced."""
    gc.unfreeze()
