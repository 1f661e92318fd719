package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/liveroom/liveroom/gateway"
	"github.com/liveroom/liveroom/web"
)

func runGateway(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	gf := addGatewayFlags(fs, false)
	natsURL := fs.String("nats", envOr("LIVEROOM_NATS", nats.DefaultURL), "NATS URL(s), comma-separated (env LIVEROOM_NATS)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, err := nats.Connect(*natsURL, natsOptions("liveroom-gateway")...)
	if err != nil {
		return fmt.Errorf("connect to NATS %s: %w", *natsURL, err)
	}
	defer nc.Close()
	reg := newRegistry()
	gw, err := gateway.New(gf.config(), nc, reg)
	if err != nil {
		return err
	}
	return serveHTTP(ctx, gf, gf.mux(gw.Handler(), reg, web.Handler()), gw.Shutdown)
}
