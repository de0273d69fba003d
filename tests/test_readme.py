"""The README's first example (log in, then GET /accounts/me) works as printed.

The app is served on a real socket, the development admin is created the way `make run`
creates it, and the README's shell block runs unchanged except for the port.
"""
import json
import os
import re
import subprocess
from pathlib import Path

from tests.helpers import run_dev_admin

README = Path(__file__).resolve().parent.parent / "README.md"


def first_login_example():
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    return next(block for block in blocks if "/accounts/me" in block and "auth/login" in block)


def test_readme_login_example_prints_my_account(app, live_server, tmp_path):
    run_dev_admin(app)

    workdir = tmp_path / "checkout"
    workdir.mkdir()
    os.symlink(app.instance_path, workdir / "instance")  # the example reads instance/dev-admin-password
    assert Path(app.instance_path, "dev-admin-password").exists()
    script = first_login_example().replace("http://127.0.0.1:5000", live_server)
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    me = json.loads(run.stdout)
    assert me["data"]["type"] == "accounts"
    assert me["data"]["attributes"]["email"] == "admin@example.com"


def test_readme_and_docs_link_only_files_in_the_repository():
    """A user who clones the project has the repository only: every relative link resolves in it."""
    root = README.parent
    for page in [README, *sorted((root / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(root) and path.exists(), f"{page.name} links {target}"
