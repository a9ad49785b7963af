"""The Pipeline Driver: runs one Pipeline and hands its results on (spec §3, §4).

    python -m draws.actors.pipeline_driver -- PROGID OUSUID RECIPE [ASSIGNMENT]

Torque/Maui starts one per ``pipeline.process.<LOC>`` message. The driver
runs the Pipeline as its own process in a scratch folder; on failure it sets
ProcessingProblem with the Pipeline's reason; on success it puts the products
directory and the weblog zip into the local cache, expands the weblog,
announces both on ``cached.*``, sends the report on ``pipeline.report.JAO``
and sets ReadyForReview.

A run belongs to an assignment (its id comes in the request): its outcome
is a transition XTSS makes only while that assignment holds, and the
messages go out with it, so a stale run (its OUS relaunched meanwhile, or a
request run twice) changes nothing, sends nothing and removes what it
cached. A request from the original's DRA, with no assignment, is run as
the original did.

Children are started with :func:`spawn`, so that they die with their parent:
when Torque/Maui is killed its drivers and their Pipelines go too, and the
request redelivered later is never run twice at once.

A folder it cannot write (the cache full, the scratch folder full) sets
ProcessingProblem with a sentence naming it, and the driver exits with that
sentence as its error (``pipeline-driver: error: ...``), which Torque/Maui
gives as the request's reason. A later run works once space is freed.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import messages, products
from ..cache import Cache, _remove
from ..children import spawn
from ..exceptions import InvalidRequest, StorageError
from ..ous import EXECUTIVE_FLAG, Refused, StatusTable
from ..runtime import Context, run_main
from ..timestamps import timestamp


def command(progid, uid, recipe, assignment=None):
    """The driver's command line: message values only as positional arguments after --."""
    messages.check_process_fields(progid, uid, recipe)
    return [sys.executable, "-m", "draws.actors.pipeline_driver", "--", progid, uid, recipe] + \
        ([messages.assignment_of({"assignment": assignment})] if assignment else [])


class PipelineDriver:
    def __init__(self, ctx, progid, uid, recipe, assignment=None):
        self.ctx = ctx
        self.progid, self.uid, self.recipe, self.assignment = progid, uid, recipe, assignment

    def still_ours(self):
        """True if our OUS is Processing here; a request redelivered after a crash may be stale."""
        ctx, uid = self.ctx, self.uid

        def ours(doc):
            # No assignment recorded: the original's XTSS, which keeps none, moved it (our
            # XTSS would refuse the result of a run that is not the OUS's, see finish()).
            return doc is not None and doc.get("state") == "Processing" and \
                (doc.get("flags") or {}).get(EXECUTIVE_FLAG) in (None, ctx.settings.location) and \
                (self.assignment is None or (doc.get("assignment") or {}).get("id") in (None, self.assignment))
        # The local table (a replica at an ARC) usually knows; when it does not
        # agree, it may lag behind msgq's replication, so XTSS has the last word.
        try:
            if ours(StatusTable(ctx.server).get_or_none(uid)):
                return True
        except InvalidRequest:
            pass   # the local document is refused (and logged): XTSS decides
        matches = [d for d in ctx.xtss.ask_ouss("Processing") if d.get("entityId") == uid]
        if not matches:
            ctx.log.warning("%s is not Processing any more: nothing to do", uid)
            return False
        if not ours(matches[0]) and self.assignment is not None:
            ctx.log.warning("%s is under another assignment than %s (a stale request): nothing to do",
                            uid, self.assignment)
            return False
        executive = (matches[0].get("flags") or {}).get(EXECUTIVE_FLAG)
        if executive and executive != ctx.settings.location:
            ctx.log.warning("%s is assigned to %s, not %s: nothing to do", uid, executive,
                            ctx.settings.location)
            return False
        return True

    def run(self):
        """Run the Pipeline and report the outcome; returns the final state."""
        if not self.still_ours():
            return None
        try:
            return self._process()
        except StorageError as exc:
            self.ctx.log.error("%s: %s", self.uid, exc)
            self.finish("ProcessingProblem", reason=str(exc))
            raise

    def _pipeline(self, workdir, run_timestamp):
        """Run the Pipeline in WORKDIR; None if it made the products, else why not."""
        pipeline = spawn([sys.executable, "-m", "draws.actors.pipeline", "--workdir", workdir,
                          "--timestamp", run_timestamp, "--", self.progid, self.uid, self.recipe],
                         stdout=subprocess.PIPE, text=True, errors="replace")
        said = pipeline.communicate()[0].strip().splitlines()
        if pipeline.returncode == 0:
            return None
        try:   # its last line says why, as JSON (see draws.actors.pipeline)
            return json.loads(said[-1])["error"]
        except (IndexError, ValueError, KeyError, TypeError):
            return f"the Pipeline failed (exit status {pipeline.returncode})"

    def _process(self):
        ctx, progid, uid, recipe = self.ctx, self.progid, self.uid, self.recipe
        location = ctx.settings.location
        cache = Cache(ctx.settings.local_cache, site=location)
        run_timestamp = timestamp()
        with StorageError.wrap(f"the scratch folder {tempfile.gettempdir()}", "making the Pipeline's folder"):
            workdir_made = tempfile.TemporaryDirectory(prefix="draws-pipeline-")
        with workdir_made as workdir:
            ctx.log.info("running the Pipeline on %s (%s, %s)", uid, progid, recipe)
            problem = self._pipeline(workdir, run_timestamp)
            if problem:
                ctx.log.error("the Pipeline failed on %s at %s: %s", uid, location, problem)
                return self.finish("ProcessingProblem", reason=problem)
            name = products.products_dir(progid, run_timestamp)
            produced = Path(workdir, name, products.products_path(uid))
            report = (produced / products.report_name(uid, run_timestamp)).read_bytes()
            weblog = cache.add(produced / products.weblog_name(uid, run_timestamp))
            cache.add(Path(workdir, name))
        ctx.log.info("products of %s cached as %s", uid, name)
        cache.expand_weblog(weblog)

        sent = [messages.cached("JAO", "productsdir", location, name),
                messages.cached("JAO", "weblog", location, weblog.name)]
        if location != "JAO":
            sent.append(messages.cached(location, "weblog", location, weblog.name))
        sent.append(messages.report(uid, run_timestamp, location, report, name, self.assignment))
        if self.finish("ReadyForReview", sent) is None:   # a stale run: leave no trace
            for path in (cache.path(name) / products.products_path(uid), weblog,
                         cache.weblogs / weblog.stem):
                _remove(path)
            return None
        ctx.log.info("%s is ReadyForReview", uid)
        return "ReadyForReview"

    def finish(self, state, sent=(), reason=None):
        """Move our OUS to STATE and send SENT, in one step guarded by our assignment;
        None (logged) if the assignment is over."""
        ctx, uid = self.ctx, self.uid
        if self.assignment is None:   # the original's DRA sent the request
            if sent:
                ctx.bus.send_all(sent)
            ctx.xtss.ask_set_state(uid, state, reason=reason)
            return state
        try:
            ctx.xtss.transition(uid, f"{self.assignment}.run", ["Processing"], state,
                                assignment=self.assignment, messages=list(sent), reason=reason)
        except Refused as exc:
            ctx.log.warning("this run of %s is stale, its result refused: %s", uid, exc)
            return None
        return state


@run_main("pipeline-driver")
def main(argv=None):
    # argparse, not click: one driver process starts per OUS (see draws.actors.pipeline).
    parser = argparse.ArgumentParser(prog="python -m draws.actors.pipeline_driver",
                                     description="Run the Pipeline on one OUS and hand its results on.")
    for name in ("progid", "ousuid", "recipe"):
        parser.add_argument(name)
    parser.add_argument("assignment", nargs="?")
    args = parser.parse_args(argv)
    messages.check_process_fields(args.progid, args.ousuid, args.recipe)
    messages.assignment_of({"assignment": args.assignment})
    # Torque/Maui, which started us, has made sure the tables exist.
    ctx = Context.start("pipeline-driver", require=("location", "local_cache"), ensure_tables=False)
    PipelineDriver(ctx, args.progid, args.ousuid, args.recipe, args.assignment).run()


if __name__ == "__main__":
    main()
