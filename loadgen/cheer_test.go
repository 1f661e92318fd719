package loadgen

import (
	"math"
	"testing"
	"time"

	"github.com/liveroom/liveroom/fanout"
	"github.com/liveroom/liveroom/gateway"
)

// TestRunCheersExactWhenUnavailable runs against gateways whose command timeout
// (150 ms) is shorter than their cheer batch interval (200 ms): a good share of the
// cheers are answered `unavailable`. The load generator resends them with the same
// cid, as a client must, and still proves the room's total: it grew by at least the
// acknowledged taps and at most those plus the few whose every try was unavailable,
// and by exactly the taps sent when none is unknown.
func TestRunCheersExactWhenUnavailable(t *testing.T) {
	gws := startGatewaysCfg(t, 2, gateway.Config{
		PublishTimeout: 150 * time.Millisecond,
		Fanout:         fanout.Config{State: fanout.StateConfig{CheerInterval: 200 * time.Millisecond}},
	})
	cfg := flatConfig(t, []string{gws[0].url, gws[1].url}, 60)
	cfg.FlatChatRate = 1
	cfg.FlatCheerRate = 40
	cfg.FlatFlashSales = 0
	cfg.PinEvery = time.Hour
	r, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ch := r.Cheers
	t.Logf("cheers %+v, retried %d, rejected %v", ch, r.Retried, r.Rejected)
	if r.Retried == 0 {
		t.Error("no cheer was resent: the gateways never answered unavailable")
	}
	// A command can be answered unavailable on every one of its tries (the load
	// generator gives up after maxCheerTries): its taps are unknown, and the total
	// must lie between the acknowledged taps and those plus the unknown ones. Each
	// try fails with a good chance here, so a few unknown commands are expected.
	if !ch.Measured || ch.Sent == 0 || ch.Acked+ch.Unknown != ch.Sent || !ch.Bounded || ch.Unknown > ch.Sent/20 {
		t.Errorf("cheers not bounded: %+v", ch)
	}
	if ch.Unknown == 0 && (!ch.Exact || ch.FinalTotal-ch.InitialTotal != ch.Sent) {
		t.Errorf("every cheer acknowledged, yet not shown exact: %+v", ch)
	}
}

// Each acknowledged cheer is measured until its viewer sees the total its own reply
// reported. A later cheer's reply, with a higher total, used to raise the total the
// earlier one waited for, so the earlier one was measured until the later showed.
func TestCheerLatencyPerCheer(t *testing.T) {
	e := newEngine(shardSpec{Config: Config{Room: "r"}})
	v := &viewer{e: e}
	v.startUS.Store(1)
	v.cutUS.Store(math.MaxInt64)
	t0 := time.UnixMicro(1_000_000_000)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	cheer := func(cid string, sentMS int) {
		v.track(cid, pendingCmd{kind: idCheer, sentUS: at(sentMS).UnixMicro(), count: 5})
	}

	cheer("a", 0)
	cheer("b", 500)
	v.cheerReply("a", &replyResult{Credited: 5, Total: 100}, nil, at(200))
	v.cheerReply("b", &replyResult{Credited: 5, Total: 200}, nil, at(700))
	if n := v.cheerCpN.Load(); n != 2 {
		t.Fatalf("%d cheers waiting for their totals, want 2", n)
	}
	v.seeCheers(100, at(900)) // a's total: a took 900 ms, b still waits
	if n, c := v.cheerCpN.Load(), e.cheerLat.Count(); n != 1 || c != 1 {
		t.Fatalf("after a's total: %d waiting, %d measured; want 1, 1", n, c)
	}
	if got := e.cheerLat.Max(); got > 1000*time.Millisecond {
		t.Fatalf("a measured %v, want about 900ms (not until b's total showed)", got)
	}
	v.seeCheers(250, at(1500)) // b's total passed: b took 1,000 ms
	if n, c := v.cheerCpN.Load(), e.cheerLat.Count(); n != 0 || c != 2 {
		t.Fatalf("after b's total: %d waiting, %d measured; want 0, 2", n, c)
	}

	// A total already on screen when the reply comes: measured until it showed.
	cheer("c", 1400)
	v.cheerReply("c", &replyResult{Credited: 5, Total: 240}, nil, at(1600))
	if n, c := v.cheerCpN.Load(), e.cheerLat.Count(); n != 0 || c != 3 {
		t.Fatalf("after c: %d waiting, %d measured; want 0, 3", n, c)
	}
	if e.cheerLatResent.Count() != 0 {
		t.Fatalf("%d resent cheers measured, want 0", e.cheerLatResent.Count())
	}

	// Answered unavailable, then stored on its resend: measured from the first send,
	// in cheer_total and in its resent part.
	cheer("d", 2000)
	v.cheerReply("d", nil, &replyError{Code: "unavailable"}, at(2100))
	v.cheerReply("d", &replyResult{Credited: 5, Total: 300}, nil, at(3200))
	v.seeCheers(300, at(3300))
	if c, r := e.cheerLat.Count(), e.cheerLatResent.Count(); c != 4 || r != 1 {
		t.Fatalf("after d: %d measured, %d of them resent; want 4, 1", c, r)
	}
	if got := e.cheerLatResent.Max(); got < 1200*time.Millisecond {
		t.Fatalf("d measured %v, want about 1.3s (from its first send)", got)
	}
	if v.cheerOwed != 4 || v.cheerGot != 4 {
		t.Fatalf("owed %d, got %d; want 4, 4", v.cheerOwed, v.cheerGot)
	}
}
