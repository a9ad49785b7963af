"""AQUA/QA2: store the Pipeline reports, and let a person review them.

The background part stores every ``pipeline.report.JAO`` report in
pipeline-reports. The foreground lists the ReadyForReview OUSs; reviewing
one sets it Reviewing, shows its report and weblog URL and asks for the QA2
verdict: Fail sends it back to ReadyForProcessing without a recipe,
Pass/SemiPass verifies it and asks the Product Ingestor to ingest it, Cancel
puts it back in ReadyForReview.
"""

import base64
import binascii
import threading

from .. import tables
from ..archive import Reports
from ..bus import body_fields
from ..config import LOCATIONS
from ..exceptions import InvalidRequest
from ..ous import check_uid, show
from ..products import check_name, check_timestamp, weblog_stem
from ..prompt import Console, EndOfInput, pick_loop
from ..watch import Trigger

REPORTS_SELECTOR = "pipeline.report.JAO"
INGEST_SELECTOR = "ingest.JAO"
STATE = "ReadyForReview"
QUESTION = "[F]ail, [P]ass, [S]emipass, [C]ancel: "
ANSWERS = "FPSC"
VERDICTS = {"F": "Fail", "P": "Pass", "S": "SemiPass", "C": "Cancel"}


def check_report(body):
    """The fields of a pipeline.report.JAO body, or InvalidRequest saying what is wrong."""
    body_fields(body, "a Pipeline report message", "ousUID", "timestamp", "source", "report", "productsDir")
    check_uid(body["ousUID"])
    check_timestamp(body["timestamp"])
    check_name(body["productsDir"])
    if body["source"] not in LOCATIONS:
        raise InvalidRequest(f"source {show(body['source'])} is not a location (one of {', '.join(LOCATIONS)})")
    try:
        base64.b64decode(body["report"], validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise InvalidRequest("report is not base64 text") from None
    return body


def reviewable_runs(ous):
    """How many Pipeline runs of OUS ended well (Processing -> ReadyForReview): each sent a report."""
    history = ous.get("history") or []
    return sum(1 for before, after in zip(history, history[1:])
               if before.get("state") == "Processing" and after.get("state") == STATE)


class Qa2:
    def __init__(self, ctx, cache_url):
        self.ctx = ctx
        self.cache_url = cache_url.rstrip("/")
        self.reports = Reports(ctx.server)

    # -- the background part
    def store(self, message):
        body = check_report(message.body)
        self.reports.store(body["ousUID"], body["timestamp"], body["report"],
                           body["productsDir"], body["source"])
        self.ctx.log.info("stored the Pipeline report of %s (run %s at %s)",
                          body["ousUID"], body["timestamp"], body["source"])

    def listen(self):
        return self.ctx.bus.listen(REPORTS_SELECTOR, self.store, concurrency=2)

    # -- reviews
    def ready(self):
        return self.ctx.xtss.find(STATE)

    def current_report(self, ous):
        """The report of the OUS's latest Pipeline run, or None while it has not arrived."""
        reports = self.reports.for_ous(ous["entityId"])
        return reports[0] if len(reports) >= max(1, reviewable_runs(ous)) else None

    def weblog_url(self, report):
        return f"{self.cache_url}/weblogs/{weblog_stem(report['ousUID'], report['timestamp'])}/index.html"

    def decide(self, ous, report, answer):
        uid, xtss = ous["entityId"], self.ctx.xtss
        if answer == "F":
            # Recipe and executive go first: DRA --auto must never see the OUS
            # ReadyForProcessing with its old recipe still set.
            xtss.clear_exec(uid)
            xtss.set_substate(uid, None)
            xtss.set_state(uid, "ReadyForProcessing")
        elif answer in "PS":
            xtss.set_state(uid, "Verified")
            self.deliver(uid, report)
        else:
            xtss.set_state(uid, STATE)
        self.ctx.log.info("%s: QA2 %s", uid, VERDICTS[answer])

    def deliver(self, uid, report):
        """Ask for the ingestion of a Verified OUS's products (again: the ingestor is idempotent)."""
        self.ctx.bus.send(INGEST_SELECTOR, {"ousUID": uid, "timestamp": report["timestamp"],
                                            "productsDir": report["productsDir"]})
        self.ctx.xtss.set_state(uid, "DeliveryInProgress")

    def interactive(self, console=None):
        console = console or Console()

        def act(ous):
            report = self.current_report(ous)
            if report is None:
                raise InvalidRequest(f"the Pipeline report of {ous['entityId']} has not arrived yet; "
                                     "try again in a moment.")
            self.ctx.xtss.set_state(ous["entityId"], "Reviewing")
            console.say(f"\nPipeline report of {ous['entityId']} (run {report['timestamp']}, "
                        f"{report.get('source')}):\n")
            console.say(Reports.decode(report).rstrip())
            console.say(f"\nWeblog: {self.weblog_url(report)}\n")
            try:
                answer = console.choose(QUESTION, ANSWERS)
            except EndOfInput:
                self.decide(ous, report, "C")   # leave nothing half-reviewed
                raise
            self.decide(ous, report, answer)
            console.say(f"{ous['entityId']}: {VERDICTS[answer]}.")

        return pick_loop(console, "OUSs ready for review", ("UID", "Program", "Recipe"),
                         self.ready, lambda o: (o["entityId"], o.get("progID", ""), o.get("substate") or ""),
                         act)

    def auto(self, answer):
        """Review every ReadyForReview OUS with ANSWER once its report is stored; never returns.

        A reviewer that stopped half-way (killed) left its OUS Reviewing or
        Verified: those are finished too, so --auto must not run beside a
        person reviewing at a prompt.
        """
        self.ctx.log.info("answering %s to every OUS ready for review", VERDICTS[answer])

        def finish_left_reviews():
            for ous in self.ctx.xtss.find("Verified"):   # never a resting state
                report = self.reports.latest(ous["entityId"])
                if report is not None:
                    self.ctx.log.info("%s was left Verified: asking for its ingestion", ous["entityId"])
                    self.deliver(ous["entityId"], report)
            for ous in self.ctx.xtss.find("Reviewing"):
                report = self.current_report(ous)
                if report is not None:
                    self.ctx.log.info("%s was left Reviewing: finishing its review", ous["entityId"])
                    self.decide(ous, report, answer)

        # Reviews are left half done only by a reviewer that stopped: look for
        # them at start and after a run that failed, not at every change.
        left_over = [True]
        # OUSs ReadyForReview whose report has not been stored yet: only their
        # reports' arrival is worth a look (a report usually comes first).
        awaiting = set()
        running = threading.Event()

        def work():
            running.set()
            try:
                if left_over:
                    finish_left_reviews()
                    left_over.clear()
                for ous in self.ready():
                    report = self.current_report(ous)
                    if report is None:   # its report's arrival wakes us again
                        awaiting.add(ous["entityId"])
                        continue
                    awaiting.discard(ous["entityId"])
                    self.ctx.xtss.set_state(ous["entityId"], "Reviewing")
                    self.decide(ous, report, answer)
            except Exception:
                left_over.append(True)
                raise
            finally:
                running.clear()

        def awaited(report):
            return running.is_set() or report.get("ousUID") in awaiting

        (Trigger()
         .watch(self.ctx.server.db(tables.STATUS), lambda doc: doc.get("state") == STATE)
         .watch(self.ctx.server.db(tables.REPORTS), awaited)
         .run(work))
