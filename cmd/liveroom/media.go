package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/liveroom/liveroom/media"
)

// mediaFlags are the media server's own flags, shared by `media` and (when it mounts
// the media server) `serve`.
type mediaFlags struct {
	udpPort     int
	publicIPs   string
	iceAddrs    string
	iceLoopback bool
	keyframe    time.Duration
	publicURL   string
	relayIdle   time.Duration
}

func addMediaFlags(fs *flag.FlagSet) *mediaFlags {
	f := &mediaFlags{}
	fs.IntVar(&f.udpPort, "udp-port", 8189, "the one UDP port for every WebRTC peer (ICE, DTLS, SRTP); 0 picks a free port")
	fs.StringVar(&f.publicIPs, "public-ip", "", "comma-separated public IPs offered instead of the local addresses (NAT 1:1)")
	fs.StringVar(&f.iceAddrs, "ice-addr", "", "comma-separated local IPs to bind the UDP port on and offer as candidates (default: every non-loopback interface address)")
	fs.BoolVar(&f.iceLoopback, "ice-loopback", false, "offer only 127.0.0.1 (same-machine tests and demos)")
	fs.DurationVar(&f.keyframe, "keyframe-interval", 500*time.Millisecond, "shortest time between two keyframe requests to a publisher")
	fs.StringVar(&f.publicURL, "public-url", "", "base URL other media nodes reach this one's /whep/ at, announced through NATS for rooms published here so that they can relay them (default: http(s)://<host of --listen, or this machine's hostname>:<port>)")
	fs.DurationVar(&f.relayIdle, "relay-idle", 10*time.Second, "how long an edge keeps its upstream to a room's origin after the room's last local viewer left")
	return f
}

// config fills the media Config; secret, anonymous and the HTTP listen address
// (the default public URL) come from the caller's flags.
func (f *mediaFlags) config(secret string, anonymous bool, listen string, tls bool) media.Config {
	cfg := media.Config{
		Secret:           []byte(secret),
		AllowAnonymous:   anonymous,
		UDPPort:          f.udpPort,
		KeyframeInterval: f.keyframe,
		PublicURL:        f.publicURL,
		RelayIdle:        f.relayIdle,
		Logger:           slog.Default(),
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = defaultPublicURL(listen, tls)
	}
	if f.publicIPs != "" {
		cfg.PublicIPs = strings.Split(f.publicIPs, ",")
	}
	switch {
	case f.iceLoopback:
		cfg.ICEAddresses = []string{"127.0.0.1"}
	case f.iceAddrs != "":
		cfg.ICEAddresses = strings.Split(f.iceAddrs, ",")
	}
	return cfg
}

// defaultPublicURL is the URL other nodes reach a server listening on listen at:
// its host, or this machine's hostname when it listens on every address.
func defaultPublicURL(listen string, tls bool) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if host, err = os.Hostname(); err != nil {
			return ""
		}
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// runMedia runs the WHIP/WHEP media server alone, against an existing NATS (for the
// rooms' live status); /metrics is served next to /whip/ and /whep/.
func runMedia(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("media", flag.ContinueOnError)
	listen := fs.String("listen", ":8081", "HTTP address for /whip/, /whep/ and /metrics")
	natsURL := fs.String("nats", envOr("LIVEROOM_NATS", nats.DefaultURL), "NATS URL(s), comma-separated (env LIVEROOM_NATS); empty runs without live status")
	secret := fs.String("secret", envOr("LIVEROOM_SECRET", ""), "token signing secret (env LIVEROOM_SECRET); empty uses a development secret")
	anonymous := fs.Bool("allow-anonymous", false, "let viewers watch (WHEP) without a token")
	mf := addMediaFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *secret == "" {
		slog.Warn("no --secret or LIVEROOM_SECRET: using the development secret; do not expose this server")
		*secret = devSecret
	}
	var nc *nats.Conn
	if *natsURL != "" {
		var err error
		if nc, err = nats.Connect(*natsURL, natsOptions("liveroom-media")...); err != nil {
			return fmt.Errorf("connect to NATS %s: %w", *natsURL, err)
		}
		defer nc.Close()
	}
	reg := newRegistry()
	srv, err := media.New(mf.config(*secret, *anonymous, *listen, false), nc, reg)
	if err != nil {
		return err
	}
	defer srv.Close()

	mux := http.NewServeMux()
	mux.Handle("/whip/", srv.Handler())
	mux.Handle("/whep/", srv.Handler())
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	slog.Info("media server listening", "http", ln.Addr().String(), "udp_port", srv.UDPPort(), "public_url", srv.PublicURL())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return srv.Close()
}
