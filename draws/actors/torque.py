"""Torque/Maui: runs a Pipeline Driver per ``pipeline.process.<LOC>`` message.

At most MAX_EXECUTIONS drivers run at once: the bus receiver has that many
handler slots, each handler waits for its driver to exit (the bus keeps
renewing the message's lease meanwhile), and further requests stay
unclaimed in ``msgq`` until a slot frees, so none is lost.
"""

import subprocess
import sys

from .. import messages
from ..children import spawn
from ..exceptions import DrawsError
from ..receiver import Receiver
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
        if status != 0:
            raise DrawsError(f"the Pipeline Driver for {uid} failed: {why}" if why else
                             f"the Pipeline Driver for {uid} exited with status {status}")
        self.ctx.log.info("the Pipeline Driver for %s is done", uid)

    def run(self):
        """Run drivers for requests as they come; never returns."""
        self.ctx.log.info("listening on %s, running at most %d Pipeline Driver(s) at once",
                          self.selector, self.max_executions)
        Receiver(self.ctx.bus, self.selector, self.handle, concurrency=self.max_executions,
                 name="torque-maui").run()
