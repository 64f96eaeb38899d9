// A run's page: its graph (live, or any frame through the scrubber, with rewind and fork),
// the attempts timeline, the event log (live, filterable), a node's output and error on
// click, and the decisions: approvals, signal, cancel, resume.

import { h, fmtTime } from "./dom.js";
import { approvalCard } from "./approvals.js";
import { badge } from "./runs.js";
import { fmtSpan, graphSvg, indexStates, timelineSvg } from "./graph.js";

const TERMINAL = new Set(["finished", "failed", "cancelled"]);

function parseTree(frame) {
  try { return JSON.parse(frame.xmlJson); } catch { return null; }
}

export function runView(app, main, runId) {
  const state = { run: null, nodes: [], attempts: [], frames: [], frameIndex: null, selected: null, events: [], typeFilter: "" };
  let timer = null;

  const head = h("div", { class: "run-head" });
  const actions = h("div", { class: "card actions", role: "group", "aria-label": "run actions" });
  const decisions = h("div", { class: "run-approvals" });
  const graphBox = h("div", { class: "graph-box", id: "graph", tabindex: "0", role: "region", "aria-label": "graph, scrollable" });
  const frameLabel = h("output", { id: "frame-label", for: "frame-range" });
  const range = h("input", { type: "range", id: "frame-range", min: 0, max: 0, value: 0, step: 1 });
  const scrubber = h("div", { class: "scrubber" },
    h("label", { for: "frame-range" }, "Frame"), range, frameLabel,
    h("div", { class: "row" },
      h("button", { type: "button", id: "frame-live", class: "small", onclick: () => { state.frameIndex = null; drawGraph(); } }, "Live"),
      app.can("run:admin", "rewindRun") ? h("button", { type: "button", id: "rewind", class: "danger small", onclick: () => rewind() }, "Rewind to this frame") : null,
      app.can("run:write", "forkRun") ? h("button", { type: "button", id: "fork", class: "small", onclick: () => fork() }, "Fork from this frame") : null));
  const details = h("div", { class: "card node-details", id: "node-details", "aria-live": "polite" },
    h("p", { class: "meta" }, "Select a node to see its output and attempts."));
  const timeline = h("div", { class: "timeline-box", id: "timeline", tabindex: "0", role: "region", "aria-label": "timeline, scrollable" });
  const typeSel = h("select", { id: "log-filter", onchange: (e) => { state.typeFilter = e.target.value; drawLog(); } },
    h("option", { value: "" }, "all events"));
  const log = h("ol", { class: "event-log", id: "event-log", "aria-label": "event log" });

  main.append(h("section", { class: "run", "aria-labelledby": "run-title" },
    head, actions, decisions,
    h("div", { class: "run-grid" },
      h("section", { class: "card", "aria-labelledby": "graph-title" }, h("h2", { id: "graph-title" }, "Graph"), graphBox, scrubber),
      h("div", { class: "side" }, details)),
    h("section", { class: "card", "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Timeline"), timeline),
    h("section", { class: "card", "aria-labelledby": "log-title" },
      h("div", { class: "title-row" }, h("h2", { id: "log-title" }, "Events"),
        h("div", { class: "field inline" }, h("label", { for: "log-filter" }, "Type"), typeSel)),
      h("div", { class: "log-wrap", tabindex: "0", role: "region", "aria-label": "events, scrollable" }, log))));

  range.addEventListener("input", () => { state.frameIndex = Number(range.value); drawGraph(); });

  async function load() {
    try {
      const [run, nodes, attempts, frames] = await Promise.all([
        app.call("getRun", { runId }),
        app.call("listNodeStates", { runId }),
        app.call("listAttempts", { runId }),
        app.call("listFrames", { runId, limit: 1000 }),
      ]);
      Object.assign(state, { run, nodes, attempts, frames: frames.slice().reverse() });
    } catch (err) {
      if (err.code === "NOT_FOUND") main.replaceChildren(h("h1", { id: "run-title" }, `No run ${runId}`));
      return;
    }
    drawHead(); drawActions(); drawDecisions(); drawGraph(); drawTimeline();
  }
  function soon() { clearTimeout(timer); timer = setTimeout(load, 120); }

  function drawHead() {
    const r = state.run;
    const duration = r.startedAtMs ? fmtSpan((r.finishedAtMs || Date.now()) - r.startedAtMs) : "—";
    head.replaceChildren(
      h("p", { class: "crumb" }, h("a", { href: "#/runs" }, "Runs"), " / ", r.workflowKey || r.workflowName),
      h("div", { class: "title-row" }, h("h1", { id: "run-title" }, r.runId), h("span", { id: "run-status" }, badge(r.status))),
      h("p", { class: "meta" }, `started ${fmtTime(r.startedAtMs)} · ${duration}`,
        r.runState?.blocked ? ` · waiting for ${r.runState.blocked.kind} ${r.runState.blocked.nodeId}` : ""));
  }

  function drawActions() {
    const r = state.run;
    const live = !TERMINAL.has(r.status);
    const parts = [];
    if (app.can("run:write", "cancelRun") && live) {
      parts.push(h("button", { type: "button", class: "danger", id: "cancel-run", onclick: async () => {
        if (!(await app.confirm("Cancel this run?", `${runId} stops; its running tasks are cancelled.`))) return;
        act("cancelRun", { runId }, "Cancel requested");
      } }, "Cancel run"));
    }
    if (app.can("run:write", "pauseRun") && r.status === "running") {
      parts.push(h("button", { type: "button", id: "pause-run", onclick: () => act("pauseRun", { runId }, "Pause requested") }, "Pause"));
    }
    if (app.can("run:write", "resumeRun") && (r.status === "paused" || r.status === "failed")) {
      parts.push(h("button", { type: "button", id: "resume-run", onclick: () => act("resumeRun", { runId }, "Resume requested") }, "Resume"));
    }
    if (app.can("signal:submit", "submitSignal") && live) {
      const b = r.runState?.blocked;
      const name = b && (b.kind === "signal" || b.kind === "event") ? (b.signalName || b.nodeId) : "";
      const payload = h("textarea", { id: "signal-payload", rows: 2, spellcheck: "false", "aria-describedby": "signal-error" }, "{}");
      const signalName = h("input", { id: "signal-name", type: "text", value: name, required: true });
      const error = h("span", { class: "error", id: "signal-error", role: "alert" });
      parts.push(h("form", { class: "signal", id: "signal-form", onsubmit: (e) => {
        e.preventDefault();
        let data;
        try { data = JSON.parse(payload.value || "null"); } catch (err) {
          error.textContent = `Not valid JSON: ${err.message}`; payload.setAttribute("aria-invalid", "true"); return;
        }
        if (!signalName.value.trim()) { error.textContent = "Name the signal"; return; }
        error.textContent = ""; payload.setAttribute("aria-invalid", "false");
        act("submitSignal", { runId, signalName: signalName.value.trim(), payload: data }, "Signal sent");
      } },
        h("div", { class: "field" }, h("label", { for: "signal-name" }, "Signal"), signalName),
        h("div", { class: "field" }, h("label", { for: "signal-payload" }, "Payload (JSON)"), payload),
        error,
        h("button", { type: "submit", id: "send-signal" }, "Send signal")));
    }
    actions.hidden = parts.length === 0;
    // keep a half-typed signal while the run changes
    if (actions.querySelector("#signal-form") && parts.some((p) => p.id === "signal-form")) {
      const keep = actions.querySelector("#signal-form");
      actions.replaceChildren(...parts.map((p) => (p.id === "signal-form" ? keep : p)));
    } else actions.replaceChildren(...parts);
  }

  async function act(method, params, done) {
    try {
      await app.call(method, params);
      app.toast(done);
      app.conn.nudge(runId);
      soon();
    } catch (err) { app.toast(`Refused: ${err.message}`, true); }
  }

  const cards = new Map();
  function drawDecisions() {
    const mine = app.approvals.filter((a) => a.runId === runId);
    decisions.replaceChildren(...mine.map((a) => {
      const k = `${a.nodeId}/${a.iteration}`;
      if (!cards.has(k)) cards.set(k, approvalCard(app, a, { selectable: null, selected: new Set(), decided: () => { app.refreshApprovals(); soon(); } }));
      return cards.get(k);
    }));
  }

  function drawGraph() {
    const frames = state.frames;
    if (!frames.length) { graphBox.replaceChildren(h("p", { class: "meta" }, "No frame yet.")); return; }
    const last = frames.length - 1;
    const index = state.frameIndex === null ? last : Math.min(state.frameIndex, last);
    range.max = String(last);
    range.value = String(index);
    const frame = frames[index];
    frameLabel.textContent = `${frame.frameNo} of ${frames[last].frameNo} · ${fmtTime(frame.createdAtMs)}${state.frameIndex === null ? " (live)" : ""}`;
    range.setAttribute("aria-valuetext", `frame ${frame.frameNo}`);
    const tree = parseTree(frame);
    if (!tree) return;
    const svg = graphSvg(tree, indexStates(state.nodes), state.selected);
    for (const node of svg.querySelectorAll(".node")) {
      const open = () => select(node.dataset.node, Number(node.dataset.iteration));
      node.addEventListener("click", open);
      node.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
    }
    graphBox.replaceChildren(svg);
  }

  async function select(nodeId, iteration) {
    state.selected = nodeId;
    drawGraph();
    const focus = graphBox.querySelector(`[data-node="${CSS.escape(nodeId)}"]`);
    if (focus) focus.focus();
    const [attempts, output] = await Promise.all([
      app.call("listAttempts", { runId, nodeId, iteration }).catch(() => []),
      app.call("getNodeOutput", { runId, nodeId, iteration }).catch(() => null),
    ]);
    const node = state.nodes.find((n) => n.nodeId === nodeId && n.iteration === iteration);
    const parts = [h("h2", {}, `Node ${nodeId}`), h("p", { class: "meta" }, `iteration ${iteration} · ${node ? node.state : "pending"}`)];
    if (output) parts.push(h("h3", {}, "Output"), h("pre", { class: "output", tabindex: "0" }, JSON.stringify(output.output, null, 2)));
    if (node?.error) parts.push(h("h3", {}, "Error"), h("pre", { class: "error-text", tabindex: "0" }, JSON.stringify(node.error, null, 2)));
    if (attempts.length) {
      parts.push(h("h3", {}, "Attempts"), h("ol", { class: "attempts" }, ...attempts.map((a) => h("li", {},
        h("span", {}, `#${a.attempt} ${a.state} · ${fmtTime(a.startedAtMs)} · ${a.finishedAtMs ? fmtSpan(a.finishedAtMs - a.startedAtMs) : "running"}`),
        a.error ? h("pre", { class: "error-text", tabindex: "0" }, [a.error.message, a.error.traceback].filter(Boolean).join("\n\n") || JSON.stringify(a.error, null, 2)) : null))));
    }
    if (app.can("run:write", "retryTask") && node?.state === "failed") {
      parts.push(h("button", { type: "button", onclick: () => act("retryTask", { runId, nodeId, iteration }, "Retry requested") }, "Retry this task"));
    }
    details.replaceChildren(...parts);
  }

  function drawTimeline() {
    const starts = state.attempts.map((a) => a.startedAtMs).filter(Boolean);
    const start = state.run.startedAtMs || Math.min(...starts, Date.now());
    const end = state.run.finishedAtMs && TERMINAL.has(state.run.status) ? state.run.finishedAtMs : Date.now();
    if (!state.attempts.length && !state.nodes.some((n) => n.state.startsWith("waiting"))) {
      timeline.replaceChildren(h("p", { class: "meta" }, "No attempts yet."));
      return;
    }
    timeline.replaceChildren(timelineSvg(state.attempts, state.nodes, start, Math.max(end, start + 1), timeline.clientWidth));
  }

  function describe(e) {
    const p = e.payload || {};
    const bits = [];
    if (p.nodeId) bits.push(p.iteration ? `${p.nodeId}#${p.iteration}` : p.nodeId);
    if (p.status) bits.push(p.status);
    if (p.approved !== undefined) bits.push(p.approved ? "approved" : "denied");
    if (p.note) bits.push(`“${p.note}”`);
    if (p.signalName) bits.push(p.signalName);
    if (p.text) bits.push(String(p.text).slice(0, 120));
    if (p.toFrameNo !== undefined) bits.push(`to frame ${p.toFrameNo}`);
    return bits.join(" · ");
  }

  function logItem(e) {
    return h("li", { "data-seq": String(e.seq), "data-type": e.event },
      h("span", { class: "seq" }, String(e.seq)),
      h("time", {}, e.payload?.timestampMs ? new Date(e.payload.timestampMs).toLocaleTimeString() : ""),
      h("span", { class: `etype t-${e.event.split(".")[0]}` }, e.event),
      h("span", { class: "edesc" }, describe(e)));
  }

  function drawLog() {
    const shown = state.events.filter((e) => !state.typeFilter || e.event === state.typeFilter);
    log.replaceChildren(...shown.map(logItem));
  }

  const types = new Set();
  function onStreamEvent(e) {
    state.events.push(e);
    if (!types.has(e.event)) {
      types.add(e.event);
      typeSel.append(h("option", { value: e.event }, e.event));
    }
    if (!state.typeFilter || e.event === state.typeFilter) {
      const stick = log.parentElement.scrollTop + log.parentElement.clientHeight >= log.parentElement.scrollHeight - 8;
      log.append(logItem(e));
      if (stick) log.parentElement.scrollTop = log.parentElement.scrollHeight;
    }
    soon();
  }

  async function rewind() {
    const frame = state.frames[Number(range.value)];
    if (!frame) return;
    if (!(await app.confirm(`Rewind to frame ${frame.frameNo}?`, "The work done after this frame is forgotten and runs again."))) return;
    try {
      const done = await app.call("rewindRun", { runId, frameNo: frame.frameNo, confirm: true });
      app.toast(`Rewound: ${done.deletedFrames} frames, ${done.deletedAttempts} attempts forgotten`);
      state.frameIndex = null;
      app.conn.nudge(runId);
      soon();
    } catch (err) { app.toast(`Refused: ${err.message}`, true); }
  }

  async function fork() {
    const frame = state.frames[Number(range.value)];
    if (!frame) return;
    if (!(await app.confirm(`Fork from frame ${frame.frameNo}?`, "A new run starts from this frame; this one is left as it is."))) return;
    try {
      const child = await app.call("forkRun", { runId, frameNo: frame.frameNo });
      app.toast(`Forked: ${child.runId}`);
      location.hash = `#/runs/${encodeURIComponent(child.runId)}`;
    } catch (err) { app.toast(`Refused: ${err.message}`, true); }
  }

  app.listeners.add((event, payload) => {
    if (event === "hello") { soon(); return; }
    if (event === "approvals.changed") drawDecisions();
    if (payload.runId === runId) { app.conn.nudge(runId, payload.eventSeq); soon(); }
  });
  app.conn.follow(runId, onStreamEvent);
  const tick = setInterval(() => { if (state.run && !TERMINAL.has(state.run.status)) { drawHead(); drawTimeline(); } }, 2000);
  let resizing = null;
  const resized = () => { clearTimeout(resizing); resizing = setTimeout(() => { if (state.run) drawTimeline(); }, 150); };
  window.addEventListener("resize", resized);
  load();
  return {
    unmount() {
      app.conn.unfollow(runId);
      clearInterval(tick); clearTimeout(timer); clearTimeout(resizing);
      window.removeEventListener("resize", resized);
    },
  };
}
