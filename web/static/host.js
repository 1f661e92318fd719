// The host page, /host/{room}?token=<host token>: camera and microphone to WHIP, go
// live / end, pin and unpin a product, moderation, the chat, cheers and online count.
(function () {
  "use strict";
  const { Client, roomFromPath, negotiate, endSession, el } = window.Liveroom;
  const { Chat, connLine, formatCount, formatPrice, roomState } = window.LiveroomPage;
  const $ = (id) => document.getElementById(id);

  const room = roomFromPath();
  const token = new URLSearchParams(location.search).get("token") || "";
  document.title = "host " + room + " · liveroom";
  $("room-name").textContent = room;

  function note(text) {
    $("note").textContent = text;
    $("note").hidden = !text;
  }

  // Moderation commands the server offers (filled in from the join snapshot; see
  // features below). Lines get a control per command.
  const mod = { remove: false, mute: false, ban: false, slow: false };

  const client = new Client({ token });
  const chat = new Chat($("lines"), { decorate: addModControls });
  connLine(client, $("conn"));
  client.on("chat", (r, line) => { if (r === room) chat.add(line); });
  client.on("event", (r, ev) => {
    if (r !== room) return;
    if (ev.type === "chat_removed" || ev.type === "delete") chat.remove(ev.seq);
  });

  function addModControls(li, line) {
    const u = line.user || {};
    if (!u.id || u.role === "host") return;
    const act = (cmd, fields, label) => el("button", {
      class: "mod", type: "button", title: label,
      onclick: () => client.request(cmd, Object.assign({ room }, fields))
        .then(() => chat.system(label + ": " + (u.name || u.id)))
        .catch((e) => note(cmd + ": " + (e.message || e.code))),
    }, label);
    if (mod.remove) li.append(act("delete", { seq: line.seq }, "delete"));
    if (mod.mute) li.append(act("mute", { user: u.id, seconds: 600 }, "mute 10 min"));
    if (mod.ban) li.append(act("ban", { user: u.id }, "ban"));
  }

  // ---- room state ----
  const features = roomState(client, room, {
    cheers(total) { $("cheer-badge").hidden = false; $("cheers").textContent = formatCount(total || 0); },
    online(n) { $("online").hidden = false; $("online-n").textContent = formatCount(n || 0); },
    pin(p) {
      $("product").hidden = !p;
      $("unpin").disabled = !p;
      if (!p) return;
      $("product-title").textContent = p.title || p.name || p.id || "";
      $("product-price").textContent = formatPrice(p);
    },
  });

  client.on("joined", (r, res) => {
    if (r !== room) return;
    chat.me = res.you.id;
    const f = features(res);
    const staff = res.you.role === "host" || res.you.role === "moderator";
    if (!staff) note("This token is not a host token: you can chat but not broadcast or moderate.");
    $("pin").hidden = !(staff && f.pin);
    const m = (res.snapshot && res.snapshot.moderation) || null;
    if (staff && m) {
      mod.remove = !!m.delete; mod.mute = !!m.mute; mod.ban = !!m.ban; mod.slow = "slow_ms" in m || "slow" in m;
      $("modpanel").hidden = !mod.slow;
      if (mod.slow) $("slow").value = String(Math.round((m.slow_ms || 0) / 1000));
    }
  });
  if (!token) note("Open this page with ?token=<host token> (liveroom token --role host --room " + room + ").");
  client.join(room).catch((e) => note("Could not join: " + (e.message || e.code)));

  // ---- chat ----
  $("send").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    $("text").value = "";
    try {
      await client.action("chat", { room, text });
    } catch (err) {
      note(err.message || err.code);
      if (!$("text").value) $("text").value = text;
    }
  });

  // ---- pin ----
  $("pin").addEventListener("submit", async (e) => {
    e.preventDefault();
    const title = $("pin-title").value.trim();
    if (!title) return;
    const product = { id: $("pin-id").value.trim() || "p-" + Date.now().toString(36), title };
    const price = $("pin-price").value.trim();
    if (price) product.price = price;
    try {
      await client.request("pin", { room, product });
      note("");
    } catch (err) { note("pin: " + (err.message || err.code)); }
  });
  $("unpin").addEventListener("click", () => {
    client.request("unpin", { room }).catch((err) => note("unpin: " + (err.message || err.code)));
  });
  $("slow").addEventListener("change", () => {
    client.request("slow", { room, seconds: Number($("slow").value) })
      .then(() => chat.system("slow mode: " + ($("slow").value === "0" ? "off" : $("slow").value + " s")))
      .catch((err) => note("slow mode: " + (err.message || err.code)));
  });

  // ---- camera → WHIP ----
  const preview = $("preview");
  let stream = null, pc = null, resource = null;

  function setLive(on) {
    const b = $("live");
    b.dataset.state = on ? "live" : "offline";
    b.textContent = on ? "LIVE" : "OFFLINE";
    b.className = "badge " + (on ? "live" : "offline");
    $("golive").disabled = on;
    $("end").disabled = !on && !pc;
  }

  async function goLive() {
    $("golive").disabled = true;
    $("media-msg").textContent = "starting camera…";
    try {
      if (!stream) {
        stream = await navigator.mediaDevices.getUserMedia({
          video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
          audio: true,
        });
        preview.srcObject = stream;
        $("stage-msg").hidden = true;
      }
      const mine = new RTCPeerConnection();
      pc = mine;
      for (const track of stream.getTracks()) mine.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      mine.onconnectionstatechange = () => {
        if (pc !== mine) return;
        const s = mine.connectionState;
        $("media-msg").textContent = s === "connected" ? "" : s;
        if (s === "connected") setLive(true);
        if (s === "failed") { end(); $("media-msg").textContent = "connection failed"; }
      };
      $("media-msg").textContent = "connecting…";
      resource = await negotiate(mine, "/whip/" + encodeURIComponent(room), token);
      $("end").disabled = false;
    } catch (err) {
      if (pc) pc.close();
      pc = null;
      setLive(false);
      $("media-msg").textContent = "could not go live: " + (err.status ? err.status + " " : "") + (err.message || err.name);
    }
  }

  async function end() {
    const r = resource;
    resource = null;
    if (pc) pc.close();
    pc = null;
    setLive(false);
    await endSession(r, token);
  }

  $("golive").addEventListener("click", goLive);
  $("end").addEventListener("click", () => end().then(() => ($("media-msg").textContent = "ended")));
  window.addEventListener("pagehide", () => { endSession(resource, token); client.close(); });
})();
