package gateway

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Cross-site pages are refused unless their origin is allowed; clients without an
// Origin (apps, the load generator) and same-site pages are accepted.
func TestOrigins(t *testing.T) {
	ns := startNATS(t)
	g := startGateway(t, ns, Config{AllowAnonymous: true, AllowedOrigins: []string{"shop.example.com"}})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"https://shop.example.com", true},
		{"https://evil.example.net", false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		ws, resp, err := websocket.Dial(ctx, g.url, &websocket.DialOptions{HTTPHeader: h})
		cancel()
		if tc.ok != (err == nil) {
			t.Fatalf("origin %q: err = %v, want ok=%v", tc.origin, err, tc.ok)
		}
		if err == nil {
			_ = ws.CloseNow()
		} else if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("origin %q refused with %v, want 403", tc.origin, resp)
		}
	}
	if n := g.counter(t, "liveroom_connections_refused_total", "reason", "bad_upgrade"); n != 1 {
		t.Errorf("refused bad_upgrade = %v, want 1", n)
	}
}
