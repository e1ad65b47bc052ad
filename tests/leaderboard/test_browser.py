"""Browser tests: Playwright driving Debian's Chromium against the real app on loopback."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import orjson
import pytest
import uvicorn

from leaderboard_app.app import create_app
from quantcraft_dagster.core import keys
from quantcraft_dagster.lifecycle import METRICS_ASSET
from tests.assets.test_submission import INVALID, judged, metrics_of

from .conftest import report_score

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root, headless, and quiet on this machine's closed network.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture
def server(home, bucket):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(dagster_home=str(home), bucket=bucket, dagster_url="http://dagster.test")
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser.new_page()
        browser.close()


def test_score_appears_live_without_reload(server, page, instance):
    report_score(instance, "alice-1", "alice", 80.0)
    page.goto(server)
    page.wait_for_selector("tr[data-contestant='alice']", timeout=5000)
    page.wait_for_selector("#conn.live", timeout=5000)
    start = time.monotonic()
    report_score(instance, "bob-1", "bob", 95.0)
    page.wait_for_selector("tr[data-contestant='bob']", timeout=1000)
    assert time.monotonic() - start < 1.0
    ranks = page.eval_on_selector_all("#board tbody tr", "rows => rows.map(r => r.dataset.contestant)")
    assert ranks == ["bob", "alice"]


def test_contestant_text_is_never_markup(server, page, instance):
    name = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
    report_score(instance, "evil-1", name, 50.0)
    page.goto(server)
    page.wait_for_selector("#board tbody tr", timeout=5000)
    assert name in page.inner_text("#board tbody")
    assert page.evaluate("window.pwned") is None
    assert page.query_selector("#board img") is None


def test_upload_through_the_page_reaches_the_bucket(server, page, bucket, tokens, engines):
    page.goto(f"{server}/upload")
    page.fill("input[name=token]", tokens["alice"])
    page.set_input_files("input[name=file]", str(engines / "engine"))
    page.click("button[type=submit]")
    page.wait_for_selector("#result:has-text('uploaded')", timeout=5000)
    assert [o.key for o in bucket.list("submissions/")] == ["submissions/alice/engine"]
    assert bucket.get_bytes("submissions/alice/engine") == (engines / "engine").read_bytes()


def test_submission_page_shows_trials_percentiles_and_the_client_limit(
    server, page, instance, bucket, tmp_path
):
    """The metrics asset's value for a judging, as the page shows it to anyone: per-trial figures
    (with the orders left out of the latency figures), the re-run trial's reason, "≥" on a
    client-limited rate, and a percentile plot of the three latency series for each phase."""
    report_score(instance, "alice-1", "alice", 80.0)
    value = metrics_of(*judged()).value
    bucket.put_bytes(keys.asset_value(METRICS_ASSET.path, "alice-1"), orjson.dumps(value))
    page.goto(server)  # the board follows the instance: the submission is known once alice shows
    page.wait_for_selector("tr[data-contestant='alice']", timeout=5000)
    page.goto(f"{server}/submissions/alice-1")
    page.wait_for_selector("#percentiles svg[data-phase='C'] polyline", timeout=5000)
    rows = page.eval_on_selector_all(
        "#phases tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    by_phase = {row[0]: row for row in rows}
    assert by_phase["C"][1] == "2 (+1 re-run)" and by_phase["C"][-1] == "3.00"  # CPU µs/order, median
    assert by_phase["B"][-2].startswith("≥ ") and not by_phase["C"][-2].startswith("≥")
    trials = page.eval_on_selector_all(
        "#trials tbody tr[data-phase='C']", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [t[7] for t in trials] == ["2.00", "4.00"] and [t[8] for t in trials] == ["0.10 %", "0.30 %"]
    assert [t[9] for t in trials] == ["5", "0"]  # orders left out of the latency figures
    assert INVALID["reasons"][0] in page.inner_text("#invalid")
    for phase in ("A", "B", "C"):
        series = page.eval_on_selector_all(
            f"#percentiles svg[data-phase='{phase}'] polyline", "ls => ls.map(l => l.getAttribute('class'))"
        )
        assert series == ["corrected", "service", "send_lag"], phase
    page.screenshot(path=str(tmp_path / "submission.png"), full_page=True)
