package gateway

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

// A line sent on gateway A reaches every viewer on A and B exactly once, in the same
// order, with the same sequence numbers.
func TestTwoGatewaysShareARoom(t *testing.T) {
	ns := startNATS(t)
	// A budget above the burst: this test wants every line (sampling: sampling_test.go).
	a := startGateway(t, ns, Config{AllowAnonymous: true, ChatRate: 1000, ChatBurst: 1000, Fanout: fanout.Config{ChatBudget: 1000}})
	b := startGateway(t, ns, Config{AllowAnonymous: true, Fanout: fanout.Config{ChatBudget: 1000}})

	const room, lines = "r1", 30
	var viewers []*client
	for i := range 6 {
		url := a.url
		if i%2 == 1 {
			url = b.url
		}
		v := dial(t, url)
		v.join(room, "")
		viewers = append(viewers, v)
	}
	sender := dial(t, a.url)
	sender.join(room, mintToken(t, "u1", auth.RoleViewer, []string{room}, time.Hour))

	var seqs []uint64
	for i := range lines {
		f := sender.call(map[string]any{"cmd": "chat", "room": room, "text": fmt.Sprintf("line %d 你好", i), "cid": fmt.Sprint("c", i)})
		if f.Error != nil {
			t.Fatalf("chat %d: %v", i, f.Error)
		}
		var res chatResult
		if err := json.Unmarshal(f.Result, &res); err != nil || res.Duplicate {
			t.Fatalf("chat %d result %s", i, f.Result)
		}
		seqs = append(seqs, res.Seq)
	}

	for vi, v := range append(viewers, sender) {
		got := v.chatLines(lines)
		for i, ev := range got {
			if ev.Seq != seqs[i] || ev.Text != fmt.Sprintf("line %d 你好", i) || ev.User.ID != "u1" || ev.User.Name != "name-u1" || ev.CID != fmt.Sprint("c", i) {
				t.Fatalf("viewer %d line %d = %+v, want seq %d", vi, i, ev, seqs[i])
			}
			if i > 0 && ev.Seq <= got[i-1].Seq {
				t.Fatalf("viewer %d: seq not increasing at %d", vi, i)
			}
		}
	}
	// Exactly once: nothing more arrives after a marker line sent last.
	f := sender.call(map[string]any{"cmd": "chat", "room": room, "text": "marker", "cid": "marker"})
	if f.Error != nil {
		t.Fatal(f.Error)
	}
	for vi, v := range viewers {
		if ev := v.chatLines(1)[0]; ev.Text != "marker" {
			t.Fatalf("viewer %d got %q after the %d lines, want the marker", vi, ev.Text, lines)
		}
	}
	if n := a.counter(t, "liveroom_chat_published_total", "result", "stored"); n != lines+1 {
		t.Errorf("stored = %v, want %d", n, lines+1)
	}
}

// Resending a line with the same client id is acknowledged twice and stored once.
func TestChatResendIsDeduplicated(t *testing.T) {
	ns := startNATS(t)
	g := startGateway(t, ns, Config{AllowAnonymous: true})
	viewer := dial(t, g.url)
	viewer.join("r", "")
	sender := dial(t, g.url)
	sender.join("r", mintToken(t, "u1", auth.RoleViewer, []string{"r"}, time.Hour))

	var acks []chatResult
	for range 2 {
		f := sender.call(map[string]any{"cmd": "chat", "room": "r", "text": "hello", "cid": "same"})
		if f.Error != nil {
			t.Fatal(f.Error)
		}
		var res chatResult
		_ = json.Unmarshal(f.Result, &res)
		acks = append(acks, res)
	}
	if acks[0].Duplicate || !acks[1].Duplicate || acks[0].Seq != acks[1].Seq {
		t.Fatalf("acks = %+v, want the second a duplicate of the first", acks)
	}
	sender.call(map[string]any{"cmd": "chat", "room": "r", "text": "next", "cid": "other"})
	got := viewer.chatLines(2)
	if got[0].Text != "hello" || got[1].Text != "next" {
		t.Fatalf("viewer saw %q, %q; want hello then next (the resend stored once)", got[0].Text, got[1].Text)
	}
	if n := g.counter(t, "liveroom_chat_published_total", "result", "duplicate"); n != 1 {
		t.Errorf("duplicate counter = %v", n)
	}
}
