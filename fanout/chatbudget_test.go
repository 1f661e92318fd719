package fanout

import (
	"testing"
	"time"
)

// The chat budget is kept over the lines' stored times, not over the ticks that flush
// them: 10 s of chat at 220 lines/s that reaches the room late, all in one flush, is
// sampled as it was stored, the burst's budget plus 20 lines a second, not cut to one
// tick's 20.
func TestChatBudgetCountsStoredTimes(t *testing.T) {
	r, _ := testRoomCfg(t, "budget", Config{ChatBudget: 20}, 0)
	r.chat.loaded = true
	r.chat.log.max = r.hub.cfg.ChatMemory
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var events []pendingEvent
	for i := range 220 * 10 {
		seq := uint64(i + 1)
		e := &chatEntry{seq: seq, prev: seq - 1, at: start.Add(time.Duration(i) * time.Second / 220), data: []byte(`{}`)}
		events = append(events, pendingEvent{data: e.data, chat: e})
	}
	r.flushMu.Lock()
	shown, _ := r.chatFlush(events, nil, nil, time.Now())
	r.flushMu.Unlock()
	if n := len(shown); n < 218 || n > 221 {
		t.Fatalf("one flush of 10 s of lines showed %d, want ~220 (20 + 20/s over their stored times)", n)
	}
}
