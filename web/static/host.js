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

  const client = new Client({ token });
  const chat = new Chat($("lines"), { decorate: addModControls });
  connLine(client, $("conn"));
  chat.bind(client, room);

  // Every line from someone other than staff gets moderation buttons; CSS shows them
  // only once the join says this user is a host or moderator (.staff).
  function addModControls(li, line) {
    const u = line.user || {};
    if (!u.id || u.role === "host" || u.role === "moderator") return;
    const act = (cmd, fields, label, done) => el("button", {
      class: "mod", type: "button", title: label,
      onclick: () => client.request(cmd, Object.assign({ room }, fields))
        .then(() => done && chat.system(done + ": " + (u.name || u.id)))
        .catch((e) => note(cmd + ": " + (e.message || e.code))),
    }, label);
    li.append(
      act("delete", { seq: line.seq }, "delete"),
      act("mute", { user: u.id, seconds: 600 }, "mute 10m", "muted for 10 min"),
      act("ban", { user: u.id }, "ban", "banned"));
  }

  // ---- room state ----
  const applyJoin = roomState(client, room, {
    cheers(total) { $("cheers").textContent = formatCount(total); },
    online(n) { $("online-n").textContent = formatCount(n); },
    pin(p) {
      $("product").hidden = !p;
      $("unpin").disabled = !p;
      if (!p) return;
      $("product-title").textContent = p.title || p.id;
      $("product-price").textContent = formatPrice(p) + (p.flash_sale ? " · flash sale, " + p.flash_sale.stock + " units" : "");
    },
    stock(ev) {
      if ($("product").hidden) return;
      $("product-price").textContent = $("product-price").textContent.replace(/ · .*$/, "") + (ev.sold_out ? " · sold out" : " · " + ev.left + " left");
    },
    slowMode(sec) { $("slow").value = String(sec); },
  });

  client.on("joined", (r, res) => {
    if (r !== room) return;
    chat.me = res.you.id;
    applyJoin(res);
    $("online").hidden = $("cheer-badge").hidden = false;
    const role = res.you.role;
    const staff = role === "host" || role === "moderator";
    document.querySelector(".room").classList.toggle("staff", staff);
    $("pin").hidden = role !== "host"; // pins are the host's (moderators get forbidden)
    $("modpanel").hidden = !staff;
    $("golive").disabled = role !== "host";
    if (!staff) note("This is not a host token: you can chat, but not broadcast, pin or moderate.");
  });
  if (!token) note("Open this page with ?token=<host token> (liveroom token --user host1 --role host --room " + room + ").");
  // A rejoin after a reconnect can fail too (token expired, banned meanwhile).
  client.on("error", (e, ctx) => {
    if (ctx && ctx.rejoin && ctx.room === room) note("Could not rejoin: " + (e.message || e.code));
  });
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
    const product = { id: $("pin-id").value.trim() || "p" + Date.now().toString(36), title, price: Number($("pin-price").value) || 0 };
    const image = $("pin-image").value.trim();
    if (image) product.image = image;
    const units = Number($("pin-sale").value);
    if (units > 0) product.flash_sale = { stock: units, starts_at: 0, per_user_limit: 1 };
    try {
      await client.request("pin", { room, product });
      note("");
    } catch (err) { note("pin: " + (err.message || err.code)); }
  });
  $("unpin").addEventListener("click", () => {
    client.request("unpin", { room }).catch((err) => note("unpin: " + (err.message || err.code)));
  });
  $("slow").addEventListener("change", () => {
    const seconds = Number($("slow").value);
    client.request("slow_mode", { room, seconds })
      .then(() => chat.system("slow mode " + (seconds ? seconds + " s" : "off")))
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
