package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/liveroom/liveroom/internal/embednats"
)

// startFlash is a flash-sale engine on its own NATS connection, like one gateway.
func startFlash(t testing.TB, ns *server.Server, cfg FlashConfig) (*FlashSales, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := NewFlashSales(ctx, cfg, nc, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		nc.Close()
	})
	return f, nc
}

func openSale(t testing.TB, f *FlashSales, s Sale) SaleInfo {
	t.Helper()
	info, err := f.Open(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func buy(t testing.TB, f *FlashSales, room, item, user, cid string) Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := f.Buy(ctx, Press{Room: room, Item: item, User: user, CID: cid})
	if err != nil {
		t.Fatalf("press %s/%s: %v", user, cid, err)
	}
	return a
}

// saleOrders reads every order of a sale from LR_ORDERS.
func saleOrders(t testing.TB, f *FlashSales, sale string) []Order {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := f.orders.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []Order
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := f.orders.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("order %d: %v", seq, err)
		}
		var o Order
		if err := json.Unmarshal(m.Data, &o); err != nil {
			t.Fatal(err)
		}
		if o.Sale == sale {
			out = append(out, o)
		}
	}
	return out
}

// checkOrders fails unless the sale's orders are exactly the acknowledged wins
// (plus, when unacked is allowed, wins whose answer was lost), each unit and user
// slot at most once, and no user over the limit.
func checkOrders(t testing.TB, orders []Order, stock, limit int, acked map[string]string) {
	t.Helper()
	units := map[int]bool{}
	perUser := map[string]int{}
	ids := map[string]int{}
	for _, o := range orders {
		if o.Unit < 1 || o.Unit > stock || units[o.Unit] {
			t.Fatalf("unit %d sold twice or out of range (order %+v)", o.Unit, o)
		}
		units[o.Unit] = true
		perUser[o.User]++
		ids[o.ID]++
	}
	for u, n := range perUser {
		if n > limit {
			t.Fatalf("user %s holds %d orders, limit %d", u, n, limit)
		}
	}
	for id, user := range acked {
		if ids[id] != 1 {
			t.Fatalf("acknowledged win %s of %s is in the order stream %d times", id, user, ids[id])
		}
	}
	if len(orders) > stock {
		t.Fatalf("%d orders for stock %d", len(orders), stock)
	}
}

func TestFlashAnswers(t *testing.T) {
	ns := embednats.Test(t)
	f, _ := startFlash(t, ns, FlashConfig{})
	now := time.Now()
	openSale(t, f, Sale{Room: "r", Item: "later", Stock: 5, StartsAt: now.Add(time.Hour), PerUserLimit: 1})
	one := openSale(t, f, Sale{Room: "r", Item: "one", Stock: 1, StartsAt: now.Add(-time.Second), PerUserLimit: 1})
	two := openSale(t, f, Sale{Room: "r", Item: "two", Stock: 10, StartsAt: now.Add(-time.Second), PerUserLimit: 2})

	if a := buy(t, f, "r", "later", "u1", "c1"); a.Kind != NotStarted || a.Retry <= 0 {
		t.Fatalf("before the start: %+v", a)
	}
	won := buy(t, f, "r", "one", "u1", "c1")
	if won.Kind != Won || won.OrderID == "" {
		t.Fatalf("first press: %+v", won)
	}
	if a := buy(t, f, "r", "one", "u1", "c1"); a != won {
		t.Fatalf("retried cid: %+v, want %+v", a, won)
	}
	if a := buy(t, f, "r", "one", "u1", "c2"); a.Kind != AlreadyBought {
		t.Fatalf("second win by one user: %+v", a)
	}
	if a := buy(t, f, "r", "one", "u2", "c1"); a.Kind != SoldOut {
		t.Fatalf("after sold out: %+v", a)
	}
	if a := buy(t, f, "r", "one", "u2", "c1"); a.Kind != SoldOut {
		t.Fatalf("retried sold-out cid: %+v", a)
	}
	// Over the rate limit: the burst (5) passes, the next new cid does not; retries
	// of an answered cid are free.
	for i := range 5 {
		buy(t, f, "r", "later", "u3", fmt.Sprint("b", i))
	}
	if a := buy(t, f, "r", "later", "u3", "b5"); a.Kind != RateLimited || a.Retry <= 0 {
		t.Fatalf("over the rate limit: %+v", a)
	}
	// A limit of 2: two wins, then already_bought.
	for i, want := range []AnswerKind{Won, Won, AlreadyBought} {
		if a := buy(t, f, "r", "two", "u4", fmt.Sprint("t", i)); a.Kind != want {
			t.Fatalf("limit 2, press %d: %+v, want %s", i, a, want)
		}
	}
	if got := saleOrders(t, f, one.ID); len(got) != 1 || got[0].ID != won.OrderID || got[0].User != "u1" || got[0].CID != "c1" {
		t.Fatalf("orders of sale one: %+v", got)
	}
	if got := saleOrders(t, f, two.ID); len(got) != 2 {
		t.Fatalf("orders of sale two: %+v", got)
	}
	if _, err := f.Buy(context.Background(), Press{Room: "r", Item: "nothing", User: "u", CID: "c"}); !errors.Is(err, ErrNoSale) {
		t.Fatalf("press on no sale: %v", err)
	}
}

// A retry through another gateway, of a press whose win was stored but whose answer
// was lost, gets the same win, not a second one.
func TestFlashRetryElsewhereGetsSameWin(t *testing.T) {
	ns := embednats.Test(t)
	a, _ := startFlash(t, ns, FlashConfig{})
	b, _ := startFlash(t, ns, FlashConfig{})
	info := openSale(t, a, Sale{Room: "r", Item: "i", Stock: 10, StartsAt: time.Now().Add(-time.Second), PerUserLimit: 1})
	won := buy(t, a, "r", "i", "u1", "c1")
	if again := buy(t, b, "r", "i", "u1", "c1"); again.Kind != Won || again.OrderID != won.OrderID {
		t.Fatalf("retry on the other gateway: %+v, want %+v", again, won)
	}
	if other := buy(t, b, "r", "i", "u1", "c2"); other.Kind != AlreadyBought {
		t.Fatalf("new press on the other gateway: %+v", other)
	}
	checkOrders(t, saleOrders(t, a, info.ID), 10, 1, map[string]string{won.OrderID: "u1"})
	if n := len(saleOrders(t, a, info.ID)); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
}

// One gateway dies (its NATS connection closes) in the middle of the sale. The other
// keeps answering, the dead one's leased stock comes back after LeaseTTL, and the
// order stream holds exactly the stock: every acknowledged win once, nobody twice.
func TestFlashGatewayKilledMidSale(t *testing.T) {
	ns := embednats.Test(t)
	cfg := FlashConfig{LeaseTTL: 300 * time.Millisecond, MaxLease: 8, PressRate: 1000, PressBurst: 1000}
	a, _ := startFlash(t, ns, cfg)
	b, bnc := startFlash(t, ns, cfg)
	const stock, users = 100, 2000
	info := openSale(t, a, Sale{Room: "r", Item: "i", Stock: stock, StartsAt: time.Now().Add(-time.Second), PerUserLimit: 1})

	var mu sync.Mutex
	acked := map[string]string{} // order id -> user
	var bWins atomic.Int64
	killed := make(chan struct{})
	var killOnce sync.Once
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= users {
					return
				}
				user, cid := fmt.Sprint("u", i), fmt.Sprint("c", i)
				for try := range 3 {
					eng := a
					if i%2 == 1 && try == 0 {
						eng = b // half the users land on B first
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					ans, err := eng.Buy(ctx, Press{Room: "r", Item: "i", User: user, CID: cid})
					cancel()
					if err != nil {
						continue // B died under this press: retry on A, same cid
					}
					if ans.Kind == Won {
						mu.Lock()
						acked[ans.OrderID] = user
						mu.Unlock()
						if eng == b && bWins.Add(1) == 20 {
							killOnce.Do(func() { bnc.Close(); close(killed) })
						}
					}
					if ans.Kind != RateLimited {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatal("B never won 20 units before the users ran out; the test did not kill it mid-sale")
	}
	// Keep pressing on the survivor until the sale is over for good: B's leased units
	// come back once its lease expires.
	for i := 0; ; i++ {
		ans := buy(t, a, "r", "i", fmt.Sprint("late", i), "c")
		if ans.Kind == Won {
			acked[ans.OrderID] = fmt.Sprint("late", i)
		}
		if ans.Kind == SoldOut && ans.final {
			break
		}
	}
	orders := saleOrders(t, a, info.ID)
	checkOrders(t, orders, stock, 1, acked)
	if len(orders) != stock {
		t.Fatalf("%d orders, want the whole stock %d", len(orders), stock)
	}
	t.Logf("%d acknowledged wins, %d orders, %v leases of B reclaimed by A", len(acked), len(orders),
		promCounter(a.metrics.leasesReclaimed))
}

func promCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// A sale unloaded while idle (SaleIdle) is loaded again by the next press: answers
// stay right while presses race with unloads.
func TestFlashSaleUnloadsWhenIdle(t *testing.T) {
	ns := embednats.Test(t)
	f, _ := startFlash(t, ns, FlashConfig{SaleIdle: time.Millisecond, PressRate: 1000, PressBurst: 1000})
	info := openSale(t, f, Sale{Room: "r", Item: "i", Stock: 100, StartsAt: time.Now().Add(-time.Second), PerUserLimit: 1})
	acked := map[string]string{}
	for i := range 30 {
		user := fmt.Sprint("u", i)
		won := buy(t, f, "r", "i", user, "c1")
		if won.Kind != Won {
			t.Fatalf("%s: %+v", user, won)
		}
		acked[won.OrderID] = user
		if again := buy(t, f, "r", "i", user, "c1"); again != won {
			t.Fatalf("%s retry: %+v, want %+v", user, again, won)
		}
		if other := buy(t, f, "r", "i", user, "c2"); other.Kind != AlreadyBought {
			t.Fatalf("%s second press: %+v", user, other)
		}
	}
	orders := saleOrders(t, f, info.ID)
	checkOrders(t, orders, 100, 1, acked)
	if len(orders) != 30 {
		t.Fatalf("%d orders, want 30", len(orders))
	}
}

// The pool is only an allocator: even if it hands out a unit that is already sold (as
// after reclaiming the lease of a gateway that was slow, not dead), the unit's order
// subject refuses a second order and the press takes another unit.
func TestFlashSoldUnitHandedOutAgainCannotOversell(t *testing.T) {
	ns := embednats.Test(t)
	f, _ := startFlash(t, ns, FlashConfig{})
	info := openSale(t, f, Sale{Room: "r", Item: "i", Stock: 2, StartsAt: time.Now().Add(-time.Second), PerUserLimit: 1})
	first := buy(t, f, "r", "i", "u1", "c")
	if first.Kind != Won {
		t.Fatalf("first press: %+v", first)
	}
	// Corrupt the pool: the sold unit is "free" again and not counted. (A CAS loop: the
	// seller may still be settling its lease.)
	ctx := context.Background()
	sold := saleOrders(t, f, info.ID)[0].Unit
	for {
		e, err := f.kv.Get(ctx, saleKey("r", "i"))
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := decodeRecord(e)
		rec.Free, rec.Sold = append([]int{sold}, rec.Free...), rec.Sold-1
		err = f.write(ctx, saleKey("r", "i"), rec, e.Revision())
		if err == nil {
			break
		}
		if !isWrongLastSeq(err) {
			t.Fatal(err)
		}
	}
	if a := buy(t, f, "r", "i", "u2", "c"); a.Kind != Won || a.OrderID == first.OrderID {
		t.Fatalf("second press: %+v (first %+v)", a, first)
	}
	if a := buy(t, f, "r", "i", "u3", "c"); a.Kind != SoldOut {
		t.Fatalf("third press: %+v", a)
	}
	if n := len(saleOrders(t, f, info.ID)); n != 2 {
		t.Fatalf("%d orders for stock 2", n)
	}
	if n := promCounter(f.metrics.unitsTaken); n != 1 {
		t.Fatalf("units found taken: %v, want 1", n)
	}
}
