package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

// startGatewayConn is startGateway that also returns the gateway's NATS connection
// (which does not reconnect), so that a test can cut it off like a crash.
func startGatewayConn(t testing.TB, ns *server.Server, cfg Config) (*testGateway, *nats.Conn) {
	t.Helper()
	return startGatewayNATS(t, ns, cfg, nats.NoReconnect())
}

// Viewers on two gateways make the room's online count; when one gateway dies (its NATS
// connection cut: no more reports), its viewers drop out once its report expires.
// Unique viewers count every user once.
func TestViewerCountsAcrossGateways(t *testing.T) {
	ns := startNATS(t)
	cfg := Config{Fanout: fanout.Config{State: fanout.StateConfig{ViewerReport: 50 * time.Millisecond, ViewerTTL: 300 * time.Millisecond}}}
	a, _ := startGatewayConn(t, ns, cfg)
	b, bnc := startGatewayConn(t, ns, cfg)
	const room = "count"
	join := func(url, user string) *stateClient {
		c := mustDialState(t, url)
		c.join(room, mintToken(t, user, auth.RoleViewer, []string{room}, time.Hour))
		return c
	}
	watcher := join(a.url, "w")
	join(a.url, "a1")
	for i := range 3 {
		join(b.url, fmt.Sprint("b", i))
	}
	join(b.url, "b0") // the same user twice: two viewers online, one unique
	ev := watcher.waitState("online", func(ev stateEvent) bool { return ev.Online == 6 && ev.Unique == 5 })
	t.Logf("online %d, unique %d", ev.Online, ev.Unique)

	late := mustDialState(t, a.url)
	if snap := late.join(room, mintToken(t, "late", auth.RoleViewer, []string{room}, time.Hour)); snap.Online < 6 || snap.Unique < 5 {
		t.Fatalf("late joiner's snapshot: online %d, unique %d; want at least 6 and 5", snap.Online, snap.Unique)
	}
	watcher.waitState("online", func(ev stateEvent) bool { return ev.Online == 7 && ev.Unique == 6 })

	// b dies: its report expires, its 4 viewers drop out.
	bnc.Close()
	watcher.waitState("online", func(ev stateEvent) bool { return ev.Online == 3 })
	if n := b.counter(t, "liveroom_viewer_reports_total"); n == 0 {
		t.Error("b reported nothing")
	}
}
