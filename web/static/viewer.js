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
  chat.bind(client, room);
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
  let product = null, stock = null, liveFromServer = null;
  const applyJoin = roomState(client, room, {
    cheers(total) {
      serverCheers = Math.max(serverCheers, total);
      showCheers();
    },
    online(n) {
      $("online").hidden = false;
      $("online-n").textContent = formatCount(n);
    },
    pin(p) {
      if (!p || !product || p.id !== product.id) stock = null;
      product = p;
      renderProduct();
    },
    stock(ev) {
      if (!product || ev.item !== product.id) return;
      if (stock && ev.version < stock.version) return;
      stock = ev;
      renderProduct();
    },
    live(on, status) {
      liveFromServer = on;
      liveKinds = (status.tracks || []).map((t) => t.kind);
      setLive(on);
      if (!on) stopPlayback("The host is not live right now.");
      else if (!pc) startPlayback();
      else checkTracks();
    },
    slowMode(sec) {
      slowNote = sec > 0 ? "Slow mode: one message every " + sec + " s." : "";
      if (!$("note").dataset.sticky) note(slowNote);
    },
  });
  let slowNote = "";

  // The product card. A product pinned with flash_sale terms is a flash sale: Buy
  // presses go to the server (`buy`); other products are shown without a button
  // (buying them happens in the shop, outside liveroom).
  function renderProduct() {
    const p = product;
    $("product").hidden = !p;
    if (!p) return;
    $("product-title").textContent = p.title || p.id;
    $("product-price").textContent = formatPrice(p);
    $("product-img").hidden = !p.image;
    if (p.image) $("product-img").src = p.image;
    const sale = p.flash_sale;
    $("buy").hidden = !sale;
    let text = "";
    if (sale) {
      const st = stock || {};
      const startsAt = st.starts_at || sale.starts_at || 0;
      if (st.sold_out) text = "Sold out";
      else if (startsAt > Date.now()) text = "Flash sale starts in " + Math.ceil((startsAt - Date.now()) / 1000) + " s";
      else text = "Flash sale · " + (st.left != null ? st.left : sale.stock) + " left";
      $("buy").disabled = !!st.sold_out || !token || !!bought;
      $("buy").textContent = bought ? "Bought ✔" : st.sold_out ? "Sold out" : "Buy";
    } else if (p.stock) text = p.stock + " in stock";
    if (buyNote) text = buyNote;
    $("product-note").textContent = text;
  }
  let bought = null, buyNote = "";
  setInterval(() => { if (product && product.flash_sale) renderProduct(); }, 1000); // countdown

  // ---- join ----
  client.on("joined", (r, res) => {
    if (r !== room) return;
    chat.me = res.you.id;
    applyJoin(res);
    const guest = !token;
    $("cheer").hidden = false;
    $("cheer").disabled = guest;
    $("text").disabled = $("send-btn").disabled = guest;
    $("text").placeholder = guest ? "Watching as a guest: open with ?token=… to chat" : "Say something…";
  });
  // A rejoin after a reconnect can fail too (token expired, banned meanwhile).
  client.on("error", (e, ctx) => {
    if (ctx && ctx.rejoin && ctx.room === room) note("Could not rejoin: " + (e.message || e.code));
  });
  client.join(room).catch((e) => {
    $("note").dataset.sticky = "1";
    note(e.code === "banned" ? "You are banned from this room." : "Could not join: " + (e.message || e.code));
  });

  // ---- chat ----
  $("send").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    $("text").value = "";
    try {
      await client.action("chat", { room, text });
      note(slowNote);
    } catch (err) {
      if (err.code === "rate_limited" || err.code === "slow_mode") note("Slow down: try again in " + Math.ceil((err.retryMs || 1000) / 1000) + " s.");
      else if (err.code === "muted") note("A moderator muted you" + (err.retryMs ? " for " + Math.ceil(err.retryMs / 60000) + " min." : "."));
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
      serverCheers = Math.max(serverCheers, res.total || 0);
    } catch (err) {
      if (err.code !== "rate_limited") note("cheer: " + (err.message || err.code));
    } finally {
      inflightTaps -= n;
      showCheers();
    }
  }, 500);

  // ---- buy (flash sale) ----
  const answers = {
    won: "You got one! Order placed ✔",
    sold_out: "Sold out",
    already_bought: "You already bought this",
    not_started: "Not started yet",
    rate_limited: "Too fast: try again",
  };
  $("buy").addEventListener("click", async () => {
    if (!product || !product.flash_sale || !token) return;
    $("buy").disabled = true;
    try {
      const res = await client.action("buy", { room, item: product.id });
      if (res.answer === "won" || res.answer === "already_bought") bought = res.order_id || true;
      buyNote = answers[res.answer] || res.answer;
    } catch (err) {
      buyNote = err.code === "no_sale" ? "This item is not on sale" : err.message || err.code;
    } finally {
      renderProduct();
      if (!bought) setTimeout(() => { buyNote = ""; renderProduct(); }, 3000);
    }
  });

  // ---- video over WHEP ----
  const video = $("video");
  let pc = null, resource = null, playing = false, retry = null;
  let liveKinds = [], gotKinds = new Set(); // tracks the room has; tracks this session gets

  // checkTracks restarts the session when the room has a track this session did not
  // get: media announces the room live once the host's tracks have all started (or
  // after a few seconds without one of them), and again if a late one arrives.
  function checkTracks() {
    if (!pc || !resource) return; // not negotiated yet: checked when it is
    if (liveKinds.some((k) => !gotKinds.has(k))) {
      trackRestarts++;
      video.dataset.trackRestarts = String(trackRestarts);
      stopPlayback("Connecting…");
      startPlayback();
    }
  }

  function setLive(on) {
    const b = $("live");
    b.dataset.state = on ? "live" : "offline";
    b.textContent = on ? "LIVE" : "OFFLINE";
    b.className = "badge " + (on ? "live" : "offline");
  }

  // When to try WHEP: at once when the room's live status (join snapshot, `live`
  // events) says live, and again every 2 s (jittered) while it does. While it says
  // offline the page waits for the `live` event; before the status is known (no join
  // yet) it tries anyway.
  function scheduleRetry() {
    clearTimeout(retry);
    if (liveFromServer === false) return;
    retry = setTimeout(startPlayback, 1500 + Math.random() * 1000);
  }

  async function startPlayback() {
    if (pc) return;
    clearTimeout(retry);
    const mine = new RTCPeerConnection();
    pc = mine;
    mine.addTransceiver("video", { direction: "recvonly" });
    mine.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    gotKinds = new Set();
    mine.ontrack = (e) => {
      gotKinds.add(e.track.kind);
      stream.addTrack(e.track);
      video.srcObject = stream;
      if (e.track.kind === "audio") $("unmute").hidden = !video.muted;
    };
    mine.onconnectionstatechange = () => {
      if (pc !== mine) return;
      const s = mine.connectionState;
      if (s === "connected") {
        watchPackets(mine);
        playing = true;
        setLive(true);
        $("stage-msg").hidden = true;
      } else if (s === "failed" || s === "closed") {
        stopPlayback("Connection lost: retrying…");
        scheduleRetry();
      }
    };
    try {
      const r = await negotiate(mine, "/whep/" + encodeURIComponent(room), token);
      if (pc !== mine) { endSession(r, token); return; }
      resource = r;
      $("stage-msg").textContent = "Connecting…";
      checkTracks();
    } catch (err) {
      if (pc !== mine) return;
      if (err.status === 404) liveFromServer = false; // media says: not live
      stopPlayback(err.status === 404 ? "The host is not live right now." : "Video unavailable (" + (err.status || err.message) + "): retrying…");
      scheduleRetry();
    }
  }

  // watchPackets restarts the session when a track this session gets has received
  // nothing for 3 s: the host ended without a `live` event reaching us yet, or the
  // media server went away. Asking WHEP again beats waiting the ~20 s ICE takes to
  // fail; a 404 means offline.
  function watchPackets(mine) {
    const last = new Map(), still = new Map();
    const t = setInterval(async () => {
      if (pc !== mine) { clearInterval(t); return; }
      const bytes = new Map();
      (await mine.getStats()).forEach((r) => {
        if (r.type === "inbound-rtp") bytes.set(r.kind, (bytes.get(r.kind) || 0) + (r.bytesReceived || 0));
      });
      let stalled = false;
      for (const kind of gotKinds) {
        const b = bytes.get(kind) || 0;
        still.set(kind, b === last.get(kind) ? (still.get(kind) || 0) + 1 : 0);
        last.set(kind, b);
        if (still.get(kind) >= 3) stalled = true;
      }
      if (stalled && pc === mine) {
        clearInterval(t);
        restarts++;
        video.dataset.restarts = String(restarts);
        stopPlayback("The stream stopped: reconnecting…");
        startPlayback();
      }
    }, 1000);
  }
  let restarts = 0, trackRestarts = 0; // shown as data-restarts, data-track-restarts

  function stopPlayback(msg) {
    if (pc) pc.close();
    endSession(resource, token);
    pc = null;
    resource = null;
    playing = false;
    video.srcObject = null;
    $("unmute").hidden = true;
    setLive(liveFromServer === true);
    $("stage-msg").hidden = false;
    $("stage-msg").textContent = msg;
  }

  $("unmute").addEventListener("click", () => {
    video.muted = false;
    video.play();
    $("unmute").hidden = true;
  });
  window.addEventListener("pagehide", () => { endSession(resource, token); client.close(); });

  // Playback starts from the join snapshot's live status (see live above).
})();
