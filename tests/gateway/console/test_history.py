"""A run's history in the console: a rewind from the frame scrubber, and a gateway restart
while the page is open (the banner, the recovery, every event once)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .conftest import LiveGateway, sign_in


def seqs(page: Page) -> list[int]:
    found = page.locator("#event-log li").evaluate_all("items => items.map(i => i.dataset.seq)")
    return [int(seq) for seq in found]


def test_a_rewind_from_the_scrubber_reruns_the_nodes_after_the_frame(
    page: Page, live: LiveGateway
) -> None:
    run_id = live.call("launchRun", workflow="approval", input={"msg": "again"})["runId"]
    live.wait_status(run_id, "waiting-approval")
    live.call("submitApproval", runId=run_id, nodeId="review", approved=True)
    live.wait_status(run_id, "finished")
    frames = live.call("listFrames", runId=run_id)
    assert len(frames) >= 2, frames
    first_attempts = live.call("listAttempts", runId=run_id, nodeId="ship")
    sign_in(page, live, hash=f"#/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("finished")
    scrubber = page.get_by_label("Frame")
    scrubber.focus()
    page.keyboard.press("Home")
    expect(page.locator("#frame-label")).to_contain_text("0 of")
    page.get_by_role("button", name="Rewind to this frame").click()
    expect(page.get_by_role("dialog")).to_contain_text("Rewind to frame 0?")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#toast")).to_contain_text("Rewound")
    expect(page.locator('#event-log li[data-type="run.time_travel_jumped"]')).to_have_count(1)
    # the approval came after frame 0: it waits again, and so does the page
    expect(page.locator("#run-status")).to_have_text("waiting-approval")
    page.locator('article.approval[data-node="review"]').get_by_role("button", name="Approve").click()
    expect(page.locator("#run-status")).to_have_text("finished")
    expect(page.locator('.node[data-node="ship"]')).to_have_class(re.compile("finished"))
    again = live.call("listAttempts", runId=run_id, nodeId="ship")
    assert len(again) == 1 and again[0]["startedAtMs"] > first_attempts[0]["startedAtMs"]
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
