"""AQUA/QA2: store the Pipeline reports, and let a person review them.

The background part stores every ``pipeline.report.JAO`` report in
pipeline-reports. The foreground lists the ReadyForReview OUSs; reviewing
one sets it Reviewing, shows its report and weblog URL and asks for the QA2
verdict: Fail sends it back to ReadyForProcessing without a recipe,
Pass/SemiPass verifies it and asks the Product Ingestor to ingest it, Cancel
puts it back in ReadyForReview.
"""

import threading

from .. import messages, shapes, tables
from ..archive import Reports
from ..exceptions import InvalidRequest
from ..products import weblog_stem
from ..prompt import Console, EndOfInput, pick_loop
from ..receiver import Receiver
from ..watch import Trigger

STATE = "ReadyForReview"
QUESTION = "[F]ail, [P]ass, [S]emipass, [C]ancel: "
ANSWERS = "FPSC"
VERDICTS = {"F": "Fail", "P": "Pass", "S": "SemiPass", "C": "Cancel"}


def reviewable_runs(ous):
    """How many Pipeline runs of OUS ended well (Processing -> ReadyForReview): each sent a report."""
    history = ous.get("history") or []
    return sum(1 for before, after in zip(history, history[1:])
               if before.get("state") == "Processing" and after.get("state") == STATE)


class Qa2:
    """With ANSWER (F, P or S) every review gets it (--auto); without, a person reviews."""

    def __init__(self, ctx, cache_url, answer=None):
        self.ctx = ctx
        self.cache_url = cache_url.rstrip("/")
        self.answer = answer
        self.reports = Reports(ctx.server)
        # --auto: reviews may have been left half done by a reviewer that stopped (at
        # start) or by a run of ours that failed; they are looked for then only.
        self._left_over = True
        # --auto: OUSs ReadyForReview whose report has not been stored yet: only
        # their reports' arrival is worth a look (a report usually comes first).
        self._awaiting = set()
        self._reviewing = threading.Event()

    def run(self):
        """Store reports in the background; review in the foreground (the exit status)."""
        self.listen()
        if self.answer:
            self.auto()
        return self.interactive()

    # -- the background part
    def store(self, message):
        body = messages.check_report(message.body)
        self.reports.store(body["ousUID"], body["timestamp"], body["report"],
                           body["productsDir"], body["source"])
        self.ctx.log.info("stored the Pipeline report of %s (run %s at %s)",
                          body["ousUID"], body["timestamp"], body["source"])

    def listen(self):
        return Receiver(self.ctx.bus, messages.REPORT_SELECTOR, self.store, concurrency=2).start()

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
        self.ctx.bus.send(*messages.ingest(uid, report["timestamp"], report["productsDir"]))
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

    def auto(self):
        """Review every ReadyForReview OUS with our answer once its report is stored; never returns.

        A reviewer that stopped half-way (killed) left its OUS Reviewing or
        Verified: those are finished too, so --auto must not run beside a
        person reviewing at a prompt.
        """
        self.ctx.log.info("answering %s to every OUS ready for review", VERDICTS[self.answer])
        (Trigger()
         .watch(self.ctx.server.db(tables.STATUS), lambda doc: doc.get("state") == STATE)
         .watch(self.ctx.server.db(tables.REPORTS),
                lambda report: self._reviewing.is_set() or (shapes.reason(tables.REPORTS, report) is None
                                                            and report["ousUID"] in self._awaiting))
         .run(self.review_all))

    def review_all(self):
        self._reviewing.set()
        try:
            if self._left_over:
                self.finish_left_reviews()
            self._left_over = True   # until this run ends well
            for ous in self.ready():
                report = self.current_report(ous)
                if report is None:   # its report's arrival wakes us again
                    self._awaiting.add(ous["entityId"])
                    continue
                self._awaiting.discard(ous["entityId"])
                self.ctx.xtss.set_state(ous["entityId"], "Reviewing")
                self.decide(ous, report, self.answer)
            self._left_over = False
        finally:
            self._reviewing.clear()

    def finish_left_reviews(self):
        for ous in self.ctx.xtss.find("Verified"):   # never a resting state
            report = self.reports.latest(ous["entityId"])
            if report is not None:
                self.ctx.log.info("%s was left Verified: asking for its ingestion", ous["entityId"])
                self.deliver(ous["entityId"], report)
        for ous in self.ctx.xtss.find("Reviewing"):
            report = self.current_report(ous)
            if report is not None:
                self.ctx.log.info("%s was left Reviewing: finishing its review", ous["entityId"])
                self.decide(ous, report, self.answer)
