package fanout

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/liveroom/liveroom/internal/embednats"
)

// A press whose win was stored but whose answer was lost (its gateway died), resent
// through another gateway after the sale sold out, gets its win: the other gateway
// follows the sale's orders and answers from them, not a bare sold_out.
func TestFlashRetryAfterSoldOutGetsItsWin(t *testing.T) {
	ns := embednats.Test(t)
	a, _ := startFlash(t, ns, FlashConfig{})
	b, _ := startFlash(t, ns, FlashConfig{})
	info := openSale(t, a, Sale{Room: "r", Item: "i", Stock: 2, StartsAt: time.Now().Add(-time.Second), PerUserLimit: 1})
	won1 := buy(t, a, "r", "i", "u1", "c1")
	won2 := buy(t, a, "r", "i", "u2", "c2")
	if won1.Kind != Won || won2.Kind != Won {
		t.Fatalf("first presses: %+v %+v", won1, won2)
	}
	if got := buy(t, a, "r", "i", "u3", "c3"); got.Kind != SoldOut {
		t.Fatalf("third press on a sold-out sale: %+v", got)
	}
	again, err := b.Buy(t.Context(), Press{Room: "r", Item: "i", User: "u1", CID: "c1", Resend: true})
	if err != nil || again.Kind != Won || again.OrderID != won1.OrderID {
		t.Fatalf("resent press after sell-out on the other gateway: %+v, %v, want %+v", again, err, won1)
	}
	if other := buy(t, b, "r", "i", "u2", "new"); other.Kind != AlreadyBought {
		t.Fatalf("a winner's new press after sell-out: %+v, want already_bought", other)
	}
	if lost := buy(t, b, "r", "i", "u4", "c4"); lost.Kind != SoldOut {
		t.Fatalf("a new user after sell-out: %+v", lost)
	}
	if n := len(saleOrders(t, a, info.ID)); n != 2 {
		t.Fatalf("%d orders, want 2", n)
	}
}

// A herd much larger than the stock: once the sale sells out, the presses still
// queued and those that come later are answered at once (shed), without a round trip
// of the seller each, and the wins are still exactly the stock.
func TestFlashHerdBeyondStockIsShed(t *testing.T) {
	ns := embednats.Test(t)
	f, _ := startFlash(t, ns, FlashConfig{})
	const stock, users = 5, 400
	info := openSale(t, f, Sale{Room: "r", Item: "i", Stock: stock, StartsAt: time.Now().Add(-time.Second), PerUserLimit: 1})
	// Load the sale and let its order watch catch up before the herd.
	if a := buy(t, f, "r", "i", "first", "c"); a.Kind != Won {
		t.Fatalf("first press: %+v", a)
	}
	answers := make([]Answer, users)
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() { answers[i] = buy(t, f, "r", "i", fmt.Sprint("u", i), "c") })
	}
	wg.Wait()
	kinds := map[AnswerKind]int{}
	acked := map[string]string{}
	for i, a := range answers {
		kinds[a.Kind]++
		if a.Kind == Won {
			acked[a.OrderID] = fmt.Sprint("u", i)
		}
	}
	if kinds[Won] != stock-1 || kinds[SoldOut] != users-stock+1 {
		t.Fatalf("answers %v, want %d won and %d sold_out", kinds, stock-1, users-stock+1)
	}
	shed := promCounter(f.metrics.shed)
	if shed < users-2*stock {
		t.Fatalf("%v presses shed, want at least %d: presses that cannot win waited for the seller", shed, users-2*stock)
	}
	checkOrders(t, saleOrders(t, f, info.ID), stock, 1, acked)
}

// A gateway follows every sale's pool: a sale opened elsewhere is loaded here before
// any press (its seller and order watch are ready for the herd), and a sell-out on
// another gateway is known here without a read, so the next press is answered from
// memory.
func TestFlashPoolWatchLoadsSaleAndSeesSellOut(t *testing.T) {
	ns := embednats.Test(t)
	a, _ := startFlash(t, ns, FlashConfig{})
	b, _ := startFlash(t, ns, FlashConfig{})
	openSale(t, a, Sale{Room: "r", Item: "i", Stock: 1, StartsAt: time.Now().Add(-time.Second), PerUserLimit: 1})
	key := saleKey("r", "i")
	loaded := func(check func(*sale) bool) func() bool {
		return func() bool {
			b.mu.Lock()
			s := b.sales[key]
			b.mu.Unlock()
			if s == nil {
				return false
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			return check(s)
		}
	}
	eventually(t, "B loads the sale A opened and follows its orders", loaded(func(s *sale) bool { return s.caughtUp.Load() }))
	if w := buy(t, a, "r", "i", "u1", "c1"); w.Kind != Won {
		t.Fatalf("press on A: %+v", w)
	}
	eventually(t, "B learns the sell-out from the pool watch", loaded(func(s *sale) bool { return s.soldOut && s.winnersKnown(s.gate.Load()) }))
	if lost := buy(t, b, "r", "i", "u2", "c2"); lost.Kind != SoldOut {
		t.Fatalf("press on B after the sell-out: %+v", lost)
	}
	if n := promCounter(b.metrics.shed); n != 1 {
		t.Fatalf("B shed %v presses, want 1: the press after the sell-out waited for the seller", n)
	}
}

// eventually waits, up to 10 s, for cond to hold.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
