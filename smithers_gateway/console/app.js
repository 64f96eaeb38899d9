// The console's shell: sign in, the connection, the header, and the views by URL hash
// (#/runs, #/runs/<id>, #/approvals, #/launch).

import { Conn, allows } from "./conn.js";
import { h } from "./dom.js";
import { approvalsView } from "./approvals.js";
import { launchView } from "./launch.js";
import { runView } from "./run.js";
import { runsView } from "./runs.js";

const boot = JSON.parse(document.getElementById("smithers-console-boot")?.textContent || '{"wsPath": "/"}');
const TOKEN_KEY = "smithers.console.token";
const main = document.getElementById("main");

export const app = {
  conn: null,
  auth: null,
  approvals: [],
  listeners: new Set(), // (event, payload) => void, for the view on screen
  can(scope, method) { return !!this.auth && allows(this.auth.scopes, scope, method); },
  call(method, params) { return this.conn.call(method, params); },
  toast(text, bad) {
    const t = document.getElementById("toast");
    t.textContent = text;
    t.className = `toast show${bad ? " bad" : ""}`;
    clearTimeout(t.timer);
    t.timer = setTimeout(() => { t.className = "toast"; }, 4000);
  },
  confirm(title, text) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-title").textContent = title;
    document.getElementById("confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    });
  },
  async refreshApprovals() {
    try { this.approvals = await this.call("listApprovals", { filter: { limit: 200 } }); } catch { return; }
    const count = document.getElementById("approval-count");
    count.textContent = String(this.approvals.length);
    count.setAttribute("aria-label", `${this.approvals.length} pending approvals`);
    for (const l of this.listeners) l("approvals.changed", {});
  },
};

let current = null; // the view on screen: {unmount?()}

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${boot.wsPath}`;
}

function signIn(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  document.getElementById("banner").hidden = true;
  main.replaceChildren(h("section", { class: "card sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", {}, "Paste a gateway token. It is kept for this browser tab only."),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    h("form", { id: "sign-in-form", onsubmit: (e) => {
      e.preventDefault();
      const token = e.target.querySelector("#token").value.trim();
      sessionStorage.setItem(TOKEN_KEY, token);
      start(token);
    } },
      h("div", { class: "field" },
        h("label", { for: "token" }, "Token"),
        h("input", { id: "token", type: "password", autocomplete: "current-password" })),
      h("button", { type: "submit", class: "primary" }, "Sign in"))));
  main.querySelector("#token").focus();
}

function showWho(auth) {
  document.getElementById("who").hidden = false;
  document.getElementById("nav").hidden = false;
  const who = auth.userId ? `${auth.userId} · ` : "";
  document.getElementById("who-text").textContent = `${who}${auth.role}`;
  document.getElementById("who-scopes").textContent = `scopes: ${(auth.scopes || []).join(", ") || "none"}`;
  for (const link of document.querySelectorAll("[data-needs]")) {
    link.hidden = !app.can(link.dataset.needs);
  }
}

// `probe`: a first try without a token (an open gateway, or a proxy that vouches for the
// caller, lets it in); a refusal then asks for a token without an error.
function start(token, probe = false) {
  if (app.conn) app.conn.stop();
  main.replaceChildren(h("p", { class: "meta" }, "Connecting…"));
  let first = true;
  app.conn = new Conn(wsUrl(), token, {
    onHello(hello) {
      app.auth = hello.auth;
      showWho(hello.auth);
      app.approvals = hello.snapshot?.approvals || [];
      app.refreshApprovals();
      if (first) { first = false; route(); } else for (const l of app.listeners) l("hello", hello);
    },
    onEvent(event, payload) {
      if (event.startsWith("approval.")) app.refreshApprovals();
      for (const l of app.listeners) l(event, payload);
    },
    onOnline(online) {
      document.getElementById("banner").hidden = online;
      document.body.classList.toggle("offline", !online);
    },
    onAuthFailed(message) {
      sessionStorage.removeItem(TOKEN_KEY);
      app.conn = null;
      signIn(probe ? undefined : `Sign-in refused: ${message}`);
    },
  });
  app.conn.start();
}

function route() {
  if (!app.conn || !app.auth) return;
  if (current?.unmount) current.unmount();
  app.listeners.clear();
  const hash = location.hash || "#/runs";
  const [, section, id] = hash.split("/");
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  main.replaceChildren();
  if (section === "runs" && id) current = runView(app, main, decodeURIComponent(id));
  else if (section === "approvals") current = approvalsView(app, main);
  else if (section === "launch") current = launchView(app, main, id && decodeURIComponent(id));
  else current = runsView(app, main);
}

window.addEventListener("hashchange", () => {
  route();
  main.focus(); // a screen reader starts on the new view
});
document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  if (app.conn) app.conn.stop();
  app.conn = null; app.auth = null;
  signIn();
});

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved === null) start("", true);
else start(saved);
