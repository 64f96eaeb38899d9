// A launch form generated from a workflow's input JSON schema, validated in the browser;
// anything the form cannot draw falls back to a JSON editor.

import { h } from "./dom.js";

function resolve(schema, root) {
  if (schema && schema.$ref && schema.$ref.startsWith("#/$defs/")) {
    return root.$defs?.[schema.$ref.slice(8)] || {};
  }
  if (schema && schema.anyOf) {
    const notNull = schema.anyOf.filter((s) => s.type !== "null");
    if (notNull.length === 1) return { ...resolve(notNull[0], root), nullable: true, default: schema.default, title: schema.title, description: schema.description };
  }
  return schema || {};
}

function simple(s) {
  return s.enum || ["string", "integer", "number", "boolean"].includes(s.type);
}

// Fields of the schema, or null when the form cannot draw it (then: the JSON editor).
export function formFields(schema) {
  if (!schema || schema.type !== "object" || !schema.properties) return null;
  const required = new Set(schema.required || []);
  const fields = [];
  for (const [name, raw] of Object.entries(schema.properties)) {
    const s = resolve(raw, schema);
    fields.push({ name, schema: s, required: required.has(name), json: !simple(s) });
  }
  return fields;
}

export function renderForm(fields, idPrefix) {
  return fields.map((f) => {
    const id = `${idPrefix}-${f.name}`;
    const s = f.schema;
    const title = s.title || f.name;
    const hint = s.description ? h("small", { id: `${id}-hint` }, s.description) : null;
    let input;
    if (s.enum) {
      input = h("select", { id, name: f.name },
        ...(f.required ? [] : [h("option", { value: "" }, "(none)")]),
        ...s.enum.map((v) => h("option", { value: JSON.stringify(v), selected: s.default === v }, String(v))));
    } else if (s.type === "boolean") {
      input = h("input", { id, name: f.name, type: "checkbox", checked: s.default === true });
    } else if (f.json) {
      input = h("textarea", { id, name: f.name, rows: 3, spellcheck: "false" },
        s.default !== undefined ? JSON.stringify(s.default) : "");
    } else {
      input = h("input", {
        id, name: f.name, type: s.type === "string" ? "text" : "number",
        step: s.type === "integer" ? "1" : "any",
        value: s.default !== undefined && s.default !== null ? String(s.default) : "",
        required: f.required,
      });
    }
    if (hint) input.setAttribute("aria-describedby", `${id}-hint`);
    return h("div", { class: "field" },
      h("label", { for: id }, title + (f.required ? " *" : "")), input, hint,
      h("span", { class: "error", id: `${id}-error`, role: "alert" }));
  });
}

function check(f, value) {
  const s = f.schema;
  if (value === undefined) return f.required ? "required" : null;
  if (value === null) return s.nullable ? null : "required";
  if (s.type === "integer" && !Number.isInteger(value)) return "must be a whole number";
  if ((s.type === "number" || s.type === "integer") && typeof value === "number") {
    if (s.minimum !== undefined && value < s.minimum) return `must be at least ${s.minimum}`;
    if (s.maximum !== undefined && value > s.maximum) return `must be at most ${s.maximum}`;
    if (s.exclusiveMinimum !== undefined && value <= s.exclusiveMinimum) return `must be more than ${s.exclusiveMinimum}`;
    if (s.exclusiveMaximum !== undefined && value >= s.exclusiveMaximum) return `must be less than ${s.exclusiveMaximum}`;
  }
  if (s.type === "string" && typeof value === "string") {
    if (s.minLength !== undefined && value.length < s.minLength) return `needs at least ${s.minLength} characters`;
    if (s.maxLength !== undefined && value.length > s.maxLength) return `takes at most ${s.maxLength} characters`;
    if (s.pattern && !new RegExp(s.pattern, "u").test(value)) return `must match ${s.pattern}`;
  }
  if (s.type === "array" && !Array.isArray(value)) return "must be a JSON list";
  if (s.type === "object" && (typeof value !== "object" || Array.isArray(value))) return "must be a JSON object";
  return null;
}

// The input the form holds, or null after marking the fields in error.
export function readForm(form, fields, idPrefix) {
  const input = {};
  let ok = true;
  for (const f of fields) {
    const control = form.querySelector(`#${CSS.escape(`${idPrefix}-${f.name}`)}`);
    const error = form.querySelector(`#${CSS.escape(`${idPrefix}-${f.name}-error`)}`);
    let value, problem = null;
    const s = f.schema;
    if (s.enum) value = control.value === "" ? undefined : JSON.parse(control.value);
    else if (s.type === "boolean") value = control.checked;
    else if (control.value.trim() === "") value = s.type === "string" && f.required ? "" : undefined;
    else if (f.json) {
      try { value = JSON.parse(control.value); } catch { problem = "is not valid JSON"; }
    } else if (s.type === "string") value = control.value;
    else value = Number(control.value);
    if (s.type === "string" && value === "" && f.required && s.minLength === undefined) problem = "required";
    problem = problem || check(f, value);
    error.textContent = problem ? `${s.title || f.name} ${problem}` : "";
    control.setAttribute("aria-invalid", problem ? "true" : "false");
    if (problem) ok = false;
    else if (value !== undefined) input[f.name] = value;
  }
  return ok ? input : null;
}
