"""The console's views beyond the Must-show list: the runs list live with its counts and
filters, a `rank` approval, a failed node's error by keyboard, the retries on the timeline,
the event log's filter, and a fork from the scrubber."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .conftest import LiveGateway, shoot, sign_in


def test_the_runs_list_is_live_with_counts_and_filters(page: Page, live: LiveGateway) -> None:
    first = live.call("launchRun", workflow="ranked")["runId"]
    live.wait_status(first, "waiting-approval")
    sign_in(page, live, hash="#/runs")
    expect(page.locator(f'tr[data-run="{first}"]')).to_contain_text("an operator: approval order")
    second = live.call("launchRun", workflow="ranked")["runId"]  # not launched by the page
    expect(page.locator(f'tr[data-run="{second}"]')).to_be_visible()
    page.get_by_label("Workflow").select_option("ranked")
    expect(page.locator('tbody tr[data-run]:not([data-workflow="ranked"])')).to_have_count(0)
    expect(page.locator(f'tr[data-run="{second}"]')).to_be_visible()
    chip = page.locator(".count-chip.s-waiting-approval")
    expect(chip).to_contain_text("waiting-approval")
    chip.click()
    expect(page.get_by_label("Status", exact=True)).to_have_value("waiting-approval")
    expect(chip).to_have_attribute("aria-pressed", "true")
    others = page.locator('tbody tr[data-run]:not([data-status="waiting-approval"])')
    expect(others).to_have_count(0)
    expect(page.locator(f'tr[data-run="{first}"]')).to_be_visible()


def test_a_rank_approval_is_decided_in_the_order_given(page: Page, live: LiveGateway) -> None:
    run_id = live.call("launchRun", workflow="ranked")["runId"]
    live.wait_status(run_id, "waiting-approval")
    sign_in(page, live, hash="#/approvals")
    card = page.locator(f'article.approval[data-approval="{run_id}/order/0"]')
    card.get_by_role("button", name="move red up").click()
    card.get_by_role("button", name="move red up").click()
    expect(card.get_by_role("list", name="ranking")).to_contain_text(re.compile("Red.*Blue.*Green"))
    card.get_by_role("button", name="Decide").click()
    expect(card).to_have_count(0)
    live.wait_status(run_id, "finished")
    output = live.call("getNodeOutput", runId=run_id, nodeId="sorted")["output"]
    assert output == {"message": "red > blue > green"}


def test_a_failed_node_shows_its_error_by_keyboard_and_retries_show_on_the_timeline(
    page: Page, live: LiveGateway
) -> None:
    failed = live.call("launchRun", workflow="failing")["runId"]
    live.wait_status(failed, "failed")
    sign_in(page, live, hash=f"#/runs/{failed}")
    node = page.locator('.node[data-node="explode"]')
    expect(node).to_have_class(re.compile("failed"))
    node.focus()
    page.keyboard.press("Enter")
    details = page.locator("#node-details")
    expect(details).to_contain_text("this task always fails")
    expect(details.locator("pre.error-text").first).to_be_visible()
    expect(details.get_by_role("button", name="Retry this task")).to_be_visible()

    retried = live.call("launchRun", workflow="retry")["runId"]
    live.wait_status(retried, "finished")
    page.goto(f"{live.url}/console/#/runs/{retried}")
    bars = page.locator("#timeline rect.bar")
    expect(bars).to_have_count(3)
    expect(page.locator("#timeline rect.bar.retry")).to_have_count(2)
    expect(page.locator("#timeline rect.bar.failed")).to_have_count(2)
    shoot(page, "run-retry-1280")


def test_the_event_log_filters_by_type(page: Page, live: LiveGateway) -> None:
    run_id = live.call("launchRun", workflow="parallel")["runId"]
    live.wait_status(run_id, "finished")
    sign_in(page, live, hash=f"#/runs/{run_id}")
    expect(page.locator('#event-log li[data-type="run.completed"]')).to_have_count(1)
    page.get_by_label("Type").select_option("node.finished")
    items = page.locator("#event-log li")
    expect(items).to_have_count(4)  # three measures and the sum
    assert set(items.evaluate_all("items => items.map(i => i.dataset.type)")) == {"node.finished"}
    page.get_by_label("Type").select_option("")
    expect(page.locator('#event-log li[data-type="run.completed"]')).to_have_count(1)


def test_a_fork_from_the_scrubber_opens_the_child_run(page: Page, live: LiveGateway) -> None:
    run_id = live.call("launchRun", workflow="loop")["runId"]
    live.wait_status(run_id, "finished")
    sign_in(page, live, hash=f"#/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("finished")
    page.get_by_label("Frame").focus()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#frame-label")).to_contain_text("1 of")
    page.get_by_role("button", name="Fork from this frame").click()
    page.get_by_role("button", name="Keep it").click()
    expect(page).to_have_url(re.compile(run_id))
    page.get_by_role("button", name="Fork from this frame").click()
    page.get_by_role("button", name="Confirm").click()
    expect(page).not_to_have_url(re.compile(run_id))
    child = page.url.split("#/runs/")[1]
    expect(page.locator("#run-status")).to_have_text("finished")
    assert live.call("getRun", runId=child)["status"] == "finished"
    assert run_id != child
