"""The cache folder (safe weblog expansion, rsync pulls, HTTP) and the cache replicator."""

import http.client
import logging
import stat
import urllib.request
import zipfile
from urllib.parse import quote

import pytest

from draws import config
from draws.actors.pipeline import Pipeline
from draws.actors.replicator import Replicator
from draws.archive import Ngas
from draws.bus import Bus
from draws.cache import Cache, TransferError, serve
from draws.exceptions import InvalidRequest, StorageError
from draws.runtime import Context
from support import fill, free_port, small_filesystem, wait_for

PROGID, UID, TS = "2015.1.00657.S", "uid://X1/X1/Xb0", "2018-07-24T09:49:20.902"
STEM = f"weblog-X1-X1-Xb0-{TS}"
PRODUCTS_DIR = "2015.1.00657.S_2018_07_24T09_49_20.902"


def make_zip(path, entries):
    """A zip at PATH; ENTRIES maps names to text, or to ('symlink', target)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in entries.items():
            if isinstance(content, tuple):
                info = zipfile.ZipInfo(name)
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, content[1])
            else:
                zf.writestr(name, content)
    return path


def run_pipeline(env, workdir):
    """A real Pipeline run (no delay); returns its products directory."""
    return Pipeline(config.load(env), workdir, PROGID, UID, "PipelineImaging", TS).run()


def test_weblog_expands_once_into_its_own_folder(tmp_path):
    cache = Cache(tmp_path / "cache")
    zip_path = make_zip(tmp_path / f"{STEM}.zip", {f"{STEM}/index.html": "<h1>hello</h1>",
                                                  f"{STEM}/img/plot.txt": "x"})
    target = cache.expand_weblog(zip_path)
    assert target == cache.weblogs / STEM
    assert (target / "index.html").read_text() == "<h1>hello</h1>"
    assert sorted(p.name for p in cache.weblogs.iterdir()) == [STEM]   # no temporary left
    assert cache.expand_weblog(zip_path) == target                      # idempotent


@pytest.mark.parametrize("entry", ["../evil.txt", "/evil.txt", f"{STEM}/../../evil.txt",
                                   "other/evil.txt", "symlink"])
def test_zip_slip_entries_are_refused(tmp_path, entry):
    cache = Cache(tmp_path / "cache")
    entries = {f"{STEM}/index.html": "ok"}
    if entry == "symlink":
        entries[f"{STEM}/evil.txt"] = ("symlink", "/etc/passwd")
    else:
        entries[entry] = "evil"
    zip_path = make_zip(tmp_path / f"{STEM}.zip", entries)
    with pytest.raises(InvalidRequest, match="refused"):
        cache.expand_weblog(zip_path)
    assert list(cache.weblogs.iterdir()) == []          # nothing expanded, not even index.html
    assert not list(tmp_path.rglob("evil.txt"))


def test_a_corrupt_zip_is_refused(tmp_path):
    cache = Cache(tmp_path / "cache")
    bad = tmp_path / f"{STEM}.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InvalidRequest, match="not a valid zip"):
        cache.expand_weblog(bad)
    assert list(cache.weblogs.iterdir()) == []


def test_rsync_pulls_directories_and_files_whole(env, tmp_path):
    eu = tmp_path / "eu-cache"
    run_pipeline(env, eu)
    weblog = eu / PRODUCTS_DIR / "SOUS/GOUS/uid___X1_X1_Xb0/products" / f"{STEM}.zip"
    (eu / weblog.name).write_bytes(weblog.read_bytes())
    jao = Cache(tmp_path / "jao-cache")

    pulled = jao.pull(str(eu), PRODUCTS_DIR, is_dir=True)
    assert pulled == jao.root / PRODUCTS_DIR
    assert sorted(p.relative_to(pulled) for p in pulled.rglob("*")) == \
        sorted(p.relative_to(eu / PRODUCTS_DIR) for p in (eu / PRODUCTS_DIR).rglob("*"))
    assert jao.pull(str(eu), weblog.name, is_dir=False).read_bytes() == weblog.read_bytes()
    assert sorted(p.name for p in jao.root.iterdir()) == sorted([PRODUCTS_DIR, weblog.name, "weblogs"])

    with pytest.raises(TransferError) as failure:
        jao.pull(str(eu), "2015.1.00657.S_missing", is_dir=True)
    assert "\n" not in str(failure.value) and "rsync" in str(failure.value)
    assert not (jao.root / "2015.1.00657.S_missing").exists()
    assert not [p for p in jao.root.iterdir() if p.name.startswith(".")]   # no half copy


def test_replicator_retries_rsync_then_fails_clearly(env, server, caplog):
    ctx = Context.start("replicated-cache", settings=config.load(env), log=False)
    replicator = Replicator(ctx, retries=2, backoff=0.01)
    with caplog.at_level(logging.WARNING), pytest.raises(TransferError, match="rsync"):
        replicator.pull("EU", "missing.zip", is_dir=False)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2 and "attempt 1 of 3" in retries[0].getMessage()
    with pytest.raises(InvalidRequest, match="DRAWS_NA_CACHE"):
        replicator.pull("NA", "x.zip", is_dir=False)


def get(port, path):
    """A raw GET (no client-side path normalisation); returns (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read().decode(errors="replace")


def test_http_serves_the_cache_and_nothing_else(tmp_path):
    cache = Cache(tmp_path / "cache")
    cache.expand_weblog(make_zip(tmp_path / f"{STEM}.zip", {f"{STEM}/index.html": "<h1>weblog</h1>"}))
    (tmp_path / "secret.txt").write_text("secret")
    (cache.root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (cache.root / "escape-dir").symlink_to(tmp_path)
    httpd = serve(cache.root, port=0)
    port = httpd.server_port
    try:
        assert httpd.server_address[0] == "127.0.0.1"
        status, listing = get(port, "/weblogs/")
        assert status == 200 and STEM in listing
        assert get(port, f"/weblogs/{STEM}/") == (200, "<h1>weblog</h1>")
        for escape in ("/../secret.txt", "/weblogs/../../secret.txt", "/%2e%2e/secret.txt",
                       "/escape.txt", "/escape-dir/secret.txt"):
            status, body = get(port, escape)
            assert status == 404 and "secret" not in body, escape
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_shows_what_a_person_needs_sandboxed_and_never_sniffed(tmp_path):
    cache = Cache(tmp_path / "cache")
    cache.expand_weblog(make_zip(tmp_path / f"{STEM}.zip", {
        f"{STEM}/index.html": "<h1>weblog</h1>", f"{STEM}/stage1/plot.svg": "<svg/>"}))
    products = cache.root / PRODUCTS_DIR
    (products / "SOUS").mkdir(parents=True)
    (products / "a<script>.txt").write_text("x")
    (cache.root / "page.html").write_text("<script>alert(1)</script>")   # as a cached.JAO message may put
    (cache.root / f".{PRODUCTS_DIR}.part-1234").mkdir()                     # half-written
    (cache.weblogs / f".{STEM}.part-1234").mkdir()
    httpd = serve(cache.root, port=0)
    conn = http.client.HTTPConnection("127.0.0.1", httpd.server_port, timeout=10)

    def fetch(path):
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        assert resp.getheader("Content-Security-Policy") == "sandbox", path
        assert resp.getheader("X-Content-Type-Options") == "nosniff", path
        return resp.status, resp, body
    try:
        status, resp, _ = fetch("/")                        # the top is not listed: weblogs/ is
        assert status == 302 and resp.getheader("Location") == "/weblogs/"
        status, _, listing = fetch("/weblogs/")
        assert status == 200 and f'href="{quote(STEM)}/"' in listing and ".part" not in listing
        status, resp, page = fetch(f"/weblogs/{STEM}/index.html")
        assert status == 200 and page == "<h1>weblog</h1>" and resp.getheader("Content-Type") == "text/html"
        assert fetch(f"/weblogs/{STEM}/")[2] == "<h1>weblog</h1>"
        assert fetch(f"/weblogs/{STEM}/stage1/plot.svg")[0] == 200
        assert fetch(f"/weblogs/{STEM}/stage1/")[0] == 404  # no listing inside a weblog
        status, _, listing = fetch(f"/{PRODUCTS_DIR}/")      # the dashboard links it
        assert status == 200 and 'href="SOUS/"' in listing and "a&lt;script&gt;.txt" in listing
        assert "<script>" not in listing
        assert fetch("/page.html")[0] == 200                # shown, sandboxed: its script never runs
        for hidden in (f"/.{PRODUCTS_DIR}.part-1234/", f"/weblogs/.{STEM}.part-1234/"):
            assert fetch(hidden)[0] == 404, hidden
        assert fetch("/no-such-file")[0] == 404
    finally:
        conn.close()
        httpd.shutdown()
        httpd.server_close()


def test_replicator_pulls_expands_archives_and_refuses_bad_names(env, server, actors, tmp_path):
    eu, jao = tmp_path / "eu-cache", tmp_path / "jao-cache"
    run_pipeline(env, eu)
    weblog = eu / PRODUCTS_DIR / "SOUS/GOUS/uid___X1_X1_Xb0/products" / f"{STEM}.zip"
    (eu / weblog.name).write_bytes(weblog.read_bytes())
    port = free_port()
    env_jao = {"DRAWS_EU_CACHE": "/nonexistent"}   # -euc must win over the environment
    replicator = actors.start("replicated-cache.py", "-euc", eu, "-p", port, env=env_jao)

    bus = Bus(server, actor="test")
    msgq = server.db("msgq")
    bad = [bus.send("cached.JAO", {"fileType": "productsdir", "cachedAt": "EU", "name": name})[0]
           for name in ("..", "/x", "-rf", "a/b")]
    bad.append(bus.send("cached.JAO", {"fileType": "weblog", "cachedAt": "Mars", "name": "w.zip"})[0])
    bad.append(bus.send("cached.JAO", ["not", "an", "object"])[0])
    good = [bus.send("cached.JAO", {"fileType": "productsdir", "cachedAt": "EU", "name": PRODUCTS_DIR})[0],
            bus.send("cached.JAO", {"fileType": "weblog", "cachedAt": "EU", "name": weblog.name})[0]]

    def handled(mid):
        doc = msgq.get(mid)
        return doc if doc.get("status") in ("done", "failed") else None

    for mid in bad:
        doc = wait_for(lambda: handled(mid), 30, what=f"message {mid} handled")
        assert doc["status"] == "failed" and "InvalidRequest" in doc["error"], doc
    for mid in good:
        doc = wait_for(lambda: handled(mid), 30, what=f"message {mid} handled")
        assert doc["status"] == "done", doc
    assert replicator.alive()
    assert "'-rf' is not a plain file or directory name" in replicator.log()

    pulled = jao / PRODUCTS_DIR
    assert sorted(p.relative_to(pulled) for p in pulled.rglob("*")) == \
        sorted(p.relative_to(eu / PRODUCTS_DIR) for p in (eu / PRODUCTS_DIR).rglob("*"))
    assert (jao / weblog.name).read_bytes() == weblog.read_bytes()
    index = jao / "weblogs" / STEM / "index.html"
    assert UID in index.read_text()
    stored = Ngas(server).get(weblog.name)
    assert stored and stored["size"] == weblog.stat().st_size
    assert Ngas(server).content(weblog.name) == weblog.read_bytes()
    assert not [p for p in jao.rglob(".*")]           # no temporary left behind
    assert not (tmp_path / "x").exists() and not (jao.parent / "a").exists()

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/weblogs/{STEM}/index.html", timeout=10) as r:
        assert UID in r.read().decode()


def test_two_ouss_run_at_the_same_millisecond_share_one_products_directory(env, tmp_path):
    """The name is progID_timestamp: the second OUS's subtree joins the first's, here and
    at the site that pulls it (found by the 500-OUS soak: the second was dropped)."""
    settings = config.load(env)
    other = "uid://X1/X1/Xb1"
    runs = [Pipeline(settings, tmp_path / f"work-{n}", PROGID, uid, "PipelineImaging", TS).run()
            for n, uid in enumerate((UID, other))]
    assert runs[0].name == runs[1].name == PRODUCTS_DIR
    arc, jao = Cache(tmp_path / "arc"), Cache(tmp_path / "jao")
    for n, run in enumerate(runs):
        arc.add(run)
        jao.pull(str(arc.root), PRODUCTS_DIR, is_dir=True)   # as each announcement arrives
        here = {p.relative_to(arc.root) for p in arc.root.rglob("*") if p.is_file()}
        there = {p.relative_to(jao.root) for p in jao.root.rglob("*") if p.is_file()}
        assert len(here) == 7 * (n + 1) and there == here   # report, 5 products, weblog per OUS
    for uid in ("uid___X1_X1_Xb0", "uid___X1_X1_Xb1"):
        assert len(list((jao.path(PRODUCTS_DIR) / "SOUS" / "GOUS" / uid / "products").iterdir())) == 7
    assert not [p for p in jao.root.iterdir() if p.name.startswith(".")]   # no temporary left


# -- out of space: one clear sentence naming the cache, nothing half-written left

def test_a_full_cache_says_so_and_keeps_nothing_half_written(env, tmp_path):
    made = run_pipeline(env, tmp_path / "work")
    source = Cache(tmp_path / "source")
    source.add(made)
    with small_filesystem(tmp_path / "small") as small:
        cache = Cache(small, site="EU")
        filler = fill(small)
        with pytest.raises(StorageError) as copied:
            cache.add(made)
        assert str(copied.value).startswith(f"no space left in the EU cache at {small}")
        with pytest.raises(StorageError) as pulled:
            cache.pull(str(source.root), made.name, is_dir=True)
        assert f"no space left in the EU cache at {small}" in str(pulled.value)
        assert sorted(p.name for p in small.iterdir()) == ["filler", "weblogs"]
        filler.unlink()
        assert cache.add(made).is_dir() and cache.pull(str(source.root), made.name, is_dir=True).is_dir()
