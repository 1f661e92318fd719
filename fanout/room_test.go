package fanout

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type countingSink struct {
	frames int
	last   *Frame
}

func (s *countingSink) Deliver(f *Frame) { s.frames++; s.last = f }

func testRoom(t testing.TB, sinks int) (*room, []*countingSink) {
	return testRoomCfg(t, "bench", Config{}, sinks)
}

// testRoomCfg is room name of a hub with cfg and every metric, no NATS, and sinks viewers.
func testRoomCfg(t testing.TB, name string, cfg Config, sinks int) (*room, []*countingSink) {
	h := &Hub{cfg: cfg.withDefaults()}
	reg := prometheus.NewRegistry()
	h.metrics = newMetrics(reg, func() float64 { return 1 })
	h.statem = newStateMetrics(reg)
	h.chatm = newChatMetrics(reg)
	r := newRoom(h, name)
	out := make([]*countingSink, sinks)
	for i := range out {
		out[i] = &countingSink{}
		r.addSink(out[i])
	}
	t.Cleanup(r.close)
	return r, out
}

// One frame per flush, the same bytes for every sink, and the allocations of a
// broadcast do not grow with the number of viewers.
func TestBroadcastEncodesOnce(t *testing.T) {
	event, err := chatEvent(7, time.UnixMilli(1000), []byte(`{"user":{"id":"u","name":"n","role":"viewer"},"text":"hi","cid":"c"}`))
	if err != nil {
		t.Fatal(err)
	}
	allocs := map[int]float64{}
	for _, n := range []int{10, 10000} {
		r, sinks := testRoom(t, n)
		allocs[n] = testing.AllocsPerRun(100, func() {
			r.add(event)
			r.add(event)
			r.flush()
		})
		first := sinks[0].last
		for i, s := range sinks {
			if s.frames != 101 || s.last != first {
				t.Fatalf("sink %d: %d frames, shared=%v", i, s.frames, s.last == first)
			}
		}
		var decoded struct {
			Type   string            `json:"type"`
			Room   string            `json:"room"`
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(first.Data, &decoded); err != nil || decoded.Type != "events" || decoded.Room != "bench" || len(decoded.Events) != 2 || !bytes.Equal(decoded.Events[0], event) {
			t.Fatalf("frame %s: %v", first.Data, err)
		}
	}
	if allocs[10000] > allocs[10] {
		t.Fatalf("allocations per broadcast grow with viewers: %v with 10, %v with 10000", allocs[10], allocs[10000])
	}
}

func TestChatEventRejectsBadPayloads(t *testing.T) {
	for _, p := range []string{``, `x`, `[]`, `{"a":`, `"str"`} {
		if _, err := chatEvent(1, time.Now(), []byte(p)); err == nil {
			t.Errorf("chatEvent(%q) accepted", p)
		}
	}
	b, err := chatEvent(42, time.UnixMilli(5), []byte(`{"text":"x"}`))
	if err != nil || string(b) != `{"type":"chat","seq":42,"ts":5,"text":"x"}` {
		t.Fatalf("chatEvent = %s, %v", b, err)
	}
}

func TestValidRoom(t *testing.T) {
	for room, want := range map[string]bool{"r1": true, "Shop_Live-9": true, "": false, "a.b": false, "a b": false, "直播": false, "*": false, ">": false} {
		if ValidRoom(room) != want {
			t.Errorf("ValidRoom(%q) = %v", room, !want)
		}
	}
}

// A small room waits Tick for its frame. A large one sends its frames at least
// LargeRoomTick apart, but an event after a quiet spell waits only Tick.
func TestLargeRoomTick(t *testing.T) {
	r, sinks := testRoomCfg(t, "large", Config{Tick: time.Minute, LargeRoomTick: time.Hour}, 2) // timers that do not fire during the test
	r.hub.cfg.LargeRoomViewers = 3
	delay := func() time.Duration {
		r.pendMu.Lock()
		defer r.pendMu.Unlock()
		return r.delay()
	}
	if got := delay(); got != r.hub.cfg.Tick {
		t.Fatalf("2 viewers: delay %v, want %v", got, r.hub.cfg.Tick)
	}
	extra := &countingSink{}
	r.addSink(extra)
	if got := delay(); got != r.hub.cfg.Tick {
		t.Fatalf("3 viewers, no frame sent yet: delay %v, want %v", got, r.hub.cfg.Tick)
	}

	r.add([]byte(`{"type":"x"}`))
	r.flush()
	if extra.frames != 1 {
		t.Fatalf("%d frames, want 1", extra.frames)
	}
	if got := delay(); got <= r.hub.cfg.Tick || got > r.hub.cfg.LargeRoomTick {
		t.Fatalf("3 viewers, just after a frame: delay %v, want the rest of the large-room tick %v", got, r.hub.cfg.LargeRoomTick)
	}
	r.flush() // nothing to send: the last frame's time stays
	if got := delay(); got <= r.hub.cfg.Tick {
		t.Fatalf("after an empty flush: delay %v, want the rest of the large-room tick", got)
	}
	r.removeSink(sinks[0])
	if got := delay(); got != r.hub.cfg.Tick {
		t.Fatalf("back to 2 viewers: delay %v, want %v", got, r.hub.cfg.Tick)
	}
}
