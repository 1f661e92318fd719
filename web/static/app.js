// Minimal chat page: one WebSocket, join a room, show chat, send chat.
// Protocol: docs/protocol.md. Token from ?token=..., anonymous (read-only) otherwise.
(function () {
  "use strict";
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const $ = (id) => document.getElementById(id);
  let ws = null, room = null, nextId = 1, lastSeq = 0;
  const pending = new Map();

  function status(s) { $("status").textContent = s; }

  function call(cmd, fields) {
    return new Promise((resolve, reject) => {
      const id = String(nextId++);
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify(Object.assign({ id, cmd }, fields)));
    });
  }

  function show(ev) {
    if (ev.seq <= lastSeq) return;
    lastSeq = ev.seq;
    const li = document.createElement("li");
    li.className = ev.user.role;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = ev.user.name || ev.user.id;
    li.append(name, document.createTextNode(ev.text));
    $("lines").append(li);
    li.scrollIntoView({ block: "end" });
  }

  function connect(r) {
    if (ws) ws.close(1000);
    room = r;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/ws");
    status("connecting…");
    ws.onopen = async () => {
      try {
        const res = await call("join", { room, token, since: lastSeq || undefined });
        status("in " + res.room + " as " + res.you.name);
      } catch (e) { status("join failed: " + e.code); }
    };
    ws.onmessage = (m) => {
      const f = JSON.parse(m.data);
      if (f.type === "reply") {
        const p = pending.get(f.id);
        if (!p) return;
        pending.delete(f.id);
        f.error ? p.reject(f.error) : p.resolve(f.result);
      } else if (f.type === "events") {
        for (const ev of f.events) if (ev.type === "chat") show(ev);
      }
    };
    ws.onclose = (e) => {
      status("closed (" + e.code + ")");
      // 4001 restart, 4002 too slow, 4007 idle: come back with jitter.
      if ([4001, 4002, 4007, 1006].includes(e.code)) setTimeout(() => connect(room), 500 + Math.random() * 1500);
    };
  }

  $("joinform").onsubmit = (e) => { e.preventDefault(); lastSeq = 0; $("lines").replaceChildren(); connect($("room").value); };
  $("send").onsubmit = async (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (!text || !ws) return;
    try {
      await call("chat", { room, text, cid: "c" + Date.now() + Math.random().toString(36).slice(2, 6) });
      $("text").value = "";
    } catch (err) { status(err.code + ": " + err.message); }
  };
  connect($("room").value);
})();
