"""A run's history in the console: a rewind from the frame scrubber, and a gateway restart
while the page is open (the banner, the recovery, every event once)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import LiveGateway, sign_in


def seqs(page: Page) -> list[int]:
    found = page.locator("#event-log li").evaluate_all("items => items.map(i => i.dataset.seq)")
    return [int(seq) for seq in found]


def test_a_rewind_from_the_scrubber_reruns_the_nodes_after_the_frame(
    page: Page, live: LiveGateway
) -> None:
    run_id = live.call("launchRun", workflow="loop")["runId"]
    live.wait_status(run_id, "finished")
    assert len(live.call("listFrames", runId=run_id)) >= 3  # one per loop iteration
    before = live.call("listAttempts", runId=run_id, nodeId="refine", iteration=2)
    sign_in(page, live, hash=f"#/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("finished")
    expect(page.locator(".graph")).to_contain_text("iteration 3")
    scrubber = page.get_by_label("Frame")
    scrubber.focus()
    page.keyboard.press("Home")
    expect(page.locator("#frame-label")).to_contain_text("0 of")
    expect(page.locator(".graph")).to_contain_text("iteration 1")
    page.get_by_role("button", name="Rewind to this frame").click()
    expect(page.get_by_role("dialog")).to_contain_text("Rewind to frame 0?")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#toast")).to_contain_text("Rewound")
    expect(page.locator('#event-log li[data-type="run.time_travel_jumped"]')).to_have_count(1)
    expect(page.locator('#event-log li[data-type="run.completed"]')).to_have_count(2)
    expect(page.locator("#run-status")).to_have_text("finished")
    after = live.call("listAttempts", runId=run_id, nodeId="refine", iteration=2)
    assert len(after) == 1 and after[0]["startedAtMs"] >= before[0]["finishedAtMs"]
    jumped = page.locator('#event-log li[data-type="run.time_travel_jumped"]').get_attribute(
        "data-seq"
    )
    restarted = page.locator('#event-log li[data-type="node.started"]').evaluate_all(
        "items => items.map(i => Number(i.dataset.seq))"
    )
    assert any(seq > int(jumped or 0) for seq in restarted)  # nodes after the frame ran again
    assert seqs(page) == list(range(len(seqs(page))))


def test_a_gateway_restart_shows_the_banner_and_the_page_recovers_every_event_once(
    page: Page, live: LiveGateway
) -> None:
    run_id = live.call("launchRun", workflow="approval")["runId"]
    live.wait_status(run_id, "waiting-approval")
    sign_in(page, live, hash=f"#/runs/{run_id}")
    expect(page.locator('#event-log li[data-type="approval.requested"]')).to_have_count(1)
    banner = page.locator("#banner")
    expect(banner).to_be_hidden()
    live.stop()
    try:
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Offline")
    finally:
        live.start_again()
    expect(banner).to_be_hidden()
    live.call("submitApproval", runId=run_id, nodeId="review", approved=True, note="after")
    expect(page.locator("#run-status")).to_have_text("finished")
    expect(page.locator('#event-log li[data-type="run.completed"]')).to_have_count(1)
    found = seqs(page)
    assert found == list(range(len(found)))
    stored = live.call("getRun", runId=run_id)
    assert stored["status"] == "finished"


def test_one_page_follows_more_runs_than_a_socket_holds_streams(
    page: Page, live: LiveGateway
) -> None:
    runs = [live.call("launchRun", workflow="approval")["runId"] for _ in range(10)]
    for run_id in runs:
        live.wait_status(run_id, "waiting-approval")
    sign_in(page, live, hash="#/runs")
    for run_id in runs:  # each page opens a stream that stays open: the run waits
        page.evaluate("id => { location.hash = '#/runs/' + id; }", run_id)
        expect(page.locator("#run-title")).to_have_text(run_id)
        expect(page.locator('#event-log li[data-type="approval.requested"]')).to_have_count(1)
    expect(page.locator("#banner")).to_be_hidden()
    live.call("submitApproval", runId=runs[-1], nodeId="review", approved=True)
    expect(page.locator("#run-status")).to_have_text("finished")
    found = seqs(page)
    assert found == list(range(len(found)))
