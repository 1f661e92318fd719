// liveroom.js: a small client for the liveroom WebSocket protocol (docs/protocol.md),
// used by the viewer and host pages. Plain JS, no build step. Documented in
// docs/client.md.
//
//   const c = new Liveroom.Client({ token });
//   c.on("chat", (room, line) => ...);          // every chat line once, in seq order
//   c.on("status", (s, detail) => ...);         // "connecting" | "online" | "reconnecting" | "closed"
//   const res = await c.join("demo");           // res.snapshot is the room's state
//   await c.action("chat", { room: "demo", text: "hi" }); // resent after a reconnect until acked
//
// What it does for the pages: replies matched to requests by id (promises), events
// dispatched by type, reconnect with jittered exponential backoff following the close
// code table, rejoin of every room with `since` = the last chat seq seen, a `ping`
// every ~30 s, and actions (chat, cheer, buy: anything with a cid) kept until the
// server acknowledges them and resent after a reconnect.
(function (global) {
  "use strict";

  // The close code table of docs/protocol.md: which codes reconnect, and how soon.
  const CLOSE = {
    1000: { name: "normal", reconnect: false },
    1009: { name: "too_big", reconnect: false },
    4001: { name: "restart", reconnect: true, soon: true },
    4002: { name: "too_slow", reconnect: true },
    4003: { name: "auth_expired", reconnect: true, freshToken: true },
    4004: { name: "banned", reconnect: false },
    4005: { name: "policy", reconnect: false },
    4007: { name: "idle", reconnect: true },
  };
  // Anything not in the table (1006 abnormal, 1001 going away, 1011, a failed
  // handshake…) is treated as a transient network failure: reconnect with backoff.
  function closeInfo(code) {
    return CLOSE[code] || { name: "abnormal", reconnect: true };
  }

  const BACKOFF_CAP_MS = 30000;
  const PING_MS = 30000;
  const PING_DEADLINE_MS = 15000;

  function randomID(prefix) {
    const a = new Uint8Array(8);
    (global.crypto || {}).getRandomValues ? crypto.getRandomValues(a) : a.forEach((_, i) => (a[i] = Math.random() * 256));
    return prefix + Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  class ProtocolError extends Error {
    constructor(e) {
      super(e.message || e.code);
      this.code = e.code;
      this.retryMs = e.retry_ms;
    }
  }

  class Client {
    // opts.url: WebSocket URL (default: /ws on this page's host).
    // opts.token: the token sent with every join ("" = anonymous).
    // opts.getToken: optional async function returning a fresh token, called before
    //   reconnecting after 4003 (auth_expired).
    // opts.pingMs: heartbeat period (default 30000, jittered ±10%).
    constructor(opts = {}) {
      const proto = global.location && location.protocol === "https:" ? "wss:" : "ws:";
      this.url = opts.url || proto + "//" + location.host + "/ws";
      this.token = opts.token || "";
      this.getToken = opts.getToken || null;
      this.pingMs = opts.pingMs || PING_MS;

      this.ws = null;
      this.status = "idle";
      this.nextId = 1;
      this.pending = new Map(); // id → {resolve, reject, action}
      this.actions = new Map(); // cid → {cmd, fields, resolve, reject, sent}: unacknowledged actions, in order
      this.rooms = new Map(); // room → {lastSeq, joined}
      this.handlers = new Map(); // event type → [fn]
      this.attempt = 0; // consecutive failed connects, for backoff
      this.retryTimer = null;
      this.pingTimer = null;
      this.closedByUs = false;
    }

    // on registers fn for an event type: "status", "joined", "chat", "frame", "error",
    // "event" (every room event), or any room event type ("cheer", "pin", …).
    on(type, fn) {
      if (!this.handlers.has(type)) this.handlers.set(type, []);
      this.handlers.get(type).push(fn);
      return this;
    }

    emit(type, ...args) {
      for (const fn of this.handlers.get(type) || []) {
        try { fn(...args); } catch (e) { console.error("liveroom handler", type, e); }
      }
    }

    setStatus(s, detail) {
      this.status = s;
      this.emit("status", s, detail);
    }

    // connect opens the socket (join calls it when needed).
    connect() {
      if (this.ws && this.ws.readyState <= 1) return;
      clearTimeout(this.retryTimer);
      this.closedByUs = false;
      this.setStatus(this.attempt ? "reconnecting" : "connecting");
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = () => this.onOpen(ws);
      ws.onmessage = (m) => this.onMessage(m);
      ws.onclose = (e) => this.onClose(ws, e);
    }

    async onOpen(ws) {
      this.startPing();
      // Rejoin every room, resuming chat after the last seq seen, then resend what the
      // server has not acknowledged.
      const joins = [];
      for (const [room, st] of this.rooms) joins.push(this.sendJoin(room, st));
      const results = await Promise.allSettled(joins);
      if (ws !== this.ws) return;
      if (results.every((r) => r.status === "fulfilled")) this.attempt = 0;
      this.setStatus("online");
      for (const a of this.actions.values()) this.sendAction(a);
    }

    async sendJoin(room, st) {
      const fields = { room };
      if (this.token) fields.token = this.token;
      if (st.lastSeq > 0) fields.since = st.lastSeq;
      try {
        const res = await this.request("join", fields);
        st.joined = st.everJoined = true;
        // The snapshot may carry recent chat: deliver it through the same path as live
        // lines so that nothing shows twice.
        const snap = res.snapshot || {};
        for (const line of snap.chat || []) this.deliverChat(room, line);
        this.emit("joined", room, res);
        return res;
      } catch (e) {
        st.joined = false;
        this.emit("error", e, { cmd: "join", room, rejoin: !!st.everJoined });
        throw e;
      }
    }

    // join joins a room and resolves with the server's join result ({room, you, snapshot}).
    // The room is rejoined after every reconnect.
    join(room) {
      if (!this.rooms.has(room)) this.rooms.set(room, { lastSeq: 0, joined: false });
      const st = this.rooms.get(room);
      if (this.ws && this.ws.readyState === 1) return this.sendJoin(room, st);
      // Not open yet: onOpen joins every room; wait for this one's outcome.
      const p = new Promise((resolve, reject) => {
        const ok = (r, res) => { if (r === room) { off(); resolve(res); } };
        const fail = (e, ctx) => { if (ctx && ctx.cmd === "join" && ctx.room === room) { off(); reject(e); } };
        const off = () => { this.off("joined", ok); this.off("error", fail); };
        this.on("joined", ok).on("error", fail);
      });
      this.connect();
      return p;
    }

    off(type, fn) {
      const l = this.handlers.get(type);
      if (l) this.handlers.set(type, l.filter((f) => f !== fn));
    }

    async leave(room) {
      this.rooms.delete(room);
      if (this.ws && this.ws.readyState === 1) return this.request("leave", { room });
    }

    // request sends one command and resolves with its result, or rejects with a
    // ProtocolError (err.code is the protocol's error code, "disconnected" when the
    // connection dropped first). Requests are not resent: use action for that.
    request(cmd, fields = {}) {
      return new Promise((resolve, reject) => {
        if (!this.ws || this.ws.readyState !== 1) {
          reject(new ProtocolError({ code: "disconnected", message: "not connected" }));
          return;
        }
        const id = String(this.nextId++);
        this.pending.set(id, { resolve, reject });
        this.ws.send(JSON.stringify(Object.assign({ id, cmd }, fields)));
      });
    }

    // action sends a command that must take effect exactly once (chat, cheer, buy): it
    // gets a cid (unless fields has one), waits in a queue while offline, is resent with
    // the same cid after a reconnect until the server replies, and is retried on
    // `unavailable`. Resolves with the result; rejects on any other error.
    action(cmd, fields = {}) {
      const cid = fields.cid || randomID("c");
      return new Promise((resolve, reject) => {
        const a = { cmd, fields: Object.assign({}, fields, { cid }), resolve, reject, tries: 0 };
        this.actions.set(cid, a);
        if (this.ws && this.ws.readyState === 1 && this.status === "online") this.sendAction(a);
      });
    }

    // pendingActions is how many actions wait for an acknowledgement.
    get pendingActions() { return this.actions.size; }

    sendAction(a) {
      if (a.inflight) return;
      a.inflight = true;
      a.tries++;
      // After the first send, the server is told it may have acted on this cid already.
      const fields = a.tries > 1 ? Object.assign({}, a.fields, { resend: true }) : a.fields;
      this.request(a.cmd, fields).then(
        (res) => { this.actions.delete(a.fields.cid); a.resolve(res); },
        (err) => {
          a.inflight = false;
          if (err.code === "disconnected") return; // resent by onOpen
          if (err.code === "unavailable" && a.tries < 5) {
            setTimeout(() => { if (this.actions.has(a.fields.cid) && this.status === "online") this.sendAction(a); }, 500 * a.tries);
            return;
          }
          this.actions.delete(a.fields.cid);
          a.reject(err);
        },
      );
    }

    onMessage(m) {
      let f;
      try { f = JSON.parse(m.data); } catch { return; }
      this.emit("frame", f);
      if (f.type === "reply") {
        const p = this.pending.get(f.id);
        if (!p) return;
        this.pending.delete(f.id);
        if (f.error) p.reject(new ProtocolError(f.error));
        else p.resolve(f.result);
        return;
      }
      if (f.type === "events") {
        for (const ev of f.events || []) {
          if (ev.type === "chat" || ev.type === "delete") this.deliverChat(f.room, ev);
          else if (ev.type === "reset") this.reset(f.room, ev.lines || []);
          else {
            this.emit(ev.type, f.room, ev);
            this.emit("event", f.room, ev);
          }
        }
        return;
      }
      // Other frame types (room state, when the server sends it apart from events).
      if (f.type) this.emit(f.type, f.room, f);
    }

    // deliverChat passes each entry of the room's chat stream (a `chat` line or a
    // `delete` tombstone) on once: seq strictly increases within a room, so anything at
    // or below the last seq seen is a repeat (history overlap, resume).
    deliverChat(room, ev) {
      const st = this.rooms.get(room);
      if (!st) return;
      if (typeof ev.seq === "number") {
        if (ev.seq <= st.lastSeq) return;
        st.lastSeq = ev.seq;
      }
      if (ev.type === "delete") this.emit("delete", room, ev);
      else this.emit("chat", room, ev);
      this.emit("event", room, ev);
    }

    // reset replaces the room's chat with the server's recent lines: it sends one when
    // it could not fill a gap (the viewer missed more than history keeps).
    reset(room, lines) {
      const st = this.rooms.get(room);
      if (!st) return;
      st.lastSeq = 0;
      this.emit("reset", room, lines);
      for (const l of lines) this.deliverChat(room, l);
    }

    lastSeq(room) {
      const st = this.rooms.get(room);
      return st ? st.lastSeq : 0;
    }

    startPing() {
      clearTimeout(this.pingTimer);
      const ws = this.ws;
      const tick = () => {
        if (ws !== this.ws || ws.readyState !== 1) return;
        const dead = setTimeout(() => { if (ws === this.ws) ws.close(4000, "ping timeout"); }, PING_DEADLINE_MS);
        this.request("ping").then(() => clearTimeout(dead), () => clearTimeout(dead));
        this.pingTimer = setTimeout(tick, this.pingMs * (0.9 + Math.random() * 0.2));
      };
      this.pingTimer = setTimeout(tick, this.pingMs * (0.9 + Math.random() * 0.2));
    }

    async onClose(ws, e) {
      if (ws !== this.ws) return;
      clearTimeout(this.pingTimer);
      for (const p of this.pending.values()) p.reject(new ProtocolError({ code: "disconnected", message: "connection closed" }));
      this.pending.clear();
      for (const a of this.actions.values()) a.inflight = false;
      for (const st of this.rooms.values()) st.joined = false;
      // 4000 is our own ping-timeout close: a dead connection, so reconnect.
      const info = e.code === 4000 ? { name: "ping_timeout", reconnect: true } : closeInfo(e.code);
      const detail = { code: e.code, reason: e.reason, name: info.name };
      if (this.closedByUs || !info.reconnect) {
        this.setStatus("closed", detail);
        for (const a of this.actions.values()) a.reject(new ProtocolError({ code: "closed", message: "connection closed: " + info.name }));
        this.actions.clear();
        return;
      }
      if (info.freshToken && this.getToken) {
        try { this.token = await this.getToken(); } catch (err) { console.warn("liveroom: getToken", err); }
      }
      let delay;
      if (info.soon) delay = Math.random() * 2000;
      else {
        // Exponential backoff from 0.5–1.5 s, doubling, capped at 30 s.
        const base = 500 + Math.random() * 1000;
        delay = Math.min(BACKOFF_CAP_MS, base * Math.pow(2, this.attempt));
      }
      this.attempt++;
      this.setStatus("reconnecting", Object.assign(detail, { inMs: Math.round(delay) }));
      this.retryTimer = setTimeout(() => this.connect(), delay);
    }

    // close ends the connection for good (no reconnect).
    close() {
      this.closedByUs = true;
      clearTimeout(this.retryTimer);
      clearTimeout(this.pingTimer);
      if (this.ws) this.ws.close(1000, "bye");
    }
  }

  // ---- helpers shared by the pages (not part of the protocol) ----

  // roomFromPath returns the last path segment: /r/{room} and /host/{room}.
  function roomFromPath() {
    const parts = location.pathname.split("/").filter(Boolean);
    return decodeURIComponent(parts[parts.length - 1] || "");
  }

  // waitIce resolves once ICE gathering completes (or after maxMs, whichever is first):
  // WHIP/WHEP send one offer with every candidate in it.
  function waitIce(pc, maxMs = 3000) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, maxMs);
      function done() {
        clearTimeout(t);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
      function check() { if (pc.iceGatheringState === "complete") done(); }
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  // negotiate does one WHIP/WHEP exchange: POST the offer (after ICE gathering), set
  // the answer, and return the resource URL to DELETE when done.
  async function negotiate(pc, endpoint, token) {
    await pc.setLocalDescription(await pc.createOffer());
    await waitIce(pc);
    const headers = { "Content-Type": "application/sdp" };
    if (token) headers.Authorization = "Bearer " + token;
    const res = await fetch(endpoint, { method: "POST", headers, body: pc.localDescription.sdp });
    if (res.status !== 201 && res.status !== 200) {
      const msg = (await res.text()).trim();
      const err = new Error(msg || res.statusText);
      err.status = res.status;
      throw err;
    }
    const loc = res.headers.get("Location");
    const resource = loc ? new URL(loc, new URL(endpoint, location.href)).href : null;
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    return resource;
  }

  // endSession DELETEs a WHIP/WHEP resource; keepalive lets it run during page unload.
  function endSession(resource, token) {
    if (!resource) return Promise.resolve();
    const headers = token ? { Authorization: "Bearer " + token } : {};
    return fetch(resource, { method: "DELETE", headers, keepalive: true }).catch(() => {});
  }

  // el builds an element: el("li", {class: "x"}, "text", child…). Text is never HTML.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }

  global.Liveroom = { Client, ProtocolError, closeInfo, roomFromPath, negotiate, endSession, waitIce, el, randomID };
})(window);
