"""The Pipeline (mock): one run creates the products tree of spec §4.

    python -m draws.actors.pipeline [--workdir DIR] [--timestamp TS] -- PROGID OUSUID RECIPE

It takes a random 3-8 s (times DRAWS_DELAY_SCALE) and fails, with exit
status 2 and no products, with probability DRAWS_FAILURE_RATE (or when its
working folder is full). On success it prints one JSON line,
``{"timestamp": ..., "productsDir": ...}``; on failure ``{"error": reason}``. The products
are written under a temporary name and renamed, so the products directory
appears complete or not at all.
"""

import argparse
import html
import io
import json
import shutil
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path


from .. import config, products
from ..timestamps import timestamp as now_timestamp
from ..exceptions import DrawsError, StorageError
from ..ous import PIPELINE_RECIPES, check_progid, check_uid
from ..runtime import run_main, setup_logging

FAILED = 2
STAGES = ("hifa_importdata", "hifa_flagdata", "hifa_bandpass", "hifa_gfluxscale",
          "hifa_timegaincal", "hif_applycal", "hif_makeimages")


class PipelineFailure(DrawsError):
    """The (simulated) processing failed."""


def report_xml(progid, uid, recipe, run_timestamp, scores):
    """A small PipelineAquaReport document (bytes)."""
    root = ET.Element("PipelineAquaReport")
    project = ET.SubElement(root, "ProjectStructure")
    ET.SubElement(project, "ProposalCode").text = progid
    ET.SubElement(project, "OusEntityId").text = uid
    summary = ET.SubElement(root, "QaSummary")
    ET.SubElement(summary, "ReportDate").text = run_timestamp
    ET.SubElement(summary, "ProcessingRecipe").text = recipe
    ET.SubElement(summary, "RepresentativeScore", Score=f"{min(scores.values()):.2f}")
    per_stage = ET.SubElement(root, "QaPerStage")
    for number, (stage, score) in enumerate(scores.items(), 1):
        element = ET.SubElement(per_stage, "Stage", Number=str(number), Name=stage)
        ET.SubElement(element, "RepresentativeScore", Score=f"{score:.2f}")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def weblog_html(progid, uid, recipe, run_timestamp, scores):
    rows = "\n".join(f"<tr><td>{n}</td><td>{html.escape(stage)}</td><td>{score:.2f}</td></tr>"
                     for n, (stage, score) in enumerate(scores.items(), 1))
    e = html.escape
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Pipeline weblog {e(uid)}</title></head>
<body>
<h1>Pipeline weblog</h1>
<p>ObsUnitSet <b>{e(uid)}</b> of program <b>{e(progid)}</b>,
recipe <b>{e(recipe)}</b>, run at {e(run_timestamp)} UTC.</p>
<table border="1"><tr><th>#</th><th>stage</th><th>QA score</th></tr>
{rows}
</table>
</body></html>
"""


def weblog_zip(stem, page, when=None):
    """The weblog zip's bytes: STEM/index.html, dated WHEN (a time tuple; default now)."""
    buffer = io.BytesIO()
    entry = zipfile.ZipInfo(f"{stem}/index.html", date_time=(when or time.localtime())[:6])
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(entry, page, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


class Pipeline:
    """One Pipeline run of UID in WORKDIR. Built from the settings alone, not a Context:
    it talks to no CouchDB, and one process starts per OUS (see parse)."""

    def __init__(self, settings, workdir, progid, uid, recipe, run_timestamp):
        self.settings = settings
        self.workdir = Path(workdir)
        self.progid, self.uid, self.recipe, self.run_timestamp = progid, uid, recipe, run_timestamp

    def run(self):
        """The products directory made, or PipelineFailure."""
        settings, progid, uid, recipe, run_timestamp = (
            self.settings, self.progid, self.uid, self.recipe, self.run_timestamp)
        rng = settings.rng(f"pipeline:{uid}:{run_timestamp}")
        time.sleep(settings.delay(rng.uniform(3, 8)))
        if rng.random() < settings.failure_rate:
            raise PipelineFailure(f"processing of {uid} failed (simulated)")

        scores = {stage: round(rng.uniform(0.5, 1.0), 2) for stage in STAGES}
        name = products.products_dir(progid, run_timestamp)
        workdir = self.workdir
        temp = workdir / f".{name}.part"
        folder = temp / products.products_path(uid)
        try:
            with StorageError.wrap(f"the Pipeline's working folder {workdir}",
                                   f"writing the products of {uid}"):
                folder.mkdir(parents=True)
                self._write(folder, scores, rng)
                temp.rename(workdir / name)
        finally:
            shutil.rmtree(temp, ignore_errors=True)   # left only if something above failed
        return workdir / name

    def _write(self, folder, scores, rng):
        """The report, the products and the weblog zip of the run, in FOLDER."""
        progid, uid, recipe, run_timestamp = self.progid, self.uid, self.recipe, self.run_timestamp
        (folder / products.report_name(uid, run_timestamp)).write_bytes(
            report_xml(progid, uid, recipe, run_timestamp, scores))
        for i, product in enumerate(products.product_names(uid, run_timestamp)):
            (folder / product).write_bytes(
                f"product {i} of {uid} ({progid}, {recipe}), run {run_timestamp}\n".encode()
                + rng.randbytes(1024))
        stem = products.weblog_stem(uid, run_timestamp)
        (folder / products.weblog_name(uid, run_timestamp)).write_bytes(
            weblog_zip(stem, weblog_html(progid, uid, recipe, run_timestamp, scores)))


def parse(argv=None):
    # argparse, not click: one Pipeline process starts per OUS, and click
    # alone would be a third of its start-up time.
    parser = argparse.ArgumentParser(prog="python -m draws.actors.pipeline",
                                     description="The Pipeline (mock): one run of one OUS.")
    parser.add_argument("--workdir", default=".", help="where to create the products directory (default: .)")
    parser.add_argument("--timestamp", dest="run_timestamp", help="the run's timestamp (default: now)")
    parser.add_argument("progid")
    parser.add_argument("ousuid")
    parser.add_argument("recipe", choices=PIPELINE_RECIPES)
    return parser.parse_args(argv)


@run_main("pipeline")
def main(argv=None):
    args = parse(argv)
    log = setup_logging("pipeline")
    check_progid(args.progid)
    check_uid(args.ousuid)
    run_timestamp = products.check_timestamp(args.run_timestamp or now_timestamp())
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    settings = config.load()
    log.info("processing %s (%s) with %s", args.ousuid, args.progid, args.recipe)
    try:
        made = Pipeline(settings, args.workdir, args.progid, args.ousuid, args.recipe, run_timestamp).run()
    except (PipelineFailure, StorageError) as exc:
        log.error("%s", exc)
        print(json.dumps({"error": str(exc)}), flush=True)   # for the driver: why
        return FAILED
    log.info("products in %s", made)
    print(json.dumps({"timestamp": run_timestamp, "productsDir": made.name}), flush=True)


if __name__ == "__main__":
    main()
