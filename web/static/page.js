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
      if (li) li.classList.add("removed");
    }
  }

  // connLine shows the client's status in an element.
  function connLine(client, node) {
    client.on("status", (s, d) => {
      node.dataset.state = s;
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
    if (!p) return "";
    if (typeof p.price === "string") return p.price;
    if (typeof p.price_cents === "number") return (p.currency || "¥") + " " + (p.price_cents / 100).toFixed(2);
    if (typeof p.price === "number") return (p.currency || "¥") + " " + p.price.toFixed(2);
    return "";
  }

  // roomState maps the room's state (docs/protocol.md: the join snapshot and the state
  // events) onto the page's handlers: {cheers(total), online(n), pin(product|null),
  // live(bool, info)}. It returns a function to call with each join result; that
  // function returns which state the server keeps (features[name] = true), so that a
  // page hides what the server does not offer instead of pretending.
  function roomState(client, room, h) {
    const seen = {};
    const apply = (name, v) => {
      if (v === undefined || !h[name]) return;
      seen[name] = true;
      h[name](v);
    };
    const fromObj = (o) => {
      if (!o) return;
      if ("cheers" in o) apply("cheers", typeof o.cheers === "object" && o.cheers ? o.cheers.total : o.cheers);
      if ("online" in o) apply("online", typeof o.online === "object" && o.online ? o.online.count : o.online);
      if ("pin" in o) apply("pin", o.pin && (o.pin.product || o.pin));
      if ("live" in o) apply("live", typeof o.live === "object" && o.live ? !!o.live.live : !!o.live);
    };
    client.on("event", (r, ev) => {
      if (r !== room) return;
      switch (ev.type) {
        case "cheers": case "cheer": apply("cheers", ev.total); break;
        case "online": apply("online", ev.count != null ? ev.count : ev.online); break;
        case "pin": apply("pin", ev.product || null); break;
        case "unpin": apply("pin", null); break;
        case "live": apply("live", !!ev.live); break;
        case "state": fromObj(ev); break;
      }
    });
    client.on("state", (r, f) => { if (r === room) fromObj(f.state || f); });
    return (joinResult) => {
      fromObj(joinResult && joinResult.snapshot);
      return seen;
    };
  }

  global.LiveroomPage = { Chat, connLine, formatCount, formatPrice, roomState };
})(window);
