package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveroom/liveroom/fanout"
)

// Gateway holds viewers' WebSocket connections and connects them to their rooms.
type Gateway struct {
	// set in New
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	hub     *fanout.Hub
	flash   *fanout.FlashSales
	metrics *metrics
	statem  *stateMetrics // statemetrics.go
	log     *slog.Logger
	stop    chan struct{} // closed by Shutdown: stops the watchdog
	writers *writerPool   // nil if Config.Writers < 0
	bg      sync.WaitGroup

	nextAnon atomic.Uint64
	draining atomic.Bool

	mu    sync.Mutex // guards conns
	conns map[*conn]struct{}
	wg    sync.WaitGroup // one per tracked connection
}

// New builds a gateway on an open NATS connection. It creates the JetStream streams it
// needs if they are missing.
func New(cfg Config, nc *nats.Conn, reg prometheus.Registerer) (*Gateway, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("gateway: Secret is required")
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	hub, err := fanout.New(ctx, cfg.Fanout, nc, reg)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	flash, err := fanout.NewFlashSales(ctx, cfg.flashConfig(), nc, reg)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:     cfg,
		nc:      nc,
		js:      js,
		hub:     hub,
		flash:   flash,
		metrics: newMetrics(reg, nc),
		statem:  newStateMetrics(reg),
		log:     slog.Default().With("component", "gateway"),
		stop:    make(chan struct{}),
		conns:   make(map[*conn]struct{}),
	}
	if cfg.Writers > 0 {
		g.writers = newWriterPool(cfg.Writers, g.metrics.writeHandoffs.Inc)
	}
	g.bg.Add(1)
	go g.watchdog()
	return g, nil
}

// Handler serves /ws, /healthz and /readyz.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", g.serveWS)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", g.serveReady)
	g.routeState(mux) // pinapi.go
	return mux
}

func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	if g.draining.Load() {
		g.metrics.refusedDrain.Inc()
		http.Error(w, "gateway draining; connect to another", http.StatusServiceUnavailable)
		return
	}
	up := &upgrader{ResponseWriter: w} // small socket buffers (socket.go)
	ws, err := websocket.Accept(up, r, &websocket.AcceptOptions{OriginPatterns: g.cfg.AllowedOrigins})
	if err != nil {
		g.metrics.refusedUpgrade.Inc()
		return // Accept has written the HTTP error
	}
	// Our own limit (MaxFrameBytes) is checked while reading, so that an oversized
	// frame gets our close code; the library's limit is one byte above it.
	ws.SetReadLimit(int64(g.cfg.MaxFrameBytes) + 1)
	c := newConn(g, ws, up.out)
	if !g.track(c) {
		_ = ws.Close(CloseRestart, "draining")
		return
	}
	g.metrics.connections.Inc()
	// Serve on a fresh goroutine and let the HTTP handler return: the net/http
	// goroutine, its grown stack and the upgrade request it holds are freed, which
	// is a good part of an idle viewer's memory.
	go c.serve()
}

func (g *Gateway) serveReady(w http.ResponseWriter, r *http.Request) {
	if !g.nc.IsConnected() {
		http.Error(w, "NATS not connected", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := g.js.AccountInfo(ctx); err != nil {
		http.Error(w, "JetStream not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if g.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (g *Gateway) track(c *conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining.Load() {
		return false
	}
	g.conns[c] = struct{}{}
	g.wg.Add(1)
	return true
}

func (g *Gateway) untrack(c *conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
	g.wg.Done()
}

func (g *Gateway) snapshotConns() []*conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*conn, 0, len(g.conns))
	for c := range g.conns {
		out = append(out, c)
	}
	return out
}

// Shutdown stops taking connections and closes the open ones with 4001 ("reconnect"),
// spread evenly over DrainPeriod (or until ctx ends, whichever is first), then waits
// for them to finish. Connections still open when ctx ends are closed at once.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	already := g.draining.Swap(true)
	g.mu.Unlock()
	if already {
		return errors.New("gateway: already shut down")
	}
	conns := g.snapshotConns()
	start := time.Now()
	period := g.cfg.DrainPeriod
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < period {
		period = time.Until(dl) * 9 / 10
	}
	var err error
	for i, c := range conns {
		at := start.Add(time.Duration(int64(period) * int64(i) / int64(len(conns))))
		if d := time.Until(at); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		c.closeWith(CloseRestart, "server restart")
	}
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range g.snapshotConns() {
			c.closeNow(CloseRestart, "server restart")
		}
		<-done
		err = ctx.Err()
	}
	close(g.stop)
	g.bg.Wait()
	if g.writers != nil {
		g.writers.stop()
	}
	g.hub.Close()
	g.flash.Close()
	return err
}
