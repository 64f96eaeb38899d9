"""What a token may do shows in the console (and the gateway refuses the rest anyway); no
serious or critical accessibility violation at 1280 and 390 px; screenshots for people."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from .conftest import NARROW, WIDE, LiveGateway, shoot, sign_in, watch_errors


def test_a_token_without_approval_submit_sees_no_approve_button(
    page: Page, live: LiveGateway
) -> None:
    run_id = live.call("launchRun", workflow="approval")["runId"]
    live.wait_status(run_id, "waiting-approval")
    sign_in(page, live, token="viewer-token", hash="#/approvals")
    expect(page.locator("#who-text")).to_have_text("vic · viewer")
    expect(page.locator("#who-scopes")).to_have_text("scopes: run:read, run:write")
    card = page.locator(f'article.approval[data-approval="{run_id}/review/0"]')
    expect(card).to_contain_text("You may not decide approvals.")
    expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Approve selected")).to_have_count(0)
    page.goto(f"{live.url}/console/#/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("waiting-approval")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Send signal")).to_have_count(0)
    expect(page.get_by_role("button", name="Rewind to this frame")).to_have_count(0)
    refused = live.rpc(
        "submitApproval", token="viewer-token", runId=run_id, nodeId="review", approved=True
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["requiredScope"] == "approval:submit"
    assert live.call("getRun", runId=run_id)["status"] == "waiting-approval"


def test_a_refused_token_is_asked_again(page: Page, live: LiveGateway) -> None:
    sign_in_page = f"{live.url}/console/"
    page.goto(sign_in_page)
    page.get_by_label("Token").fill("wrong-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Sign-in refused")
    expect(page.get_by_label("Token")).to_be_visible()


def test_an_open_gateway_needs_no_sign_in(
    page: Page, tmp_path_factory: pytest.TempPathFactory
) -> None:
    open_gateway = LiveGateway(tmp_path_factory.mktemp("open"), auth=None)
    try:
        page.goto(f"{open_gateway.url}/")
        expect(page.locator("#who-text")).to_have_text("operator")
        expect(page.locator("#who-scopes")).to_have_text("scopes: *")
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        expect(page.get_by_label("Token")).to_have_count(0)
    finally:
        open_gateway.close()


def test_the_root_redirects_to_the_console(live: LiveGateway) -> None:
    import httpx

    res = httpx.get(f"{live.url}/", follow_redirects=False)
    assert res.status_code == 302 and res.headers["location"] == "/console/"


@pytest.fixture(
    params=[(WIDE, "light"), (NARROW, "light"), (WIDE, "dark"), (NARROW, "dark")],
    ids=["1280", "390", "1280-dark", "390-dark"],
)
def sized(request: pytest.FixtureRequest, browser: Browser) -> Iterator[tuple[Page, str]]:
    viewport, scheme = request.param
    context = browser.new_context(viewport=viewport, color_scheme=scheme)
    context.set_default_timeout(15_000)
    found = context.new_page()
    errors = watch_errors(found)
    try:
        yield found, request.node.callspec.id
    finally:
        context.close()
    assert errors == []


def serious(page: Page) -> list[str]:
    violations = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


def test_no_serious_accessibility_violations_and_screenshots(
    sized: tuple[Page, str], live: LiveGateway
) -> None:
    page, width = sized
    waiting = live.call("launchRun", workflow="approval", input={"msg": "for the eyes"})["runId"]
    live.wait_status(waiting, "waiting-approval")
    done = live.call("launchRun", workflow="parallel")["runId"]
    live.wait_status(done, "finished")
    sign_in(page, live, hash="#/runs")
    expect(page.locator(f'tr[data-run="{waiting}"]')).to_be_visible()
    found = {"runs": serious(page)}
    shoot(page, f"runs-{width}")
    page.goto(f"{live.url}/console/#/runs/{waiting}")
    expect(page.locator('.node[data-node="review"]')).to_be_visible()
    expect(page.locator("#timeline svg")).to_be_visible()
    page.locator('.node[data-node="draft"]').click()
    expect(page.locator("#node-details")).to_contain_text("FOR THE EYES")
    found["run"] = serious(page)
    shoot(page, f"run-{width}")
    page.goto(f"{live.url}/console/#/runs/{done}")
    expect(page.locator('.node[data-node="sum"]')).to_be_visible()
    found["parallel run"] = serious(page)
    shoot(page, f"run-parallel-{width}")
    page.goto(f"{live.url}/console/#/approvals")
    expect(page.locator("article.approval").first).to_be_visible()
    found["approvals"] = serious(page)
    page.goto(f"{live.url}/console/#/launch")
    expect(page.get_by_label("Workflow")).to_be_visible()
    found["launch"] = serious(page)
    assert found == {name: [] for name in found}
