"""The web console (issue #16) in a real browser: a `janua serve --dev` subprocess whose fleet is made through the
HTTP API, and Debian's Chromium, headless, driven by selenium through Debian's chromedriver.

Why selenium and not Playwright: Playwright drives only the browser builds it downloads itself, and nothing may be
downloaded at test time (nor can it be, on the machines janua is built on); selenium speaks WebDriver to the
chromedriver that Debian ships with its chromium (`make debs-test` installs both). Selenium Manager, which could
fetch a driver, is never asked: the driver and the browser are given by path.

One verifier and one browser per test module (module-scoped fixtures), not per test: a Chromium start costs about a
second and the fleet of 2,500 devices a few. Tests of a module share the fleet, so each works on devices of its own.
Screenshots of each page a test visits, and of the page a failed test was on, go to $JANUA_ARTIFACTS (default: a
fresh temporary directory, named at the end of the run)."""

import contextlib
import csv
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tools.api import API
from tools.demo import Verifier
from verifier import keys
from verifier.binauth.core import STATUS_NAMES, decode_reply, encode_request

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
N_FLEET = 2500                     # "find a device among thousands"
WAIT_S = 10                        # the longest a page or a download is waited for
_ARTIFACTS = []                    # the directory screenshots went to, once one was taken


def artifacts_dir():
    if not _ARTIFACTS:
        d = os.environ.get("JANUA_ARTIFACTS") or tempfile.mkdtemp(prefix="janua-artifacts-")
        Path(d).mkdir(parents=True, exist_ok=True)
        _ARTIFACTS.append(Path(d))
    return _ARTIFACTS[0]


def pytest_terminal_summary(terminalreporter):
    if _ARTIFACTS:
        terminalreporter.write_line(f"console browser tests: screenshots in {_ARTIFACTS[0]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "call":
        item.failed_call = outcome.get_result().failed


@pytest.fixture(autouse=True)
def shot_on_failure(request):
    """A failed test leaves a screenshot of the page the browser was on: FAILED-<test>.png."""
    yield
    if getattr(request.node, "failed_call", False) and "console" in request.fixturenames:
        request.getfixturevalue("console").shot("FAILED-" + request.node.name)


def janua_cli(*argv):
    r = subprocess.run([sys.executable, "-m", "tools", *argv], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


class Fleet:
    """The running verifier and what the tests were given: the admin API, tokens by role, the devices made (serial
    -> (device id hex, master secret hex)), a released and rolling-out release."""

    def __init__(self, work):
        self.work = work
        self.verifier = Verifier(work)
        self.url = self.verifier.url
        self.admin_token = self.verifier.token_file.read_text().strip()
        self.api = API(self.url, token=self.admin_token)
        self.tokens = {"admin": self.admin_token}
        self.tokens["viewer"] = janua_cli("tenant", "token", "default", "--role", "viewer",
                                          "--db", str(self.verifier.db)).split()[0]
        self.devices = {}
        rows = [{"serial_number": f"SN-{i:05d}",
                 "metadata": {"firmware_version": f"1.{i % 4}.0", "location": f"hall-{i % 3}",
                              "group": "line-a" if i % 2 else "line-b"}} for i in range(N_FLEET)]
        out = self.api.call("POST", "/v1/devices/bulk", {"devices": rows})
        assert out["summary"]["created"] == N_FLEET, out["summary"]
        for r in out["results"]:
            self.devices[r["serial_number"]] = (r["device_id"], r["master_secret"])
        self._last_ts = {}

    def device(self, serial):
        return self.api.call("GET", f"/v1/devices/{self.devices[serial][0]}")

    def binauth(self, serial):
        """One binary auth request of the device over UDP from this test: the reply's status name (OK,
        NOT_ACTIVE, ...). Timestamps from this machine's clock, strictly increasing per device."""
        did, master = self.devices[serial]
        key = keys.derive_key(bytes.fromhex(master), keys.LABEL_BINAUTH)
        ts = self._last_ts[serial] = max(int(time.time()), self._last_ts.get(serial, 0) + 1)
        req = encode_request(key, bytes.fromhex(did), ts)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(req, ("127.0.0.1", self.verifier.udp_port))
            data, _ = s.recvfrom(256)
        return STATUS_NAMES[decode_reply(key, req, data)["status"]]

    def rollout(self, version, counter):
        """A signed release published and its rollout started, through the API: the rollout's status."""
        from tools import ota, ota_release
        keydir = self.work / "release-keys"
        if not keydir.exists():
            keydir.mkdir()
            key, pub, _ = ota.keygen(keydir, "release")
            ota_release.trust_key(self.api, pub)
        app = self.work / f"app-{version}"
        app.mkdir()
        (app / "main.py").write_text(f"print('v{version}')\n")
        bundle = self.work / f"bundle-{version}"
        ota.build_bundle(app, bundle, version, counter, compile_py=False)
        ota.sign_bundle(bundle, keydir / "release.key")
        release = ota_release.publish(self.api, bundle)
        return ota_release.rollout(self.api, release["id"], start=True, phases="10:24,100")

    def audit(self, device_id):
        return self.api.call("GET", f"/v1/audit?device_id={device_id}")["entries"]

    def stop(self):
        self.verifier.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp("console"))
    yield f
    f.stop()


class Console:
    """A headless Chromium on the fleet's console: open pages, sign in, screenshots, forms."""

    def __init__(self, fleet, downloads):
        missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
        if missing:                            # a failure, not a skip: `make test` installs them
            pytest.fail(f"{', '.join(missing)} missing: `make debs-test` installs chromium and chromium-driver",
                        pytrace=False)
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.fleet, self.downloads = fleet, downloads
        self.profile = tempfile.mkdtemp(prefix="janua-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
                  f"--user-data-dir={self.profile}", "--no-first-run", "--disable-extensions"):
            opts.add_argument(a)
        if os.geteuid() == 0:                  # CI runs as root: Chromium's sandbox refuses to start as root
            opts.add_argument("--no-sandbox")
        opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                               "download.prompt_for_download": False})
        self.driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(WAIT_S * 3)
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow",
                                                                    "downloadPath": str(downloads)})
        self.shots = 0

    # -- pages
    def open(self, path):
        self.driver.get(self.fleet.url + path)

    @property
    def path(self):
        return self.driver.current_url[len(self.fleet.url):]

    def find(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait_for(self, css, timeout=WAIT_S):
        """The first element matching `css`, waited for (a page after a redirect, a row after a search)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait
        return WebDriverWait(self.driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))

    def text(self):
        return self.find("body").text

    def shot(self, name):
        """A full-window PNG of the current page, as a test artifact; its path."""
        self.shots += 1
        path = artifacts_dir() / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    @contextlib.contextmanager
    def page_change(self):
        """Wait, after the block, until the browser has left the page it was on (a form sent, a link followed):
        what is found next is on the new page, never a leftover of the old one."""
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait
        old = self.find("html")
        yield
        WebDriverWait(self.driver, WAIT_S).until(ec.staleness_of(old))

    def click(self, css, navigates=True):
        """Click a button or link, accept the confirm dialog it may open (console.js asks before some changes) and,
        unless `navigates` is false (a download), wait for the page it leads to."""
        from selenium.common.exceptions import NoAlertPresentException
        with self.page_change() if navigates else contextlib.nullcontext():
            self.find(css).click()
            try:
                self.driver.switch_to.alert.accept()
            except NoAlertPresentException:
                pass

    # -- session
    def sign_in(self, role="admin", token=None):
        self.sign_out()
        self.open("/console/sign-in")
        self.find("#token").send_keys(token if token is not None else self.fleet.tokens[role])
        self.click("#sign-in-button")

    def sign_out(self):
        """Forget the session: the console's cookie is the only state the browser keeps."""
        self.open("/console/sign-in")
        self.driver.delete_all_cookies()

    def cookie(self):
        return self.driver.get_cookie("janua_console")

    def status(self):
        """The HTTP status of the page the browser shows (the Navigation Timing entry's responseStatus)."""
        return self.driver.execute_script("return performance.getEntriesByType('navigation')[0].responseStatus")

    def post(self, path, fields):
        """Send a form of `fields` to `path` from the current page, as a forged form would: built in the page,
        sent with this browser's session cookie (the console's Content-Security-Policy leaves no fetch() to
        forge with). (HTTP status of the answer, after redirects; its page's text)."""
        with self.page_change():
            self.driver.execute_script("""
                const [action, fields] = arguments;
                const f = document.createElement('form');
                f.method = 'post';
                f.action = action;
                for (const [k, v] of Object.entries(fields)) {
                    const i = document.createElement('input');
                    i.type = 'hidden'; i.name = k; i.value = v;
                    f.appendChild(i);
                }
                document.body.appendChild(f);
                f.submit();""", path, fields)
        return self.status(), self.text()

    def downloaded(self, pattern="*.csv", timeout=WAIT_S):
        """(name, bytes) of the first finished download matching `pattern`, waited for; it is then removed, so the
        next call waits for the next one (Chromium writes NAME.crdownload until a download is done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = sorted(self.downloads.glob(pattern))
            if done and not list(self.downloads.glob("*.crdownload")):
                data = done[0].read_bytes()
                done[0].unlink()
                return done[0].name, data
            time.sleep(0.05)
        raise AssertionError(f"no download {pattern} in {timeout} s: {sorted(p.name for p in self.downloads.iterdir())}")

    def quit(self):
        self.driver.quit()


@pytest.fixture(scope="module")
def console(fleet, tmp_path_factory):
    c = Console(fleet, tmp_path_factory.mktemp("downloads"))
    yield c
    c.quit()


def parse_csv(data):
    """Rows of a CSV document as lists, the header first (a UTF-8 BOM is allowed)."""
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))

