package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxBatch bounds how many queued presses one seller round serves.
const maxBatch = 256

// waitPause is how long a seller waits before asking the pool again when every unit
// left is out on another gateway's lease.
const waitPause = 10 * time.Millisecond

// sale is one flash sale as seen by one gateway: the users who pressed here, the
// presses waiting for stock, and the seller goroutine that serves them in arrival
// order.
//
// In a herd thousands of presses arrive within a second, on as many goroutines. They
// must not convoy on one mutex (on a saturated box its holder is descheduled and
// every press waits for it): a press reads the sale's gate (an immutable snapshot,
// swapped atomically) and locks only its user's shard; only a press that is queued
// takes the sale's lock. Lock order: mu, then a buyer shard's mu, then wmu.
type sale struct {
	// set in newSale
	f    *FlashSales
	key  string
	room string
	item string
	wake chan struct{} // capacity 1: "the queue has presses"

	// owned by the seller goroutine
	watch     jetstream.ConsumeContext // follows the sale's orders (flashsale_winners.go)
	watchedID string                   // the sale id watch follows
	owed      *settlement              // the last round's lease, ended by the next write

	gate   atomic.Pointer[saleGate] // what a press needs to know of the sale; set under mu
	buyers [buyerShards]buyerShard

	mu       sync.Mutex // guards the fields below, and changes of gate
	id       string
	limit    int
	startsAt time.Time
	soldOut  bool          // final: the pool is exhausted
	unloaded bool          // the seller stopped after SaleIdle; presses load the sale again
	sold     int           // units known sold, as last read or written
	rec      *saleRecord   // the newest record observed (never changed in place)
	recCh    chan struct{} // closed (and replaced) when rec changes
	queue    []*pending
	serving  int // presses the seller took and has neither answered nor put back

	// the sale's stored orders, from the watch (flashsale_winners.go)
	wmu      sync.RWMutex
	winners  map[string][]winner // by user
	seen     atomic.Uint64       // orders the watch delivered
	backlog  uint64              // orders stored when the watch started
	caughtUp atomic.Bool         // the watch delivered at least the backlog
}

// saleGate is the part of a sale a press reads without the sale's lock. A new gate
// is stored whenever one of its fields changes.
type saleGate struct {
	id       string
	limit    int
	startsAt time.Time
	soldOut  bool
	unloaded bool
	sold     int
}

// pending is a press waiting for the seller.
type pending struct {
	Press
	slot    int // which of the user's per-user slots this press tries to fill
	arrived time.Time
	done    chan struct{}
	ans     Answer
	err     error
}

func (w *pending) wait(ctx context.Context) (Answer, error) {
	select {
	case <-w.done:
		return w.ans, w.err
	case <-ctx.Done():
		return Answer{}, ctx.Err()
	}
}

func newSale(f *FlashSales, key string, rec *saleRecord) *sale {
	s := &sale{f: f, key: key, room: rec.Room, item: rec.Item, wake: make(chan struct{}, 1)}
	for i := range s.buyers {
		s.buyers[i].m = map[string]*buyer{}
	}
	s.observe(rec)
	return s
}

// observe takes in the pool as last read or written. A new sale id (the item was put
// on sale again) forgets everything known about the previous one (buyers notice the
// new id when they press).
func (s *sale) observe(rec *saleRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec != nil && rec.rev != 0 && rec.rev <= s.rec.rev {
		return // older than what the seller or the pool watch already saw
	}
	s.rec = rec
	if s.recCh != nil {
		close(s.recCh)
	}
	s.recCh = make(chan struct{})
	if rec.Sale != s.id {
		s.id, s.limit, s.startsAt = rec.Sale, rec.PerUserLimit, time.UnixMilli(rec.StartsAt)
		s.soldOut = false
		s.resetWinners()
	}
	if rec.exhausted() {
		s.soldOut = true
	}
	s.sold = rec.Sold
	s.storeGateLocked()
	s.f.metrics.stockLeft.WithLabelValues(s.room, s.item).Set(float64(rec.left()))
}

// storeGateLocked publishes the sale's state to presses. Caller holds s.mu.
func (s *sale) storeGateLocked() {
	s.gate.Store(&saleGate{id: s.id, limit: s.limit, startsAt: s.startsAt, soldOut: s.soldOut,
		unloaded: s.unloaded, sold: s.sold})
}

func (s *sale) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// cannotWin reports that a press cannot get a unit because the sale sold out. Such
// a press is answered at once from the sale's winners (lostAnswer), without waiting
// for the seller; so are the presses still queued when the sale sells out. A resent
// press may be a win whose answer was lost: it is answered so only while the winners
// are complete (winnersKnown), and otherwise waits for the seller.
//
// A press is not shed earlier, when the presses ahead of it already outnumber the
// units left: some of those (a user's second press, a retry of a win made on another
// gateway) turn out to need no unit, and the units they leave would go unsold.
func (s *sale) cannotWin(g *saleGate, p *Press) bool {
	return g.soldOut && (!p.Resend || s.winnersKnown(g))
}

// winnersKnown reports that the order watch has caught up and delivered at least as
// many orders as the pool counts sold: the pool and the order stream are two
// subscriptions, and the pool's news (sold out) may come first.
func (s *sale) winnersKnown(g *saleGate) bool {
	return s.caughtUp.Load() && s.seen.Load() >= uint64(g.sold)
}

// shed answers every queued press once the sale sold out (cannotWin).
func (s *sale) shed() {
	s.mu.Lock()
	g := s.gate.Load()
	if !g.soldOut {
		s.mu.Unlock()
		return
	}
	var lost []*pending
	kept := s.queue[:0]
	for _, w := range s.queue {
		if s.cannotWin(g, &w.Press) {
			lost = append(lost, w)
		} else {
			kept = append(kept, w)
		}
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	s.mu.Unlock()
	s.f.metrics.shed.Add(float64(len(lost)))
	for _, w := range lost {
		sh := s.shard(w.User)
		sh.mu.Lock()
		b := sh.buyer(s, w.User, g.id)
		s.answerLocked(b, w, s.lostAnswer(b, w.Press, g), nil)
		sh.mu.Unlock()
		close(w.done)
	}
}

// finish answers a press the seller took.
func (s *sale) finish(w *pending, a Answer, err error) {
	s.mu.Lock()
	s.serving--
	id := s.id
	s.mu.Unlock()
	sh := s.shard(w.User)
	sh.mu.Lock()
	s.answerLocked(sh.buyer(s, w.User, id), w, a, err)
	sh.mu.Unlock()
	close(w.done)
}

// answerLocked records a press's answer in its buyer; the caller closes w.done once
// it has let go of the shard's lock. Final answers are remembered for retries with
// its cid. Caller holds the buyer's shard lock.
func (s *sale) answerLocked(b *buyer, w *pending, a Answer, err error) {
	delete(b.inflight, w.CID)
	if err == nil {
		if a.Kind == Won || a.Kind == AlreadyBought {
			b.wins = max(b.wins, w.slot)
		}
		if a.final {
			b.answers[w.CID] = a
		}
	}
	w.ans, w.err = a, err
}

// errSaleUnloaded tells Buy to load the sale again: it was unloaded after SaleIdle.
var errSaleUnloaded = errors.New("fanout: sale unloaded")

// run is the seller: it serves queued presses, oldest first, until Close, or until
// no press came for SaleIdle.
func (s *sale) run() {
	ctx := s.f.ctx
	idle := time.NewTimer(s.f.cfg.SaleIdle)
	defer idle.Stop()
	defer s.stopWatch()
	for {
		select {
		case <-ctx.Done():
			for _, w := range s.take(0) {
				s.finish(w, Answer{}, ErrClosed)
			}
			s.settleOwed(context.Background())
			return
		case <-idle.C:
			if s.unload() {
				return
			}
			idle.Reset(s.f.cfg.SaleIdle)
			continue
		case <-s.wake:
			idle.Reset(s.f.cfg.SaleIdle)
		}
		s.watchOrders(ctx)
		for ctx.Err() == nil {
			s.shed()
			batch := s.take(maxBatch)
			if len(batch) == 0 {
				break
			}
			s.serve(ctx, batch)
		}
		if ctx.Err() == nil && s.queued() {
			s.signal()
			continue
		}
		s.settleOwed(ctx)
	}
}

// settleOwed ends the last round's lease when no round follows to do it.
func (s *sale) settleOwed(ctx context.Context) {
	if s.owed == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.f.cfg.PublishTimeout)
	defer cancel()
	lr, err := s.f.relet(ctx, s.key, s.known(), s.owed, 0, s.newer)
	if err != nil {
		// The lease expires and another gateway takes its units back.
		s.f.metrics.settleErrors.Inc()
		return
	}
	s.owed = nil
	s.observe(lr.rec)
}

// newerWait bounds how long a seller waits for the pool watch after a conflicting
// write before it reads the record itself.
const newerWait = 50 * time.Millisecond

// newer returns the first record observed newer than revision rev, or nil if none
// comes within newerWait.
func (s *sale) newer(ctx context.Context, rev uint64) *saleRecord {
	t := time.NewTimer(newerWait)
	defer t.Stop()
	for {
		s.mu.Lock()
		rec, ch := s.rec, s.recCh
		s.mu.Unlock()
		if rec != nil && rec.rev > rev {
			return rec
		}
		select {
		case <-ch:
		case <-t.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// known is the newest record observed.
func (s *sale) known() *saleRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec
}

// unload forgets the sale on this gateway if nothing is queued or being served.
func (s *sale) unload() bool {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 || s.serving > 0 || s.inflight() {
		return false
	}
	s.unloaded = true
	s.storeGateLocked()
	delete(f.sales, s.key)
	f.metrics.stockLeft.DeleteLabelValues(s.room, s.item)
	return true
}

// take removes up to n (0: all) presses from the front of the queue.
func (s *sale) take(n int) []*pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n == 0 || n > len(s.queue) {
		n = len(s.queue)
	}
	batch := make([]*pending, n)
	copy(batch, s.queue)
	s.queue = append(s.queue[:0], s.queue[n:]...)
	s.serving += n
	return batch
}

func (s *sale) queued() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0
}

// requeue puts presses back at the front of the queue, keeping their order.
func (s *sale) requeue(ws []*pending) {
	if len(ws) == 0 {
		return
	}
	s.mu.Lock()
	s.queue = append(ws[:len(ws):len(ws)], s.queue...)
	s.serving -= len(ws)
	s.mu.Unlock()
}

// serve leases units for a batch (ending the previous round's lease in the same
// write) and publishes one order per unit.
func (s *sale) serve(ctx context.Context, batch []*pending) {
	opCtx, cancel := context.WithTimeout(ctx, s.f.cfg.PublishTimeout)
	defer cancel()
	lr, err := s.f.relet(opCtx, s.key, s.known(), s.owed, len(batch), s.newer)
	if err != nil {
		for _, w := range batch {
			s.finish(w, Answer{}, err)
		}
		return
	}
	s.owed = nil
	s.observe(lr.rec)
	if len(lr.units) == 0 {
		s.noUnits(ctx, lr.rec, batch)
		return
	}
	n := min(len(lr.units), len(batch))
	s.requeue(batch[n:])
	out := s.publish(opCtx, lr.rec, batch[:n], lr.units[:n])
	s.requeue(out.retry)
	// The next round's lease write (or settleOwed, when the queue is empty) ends
	// this lease: one write per round instead of two.
	s.owed = &settlement{id: lr.id, sold: out.sold, unused: append(out.unused, lr.units[n:]...)}
}

// noUnits handles a batch for which the pool had nothing. If the pool is exhausted,
// the presses are answered from the sale's winners (lostAnswer) once they are known.
// Otherwise the last units are on other gateways' leases (or the winners are not
// known yet), and presses wait for them, up to SoldOutWait.
func (s *sale) noUnits(ctx context.Context, rec *saleRecord, batch []*pending) {
	g := s.gate.Load()
	var shed, wait []*pending
	for _, w := range batch {
		if rec.exhausted() && s.cannotWin(g, &w.Press) {
			shed = append(shed, w)
		} else {
			wait = append(wait, w)
		}
	}
	s.requeue(shed) // shed answers them, from the sale's winners
	if len(wait) == 0 {
		return
	}
	batch = wait
	now := time.Now()
	wait = nil
	for _, w := range batch {
		switch {
		case now.Sub(w.arrived) < s.f.cfg.SoldOutWait:
			wait = append(wait, w)
		case rec.exhausted():
			// The order watch is not there: without the winners, a retried press
			// that won on a gateway that died before answering is told sold_out.
			s.finish(w, Answer{Kind: SoldOut, final: true}, nil)
		default:
			s.finish(w, Answer{Kind: SoldOut}, nil) // not final: units may come back
		}
	}
	s.requeue(wait)
	t := time.NewTimer(waitPause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// publishOutcome is what one round of order publishes did to the lease's units.
type publishOutcome struct {
	sold   int        // units this round sold, or found sold by someone else
	unused []int      // units to hand back
	retry  []*pending // presses to serve again (their unit was taken, or the user's slot was)
}

// publish sends one order per (press, unit) at once and sorts out the acks. An order
// is stored only if its unit's subject is empty (no oversell) and the user's slot id
// is new (per-user limit).
func (s *sale) publish(ctx context.Context, rec *saleRecord, batch []*pending, units []int) publishOutcome {
	var out publishOutcome
	futs := make([]jetstream.PubAckFuture, len(batch))
	orders := make([]Order, len(batch))
	m := s.f.metrics
	now := time.Now().UnixMilli()
	for i, w := range batch {
		o := Order{ID: orderID(rec.Sale, units[i]), Sale: rec.Sale, Room: rec.Room, Item: rec.Item,
			Unit: units[i], User: w.User, Slot: w.slot, CID: w.CID, Gateway: s.f.cfg.Gateway, TS: now}
		orders[i] = o
		msg := nats.NewMsg(orderSubject(rec.Room, rec.Sale, units[i]))
		msg.Data, _ = json.Marshal(o)
		fut, err := s.f.js.PublishMsgAsync(msg,
			jetstream.WithMsgID(orderMsgID(rec.Sale, w.User, w.slot)),
			jetstream.WithExpectLastSequencePerSubject(0),
			jetstream.WithExpectStream(OrdersStream))
		if err != nil {
			out.unused = append(out.unused, units[i])
			s.finish(w, Answer{}, err)
			continue
		}
		m.intentsInflight.Inc()
		futs[i] = fut
	}
	for i, fut := range futs {
		if fut == nil {
			continue
		}
		w, unit := batch[i], units[i]
		var ack *jetstream.PubAck
		var err error
		select {
		case ack = <-fut.Ok():
		case err = <-fut.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
		m.intentsInflight.Dec()
		switch {
		case err == nil && !ack.Duplicate:
			out.sold++
			m.ordersStored.Inc()
			s.addWinner(orders[i])
			s.finish(w, Answer{Kind: Won, OrderID: orderID(rec.Sale, unit), final: true}, nil)
		case err == nil:
			// The user's slot is taken: by this very press earlier (a retry after a
			// lost answer, perhaps through another gateway) or by another press.
			out.unused = append(out.unused, unit)
			if w2 := s.slotTaken(ctx, w, ack.Sequence); w2 != nil {
				out.retry = append(out.retry, w2)
			}
		case isWrongLastSeq(err):
			// Someone sold this unit (it came back from a reclaimed lease): count it
			// and try the press again with another unit.
			out.sold++
			m.unitsTaken.Inc()
			out.retry = append(out.retry, w)
		default:
			// Unknown: the order may or may not be stored. The unit goes back (the
			// unit's subject protects it), the client retries with the same cid.
			out.unused = append(out.unused, unit)
			s.finish(w, Answer{}, err)
		}
	}
	return out
}

// slotTaken answers a press whose user slot already holds an order (stored at seq).
// It returns the press if it should try the user's next slot.
func (s *sale) slotTaken(ctx context.Context, w *pending, seq uint64) *pending {
	raw, err := s.f.orders.GetMsg(ctx, seq)
	if err != nil {
		s.finish(w, Answer{}, err)
		return nil
	}
	var o Order
	if err := json.Unmarshal(raw.Data, &o); err != nil {
		s.finish(w, Answer{}, err)
		return nil
	}
	if o.CID == w.CID {
		s.finish(w, Answer{Kind: Won, OrderID: o.ID, final: true}, nil)
		return nil
	}
	g := s.gate.Load()
	limit := g.limit
	sh := s.shard(w.User)
	sh.mu.Lock()
	b := sh.buyer(s, w.User, g.id)
	b.wins = max(b.wins, w.slot)
	sh.mu.Unlock()
	if w.slot < limit {
		w.slot++
		return w
	}
	s.finish(w, Answer{Kind: AlreadyBought, final: true}, nil)
	return nil
}
