"""A receiver process for bus tests: records (or hangs on) each message.

usage: bus_worker.py COUCH_URL SELECTOR OUTFILE MODE LEASE
MODE: record — append "<message id> <pid>" to OUTFILE per message;
      hang   — write the id, then never finish (to be killed).
"""

import os
import sys
import threading

from draws.bus import Bus
from draws.couch import Server
from draws.receiver import Receiver

url, selector, outfile, mode, lease = sys.argv[1:6]
out = open(outfile, "a", buffering=1)


def handle(message):
    out.write(f"{message.id} {os.getpid()}\n")
    if mode == "hang":
        threading.Event().wait()


Receiver(Bus(Server(url), actor="bus-worker"), selector, handle, lease=float(lease)).run()
