package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/liveroom/liveroom/fanout"
)

// runShopSim is an example of the shop's backend: a durable pull consumer of the
// flash-sale order intents in LR_ORDERS that takes them at its own pace, acknowledges
// each, and prints counts every second. The herd never reaches it: however many
// presses the gateways answer, it sees exactly the wins, at --rate.
func runShopSim(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("shop-sim", flag.ContinueOnError)
	natsURL := fs.String("nats", envOr("LIVEROOM_NATS", nats.DefaultURL), "NATS URL(s), comma-separated (env LIVEROOM_NATS)")
	rateFlag := fs.String("rate", "200/s", "orders processed per second (e.g. 200/s)")
	durable := fs.String("durable", "shop", "durable consumer name: a restarted shop-sim resumes where it stopped")
	if err := fs.Parse(args); err != nil {
		return err
	}
	perSec, err := parseRate(*rateFlag)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(*natsURL, natsOptions("liveroom-shop-sim")...)
	if err != nil {
		return fmt.Errorf("connect to NATS %s: %w", *natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := orderConsumer(ctx, js, *durable)
	if err != nil {
		return err
	}
	return consumeOrders(ctx, cons, rate.NewLimiter(rate.Limit(perSec), max(1, int(perSec/10))))
}

// orderConsumer binds to (or creates) the durable consumer, waiting for the gateways
// to create LR_ORDERS if it does not exist yet.
func orderConsumer(ctx context.Context, js jetstream.JetStream, durable string) (jetstream.Consumer, error) {
	for {
		cons, err := js.CreateOrUpdateConsumer(ctx, fanout.OrdersStream, jetstream.ConsumerConfig{
			Durable:       durable,
			Description:   "liveroom shop-sim: flash-sale orders",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			MaxAckPending: 1000,
		})
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return cons, err
		}
		fmt.Println("waiting for a gateway to create", fanout.OrdersStream)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// consumeOrders fetches, paces, acknowledges and counts orders until ctx ends.
func consumeOrders(ctx context.Context, cons jetstream.Consumer, lim *rate.Limiter) error {
	seen := map[string]bool{} // order ids: the shop's idempotency key
	var total, redelivered, repeated int
	last, lastTotal := time.Now(), 0
	report := func() {
		pending := "?"
		ictx, cancel := context.WithTimeout(context.Background(), time.Second)
		if info, err := cons.Info(ictx); err == nil {
			pending = strconv.FormatUint(info.NumPending+uint64(info.NumAckPending), 10)
		}
		cancel()
		rateNow := float64(total-lastTotal) / time.Since(last).Seconds()
		fmt.Printf("orders %d (%.0f/s), redelivered %d, repeated order ids %d, pending %s\n", total, rateNow, redelivered, repeated, pending)
		last, lastTotal = time.Now(), total
	}
	defer report()
	for ctx.Err() == nil {
		batch, err := cons.Fetch(max(1, int(lim.Limit())/5), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			if err := lim.Wait(ctx); err != nil {
				return nil // stopping; the unacked order is redelivered to the next run
			}
			var o fanout.Order
			if err := json.Unmarshal(m.Data(), &o); err != nil {
				_ = m.Term() // not an order: never redeliver
				continue
			}
			if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 {
				redelivered++
			}
			if seen[o.ID] {
				repeated++
			}
			seen[o.ID] = true
			// A real shop creates the order here, idempotently by o.ID, then acks.
			if err := m.Ack(); err != nil {
				return fmt.Errorf("ack %s: %w", o.ID, err)
			}
			total++
		}
		if time.Since(last) >= time.Second {
			report()
		}
	}
	return nil
}

// parseRate reads "200/s" or "200".
func parseRate(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "/s"), 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("--rate %q: want a positive number per second, e.g. 200/s", s)
	}
	return v, nil
}
