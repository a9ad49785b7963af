"""Child processes that die with their parent (Linux: PR_SET_PDEATHSIG).

A parent killed with SIGKILL gets no chance to stop its children; the
kernel does it for us, so no orphan goes on working on its own.
"""

import ctypes
import functools
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
# Looked up before any fork: the child, between fork and exec, only makes the call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _die_with_parent(parent_pid):
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:   # the parent died before the call took effect
            os._exit(1)


def spawn(argv, **kw):
    """Popen ARGV as a child killed when this process (strictly: this thread) ends."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(argv, preexec_fn=functools.partial(_die_with_parent, os.getpid()), **kw)
