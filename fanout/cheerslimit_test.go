package fanout

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/liveroom/liveroom/internal/embednats"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// pendingCommands is how many commands wait for the next flush, in every room.
func (c *cheerer) pendingCommands() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, byClaim := range c.pending {
		n += len(byClaim)
	}
	return n
}

// waitCounter waits until the counter c reaches n.
func waitCounter(t *testing.T, c prometheus.Counter, n float64, what string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); chatCounter(c) < n; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v, want %v", what, chatCounter(c), n)
		}
	}
}

// An evening on a platform: many rooms cheer in the same CheerInterval, on one gateway
// and on several sharing the stream, more rooms than nats-server lets atomic batches be
// in flight (jetstream.limits.batch.max_inflight_per_stream, 50 by default). Every
// command is stored exactly once and answered. Gateways that keep within the server's
// limit together (CheerBatchesInFlight each) have no batch refused; gateways that go
// over it still converge.
//
// (Each room's batch used to go out at once: with 200 rooms, the server refused tens of
// them, the commit answered "atomic publish batch is incomplete", and each went round
// again through a look-up of its claims, up to 4 rounds before its commands failed.)
func TestCheerManyRoomsInOneInterval(t *testing.T) {
	// A gateway runs on more cores than this test may get, and its rooms' batches then
	// go out interleaved on its connection: that is when the server sees them in flight
	// together. (With 2, a batch mostly goes out whole before the next one.)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(32))
	for _, tc := range []struct {
		hubs, rooms int // rooms per hub
		serverLimit int // max_inflight_per_stream; 0: the server's default, 50
	}{
		{hubs: 1, rooms: 200},
		{hubs: 2, rooms: 100},
		{hubs: 3, rooms: 30, serverLimit: 4}, // 3 × 16 slots over the server's 4
	} {
		t.Run(fmt.Sprintf("%d hubs, %d rooms each, server limit %d", tc.hubs, tc.rooms, tc.serverLimit), func(t *testing.T) {
			const perRoom = 5
			ns := embednats.TestWith(t, embednats.Config{JetStreamLimits: server.JSLimitOpts{MaxBatchInflightPerStream: tc.serverLimit}})
			var hubs []*Hub
			for range tc.hubs {
				// The test flushes; the batches' time bound (2 × SubscribeTimeout) only
				// has to outlast a busy test machine.
				hubs = append(hubs, hubOn(t, ns, Config{SubscribeTimeout: 10 * time.Second,
					State: StateConfig{CheerInterval: time.Hour}}))
			}
			type cmd struct {
				h          *Hub
				room, user string
				n          int64
			}
			var cmds []cmd
			want := map[string]int64{}
			for i, h := range hubs {
				for r := range tc.rooms {
					room := fmt.Sprintf("evening-%d-%d", i, r)
					for u := range perRoom {
						n := int64(1 + (r+u)%5)
						cmds = append(cmds, cmd{h, room, "u" + strconv.Itoa(u), n})
						want[room] += n
					}
				}
			}
			type result struct {
				ack CheerAck
				err error
			}
			// cheerAll sends every command at once and flushes every gateway once: one
			// CheerInterval.
			cheerAll := func(resend bool) []result {
				results := make([]result, len(cmds))
				var wg sync.WaitGroup
				for i, c := range cmds {
					wg.Go(func() {
						ack, err := c.h.Cheer(context.Background(), c.room, c.user, "c1", c.n, resend)
						results[i] = result{ack, err}
					})
				}
				for _, h := range hubs {
					for h.cheers.pendingCommands() < tc.rooms*perRoom {
						runtime.Gosched()
					}
				}
				for _, h := range hubs {
					wg.Go(h.cheers.flush)
				}
				wg.Wait()
				return results
			}
			checkTotals := func() {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				off := 0
				for room, n := range want {
					if total, err := hubs[0].readCheerTotal(ctx, room); err != nil || total != n {
						if off++; off <= 3 {
							t.Errorf("room %s: total %d (%v), want %d", room, total, err, n)
						}
					}
				}
				if off > 0 {
					t.Errorf("%d of %d rooms' totals off", off, len(want))
				}
			}

			failed := 0
			for i, res := range cheerAll(false) {
				if res.err != nil || res.ack.Credited != cmds[i].n || res.ack.Duplicate {
					if failed++; failed <= 3 {
						t.Errorf("%s %s: %+v, %v; want %d credited", cmds[i].room, cmds[i].user, res.ack, res.err, cmds[i].n)
					}
				}
			}
			if failed > 0 {
				t.Errorf("%d of %d commands not answered as stored", failed, len(cmds))
			}
			checkTotals()
			for i, h := range hubs {
				// No duplicates here: a batch that went round again was refused.
				if got := chatCounter(h.statem.cheerBatchRetried); got != 0 {
					t.Errorf("hub %d: %v batches failed and went round again, want 0", i, got)
				}
				refused := chatCounter(h.statem.cheerBatchLimited["server"])
				if tc.serverLimit == 0 && refused != 0 {
					t.Errorf("hub %d: %v batches refused by the server, want 0: %d gateways × %d slots are under its 50",
						i, refused, tc.hubs, h.cfg.State.CheerBatchesInFlight)
				}
				t.Logf("hub %d: %v batches waited for a slot, %v refused by the server", i,
					chatCounter(h.statem.cheerBatchLimited["gateway"]), refused)
			}

			// None counted twice: every command resent is a duplicate of what it credited.
			failed = 0
			for i, res := range cheerAll(true) {
				if res.err != nil || res.ack.Credited != cmds[i].n || !res.ack.Duplicate {
					if failed++; failed <= 3 {
						t.Errorf("resent %s %s: %+v, %v; want a duplicate of %d", cmds[i].room, cmds[i].user, res.ack, res.err, cmds[i].n)
					}
				}
			}
			if failed > 0 {
				t.Errorf("%d of %d resent commands not answered as duplicates", failed, len(cmds))
			}
			checkTotals()
		})
	}
}

// A batch the server refuses for too many atomic batches in flight is stored nowhere:
// it is sent again after a backoff, without a look-up of its claims and without using
// up one of its rounds, until the server takes it.
func TestCheerRefusedBatchIsSentAgain(t *testing.T) {
	ns := embednats.TestWith(t, embednats.Config{JetStreamLimits: server.JSLimitOpts{MaxBatchInflightPerStream: 1}})
	h := hubOn(t, ns, Config{SubscribeTimeout: 10 * time.Second, State: StateConfig{CheerInterval: time.Hour}}) // the test flushes
	const room = "cheer-refused"

	// Another client's batch holds the stream's only slot: its first message is
	// answered (empty) once the batch is open.
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	blocker := func(seq int, commit bool) *nats.Msg {
		m := nats.NewMsg(claimSubject("cheer-blocker", "x"))
		m.Header.Set("Nats-Batch-Id", "blocker")
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(seq))
		if commit {
			m.Header.Set("Nats-Batch-Commit", "1")
		}
		resp, err := nc.RequestMsg(m, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := blocker(1, false); len(resp.Data) != 0 {
		t.Fatalf("blocking batch not open: %s", resp.Data)
	}

	done := startCheer(h, room, "u1", "c1", 5, false)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		h.cheers.flush()
	}()
	waitCounter(t, h.statem.cheerBatchLimited["server"], 1, "batches refused by the server")

	// The blocking batch ends (a gap in its sequence abandons it): the slot is free.
	blocker(3, true)
	if res := <-done; res.err != nil || res.ack.Credited != 5 || res.ack.Total != 5 || res.ack.Duplicate {
		t.Fatalf("cheer: %+v, %v; want 5 credited, total 5", res.ack, res.err)
	}
	<-flushed
	for name, c := range map[string]prometheus.Counter{"retried": h.statem.cheerBatchRetried, "failed": h.statem.cheerBatchFailed} {
		if got := chatCounter(c); got != 0 {
			t.Errorf("%s batches: %v, want 0: a refused batch is sent again as it is", name, got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if total, err := h.readCheerTotal(ctx, room); err != nil || total != 5 {
		t.Fatalf("stored total %d (%v), want 5", total, err)
	}
}

// A gateway has at most CheerBatchesInFlight batches in flight: the next one waits for
// a slot (counted), within the batch's time bound; a batch that finds none in time
// stores nothing and its commands are answered ErrCheerNotStored.
func TestCheerBatchWaitsForASlot(t *testing.T) {
	ns := embednats.Test(t)
	for _, tc := range []struct {
		name    string
		timeout time.Duration // SubscribeTimeout: the batch's time bound is twice it
		free    bool          // the test frees the slot once the batch waits
	}{
		{name: "stored once a slot is free", timeout: 10 * time.Second, free: true},
		{name: "not stored without a slot in time", timeout: 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hubOn(t, ns, Config{SubscribeTimeout: tc.timeout,
				State: StateConfig{CheerInterval: time.Hour, CheerBatchesInFlight: 1}}) // the test flushes
			room := "cheer-slot-" + strconv.FormatBool(tc.free)
			c := h.cheers
			c.slots <- struct{}{} // a batch in flight
			done := startCheer(h, room, "u1", "c1", 3, false)
			flushed := make(chan struct{})
			go func() {
				defer close(flushed)
				c.flush()
			}()
			waitCounter(t, h.statem.cheerBatchLimited["gateway"], 1, "batches that waited for a slot")
			want := int64(0)
			if tc.free {
				<-c.slots
				want = 3
				if res := <-done; res.err != nil || res.ack.Credited != 3 || res.ack.Total != 3 {
					t.Fatalf("cheer: %+v, %v; want 3 credited, total 3", res.ack, res.err)
				}
			} else if res := <-done; !errors.Is(res.err, ErrCheerNotStored) {
				t.Fatalf("cheer without a slot: %+v, %v; want ErrCheerNotStored", res.ack, res.err)
			}
			<-flushed
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if total, err := h.readCheerTotal(ctx, room); err != nil || total != want {
				t.Fatalf("stored total %d (%v), want %d", total, err, want)
			}
		})
	}
}
