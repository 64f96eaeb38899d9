// Launch: pick a workflow, fill the form generated from its input schema (validated here),
// or write the input as JSON.

import { h } from "./dom.js";
import { formFields, readForm, renderForm } from "./forms.js";

export function launchView(app, main, chosen) {
  const section = h("section", { "aria-labelledby": "launch-title" }, h("h1", { id: "launch-title" }, "Launch a run"));
  main.append(section);
  if (!app.can("run:write", "launchRun")) {
    section.append(h("p", {}, "Your token may not launch runs."));
    return {};
  }
  const wfSel = h("select", { id: "launch-workflow" });
  const area = h("div", { class: "launch-input" });
  const form = h("form", { class: "card", id: "launch-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "launch-workflow" }, "Workflow"), wfSel),
    h("p", { class: "meta", id: "launch-description" }),
    area,
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary", id: "launch-submit" }, "Launch")));
  section.append(form);
  let workflows = [];
  let fields = null;
  let asJson = false;

  function drawInput() {
    const w = workflows.find((x) => x.key === wfSel.value);
    const about = form.querySelector("#launch-description");
    about.replaceChildren(w?.description || "");
    if (w?.hasUi) about.append(w.description ? " · " : "", h("a", { href: w.uiPath }, "the workflow's own page"));
    fields = formFields(w?.inputSchema);
    area.replaceChildren();
    if (fields && !asJson) {
      area.append(h("fieldset", { class: "schema-form" }, h("legend", {}, "Input"), ...renderForm(fields, "in")));
    } else {
      area.append(h("div", { class: "field" },
        h("label", { for: "launch-json" }, "Input (JSON object)"),
        h("textarea", { id: "launch-json", rows: 6, spellcheck: "false", "aria-describedby": "launch-json-error" }, "{}"),
        h("span", { class: "error", id: "launch-json-error", role: "alert" })));
    }
    if (fields) {
      area.append(h("button", { type: "button", class: "link", id: "toggle-json",
        onclick: () => { asJson = !asJson; drawInput(); } }, asJson ? "Use the form" : "Edit as JSON"));
    }
  }

  function readInput() {
    if (fields && !asJson) return readForm(form, fields, "in");
    const text = form.querySelector("#launch-json");
    const error = form.querySelector("#launch-json-error");
    let value;
    try { value = JSON.parse(text.value || "{}"); } catch (err) {
      error.textContent = `Not valid JSON: ${err.message}`; text.setAttribute("aria-invalid", "true"); return null;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      error.textContent = "The input must be a JSON object"; text.setAttribute("aria-invalid", "true"); return null;
    }
    error.textContent = ""; text.setAttribute("aria-invalid", "false");
    return value;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = readInput();
    if (input === null) return;
    try {
      const started = await app.call("launchRun", { workflow: wfSel.value, input });
      app.toast(`Launched ${started.runId}`);
      location.hash = `#/runs/${encodeURIComponent(started.runId)}`;
    } catch (err) { app.toast(`Refused: ${err.message}`, true); }
  });
  wfSel.addEventListener("change", () => { asJson = false; drawInput(); });

  app.call("listWorkflows").then((found) => {
    workflows = found;
    wfSel.replaceChildren(...found.map((w) => h("option", { value: w.key, selected: w.key === chosen }, w.readableName || w.key)));
    drawInput();
  }).catch((err) => app.toast(err.message, true));
  return {};
}
