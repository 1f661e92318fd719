package loadgen

import (
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
