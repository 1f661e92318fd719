package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

// A viewer that stops reading does not hold up the others: its chat is dropped
// (counted), and once its socket stays blocked it is closed as too slow.
func TestSlowViewerIsDroppedAndDisconnected(t *testing.T) {
	ns := startNATS(t)
	g := startGateway(t, ns, Config{QueueBytes: 64 << 10, WriteTimeout: 300 * time.Millisecond, ChatRate: 1e6, ChatBurst: 1e6, MaxFrameBytes: 64 << 10, MaxChatRunes: 20000, Fanout: fanout.Config{Tick: 2 * time.Millisecond}})
	tok := mintToken(t, "u1", auth.RoleViewer, []string{"r"}, time.Hour)

	slow := dialWith(t, g.url, tinyBufferClient(), false)
	slow.t = t
	slow.sendRaw(`{"id":"j","cmd":"join","room":"r","token":"` + tok + `"}`)
	fast := dial(t, g.url)
	fast.join("r", tok)
	sender := dial(t, g.url)
	sender.join("r", tok)

	// 18 KB lines, in lockstep with the fast viewers (each line is received before
	// the next is sent), until the slow viewer has been cut off. The fast ones never
	// wait for the slow one.
	text := strings.Repeat("慢", 6000)
	sent := 0
	for g.counter(t, "liveroom_disconnects_total", "code", closeLabel(CloseTooSlow)) == 0 {
		if sent == 2000 {
			t.Fatal("slow viewer still connected after 2000 lines")
		}
		if f := sender.call(map[string]any{"cmd": "chat", "room": "r", "text": text, "cid": fmt.Sprint(sent)}); f.Error != nil {
			t.Fatal(f.Error)
		}
		for name, c := range map[string]*client{"fast": fast, "sender": sender} {
			if l := c.chatLines(1)[0]; l.CID != fmt.Sprint(sent) {
				t.Fatalf("%s: got line %s, want %d", name, l.CID, sent)
			}
		}
		sent++
	}
	if drops := g.counter(t, "liveroom_queue_drops_total", "reason", "chat_oldest") + g.counter(t, "liveroom_queue_drops_total", "reason", "chat_new"); drops == 0 {
		t.Error("no chat drops counted for the slow viewer")
	}
	if g.counter(t, "liveroom_write_handoffs_total") == 0 {
		t.Error("the slow viewer's full socket was never handed off by the writer pool")
	}
	t.Logf("slow viewer cut off after %d lines", sent)
}

func TestQueueOverflowRules(t *testing.T) {
	frame := func(class fanout.Class, key string, size int) *fanout.Frame {
		return &fanout.Frame{Data: make([]byte, size), Class: class, Key: key}
	}
	q := newQueue(100)
	q.push(frame(fanout.ClassStream, "", 40))
	q.push(frame(fanout.ClassState, "pin", 30))
	q.push(frame(fanout.ClassStream, "", 30))

	// A newer state frame replaces the queued one of the same key.
	if res := q.push(frame(fanout.ClassState, "pin", 20)); !res.coalesced {
		t.Fatalf("state push = %+v, want coalesced", res)
	}
	// A reply that does not fit pushes out the oldest chat first.
	if res := q.push(frame(fanout.ClassReply, "", 40)); res.droppedOld != 1 || res.overflow {
		t.Fatalf("reply push = %+v, want one old chat dropped", res)
	}
	// A chat frame that cannot fit even after dropping old chat is itself dropped.
	if res := q.push(frame(fanout.ClassStream, "", 90)); !res.droppedNew || res.droppedOld != 1 {
		t.Fatalf("chat push = %+v, want old chat dropped then the new one", res)
	}
	// A reply that cannot fit behind state and replies means the viewer is too slow.
	if res := q.push(frame(fanout.ClassReply, "", 60)); !res.overflow {
		t.Fatalf("reply push = %+v, want overflow", res)
	}
	items := q.take()
	var classes []fanout.Class
	for _, f := range items {
		classes = append(classes, f.Class)
	}
	if len(items) != 2 || items[0].Class != fanout.ClassState || len(items[0].Data) != 20 || items[1].Class != fanout.ClassReply {
		t.Fatalf("queue holds %v, want [newest pin, reply]", classes)
	}
}
