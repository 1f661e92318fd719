package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

func openFlash(t testing.TB, g *testGateway, s fanout.Sale) fanout.SaleInfo {
	t.Helper()
	info, err := g.gw.flash.Open(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// press sends a buy over the WebSocket and returns the reply.
func (c *client) press(room, item, cid string) (buyResult, *cmdError) {
	c.t.Helper()
	f := c.call(map[string]any{"cmd": "buy", "room": room, "item": item, "cid": cid})
	if f.Error != nil {
		return buyResult{}, f.Error
	}
	var res buyResult
	if err := json.Unmarshal(f.Result, &res); err != nil {
		c.t.Fatalf("buy result %s: %v", f.Result, err)
	}
	return res, nil
}

// saleOrders reads every order of a sale from LR_ORDERS.
func saleOrders(t testing.TB, ns *server.Server, sale string) []fanout.Order {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, fanout.OrdersStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []fanout.Order
	for n := info.NumPending; n > 0; n-- {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var o fanout.Order
		if err := json.Unmarshal(m.Data(), &o); err != nil {
			t.Fatal(err)
		}
		if o.Sale == sale {
			out = append(out, o)
		}
	}
	return out
}

// rawViewer is a WebSocket viewer that reads raw frames, to see stock events.
type rawViewer struct {
	ws *websocket.Conn
}

func joinRaw(t testing.TB, url, room string) *rawViewer {
	t.Helper()
	c := dialWith(t, url, nil, false)
	c.sendRaw(`{"id":"j","cmd":"join","room":"` + room + `"}`)
	return &rawViewer{ws: c.ws}
}

// waitSoldOut reads frames until a stock event of item says sold out, and returns it.
func (v *rawViewer) waitSoldOut(t testing.TB, item string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, data, err := v.ws.Read(ctx)
		if err != nil {
			t.Fatalf("viewer never saw %s sold out: %v", item, err)
		}
		var f struct {
			Events []map[string]any `json:"events"`
		}
		_ = json.Unmarshal(data, &f)
		for _, ev := range f.Events {
			if ev["type"] == "stock" && ev["item"] == item && ev["sold_out"] == true {
				return ev
			}
		}
	}
}

// Two gateways, stock 100, 5,000 users pressing with retries (most through the
// engine, some over real WebSockets on both gateways): exactly 100 wins, nobody wins
// twice, every win in the order stream once, and viewers see the sale sell out.
func TestFlashBuyTwoGateways(t *testing.T) {
	ns := startNATS(t)
	cfg := Config{AllowAnonymous: true, Flash: fanout.FlashConfig{PressRate: 100, PressBurst: 10}}
	a := startGateway(t, ns, cfg)
	b := startGateway(t, ns, cfg)
	const room, item, stock, users, wsUsers = "shop", "phone", 100, 5000, 40
	info := openFlash(t, a, fanout.Sale{Room: room, Item: item, Stock: stock, StartsAt: time.Now().Add(-time.Second), PerUserLimit: 1})
	viewer := joinRaw(t, b.url, room)

	var mu sync.Mutex
	wins := map[string]string{} // order id -> user
	userWins := map[string]map[string]bool{}
	record := func(user string, kind fanout.AnswerKind, order string) {
		if kind != fanout.Won {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := wins[order]; ok && prev != user {
			t.Errorf("order %s won by %s and %s", order, prev, user)
		}
		wins[order] = user
		if userWins[user] == nil {
			userWins[user] = map[string]bool{}
		}
		userWins[user][order] = true
	}

	var wg sync.WaitGroup
	// WebSocket buyers, half on each gateway: a press, a retry of it, a new press.
	for i := range wsUsers {
		g := a
		if i%2 == 1 {
			g = b
		}
		user := fmt.Sprint("ws", i)
		c := dial(t, g.url)
		c.join(room, mintToken(t, user, auth.RoleViewer, []string{room}, time.Hour))
		wg.Add(1)
		go func() {
			defer wg.Done()
			first, cerr := c.press(room, item, "p1")
			if cerr != nil {
				t.Errorf("%s: %v", user, cerr)
				return
			}
			record(user, first.Answer, first.OrderID)
			if again, _ := c.press(room, item, "p1"); again != first {
				t.Errorf("%s: retry answered %+v, first %+v", user, again, first)
			}
			next, _ := c.press(room, item, "p2")
			record(user, next.Answer, next.OrderID)
		}()
	}
	// Engine users: press on one gateway, retry the same cid on the other, press again.
	var nextUser atomic.Int64
	for range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := nextUser.Add(1) - 1
				if i >= users {
					return
				}
				user := fmt.Sprint("u", i)
				gws := []*Gateway{a.gw, b.gw}
				first := i % 2
				for n, p := range []struct {
					gw  *Gateway
					cid string
				}{{gws[first], "c1"}, {gws[1-first], "c1"}, {gws[first], "c2"}} {
					ans, err := p.gw.flash.Buy(context.Background(), fanout.Press{Room: room, Item: item, User: user, CID: p.cid})
					if err != nil {
						t.Errorf("%s press %d: %v", user, n, err)
						return
					}
					record(user, ans.Kind, ans.OrderID)
				}
			}
		}()
	}
	wg.Wait()

	if len(wins) != stock {
		t.Fatalf("%d units won, want exactly %d", len(wins), stock)
	}
	for user, orders := range userWins {
		if len(orders) > 1 {
			t.Fatalf("%s won %d units", user, len(orders))
		}
	}
	orders := saleOrders(t, ns, info.ID)
	if len(orders) != stock {
		t.Fatalf("%d orders in the stream, want %d", len(orders), stock)
	}
	seen := map[string]bool{}
	for _, o := range orders {
		if seen[o.ID] || wins[o.ID] != o.User {
			t.Fatalf("order %+v: duplicate or not an acknowledged win (won by %q)", o, wins[o.ID])
		}
		seen[o.ID] = true
	}
	if ev := viewer.waitSoldOut(t, item); ev["left"] != float64(0) {
		t.Fatalf("sold-out event %v", ev)
	}
}

// Every answer over the wire: not_started, won, the same answer to a retried cid,
// already_bought, sold_out, rate_limited; and the errors.
func TestFlashBuyAnswers(t *testing.T) {
	ns := startNATS(t)
	g := startGateway(t, ns, Config{AllowAnonymous: true, Flash: fanout.FlashConfig{PressRate: 0.001, PressBurst: 3}})
	const room = "r"
	openFlash(t, g, fanout.Sale{Room: room, Item: "later", Stock: 1, StartsAt: time.Now().Add(time.Hour), PerUserLimit: 1})
	openFlash(t, g, fanout.Sale{Room: room, Item: "one", Stock: 1, StartsAt: time.Now().Add(-time.Second), PerUserLimit: 1})
	u1, u2 := dial(t, g.url), dial(t, g.url)
	u1.join(room, mintToken(t, "u1", auth.RoleViewer, []string{room}, time.Hour))
	u2.join(room, mintToken(t, "u2", auth.RoleViewer, []string{room}, time.Hour))

	if r, _ := u1.press(room, "later", "a"); r.Answer != fanout.NotStarted || r.RetryMS <= 0 {
		t.Fatalf("before the start: %+v", r)
	}
	won, _ := u1.press(room, "one", "b")
	if won.Answer != fanout.Won || won.OrderID == "" {
		t.Fatalf("first press: %+v", won)
	}
	if r, _ := u1.press(room, "one", "b"); r != won {
		t.Fatalf("retried cid: %+v, want %+v", r, won)
	}
	if r, _ := u1.press(room, "one", "c"); r.Answer != fanout.AlreadyBought {
		t.Fatalf("second win: %+v", r)
	}
	if r, _ := u1.press(room, "one", "d"); r.Answer != fanout.AlreadyBought {
		t.Fatalf("third new cid: %+v", r)
	}
	if r, _ := u1.press(room, "one", "e"); r.Answer != fanout.RateLimited || r.RetryMS <= 0 {
		t.Fatalf("over the rate limit (burst 3): %+v", r)
	}
	if r, _ := u2.press(room, "one", "a"); r.Answer != fanout.SoldOut {
		t.Fatalf("after sold out: %+v", r)
	}
	if r, _ := u2.press(room, "one", "a"); r.Answer != fanout.SoldOut {
		t.Fatalf("retried sold-out cid: %+v", r)
	}
	if _, e := u2.press(room, "nothing", "x"); e == nil || e.Code != codeNoSale {
		t.Fatalf("no sale: %v", e)
	}
	if _, e := u2.press("elsewhere", "one", "x"); e == nil || e.Code != codeNotJoined {
		t.Fatalf("not joined: %v", e)
	}
	anon := dial(t, g.url)
	anon.join(room, "")
	if _, e := anon.press(room, "one", "x"); e == nil || e.Code != codeForbidden {
		t.Fatalf("anonymous: %v", e)
	}
	if n := g.counter(t, "liveroom_flash_presses_total", "answer", "won"); n != 2 {
		t.Errorf("won presses counted %v, want 2 (the press and its retry)", n)
	}
}

// The host pins a product with flash_sale terms: the sale opens with them, and a
// viewer can buy as soon as the pin is answered.
func TestFlashSaleFromPin(t *testing.T) {
	ns := startNATS(t)
	g := startGateway(t, ns, Config{})
	const room = "r"
	host, viewer := dial(t, g.url), dial(t, g.url)
	host.join(room, mintToken(t, "h", auth.RoleHost, []string{room}, time.Hour))
	viewer.join(room, mintToken(t, "v", auth.RoleViewer, []string{room}, time.Hour))
	product := map[string]any{"id": "phone", "title": "手机", "price": 999, "stock": 100,
		"flash_sale": map[string]any{"stock": 1, "starts_at": time.Now().Add(-time.Second).UnixMilli(), "per_user_limit": 1}}
	if f := host.call(map[string]any{"cmd": "pin", "room": room, "product": product}); f.Error != nil {
		t.Fatalf("pin: %v", f.Error)
	}
	if r, e := viewer.press(room, "phone", "a"); e != nil || r.Answer != fanout.Won {
		t.Fatalf("press after the pin: %+v %v", r, e)
	}
	// Pinning the same terms again keeps the sale (and its sold-out stock).
	if f := host.call(map[string]any{"cmd": "pin", "room": room, "product": product}); f.Error != nil {
		t.Fatalf("pin again: %v", f.Error)
	}
	if r, _ := host.press(room, "phone", "b"); r.Answer != fanout.SoldOut {
		t.Fatalf("press after pinning the same sale again: %+v", r)
	}
	// A viewer on another gateway, the room's first there, finds the sold-out stock in
	// its join snapshot.
	g2 := startGateway(t, ns, Config{})
	late := dial(t, g2.url)
	f := late.join(room, mintToken(t, "late", auth.RoleViewer, []string{room}, time.Hour))
	var joined struct {
		Snapshot struct {
			Stock []map[string]any `json:"stock"`
		} `json:"snapshot"`
	}
	if err := json.Unmarshal(f.Result, &joined); err != nil || len(joined.Snapshot.Stock) != 1 ||
		joined.Snapshot.Stock[0]["item"] != "phone" || joined.Snapshot.Stock[0]["sold_out"] != true {
		t.Fatalf("join snapshot stock: %s (%v)", f.Result, err)
	}
	bad := map[string]any{"id": "bad id", "title": "x", "price": 1, "flash_sale": map[string]any{"stock": 1}}
	if f := host.call(map[string]any{"cmd": "pin", "room": room, "product": bad}); f.Error == nil || f.Error.Code != codeBadRequest {
		t.Fatalf("flash-sale pin with a bad id: %+v", f)
	}
}

// Gateway B dies mid-sale (its NATS connection closes). Presses on A, engine and
// WebSocket, keep being answered; B's leased units come back after LeaseTTL; the sale
// sells out exactly: no oversell, every acknowledged win once, nobody twice.
func TestFlashGatewayKilledMidSale(t *testing.T) {
	ns := startNATS(t)
	cfg := Config{AllowAnonymous: true, Flash: fanout.FlashConfig{LeaseTTL: 300 * time.Millisecond, MaxLease: 8, PressRate: 1000, PressBurst: 1000}}
	a := startGateway(t, ns, cfg)
	b := startGateway(t, ns, cfg)
	const room, item, stock, users = "shop", "tv", 100, 2000
	info := openFlash(t, a, fanout.Sale{Room: room, Item: item, Stock: stock, StartsAt: time.Now().Add(-time.Second), PerUserLimit: 1})

	var mu sync.Mutex
	wins := map[string]string{} // acknowledged: order id -> user
	won := func(user string, ans fanout.Answer) {
		if ans.Kind == fanout.Won {
			mu.Lock()
			wins[ans.OrderID] = user
			mu.Unlock()
		}
	}
	var bWins atomic.Int64
	killed := make(chan struct{})
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= users {
					return
				}
				user := fmt.Sprint("u", i)
				gw := a.gw
				if i%2 == 1 {
					gw = b.gw
				}
				ans, err := gw.flash.Buy(context.Background(), fanout.Press{Room: room, Item: item, User: user, CID: "c"})
				if err != nil {
					// B died under this press: the client retries on A, same cid.
					if ans, err = a.gw.flash.Buy(context.Background(), fanout.Press{Room: room, Item: item, User: user, CID: "c"}); err != nil {
						t.Errorf("%s on the survivor: %v", user, err)
						return
					}
				}
				won(user, ans)
				if gw == b.gw && ans.Kind == fanout.Won && bWins.Add(1) == 20 {
					b.gw.nc.Close()
					close(killed)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatal("B never won 20 units: the test did not kill it mid-sale")
	}
	// WebSocket viewers on the survivor keep pressing until the sale is over for good.
	for i := 0; ; i++ {
		user := fmt.Sprint("ws", i)
		c := dial(t, a.url)
		c.join(room, mintToken(t, user, auth.RoleViewer, []string{room}, time.Hour))
		r, cerr := c.press(room, item, "c")
		if cerr != nil {
			t.Fatalf("%s on the survivor: %v", user, cerr)
		}
		won(user, fanout.Answer{Kind: r.Answer, OrderID: r.OrderID})
		if r.Answer == fanout.SoldOut && len(saleOrders(t, ns, info.ID)) == stock {
			break
		}
	}
	orders := saleOrders(t, ns, info.ID)
	if len(orders) != stock {
		t.Fatalf("%d orders, want exactly %d", len(orders), stock)
	}
	units, users2, ids := map[int]bool{}, map[string]bool{}, map[string]bool{}
	for _, o := range orders {
		if units[o.Unit] || users2[o.User] {
			t.Fatalf("order %+v: unit or user twice", o)
		}
		units[o.Unit], users2[o.User], ids[o.ID] = true, true, true
	}
	for id, user := range wins {
		if !ids[id] {
			t.Fatalf("acknowledged win %s of %s is not in the order stream", id, user)
		}
	}
	t.Logf("%d acknowledged wins, %d orders", len(wins), len(orders))
}
