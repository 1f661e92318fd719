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
// cid, as a client must, and still proves the room's total exact: every tap is
// acknowledged once, none is unknown, and the total grew by exactly the taps sent.
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
	if !ch.Measured || ch.Sent == 0 || ch.Unknown != 0 || ch.Acked != ch.Sent || !ch.Bounded || !ch.Exact {
		t.Errorf("cheers not shown exact: %+v", ch)
	}
}
