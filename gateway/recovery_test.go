package gateway

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

type joinReply struct {
	Snapshot struct {
		Chat      []chatEvent `json:"chat"`
		Recovered bool        `json:"recovered"`
		SlowMode  int         `json:"slow_mode"`
	} `json:"snapshot"`
}

func decodeJoin(t testing.TB, f frame) joinReply {
	t.Helper()
	if f.Error != nil {
		t.Fatalf("join: %v", f.Error)
	}
	var r joinReply
	if err := json.Unmarshal(f.Result, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func joinSince(c *client, room, token string, since uint64) frame {
	cmd := map[string]any{"cmd": "join", "room": room, "since": since}
	if token != "" {
		cmd["token"] = token
	}
	return c.call(cmd)
}

// nextEvent returns the next event of the room (held frames first) that match accepts.
func (c *client) nextEvent(match func(chatEvent) bool) chatEvent {
	c.t.Helper()
	for {
		var f frame
		if len(c.held) > 0 {
			f, c.held = c.held[0], c.held[1:]
		} else {
			var ok bool
			if f, ok = c.next(); !ok {
				c.t.Fatalf("event not received: %v", c.closeErr())
			}
		}
		for i, ev := range f.Events {
			if match(ev) {
				if rest := f.Events[i+1:]; len(rest) > 0 {
					c.held = append([]frame{{Type: "events", Room: f.Room, Events: rest}}, c.held...)
				}
				return ev
			}
		}
	}
}

func sendLine(t testing.TB, c *client, room, text string) uint64 {
	t.Helper()
	f := c.call(map[string]any{"cmd": "chat", "room": room, "text": text, "cid": text})
	if f.Error != nil {
		t.Fatalf("chat %q: %v", text, f.Error)
	}
	var res chatResult
	if err := json.Unmarshal(f.Result, &res); err != nil {
		t.Fatal(err)
	}
	return res.Seq
}

// A viewer that disconnects, misses lines and rejoins (on the other gateway) with the
// last seq it saw ends with every line exactly once, in order, while lines keep coming
// during the rejoin. From the gateway's memory, and from JetStream when the memory holds
// fewer lines than were missed.
func TestRecoverMissedLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		memory int
	}{{"memory", 0}, {"jetstream", 4}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := startNATS(t)
			fc := fanout.Config{ChatBudget: 10000, ChatMemory: tc.memory}
			a := startGateway(t, ns, Config{AllowAnonymous: true, ChatRate: 10000, ChatBurst: 10000, Fanout: fc})
			b := startGateway(t, ns, Config{AllowAnonymous: true, Fanout: fc})
			const room = "rec"
			sender := dial(t, a.url)
			sender.join(room, mintToken(t, "s", auth.RoleViewer, []string{room}, time.Hour))

			v := dial(t, b.url)
			v.join(room, "")
			for i := range 10 {
				sendLine(t, sender, room, fmt.Sprint("line-", i))
			}
			seen := v.chatLines(10)
			last := seen[len(seen)-1].Seq
			_ = v.ws.CloseNow()

			for i := 10; i < 30; i++ { // missed
				sendLine(t, sender, room, fmt.Sprint("line-", i))
			}
			// Once the sender (on a) has seen them, a's memory has them too: with a
			// memory of 4, line-10 is then only in JetStream.
			sender.chatLines(30)
			more := make(chan error, 1)
			go func() { // and more while the viewer rejoins
				for i := 30; i < 60; i++ {
					id := sender.send(map[string]any{"cmd": "chat", "room": room, "text": fmt.Sprint("line-", i), "cid": fmt.Sprint("line-", i)})
					if f := sender.waitReply(id); f.Error != nil {
						more <- f.Error
						return
					}
				}
				more <- nil
			}()
			v2 := dial(t, a.url)
			jr := decodeJoin(t, joinSince(v2, room, "", last))
			if !jr.Snapshot.Recovered {
				t.Fatalf("join with since: not recovered: %+v", jr.Snapshot)
			}
			got := append(seen, jr.Snapshot.Chat...)
			for got[len(got)-1].Text != "line-59" {
				got = append(got, v2.nextEvent(func(e chatEvent) bool { return e.Type == "chat" }))
			}
			if err := <-more; err != nil {
				t.Fatal(err)
			}
			if len(got) != 60 {
				t.Fatalf("got %d lines, want 60", len(got))
			}
			for i, e := range got {
				if e.Text != fmt.Sprint("line-", i) || (i > 0 && e.Seq <= got[i-1].Seq) {
					t.Fatalf("line %d is %q seq %d (previous seq %d)", i, e.Text, e.Seq, got[max(i-1, 0)].Seq)
				}
			}
			source := "memory"
			if tc.memory > 0 {
				source = "jetstream"
			}
			if n := a.counter(t, "liveroom_chat_join_total", "source", source); n != 1 {
				t.Errorf("recoveries from %s = %v, want 1", source, n)
			}
		})
	}
}

// A viewer whose `since` is older than the history JetStream keeps gets an empty
// recovery and then a reset event with the recent lines.
func TestRecoverTooFarBackResets(t *testing.T) {
	ns := startNATS(t)
	fc := fanout.Config{ChatBudget: 10000, ChatHistory: 5}
	a := startGateway(t, ns, Config{AllowAnonymous: true, ChatRate: 10000, ChatBurst: 10000, Fanout: fc})
	b := startGateway(t, ns, Config{AllowAnonymous: true, Fanout: fc})
	const room = "far"
	sender := dial(t, a.url)
	sender.join(room, mintToken(t, "s", auth.RoleViewer, []string{room}, time.Hour))
	first := sendLine(t, sender, room, "line-0")
	for i := 1; i < 13; i++ {
		sendLine(t, sender, room, fmt.Sprint("line-", i))
	}

	v := dial(t, b.url) // b has no memory of the room: it reads JetStream, which kept 5
	jr := decodeJoin(t, joinSince(v, room, "", first))
	if jr.Snapshot.Recovered || len(jr.Snapshot.Chat) != 0 {
		t.Fatalf("snapshot %+v, want no recovery", jr.Snapshot)
	}
	reset := v.nextEvent(func(e chatEvent) bool { return true })
	if reset.Type != "reset" || len(reset.Lines) != 5 {
		t.Fatalf("first event %+v, want a reset with 5 lines", reset)
	}
	for i, l := range reset.Lines {
		if l.Text != fmt.Sprint("line-", 8+i) {
			t.Fatalf("reset line %d = %q", i, l.Text)
		}
	}
	if n := b.counter(t, "liveroom_chat_join_total", "source", "reset"); n != 1 {
		t.Errorf("resets = %v, want 1", n)
	}
	// A join without since gets the recent lines in the snapshot.
	w := dial(t, b.url)
	jr = decodeJoin(t, w.call(map[string]any{"cmd": "join", "room": room}))
	if len(jr.Snapshot.Chat) != 5 || jr.Snapshot.Chat[4].Text != "line-12" {
		t.Fatalf("snapshot chat %+v", jr.Snapshot.Chat)
	}
}

// A viewer that missed more than ChatRecoverMax lines still in the gateway's memory
// gets a reset too: a recovery must fit in one reply.
func TestRecoverFromMemoryCapsAtRecoverMax(t *testing.T) {
	ns := startNATS(t)
	fc := fanout.Config{ChatBudget: 10000, ChatRecoverMax: 4, ChatSnapshot: 3}
	a := startGateway(t, ns, Config{AllowAnonymous: true, ChatRate: 10000, ChatBurst: 10000, Fanout: fc})
	const room = "cap"
	sender := dial(t, a.url)
	sender.join(room, mintToken(t, "s", auth.RoleViewer, []string{room}, time.Hour))
	first := sendLine(t, sender, room, "line-0")
	for i := 1; i < 10; i++ {
		sendLine(t, sender, room, fmt.Sprint("line-", i))
	}
	// Once the sender has seen line-9 live, a's memory holds all ten.
	sender.nextEvent(func(e chatEvent) bool { return e.Text == "line-9" })
	v := dial(t, a.url) // 9 lines were missed, the cap is 4
	jr := decodeJoin(t, joinSince(v, room, "", first))
	if jr.Snapshot.Recovered || len(jr.Snapshot.Chat) != 0 {
		t.Fatalf("snapshot %+v, want no recovery", jr.Snapshot)
	}
	reset := v.nextEvent(func(e chatEvent) bool { return true })
	if reset.Type != "reset" || len(reset.Lines) != 3 || reset.Lines[2].Text != "line-9" {
		t.Fatalf("first event %+v, want a reset with the 3 most recent lines", reset)
	}
}
