"""The Pipeline and the Pipeline Driver, each run as its own process."""

import base64
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

from draws import products
from draws.ous import EXECUTIVE_FLAG, StatusTable
from support import ROOT

PROGID, UID, RECIPE = "2015.1.00657.S", "uid://X1/X1/Xb0", "PipelineCalibration"
TS = "2018-07-24T09:49:20.902"


def run_module(module, *args, env, timeout=60):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=timeout)


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def expected_tree(uid, ts):
    top = products.products_dir(PROGID, ts)
    inner = f"{top}/{products.products_path(uid)}"
    parts = [top, f"{top}/SOUS", f"{top}/SOUS/GOUS", f"{top}/SOUS/GOUS/{products.products_path(uid).parts[2]}",
             inner]
    names = [products.report_name(uid, ts), products.weblog_name(uid, ts)] + products.product_names(uid, ts)
    return sorted(parts + [f"{inner}/{n}" for n in names])


def test_pipeline_creates_exactly_the_products_tree(env, tmp_path):
    work = tmp_path / "work"
    done = run_module("draws.actors.pipeline", "--workdir", work, "--timestamp", TS, "--", PROGID, UID, RECIPE,
                      env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"timestamp": TS, "productsDir": "2015.1.00657.S_2018_07_24T09_49_20.902"}
    assert tree(work) == expected_tree(UID, TS)

    folder = work / "2015.1.00657.S_2018_07_24T09_49_20.902/SOUS/GOUS/uid___X1_X1_Xb0/products"
    report = ET.parse(folder / f"pl-report-X1-X1-Xb0-{TS}.xml").getroot()
    assert report.tag == "PipelineAquaReport"
    assert report.findtext("ProjectStructure/ProposalCode") == PROGID
    assert report.findtext("ProjectStructure/OusEntityId") == UID
    assert report.findtext("QaSummary/ReportDate") == TS
    scores = [float(s.get("Score")) for s in report.iter("RepresentativeScore")]
    assert scores and all(0 <= s <= 1 for s in scores)
    for i in range(5):
        assert (folder / f"product-{i}-X1-X1-Xb0-{TS}.data").stat().st_size > 0
    with zipfile.ZipFile(folder / f"weblog-X1-X1-Xb0-{TS}.zip") as zf:
        assert zf.testzip() is None
        assert zf.namelist() == [f"weblog-X1-X1-Xb0-{TS}/index.html"]
        page = zf.read(zf.namelist()[0]).decode()
    assert "<html>" in page and UID in page and RECIPE in page


def test_pipeline_failure_leaves_no_products(env, tmp_path):
    work = tmp_path / "work"
    done = run_module("draws.actors.pipeline", "--workdir", work, "--", PROGID, UID, RECIPE,
                      env=dict(env, DRAWS_FAILURE_RATE="1"))
    assert done.returncode == 2
    assert "failed" in done.stderr   # and why, for its driver:
    assert json.loads(done.stdout) == {"error": f"processing of {UID} failed (simulated)"}
    assert list(work.iterdir()) == []


def test_pipeline_and_driver_refuse_option_like_values(env, tmp_path):
    for module in ("draws.actors.pipeline", "draws.actors.pipeline_driver"):
        done = run_module(module, "--", PROGID, "-rf", RECIPE, env=env)
        assert done.returncode != 0 and "'-rf' is not an OUS UID" in done.stderr, done.stderr
    done = run_module("draws.actors.pipeline_driver", "--", PROGID, UID, "ManualCalibration", env=env)
    assert done.returncode == 1 and "not a Pipeline recipe" in done.stderr


def processing(server, uid=UID, executive="EU"):
    status = StatusTable(server)
    status.reset(PROGID, uid, RECIPE)
    status.set_state(uid, "Processing")
    status.set_flag(uid, EXECUTIVE_FLAG, executive)
    return status


def eu_env(env, tmp_path):
    return dict(env, DRAWS_LOCATION="EU", DRAWS_LOCAL_CACHE=str(tmp_path / "eu-cache"))


def messages(server):
    return [d for d in server.db("msgq").find({"selector": {"$regex": "^(cached|pipeline)"}})]


def test_driver_caches_announces_and_sets_ready_for_review(env, server, actors, tmp_path):
    actors.start("xtss.py")
    status = processing(server)
    done = run_module("draws.actors.pipeline_driver", "--", PROGID, UID, RECIPE, env=eu_env(env, tmp_path))
    assert done.returncode == 0, done.stderr
    assert status.get(UID)["state"] == "ReadyForReview"

    sent = messages(server)
    report = [m for m in sent if m["selector"] == "pipeline.report.JAO"]
    assert len(report) == 1
    body = report[0]["body"]
    ts, name = body["timestamp"], body["productsDir"]
    assert body["ousUID"] == UID and body["source"] == "EU"
    assert name == products.products_dir(PROGID, ts)
    assert ET.fromstring(base64.b64decode(body["report"])).findtext("ProjectStructure/OusEntityId") == UID

    weblog = products.weblog_name(UID, ts)
    cached = sorted((m["selector"], m["body"]["fileType"], m["body"]["cachedAt"], m["body"]["name"])
                    for m in sent if m["selector"].startswith("cached."))
    assert cached == [("cached.EU", "weblog", "EU", weblog),
                      ("cached.JAO", "productsdir", "EU", name),
                      ("cached.JAO", "weblog", "EU", weblog)]

    eu = tmp_path / "eu-cache"
    assert sorted(p.name for p in eu.iterdir()) == sorted([name, weblog, "weblogs"])
    assert tree(eu / name) == [p[len(name) + 1:] for p in expected_tree(UID, ts)[1:]]
    assert (eu / weblog).read_bytes() == \
        (eu / name / products.products_path(UID) / weblog).read_bytes()
    assert UID in (eu / "weblogs" / products.weblog_stem(UID, ts) / "index.html").read_text()
    assert not (tmp_path / "jao-cache" / name).exists()   # the replicator's job, not the driver's


def test_driver_failure_sets_processing_problem(env, server, actors, tmp_path):
    actors.start("xtss.py")
    status = processing(server)
    done = run_module("draws.actors.pipeline_driver", "--", PROGID, UID, RECIPE,
                      env=dict(eu_env(env, tmp_path), DRAWS_FAILURE_RATE="1"))
    assert done.returncode == 0, done.stderr
    assert status.get(UID)["state"] == "ProcessingProblem"
    assert messages(server) == []
    assert sorted(p.name for p in (tmp_path / "eu-cache").iterdir()) == ["weblogs"]


def test_driver_ignores_a_stale_request(env, server, actors, tmp_path):
    actors.start("xtss.py")
    status = processing(server)
    status.set_state(UID, "ReadyForReview")
    other = "uid://X1/X1/Xb1"
    processing(server, other, executive="NA")
    for uid in (UID, other):
        done = run_module("draws.actors.pipeline_driver", "--", PROGID, uid, RECIPE, env=eu_env(env, tmp_path))
        assert done.returncode == 0 and "nothing to do" in done.stderr, done.stderr
    assert status.get(UID)["state"] == "ReadyForReview"
    assert status.get(other)["state"] == "Processing"
    assert messages(server) == []
