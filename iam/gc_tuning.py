"""The garbage collector of a serving process, tuned once the app is loaded (gunicorn.conf.py).

A request builds many short-lived containers (rows, dicts of a document), and CPython's
cyclic collector runs every 700 of them, each full collection walking every object alive,
including the tens of thousands the app made at start-up (SQLAlchemy's mappers and compiled
statements, the schemas, the OpenAPI document) that live as long as the process. Two changes:

- `gc.freeze()` once the app is loaded: what exists then moves to a permanent generation that
  collections no longer walk (it also keeps those pages shared between gunicorn's workers
  longer, as CPython's documentation suggests for forking servers);
- the first generation collects every GEN0_THRESHOLD allocations instead of 700: cycles made
  by a request are still collected, a few requests later.

Measured with `python -m bench.cpu` (bench/README.md): a page of 100 accounts with three
includes went from 8.6 to 5.8 ms of CPU, 1000 sparse rows from 4.0 to 2.6 ms.
"""
import gc

GEN0_THRESHOLD = 10_000


def tune():
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
