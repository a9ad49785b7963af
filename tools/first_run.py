"""A new user's first run, measured: git clone -> make demo -> first OUS Delivered.

The clone is made in a new folder with empty npm and pip caches, so every
package is fetched and installed as on a fresh machine. Prints each line of
`make demo` with the seconds since the clone began, then the time to the
first Delivered and the longest silence between two lines. The demo binds
its usual ports (5984, 5000, 8000, 8001): run it where nothing else does.

    .venv/bin/python tools/first_run.py [--into /tmp/draws-first-run]
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent


@click.command()
@click.option("--into", type=click.Path(file_okay=False, path_type=Path),
              default=Path(tempfile.gettempdir()) / "draws-first-run", show_default=True,
              help="Folder for the clone and its caches (emptied first).")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for a Delivered OUS.")
def main(into, timeout):
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    env = dict(os.environ, npm_config_cache=str(into / "npm-cache"), PIP_NO_CACHE_DIR="1")
    started = time.monotonic()
    subprocess.run(["git", "clone", "-q", str(ROOT), str(into / "draws")], check=True)
    demo = subprocess.Popen(["make", "demo"], cwd=into / "draws", env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    last, silence, delivered = time.monotonic(), 0.0, None
    deadline = started + timeout
    try:
        for line in demo.stdout:
            now = time.monotonic()
            silence, last = max(silence, now - last), now
            click.echo(f"{now - started:6.1f}  {line.rstrip()}")
            if re.search(r"\sDelivered(\s|$)", line):
                delivered = now - started
                break
            if now > deadline:
                break
    finally:
        os.killpg(demo.pid, signal.SIGINT)   # the demo's own Ctrl-C: it stops what it started
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    if delivered is None:
        raise SystemExit(f"first_run: no OUS Delivered within {timeout:g} s (load {load})")
    click.echo(f"first OUS Delivered {delivered:.1f} s after the clone began; longest silence "
               f"{silence:.1f} s; load average {load}")


if __name__ == "__main__":
    main()
