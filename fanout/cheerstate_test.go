package fanout

import (
	"testing"
	"testing/synctest"
	"time"
)

// cheersIn returns the cheers total a tick frame carries, or -1 if it has none.
func cheersIn(t *testing.T, f *Frame) int64 {
	t.Helper()
	if f == nil {
		return -1
	}
	for _, ev := range decodeTick(t, f) {
		if ev.Type == "cheers" {
			return ev.Total
		}
	}
	return -1
}

// A cheer total goes out in the next tick when no cheers frame went out for
// CheerStateInterval (it used to wait the whole interval first: 250 ms on every
// total a viewer saw); totals within the interval wait for its end and only the
// newest one goes out then.
func TestCheerTotalLeadingEdge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 250 * time.Millisecond
		r, sinks := testRoomCfg(t, "tick", Config{Tick: time.Hour, LargeRoomTick: time.Hour,
			State: StateConfig{CheerStateInterval: every}}, 1)
		flushed := func() int64 {
			t.Helper()
			before := sinks[0].frames
			r.flush()
			if sinks[0].frames == before {
				return -1
			}
			return cheersIn(t, sinks[0].last)
		}

		r.setCheers(10, true)
		if got := flushed(); got != 10 {
			t.Fatalf("first total: tick carries %d, want 10 at once", got)
		}
		r.setCheers(11, true)
		r.setCheers(12, true)
		if got := flushed(); got != -1 {
			t.Fatalf("totals within the interval: tick carries %d, want none yet", got)
		}
		time.Sleep(every)
		synctest.Wait()
		if got := flushed(); got != 12 {
			t.Fatalf("at the interval's end: tick carries %d, want the newest, 12", got)
		}
		time.Sleep(every)
		r.setCheers(13, true)
		if got := flushed(); got != 13 {
			t.Fatalf("after a quiet interval: tick carries %d, want 13 at once", got)
		}
	})
}
