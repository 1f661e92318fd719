package fanout

import (
	"testing"
	"time"
)

// The chat budget is kept over the lines' stored times, not over the ticks that flush
// them: a room at 220 lines/s shows exactly the budget, 20 lines in every second, however
// late the ticks run.
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
	for s := range 10 {
		if perSecond[s] != 20 {
			t.Fatalf("second %d showed %d lines, want the budget, 20 (all: %v)", s, perSecond[s], perSecond)
		}
	}
}
