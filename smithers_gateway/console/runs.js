// Runs: a live list with counts per status and filters by status and workflow.

import { h, fmtTime } from "./dom.js";
import { fmtSpan } from "./graph.js";

const STATUSES = ["running", "waiting-approval", "waiting-event", "waiting-timer", "paused", "finished", "failed", "cancelled"];

export function badge(status) {
  return h("span", { class: `badge s-${status}` }, status);
}

// What a run waits for, and whom: an approval's allowed users or scopes when it names them.
function waitingFor(run, approvals) {
  const b = run.runState?.blocked;
  if (!b) return "—";
  if (b.kind === "approval") {
    const a = approvals.find((x) => x.runId === run.runId && x.nodeId === b.nodeId);
    const whom = a?.allowedUsers?.length ? a.allowedUsers.join(", ")
      : a?.allowedScopes?.length ? `scope ${a.allowedScopes.join(", ")}` : "an operator";
    return `${whom}: approval ${b.nodeId}`;
  }
  const what = b.kind === "signal" || b.kind === "event" ? "a signal" : b.kind;
  return `${what}: ${b.nodeId}`;
}

export function runsView(app, main) {
  const filter = { status: "", workflow: "" };
  let timer = null;
  const counts = h("ul", { class: "counts", "aria-label": "runs per status" });
  const tbody = h("tbody");
  const statusSel = h("select", { id: "filter-status", onchange: (e) => { filter.status = e.target.value; load(); } },
    h("option", { value: "" }, "any status"), ...STATUSES.map((s) => h("option", { value: s }, s)));
  const wfSel = h("select", { id: "filter-workflow", onchange: (e) => { filter.workflow = e.target.value; load(); } },
    h("option", { value: "" }, "any workflow"));
  main.append(h("section", { "aria-labelledby": "runs-title" },
    h("div", { class: "title-row" }, h("h1", { id: "runs-title" }, "Runs"),
      app.can("run:write") ? h("a", { href: "#/launch", class: "button primary" }, "Launch a run") : null),
    counts,
    h("div", { class: "filters" },
      h("div", { class: "field inline" }, h("label", { for: "filter-status" }, "Status"), statusSel),
      h("div", { class: "field inline" }, h("label", { for: "filter-workflow" }, "Workflow"), wfSel)),
    h("div", { class: "table-wrap" }, h("table", { class: "runs" },
      h("caption", { class: "sr-only" }, "Runs, newest first"),
      h("thead", {}, h("tr", {}, ...["Run", "Workflow", "Status", "Started", "Duration", "Waiting for"].map((c) => h("th", { scope: "col" }, c)))),
      tbody))));

  app.call("listWorkflows").then((wfs) => {
    for (const w of wfs) wfSel.append(h("option", { value: w.key }, w.readableName || w.key));
  }).catch(() => {});

  async function load() {
    let all, shown;
    try {
      all = await app.call("listRuns", { filter: { limit: 200 } });
      shown = all.filter((r) => (!filter.status || r.status === filter.status) && (!filter.workflow || r.workflowName === filter.workflow));
    } catch { return; }
    const tally = {};
    for (const r of all) tally[r.status] = (tally[r.status] || 0) + 1;
    counts.replaceChildren(...STATUSES.filter((s) => tally[s]).map((s) =>
      h("li", {}, h("button", { type: "button", class: `count-chip s-${s}`, "aria-pressed": String(filter.status === s),
        onclick: () => { filter.status = filter.status === s ? "" : s; statusSel.value = filter.status; load(); } },
      h("strong", {}, String(tally[s])), ` ${s}`))));
    if (!all.length) counts.append(h("li", {}, "No runs yet."));
    const now = Date.now();
    tbody.replaceChildren(...shown.map((r) => h("tr", { "data-run": r.runId, "data-status": r.status, "data-workflow": r.workflowName },
      h("td", { "data-label": "Run" }, h("a", { href: `#/runs/${encodeURIComponent(r.runId)}` }, r.runId)),
      h("td", { "data-label": "Workflow" }, r.workflowName || "—"),
      h("td", { "data-label": "Status" }, badge(r.status)),
      h("td", { "data-label": "Started" }, fmtTime(r.startedAtMs)),
      h("td", { "data-label": "Duration" }, r.startedAtMs ? fmtSpan((r.finishedAtMs || now) - r.startedAtMs) : "—"),
      h("td", { "data-label": "Waiting for" }, waitingFor(r, app.approvals)))));
    if (!shown.length) tbody.append(h("tr", {}, h("td", { colspan: 6 }, "No runs match.")));
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(load, 150);
  }
  app.listeners.add(() => soon());
  const tick = setInterval(load, 5000); // durations move on
  load();
  return { unmount() { clearInterval(tick); clearTimeout(timer); } };
}
