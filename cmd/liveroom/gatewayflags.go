package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/liveroom/liveroom/fanout"
	"github.com/liveroom/liveroom/gateway"
)

// devSecret is used when no secret is configured, so that `serve`, `gateway` and
// `token` work together out of the box on a laptop. Every process warns when using it.
const devSecret = "liveroom-dev-secret-change-me"

// gatewayFlags are the flags shared by `serve` and `gateway`.
type gatewayFlags struct {
	listen, secret, origins, tlsCert, tlsKey string
	anonymous, pprof                         bool
	drain, tick, largeTick                   time.Duration
	largeViewers, writers, cheerBatches      int
	chatHistory                              int64
	replicas                                 int
	apiKey, gatewayID                        string        // room state (issue 3)
	cheerRate                                float64       // room state
	cheerInterval                            time.Duration // room state
	flash                                    fanout.FlashConfig
}

func addGatewayFlags(fs *flag.FlagSet, anonDefault bool) *gatewayFlags {
	f := &gatewayFlags{}
	fs.StringVar(&f.listen, "listen", ":8080", "HTTP address for /ws, the pages, /healthz, /readyz and /metrics")
	fs.StringVar(&f.secret, "secret", envOr("LIVEROOM_SECRET", ""), "token signing secret (env LIVEROOM_SECRET); empty uses a development secret")
	fs.BoolVar(&f.anonymous, "allow-anonymous", anonDefault, "let viewers join without a token, read-only")
	fs.StringVar(&f.origins, "origins", "", "comma-separated host patterns of cross-site pages allowed to connect (e.g. shop.example.com,*.example.com)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (serve HTTPS/WSS when set with --tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS key file")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "on shutdown, spread viewers' reconnects over this long")
	fs.DurationVar(&f.tick, "tick", 50*time.Millisecond, "how long a room collects events into one frame")
	fs.DurationVar(&f.largeTick, "large-room-tick", 100*time.Millisecond, "the least time between two frames of a room with --large-room-viewers viewers on this gateway, where socket writes (viewers × frames/s), not delay, limit the gateway (an event after a quiet spell still waits only --tick)")
	fs.IntVar(&f.largeViewers, "large-room-viewers", 5000, "local viewers from which a room is large (see --large-room-tick; stock left goes out once a second)")
	fs.IntVar(&f.writers, "writers", 0, "goroutines writing frames to the sockets (0: 2×GOMAXPROCS, at least 4; -1: a goroutine per connection instead)")
	fs.Int64Var(&f.chatHistory, "chat-history", 1000, "chat lines kept per room in JetStream")
	fs.IntVar(&f.replicas, "replicas", 1, "JetStream replicas for the streams (3 on a cluster)")
	fs.StringVar(&f.apiKey, "api-key", envOr("LIVEROOM_API_KEY", ""), "key of the shop backend's HTTP API, POST/DELETE /api/rooms/{room}/pin (env LIVEROOM_API_KEY); empty turns the API off")
	fs.StringVar(&f.gatewayID, "gateway-id", "", "this gateway's id in viewer reports and cheer batches (one NATS subject token, unique); empty: random")
	fs.Float64Var(&f.cheerRate, "cheer-rate", 20, "cheer taps per second credited per user and connection")
	fs.DurationVar(&f.cheerInterval, "cheer-interval", 200*time.Millisecond, "how often a gateway stores each room's cheers (one atomic batch per room)")
	fs.IntVar(&f.cheerBatches, "cheer-batches-in-flight", 16, "most cheer batches this gateway has in flight across its rooms; keep gateways × this under nats-server's jetstream.limits.batch max_inflight_per_stream (50 by default), or refused batches wait and are sent again")
	fs.IntVar(&f.flash.MaxLease, "flash-max-lease", 64, "flash sale: most units one gateway takes from a sale's pool per round")
	fs.DurationVar(&f.flash.LeaseTTL, "flash-lease-ttl", 5*time.Second, "flash sale: how long a lease may stay out before other gateways take its units back (a dead gateway's)")
	fs.DurationVar(&f.flash.SoldOutWait, "flash-sold-out-wait", time.Second, "flash sale: how long a press may wait for units out on other gateways' leases before it is answered sold_out")
	fs.Float64Var(&f.flash.PressRate, "flash-press-rate", 2, "flash sale: new presses per second per user and sale (token bucket refill; a retried cid is free)")
	fs.IntVar(&f.flash.PressBurst, "flash-press-burst", 5, "flash sale: the press token bucket's size")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go profiles at /debug/pprof/ (for benchmarking; keep off in production)")
	return f
}

func (f *gatewayFlags) config() gateway.Config {
	secret := f.secret
	if secret == "" {
		slog.Warn("no --secret or LIVEROOM_SECRET: using the development secret; do not expose this server")
		secret = devSecret
	}
	cfg := gateway.Config{
		Secret:         []byte(secret),
		AllowAnonymous: f.anonymous,
		DrainPeriod:    f.drain,
		APIKey:         f.apiKey,
		CheerRate:      f.cheerRate,
		Flash:          f.flash,
		Writers:        f.writers,
	}
	if f.origins != "" {
		cfg.AllowedOrigins = strings.Split(f.origins, ",")
	}
	cfg.Fanout.Tick = f.tick
	cfg.Fanout.LargeRoomTick = f.largeTick
	cfg.Fanout.LargeRoomViewers = f.largeViewers
	cfg.Fanout.ChatHistory = f.chatHistory
	cfg.Fanout.Replicas = f.replicas
	cfg.Fanout.State.GatewayID = f.gatewayID
	cfg.Fanout.State.CheerInterval = f.cheerInterval
	cfg.Fanout.State.CheerBatchesInFlight = f.cheerBatches
	return cfg
}

// newRegistry is a fresh registry with the process and Go runtime collectors, which the
// load generator reads CPU and memory from.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return reg
}

// natsOptions are the client options of every liveroom process: reconnect forever,
// log state changes.
func natsOptions(name string) []nats.Option {
	log := slog.Default().With("component", "nats")
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("disconnected", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("reconnected", "url", nc.ConnectedUrl()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("async error", "subject", subject, "err", err)
		}),
	}
}

// serveHTTP serves h on the flags' address until ctx ends, then stops accepting and
// calls drain (which closes the hijacked WebSocket connections) before returning.
func serveHTTP(ctx context.Context, f *gatewayFlags, h http.Handler, drain func(context.Context) error) error {
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() {
		if f.tlsCert != "" || f.tlsKey != "" {
			errc <- srv.ServeTLS(ln, f.tlsCert, f.tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	scheme := "http"
	if f.tlsCert != "" {
		scheme = "https"
	}
	slog.Info("listening", "url", fmt.Sprintf("%s://%s/", scheme, displayAddr(ln.Addr())))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	slog.Info("shutting down: draining viewers", "period", f.drain)
	sctx, cancel := context.WithTimeout(context.Background(), f.drain+10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := drain(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if ok && tcp.IP.IsUnspecified() {
		return fmt.Sprintf("localhost:%d", tcp.Port)
	}
	return a.String()
}

// mux joins the gateway's endpoints, /metrics, the web pages and, when asked for,
// the Go profiles.
func (f *gatewayFlags) mux(gw http.Handler, reg *prometheus.Registry, web http.Handler) *http.ServeMux {
	m := http.NewServeMux()
	if f.pprof {
		m.HandleFunc("/debug/pprof/", pprof.Index)
		m.HandleFunc("/debug/pprof/profile", pprof.Profile)
		m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	m.Handle("/ws", gw)
	m.Handle("/healthz", gw)
	m.Handle("/readyz", gw)
	m.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	m.Handle("/", web)
	return m
}
