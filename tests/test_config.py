"""Settings from the environment and the YAML file; clear errors."""

import re
from pathlib import Path

import pytest

from draws import config
from draws.exceptions import ConfigError


def test_defaults():
    s = config.load({})
    assert s.couchdb_url == "http://127.0.0.1:5984"
    assert (s.delay_scale, s.failure_rate, s.seed) == (1.0, 0.1, None)


def test_environment(tmp_path):
    s = config.load({"DRAWS_LOCATION": "eu", "DRAWS_LOCAL_CACHE": "/c/eu",
                     "DRAWS_JAO_CACHE": "u@h:/c/jao", "DRAWS_DELAY_SCALE": "0",
                     "DRAWS_SEED": "7", "DRAWS_FAILURE_RATE": "1"})
    assert s.location == "EU"
    assert s.caches == {"JAO": "u@h:/c/jao", "EU": "/c/eu"}
    assert s.delay(5) == 0 and s.failure_rate == 1.0
    assert s.rng("x").random() == config.load({"DRAWS_SEED": "7"}).rng("x").random()


def test_yaml_file_is_overridden_by_the_environment(tmp_path, monkeypatch):
    f = tmp_path / "draws.yaml"
    f.write_text("location: NA\nlocal_cache: /from/yaml\ndelay_scale: 0.5\n")
    monkeypatch.setenv("DRAWS_CONFIG", str(f))
    s = config.load({"DRAWS_CONFIG": str(f), "DRAWS_LOCATION": "EA"})
    assert (s.location, s.local_cache, s.delay_scale) == ("EA", "/from/yaml", 0.5)


@pytest.mark.parametrize("env, message", [
    ({"DRAWS_LOCATION": "MARS"}, "DRAWS_LOCATION must be one of"),
    ({"DRAWS_DELAY_SCALE": "fast"}, "DRAWS_DELAY_SCALE must be a number"),
    ({"DRAWS_FAILURE_RATE": "2"}, "between 0 and 1"),
])
def test_bad_values(env, message):
    with pytest.raises(ConfigError, match=message):
        config.load(env)


def test_missing_required_setting_is_one_sentence():
    with pytest.raises(ConfigError, match=r"^DRAWS_LOCAL_CACHE is not set"):
        config.load({}).require("local_cache")


def test_an_actor_without_its_settings_says_so(actors, env):
    # xtss needs nothing; a missing DRAWS_CONFIG file is reported plainly
    res = actors.run("xtss.py", env={"DRAWS_CONFIG": "/nonexistent/draws.yaml"})
    assert res.returncode == 1
    assert "DRAWS_CONFIG names /nonexistent/draws.yaml, which does not exist" in res.stderr
    assert "Traceback" not in res.stderr


def test_every_setting_has_its_variable():
    s = config.load({"DRAWS_LOG_LEVEL": "debug", "DRAWS_CACHE_URL": "http://h:8001/", "DRAWS_VAR": "/v",
                     "DRAWS_RPC_TIMEOUT": "5", "DRAWS_CREDENTIALS_FILE": "/n"})
    assert (s.log_level, s.cache_url, s.var, s.rpc_timeout, s.credentials_file) == \
        ("DEBUG", "http://h:8001", "/v", 5.0, "/n")
    with pytest.raises(ConfigError, match="DRAWS_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR"):
        config.load({"DRAWS_LOG_LEVEL": "loud"})


def test_an_unknown_variable_is_named_once_and_ours_are_not(caplog, monkeypatch):
    monkeypatch.setattr(config, "_warned", set())
    env = {"DRAWS_LOCATON": "EU", "DRAWS_TEST_SERVER": "couchdb", "DRAWS_TEST_COUCHDB_ADMIN": "a",
           "DRAWS_FAULT_SEED": "3", "DRAWS_CHAOS_SEED": "4", "DRAWS_FUZZ_SEED": "5", "DRAWS_EU_CACHE": "/c"}
    config.load(env)
    config.load(env)
    said = [r.getMessage() for r in caplog.records if r.name == "draws.config"]
    assert said == ["DRAWS_LOCATON is not a DRAWS setting (misspelt?); it is ignored. "
                    "The settings are listed in README.md, Configuration"]


def test_every_draws_variable_the_project_names_is_known():
    # A new variable in the code or the docs must be a setting or listed in config.OTHER_VARIABLES.
    root = Path(__file__).resolve().parent.parent
    files = [p for pattern in ("*.py", "*.md", "*.js", "Makefile", "run")
             for p in root.rglob(pattern)
             if not {"node_modules", ".venv", ".git"} & set(p.relative_to(root).parts)
             and p != Path(__file__).resolve()]   # this file misspells on purpose
    names = {n for f in files for n in re.findall(r"DRAWS_[A-Z0-9_]+", f.read_text(errors="replace"))
             if not n.endswith("_")}   # DRAWS_TEST_…: a family, not a name
    assert "DRAWS_COUCHDB_URL" in names
    assert config.unknown_variables(names) == []


def test_an_actor_names_a_misspelt_variable(actors):
    res = actors.run("clear-all-dbs.py", env={"DRAWS_DELAY_SCAEL": "0"})
    assert res.returncode == 0, res.stderr
    assert "WARNING draws.config" not in res.stderr   # the one-line format names the actor
    assert "clear-all-dbs" in res.stderr and "DRAWS_DELAY_SCAEL is not a DRAWS setting" in res.stderr
