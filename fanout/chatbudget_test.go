package fanout

import (
	"testing"
	"time"
)

// The chat budget is kept over the lines' stored times, not over the ticks that flush
// them: a room at 220 lines/s shows the budget, 20 lines in every second after the first
// (which also passes the budget's burst), however late the ticks run.
func TestChatBudgetCountsStoredTimes(t *testing.T) {
	h := &Hub{cfg: Config{ChatBudget: 20}.withDefaults()}
	var c roomChat
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	perSecond := make(map[int]int)
	for i := range 220 * 10 {
		at := start.Add(time.Duration(i) * time.Second / 220)
		if c.take(h, at) {
			perSecond[int(at.Sub(start)/time.Second)]++
		}
	}
	if perSecond[0] < 38 || perSecond[0] > 40 {
		t.Fatalf("the first second showed %d lines, want the burst and a second's budget, ~40", perSecond[0])
	}
	for s := 1; s < 10; s++ {
		if perSecond[s] < 19 || perSecond[s] > 21 {
			t.Fatalf("second %d showed %d lines, want the budget, 20 (all: %v)", s, perSecond[s], perSecond)
		}
	}
}
