"""The interactive prompt shared by DRA and AQUA/QA2 (spec §7).

Prompts read whole lines from standard input, so a person can paste a UID
and a script can pipe one in: an empty line refreshes the list, an unknown
or malformed UID is reported and asked again, ``q`` or the end of input
ends the tool (exit status 0). Listings and questions go to standard
output; logs go to standard error.
"""

import sys

from .exceptions import DrawsError, InvalidRequest
from .ous import check_uid

QUIT = ("q", "quit", "exit")


class EndOfInput(Exception):
    """The person (or script) is done: end of input or 'q'."""


class Console:
    def __init__(self, stdin=None, stdout=None):
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout

    def say(self, text=""):
        print(text, file=self.stdout, flush=True)

    def ask(self, question):
        """One stripped line of input; EndOfInput at end of input or 'q'."""
        self.stdout.write(question)
        self.stdout.flush()
        line = self.stdin.readline()
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


def table(rows, headers):
    """ROWS (tuples of text) under HEADERS, in aligned columns."""
    widths = [max(len(str(v)) for v in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
             for row in [headers, ["-" * w for w in widths]] + list(rows)]
    return "\n".join(lines)


def pick_loop(console, title, headers, list_items, row, act):
    """Show the OUSs LIST_ITEMS() returns, read a UID, ACT(ous); until end of input.

    ROW(ous) gives one table row. ACT may ask further questions; XTSS or
    CouchDB errors are reported and the loop goes on. Returns 0 (the exit status).
    """
    try:
        while True:
            items = _show(console, title, headers, list_items, row)
            while True:
                uid = console.ask("Enter a UID (empty line: refresh, q: quit): ")
                if not uid:
                    break
                try:
                    ous = _find(check_uid(uid), items, list_items)
                    act(ous)
                    break
                except InvalidRequest as exc:
                    console.say(str(exc))
                except DrawsError as exc:
                    console.say(f"error: {exc}")
                    break
    except EndOfInput:
        return 0


def _show(console, title, headers, list_items, row):
    items = list_items()
    console.say()
    if items:
        console.say(f"{title} ({len(items)}):")
        console.say(table([row(ous) for ous in items], headers))
    else:
        console.say(f"{title}: none at the moment.")
    return items


def _find(uid, items, list_items):
    """The listed OUS with UID, looking again in case the list is stale."""
    def match(ouss):
        return next((o for o in ouss if o.get("entityId") == uid), None)
    ous = match(items) or match(list_items())
    if ous is None:
        raise InvalidRequest(f"{uid} is not in the list; paste one of the UIDs shown.")
    return ous
