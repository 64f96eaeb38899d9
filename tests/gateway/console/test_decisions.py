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


def test_a_select_approval_is_decided_from_its_options(page: Page, live: LiveGateway) -> None:
    run_id = live.call("launchRun", workflow="pick")["runId"]
    live.wait_status(run_id, "waiting-approval")
    sign_in(page, live, hash="#/approvals")
    card = page.locator(f'article.approval[data-approval="{run_id}/colour/0"]')
    card.get_by_role("button", name="Decide").click()
    expect(page.locator("#toast")).to_contain_text("Choose an option first")
    card.get_by_label("Green").check()
    card.get_by_role("button", name="Decide").click()
    expect(card).to_have_count(0)
    live.wait_status(run_id, "finished")
    output = live.call("getNodeOutput", runId=run_id, nodeId="paint")["output"]
    assert output == {"message": "painted green"}


def test_two_approvals_are_decided_in_one_action(page: Page, live: LiveGateway) -> None:
    runs = [live.call("launchRun", workflow="approval")["runId"] for _ in range(2)]
    for run_id in runs:
        live.wait_status(run_id, "waiting-approval")
    sign_in(page, live, hash="#/approvals")
    for run_id in runs:
        card = page.locator(f'article.approval[data-approval="{run_id}/review/0"]')
        card.get_by_role("checkbox").check()
    expect(page.locator("#batch-count")).to_have_text("2 selected")
    page.get_by_label("Note for all").fill("both at once")
    page.get_by_role("button", name="Approve selected").click()
    expect(page.locator("#toast")).to_contain_text("2 decisions recorded")
    for run_id in runs:
        expect(page.locator(f'article.approval[data-approval="{run_id}/review/0"]')).to_have_count(
            0
        )
        live.wait_status(run_id, "finished")


def test_a_signal_is_sent_to_a_waiting_run(page: Page, live: LiveGateway) -> None:
    run_id = live.call("launchRun", workflow="signal")["runId"]
    live.wait_status(run_id, "waiting-event")
    sign_in(page, live, hash=f"#/runs/{run_id}")
    expect(page.locator('.node[data-node="payment"]')).to_have_class(re.compile("waiting"))
    page.get_by_label("Signal", exact=True).fill("payment")
    page.get_by_label("Payload (JSON)").fill("{amount: 42")
    page.get_by_role("button", name="Send signal").click()
    expect(page.locator("#signal-error")).to_contain_text("Not valid JSON")
    page.get_by_label("Payload (JSON)").fill('{"amount": 42}')
    page.get_by_role("button", name="Send signal").click()
    expect(page.locator("#toast")).to_contain_text("Signal sent")
    expect(page.locator("#run-status")).to_have_text("finished")
    expect(page.locator('.node[data-node="receipt"]')).to_have_class(re.compile("finished"))
    page.locator('.node[data-node="receipt"]').click()
    expect(page.locator("#node-details")).to_contain_text("paid 42")


def test_a_run_is_cancelled_after_confirmation(page: Page, live: LiveGateway) -> None:
    run_id = live.call("launchRun", workflow="approval")["runId"]
    live.wait_status(run_id, "waiting-approval")
    sign_in(page, live, hash=f"#/runs/{run_id}")
    page.get_by_role("button", name="Cancel run").click()
    page.get_by_role("button", name="Keep it").click()
    expect(page.locator("#run-status")).to_have_text("waiting-approval")
    page.get_by_role("button", name="Cancel run").click()
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert live.call("getRun", runId=run_id)["status"] == "cancelled"


def test_a_paused_run_is_resumed(page: Page, live: LiveGateway) -> None:
    run_id = live.call("launchRun", workflow="slow", input={"seconds": 1})["runId"]
    sign_in(page, live, hash=f"#/runs/{run_id}")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#toast")).to_contain_text("Pause requested")
    expect(page.locator("#run-status")).to_have_text("paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#run-status")).to_have_text("finished")
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)
