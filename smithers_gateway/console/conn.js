// The gateway's WebSocket protocol: connect with the token, RPC over the socket, broadcast
// events, run event streams resumed from their last seq after a reconnect.

export class Conn {
  constructor(wsUrl, token, hooks) {
    this.wsUrl = wsUrl;
    this.token = token;
    this.hooks = hooks; // {onHello, onEvent, onOnline(bool), onAuthFailed(message)}
    this.pending = new Map();
    this.streams = new Map(); // runId -> {lastSeq, onEvent, ended, streamId}
    this.nextId = 1;
    this.ws = null;
    this.ready = false;
    this.stopped = false;
    this.delay = 250;
    this.abandoned = 0; // streams of this socket that nobody follows any more
    this.recycling = false;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close(1000);
  }

  open() {
    const ws = new WebSocket(this.wsUrl);
    this.ws = ws;
    ws.onmessage = (msg) => this.receive(msg.data);
    ws.onclose = () => this.closed(ws);
    ws.onerror = () => {};
  }

  closed(ws) {
    if (ws !== this.ws) return;
    this.ready = false;
    for (const [, p] of this.pending) p.reject(new Error("offline"));
    this.pending.clear();
    if (this.stopped) return;
    if (this.recycling) { // our own doing: no banner, straight back
      this.recycling = false;
      this.open();
      return;
    }
    this.hooks.onOnline(false);
    const wait = this.delay * (0.75 + Math.random() / 2);
    this.delay = Math.min(this.delay * 2, 5000);
    setTimeout(() => { if (!this.stopped) this.open(); }, wait);
  }

  send(frame) {
    this.ws.send(JSON.stringify(frame));
  }

  request(method, params) {
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.send({ type: "req", id, method, params: params || {} });
    });
  }

  call(method, params) {
    if (!this.ready) return Promise.reject(new Error("offline: the gateway is not reachable"));
    return this.request(method, params);
  }

  receive(text) {
    let frame;
    try { frame = JSON.parse(text); } catch { return; }
    if (frame.type === "res") {
      const p = this.pending.get(frame.id);
      if (!p) return;
      this.pending.delete(frame.id);
      if (frame.ok) p.resolve(frame.payload);
      else {
        const err = new Error(frame.error?.message || "refused");
        err.code = frame.error?.code;
        p.reject(err);
      }
      return;
    }
    if (frame.type !== "event") return;
    if (frame.event === "connect.challenge") {
      this.connect();
    } else if (frame.event === "run.event") {
      this.streamEvent(frame.payload);
    } else if (frame.event === "run.error") {
      const s = this.streams.get(frame.payload?.runId);
      if (s) this.resume(frame.payload.runId);
    } else if (frame.event !== "tick" && frame.event !== "run.heartbeat") {
      this.hooks.onEvent(frame.event, frame.payload || {});
    }
  }

  async connect() {
    const params = {
      minProtocol: 1, maxProtocol: 1,
      client: { id: "smithers-console", version: "1", platform: "browser" },
    };
    if (this.token) params.auth = { token: this.token };
    let hello;
    try {
      hello = await this.request("connect", params);
    } catch (err) {
      if (err.code === "UNAUTHORIZED") {
        this.stopped = true;
        this.hooks.onAuthFailed(err.message);
      }
      return;
    }
    this.ready = true;
    this.delay = 250;
    this.abandoned = 0;
    this.hooks.onOnline(true);
    this.hooks.onHello(hello);
    for (const runId of this.streams.keys()) this.resume(runId);
  }

  // Follow a run's durable event log: every event once, in order, across reconnections.
  follow(runId, onEvent) {
    this.streams.set(runId, { lastSeq: -1, onEvent, ended: false });
    if (this.ready) this.resume(runId);
  }

  unfollow(runId) {
    const s = this.streams.get(runId);
    if (s && !s.ended) this.abandoned += 1;
    this.streams.delete(runId);
  }

  // (Re)open the stream after the last seq seen: after a reconnect, or when a run that
  // ended goes on (a rewind, a retry).
  async resume(runId) {
    const s = this.streams.get(runId);
    if (!s || !this.ready) return;
    s.ended = false;
    try {
      const opened = await this.request("streamRunEvents", { runId, afterSeq: s.lastSeq });
      s.streamId = opened.streamId;
    } catch (err) {
      if (err.code !== "RateLimited") return;
      // A socket holds at most 8 streams and the protocol cannot stop one: the streams of
      // runs no longer on screen go with the socket, and the followed ones resume.
      if (this.abandoned > 0) this.recycle();
      else setTimeout(() => this.resume(runId), 1000);
    }
  }

  recycle() {
    if (this.recycling || !this.ws) return;
    this.recycling = true;
    this.abandoned = 0;
    this.ws.close(4000, "streams recycled");
  }

  streamEvent(p) {
    const s = this.streams.get(p.runId);
    if (!s || typeof p.seq !== "number" || p.seq <= s.lastSeq) return;
    s.lastSeq = p.seq;
    if (p.event === "run.completed") s.ended = true;
    s.onEvent(p);
  }

  // A broadcast event of a followed run beyond its ended stream: the run went on.
  nudge(runId, eventSeq) {
    const s = this.streams.get(runId);
    if (s && s.ended && (eventSeq === undefined || eventSeq > s.lastSeq)) this.resume(runId);
  }
}

// The scopes a caller holds allow `scope` (or the method by name)?
const RANKS = {
  read: ["run:read", "cron:read", "observability:read"],
  execute: ["run:read", "cron:read", "observability:read", "run:write", "signal:submit", "cron:write"],
  approve: ["run:read", "cron:read", "observability:read", "run:write", "signal:submit", "cron:write", "approval:submit"],
};
const IMPLIES = {
  "run:admin": ["run:write", "run:read"],
  "run:write": ["run:read"],
  "cron:write": ["cron:read"],
};

export function allows(scopes, scope, method) {
  for (const grant of scopes || []) {
    if (grant === "*" || grant === "admin" || grant === scope || grant === method) return true;
    if ((IMPLIES[grant] || []).includes(scope)) return true;
    if ((RANKS[grant] || []).includes(scope)) return true;
    if (method && grant.endsWith(".*") && method.startsWith(grant.slice(0, -1))) return true;
  }
  return false;
}
