package loadgen

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/liveroom/liveroom/internal/embednats"
	"github.com/liveroom/liveroom/media"
)

// startMedia runs a real media server (ICE on 127.0.0.1, a free UDP port) with an
// embedded NATS, serving /whip/, /whep/ and /metrics (with the process collector) on
// a real HTTP listener, as `liveroom serve` does; it returns a WebSocket-style
// target on the same host, from which the load generator derives the media URL.
func startMediaServer(t *testing.T) string {
	t.Helper()
	ns := embednats.Test(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := media.New(media.Config{
		Secret: testSecret, ICEAddresses: []string{"127.0.0.1"}, Logger: slog.New(slog.DiscardHandler),
	}, nc, reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/whip/", srv.Handler())
	mux.Handle("/whep/", srv.Handler())
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	web := httptest.NewServer(mux)
	t.Cleanup(func() {
		web.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("media Close: %v", err)
		}
		nc.Close()
	})
	return "ws" + strings.TrimPrefix(web.URL, "http") + "/ws"
}

// TestWHEP publishes the synthetic stream over WHIP and plays it with 5 WHEP viewers,
// all real Pion peers on loopback: every viewer starts on a keyframe, measured, and
// receives every packet from there on.
func TestWHEP(t *testing.T) {
	target := startMediaServer(t)
	r, err := Run(context.Background(), Config{
		Targets:     []string{target},
		Room:        "lg-whep",
		Secret:      testSecret,
		Viewers:     -1,
		WHEP:        5,
		WHEPPublish: true,
		// Long enough that every viewer's first 5 s end before the last 5 s begin,
		// so the delay drift is measured too.
		Duration: 14 * time.Second,
		Progress: t.Output(),
	})
	if err != nil {
		t.Fatal(err)
	}
	w := r.WHEP
	if w == nil {
		t.Fatal("no whep section in the report")
	}
	t.Logf("whep: %+v", *w)
	t.Logf("publisher: %+v", *w.Publisher)
	if w.Error != "" || w.Connected != 5 || w.Started != 5 || w.Failed != 0 {
		t.Errorf("connected %d started %d failed %d %v (error %q), want 5 5 0", w.Connected, w.Started, w.Failed, w.Failures, w.Error)
	}
	if w.Packets == 0 || w.Lost != 0 {
		t.Errorf("packets %d lost %d, want some and 0", w.Packets, w.Lost)
	}
	if w.FirstKeyframeMS.Count != 5 || w.StartedOffKeyframe != 0 {
		t.Errorf("first keyframe measured for %d viewers, %d started off a keyframe; want 5 and 0", w.FirstKeyframeMS.Count, w.StartedOffKeyframe)
	}
	if w.DelayDriftMS.Count != 5 {
		t.Errorf("delay drift measured for %d viewers, want 5", w.DelayDriftMS.Count)
	}
	if p := w.Publisher; p.Error != "" || p.PLIs == 0 || p.Packets == 0 {
		t.Errorf("publisher: error %q, %d PLIs, %d packets; want the viewers' PLIs answered", p.Error, p.PLIs, p.Packets)
	}
	if s := w.Server; s.Error != "" || s.PacketsReceived == 0 || s.Forwarded == 0 || s.CPUS <= 0 {
		t.Errorf("server figures: %+v", s)
	}
}
