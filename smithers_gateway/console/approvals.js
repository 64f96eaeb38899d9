// Decisions: the approvals inbox across runs (approve or deny with a note; select and rank
// modes; several at once with submitApprovals).

import { h, fmtTime } from "./dom.js";

function keyOf(a) {
  return `${a.runId}/${a.nodeId}/${a.iteration}`;
}

function slug(a) {
  return keyOf(a).replace(/[^A-Za-z0-9_-]/g, "_");
}

// One approval as a card; `decided()` is called after it is decided.
export function approvalCard(app, a, { selectable, selected, decided }) {
  const id = slug(a);
  const canDecide = app.can("approval:submit", "submitApproval");
  const note = h("input", { id: `note-${id}`, type: "text", class: "note" });
  const title = a.requestTitle || a.label || a.nodeId;
  let choice = null;
  let ranked = (a.options || []).map((o) => o.key);
  const body = [];
  if (a.approvalMode === "select") {
    body.push(h("fieldset", { class: "options" }, h("legend", {}, "Choose one"),
      ...(a.options || []).map((o) => h("label", { class: "option" },
        h("input", { type: "radio", name: `choice-${id}`, value: o.key, disabled: !canDecide,
          onchange: () => { choice = o.key; } }), ` ${o.label || o.key}`))));
  } else if (a.approvalMode === "rank") {
    const list = h("ol", { class: "rank", "aria-label": "ranking" });
    const draw = () => list.replaceChildren(...ranked.map((k, i) => h("li", {},
      h("span", {}, (a.options.find((o) => o.key === k) || {}).label || k),
      canDecide ? h("span", { class: "row" },
        h("button", { type: "button", class: "small", "aria-label": `move ${k} up`, disabled: i === 0,
          onclick: () => { ranked.splice(i - 1, 0, ranked.splice(i, 1)[0]); draw(); } }, "↑"),
        h("button", { type: "button", class: "small", "aria-label": `move ${k} down`, disabled: i === ranked.length - 1,
          onclick: () => { ranked.splice(i + 1, 0, ranked.splice(i, 1)[0]); draw(); } }, "↓")) : null)));
    draw();
    body.push(list);
  }
  const decision = (approved) => {
    const d = { runId: a.runId, nodeId: a.nodeId, iteration: a.iteration, approved };
    if (note.value.trim()) d.note = note.value.trim();
    if (approved && a.approvalMode === "select") {
      if (!choice) return null;
      d.decision = { selected: choice };
    }
    if (approved && a.approvalMode === "rank") d.decision = { ranked: [...ranked] };
    return d;
  };
  const submit = async (approved) => {
    const d = decision(approved);
    if (!d) { app.toast("Choose an option first", true); return; }
    try {
      await app.call("submitApproval", d);
      app.toast(`${approved ? "Approved" : "Denied"}: ${title}`);
      decided();
    } catch (err) { app.toast(`Refused: ${err.message}`, true); }
  };
  const card = h("article", { class: "card approval", "data-approval": keyOf(a), "data-node": a.nodeId, "aria-labelledby": `t-${id}` },
    h("div", { class: "title-row" },
      selectable && canDecide ? h("input", { type: "checkbox", id: `pick-${id}`, class: "pick", checked: selected.has(keyOf(a)),
        "aria-label": `select ${title} (${a.runId})`,
        onchange: (e) => { if (e.target.checked) selected.add(keyOf(a)); else selected.delete(keyOf(a)); selectable(); } }) : null,
      h("h3", { id: `t-${id}` }, title)),
    a.requestSummary ? h("p", {}, a.requestSummary) : null,
    h("p", { class: "meta" },
      h("a", { href: `#/runs/${encodeURIComponent(a.runId)}` }, a.runId), ` · ${a.workflowKey || ""} · node ${a.nodeId}`,
      a.iteration ? ` #${a.iteration}` : "", ` · ${a.approvalMode} · asked ${fmtTime(a.requestedAtMs)}`),
    ...body,
    canDecide ? h("div", { class: "decide" },
      h("div", { class: "field" }, h("label", { for: `note-${id}` }, "Note"), note),
      h("div", { class: "row" },
        h("button", { type: "button", class: "primary approve", onclick: () => submit(true) },
          a.approvalMode === "approve" ? "Approve" : "Decide"),
        h("button", { type: "button", class: "danger deny", onclick: () => submit(false) }, "Deny")))
      : h("p", { class: "meta" }, "You may not decide approvals."));
  card.decision = decision;
  return card;
}

export function approvalsView(app, main) {
  const selected = new Set();
  const cards = new Map(); // kept across refreshes: a half-typed note survives
  const list = h("div", { class: "approvals" });
  const batchNote = h("input", { id: "batch-note", type: "text" });
  const count = h("span", { id: "batch-count" }, "0 selected");
  const canDecide = app.can("approval:submit", "submitApprovals");
  const batch = async (approved) => {
    const cards = [...list.querySelectorAll("article.approval")].filter((c) => selected.has(c.dataset.approval));
    if (!cards.length) { app.toast("Select approvals first", true); return; }
    const decisions = [];
    for (const c of cards) {
      const d = c.decision(approved);
      if (!d) { app.toast(`Choose an option for ${c.dataset.node} first`, true); return; }
      if (batchNote.value.trim() && !d.note) d.note = batchNote.value.trim();
      decisions.push(d);
    }
    try {
      await app.call("submitApprovals", { decisions });
      app.toast(`${decisions.length} decisions recorded`);
      selected.clear();
      refresh();
    } catch (err) { app.toast(`Refused: ${err.message}`, true); }
  };
  const updateCount = () => { count.textContent = `${selected.size} selected`; };
  main.append(h("section", { "aria-labelledby": "approvals-title" },
    h("h1", { id: "approvals-title" }, "Approvals"),
    canDecide ? h("div", { class: "card batch", role: "group", "aria-label": "decide the selected approvals" },
      count,
      h("div", { class: "field inline" }, h("label", { for: "batch-note" }, "Note for all"), batchNote),
      h("div", { class: "row" },
        h("button", { type: "button", class: "primary", id: "approve-selected", onclick: () => batch(true) }, "Approve selected"),
        h("button", { type: "button", class: "danger", id: "deny-selected", onclick: () => batch(false) }, "Deny selected"))) : null,
    list));

  function draw() {
    const live = new Set(app.approvals.map(keyOf));
    for (const k of [...selected]) if (!live.has(k)) selected.delete(k);
    updateCount();
    list.replaceChildren(...app.approvals.map((a) => {
      if (!cards.has(keyOf(a))) cards.set(keyOf(a), approvalCard(app, a, { selectable: updateCount, selected, decided: refresh }));
      return cards.get(keyOf(a));
    }));
    if (!app.approvals.length) list.append(h("p", { class: "empty" }, "Nothing waits for a decision."));
  }
  async function refresh() {
    await app.refreshApprovals(); // draws through "approvals.changed"
  }
  app.listeners.add((event) => {
    if (event === "approvals.changed") draw();
    else if (event === "hello") refresh();
  });
  refresh();
  return {};
}
