// The viewer page, /r/{room}[?token=…]: video over WHEP, chat, cheers, online count,
// the pinned product. Without a token the viewer watches and reads as a guest.
(function () {
  "use strict";
  const { Client, roomFromPath, negotiate, endSession } = window.Liveroom;
  const { Chat, connLine, formatCount, formatPrice, roomState } = window.LiveroomPage;
  const $ = (id) => document.getElementById(id);

  const room = roomFromPath();
  const token = new URLSearchParams(location.search).get("token") || "";
  document.title = room + " · liveroom";
  $("room-name").textContent = room;

  const client = new Client({ token });
  const chat = new Chat($("lines"));
  connLine(client, $("conn"));
  client.on("chat", (r, line) => { if (r === room) chat.add(line); });
  client.on("status", (s, d) => {
    if (s === "closed" && d && d.name === "banned") note("You were removed from this room.");
  });

  function note(text) {
    $("note").textContent = text;
    $("note").hidden = !text;
  }

  // ---- room state ----
  let serverCheers = 0, unsentTaps = 0, inflightTaps = 0;
  const showCheers = () => ($("cheers").textContent = formatCount(serverCheers + unsentTaps + inflightTaps));
  let product = null;
  let liveFromServer = null; // null until the server says; then true/false
  const features = roomState(client, room, {
    cheers(total) {
      // A total that already counts our in-flight taps replaces the optimistic figure.
      serverCheers = Math.max(serverCheers, total || 0);
      showCheers();
    },
    online(n) {
      $("online").hidden = false;
      $("online-n").textContent = formatCount(n || 0);
    },
    pin(p) {
      product = p || null;
      renderProduct();
    },
    live(on) {
      liveFromServer = on;
      if (on) startPlayback();
      else stopPlayback("The host is not live right now.");
      setLive(on && playing);
    },
  });

  function renderProduct() {
    const p = product;
    $("product").hidden = !p;
    if (!p) return;
    $("product-title").textContent = p.title || p.name || p.id || "";
    $("product-price").textContent = formatPrice(p);
    const img = p.image || p.image_url;
    $("product-img").hidden = !img;
    if (img) $("product-img").src = img;
    $("product-note").textContent = p.stock != null ? p.stock + " left" : "";
    $("buy").hidden = !buyEnabled;
  }

  // ---- join ----
  let me = null, buyEnabled = true;
  client.on("joined", (r, res) => {
    if (r !== room) return;
    me = res.you;
    chat.me = me.id;
    const f = features(res);
    $("cheer").hidden = !f.cheers;
    const guest = !token;
    $("text").disabled = $("send-btn").disabled = guest;
    $("text").placeholder = guest ? "Watching as a guest: open with ?token=… to chat" : "Say something…";
    $("cheer").disabled = guest;
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
      note("");
    } catch (err) {
      if (err.code === "rate_limited") note("Slow down: try again in " + Math.ceil((err.retryMs || 1000) / 1000) + " s.");
      else note(err.message || err.code);
      if (!$("text").value) $("text").value = text;
    }
  });

  // ---- cheers: taps are counted locally and sent as one command per ~500 ms ----
  $("cheer").addEventListener("click", () => {
    unsentTaps++;
    showCheers();
    $("cheer").animate([{ transform: "scale(1.15)" }, { transform: "scale(1)" }], 150);
  });
  setInterval(async () => {
    if (unsentTaps === 0 || client.status !== "online") return;
    const n = unsentTaps;
    unsentTaps = 0;
    inflightTaps += n;
    try {
      const res = await client.action("cheer", { room, count: n });
      if (res && typeof res.total === "number") serverCheers = Math.max(serverCheers, res.total);
      else serverCheers += n;
    } catch (err) {
      if (err.code === "unknown_command") { $("cheer").hidden = true; note("Cheers are not available on this server."); }
      else if (err.code === "rate_limited") unsentTaps += n; // try again with the next batch
    } finally {
      inflightTaps -= n;
      showCheers();
    }
  }, 500);

  // ---- buy ----
  $("buy").addEventListener("click", async () => {
    if (!product) return;
    if (!token) { note("Open this page with ?token=… to buy."); return; }
    $("buy").disabled = true;
    try {
      const res = await client.action("buy", { room, product: product.id });
      const st = (res && (res.status || res.result)) || "ok";
      $("product-note").textContent = st === "sold_out" ? "Sold out" : st === "ok" || st === "won" ? "Ordered! ✔" : String(st);
    } catch (err) {
      if (err.code === "unknown_command") { buyEnabled = false; $("buy").hidden = true; note("Buying is not available on this server."); }
      else $("product-note").textContent = err.message || err.code;
    } finally {
      $("buy").disabled = false;
    }
  });

  // ---- video over WHEP ----
  const video = $("video");
  let pc = null, resource = null, playing = false, retry = null;

  function setLive(on) {
    const b = $("live");
    b.dataset.state = on ? "live" : "offline";
    b.textContent = on ? "LIVE" : "OFFLINE";
    b.className = "badge " + (on ? "live" : "offline");
  }

  function scheduleRetry(ms) {
    clearTimeout(retry);
    // With a live status from the server, retry only while it says live; without one
    // the page polls WHEP to find out.
    retry = setTimeout(() => { if (liveFromServer !== false) startPlayback(); }, ms);
  }

  async function startPlayback() {
    if (pc) return;
    clearTimeout(retry);
    const mine = new RTCPeerConnection();
    pc = mine;
    mine.addTransceiver("video", { direction: "recvonly" });
    mine.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    mine.ontrack = (e) => {
      stream.addTrack(e.track);
      video.srcObject = stream;
      if (e.track.kind === "audio") $("unmute").hidden = !video.muted;
    };
    mine.onconnectionstatechange = () => {
      if (pc !== mine) return;
      const s = mine.connectionState;
      if (s === "connected") {
        playing = true;
        setLive(liveFromServer !== false);
        $("stage-msg").hidden = true;
      } else if (s === "failed" || s === "closed") {
        stopPlayback("Connection lost: retrying…");
        scheduleRetry(2000);
      }
    };
    try {
      resource = await negotiate(mine, "/whep/" + encodeURIComponent(room), token);
      $("stage-msg").textContent = "Connecting…";
    } catch (err) {
      if (pc !== mine) return;
      stopPlayback(err.status === 404 || err.status === 409 ? "The host is not live right now." : "Video unavailable (" + (err.status || err.message) + "): retrying…");
      scheduleRetry(3000);
    }
  }

  function stopPlayback(msg) {
    if (pc) pc.close();
    endSession(resource, token);
    pc = null;
    resource = null;
    playing = false;
    video.srcObject = null;
    setLive(false);
    $("stage-msg").hidden = false;
    $("stage-msg").textContent = msg;
  }

  $("unmute").addEventListener("click", () => {
    video.muted = false;
    video.play();
    $("unmute").hidden = true;
  });
  window.addEventListener("pagehide", () => { endSession(resource, token); client.close(); });

  startPlayback();
})();
