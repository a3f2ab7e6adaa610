"""`adieu serve` as a newcomer runs it: a real process, a real socket."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support import free_port

CURL = shutil.which("curl")


def test_serve_creates_everything_and_prints_a_working_link(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADIEU_")}
    env["ADIEU_CONFIG"] = str(tmp_path / "none.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "adieu", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("/u/" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "serve exited early:\n" + "".join(lines)
            lines.append(line)
        text = "".join(lines)
        assert f"Adieu is running at http://127.0.0.1:{port}/" in text
        url = re.search(r"(http://\S+/u/\S+)", text).group(1)  # type: ignore[union-attr]
        assert url.startswith(f"http://127.0.0.1:{port}/u/")
        assert (tmp_path / "adieu-data" / "adieu.db").exists()
        assert (tmp_path / "adieu-data" / "keys.json").exists()
        deadline = time.monotonic() + 20
        while True:
            try:
                page = httpx.get(url)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert page.status_code == 200 and "d•••@example.com" in page.text
        _rfc8058_with_curl(url, tmp_path)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _rfc8058_with_curl(url: str, tmp_path: Path) -> None:
    """The request forms of RFC 8058 §3.1 and its examples (§8), sent with curl."""
    if CURL is None:
        pytest.skip("curl is not installed")
    forms = [
        [
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "--data-binary",
            "List-Unsubscribe=One-Click",
        ],
        ["-F", "List-Unsubscribe=One-Click"],
        ["-X", "POST", "-H", "Content-Length: 0"],
    ]
    for form in forms:
        out = subprocess.run(
            [CURL, "-s", "-i", "--max-redirs", "0", *form, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        status_line, _, rest = out.partition("\n")
        assert status_line.split()[1] == "200", out  # never a redirect (RFC 8058 §3.2)
        headers, _, body = rest.partition("\n\n")
        assert "set-cookie" not in headers.lower()
        assert body == "You are unsubscribed.", out
