package fanout

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// A cheer whose caller gives up before a batch takes it is withdrawn: the caller is
// told nothing was stored, and nothing is. (Under load the gateway's command timeout
// used to answer `unavailable` for commands that a batch then stored anyway: the
// seed run's 11,302 "refused" taps were all in the room's total.)
func TestCheerWithdrawnWhenCallerGivesUp(t *testing.T) {
	// No flush on its own: the test flushes.
	h := testHub(t, Config{State: StateConfig{CheerInterval: time.Hour}})
	const room = "cheer-withdraw"
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Cheer(gone, room, "u1", "c1", 5, false); !errors.Is(err, ErrCheerNotStored) {
		t.Fatalf("cheer with an ended context: err %v, want ErrCheerNotStored", err)
	}

	// A command that waits is stored by the next flush, and the withdrawn one is not.
	done := startCheer(h, room, "u2", "c1", 7, false)
	h.cheers.flush()
	res := <-done
	if res.err != nil || res.ack.Credited != 7 || res.ack.Total != 7 {
		t.Fatalf("cheer: %+v, %v; want 7 credited, total 7", res.ack, res.err)
	}
	ctx, cancelRead := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelRead()
	if total, err := h.readCheerTotal(ctx, room); err != nil || total != 7 {
		t.Fatalf("stored total %d (%v), want 7: the withdrawn cheer must not count", total, err)
	}

	// Resending the withdrawn command (same user and cid) counts it, once.
	done = startCheer(h, room, "u1", "c1", 5, true)
	h.cheers.flush()
	if res := <-done; res.err != nil || res.ack.Credited != 5 || res.ack.Duplicate || res.ack.Total != 12 {
		t.Fatalf("resend: %+v, %v; want 5 credited, total 12", res.ack, res.err)
	}
}

// pendingIn is how many commands of room wait for the next flush.
func (c *cheerer) pendingIn(room string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending[room])
}

// cheerResult is the outcome of a command sent with startCheer.
type cheerResult struct {
	ack CheerAck
	err error
}

// startCheer sends a cheer command from a goroutine of its own and returns, once the
// command waits for a flush, the channel its outcome comes on. For tests that flush
// themselves (CheerInterval of an hour).
func startCheer(h *Hub, room, user, cid string, n int64, resend bool) <-chan cheerResult {
	before := h.cheers.pendingIn(room)
	done := make(chan cheerResult, 1)
	go func() {
		ack, err := h.Cheer(context.Background(), room, user, cid, n, resend)
		done <- cheerResult{ack, err}
	}()
	for h.cheers.pendingIn(room) == before {
		runtime.Gosched()
	}
	return done
}

// An interval's commands do not wait for the flushes still in flight (they used to
// queue behind the previous batch until the command timeout withdrew them), up to
// maxCheerFlushes; with every slot busy they wait for the next interval, counted.
func TestCheerFlushDoesNotWaitForTheOneInFlight(t *testing.T) {
	h := testHub(t, Config{State: StateConfig{CheerInterval: time.Hour}}) // the test ticks
	const room = "cheer-inflight"
	c := h.cheers
	cheer := func(cid string, n int64) <-chan cheerResult { return startCheer(h, room, "u", cid, n, false) }
	// Flushes that stand for batches JetStream has not answered yet.
	for range maxCheerFlushes - 1 {
		c.flushing <- struct{}{}
	}
	first := cheer("c1", 3)
	if !c.tick() {
		t.Fatal("tick with a free slot did not flush")
	}
	if res := <-first; res.err != nil || res.ack.Credited != 3 || res.ack.Total != 3 {
		t.Fatalf("cheer beside %d flushes in flight: %+v, %v; want 3 stored", maxCheerFlushes-1, res.ack, res.err)
	}

	c.flushing <- struct{}{} // every slot busy
	second := cheer("c2", 4)
	if c.tick() {
		t.Fatal("tick with every slot busy started a flush")
	}
	if got := chatCounter(h.statem.cheerFlushBusy); got != 1 {
		t.Fatalf("liveroom_cheer_flushes_busy_total = %v, want 1", got)
	}
	if c.pendingIn(room) == 0 {
		t.Fatal("the busy tick dropped the pending command")
	}
	<-c.flushing // one of them is answered
	if !c.tick() {
		t.Fatal("tick after a slot freed did not flush")
	}
	if res := <-second; res.err != nil || res.ack.Credited != 4 || res.ack.Total != 7 {
		t.Fatalf("cheer after the busy tick: %+v, %v; want 4 stored, total 7", res.ack, res.err)
	}
}

// A resent command already stored is looked up before batching, apart from the first
// sends of its interval: it is answered as a duplicate and their batch is stored at
// the first try (a stored claim in a batch makes the whole atomic batch fail, and
// every command in it waited for the look-up and a second batch).
func TestCheerResendDoesNotFailOthersBatch(t *testing.T) {
	h := testHub(t, Config{State: StateConfig{CheerInterval: time.Hour}}) // the test flushes
	const room = "cheer-resend"
	c := h.cheers
	first := startCheer(h, room, "u1", "c1", 5, false)
	c.flush()
	if res := <-first; res.err != nil || res.ack.Credited != 5 {
		t.Fatalf("first send: %+v, %v", res.ack, res.err)
	}

	// Its reply was lost: the client resends it, while another viewer cheers.
	again := startCheer(h, room, "u1", "c1", 5, true)
	other := startCheer(h, room, "u2", "c1", 3, false)
	c.flush()
	if res := <-again; res.err != nil || !res.ack.Duplicate || res.ack.Credited != 5 {
		t.Fatalf("resend: %+v, %v; want a duplicate of 5", res.ack, res.err)
	}
	if res := <-other; res.err != nil || res.ack.Duplicate || res.ack.Credited != 3 || res.ack.Total != 8 {
		t.Fatalf("other viewer's cheer: %+v, %v; want 3 stored, total 8", res.ack, res.err)
	}
	if got := chatCounter(h.statem.cheerBatchRetried); got != 0 {
		t.Fatalf("%v batches retried, want 0: the resend was batched with a first send", got)
	}
	if got := chatCounter(h.statem.cheerDuplicate); got != 1 {
		t.Fatalf("%v duplicates, want 1", got)
	}
}
