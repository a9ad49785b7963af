"""The whole life cycle on one host: every actor a real process (spec §5)."""

import filecmp
from pathlib import Path

import pytest
import requests

from draws import products, tables
from draws.archive import Ngas
from draws.ous import EXECUTIVE_FLAG, StatusTable
from support import free_port, wait_for

PROG = "2015.1.00657.S"
UID = "uid://X1/X1/Xb0"


class Site:
    """Every single-host actor but DRA and AQUA/QA2, which the tests drive."""

    def __init__(self, actors, env, server, workers=1):
        self.actors, self.env, self.server = actors, env, server
        self.jao_cache, self.eu_cache = Path(env["DRAWS_JAO_CACHE"]), Path(env["DRAWS_EU_CACHE"])
        self.jao_port, self.eu_port = free_port(), free_port()
        self.jao = {"DRAWS_LOCATION": "JAO", "DRAWS_LOCAL_CACHE": str(self.jao_cache)}
        self.eu = {"DRAWS_LOCATION": "EU", "DRAWS_LOCAL_CACHE": str(self.eu_cache)}
        self.status = StatusTable(server)
        actors.start("xtss.py", env=self.jao)
        actors.start("aqua-batch-helper.py", env=self.jao)
        self.torque = actors.start("torque-maui.py", "-x", workers, env=self.eu)
        actors.start("replicated-cache.py", "-p", self.eu_port, env=self.eu, name="cache-eu")
        actors.start("replicated-cache.py", "-euc", self.eu_cache, "-p", self.jao_port,
                     env=self.jao, name="cache-jao")
        actors.start("product-ingestor.py", env=self.jao)
        actors.start("data-tracker.py", env=self.eu)

    def launch(self, uid, *args):
        res = self.actors.run("launcher.py", PROG, uid, *args, env=self.jao)
        assert res.returncode == 0, res.stderr

    def state(self, uid):
        doc = self.status.get_or_none(uid)
        return doc and doc["state"]

    def wait_state(self, uid, *states, timeout=120):
        return wait_for(lambda: self.state(uid) in states, timeout=timeout,
                        what=lambda: f"{uid} to reach {' or '.join(states)} (it is {self.state(uid)})")

    def count(self, table, **selector):
        return len(self.server.db(table).find(selector or {"_id": {"$gt": None}}))

    def unconsumed(self):
        return self.server.db(tables.MSGQ).find({"consumed": False})


@pytest.fixture
def site(actors, env, server):
    return Site(actors, env, server)


def refresh_until(prompt, text):
    """Press Enter at an interactive prompt (refresh) until TEXT is listed."""
    if text in prompt.log():
        return True
    prompt.write("\n")
    return False


def tree(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


def assert_delivered(site, uid, reports=1):
    """The end state of spec §5 for one OUS (and the tables' totals)."""
    doc = site.status.get(uid)
    assert doc["state"] == "Delivered"
    assert not doc["substate"]
    assert EXECUTIVE_FLAG not in doc["flags"]
    report = site.server.db(tables.REPORTS).find({"ousUID": uid})
    assert len(report) == reports
    delivery = site.server.db(tables.DELIVERY).get(doc["_id"])
    assert delivery["complete"] is True and len(delivery["dataProducts"]) == 5
    latest = max(report, key=lambda r: r["timestamp"])
    assert delivery["dataProducts"] == sorted(products.product_names(uid, latest["timestamp"]))
    ngas = Ngas(site.server)   # looks a file up by its name, whatever the form of its id
    for name in delivery["dataProducts"] + [products.weblog_name(uid, latest["timestamp"])]:
        assert ngas.get(name)["size"] > 0
    assert len(site.server.db(tables.METADATA).find({"ousUID": uid})) == 5
    return latest


def assert_cached(site, uid, report):
    """The cache part of spec §5: the products directory of REPORT's run the same at
    JAO and at the ARC, the weblog browsable at both. Returns the directory's name."""
    pdir = products.products_dir(PROG, report["timestamp"])
    assert tree(site.jao_cache / pdir) == tree(site.eu_cache / pdir)
    cmp = filecmp.dircmp(site.jao_cache / pdir, site.eu_cache / pdir)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
    stem = products.weblog_stem(uid, report["timestamp"])
    for port in (site.jao_port, site.eu_port):
        page = requests.get(f"http://127.0.0.1:{port}/weblogs/{stem}/index.html", timeout=10)
        assert page.status_code == 200 and uid in page.text
    return pdir


def test_one_ous_through_the_prompts_to_delivered(site, actors):
    dra = actors.start("dra.py", "-a", "EU", env=site.jao, stdin="pipe")
    qa2 = actors.start("aqua-qa2.py", "--cache-url", f"http://127.0.0.1:{site.jao_port}",
                       env=site.jao, stdin="pipe")
    site.launch(UID)                                       # no recipe: the Batch Helper gives one
    doc = wait_for(lambda: (lambda d: d if d and d["substate"] else None)(site.status.get_or_none(UID)),
                   what="a recipe")
    if doc["substate"] == "ManualCalibration":             # never processed: give it a Pipeline one
        site.launch(UID, "PipelineCalibration")
    wait_for(lambda: refresh_until(dra, UID), interval=0.5, what="DRA to list the OUS")
    dra.write(f"{UID}\n")
    site.wait_state(UID, "Processing", "ReadyForReview")
    dra.close_stdin()
    wait_for(lambda: dra.proc.poll() == 0, what="DRA to exit 0 at end of input")

    site.wait_state(UID, "ReadyForReview")
    wait_for(lambda: site.count(tables.REPORTS) == 1, what="the report stored by AQUA/QA2")
    wait_for(lambda: refresh_until(qa2, UID), interval=0.5, what="QA2 to list the OUS")
    qa2.write(f"{UID}\n")
    wait_for(lambda: "[F]ail, [P]ass, [S]emipass, [C]ancel" in qa2.log(), what="the QA2 question")
    assert "PipelineAquaReport" in qa2.log()
    assert f"http://127.0.0.1:{site.jao_port}/weblogs/" in qa2.log()
    qa2.write("P\n")
    site.wait_state(UID, "Delivered")
    qa2.close_stdin()
    wait_for(lambda: qa2.proc.poll() == 0, what="QA2 to exit 0 at end of input")

    report = assert_delivered(site, UID)
    assert site.count(tables.REPORTS) == 1 and site.count(tables.DELIVERY) == 1
    assert site.count(tables.NGAS) == 6 and site.count(tables.METADATA) == 5
    wait_for(lambda: not site.unconsumed(), what="no unconsumed messages")

    pdir = assert_cached(site, UID, report)
    listing = requests.get(f"http://127.0.0.1:{site.jao_port}/{pdir}/", timeout=10)   # the dashboard's link
    assert listing.status_code == 200 and "SOUS/" in listing.text


def test_pipeline_failure_then_launch_again(site, actors):
    site.torque.kill()
    failing = actors.start("torque-maui.py", env=dict(site.eu, DRAWS_FAILURE_RATE="1"))
    site.launch(UID, "PipelineImaging", "EU")
    site.wait_state(UID, "ProcessingProblem")
    assert site.count(tables.REPORTS) == 0
    failing.kill()
    actors.start("torque-maui.py", env=site.eu)
    actors.start("aqua-qa2.py", "--auto", "P", env=site.jao)
    site.launch(UID, "PipelineImaging", "EU")
    site.wait_state(UID, "Delivered")
    assert_delivered(site, UID)
    history = [h["state"] for h in site.status.get(UID)["history"]]
    assert history[:4] == ["ReadyForProcessing", "Processing", "ProcessingProblem", "ReadyForProcessing"]


def test_manual_recipe_is_never_processed(site, actors):
    actors.start("dra.py", "-a", "EU", "--auto", env=site.jao)
    actors.start("aqua-qa2.py", "--auto", "P", env=site.jao)
    manual, control = "uid://X1/X1/Xm1", "uid://X1/X1/Xc1"
    site.launch(manual, "ManualCalibration")
    site.launch(control, "PipelineCalibration")
    site.wait_state(control, "Delivered")
    doc = site.status.get(manual)
    assert (doc["state"], doc["substate"], doc["flags"]) == ("ReadyForProcessing", "ManualCalibration", {})
    assert site.server.db(tables.MSGQ).find({"body.ousUID": manual}) == []


def test_qa2_fail_sends_the_ous_back_and_it_is_processed_again(site, actors):
    site.launch(UID, "PipelineCalibration", "EU")
    site.wait_state(UID, "ReadyForReview")
    qa2 = actors.start("aqua-qa2.py", env=site.jao, stdin="pipe")
    wait_for(lambda: site.count(tables.REPORTS) == 1, what="the report")
    qa2.write(f"{UID}\nC\n")                      # Cancel: back to ReadyForReview
    wait_for(lambda: [h["state"] for h in site.status.get(UID)["history"]][-2:]
             == ["Reviewing", "ReadyForReview"], what="Cancel")
    qa2.write(f"{UID}\nF\n")                      # Fail: ReadyForProcessing, recipe cleared
    site.wait_state(UID, "ReadyForProcessing")
    doc = wait_for(lambda: (lambda d: d if EXECUTIVE_FLAG not in d["flags"] else None)(site.status.get(UID)),
                   what="executive cleared")
    history = doc["history"]
    assert any(h["state"] == "ReadyForProcessing" and not h["substate"] for h in history[-3:])
    qa2.close_stdin()
    site.wait_state(UID, "ReadyForProcessing")    # the Batch Helper gives it a recipe again
    wait_for(lambda: site.status.get(UID)["substate"], what="a new recipe")


def test_going_to_the_movies_ten_ouss(actors, env, server):
    site = Site(actors, env, server, workers=2)
    actors.start("aqua-qa2.py", "--auto", "P", env=site.jao)
    uids = [f"uid://X1/X1/Xb{i}" for i in "12345678ab"]
    for uid in uids:
        site.launch(uid, "PipelineCalibration", "EU")
    for uid in uids:
        site.wait_state(uid, "Delivered", timeout=240)
    for uid in uids:
        assert_delivered(site, uid)
    assert site.count(tables.NGAS) == 60
    assert site.count(tables.REPORTS) == 10
    assert site.count(tables.METADATA) == 50
    assert site.count(tables.DELIVERY, complete=True) == 10
    wait_for(lambda: not site.unconsumed(), what="no unconsumed messages")
    assert not site.server.db(tables.MSGQ).find({"status": "failed"})
