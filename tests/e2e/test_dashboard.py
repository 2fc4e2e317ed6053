"""The web dashboard in headless Chromium against a real two-member pool (loopback):
the ring drawing shows both members, a prompt from the chat box streams its tokens
back, and /metrics reflects the activity. A screenshot is kept as a test artifact.

Chromium is Debian's (`apt-get install chromium`, done by tests/run.sh), driven by
Playwright's Python package (no `playwright install`). Browsers do not accept the pool's
Ed25519 TLS certificates, so the browser goes where a user's would: `meshctl dashboard`,
the local proxy that talks mutual TLS to the control plane as this device."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from agents import wait_for
from lan import Device, Lan
from pool_steps import make_token, request_join, ring_of, start_admin, wait_joined
from prometheus_client.parser import text_string_to_metric_families

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACTS = Path(
    os.environ.get("MESHNET_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts")
)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[tuple[Device, Device]]:
    lan = Lan(tmp_path, use_netns=False)  # the browser runs in this namespace
    try:
        admin, member = lan.add("device1"), lan.add("device2")
        created = start_admin(admin)
        request_join(member, created, make_token(admin))
        wait_joined(member)
        for device in (admin, member):
            wait_for(partial(ring_of, device, 2), 60, "ring of 2")
        yield admin, member
    finally:
        lan.close()


def background(device: Device, name: str, *args: str) -> subprocess.Popen[bytes]:
    log = (device.home.root / f"{name}.out").open("wb")
    return subprocess.Popen([sys.executable, "-m", "reconciler.entry", *args], env=device.env(), stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip


@pytest.fixture
def dashboard(pool: tuple[Device, Device]) -> Iterator[str]:
    """The admin's control plane, and `meshctl dashboard` in front of it; the proxy's URL."""
    admin = pool[0]
    plane = background(admin, "control-plane", "control-plane", "--host", "127.0.0.1",
                       "--port", "18500", "--port-range-end", "18599")  # fmt: skip
    proxy = None
    try:
        port_file = admin.home.root / "control-plane.port"
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 30, "port")
        port = free_port()
        proxy = background(admin, "dashboard", "dashboard", "--port", str(port))
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(f"{url}/dashboard"), 30, "meshctl dashboard")
        yield url
    finally:
        for process in (proxy, plane):
            if process is not None:
                process.terminate()
                process.wait(15)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def gossip_metrics(url: str) -> dict[str, float] | None:
    """The metrics once gossip has run and the ring converged."""
    m = scrape(url)
    gossiped = m.get("meshnet_gossip_rounds_total{pool=test-pool}", 0) > 0
    return m if gossiped and "meshnet_ring_converge_seconds{pool=test-pool}" in m else None


def scrape(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


@pytest.mark.slow
def test_dashboard_chat_ring_and_metrics(dashboard: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (tests/run.sh does)"
    url = dashboard
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        try:
            page = context.new_page()
            page.goto(f"{url}/dashboard")
            expect(page.locator("#status")).to_have_text("live", timeout=20_000)
            expect(page.locator("#ring-svg .ring-member")).to_have_count(2)
            labels = page.locator("#ring-svg .ring-label").all_text_contents()
            assert sorted(labels) == ["device1", "device2"]
            expect(page.locator("table.members tr[data-node]")).to_have_count(2)
            page.fill("#max-tokens", "6")
            page.fill("#prompt", "What is the capital of France?")
            page.click("#send")
            expect(page.locator(".msg.user")).to_have_text("you: What is the capital of France?")
            answer = page.locator(".msg.assistant").last
            expect(answer).not_to_have_text("pool: ", timeout=240_000)  # tokens arrived
            expect(page.locator("#send")).to_be_enabled(timeout=240_000)  # the job ended
            final = page.locator(".msg.assistant").last.text_content() or ""
            assert len(final.removeprefix("pool: ").strip()) > 0 and "(failed)" not in final
            job = page.locator(".job").first
            # header + the members the plan used (auto: one or both devices)
            expect(job.locator(".job-members tr").nth(1)).to_be_visible()
            members_used = job.locator(".job-members tr").count() - 1  # auto: 1 or 2
            assert members_used in (1, 2)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"dashboard screenshot: {shot}")
        finally:
            context.close()
    metrics = wait_for(lambda: gossip_metrics(url), 30, "gossip counters")
    assert metrics["meshnet_peers{pool=test-pool,state=ONLINE}"] == 1
    assert metrics["meshnet_ring_members{pool=test-pool}"] == 2
    assert metrics["meshnet_ring_converged{pool=test-pool}"] == 1
    assert 0 < metrics["meshnet_ring_converge_seconds{pool=test-pool}"] < 60
    assert metrics["meshnet_beacons_sent_total{pool=test-pool}"] > 0
    assert metrics["meshnet_jobs{phase=Succeeded,pool=test-pool}"] == 1
    assert metrics["meshnet_tokens_generated_total{pool=test-pool}"] >= 1
    assert metrics["meshnet_job_time_to_first_token_seconds_count{pool=test-pool}"] == 1
    compute = [
        v for k, v in metrics.items() if k.startswith("meshnet_member_compute_seconds_total")
    ]
    assert len(compute) == members_used and all(v > 0 for v in compute)
