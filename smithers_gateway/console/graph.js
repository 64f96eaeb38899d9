// SVG pictures of a run: its node tree as a graph (sequence top to bottom, parallel
// branches side by side, loops boxed with their iteration), and its attempts on a time axis.

const NS = "http://www.w3.org/2000/svg";
const LEAF_W = 176, LEAF_H = 46, GAP = 22, PAD = 12, HEAD = 22;
const LEAVES = new Set(["task", "approval", "signal", "timer", "wait", "subflow", "sleep"]);

export function el(tag, attrs, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

export function stateClass(state) {
  if (!state) return "pending";
  if (state.startsWith("waiting")) return "waiting";
  if (state === "in-progress" || state === "running" || state === "retrying") return "running";
  return state;
}

// The state of a node: the given iteration's, else its latest iteration's.
function stateOf(states, id, iteration) {
  if (iteration !== undefined && states.has(`${id}#${iteration}`)) return states.get(`${id}#${iteration}`);
  return states.get(`${id}#*`);
}

export function indexStates(nodeStates) {
  const states = new Map();
  const latest = new Map();
  for (const n of nodeStates) {
    states.set(`${n.nodeId}#${n.iteration}`, n);
    if (!latest.has(n.nodeId) || latest.get(n.nodeId).iteration <= n.iteration) latest.set(n.nodeId, n);
  }
  for (const [id, n] of latest) states.set(`${id}#*`, n);
  return states;
}

function measure(node) {
  const kids = (node.children || []).filter((c) => c.kind === "element");
  if (LEAVES.has(node.tag) || kids.length === 0) {
    node.w = LEAF_W; node.h = LEAF_H; node.kids = []; return;
  }
  node.kids = kids;
  kids.forEach(measure);
  if (node.tag === "parallel") {
    node.w = kids.reduce((s, k) => s + k.w, 0) + GAP * (kids.length - 1) + 2 * PAD;
    node.h = Math.max(...kids.map((k) => k.h)) + 2 * PAD + HEAD;
  } else {
    const boxed = node.tag !== "workflow" && node.tag !== "sequence";
    node.w = Math.max(...kids.map((k) => k.w)) + (boxed ? 2 * PAD : 0);
    node.h = kids.reduce((s, k) => s + k.h, 0) + GAP * (kids.length - 1) + (boxed ? 2 * PAD + HEAD : 0);
    node.boxed = boxed;
  }
}

function arrow(x1, y1, x2, y2) {
  return el("path", { d: `M${x1},${y1} L${x2},${y2}`, class: "edge", "marker-end": "url(#arrow)" });
}

function draw(node, x, y, g, ctx) {
  if (node.kids.length === 0) return drawLeaf(node, x, y, g, ctx);
  const p = node.props || {};
  if (node.tag === "parallel") {
    g.append(el("rect", { x, y, width: node.w, height: node.h, rx: 8, class: "group parallel" }));
    g.append(el("text", { x: x + PAD, y: y + 16, class: "group-label" }, "parallel"));
    let cx = x + PAD;
    for (const k of node.kids) {
      draw(k, cx + (k.w - k.w) / 2, y + PAD + HEAD, g, ctx);
      cx += k.w + GAP;
    }
    return;
  }
  let inner = x, cy = y;
  if (node.boxed) {
    g.append(el("rect", { x, y, width: node.w, height: node.h, rx: 8, class: `group ${node.tag}` }));
    const iter = p.iteration !== undefined ? ` · iteration ${Number(p.iteration) + 1}` : "";
    const max = p.maxIterations ? ` of ${p.maxIterations}` : "";
    const name = p.id ? ` ${p.id}` : "";
    g.append(el("text", { x: x + PAD, y: y + 16, class: "group-label" }, `${node.tag}${name}${iter}${iter ? max : ""}`));
    inner = x + PAD; cy = y + PAD + HEAD;
  }
  const width = node.boxed ? node.w - 2 * PAD : node.w;
  const loopIteration = node.tag === "loop" && p.iteration !== undefined ? Number(p.iteration) : ctx.iteration;
  node.kids.forEach((k, i) => {
    const kx = inner + (width - k.w) / 2;
    draw(k, kx, cy, g, { ...ctx, iteration: loopIteration });
    if (i < node.kids.length - 1) {
      const mid = inner + width / 2;
      g.append(arrow(mid, cy + k.h + 2, mid, cy + k.h + GAP - 3));
    }
    cy += k.h + GAP;
  });
}

function drawLeaf(node, x, y, g, ctx) {
  const p = node.props || {};
  const id = p.id || node.tag;
  const iteration = p.iteration !== undefined ? Number(p.iteration) : ctx.iteration;
  const st = stateOf(ctx.states, id, iteration);
  const state = st ? st.state : "pending";
  const cls = stateClass(state);
  const label = `${id}: ${node.tag}, ${state}`;
  const item = el("g", {
    class: `node ${cls}${ctx.selected === id ? " selected" : ""}`,
    tabindex: "0", role: "button", "aria-label": label, "data-node": id,
    "data-state": state, "data-iteration": String(st ? st.iteration : iteration ?? 0),
  });
  item.append(el("title", {}, label));
  item.append(el("rect", { x, y, width: LEAF_W, height: LEAF_H, rx: 6 }));
  item.append(el("text", { x: x + 10, y: y + 19, class: "node-id" }, id.length > 18 ? id.slice(0, 17) + "…" : id));
  item.append(el("text", { x: x + 10, y: y + 36, class: "node-state" }, `${node.tag} · ${state}`));
  g.append(item);
}

// The node tree of a frame (its `xmlJson`) as an SVG graph; `states`: indexStates(...).
export function graphSvg(tree, states, selected) {
  measure(tree);
  const w = tree.w + 4, h = tree.h + 4;
  const svg = el("svg", {
    viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: "graph",
    role: "group", "aria-label": "node graph",
  });
  const defs = el("defs", {}, el("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto",
  }, el("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" })));
  svg.append(defs);
  const g = el("g", { transform: "translate(2,2)" });
  draw(tree, 0, 0, g, { states, selected, iteration: undefined });
  svg.append(g);
  return svg;
}

// Attempts as bars on a time axis; nodes still waiting as hatched bars up to now.
export function timelineSvg(attempts, nodeStates, startMs, endMs, width = 670) {
  const rows = [];
  for (const a of attempts) {
    rows.push({ label: `${a.nodeId}${a.iteration ? "#" + a.iteration : ""} try ${a.attempt}`, from: a.startedAtMs, to: a.finishedAtMs || endMs, state: a.state, retry: a.attempt > 1 });
  }
  for (const n of nodeStates) {
    if (n.state && n.state.startsWith("waiting")) {
      rows.push({ label: `${n.nodeId} waits`, from: n.updatedAtMs, to: endMs, state: n.state });
    }
  }
  const labelW = 130, barW = Math.max(360, width - labelW - 30), rowH = 22, top = 24;
  const w = labelW + barW + 20, h = top + rows.length * rowH + 8;
  const span = Math.max(1, endMs - startMs);
  const xOf = (t) => labelW + ((Math.max(startMs, t) - startMs) / span) * barW;
  const svg = el("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: "timeline", role: "img",
    "aria-label": `timeline of ${rows.length} attempts and waits` });
  svg.append(el("defs", {}, el("pattern", { id: "hatch", width: "6", height: "6", patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
    el("rect", { width: "6", height: "6", class: "hatch-bg" }), el("line", { x1: "0", y1: "0", x2: "0", y2: "6", class: "hatch-line" }))));
  for (let i = 0; i <= 4; i++) {
    const x = labelW + (barW * i) / 4;
    svg.append(el("line", { x1: x, x2: x, y1: 16, y2: h, class: "tick" }));
    svg.append(el("text", { x, y: 12, class: "tick-label", "text-anchor": "middle" }, fmtSpan((span * i) / 4)));
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    svg.append(el("text", { x: 0, y: y + 14, class: "row-label" }, r.label));
    const x1 = xOf(r.from), x2 = Math.max(x1 + 3, xOf(r.to));
    const bar = el("rect", { x: x1, y: y + 3, width: x2 - x1, height: rowH - 8, rx: 3,
      class: `bar ${stateClass(r.state)}${r.retry ? " retry" : ""}` });
    bar.append(el("title", {}, `${r.label}: ${r.state}, ${fmtSpan((r.to || endMs) - r.from)}`));
    svg.append(bar);
  });
  return svg;
}

export function fmtSpan(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} m ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} m`;
}
