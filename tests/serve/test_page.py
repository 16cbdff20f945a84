"""The web page in a real headless Chromium (Debian's ``chromium``, driven by Playwright with the system executable;
no browser download): it loads, shows 10 recommendations for a known user with text shown as text, and a feedback
click lands in the store."""

import os
import shutil
from pathlib import Path

import pytest

from recgen.serve.store import Store

from .conftest import require

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        require("Debian's chromium is not installed (apt-get install chromium)")
    return path


def test_page_shows_recommendations_and_stores_feedback(tmp_path, dataset, models, server_factory):
    pytest.importorskip("playwright", reason="pip install playwright (its Python package; no browser download)")
    from playwright.sync_api import sync_playwright

    models["ease"].save(tmp_path / "model")
    db = f"sqlite:///{tmp_path / 'page.sqlite'}"
    server = server_factory(tmp_path / "model", db)
    shots = Path(os.environ.get("RECGEN_SCREENSHOTS", tmp_path))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(server.url + "/")
        page.fill("#key", server.key)
        page.dispatch_event("#key", "change")
        page.fill("#user", "u0_0")
        page.click("#show")
        page.wait_for_function("document.querySelectorAll('#recs li').length === 10", timeout=20_000)
        titles = page.locator("#recs li .item").all_inner_texts()
        page.wait_for_function("document.querySelectorAll('#recs li .why').length === 10", timeout=20_000)
        whys = page.locator("#recs li .why").all_inner_texts()
        assert all(whys) and any(w.startswith("Recommended because") for w in whys)
        assert len(titles) == 10 and all("(" in t for t in titles)
        assert page.inner_text("#version").startswith("model ")
        page.locator("#recs li").first.locator("button[data-event=click]").click()
        page.wait_for_function("document.getElementById('status').textContent.includes('feedback stored')")
        page.locator("#recs li .item").first.click()
        page.wait_for_function("document.querySelectorAll('#similar li').length > 0", timeout=20_000)
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "serve-page.png"), full_page=True)
        browser.close()
    events = Store(db).events("u0_0")
    assert len(events) == 1 and events[0].event == "click"


def test_item_text_is_escaped(tmp_path, dataset, server_factory):
    """A title holding markup is shown literally: the page sets textContent, never innerHTML."""
    pytest.importorskip("playwright")
    import dataclasses

    import pyarrow as pa
    from playwright.sync_api import sync_playwright

    from recgen.models import create_model

    table = dataset.item_table
    titles = [f"<img src=x onerror=\"document.title='pwned'\"> {t}" for t in table.column("title").to_pylist()]
    hostile = dataclasses.replace(dataset, item_table=table.set_column(1, "title", pa.array(titles)))
    create_model("pop").fit(hostile).save(tmp_path / "model")
    server = server_factory(tmp_path / "model", f"sqlite:///{tmp_path / 'x.sqlite'}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(server.url + "/")
        page.fill("#key", server.key)
        page.fill("#user", "u0_0")
        page.click("#show")
        page.wait_for_function("document.querySelectorAll('#recs li').length === 10", timeout=20_000)
        assert "<img" in page.locator("#recs li .item").first.inner_text()
        assert page.locator("#recs img").count() == 0 and page.title() == "recgen"
        browser.close()
