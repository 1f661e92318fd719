package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
}

func addMediaFlags(fs *flag.FlagSet) *mediaFlags {
	f := &mediaFlags{}
	fs.IntVar(&f.udpPort, "udp-port", 8189, "the one UDP port for every WebRTC peer (ICE, DTLS, SRTP); 0 picks a free port")
	fs.StringVar(&f.publicIPs, "public-ip", "", "comma-separated public IPs offered instead of the local addresses (NAT 1:1)")
	fs.StringVar(&f.iceAddrs, "ice-addr", "", "comma-separated local IPs to bind the UDP port on and offer as candidates (default: every non-loopback interface address)")
	fs.BoolVar(&f.iceLoopback, "ice-loopback", false, "offer only 127.0.0.1 (same-machine tests and demos)")
	fs.DurationVar(&f.keyframe, "keyframe-interval", 500*time.Millisecond, "shortest time between two keyframe requests to a publisher")
	return f
}

// config fills the media Config; secret and anonymous come from the caller's flags.
func (f *mediaFlags) config(secret string, anonymous bool) media.Config {
	cfg := media.Config{
		Secret:           []byte(secret),
		AllowAnonymous:   anonymous,
		UDPPort:          f.udpPort,
		KeyframeInterval: f.keyframe,
		Logger:           slog.Default(),
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
	srv, err := media.New(mf.config(*secret, *anonymous), nc, reg)
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
	slog.Info("media server listening", "http", ln.Addr().String(), "udp_port", srv.UDPPort())
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
