"""Serving processes tune the garbage collector once the app is loaded (issue 12, iam/gc_tuning.py).

Checked in a process of its own (a gunicorn worker's settings are per process): the hook of
gunicorn.conf.py that every worker runs after loading the app freezes what exists and raises
the first generation's threshold; the generations above keep CPython's own ratios."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = """
import gc, json, runpy
before = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
settings = runpy.run_path("gunicorn.conf.py")
from iam import create_app
create_app({"TESTING": True, "IAM_ENV": "test", "IAM_DATABASE_URL": "sqlite://"})
settings["post_worker_init"](None)
print(json.dumps({"before": before, "after": {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}}))
"""


def test_the_worker_hook_freezes_the_loaded_app_and_raises_the_first_threshold(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "IAM_INSTANCE_PATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    before, after = figures["before"], figures["after"]
    assert before["threshold"][0] == 700 and before["frozen"] == 0
    assert after["threshold"] == [10_000, before["threshold"][1], before["threshold"][2]]
    assert after["frozen"] > 10_000  # the app's objects: mappers, schemas, compiled plans
