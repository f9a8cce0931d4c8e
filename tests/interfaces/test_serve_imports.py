"""`securelogin serve` never runs code from the folder it is started in.

It hands over to uvicorn with ``python -P -m uvicorn``: without ``-P``, ``-m`` would put
the working directory first on the import path, and a ``uvicorn.py`` (or ``securelogin``)
lying there would run as the server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.acceptance.server import free_port
from tests.processes import stop_process


def test_a_planted_uvicorn_in_the_working_directory_is_never_imported(tmp_path: Path) -> None:
    marker = tmp_path / "planted-code-ran"
    (tmp_path / "uvicorn.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    env = {**os.environ, "SECURELOGIN_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    securelogin = str(Path(sys.executable).with_name("securelogin"))
    subprocess.run([securelogin, "db", "upgrade"], cwd=tmp_path, env=env, check=True)
    port = free_port()
    server = subprocess.Popen(
        [securelogin, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        healthy = False
        while time.monotonic() < deadline and server.poll() is None and not healthy:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success
            except httpx.HTTPError:
                time.sleep(0.1)  # polling a starting server, bounded by the deadline
        assert healthy, "the real server did not start"
    finally:
        stop_process(server)
    assert not marker.exists()
