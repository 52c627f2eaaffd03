"""The viewer page in Debian's headless Chromium, driven by selenium and chromedriver."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.wire import connection_ids, http, management_url, post_message
from userstatus_local.process import RelayProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER_TIMEOUT = 15.0


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium; the test is skipped (with the reason) where none is installed."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not installed: run `make browser` as root "
            "(apt-get install chromium chromium-driver) to run the viewer test"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="userstatus-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(BROWSER_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_viewer_shows_history_then_live_messages(
    browser: Any, relay: RelayProcess, site: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, BROWSER_TIMEOUT)
    # Given a message from an hour ago
    an_hour_ago = int(time.time()) - 3600
    post_message(relay, site=site, log_message="from the history", timestamp=an_hour_ago)

    # When the viewer opens the site, it shows the history and goes live
    browser.get(f"{relay.http_url}/?site={site}")
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "status"), "live"))
    history = browser.find_element(By.CSS_SELECTOR, "#log li")
    local_hhmm = time.strftime("%H:%M", time.localtime(an_hour_ago))
    assert history.text == f"{local_hhmm} from the history"

    # And a message posted over HTTP appears live, coloured by its level
    post_message(relay, site=site, log_message="seen in the browser", log_level="error")
    wait.until(
        expected_conditions.text_to_be_present_in_element((By.ID, "log"), "seen in the browser")
    )
    lines = browser.find_elements(By.CSS_SELECTOR, "#log li")
    assert [line.find_element(By.CLASS_NAME, "message").text for line in lines] == [
        "from the history",
        "seen in the browser",
    ]
    assert lines[-1].get_attribute("data-level") == "error"
    assert lines[-1].value_of_css_property("color") == "rgba(238, 51, 51, 1)"

    # When the connection drops (the management API deletes it), the viewer reconnects
    [first_id] = connection_ids(relay, site)
    answer = http("DELETE", management_url(relay, first_id))
    assert answer.status == 204
    wait.until(lambda _: connection_ids(relay, site) not in ([], [first_id]))
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "status"), "live"))
    post_message(relay, site=site, log_message="after the reconnect", log_level="debug")
    wait.until(
        expected_conditions.text_to_be_present_in_element((By.ID, "log"), "after the reconnect")
    )
    lines = browser.find_elements(By.CSS_SELECTOR, "#log li")
    assert [line.find_element(By.CLASS_NAME, "message").text for line in lines] == [
        "from the history",
        "seen in the browser",
        "after the reconnect",
    ]
