"""DRA and AQUA/QA2 at a real terminal (tmux): the list follows the tables, the prompt stays last."""

import base64
import shlex
import subprocess
import uuid

import pytest

from draws.bus import Bus
from draws.ous import StatusTable
from draws.products import products_dir
from support import ROOT, wait_for

PROG = "2015.1.00657.S"
A, B, C = "uid://X1/X1/Xt1", "uid://X1/X1/Xt2", "uid://X1/X1/Xt3"
PROMPT = "Enter a UID (empty line: refresh, q: quit):"
RUN = "2018-07-24T09:49:20.902"

pytestmark = pytest.mark.skipif(subprocess.run(["which", "tmux"], capture_output=True).returncode != 0,
                                reason="tmux is not installed")


class Terminal:
    """One command in a detached tmux window of a tmux server of our own."""

    def __init__(self, tmp_path, env, argv):
        self.socket = f"draws-test-{uuid.uuid4().hex[:8]}"
        script = tmp_path / f"{self.socket}.sh"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        script.write_text(f"{exports}cd {shlex.quote(str(ROOT))}\nexec {' '.join(map(shlex.quote, argv))}\n")
        self.tmux("new-session", "-d", "-x", "200", "-y", "50", "bash", str(script))
        self.pane = self.tmux("list-panes", "-F", "#{pane_id}").split()[0]

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                              check=True).stdout

    def screen(self):
        return self.tmux("capture-pane", "-p", "-J")

    def last_line(self):
        lines = [line for line in self.screen().splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""

    def close(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal(tmp_path, env):
    opened = []

    def open_(*argv):
        opened.append(Terminal(tmp_path, env, [str(ROOT / ".venv/bin/python"), "-u", *argv]))
        return opened[-1]
    yield open_
    for t in opened:
        t.close()


def prompt_last(term):
    return term.last_line() == PROMPT


def test_dra_list_follows_the_table_without_a_keystroke(server, actors, terminal):
    status = StatusTable(server)
    actors.start("xtss.py")
    dra = terminal("dra.py", "-a", "EU")
    wait_for(lambda: "none at the moment" in dra.screen() and prompt_last(dra), 60, what="DRA's first prompt")

    status.reset(PROG, A, "PipelineImaging")
    wait_for(lambda: f"new: {A}  {PROG}  PipelineImaging" in dra.screen(), 30, what=f"{A} announced")
    wait_for(lambda: prompt_last(dra), 10, what="the prompt shown again, last")

    status.reset(PROG, B, "ManualCalibration")      # not for DRA: nothing to announce
    status.set_state(A, "Processing")               # someone else took it
    wait_for(lambda: f"gone: {A}" in dra.screen(), 30, what=f"{A} gone")
    wait_for(lambda: prompt_last(dra), 10, what="the prompt shown again, last")
    assert f"new: {B}" not in dra.screen()

    # Half a UID typed when a line arrives: shown again after the prompt, and still there.
    dra.tmux("send-keys", "-t", dra.pane, "-l", "uid://X1/X1/")
    wait_for(lambda: dra.last_line() == f"{PROMPT} uid://X1/X1/", 10, what="the typing shown")
    status.reset(PROG, C, "PipelineCalibration")
    wait_for(lambda: f"new: {C}" in dra.screen(), 30, what=f"{C} announced")
    wait_for(lambda: dra.last_line() == f"{PROMPT} uid://X1/X1/", 10, what="the typing shown again")
    dra.tmux("send-keys", "-t", dra.pane, "-l", "Xt3")
    dra.tmux("send-keys", "-t", dra.pane, "Enter")
    wait_for(lambda: status.get(C)["state"] == "Processing", 30, what=f"{C} assigned")
    wait_for(lambda: f"{C} is Processing at EU." in dra.screen(), 10, what="DRA saying so")


def test_qa2_log_lines_go_above_its_prompt(server, actors, terminal):
    actors.start("xtss.py")
    qa2 = terminal("aqua-qa2.py")
    wait_for(lambda: "none at the moment" in qa2.screen() and prompt_last(qa2), 60,
             what="AQUA/QA2's first prompt")
    xml = f"<PipelineAquaReport><OusId>{A}</OusId></PipelineAquaReport>"
    Bus(server, "test").send("pipeline.report.JAO", {
        "ousUID": A, "timestamp": RUN, "source": "EU", "productsDir": products_dir(PROG, RUN),
        "report": base64.b64encode(xml.encode()).decode()})
    wait_for(lambda: f"stored the Pipeline report of {A}" in qa2.screen(), 30, what="the log line")
    wait_for(lambda: prompt_last(qa2), 10, what="the prompt shown again, last")
    assert qa2.screen().count(PROMPT) == 1       # the old one was replaced, not left above
