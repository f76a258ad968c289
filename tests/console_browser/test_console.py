"""The operator console in headless Chromium against a real `janua serve` (conftest.py): sign-in and its refusal, a
device found by serial among 2,500, suspended from its page and then refused on its next binary auth over UDP, a
rollout halted, the audit trail exported as CSV, and what a viewer token and a change without the CSRF token get.

The tests share one verifier and one browser (module fixtures); each works on devices no other test touches, and
signs in itself, so they pass alone and in any order."""

import re

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.console_browser.conftest import parse_csv

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CSV_HEADER = ["seq", "time", "kind", "device_id", "actor", "action", "transport", "source", "result", "reason"]


def digits(text):
    """The text with thousands separators taken out, so "2,500" and "2 500" read as 2500."""
    return re.sub(r"(?<=\d)[,\u202f\u00a0 ](?=\d{3})", "", text)


def test_sign_in_sets_a_strict_http_only_cookie_and_lands_on_the_fleet(console):
    console.sign_in("admin")
    console.wait_for("#fleet-status")
    assert console.path == "/console/fleet"
    cookie = console.cookie()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"], cookie["secure"]) == (True, "Strict", "/console",
                                                                                           False)
    assert "2500" in digits(console.find("#fleet-status").text)
    for section in ("#fleet-health", "#fleet-firmware", "#fleet-alerts"):
        assert console.find(section).is_displayed()
    console.shot("fleet")
    console.open("/console/")
    console.wait_for("#fleet-status")
    assert console.path == "/console/fleet"


def test_sign_out_ends_the_session_on_the_server(console):
    console.sign_in("admin")
    console.wait_for("#sign-out")
    old = console.cookie()
    console.click("#sign-out")
    console.wait_for("#sign-in")
    assert console.path == "/console/sign-in"
    assert console.cookie() is None
    # the old cookie, had anyone kept it, opens nothing: the session is gone on the server, not only in the browser
    console.driver.add_cookie({k: old[k] for k in ("name", "value", "path", "httpOnly", "sameSite")})
    console.open("/console/fleet")
    console.wait_for("#sign-in")
    assert console.path == "/console/sign-in"


def test_wrong_token_is_refused_with_an_alert_and_no_session(console):
    console.sign_in(token="jna_this-is-not-a-token")
    assert console.status() == 401
    error = console.wait_for("#error")
    assert error.get_attribute("role") == "alert" and error.text
    assert console.path == "/console/sign-in"
    assert console.cookie() is None
    console.shot("sign-in-refused")
    console.open("/console/devices")
    console.wait_for("#sign-in")
    assert console.path == "/console/sign-in"


def test_find_a_device_by_serial_among_thousands(console, fleet):
    console.sign_in("admin")
    console.wait_for("#fleet-status")
    console.open("/console/devices")
    console.wait_for("#devices")
    first_page = console.find_all("#devices tr[data-device-id]")
    assert 1 <= len(first_page) < 2500
    assert console.find_all("#next-page")
    console.shot("devices")
    search = console.find("#q")
    assert search.get_attribute("aria-label") == "Search devices"
    search.send_keys("SN-01234")
    with console.page_change():
        search.send_keys(Keys.ENTER)
    console.wait_for("#devices")
    rows = console.find_all("#devices tr[data-device-id]")
    assert [r.get_attribute("data-device-id") for r in rows] == [fleet.devices["SN-01234"][0]]
    assert "SN-01234" in rows[0].text
    console.shot("devices-search")
    with console.page_change():
        rows[0].find_element(By.CSS_SELECTOR, "a").click()
    console.wait_for("#identity")
    assert console.path == f"/console/devices/{fleet.devices['SN-01234'][0]}"
    assert "SN-01234" in console.find("#identity").text
    for section in ("#lifecycle", "#credentials", "#auths", "#attestation", "#health", "#audit"):
        assert console.find_all(section), section
    console.shot("device")


def test_suspend_from_the_device_page_refuses_the_next_binary_auth(console, fleet):
    assert fleet.binauth("SN-00042") == "OK"             # its first authentication makes it active
    did = fleet.devices["SN-00042"][0]
    console.sign_in("admin")
    console.wait_for("#fleet-status")
    console.open(f"/console/devices/{did}")
    console.wait_for("#action-suspend")
    reason = console.find_all("#lifecycle [name=reason]")
    if reason:
        reason[0].send_keys("browser test")
    console.click("#action-suspend")
    flash = console.wait_for("#flash")
    assert flash.get_attribute("role") == "status" and flash.text
    assert console.path == f"/console/devices/{did}"
    assert fleet.device("SN-00042")["status"] == "suspended"
    assert fleet.binauth("SN-00042") == "NOT_ACTIVE"
    assert console.find_all("#action-resume") and not console.find_all("#action-suspend")
    console.shot("device-suspended")


def test_halt_a_rollout_from_the_releases_page(console, fleet):
    rollout = fleet.rollout("2.0.0", 2)
    assert rollout["state"] == "active"
    rid = rollout["id"]
    console.sign_in("admin")
    console.wait_for("#fleet-status")
    console.open("/console/releases")
    console.wait_for(f"#rollouts tr[data-rollout-id='{rid}']")
    console.shot("releases")
    console.click(f"#halt-{rid}")
    console.wait_for(f"#resume-{rid}")
    assert not console.find_all(f"#halt-{rid}")
    assert "halted" in console.find(f"#rollouts tr[data-rollout-id='{rid}']").text.lower()
    assert fleet.api.call("GET", f"/v1/rollouts/{rid}")["state"] == "halted"
    console.shot("releases-halted")


def test_audit_csv_export_of_one_device(console, fleet):
    did = fleet.devices["SN-00077"][0]
    fleet.api.call("POST", f"/v1/devices/{did}/lifecycle", {"action": "decommission", "reason": "csv test"})
    console.sign_in("admin")
    console.wait_for("#fleet-status")
    console.open("/console/audit")
    console.wait_for("#audit")
    console.shot("audit")
    console.open(f"/console/audit?device={did}")
    console.wait_for("#export-csv")
    assert console.find("#export-csv").get_attribute("href").startswith(fleet.url + "/console/audit.csv?")
    console.click("#export-csv", navigates=False)
    name, data = console.downloaded("*.csv")
    rows = parse_csv(data)
    assert rows[0] == CSV_HEADER
    assert [(r[2], r[3], r[5], r[8]) for r in rows[1:]] == [("admin", did, "device.decommission", "ok")]
    assert "csv test" in rows[1][9]


def test_viewer_sees_no_change_buttons_and_its_forged_posts_are_403(console, fleet):
    assert fleet.binauth("SN-00100") == "OK"
    did = fleet.devices["SN-00100"][0]
    console.sign_in("viewer")
    console.wait_for("#fleet-status")
    console.open(f"/console/devices/{did}")
    console.wait_for("#lifecycle")
    assert console.find_all("[id^=action-]") == []
    console.shot("device-viewer")
    csrf = console.find("input[name=csrf]").get_attribute("value")     # the sign-out form's: a valid token
    assert csrf
    status, text = console.post(f"/console/devices/{did}/lifecycle",
                                {"action": "suspend", "reason": "forged", "csrf": csrf})
    assert status == 403, text
    assert fleet.device("SN-00100")["status"] == "active"
    assert fleet.binauth("SN-00100") == "OK"
    rid = fleet.rollout("3.0.0", 3)["id"]
    console.open("/console/releases")
    console.wait_for(f"#rollouts tr[data-rollout-id='{rid}']")
    assert console.find_all("[id^=halt-]") == [] and console.find_all("[id^=resume-]") == []
    status, text = console.post(f"/console/rollouts/{rid}/halt", {"csrf": csrf})
    assert status == 403, text
    assert fleet.api.call("GET", f"/v1/rollouts/{rid}")["state"] == "active"


def test_a_change_without_the_csrf_token_is_refused(console, fleet):
    assert fleet.binauth("SN-00200") == "OK"
    did = fleet.devices["SN-00200"][0]
    console.sign_in("admin")
    console.wait_for("#fleet-status")
    console.open(f"/console/devices/{did}")
    console.wait_for("#action-suspend")
    csrf = console.find("input[name=csrf]").get_attribute("value")
    status, text = console.post(f"/console/devices/{did}/lifecycle", {"action": "suspend", "csrf": csrf[::-1]})
    assert status == 403 and "CSRF token missing or wrong" in text
    # the page's own form, its hidden csrf field taken out
    console.open(f"/console/devices/{did}")
    console.driver.execute_script(
        "document.querySelector('#action-suspend').form.querySelector('input[name=csrf]').remove()")
    console.click("#action-suspend")
    assert console.status() == 403 and "CSRF token missing or wrong" in console.text()
    console.shot("csrf-refused")
    assert fleet.device("SN-00200")["status"] == "active"
    assert fleet.binauth("SN-00200") == "OK"
