"""Torque/Maui: runs a Pipeline Driver per ``pipeline.process.<LOC>`` message.

At most MAX_EXECUTIONS drivers run at once: the bus receiver has that many
handler slots, each handler waits for its driver to exit (the bus keeps
renewing the message's lease meanwhile), and further requests stay
unclaimed in ``msgq`` until a slot frees, so none is lost.
"""

import socket
import subprocess
import sys
import time

from .. import messages
from ..children import spawn
from ..exceptions import DrawsError, InvalidRequest
from ..ous import StatusTable
from ..receiver import LEASE_SECONDS, Receiver
from .pipeline_driver import command

DRIVER_ERROR = "pipeline-driver: error: "   # how run_main says the driver's error


class Torque:
    def __init__(self, ctx, max_executions=1):
        self.ctx = ctx
        self.max_executions = max_executions
        self.selector = messages.process_selector(ctx.settings.location)

    def handle(self, message):
        progid, uid, recipe = messages.check_process(message.body)
        assignment = messages.assignment_of(message.body)
        self.ctx.log.info("starting a Pipeline Driver for %s (%s, %s)", uid, progid, recipe)
        driver = spawn(command(progid, uid, recipe, assignment), stderr=subprocess.PIPE, text=True, errors="replace")
        why = None
        for line in driver.stderr:   # its log is ours; its last word, if an error, is the reason
            sys.stderr.write(line)
            if line.startswith(DRIVER_ERROR):
                why = line[len(DRIVER_ERROR):].strip()
        status = driver.wait()
        if status == 0:
            self.ctx.log.info("the Pipeline Driver for %s is done", uid)
        elif assignment and self.run_recorded(uid, driver.pid):
            self.ctx.log.warning("the Pipeline Driver for %s ended with status %d after XTSS recorded its "
                                 "run (ReadyForReview): the request is done", uid, status)
        else:
            raise DrawsError(f"the Pipeline Driver for {uid} failed: {why}" if why else
                             f"the Pipeline Driver for {uid} exited with status {status}")

    def run_recorded(self, uid, pid):
        """True if the dead driver PID's run made UID ReadyForReview: killed after it asked
        XTSS for that, its result stands (failing its request would contradict it). Its
        last request may still be on its way: first wait (two leases at most) for XTSS."""
        driver = f"pipeline-driver@{socket.gethostname()}:{pid}"
        msgq = self.ctx.bus.db
        deadline = time.monotonic() + 2 * LEASE_SECONDS
        in_flight = {"sentBy": driver, "$or": [{"consumed": False}, {"status": "claimed"}]}
        while msgq.find(in_flight) and time.monotonic() < deadline:
            time.sleep(0.5)
        try:
            doc = StatusTable(self.ctx.server).get_or_none(uid) or {}
        except InvalidRequest:   # refused for its shape (and logged): nothing recorded that we can trust
            return False
        return any(e.get("by") == driver and e.get("state") == "ReadyForReview" for e in doc.get("history") or [])

    def run(self):
        """Run drivers for requests as they come; never returns."""
        self.ctx.log.info("listening on %s, running at most %d Pipeline Driver(s) at once",
                          self.selector, self.max_executions)
        Receiver(self.ctx.bus, self.selector, self.handle, concurrency=self.max_executions,
                 name="torque-maui").run()
