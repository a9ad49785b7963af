"""A real browser: headless Chromium shows a state change without a reload."""

import shutil
import time

import pytest
import requests

from draws import tables
from draws.timestamps import timestamp
from draws.ous import StatusTable
from support import free_port, wait_for
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


def test_page_follows_a_state_change_without_reload(actors, server, browser, tmp_path):
    delivered_ous(server)
    status = StatusTable(server)
    uid = "uid://X1/X1/Xc1"
    status.reset(PROGID, uid, "PipelineCalibration")
    server.db(tables.STATUS).put({"_id": "evil", "entityId": "uid://<script>window.pwned=1</script>",
                                  "progID": PROGID, "state": "Reviewing", "substate": "<b>bold</b>",
                                  "flags": {}, "timestamp": timestamp(), "history": []})
    port = free_port()
    dashboard = actors.start("dashboard/server.py", "--port", port)
    url = f"http://127.0.0.1:{port}/"
    wait_for(lambda: requests.get(url + "api/health", timeout=2).ok, 30, what="the dashboard to answer")

    browser.get(url)
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
