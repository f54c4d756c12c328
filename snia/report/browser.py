"""The report in a real browser: headless Chromium through Selenium, at 1280 px, as a reader
would open it: every image decodes, nothing overflows, the headline table is within the first
screen, provenance and definitions are there; a screenshot is kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from snia.errors import ConfigError
from snia.report.document import ANSWER_SECTION, SCREEN_JS

SCREENSHOT = "report_1280.png"


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) executables of Chromium and its WebDriver, or None when either is
    missing (Debian: apt-get install chromium chromium-driver)."""
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def check_in_browser(html_path, screenshot=None, width: int = 1280, height: int = 900) -> dict:
    """Open a report in headless Chromium at ``width`` px, as a reader would. Returns what the
    page shows: images (count), broken (alt texts of images that did not decode), external
    (image sources that are not embedded), scroll_width (document width: > ``width`` means
    horizontal overflow), the text of the provenance and definitions blocks (what is shown:
    collapsed rows are not), inner_height (the first screen), first_section (its id) and
    headline (top and bottom of the comparison table, px from the page's top). ``screenshot``:
    a PNG of the whole page at that width."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise ConfigError("checking a report in a browser needs chromium and chromedriver "
                          "(Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--hide-scrollbars", f"--window-size={width},{height}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(found[1]))
    try:
        driver.get(Path(html_path).resolve().as_uri())
        info = driver.execute_script(SCREEN_JS)
        if screenshot is not None:
            driver.set_window_size(width, min(int(info["height"]) + 20, 30000))
            driver.save_screenshot(str(screenshot))
            info["screenshot"] = str(screenshot)
    finally:
        driver.quit()
    return info


def opens_with_its_answer(seen: dict) -> bool:
    """Whether a page as ``check_in_browser`` saw it opens with the headline table: its first
    section holds it, and the whole table is within the first screen."""
    box = seen.get("headline")
    return (seen.get("first_section") == ANSWER_SECTION and box is not None
            and 0 <= box["top"] and box["bottom"] <= seen["inner_height"])
