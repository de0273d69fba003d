"""One background worker per process, running submitted jobs in order (first in, first out).

For work whose duration must not show in a response's timing (password-reset requests):
the request hands the job over and answers at once. Jobs are best-effort: a process that
stops drops what is still queued, and a failing job is logged and skipped.
"""
import logging
import queue
import threading

log = logging.getLogger(__name__)
_jobs = queue.Queue()
_worker = None
_lock = threading.Lock()


def _run():
    while True:
        job, args = _jobs.get()
        try:
            job(*args)
        except Exception:  # one failing job must not stop the worker
            log.exception("background job %s failed", getattr(job, "__name__", job))
        finally:
            _jobs.task_done()


def submit(job, *args):
    global _worker
    with _lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_run, name="iam-background", daemon=True)
            _worker.start()
    _jobs.put((job, args))

