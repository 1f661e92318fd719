package gateway

import (
	"context"
	"testing"
	"time"
)

// Shutdown tells every viewer to reconnect (4001) and refuses new connections.
func TestShutdownDrainsWithReconnectCode(t *testing.T) {
	ns := startNATS(t)
	g := startGateway(t, ns, Config{AllowAnonymous: true, DrainPeriod: 200 * time.Millisecond})
	var viewers []*client
	for range 5 {
		v := dial(t, g.url)
		v.join("r", "")
		viewers = append(viewers, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i, v := range viewers {
		if code := v.closeCode(); code != CloseRestart || !ShouldReconnect(code) {
			t.Fatalf("viewer %d closed with %v, want %v", i, code, CloseRestart)
		}
	}
	if n := g.counter(t, "liveroom_disconnects_total", "code", closeLabel(CloseRestart)); n != 5 {
		t.Errorf("disconnects{4001} = %v, want 5", n)
	}
	if n := g.counter(t, "liveroom_connections"); n != 0 {
		t.Errorf("connections = %v after shutdown", n)
	}
	resp, err := g.srv.Client().Get(g.srv.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("new connection during drain: status %d, want 503", resp.StatusCode)
	}
}
