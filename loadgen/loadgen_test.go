package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/liveroom/liveroom/gateway"
	"github.com/liveroom/liveroom/internal/embednats"
)

// childEnv switches the test binary into a loadgen shard: the sharding test runs the
// children as this very binary.
const childEnv = "LIVEROOM_LOADGEN_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		err := ServeShard(ctx, os.Stdin, os.Stdout)
		stop()
		if err != nil {
			os.Stderr.WriteString("shard: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var testSecret = []byte("loadgen-test-secret")

// startGateways runs n real gateways on one embedded NATS server, each on a real
// HTTP listener that also serves /metrics with the process collector, and returns
// their WebSocket URLs.
func startGateways(t *testing.T, n int) []string {
	t.Helper()
	ns := embednats.Test(t)
	var urls []string
	for range n {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		gw, err := gateway.New(gateway.Config{Secret: testSecret}, nc, reg)
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/", gw.Handler())
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := httptest.NewServer(mux)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			gw.Shutdown(ctx)
			srv.Close()
			nc.Close()
		})
		urls = append(urls, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws")
	}
	return urls
}

// flatConfig is a short flat run: every viewer joins, the room chats for Hold, and
// the run drains until every line has arrived everywhere.
func flatConfig(t *testing.T, targets []string, viewers int) Config {
	return Config{
		Targets:      targets,
		Room:         "lg-test",
		Secret:       testSecret,
		Profile:      ProfileFlat,
		Viewers:      viewers,
		Hold:         2 * time.Second,
		FlatChatRate: 20,
		Drain:        20 * time.Second,
		Duration:     90 * time.Second,
		Seed:         1,
		Progress:     t.Output(),
	}
}

// checkChat asserts what every run against a healthy gateway must show.
func checkChat(t *testing.T, r *Report, viewers int) {
	t.Helper()
	b, _ := json.MarshalIndent(r, "", " ")
	chat := r.Classes["chat"]
	if r.ViewersPeak != int64(viewers) || r.ConnectFailures != 0 || len(r.JoinErrors) != 0 {
		t.Errorf("peak %d of %d, connect failures %d, join errors %v", r.ViewersPeak, viewers, r.ConnectFailures, r.JoinErrors)
	}
	if r.JoinMS.Count != uint64(viewers+1) { // every viewer and the host joined once
		t.Errorf("join histogram holds %d joins, want %d", r.JoinMS.Count, viewers+1)
	}
	if r.Chat.Stored == 0 || chat.Expected == 0 {
		t.Errorf("nothing was chatted: %+v", r.Chat)
	}
	if chat.Lost != 0 || chat.Duplicated != 0 || chat.Delivered != chat.Expected {
		t.Errorf("chat: %+v", chat)
	}
	for _, name := range []string{"chat", "pin", "cheer_total", "online"} {
		if _, ok := r.Classes[name]; !ok {
			t.Errorf("class %s missing from the report", name)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("report: %s", b)
	}
}

func TestRunTwoGateways(t *testing.T) {
	targets := startGateways(t, 2)
	cfg := flatConfig(t, targets, 300)
	r, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkChat(t, r, 300)
	if r.Shards != 1 {
		t.Errorf("shards = %d, want 1", r.Shards)
	}
	for _, g := range r.Gateways {
		if g.Error != "" || g.RSSMB <= 0 {
			t.Errorf("gateway figures: %+v", g)
		}
	}
	dir := t.TempDir()
	if err := r.WriteJSON(filepath.Join(dir, "r.json")); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "r.json"))
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"viewers_target", "viewers_peak", "connect_failures", "join_ms", "classes", "cheers", "gateways", "duration_s"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON report lacks %q", k)
		}
	}
	if err := r.WriteHTML(filepath.Join(dir, "r.html")); err != nil {
		t.Fatal(err)
	}
}

func TestRunShardedMerges(t *testing.T) {
	targets := startGateways(t, 2)
	cfg := flatConfig(t, targets, 100)
	cfg.PerProcess = 60 // two children of 50
	cfg.Command = []string{os.Args[0]}
	cfg.Env = []string{childEnv + "=1"}
	r, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Shards != 2 {
		t.Fatalf("shards = %d, want 2", r.Shards)
	}
	checkChat(t, r, 100)
}
