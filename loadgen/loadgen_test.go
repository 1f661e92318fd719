package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
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

// testGateway is a real gateway on a real HTTP listener.
type testGateway struct {
	gw   *gateway.Gateway
	url  string
	nats string // the NATS server's client URL, shared by the gateways
}

// startGateways runs n real gateways on one embedded NATS server, each on a real
// HTTP listener that also serves /metrics with the process collector, and returns
// their WebSocket URLs.
func startGateways(t *testing.T, n int) []string {
	var urls []string
	for _, g := range startGatewaysCfg(t, n, gateway.Config{}) {
		urls = append(urls, g.url)
	}
	return urls
}

func startGatewaysCfg(t *testing.T, n int, gcfg gateway.Config) []*testGateway {
	t.Helper()
	ns := embednats.Test(t)
	var gws []*testGateway
	gcfg.Secret = testSecret
	for range n {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		gw, err := gateway.New(gcfg, nc, reg)
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
		gws = append(gws, &testGateway{gw: gw, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", nats: ns.ClientURL()})
	}
	return gws
}

// flatConfig is a short flat run: every viewer joins, the room chats for Hold, and
// the run drains until every line has arrived everywhere.
func flatConfig(t *testing.T, targets []string, viewers int) Config {
	return Config{
		Targets:       targets,
		Room:          "lg-test",
		Secret:        testSecret,
		Profile:       ProfileFlat,
		Viewers:       viewers,
		Hold:          4 * time.Second,
		FlatChatRate:  10, // half the gateway's per-viewer budget: nothing may be sampled
		FlatCheerRate: 50,
		PinEvery:      time.Second, // the host pins every 2 s (the least) while the room holds
		// One flash sale of 50 units, half a second after its pin; everyone presses.
		FlatFlashSales: 1,
		FlashStock:     50,
		FlashLead:      500 * time.Millisecond,
		Drain:          20 * time.Second,
		Duration:       90 * time.Second,
		Seed:           1,
		Progress:       t.Output(),
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
	if r.FullS <= 0 {
		t.Errorf("full_s = %v: the flat run never saw its room full", r.FullS)
	}
	if r.Chat.Stored == 0 || chat.Expected == 0 {
		t.Errorf("nothing was chatted: %+v", r.Chat)
	}
	if chat.Lost != 0 || chat.Duplicated != 0 || chat.Delivered != chat.Expected {
		t.Errorf("chat: %+v", chat)
	}
	if pin := r.Classes["pin"]; r.Pins == 0 || pin.Expected == 0 || pin.Lost != 0 {
		t.Errorf("%d pins, pin class %+v", r.Pins, pin)
	}
	ch := r.Cheers
	if !ch.Measured || !ch.Exact || !ch.Bounded || ch.Unknown != 0 || ch.Sent == 0 || ch.Acked != ch.Sent || ch.FinalTotal-ch.InitialTotal != ch.Acked {
		t.Errorf("cheers: %+v", ch)
	}
	if ct := r.Classes["cheer_total"]; ct.Expected == 0 || ct.Lost != 0 {
		t.Errorf("cheer_total: %+v", ct)
	}
	fl := r.Flash
	if fl.Sales != 1 || fl.Won != 50 || fl.Oversold || fl.MultiWins != 0 || fl.Answers["won"] != 50 || fl.Answers["sold_out"] == 0 {
		t.Errorf("flash: %+v", fl)
	}
	if on := r.Classes["online"]; on.Expected != int64(viewers+1) || on.Lost != 0 {
		t.Errorf("online: %+v", on)
	}
	if r.Unanswered != 0 || len(r.Rejected) != 0 {
		t.Errorf("unanswered %d, rejected %v", r.Unanswered, r.Rejected)
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
	gws := startGatewaysCfg(t, 2, gateway.Config{})
	cfg := flatConfig(t, []string{gws[0].url, gws[1].url}, 300)
	cfg.NATS = gws[0].nats
	cfg.PortsPerSourceAddr = 200 // spread the viewers over 127.0.0.2 and 127.0.0.3
	if got := sourceAddrs(&cfg); len(got) != 2 {
		t.Fatalf("source addresses %v, want two", got)
	}
	r, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkChat(t, r, 300)
	checkOrderStream(t, r)
	if left := loadgenGoroutines(); len(left) > 0 {
		t.Errorf("goroutines of the run still running after Run returned:\n%s", strings.Join(left, "\n\n"))
	}
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
	gws := startGatewaysCfg(t, 2, gateway.Config{})
	cfg := flatConfig(t, []string{gws[0].url, gws[1].url}, 100)
	cfg.NATS = gws[0].nats
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
	checkOrderStream(t, r)
}

// checkOrderStream asserts that the run read the order stream and found every win it
// was answered there, once, and nothing else for its sale.
func checkOrderStream(t *testing.T, r *Report) {
	t.Helper()
	o := r.Flash.Orders
	if !o.Checked || !o.AllWinsStored || o.WonFound != r.Flash.Won || o.InStream != r.Flash.Won || o.Duplicates != 0 {
		t.Errorf("order stream: %+v for %d answered wins (errors %v)", o, r.Flash.Won, r.Errors)
	}
}

// onFull is a progress writer that calls f once, the first time every viewer is
// connected.
type onFull struct {
	out  io.Writer
	want string
	once sync.Once
	f    func()
}

func (o *onFull) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(o.want)) {
		o.once.Do(o.f)
	}
	return o.out.Write(b)
}

// TestRunReconnectsWhenGatewayDrains shuts one of two gateways down as soon as the
// room is full: its viewers are closed with 4001, come back through the other
// gateway with jittered backoff, resume chat with `since`, and miss nothing.
func TestRunReconnectsWhenGatewayDrains(t *testing.T) {
	gws := startGatewaysCfg(t, 2, gateway.Config{DrainPeriod: 300 * time.Millisecond})
	cfg := flatConfig(t, []string{gws[0].url, gws[1].url}, 60)
	cfg.Hold = 6 * time.Second
	cfg.Drain = 10 * time.Second
	var wg sync.WaitGroup
	cfg.Progress = &onFull{out: t.Output(), want: "viewers=60/60", f: func() {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			gws[0].gw.Shutdown(ctx)
		})
	}}
	r, err := Run(t.Context(), cfg)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if r.Closes["4001"] == 0 || r.Reconnects < r.Closes["4001"] {
		t.Errorf("closes %v, reconnects %d: want 4001 closes, each followed by a reconnect", r.Closes, r.Reconnects)
	}
	// Every viewer that was on the drained gateway joined again.
	if want := uint64(60 + 1 + r.Closes["4001"]); r.JoinMS.Count < want {
		t.Errorf("joins %d, want at least %d", r.JoinMS.Count, want)
	}
	// Rejoins resume with `since` and find the room's state in the snapshot: nothing
	// sent while they were away is lost, and resent cheers count once.
	if chat := r.Classes["chat"]; chat.Lost != 0 || chat.Duplicated != 0 || chat.Expected == 0 {
		t.Errorf("chat: %+v (recovered %d, resets %d)", chat, r.Chat.Recovered, r.Chat.Resets)
	}
	if pin := r.Classes["pin"]; pin.Lost != 0 {
		t.Errorf("pin: %+v", pin)
	}
	if !r.Cheers.Exact {
		t.Errorf("cheers: %+v", r.Cheers)
	}
	t.Logf("closes %v reconnects %d connect failures %d recovered %d chat %+v", r.Closes, r.Reconnects, r.ConnectFailures, r.Chat.Recovered, r.Classes["chat"])
}

// TestRunSeedProfile plays the seed profile 1200 times faster (nine seconds): the
// ramp, the sharing waves, churn with log-normal sessions, chat and cheer bursts,
// pins and two flash sales, then everyone leaves. It checks what does not depend on
// timing: every cheer counted exactly once, no sale oversold, nobody winning twice,
// no duplicate lines, every action answered.
func TestRunSeedProfile(t *testing.T) {
	targets := startGateways(t, 2)
	cfg := Config{
		Targets:    targets,
		Room:       "lg-seed",
		Secret:     testSecret,
		Viewers:    200,
		Speed:      1200,
		FlashStock: 40,
		FlashLead:  300 * time.Millisecond,
		Seed:       2,
		Progress:   t.Output(),
	}
	r, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(r, "", " ")
	if r.ConnectFailures != 0 || r.JoinMS.Count <= 200 {
		t.Errorf("connect failures %d, joins %d (churn should make more joins than viewers)", r.ConnectFailures, r.JoinMS.Count)
	}
	if !r.Cheers.Measured || !r.Cheers.Exact || r.Cheers.Sent == 0 {
		t.Errorf("cheers: %+v", r.Cheers)
	}
	if r.Flash.Sales != 2 || r.Flash.Oversold || r.Flash.MultiWins != 0 {
		t.Errorf("flash: %+v", r.Flash)
	}
	if r.Classes["chat"].Duplicated != 0 || r.Chat.Stored == 0 || r.Pins == 0 {
		t.Errorf("chat %+v, stored %d, pins %d", r.Classes["chat"], r.Chat.Stored, r.Pins)
	}
	if r.Unanswered != 0 {
		t.Errorf("%d actions unanswered", r.Unanswered)
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("report: %s", b)
	}
}

// loadgenGoroutines returns the stacks of goroutines running this package's code,
// other than tests: after Run returns there must be none.
func loadgenGoroutines() []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var left []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "liveroom/loadgen.") && !strings.Contains(g, "liveroom/loadgen.Test") &&
			!strings.Contains(g, "liveroom/loadgen.loadgenGoroutines") {
			left = append(left, g)
		}
	}
	return left
}
