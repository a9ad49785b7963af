"""Settings, from the environment (spec §6, §8) and an optional YAML file.

The YAML file (``$DRAWS_CONFIG``, or ``draws.yaml`` in the current folder)
holds the same settings under their environment names, lower-case and
without the ``DRAWS_`` prefix, for example::

    location: EU
    local_cache: /tmp/draws-eu-cache
    couchdb_url: http://127.0.0.1:5984

The environment wins over the file.
"""

import dataclasses
import logging
import os
import random
import time
from pathlib import Path


from .exceptions import ConfigError

LOCATIONS = ("JAO", "EA", "EU", "NA")
ARCS = ("EA", "EU", "NA")
DEFAULT_COUCHDB_URL = "http://127.0.0.1:5984"
DEFAULT_CACHE_URL = "http://localhost:8000"
SERVER_KINDS = ("pouchdb", "couchdb")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# DRAWS_* variables that are not settings of the system but are ours all the
# same: read by the tests, the tools or the embedded server's wrapper. Any
# other DRAWS_* name is reported as unknown (a misspelt setting, probably).
OTHER_VARIABLES = ("DRAWS_CONFIG", "DRAWS_REQUEST_COUNT_FILE", "DRAWS_FAULT_SEED",
                   "DRAWS_FUZZ_SEED", "DRAWS_CHAOS_SEED", "DRAWS_CHAOS_EPISODES")
OTHER_PREFIXES = ("DRAWS_TEST_",)   # the test suite's own: DRAWS_TEST_SERVER, DRAWS_TEST_COUCHDB_*

log = logging.getLogger("draws.config")
_warned = set()   # the unknown names already reported: once per process is enough


@dataclasses.dataclass
class Settings:
    location: str = None
    local_cache: str = None
    caches: dict = dataclasses.field(default_factory=dict)  # site -> path or user@host:path
    couchdb_url: str = DEFAULT_COUCHDB_URL
    couchdb_release: str = None   # an unpacked Apache CouchDB 3 release, for `make server`
    test_server: str = "pouchdb"  # the kind of server the test suite starts (SERVER_KINDS)
    delay_scale: float = 1.0
    failure_rate: float = 0.1
    seed: int = None
    rpc_timeout: float = 300.0   # patient: a reply may cross a replication link that is down
    credentials_file: str = None   # netrc-style, for other sites' servers (None: ~/.netrc)
    msgq_retention: float = 7 * 86400   # seconds handled messages stay in msgq (0: forever)
    log_level: str = "INFO"
    cache_url: str = DEFAULT_CACHE_URL   # where AQUA/QA2's weblog links point
    var: str = str(Path(__file__).resolve().parent.parent / "var")   # `make server`'s data, pid file and logs

    def require(self, *names):
        """Raise a ConfigError naming the first missing setting."""
        for name in names:
            if not getattr(self, name):
                var = "DRAWS_" + name.upper()
                raise ConfigError(f"{var} is not set: export {var}=... (see README.md)")
        return self

    def site_of_cache(self, path):
        """The site whose cache is at PATH (a path, as the original's Pipeline Driver
        names its site in a report, spec §9), or None if no one site's is there."""
        def where(location):   # user@host:path -> path (rsync's rule: a colon before any slash)
            head, sep, tail = location.partition(":")
            return tail if sep and "/" not in head else location
        found = {site for site, location in self.caches.items()
                 if os.path.normpath(where(location)) == os.path.normpath(path)}
        return found.pop() if len(found) == 1 else None

    def delay(self, seconds):
        """A simulated wait, scaled by DRAWS_DELAY_SCALE."""
        return max(0.0, seconds * self.delay_scale)

    def pause(self, seconds):
        """Wait delay(SECONDS); not at all when that is nothing (a loaded host makes even
        time.sleep(0) cost milliseconds, thousands of times over in draws.history)."""
        wait = self.delay(seconds)
        if wait:
            time.sleep(wait)

    def rng(self, salt=""):
        """A random generator: repeatable when DRAWS_SEED is set."""
        if self.seed is None:
            return random.Random()
        return random.Random(f"{self.seed}:{salt}")


def _load_yaml():
    path = os.environ.get("DRAWS_CONFIG")
    candidate = Path(path) if path else Path("draws.yaml")
    if not candidate.exists():
        if path:
            raise ConfigError(f"DRAWS_CONFIG names {path}, which does not exist")
        return {}
    import yaml   # here: most processes have no file to read (and start faster without it)
    try:
        data = yaml.safe_load(candidate.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{candidate} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{candidate} must hold a mapping of settings")
    return {str(k).lower(): v for k, v in data.items()}


def _choice(name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"DRAWS_{name.upper()} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _number(name, raw, kind, low=None, high=None):
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"DRAWS_{name.upper()} must be a number, not {raw!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"DRAWS_{name.upper()} must be between {low} and {high}, not {raw!r}")
    return value


def duration(text):
    """Seconds in a duration like 90s, 30m, 12h, 7d or 2w (a bare number: seconds)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = str(text).strip()
    try:
        value = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except (ValueError, IndexError):
        raise ConfigError(f"{text!r} is not a duration like 90s, 30m, 12h or 7d") from None
    if value < 0:
        raise ConfigError(f"{text!r}: a duration is not negative")
    return value


def known_variables():
    """Every DRAWS_* name of ours: the settings' and OTHER_VARIABLES."""
    names = {f"DRAWS_{f.name.upper()}" for f in dataclasses.fields(Settings) if f.name != "caches"}
    return names | {f"DRAWS_{site}_CACHE" for site in LOCATIONS} | set(OTHER_VARIABLES)


def unknown_variables(names):
    """The DRAWS_* NAMES that are none of ours, sorted."""
    known = known_variables()
    return sorted(n for n in names if n.startswith("DRAWS_") and n not in known
                  and not n.startswith(OTHER_PREFIXES))


def load(env=None):
    """Settings from the YAML file overlaid with the environment.

    An unknown DRAWS_* variable (or key of the file) is named in a warning:
    a misspelt setting would otherwise be silently ignored.
    """
    env = os.environ if env is None else env
    raw = _load_yaml()
    for name in unknown_variables([f"DRAWS_{key.upper()}" for key in raw] + list(env)):
        if name in _warned:
            continue
        _warned.add(name)
        log.warning("%s is not a DRAWS setting (misspelt?); it is ignored. "
                    "The settings are listed in README.md, Configuration", name)
    for key, value in env.items():
        if key.startswith("DRAWS_") and key != "DRAWS_CONFIG":
            raw[key[len("DRAWS_"):].lower()] = value

    s = Settings()
    location = raw.get("location")
    if location:
        location = str(location).upper()
        if location not in LOCATIONS:
            raise ConfigError(f"DRAWS_LOCATION must be one of {', '.join(LOCATIONS)}, not {location!r}")
        s.location = location
    if raw.get("local_cache"):
        s.local_cache = str(raw["local_cache"])
    for site in LOCATIONS:
        where = raw.get(f"{site.lower()}_cache")
        if where:
            s.caches[site] = str(where)
    if s.location and s.local_cache and s.location not in s.caches:
        s.caches[s.location] = s.local_cache
    if raw.get("couchdb_url"):
        s.couchdb_url = str(raw["couchdb_url"]).rstrip("/")
    if raw.get("credentials_file"):
        s.credentials_file = str(raw["credentials_file"])
    if raw.get("log_level"):
        s.log_level = _choice("log_level", str(raw["log_level"]).upper(), LOG_LEVELS)
    if raw.get("cache_url"):
        s.cache_url = str(raw["cache_url"]).rstrip("/")
    if raw.get("var"):
        s.var = str(raw["var"])
    if raw.get("couchdb_release"):
        s.couchdb_release = str(raw["couchdb_release"])
    if raw.get("test_server"):
        s.test_server = _choice("test_server", str(raw["test_server"]).lower(), SERVER_KINDS)
    if raw.get("delay_scale") not in (None, ""):
        s.delay_scale = _number("delay_scale", raw["delay_scale"], float, 0)
    if raw.get("failure_rate") not in (None, ""):
        s.failure_rate = _number("failure_rate", raw["failure_rate"], float, 0, 1)
    if raw.get("seed") not in (None, ""):
        s.seed = _number("seed", raw["seed"], int)
    if raw.get("rpc_timeout") not in (None, ""):
        s.rpc_timeout = _number("rpc_timeout", raw["rpc_timeout"], float, 0.1)
    if raw.get("msgq_retention") not in (None, ""):
        try:
            s.msgq_retention = duration(raw["msgq_retention"])
        except ConfigError as exc:
            raise ConfigError(f"DRAWS_MSGQ_RETENTION: {exc}") from None
    return s
