"""The viewer page in Debian's headless Chromium, driven by selenium and chromedriver."""

from __future__ import annotations

import base64
import hashlib
import http.server
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.targets import RELAY, Target
from tests.e2e.wire import connection_ids, manage, post_message
from userstatus_local.http_server import viewer_page

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER_TIMEOUT = 15.0


@pytest.fixture
def browser(target: Target) -> Iterator[Any]:
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
    if target.ca_path is not None:
        # Trust exactly the target's certificate (by its public key); verification stays on.
        options.add_argument(f"--ignore-certificate-errors-spki-list={spki_sha256(target.ca_path)}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(BROWSER_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def spki_sha256(certificate: Path) -> str:
    """Base64 SHA-256 of a certificate's public key, as Chromium's SPKI allow-list takes it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(certificate.read_bytes()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
def viewer_url(target: Target) -> Iterator[str]:
    """The viewer page of ``target``: the relay serves it; for the deployed stack (whose
    frontend lives elsewhere) a server on 127.0.0.1 serves the same page, pointed at its APIs."""
    if target.name == RELAY:
        yield target.http_url + "/"
        return
    page = viewer_page(websocket_url=target.websocket_url(), api_url=target.http_url).encode()

    class ViewerHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ViewerHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_viewer_shows_history_then_live_messages(
    browser: Any, viewer_url: str, target: Target, site: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, BROWSER_TIMEOUT)
    # Given a message from an hour ago
    an_hour_ago = int(time.time()) - 3600
    post_message(target, site=site, log_message="from the history", timestamp=an_hour_ago)

    # When the viewer opens the site, it shows the history and goes live
    browser.get(f"{viewer_url}?site={site}")
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "status"), "live"))
    history = browser.find_element(By.CSS_SELECTOR, "#log li")
    local_hhmm = time.strftime("%H:%M", time.localtime(an_hour_ago))
    assert history.text == f"{local_hhmm} from the history"

    # And a message posted over HTTP appears live, coloured by its level
    post_message(target, site=site, log_message="seen in the browser", log_level="error")
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
    [first_id] = connection_ids(target, site)
    answer = manage(target, "DELETE", first_id)
    assert answer.status == 204
    wait.until(lambda _: connection_ids(target, site) not in ([], [first_id]))
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "status"), "live"))
    post_message(target, site=site, log_message="after the reconnect", log_level="debug")
    wait.until(
        expected_conditions.text_to_be_present_in_element((By.ID, "log"), "after the reconnect")
    )
    lines = browser.find_elements(By.CSS_SELECTOR, "#log li")
    assert [line.find_element(By.CLASS_NAME, "message").text for line in lines] == [
        "from the history",
        "seen in the browser",
        "after the reconnect",
    ]
