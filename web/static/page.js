// page.js: what the viewer and host pages share on top of liveroom.js: the chat list,
// the connection line, and reading room state out of join snapshots and events.
(function (global) {
  "use strict";
  const { el } = global.Liveroom;

  // Chat renders chat lines into a <ul>, keeps at most max lines, and scrolls to the
  // newest unless the reader scrolled up.
  class Chat {
    constructor(ul, opts = {}) {
      this.ul = ul;
      this.max = opts.max || 300;
      this.me = "";
      this.decorate = opts.decorate || null; // (li, line) → add host controls
      this.bySeq = new Map();
    }

    add(line) {
      const stick = this.ul.scrollHeight - this.ul.scrollTop - this.ul.clientHeight < 40;
      const u = line.user || {};
      const li = el("li", { class: (u.role || "viewer") + (u.id && u.id === this.me ? " mine" : ""), "data-seq": line.seq },
        el("span", { class: "name" }, u.name || u.id || "?"),
        el("span", { class: "text" }, line.text));
      if (this.decorate) this.decorate(li, line);
      this.ul.append(li);
      this.bySeq.set(line.seq, li);
      while (this.ul.children.length > this.max) {
        const first = this.ul.firstElementChild;
        this.bySeq.delete(Number(first.dataset.seq));
        first.remove();
      }
      if (stick) this.ul.scrollTop = this.ul.scrollHeight;
    }

    system(text) {
      this.ul.append(el("li", { class: "sys" }, text));
      this.ul.scrollTop = this.ul.scrollHeight;
    }

    remove(seq) {
      const li = this.bySeq.get(seq);
      if (!li) return;
      li.classList.add("removed");
      li.querySelector(".text").textContent = "(removed by a moderator)";
      for (const b of li.querySelectorAll("button")) b.remove();
    }

    clear() {
      this.ul.replaceChildren();
      this.bySeq.clear();
    }

    // bind shows the room's chat stream from the client: lines, deletions, resets.
    bind(client, room) {
      client.on("chat", (r, line) => { if (r === room) this.add(line); });
      client.on("delete", (r, ev) => { if (r === room) this.remove(ev.line); });
      client.on("reset", (r) => { if (r === room) this.clear(); });
    }
  }

  // connLine shows the client's status in an element.
  function connLine(client, node) {
    let drops = 0;
    client.on("status", (s, d) => {
      node.dataset.state = s;
      if (s === "reconnecting") node.dataset.drops = String(++drops);
      if (s === "online") node.textContent = "connected";
      else if (s === "reconnecting") node.textContent = "reconnecting" + (d && d.inMs != null ? " in " + Math.ceil(d.inMs / 1000) + " s" : "…");
      else if (s === "closed") node.textContent = "disconnected" + (d && d.name && d.name !== "normal" ? " (" + d.name + ")" : "");
      else node.textContent = s + "…";
    });
  }

  function formatCount(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(1).replace(/\.0$/, "") + "M";
    if (n >= 1e4) return (n / 1e3).toFixed(1).replace(/\.0$/, "") + "k";
    return String(n);
  }

  function formatPrice(p) {
    if (!p || p.price == null) return "";
    const n = Number(p.price);
    return isNaN(n) ? String(p.price) : "¥" + (Number.isInteger(n) ? n : n.toFixed(2));
  }

  // roomState maps the room's state (docs/protocol.md: the join snapshot and the state
  // events) onto the page's handlers, each optional:
  //   cheers(total), online(n, unique), pin(product|null), live(bool, status),
  //   slowMode(seconds), stock(ev)
  // Pins are versioned and cheer totals only grow: an older value never replaces a
  // newer one. Call the returned function with each join result.
  function roomState(client, room, h) {
    let pinVersion = -1, cheers = -1;
    const call = (name, ...args) => { if (h[name]) h[name](...args); };
    const pin = (p) => {
      if (!p || typeof p.version !== "number") { call("pin", null); return; }
      if (p.version <= pinVersion) return;
      pinVersion = p.version;
      call("pin", p.product || null);
    };
    const total = (n) => {
      if (typeof n !== "number" || n < cheers) return;
      cheers = n;
      call("cheers", n);
    };
    const live = (st) => call("live", !!(st && st.live), st || {});
    client.on("event", (r, ev) => {
      if (r !== room) return;
      switch (ev.type) {
        case "cheers": total(ev.total); break;
        case "online": call("online", ev.online || 0, ev.unique || 0); break;
        case "pin": pin(ev); break;
        case "live": live(ev); break;
        case "slow_mode": call("slowMode", ev.seconds || 0); break;
        case "stock": call("stock", ev); break;
      }
    });
    return (joinResult) => {
      const snap = (joinResult && joinResult.snapshot) || {};
      if ("cheers" in snap) total(snap.cheers);
      if ("online" in snap) call("online", snap.online || 0, snap.unique || 0);
      if ("pin" in snap) { pinVersion = -1; pin(snap.pin); }
      if (snap.stock) for (const ev of Array.isArray(snap.stock) ? snap.stock : Object.values(snap.stock)) call("stock", ev);
      if ("live" in snap) live(snap.live);
      if ("slow_mode" in snap) call("slowMode", snap.slow_mode || 0);
    };
  }

  global.LiveroomPage = { Chat, connLine, formatCount, formatPrice, roomState };
})(window);
