"""A real browser: headless Chromium shows a state change without a reload, and pages fit the screen."""

import shutil
import threading
import time

import pytest
import requests

from werkzeug.serving import make_server

from dashboard import create_app
from draws import tables
from draws.couch import split_credentials
from draws.timestamps import timestamp
from draws.ous import EXECUTIVE_FLAG, STATES, StatusTable, encode_uid
from support import free_port, once, wait_for
from test_dashboard import PROGID, delivered_ous

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
                                 reason="Debian's chromium and chromium-driver are not installed")]


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                "--window-size=1600,1200"):
        options.add_argument(arg)
    # Never let Selenium fetch a driver or browser: Debian's are the ones we use.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def column_text(driver, state):
    return driver.find_element(By.CSS_SELECTOR, f"#columns .column.state-{state}").text


def test_page_follows_a_state_change_without_reload(actors, server, browser, tmp_path, couch_url):
    delivered_ous(server)
    status = StatusTable(server)
    uid = "uid://X1/X1/Xc1"
    status.reset(PROGID, uid, "PipelineCalibration")
    server.db(tables.STATUS).put({"_id": "evil", "entityId": "uid://<script>window.pwned=1</script>",
                                  "progID": PROGID, "state": "Reviewing", "substate": "<b>bold</b>",
                                  "flags": {}, "timestamp": timestamp(), "history": []})
    port = free_port()
    dashboard = actors.start("dashboard/server.py", "--port", port)
    login = split_credentials(couch_url)[1]   # asked for on an Apache CouchDB run (CouchDB's admin)
    url = f"http://127.0.0.1:{port}/"
    wait_for(lambda: requests.get(url + "api/health", auth=login, timeout=2).ok, 30, what="the dashboard to answer")

    browser.get(url.replace("://", f"://{login[0]}:{login[1]}@") if login else url)
    wait_for(lambda: browser.find_element(By.ID, "live").text == "live", 20, what="the live stream")
    browser.execute_script("window.notReloaded = true;")
    assert uid in column_text(browser, "ReadyForProcessing")
    assert uid not in column_text(browser, "Processing")
    reviewing = column_text(browser, "Reviewing")
    assert "uid://<script>window.pwned=1</script>" in reviewing and "<b>bold</b>" in reviewing
    assert browser.execute_script("return window.pwned") is None

    started = time.monotonic()
    status.set_state(uid, "Processing")
    wait_for(lambda: uid in column_text(browser, "Processing"), 10, interval=0.02,
             what="the page to show the new state")
    shown_after = time.monotonic() - started
    assert uid not in column_text(browser, "ReadyForProcessing")
    assert browser.execute_script("return window.notReloaded") is True, "the page was reloaded"
    counts = browser.find_element(By.CSS_SELECTOR, "#lifecycle .state-Processing .n").text
    assert counts == "1"
    print(f"\nstate change shown by the browser {1000 * shown_after:.0f} ms after the write")
    assert shown_after < 5  # typically well under a second; generous for a loaded machine
    browser.save_screenshot(str(tmp_path / "dashboard.png"))
    assert (tmp_path / "dashboard.png").stat().st_size > 10000
    assert dashboard.alive(), dashboard.log()


# -- layout (issue 15): every column readable from 1280 px up, stacked on a phone

# What the page looks like to a person: overflowing the window sideways,
# clipped column titles, and words (a text node between <wbr> marks, split at
# spaces) drawn on more than one line, i.e. broken mid-word.
LAYOUT = """
const within = document.querySelectorAll(arguments[0]);
const out = {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
             clipped: [], broken: [], headers: 0};
for (const h of document.querySelectorAll("#columns .column h3, #lifecycle .step .label")) {
  const r = h.getBoundingClientRect();
  out.headers += 1;
  if (r.left < 0 || r.right > window.innerWidth || h.scrollWidth > h.clientWidth + 1)
    out.clipped.push(h.textContent.trim());
}
for (const root of within) {
  const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node; (node = walk.nextNode());) {
    const re = /\\S+/g;
    for (let m; (m = re.exec(node.data));) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const lines = new Set(Array.from(range.getClientRects(), r => Math.round(r.top)));
      if (lines.size > 1) out.broken.push(m[0]);
    }
  }
}
return out;
"""

RECIPES = ("PipelineCombination", "PipelineCalAndImg", "ManualCalibration", "PipelineSingleDish")


def every_state(server):
    """Two OUSs in each life-cycle state, with the longest recipes and substates."""
    docs, now = [], timestamp()
    for i, state in enumerate(STATES):
        for j in range(2):
            uid = f"uid://A001/X1284/X{i}{j}f"
            substate = {"ReadyForProcessing": RECIPES[j + 1], "DeliveryInProgress": "IngestionTriggered",
                        "Delivered": None}.get(state, RECIPES[(i + j) % len(RECIPES)])
            docs.append({"_id": encode_uid(uid), "entityId": uid, "progID": PROGID, "state": state,
                         "substate": substate, "flags": {EXECUTIVE_FLAG: "EU"}, "timestamp": now,
                         "history": [{"state": state, "substate": substate, "timestamp": now}]})
    server.db(tables.STATUS).bulk(docs)


@pytest.fixture
def dashboard_url(couch_url):
    """The dashboard, in this process, on a free port."""
    port = free_port()
    app = create_app(couch_url, live=False, max_wait=30, LOGIN=None)   # (the login has its own test)
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/"
    httpd.shutdown()


def layout_at(browser, url, width, height, mobile):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    browser.get(url)
    return browser.execute_script(LAYOUT, "#columns, #lifecycle")


@once
@pytest.mark.parametrize("width, height, mobile", [(1280, 900, False), (1920, 1080, False), (390, 844, True)])
def test_every_column_fits_without_sideways_scrolling(server, browser, dashboard_url, width, height, mobile):
    delivered_ous(server)
    every_state(server)
    found = layout_at(browser, dashboard_url, width, height, mobile)
    assert found["innerWidth"] == width
    assert found["scrollWidth"] <= found["innerWidth"], found
    assert found["headers"] == 2 * len(STATES)   # column titles and the diagram's names
    assert found["clipped"] == [] and found["broken"] == [], found
    columns = browser.find_elements(By.CSS_SELECTOR, "#columns .column")
    tops = {round(c.rect["y"]) for c in columns}
    lefts = {round(c.rect["x"]) for c in columns}
    if width >= 1280:
        assert len(tops) == 1 and len(lefts) == len(STATES), "all nine columns side by side"
    else:
        assert len(lefts) == 1 and len(tops) == len(STATES), "one column under another"
    assert "waiting for a person" in column_text(browser, "ReadyForProcessing")
    assert "waiting for a person" in column_text(browser, "ProcessingProblem")
    # The other pages fit too.
    for path in ("ous/uid://A001/X1284/X10f", "ous/uid___X1_X1_Xb0", "bus", "state/Delivered"):
        browser.get(dashboard_url + path)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width, path


def test_a_browser_that_logged_in_gets_live_updates(server, browser, couch_url):
    """With a login (a CouchDB with credentials), the page's own requests and event stream get in too."""
    delivered_ous(server)
    uid = "uid://X1/X1/Xc2"
    StatusTable(server).reset(PROGID, uid, "PipelineImaging")
    app = create_app(couch_url, max_wait=30, LOGIN=("ann", "s3cret"))
    port = free_port()
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 401
        browser.get(f"http://ann:s3cret@127.0.0.1:{port}/")
        wait_for(lambda: browser.find_element(By.ID, "live").text == "live", 20, what="the live stream")
        assert uid in column_text(browser, "ReadyForProcessing")
        StatusTable(server).set_state(uid, "Processing")
        wait_for(lambda: uid in column_text(browser, "Processing"), 20, what="the page to show the new state")
    finally:
        httpd.shutdown()
        app.extensions["draws-dashboard"].stop()
