package gateway

import (
	"bytes"
	"testing"

	"github.com/liveroom/liveroom/fanout"
)

// A tick frame with chat and state that does not fit a slow viewer's queue loses its
// chat only: its state frame is queued in its place, and an older one dropped to make
// room keeps its state too. The viewer is not closed as too slow.
func TestQueueKeepsStateOfDroppedTickFrames(t *testing.T) {
	q := newQueue(1000)
	tick := func(state string) *fanout.Frame {
		st := &fanout.Frame{Data: []byte(state), Class: fanout.ClassState}
		return &fanout.Frame{Data: bytes.Repeat([]byte("c"), 600), Class: fanout.ClassStream, State: st}
	}
	if res := q.push(tick("s1")); res.droppedNew || res.droppedOld != 0 {
		t.Fatalf("first push: %+v", res)
	}
	// The second does not fit beside the first: the first's chat goes, its state stays.
	if res := q.push(tick("s2")); res.overflow || res.droppedOld != 1 || res.droppedNew {
		t.Fatalf("second push: %+v", res)
	}
	// A chat frame bigger than the room left even without the second one's chat:
	// dropped, its state queued.
	big := tick("s3")
	big.Data = bytes.Repeat([]byte("c"), 999)
	if res := q.push(big); res.overflow || !res.droppedNew || res.droppedOld != 1 {
		t.Fatalf("third push: %+v", res)
	}
	var got []string
	for _, f := range q.take() {
		got = append(got, string(f.Data[:2]))
	}
	if want := []string{"s1", "s2", "s3"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("queued %q, want %q (state of dropped frames kept, in order)", got, want)
	}
}
