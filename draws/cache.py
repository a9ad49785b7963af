"""A site's file cache (spec §4): products directories, weblog zips, weblogs/.

Everything lands under its real name in one step: copies, rsync pulls and
weblog expansions go to a hidden temporary name in the same folder and are
then renamed, so a reader (the Product Ingestor, a browser) never sees a
half-written directory. Names come from messages and are checked with
``products.check_name``; zip entries and HTTP paths never leave the cache.
A cache that is full (or cannot be written) is a StorageError naming it,
and nothing half-written stays to take the space.
"""

import errno
import functools
import html
import http.server
import io
import logging
import os
import re
import shutil
import stat
import subprocess
import threading
import urllib.parse
import uuid
import zipfile
from pathlib import Path, PurePosixPath

from .exceptions import DrawsError, InvalidRequest, StorageError
from .products import check_name

log = logging.getLogger("draws.cache")

WEBLOGS = "weblogs"
MAX_WEBLOG_BYTES = 200 * 1024 * 1024   # expanded size; a bigger zip is refused (zip bomb)
NO_SPACE = os.strerror(errno.ENOSPC)   # "No space left on device", as rsync says it too
# rsync's own rule: a colon before any slash makes host:path (or user@host:path) remote.
REMOTE_RE = re.compile(r"^[^/:]+:")


class TransferError(DrawsError):
    """rsync could not copy a file; the text is one line saying why."""


def is_remote(location):
    return bool(REMOTE_RE.match(location))


def rsync(source, dest):
    """``rsync -a --delete -- SOURCE DEST``; TransferError with a one-line reason on failure."""
    argv = ["rsync", "-a", "--delete", "--timeout=120"]
    if is_remote(source) and "RSYNC_RSH" not in os.environ:
        argv.append("--rsh=ssh -o BatchMode=yes")   # never stop to ask a password
    argv += ["--", source, str(dest)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise TransferError("rsync is not installed (apt-get install rsync)") from None
    if proc.returncode != 0:
        # ssh's "Warning: Permanently added ..." is noise; the reason follows it.
        lines = [line.strip() for line in proc.stderr.splitlines()
                 if line.strip() and not line.startswith("Warning:")]
        if any(NO_SPACE in line for line in lines):   # ours to free, not the link's
            raise OSError(errno.ENOSPC, f"{NO_SPACE}, rsync exit {proc.returncode}")
        reason = lines[0] if lines else "no message"
        raise TransferError(f"rsync {source} failed (exit {proc.returncode}): {reason}")


def within(root, path):
    """Is PATH in the folder ROOT: not a symbolic link, and resolving inside it?

    Names come from documents and trees from other sites: whoever reads a file
    they lead to asks this first, so that no other file is ever read.
    """
    path = Path(path)
    return not path.is_symlink() and path.resolve().is_relative_to(Path(root).resolve())


def _merge(source, target):
    """Move into the directory TARGET what the directory SOURCE has and it lacks."""
    for entry in source.iterdir():
        dest = target / entry.name
        if dest.is_dir() and not dest.is_symlink():
            if entry.is_dir() and not entry.is_symlink():
                _merge(entry, dest)
            continue
        if os.path.lexists(dest):
            continue   # the same file, there already
        try:
            os.rename(entry, dest)
        except OSError:   # a directory of that name appeared meanwhile (a merge beside us)
            if dest.is_dir() and entry.is_dir() and not entry.is_symlink():
                _merge(entry, dest)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


class Cache:
    """The cache folder ROOT, with its weblogs/ subfolder; SITE names it in errors."""

    def __init__(self, root, site=None):
        self.root = Path(root).resolve()
        self.place = f"the {site} cache at {self.root}" if site else f"the cache at {self.root}"
        self.weblogs = self.root / WEBLOGS
        self.weblogs.mkdir(parents=True, exist_ok=True)

    def _writing(self, doing):
        """Turn a full disk (or another storage error) while DOING into a StorageError naming us."""
        return StorageError.wrap(self.place, doing)

    def path(self, name):
        return self.root / check_name(name)

    def _temp(self, folder, name):
        return folder / f".{name}.part-{uuid.uuid4().hex[:8]}"

    def _publish(self, temp, target):
        """Rename the finished TEMP to TARGET, atomically.

        A products directory already there belongs to another OUS of the same
        program run at the same millisecond (the name is progID_timestamp):
        what TEMP adds to it (this OUS's subtree) is moved in, each file whole.
        """
        try:
            os.replace(temp, target)   # atomic for files; for directories only if TARGET is absent
        except OSError:
            if not target.is_dir():
                _remove(temp)
                raise
            _merge(temp, target)
            _remove(temp)
        return target

    def add(self, source, name=None):
        """Copy the file or directory SOURCE into the cache as NAME."""
        source = Path(source)
        target = self.path(name or source.name)
        temp = self._temp(self.root, target.name)
        doing = f"copying {target.name}"

        def copy(src, dst):   # stop at the first full write: copytree would gather them all
            with self._writing(doing):
                shutil.copy2(src, dst)
        with self._writing(doing):
            try:
                if source.is_dir():
                    shutil.copytree(source, temp, symlinks=True, copy_function=copy)
                else:
                    copy(source, temp)
            except BaseException:
                _remove(temp)
                raise
            return self._publish(temp, target)

    def pull(self, location, name, is_dir):
        """Fetch NAME from the cache at LOCATION (a path or user@host:path) with rsync."""
        target = self.path(name)
        if not is_remote(location):
            location = str(Path(location).resolve())
        source = f"{location.rstrip('/')}/{name}" + ("/" if is_dir else "")
        temp = self._temp(self.root, name)
        with self._writing(f"pulling {name}"):
            try:
                rsync(source, temp)
            except BaseException:
                _remove(temp)
                raise
            return self._publish(temp, target)

    def expand_weblog(self, zip_path):
        """Expand a weblog zip into weblogs/<stem>/, refusing any entry that would leave it."""
        zip_path = Path(zip_path)
        stem = check_name(zip_path.stem)
        target = self.weblogs / stem
        if target.is_dir():
            return target
        temp = self._temp(self.weblogs, stem)
        with self._writing(f"expanding {zip_path.name}"):
            return self._expand(zip_path, stem, target, temp)

    def _expand(self, zip_path, stem, target, temp):
        try:
            with zipfile.ZipFile(zip_path) as zf:
                members = zf.infolist()
                _check_members(members, stem, zip_path.name)
                temp.mkdir()
                for info in members:
                    zf.extract(info, temp)
            published = temp / stem
            if not published.is_dir():
                raise InvalidRequest(f"{zip_path.name} holds no {stem}/ folder")
            try:
                os.rename(published, target)
            except OSError:
                if not target.is_dir():
                    raise
        except zipfile.BadZipFile as exc:
            raise InvalidRequest(f"{zip_path.name} is not a valid zip file: {exc}") from None
        finally:
            _remove(temp)
        log.info("expanded %s into %s/%s", zip_path.name, WEBLOGS, stem)
        return target


def _check_members(members, stem, zip_name):
    total = 0
    for info in members:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        mode = info.external_attr >> 16
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            why = "an absolute path"
        elif ".." in parts:
            why = "a '..' component"
        elif stat.S_ISLNK(mode):
            why = "a symbolic link"
        elif not parts or parts[0] != stem:
            why = f"outside the {stem}/ folder"
        else:
            total += info.file_size
            if total > MAX_WEBLOG_BYTES:
                raise InvalidRequest(f"{zip_name} expands beyond {MAX_WEBLOG_BYTES} bytes: refused")
            continue
        raise InvalidRequest(f"{zip_name}: entry {name!r} is {why}: refused, nothing expanded")


# -- serving the cache over HTTP

# Every answer is sandboxed (no script runs, no cookie or storage of the
# cache's origin) and typed only as it says: a file that a message put in
# the cache (an .html or .svg of anyone's choosing) is shown, never run.
SECURITY_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    """What a person needs from the cache: the list of weblogs and each weblog,
    the products directories (the dashboard links them) and their files.

    Nothing outside the cache folder, no hidden (half-written) name, and no
    listing of the cache's top (it goes to weblogs/) or inside a weblog.
    """

    def end_headers(self):
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def send_head(self):
        real = os.path.realpath(self.translate_path(self.path))
        root = os.path.realpath(self.directory)
        if real != root and not real.startswith(root + os.sep):
            self.send_error(404, "Not in the cache")
            return None
        if any(part.startswith(".") for part in os.path.relpath(real, root).split(os.sep)
               if part != "."):
            self.send_error(404, "Not in the cache")
            return None
        if real == root:
            self.send_response(302)
            self.send_header("Location", f"/{WEBLOGS}/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return super().send_head()

    def list_directory(self, path):
        relative = Path(os.path.relpath(os.path.realpath(path), os.path.realpath(self.directory)))
        if relative.parts[:1] == (WEBLOGS,) and len(relative.parts) > 1:
            self.send_error(404, "No listing inside a weblog: open its index.html")
            return None
        names = sorted(entry.name + ("/" if entry.is_dir() else "")
                       for entry in os.scandir(path) if not entry.name.startswith("."))
        title = html.escape(f"/{relative.as_posix()}/")
        items = "".join(f'<li><a href="{urllib.parse.quote(name)}">{html.escape(name)}</a></li>'
                        for name in names)
        page = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>"
                f"<body><h1>{title}</h1><ul>{items}</ul></body></html>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        return io.BytesIO(page)

    def log_message(self, fmt, *args):
        log.debug("%s %s", self.address_string(), fmt % args)


class HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


def serve(root, host="127.0.0.1", port=8000):
    """Serve the cache folder ROOT from a background thread; returns the server."""
    handler = functools.partial(_Handler, directory=str(Path(root).resolve()))
    try:
        httpd = HTTPServer((host, port), handler)
    except OSError as exc:
        raise DrawsError(f"cannot serve the cache on {host}:{port}: {exc.strerror}") from None
    threading.Thread(target=httpd.serve_forever, daemon=True, name="cache-http").start()
    return httpd
