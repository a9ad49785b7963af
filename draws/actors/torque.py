"""Torque/Maui: runs a Pipeline Driver per ``pipeline.process.<LOC>`` message.

At most MAX_EXECUTIONS drivers run at once: the bus receiver has that many
handler slots, each handler waits for its driver to exit (the bus keeps
renewing the message's lease meanwhile), and further requests stay
unclaimed in ``msgq`` until a slot frees, so none is lost.
"""

from .. import pipeline_driver
from ..children import spawn
from ..bus import body_fields
from ..exceptions import DrawsError


def request(body):
    """(progID, ousUID, recipe) of a well-formed request body; InvalidRequest otherwise."""
    fields = body_fields(body, "a Pipeline request", "progID", "ousUID", "recipe")
    pipeline_driver.check_request(*fields)
    return fields


class Torque:
    def __init__(self, ctx, max_executions=1):
        self.ctx = ctx
        self.max_executions = max_executions
        self.selector = f"pipeline.process.{ctx.settings.location}"

    def handle(self, message):
        progid, uid, recipe = request(message.body)
        self.ctx.log.info("starting a Pipeline Driver for %s (%s, %s)", uid, progid, recipe)
        status = spawn(pipeline_driver.command(progid, uid, recipe)).wait()
        if status != 0:
            raise DrawsError(f"the Pipeline Driver for {uid} exited with status {status}")
        self.ctx.log.info("the Pipeline Driver for %s is done", uid)

    def receiver(self):
        return self.ctx.bus.receiver(self.selector, self.handle, concurrency=self.max_executions,
                                     name="torque-maui")
