package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/liveroom/liveroom/gateway"
	"github.com/liveroom/liveroom/internal/embednats"
	"github.com/liveroom/liveroom/media"
	"github.com/liveroom/liveroom/web"
)

func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	gf := addGatewayFlags(fs, true)
	data := fs.String("data", "./data", "folder for JetStream data")
	natsListen := fs.String("nats-listen", "127.0.0.1:4222", "address where more gateways (liveroom gateway --nats) reach the embedded NATS")
	natsLogs := fs.Bool("nats-logs", false, "print the embedded NATS server's logs")
	mf := addMediaFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}

	ns, err := embednats.Start(embednats.Config{Listen: *natsListen, StoreDir: *data, ServerName: "liveroom", Logs: *natsLogs})
	if err != nil {
		return err
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	slog.Info("embedded NATS ready", "url", ns.ClientURL(), "data", *data)

	nc, err := nats.Connect(ns.ClientURL(), append(natsOptions("liveroom-serve"), nats.InProcessServer(ns))...)
	if err != nil {
		return fmt.Errorf("connect to embedded NATS: %w", err)
	}
	defer nc.Close()

	reg := newRegistry()
	gcfg := gf.config()
	gw, err := gateway.New(gcfg, nc, reg)
	if err != nil {
		return err
	}
	ms, err := media.New(mf.config(string(gcfg.Secret), gcfg.AllowAnonymous, gf.listen, gf.tlsCert != ""), nc, reg)
	if err != nil {
		return err
	}
	defer ms.Close() // before nc.Close: it publishes the rooms going offline
	slog.Info("media ready", "udp_port", ms.UDPPort(), "public_url", ms.PublicURL())
	m := gf.mux(gw.Handler(), reg, web.Handler())
	m.Handle("/whip/", ms.Handler())
	m.Handle("/whep/", ms.Handler())
	return serveHTTP(ctx, gf, m, gw.Shutdown)
}
