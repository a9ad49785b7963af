"""`make demo` (tools/demo.py): the whole life cycle, hands-off."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest
import requests

from draws.ous import StatusTable
from support import ROOT, free_port, wait_for


def demo_env(tmp_path, url, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAWS_")}
    env.update(DRAWS_COUCHDB_URL=url, DRAWS_VAR=str(tmp_path / "var"), DRAWS_DELAY_SCALE="0",
               DRAWS_FAILURE_RATE="0", DRAWS_SEED="5", **extra)
    return env


def ports():
    return ["--dashboard-port", str(free_port()), "--jao-cache-port", str(free_port()),
            "--eu-cache-port", str(free_port())]


def load_demo():
    spec = importlib.util.spec_from_file_location("demo", ROOT / "tools" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_closing_words_say_what_will_not_move_and_what_to_do():
    words = load_demo().closing_words({"uid://X1/X1/Xb1": ("Delivered", "PipelineImaging"),
                                       "uid://X1/X1/Xb2": ("ReadyForProcessing", "ManualCalibration"),
                                       "uid://X1/X1/Xb3": ("ProcessingProblem", "PipelineImaging")})
    assert len(words) == 2
    assert "uid://X1/X1/Xb2 has the ManualCalibration recipe" in words[0] and "never move" in words[0]
    assert "launcher.py 2015.1.00657.S uid://X1/X1/Xb2 PipelineCalibration" in words[0]
    assert words[1].startswith("uid://X1/X1/Xb3 is ProcessingProblem")
    assert "launcher.py 2015.1.00657.S uid://X1/X1/Xb3" in words[1]


def test_demo_brings_every_ous_to_the_end(tmp_path, server, couch_url):
    # A person's OUS on the server the demo finds: left alone, and the demo says so.
    status = StatusTable(server)
    status.reset("2015.1.00657.S", "uid://X1/X1/Xb2", "PipelineImaging")
    status.set_state("uid://X1/X1/Xb2", "Processing")
    res = subprocess.run([sys.executable, "tools/demo.py", "--exit-when-done", "--timeout", "240",
                          *ports()], cwd=str(ROOT), env=demo_env(tmp_path, couch_url),
                         capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "demo: done:" in res.stdout and "Delivered" in res.stdout
    assert "leaving them as they are, this demo launches uid://X1/X1/Xb3 … Xb8" in res.stdout
    assert status.get("uid://X1/X1/Xb2")["state"] == "Processing"
    docs = [d for d in status.all() if d["entityId"] != "uid://X1/X1/Xb2"]
    assert sorted(d["entityId"] for d in docs) == [f"uid://X1/X1/Xb{n}" for n in range(3, 9)]
    for doc in docs:
        assert doc["state"] == "Delivered" or doc["substate"] == "ManualCalibration", doc
    assert "stopping what the demo started" in res.stdout
    # every actor it started is gone, and each left a log
    logs = sorted(p.name for p in (tmp_path / "var" / "log").iterdir())
    assert "dashboard.log" in logs and "torque-maui.log" in logs and len(logs) >= 10
    out = subprocess.run(["pgrep", "-f", str(tmp_path / "var")], capture_output=True, text=True)
    assert out.stdout.strip() == ""


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed")
def test_demo_in_tmux_opens_a_window_per_actor(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    env = demo_env(tmp_path, url)
    p = ports()
    res = subprocess.run([sys.executable, "tools/demo.py", "--tmux", *p], cwd=str(ROOT),
                         env=env, capture_output=True, text=True, timeout=120)
    try:
        assert res.returncode == 0, res.stderr
        windows = subprocess.run(["tmux", "list-windows", "-t", "draws", "-F", "#W"],
                                 capture_output=True, text=True).stdout.split()
        assert windows[0] == "couchdb"
        assert {"xtss", "dra", "aqua-qa2", "torque-maui", "dashboard", "launcher"} <= set(windows)
        wait_for(lambda: requests.get(f"http://127.0.0.1:{p[1]}/api/health", timeout=2).ok,
                 timeout=60, what="the dashboard in its window")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", "draws"], capture_output=True)
    wait_for(lambda: subprocess.run(["curl", "-s", "-m", "1", url], capture_output=True).returncode != 0,
             timeout=20, what="the server to end with the session")


def test_sigterm_stops_everything_the_demo_started(tmp_path):
    # Its own server (which the demo starts), so that nothing here can touch other tests.
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "tools/demo.py", *ports()], cwd=str(ROOT),
                            env=demo_env(tmp_path, url), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: (tmp_path / "var" / "log" / "dashboard.log").exists(), what="the actors")
    wait_for(lambda: subprocess.run(["pgrep", "-f", str(tmp_path / "var")],
                                    capture_output=True).returncode == 0, what="a running actor")
    proc.terminate()   # no handler: the actors die with the demo (PR_SET_PDEATHSIG)
    proc.communicate(timeout=60)
    wait_for(lambda: subprocess.run(["pgrep", "-f", str(tmp_path / "var")],
                                    capture_output=True).returncode == 1,
             timeout=30, what="every actor of the demo to be gone")
