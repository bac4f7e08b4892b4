"""The dashboard in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium): sign in, the fleet, a chart, a click into a subaccount, the range switch, a tenant's
narrower view, and no errors in the browser's console. Screenshots of each page are saved to
``test-artifacts/dashboards/``."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ROOT
from tests.dashboards.conftest import Dashboard

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = ROOT / "test-artifacts" / "dashboards"
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        message = f"no {CHROMIUM} / {CHROMEDRIVER}: run the tests with scripts/test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    profile = tempfile.mkdtemp(prefix="voicepulse-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _shot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _sign_in(driver: WebDriver, dashboard: Dashboard, token: str) -> None:
    driver.get(dashboard.url + "/fleet")
    assert driver.current_url.endswith("/login")
    _shot(driver, "login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    _wait_url(driver, "/fleet")


def _wait_url(driver: WebDriver, part: str) -> None:
    """Wait for a click's navigation: click() may return before the next page loads."""
    WebDriverWait(driver, 15).until(lambda d: part in d.current_url)
    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def _on_a_phone(driver: WebDriver, name: str) -> None:
    """The page fits a phone's width: only its tables scroll sideways, in their own box."""
    driver.set_window_size(390, 844)
    try:
        wide = driver.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert wide <= 1, f"{name}: the page is {wide} px wider than a phone"
        _shot(driver, name)
    finally:
        driver.set_window_size(1280, 900)


def _errors(driver: WebDriver) -> list[str]:
    entries = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [str(e["message"]) for e in entries if e["level"] == "SEVERE"]


def _series_text(driver: WebDriver) -> list[str]:
    return [
        p.get_attribute("d") or "" for p in driver.find_elements(By.CSS_SELECTOR, "path.series")
    ]


def test_operator_sees_the_fleet_opens_a_subaccount_and_switches_range(
    browser: WebDriver, dashboard: Dashboard
) -> None:
    _sign_in(browser, dashboard, dashboard.operator)
    rows = browser.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")
    shown = {row.get_attribute("data-account") for row in rows}
    assert shown == set(dashboard.tenants)
    sparks = browser.find_elements(By.CSS_SELECTOR, "#fleet svg.spark path")
    assert len(sparks) == len(dashboard.tenants)
    assert all((s.get_attribute("d") or "").count("L") > 10 for s in sparks)
    _shot(browser, "fleet")
    _on_a_phone(browser, "fleet-phone")

    name = dashboard.tenants[dashboard.tenant_sid].name
    browser.find_element(By.LINK_TEXT, name).click()
    _wait_url(browser, f"/subaccounts/{dashboard.tenant_sid}")
    assert name in browser.find_element(By.TAG_NAME, "h1").text
    charts = browser.find_elements(By.CSS_SELECTOR, "#charts svg.chart")
    assert len(charts) >= 6
    day = _series_text(browser)
    assert day
    assert all(d.count("L") > 5 for d in day[:2])
    size = charts[0].size
    assert size["width"] > 200
    assert size["height"] > 50
    assert len(browser.find_elements(By.CSS_SELECTOR, "#calls-table tbody tr")) == 4
    _shot(browser, "subaccount-24h")
    _on_a_phone(browser, "subaccount-phone")

    browser.find_element(By.CSS_SELECTOR, "nav[aria-label=range] a[href*='range=1h']").click()
    _wait_url(browser, "range=1h")
    hour = _series_text(browser)
    assert hour
    assert hour != day
    assert len(browser.find_elements(By.CSS_SELECTOR, "#series tbody tr")) == 60
    _shot(browser, "subaccount-1h")

    for page in ("isv", "billing", "alerts"):
        browser.find_element(By.CSS_SELECTOR, f"header nav a[href='/{page}']").click()
        _wait_url(browser, f"/{page}")
        _shot(browser, page)
        if page == "billing":
            assert browser.find_elements(By.CSS_SELECTOR, "#reconciliation tr.flagged")
    assert _errors(browser) == []


def test_tenant_sees_one_subaccount_and_no_way_to_another(
    browser: WebDriver, dashboard: Dashboard
) -> None:
    _sign_in(browser, dashboard, dashboard.tenant)
    rows = browser.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")
    assert [r.get_attribute("data-account") for r in rows] == [dashboard.tenant_sid]
    links = {a.get_attribute("href") or "" for a in browser.find_elements(By.TAG_NAME, "a")}
    others = [sid for sid in dashboard.tenants if sid != dashboard.tenant_sid]
    assert not [link for link in links for sid in others if sid in link]
    assert not [link for link in links if link.endswith("/isv")]
    _shot(browser, "tenant-fleet")
    browser.get(f"{dashboard.url}/subaccounts/{others[0]}")
    assert "not found" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(f"{dashboard.url}/billing")
    assert not [sid for sid in others if sid in browser.page_source]
    _shot(browser, "tenant-billing")
    # The 404 above is the only console error allowed: the browser reports it.
    assert [e for e in _errors(browser) if "404" not in e] == []
