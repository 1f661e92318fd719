package fanout

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// stateTestRoom is a room with sinks and no NATS whose tick never fires by itself:
// the test flushes.
func stateTestRoom(t *testing.T, sinks int) (*room, []*countingSink) {
	return testRoomCfg(t, "tick", Config{Tick: time.Hour, LargeRoomTick: time.Hour}, sinks)
}

type tickEvent struct {
	Type    string `json:"type"`
	Text    string `json:"text"`
	Total   int64  `json:"total"`
	Online  int    `json:"online"`
	Version uint64 `json:"version"`
}

func decodeTick(t *testing.T, f *Frame) []tickEvent {
	t.Helper()
	var fr struct {
		Type   string      `json:"type"`
		Room   string      `json:"room"`
		Events []tickEvent `json:"events"`
	}
	if err := json.Unmarshal(f.Data, &fr); err != nil || fr.Type != "events" || fr.Room != "tick" {
		t.Fatalf("frame %s: %v", f.Data, err)
	}
	return fr.Events
}

// State changes ride the room's tick frame: many cheer totals, an online count, a pin
// and a chat line within one tick reach every viewer as ONE frame, with the latest
// cheer total only; a queue that drops it keeps its state.
func TestStateCoalescesIntoTickFrame(t *testing.T) {
	r, sinks := stateTestRoom(t, 3)
	for total := 1; total <= 50; total++ {
		r.sendState("cheers", []byte(`{"type":"cheers","total":`+strconv.Itoa(total)+`}`))
	}
	r.sendState("online", []byte(`{"type":"online","online":3,"unique":3}`))
	r.sendState("pin", []byte(`{"type":"pin","version":9,"product":null}`))
	r.addEvent(pendingEvent{data: []byte(`{"type":"chat","seq":1,"text":"hi"}`)})
	r.flush()

	f := sinks[0].last
	for i, s := range sinks {
		if s.frames != 1 || s.last != f {
			t.Fatalf("sink %d got %d frames (shared %v), want the one tick frame", i, s.frames, s.last == f)
		}
	}
	// Chat and state: a chat frame whose State (kept by a queue that drops the frame)
	// is the same state events alone.
	if f.Class != ClassStream || f.State == nil || f.State.Class != ClassState || f.State.Key != "" {
		t.Fatalf("frame with chat and state: class %d, state %+v; want ClassStream with a keyless ClassState fallback", f.Class, f.State)
	}
	if evs := decodeTick(t, f.State); len(evs) != 3 || evs[0].Total != 50 || evs[1].Online != 3 || evs[2].Version != 9 {
		t.Errorf("state fallback events %+v, want cheers 50, online 3, pin 9", evs)
	}
	evs := decodeTick(t, f)
	want := []tickEvent{{Type: "chat", Text: "hi"}, {Type: "cheers", Total: 50}, {Type: "online", Online: 3}, {Type: "pin", Version: 9}}
	if len(evs) != len(want) {
		t.Fatalf("events %+v, want %+v", evs, want)
	}
	for i := range want {
		if evs[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, evs[i], want[i])
		}
	}
	if f.Events != len(want) {
		t.Errorf("frame counts %d events, want %d", f.Events, len(want))
	}

	// A tick with one state key and nothing else keeps its key: a slow viewer's queue
	// replaces it with the next one of the same key. Chat alone stays droppable.
	r.sendState("cheers", []byte(`{"type":"cheers","total":51}`))
	r.sendState("cheers", []byte(`{"type":"cheers","total":52}`))
	r.flush()
	if f := sinks[0].last; sinks[0].frames != 2 || f.Class != ClassState || f.Key != "tick/cheers" || f.State != nil {
		t.Fatalf("state-only tick: %d frames, class %d key %q", sinks[0].frames, f.Class, f.Key)
	} else if evs := decodeTick(t, f); len(evs) != 1 || evs[0].Total != 52 {
		t.Fatalf("state-only tick events %+v, want the total 52 alone", evs)
	}
	r.addEvent(pendingEvent{data: []byte(`{"type":"chat","seq":2,"text":"yo"}`)})
	r.flush()
	if f := sinks[0].last; sinks[0].frames != 3 || f.Class != ClassStream || f.State != nil {
		t.Fatalf("chat-only tick: %d frames, class %d", sinks[0].frames, f.Class)
	}
	r.flush() // nothing pending: no frame
	if sinks[0].frames != 3 {
		t.Fatalf("an empty tick sent a frame")
	}
}

// A joining viewer is given the online count last sent to the room, not a fresher sum:
// the viewer loop sends a count only when it differs from the one last sent, so a
// fresher sum in the snapshot would stay on that viewer's screen if the sum went back.
func TestSnapshotOnlineIsTheLastSent(t *testing.T) {
	r, _ := stateTestRoom(t, 1)
	s := &r.state
	s.mu.Lock()
	s.init()
	s.sentOnline, s.sentUnique = 5, 4
	s.reports["gw1"] = viewerReport{n: 6, at: time.Now()} // one joined since the last send
	s.mu.Unlock()
	if snap := r.snapshot(); snap.Online != 5 || snap.Unique != 4 {
		t.Fatalf("snapshot online %d unique %d, want the last sent 5, 4", snap.Online, snap.Unique)
	}
}
