package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// After a run with flash sales, and given the NATS URL of the deployment (Config.NATS),
// the load generator reads the order stream the shop consumes (LR_ORDERS) and checks
// that every win it was told of is there exactly once, and how many orders the sales
// hold in all (a win whose answer was lost, e.g. `unavailable`, is an order the load
// generator was not told of).

// ordersStream is the gateways' order stream (fanout.OrdersStream).
const ordersStream = "LR_ORDERS"

// OrdersReport is the order stream as the load generator found it after the run.
type OrdersReport struct {
	// Checked is false when no NATS URL was given or the stream could not be read.
	Checked bool `json:"checked"`
	// InStream is how many orders the run's sales hold in LR_ORDERS.
	InStream int64 `json:"in_stream"`
	// WonFound is how many of the wins answered to viewers are in the stream.
	WonFound int64 `json:"won_found"`
	// WonMissing lists answered wins that are not in the stream (must be empty).
	WonMissing []string `json:"won_missing,omitempty"`
	// Duplicates counts order ids stored more than once (must be 0).
	Duplicates int64 `json:"duplicates"`
	// AllWinsStored: every answered win is in the stream, once.
	AllWinsStored bool `json:"all_wins_stored"`
}

// checkOrdersURL refuses a NATS URL that is not on a loopback host, unless allowed.
func checkOrdersURL(raw string, allowRemote bool) error {
	for _, one := range strings.Split(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil || u.Host == "" {
			return fmt.Errorf("loadgen: NATS URL %q: want nats://host:port", one)
		}
		if allowRemote {
			continue
		}
		if host := u.Hostname(); host != "localhost" {
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("%w: %q", ErrRemote, one)
			}
		}
	}
	return nil
}

// checkOrders reads the orders of the sales whose wins are in won (order ids
// "<sale>-<unit>") from LR_ORDERS.
func checkOrders(ctx context.Context, natsURL string, won []string) (OrdersReport, error) {
	var r OrdersReport
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(natsURL, nats.Name("liveroom loadgen orders check"))
	if err != nil {
		return r, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return r, err
	}
	stream, err := js.Stream(ctx, ordersStream)
	if err != nil {
		return r, err
	}
	sales := map[string]bool{}
	for _, id := range won {
		if i := strings.LastIndexByte(id, '-'); i > 0 {
			sales[id[:i]] = true
		}
	}
	stored := map[string]int{}
	for sale := range sales {
		if err := readSaleOrders(ctx, stream, sale, stored); err != nil {
			return r, err
		}
	}
	r.Checked = true
	for _, n := range stored {
		r.InStream += int64(n)
		if n > 1 {
			r.Duplicates += int64(n - 1)
		}
	}
	for _, id := range won {
		if stored[id] > 0 {
			r.WonFound++
		} else {
			r.WonMissing = append(r.WonMissing, id)
		}
	}
	slices.Sort(r.WonMissing)
	r.AllWinsStored = len(r.WonMissing) == 0 && r.Duplicates == 0
	return r, nil
}

// readSaleOrders counts, by order id, the orders of one sale (every subject
// "lr.orders.<room>.<sale>.<unit>"), read with an ordered consumer.
func readSaleOrders(ctx context.Context, stream jetstream.Stream, sale string, stored map[string]int) error {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"lr.orders.*." + sale + ".*"},
	})
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("lr.orders.*."+sale+".*"))
	if err != nil {
		return err
	}
	var left uint64
	for _, n := range info.State.Subjects {
		left += n
	}
	for left > 0 {
		batch, err := cons.Fetch(int(min(left, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			var o struct {
				ID string `json:"order_id"`
			}
			if json.Unmarshal(m.Data(), &o) == nil {
				stored[o.ID]++
			}
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if got == 0 {
			return fmt.Errorf("loadgen: order stream: %d orders of sale %s not delivered", left, sale)
		}
		left -= uint64(got)
	}
	return nil
}
