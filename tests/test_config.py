"""Settings from the environment and the YAML file; clear errors."""

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
