"""AQUA/QA2: store the Pipeline reports, and let a person review them.

The background part stores every ``pipeline.report.JAO`` report in
pipeline-reports. The foreground lists the ReadyForReview OUSs; reviewing
one sets it Reviewing, shows its report and weblog URL and asks for the QA2
verdict: Fail sends it back to ReadyForProcessing without a recipe,
Pass/SemiPass verifies it and asks the Product Ingestor to ingest it, Cancel
puts it back in ReadyForReview.
"""

import threading
from contextlib import contextmanager

from .. import messages, shapes, tables
from ..archive import Reports
from ..exceptions import DrawsError, InvalidRequest
from ..ous import Refused
from ..owners import REVIEW_LEASE, new_step
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
        body = messages.check_report(message.body, self.ctx.settings.site_of_cache)
        self.reports.store(body["ousUID"], body["timestamp"], body["report"],
                           body["productsDir"], body["source"])
        self.ctx.log.info("stored the Pipeline report of %s (run %s at %s%s)",
                          body["ousUID"], body["timestamp"], body["source"],
                          "" if body is message.body else f", whose cache {message.body['source']} is")

    def listen(self):
        return Receiver(self.ctx.bus, messages.REPORT_SELECTOR, self.store, concurrency=2).start()

    # -- reviews
    def ready(self):
        return self.ctx.xtss.ask_ouss(STATE)

    def current_report(self, ous):
        """The report of the OUS's latest Pipeline run, or None while it has not arrived."""
        reports = self.reports.for_ous(ous["entityId"])
        return reports[0] if len(reports) >= max(1, reviewable_runs(ous)) else None

    def weblog_url(self, report):
        return f"{self.cache_url}/weblogs/{weblog_stem(report['ousUID'], report['timestamp'])}/index.html"

    def start_review(self, ous):
        """Take OUS for review: one guarded step, holding a lease (renewed while a person
        decides, see holding()); returns its id. Refused when someone else has it."""
        review = new_step()
        try:
            self.ctx.xtss.transition(ous["entityId"], review, [STATE], "Reviewing", lease=REVIEW_LEASE)
        except Refused as exc:
            raise Refused(f"{ous['entityId']} is not yours to review: {exc}") from None
        return review

    @contextmanager
    def holding(self, uid, review):
        """Renew the lease of our REVIEW of UID meanwhile (a person may take minutes)."""
        stop = threading.Event()

        def renew():
            while not stop.wait(REVIEW_LEASE / 3):
                try:
                    self.ctx.xtss.renew(uid, review, REVIEW_LEASE)
                except Refused as exc:
                    self.ctx.log.warning("%s", exc)
                    return
                except DrawsError as exc:   # XTSS or CouchDB away: try again soon
                    self.ctx.log.warning("could not renew the review of %s: %s", uid, exc)
        renewer = threading.Thread(target=renew, daemon=True, name="review-lease")
        renewer.start()
        try:
            yield
        finally:
            stop.set()

    def decide(self, ous, report, answer, review):
        """The verdict on our REVIEW of OUS, in one guarded step (Refused if the review is
        no longer ours). Fail clears recipe and executive with the state (DRA --auto never
        sees the old recipe); Pass and SemiPass verify it and ask for the ingestion at once."""
        uid, step = ous["entityId"], new_step()
        xtss = self.ctx.xtss
        if answer == "F":
            xtss.transition(uid, step, ["Reviewing"], "ReadyForProcessing", owner=review,
                            substate=None, clearExec=True)
        elif answer in "PS":
            assignment = (ous.get("assignment") or {}).get("id")
            xtss.transition(uid, step, ["Reviewing"], "DeliveryInProgress", owner=review, through=["Verified"],
                            messages=[messages.ingest(uid, report["timestamp"], report["productsDir"],
                                                      assignment)])
        else:
            xtss.transition(uid, step, ["Reviewing"], STATE, owner=review)
        self.ctx.log.info("%s: QA2 %s", uid, VERDICTS[answer])

    def interactive(self, console=None):
        console = console or Console()

        def act(ous):
            report = self.current_report(ous)
            if report is None:
                raise InvalidRequest(f"the Pipeline report of {ous['entityId']} has not arrived yet; "
                                     "try again in a moment.")
            review = self.start_review(ous)
            console.say(f"\nPipeline report of {ous['entityId']} (run {report['timestamp']}, "
                        f"{report.get('source')}):\n")
            console.say(Reports.decode(report).rstrip())
            console.say(f"\nWeblog: {self.weblog_url(report)}\n")
            try:
                with self.holding(ous["entityId"], review):
                    answer = console.choose(QUESTION, ANSWERS)
            except EndOfInput:
                self.decide(ous, report, "C", review)   # leave nothing half-reviewed
                raise
            self.decide(ous, report, answer, review)
            console.say(f"{ous['entityId']}: {VERDICTS[answer]}.")

        return pick_loop(console, "OUSs ready for review", ("UID", "Program", "Recipe"),
                         self.ready, lambda o: (o["entityId"], o.get("progID", ""), o.get("substate") or ""),
                         act, follow=(self.ctx.server.db(tables.STATUS), lambda doc: doc.get("state") == STATE))

    def auto(self):
        """Review every ReadyForReview OUS with our answer once its report is stored; never returns.

        It may run beside people at prompts: each review is taken in one guarded
        step, so an OUS is reviewed by one of them. A review left half done by a
        reviewer that stopped is given back by XTSS's reconciler once its lease ran out.
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
            for ous in self.ready():
                report = self.current_report(ous)
                if report is None:   # its report's arrival wakes us again
                    self._awaiting.add(ous["entityId"])
                    continue
                self._awaiting.discard(ous["entityId"])
                try:
                    self.decide(ous, report, self.answer, self.start_review(ous))
                except Refused as exc:
                    self.ctx.log.info("%s", exc)
        finally:
            self._reviewing.clear()
