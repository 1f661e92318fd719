package gateway

import (
	"testing"
	"time"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

func modCall(t *testing.T, c *client, cmd map[string]any) frame {
	t.Helper()
	f := c.call(cmd)
	if f.Error != nil {
		t.Fatalf("%v: %v", cmd["cmd"], f.Error)
	}
	return f
}

// slowModeBarrier sets slow mode and waits until c (on another gateway) has seen it.
// The moderation watcher applies bucket updates in order, so every earlier update (a
// mute, say) is applied on c's gateway too once c sees this one.
func slowModeBarrier(t *testing.T, mod, c *client, room string, seconds int) {
	t.Helper()
	modCall(t, mod, map[string]any{"cmd": "slow_mode", "room": room, "seconds": seconds})
	c.nextEvent(func(e chatEvent) bool { return e.Type == "slow_mode" && e.Seconds == seconds })
}

// A moderator on gateway A deletes, mutes, sets slow mode and bans; the target user and
// a viewer are on gateway B; joiners on a third gateway, and a gateway started after the
// ban, see the same.
func TestModerationAcrossGateways(t *testing.T) {
	ns := startNATS(t)
	cfg := Config{AllowAnonymous: true, ChatRate: 1000, ChatBurst: 1000, Fanout: fanout.Config{ChatBudget: 1000}}
	a, b, c := startGateway(t, ns, cfg), startGateway(t, ns, cfg), startGateway(t, ns, cfg)
	const room = "mod"
	tok := func(u string, r auth.Role) string { return mintToken(t, u, r, []string{room}, time.Hour) }
	mod := dial(t, a.url)
	mod.join(room, tok("m", auth.RoleModerator))
	user := dial(t, b.url)
	user.join(room, tok("u", auth.RoleViewer))
	viewer := dial(t, b.url)
	viewer.join(room, tok("v", auth.RoleViewer))

	// delete
	l1 := sendLine(t, user, room, "bad line")
	l2 := sendLine(t, user, room, "good line")
	viewer.chatLines(2)
	modCall(t, mod, map[string]any{"cmd": "delete", "room": room, "seq": l1})
	if e := viewer.nextEvent(func(e chatEvent) bool { return e.Type == "delete" }); e.Line != l1 || e.User.ID != "" {
		t.Fatalf("delete event %+v, want line %d", e, l1)
	}
	if f := mod.call(map[string]any{"cmd": "delete", "room": room, "seq": l2 + 1000}); f.Error == nil || f.Error.Code != codeBadRequest {
		t.Fatalf("delete of a seq not in the room: %+v", f.Error)
	}
	// Once the moderator (on a) has seen the tombstone, a's memory has applied it; a
	// joiner before that gets the line and then the delete event.
	mod.nextEvent(func(e chatEvent) bool { return e.Type == "delete" })
	for _, g := range []*testGateway{a, c} { // a has the room in memory, c reads JetStream
		jr := decodeJoin(t, dial(t, g.url).call(map[string]any{"cmd": "join", "room": room}))
		if len(jr.Snapshot.Chat) != 1 || jr.Snapshot.Chat[0].Seq != l2 {
			t.Fatalf("snapshot after delete: %+v, want only seq %d", jr.Snapshot.Chat, l2)
		}
	}
	// A viewer that saw both lines recovers the delete.
	late := dial(t, c.url)
	jr := decodeJoin(t, joinSince(late, room, "", l2))
	if len(jr.Snapshot.Chat) != 1 || jr.Snapshot.Chat[0].Type != "delete" || jr.Snapshot.Chat[0].Line != l1 {
		t.Fatalf("recovery after delete: %+v", jr.Snapshot.Chat)
	}

	// mute
	modCall(t, mod, map[string]any{"cmd": "mute", "room": room, "user": "u", "seconds": 60})
	slowModeBarrier(t, mod, user, room, 1)
	f := user.call(map[string]any{"cmd": "chat", "room": room, "text": "hi", "cid": "m1"})
	if f.Error == nil || f.Error.Code != codeMuted || f.Error.RetryMS <= 0 {
		t.Fatalf("chat while muted: %+v", f.Error)
	}
	modCall(t, mod, map[string]any{"cmd": "mute", "room": room, "user": "u", "seconds": 0})

	// slow mode: one line per 30 s for viewers; moderators are exempt.
	slowModeBarrier(t, mod, user, room, 30)
	viewer.nextEvent(func(e chatEvent) bool { return e.Type == "slow_mode" && e.Seconds == 30 })
	sendLine(t, user, room, "first")
	f = user.call(map[string]any{"cmd": "chat", "room": room, "text": "second", "cid": "s2"})
	if f.Error == nil || f.Error.Code != codeSlowMode || f.Error.RetryMS <= 0 {
		t.Fatalf("second line in slow mode: %+v", f.Error)
	}
	sendLine(t, mod, room, "mod 1")
	sendLine(t, mod, room, "mod 2")
	// b has applied it (the user on b saw the event): a joiner there finds it.
	jr = decodeJoin(t, dial(t, b.url).call(map[string]any{"cmd": "join", "room": room}))
	if jr.Snapshot.SlowMode != 30 {
		t.Fatalf("snapshot slow_mode = %d, want 30", jr.Snapshot.SlowMode)
	}
	slowModeBarrier(t, mod, user, room, 0)
	sendLine(t, user, room, "second")

	// ban: kicked now with 4004, refused on every gateway, and by a gateway started later.
	modCall(t, mod, map[string]any{"cmd": "ban", "room": room, "user": "u"})
	if code := user.closeCode(); code != CloseBanned {
		t.Fatalf("banned user closed with %d, want %d", code, CloseBanned)
	}
	slowModeBarrier(t, mod, mod, room, 5) // a has applied the ban too
	d := startGateway(t, ns, cfg)
	for _, g := range []*testGateway{a, b, d} {
		f := dial(t, g.url).call(map[string]any{"cmd": "join", "room": room, "token": tok("u", auth.RoleViewer)})
		if f.Error == nil || f.Error.Code != codeBanned {
			t.Fatalf("rejoin after ban: %+v", f.Error)
		}
	}
	if n := b.counter(t, "liveroom_moderation_kicks_total"); n != 1 {
		t.Errorf("kicks on b = %v", n)
	}
	modCall(t, mod, map[string]any{"cmd": "unban", "room": room, "user": "u"})
}

// Viewer tokens cannot moderate.
func TestModerationForbiddenForViewers(t *testing.T) {
	ns := startNATS(t)
	g := startGateway(t, ns, Config{AllowAnonymous: true})
	const room = "mod2"
	v := dial(t, g.url)
	v.join(room, mintToken(t, "v", auth.RoleViewer, []string{room}, time.Hour))
	anon := dial(t, g.url)
	anon.join(room, "")
	for _, c := range []*client{v, anon} {
		for _, cmd := range []map[string]any{
			{"cmd": "delete", "room": room, "seq": 1},
			{"cmd": "mute", "room": room, "user": "x", "seconds": 10},
			{"cmd": "ban", "room": room, "user": "x"},
			{"cmd": "unban", "room": room, "user": "x"},
			{"cmd": "slow_mode", "room": room, "seconds": 5},
		} {
			if f := c.call(cmd); f.Error == nil || f.Error.Code != codeForbidden {
				t.Fatalf("%v by a viewer: %+v", cmd["cmd"], f.Error)
			}
		}
	}
}
