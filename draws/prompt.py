"""The interactive prompt shared by DRA and AQUA/QA2 (spec §7).

Prompts read whole lines from standard input, so a person can paste a UID
and a script can pipe one in: an empty line refreshes the list, an unknown
or malformed UID is reported and asked again, ``q`` or the end of input
ends the tool (exit status 0). Listings and questions go to standard
output; logs go to standard error.

At a terminal the prompt follows the tables: an OUS that joins or leaves
the list while the question waits is announced (``new: …``, ``gone: …``)
and the question shown again; a log line printed meanwhile goes above the
question, never after it. Piped input gets none of this: what a script
reads stays what it was.
"""

import contextlib
import logging
import sys
import threading

from .exceptions import DrawsError, InvalidRequest
from .feed import Feed
from .ous import check_uid

QUIT = ("q", "quit", "exit")
UID_QUESTION = "Enter a UID (empty line: refresh, q: quit): "
CLEAR_LINE = "\r\033[K"

log = logging.getLogger("draws.prompt")


class EndOfInput(Exception):
    """The person (or script) is done: end of input or 'q'."""


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _line_editor(console):
    """GNU readline when the console is this process's terminal: what a person has
    typed so far can then be shown again below a line printed meanwhile."""
    if not (console.live and console.stdin is sys.stdin and console.stdout is sys.stdout):
        return None
    try:
        import readline
    except ImportError:
        return None
    return readline


class Console:
    def __init__(self, stdin=None, stdout=None):
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        # A person at a terminal: the list and the log lines may be shown while a question waits.
        self.live = _is_terminal(self.stdin) and _is_terminal(self.stdout)
        self.asking = None          # the question waiting for its answer, if any
        self._lock = threading.RLock()
        self._editor = _line_editor(self)

    def _read_line(self, question):
        """QUESTION, then the line typed ('' at end of input)."""
        if self._editor is not None:
            self.asking = question
            try:
                return input(question) + "\n"
            except EOFError:
                return ""
        with self._lock:
            self.stdout.write(question)
            self.stdout.flush()
            self.asking = question
        return self.stdin.readline()

    def say(self, text=""):
        with self._lock:
            print(text, file=self.stdout, flush=True)

    def ask(self, question):
        """One stripped line of input; EndOfInput at end of input or 'q'."""
        try:
            line = self._read_line(question)
        finally:
            self.asking = None
        if not line:
            self.say()
            raise EndOfInput()
        line = line.strip()
        if line.lower() in QUIT:
            raise EndOfInput()
        return line

    def choose(self, question, answers):
        """Ask until the first letter of the answer is one of ANSWERS (case-insensitive)."""
        while True:
            line = self.ask(question)
            letter = line[:1].upper()
            if letter and letter in answers:
                return letter
            self.say(f"Please answer one of {', '.join(answers)}.")

    def above(self, write, text):
        """WRITE(TEXT) above the waiting question (if any), which is shown again after it
        (with what was typed so far, when readline keeps it)."""
        with self._lock:
            asking = self.asking
            if asking:
                self.stdout.write(CLEAR_LINE)
                self.stdout.flush()
            write(text)
            if asking:   # readline's cursor stays right when what was typed is shown after it
                typed = self._editor.get_line_buffer() if self._editor is not None else ""
                self.stdout.write(asking + typed)
            self.stdout.flush()

    @contextlib.contextmanager
    def logs_above(self):
        """While inside, log lines to this terminal go above the waiting question."""
        handlers = [h for h in logging.getLogger().handlers
                    if isinstance(h, logging.StreamHandler) and _is_terminal(h.stream)]
        streams = [h.setStream(_Above(self, h.stream)) for h in handlers]
        try:
            yield
        finally:
            for handler, stream in zip(handlers, streams):
                handler.setStream(stream)


class _Above:
    """A log stream that writes above the console's waiting question."""

    def __init__(self, console, stream):
        self.console = console
        self.stream = stream

    def write(self, text):
        self.console.above(self.stream.write, text)

    def flush(self):
        self.stream.flush()


def table(rows, headers):
    """ROWS (tuples of text) under HEADERS, in aligned columns."""
    widths = [max(len(str(v)) for v in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
             for row in [headers, ["-" * w for w in widths]] + list(rows)]
    return "\n".join(lines)


class _Listing:
    """The OUSs last shown, kept current at a terminal while the UID question waits.

    FOLLOW is (database, relevant(doc)): a change of a relevant document, or
    of a listed OUS, makes it ask LIST_ITEMS() again and announce the difference.
    """

    def __init__(self, console, list_items, row, follow=None):
        self.console = console
        self.list_items = list_items
        self.row = row
        self.items = []
        self.shown = 0          # how many times the whole list was shown
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._feed = None
        if follow is not None and console.live:
            db, relevant = follow

            def on_change(doc):
                if relevant(doc) or doc.get("entityId") in self.uids():
                    self._wake.set()
            self._feed = Feed(db)
            self._feed.subscribe(on_change)
            self._feed.start()
            threading.Thread(target=self._follow, daemon=True, name="prompt-listing").start()

    def uids(self):
        return {o.get("entityId") for o in self.items}

    def show(self, title, headers):
        items = self.list_items()
        with self.console._lock:
            self.items, self.shown = items, self.shown + 1
            self.console.say()
            if items:
                self.console.say(f"{title} ({len(items)}):")
                self.console.say(table([self.row(ous) for ous in items], headers))
            else:
                self.console.say(f"{title}: none at the moment.")

    def _follow(self):
        while self._wake.wait() and not self._stop.is_set():
            if self.console.asking != UID_QUESTION:   # a person is busy: news can wait
                self._stop.wait(0.5)
                continue
            self._wake.clear()
            shown = self.shown
            try:
                items = self.list_items()
            except DrawsError as exc:
                log.warning("could not refresh the list: %s", exc)
                continue
            with self.console._lock:
                if self.shown != shown or self.console.asking != UID_QUESTION:
                    self._wake.set()   # the list was shown again meanwhile, or a person is busy
                    continue
                before, after = self.uids(), {o.get("entityId") for o in items}
                lines = [f"new: {'  '.join(self.row(o))}" for o in items if o.get("entityId") not in before]
                lines += [f"gone: {o.get('entityId')}" for o in self.items if o.get("entityId") not in after]
                self.items = items
                if lines:
                    self.console.above(self.console.say, "\n".join(lines))

    def stop(self):
        self._stop.set()
        self._wake.set()
        if self._feed is not None:
            self._feed.stop()


def pick_loop(console, title, headers, list_items, row, act, follow=None):
    """Show the OUSs LIST_ITEMS() returns, read a UID, ACT(ous); until end of input.

    ROW(ous) gives one table row. ACT may ask further questions; XTSS or
    CouchDB errors are reported and the loop goes on. At a terminal, FOLLOW
    (database, relevant(doc)) keeps the list current while the question
    waits. Returns 0 (the exit status).
    """
    listing = _Listing(console, list_items, row, follow)
    try:
        with console.logs_above() if console.live else contextlib.nullcontext():
            while True:
                listing.show(title, headers)
                while True:
                    uid = console.ask(UID_QUESTION)
                    if not uid:
                        break
                    try:
                        ous = _find(check_uid(uid), listing.items, list_items)
                        act(ous)
                        break
                    except InvalidRequest as exc:
                        console.say(str(exc))
                    except DrawsError as exc:
                        console.say(f"error: {exc}")
                        break
    except EndOfInput:
        return 0
    finally:
        listing.stop()


def _find(uid, items, list_items):
    """The listed OUS with UID, looking again in case the list is stale."""
    def match(ouss):
        return next((o for o in ouss if o.get("entityId") == uid), None)
    ous = match(items) or match(list_items())
    if ous is None:
        raise InvalidRequest(f"{uid} is not in the list; paste one of the UIDs shown.")
    return ous
