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
import os
import random
from pathlib import Path


from .exceptions import ConfigError

LOCATIONS = ("JAO", "EA", "EU", "NA")
ARCS = ("EA", "EU", "NA")
DEFAULT_COUCHDB_URL = "http://127.0.0.1:5984"
SERVER_KINDS = ("pouchdb", "couchdb")


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

    def require(self, *names):
        """Raise a ConfigError naming the first missing setting."""
        for name in names:
            if not getattr(self, name):
                var = "DRAWS_" + name.upper()
                raise ConfigError(f"{var} is not set: export {var}=... (see README.md)")
        return self

    def cache_of(self, site):
        """Where SITE's cache is (path or rsync address), or None."""
        return self.caches.get(site)

    def delay(self, seconds):
        """A simulated wait, scaled by DRAWS_DELAY_SCALE."""
        return max(0.0, seconds * self.delay_scale)

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


def _number(name, raw, kind, low=None, high=None):
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"DRAWS_{name.upper()} must be a number, not {raw!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"DRAWS_{name.upper()} must be between {low} and {high}, not {raw!r}")
    return value


def load(env=None):
    """Settings from the YAML file overlaid with the environment."""
    env = os.environ if env is None else env
    raw = _load_yaml()
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
    if raw.get("couchdb_release"):
        s.couchdb_release = str(raw["couchdb_release"])
    if raw.get("test_server"):
        s.test_server = str(raw["test_server"]).lower()
        if s.test_server not in SERVER_KINDS:
            raise ConfigError(f"DRAWS_TEST_SERVER must be one of {', '.join(SERVER_KINDS)}, "
                              f"not {raw['test_server']!r}")
    if raw.get("delay_scale") not in (None, ""):
        s.delay_scale = _number("delay_scale", raw["delay_scale"], float, 0)
    if raw.get("failure_rate") not in (None, ""):
        s.failure_rate = _number("failure_rate", raw["failure_rate"], float, 0, 1)
    if raw.get("seed") not in (None, ""):
        s.seed = _number("seed", raw["seed"], int)
    if raw.get("rpc_timeout") not in (None, ""):
        s.rpc_timeout = _number("rpc_timeout", raw["rpc_timeout"], float, 0.1)
    return s
