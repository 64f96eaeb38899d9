"""Launching from the generated form, and the decisions an operator takes in the console:
approve with a note, a `select` approval, two approvals at once, a signal, a cancel."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .conftest import LiveGateway, sign_in


def test_launch_from_the_form_wait_in_the_inbox_approve_and_watch_it_finish(
    page: Page, live: LiveGateway
) -> None:
    sign_in(page, live, hash="#/launch")
    expect(page.locator("#who-text")).to_have_text("ops · operator")
    page.get_by_label("Workflow").select_option("approval")
    page.get_by_role("button", name="Edit as JSON").click()  # the fallback checks JSON
    page.get_by_label("Input (JSON object)").fill("{not json")
    page.get_by_role("button", name="Launch").click()
    expect(page.locator("#launch-json-error")).to_contain_text("Not valid JSON")
    page.get_by_role("button", name="Use the form").click()
    message = page.get_by_label("Msg")
    expect(message).to_have_value("hello")  # the schema's default
    message.fill("ship the console")
    page.get_by_role("button", name="Launch").click()
    expect(page).to_have_url(re.compile(r"#/runs/smi_"))
    run_id = page.url.split("#/runs/")[1]
    expect(page.locator('.node[data-node="review"]')).to_have_attribute(
        "data-state", "waiting-approval"
    )

    page.get_by_role("link", name=re.compile("Approvals")).click()
    card = page.locator(f'article.approval[data-approval="{run_id}/review/0"]')
    expect(card).to_contain_text("Ship the draft?")
    card.get_by_label("Note").fill("looks good")
    card.get_by_role("button", name="Approve").click()
    expect(card).to_have_count(0)

    page.goto(f"{live.url}/console/#/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("finished")
    for node in ("draft", "review", "ship"):
        expect(page.locator(f'.node[data-node="{node}"]')).to_have_class(re.compile("finished"))
    expect(page.locator('#event-log li[data-type="approval.decided"]')).to_contain_text(
        "looks good"
    )
    assert live.call("getNodeOutput", runId=run_id, nodeId="ship")["output"] == {
        "text": "SHIP THE CONSOLE",
        "approved_by": "ops",
    }
