package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// maxBatch bounds how many queued presses one seller round serves.
const maxBatch = 256

// waitPause is how long a seller waits before asking the pool again when every unit
// left is out on another gateway's lease.
const waitPause = 10 * time.Millisecond

// sale is one flash sale as seen by one gateway: the users who pressed here, the
// presses waiting for stock, and the seller goroutine that serves them in arrival
// order.
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

	mu       sync.Mutex // guards the fields below
	id       string
	limit    int
	startsAt time.Time
	soldOut  bool        // final: the pool is exhausted
	unloaded bool        // the seller stopped after SaleIdle; presses load the sale again
	left     int         // units not known sold (stock - sold), as last read or written
	sold     int         // units known sold, as last read or written
	rec      *saleRecord // the newest record observed (never changed in place)
	buyers   map[string]*buyer
	queue    []*pending
	serving  int // presses the seller took and has neither answered nor put back

	// the sale's stored orders, from the watch
	winners  map[string][]winner // by user
	seen     uint64              // orders the watch delivered
	backlog  uint64              // orders stored when the watch started
	caughtUp bool                // the watch delivered at least the backlog
}

// buyer is one user's presses on one sale through this gateway.
type buyer struct {
	limiter  *rate.Limiter
	wins     int                 // orders this user is known to hold in the sale
	answers  map[string]Answer   // final answers, by cid
	inflight map[string]*pending // presses being served, by cid
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
	s.observe(rec)
	return s
}

// observe takes in the pool as last read or written. A new sale id (the item was put
// on sale again) forgets everything known about the previous one.
func (s *sale) observe(rec *saleRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec != nil && rec.rev != 0 && rec.rev <= s.rec.rev {
		return // older than what the seller or the pool watch already saw
	}
	s.rec = rec
	if rec.Sale != s.id {
		s.id, s.limit, s.startsAt = rec.Sale, rec.PerUserLimit, time.UnixMilli(rec.StartsAt)
		s.soldOut = false
		s.buyers = map[string]*buyer{}
		s.winners, s.caughtUp = nil, false
	}
	if rec.exhausted() {
		s.soldOut = true
	}
	s.left, s.sold = rec.left(), rec.Sold
	s.f.metrics.stockLeft.WithLabelValues(s.room, s.item).Set(float64(rec.left()))
}

func (s *sale) buyer(user string) *buyer {
	b := s.buyers[user]
	if b == nil {
		b = &buyer{limiter: s.f.newLimiter(), answers: map[string]Answer{}, inflight: map[string]*pending{}}
		s.buyers[user] = b
	}
	return b
}

// press answers what can be answered from memory and queues the rest for the seller.
func (s *sale) press(ctx context.Context, p Press, now time.Time) (Answer, error) {
	s.mu.Lock()
	if s.unloaded {
		s.mu.Unlock()
		return Answer{}, errSaleUnloaded
	}
	b := s.buyer(p.User)
	if a, ok := b.answers[p.CID]; ok {
		s.mu.Unlock()
		return a, nil
	}
	if w := b.inflight[p.CID]; w != nil {
		s.mu.Unlock()
		return w.wait(ctx)
	}
	if r := b.limiter.ReserveN(now, 1); r.DelayFrom(now) > 0 {
		d := r.DelayFrom(now)
		r.CancelAt(now)
		s.mu.Unlock()
		return Answer{Kind: RateLimited, Retry: d}, nil
	}
	if now.Before(s.startsAt) {
		d := s.startsAt.Sub(now)
		s.mu.Unlock()
		return Answer{Kind: NotStarted, Retry: d}, nil
	}
	if b.wins >= s.limit {
		a := Answer{Kind: AlreadyBought, final: true}
		b.answers[p.CID] = a
		s.mu.Unlock()
		return a, nil
	}
	if s.cannotWin(len(s.queue)) {
		a := s.lostAnswer(b, p)
		b.answers[p.CID] = a
		s.mu.Unlock()
		s.f.metrics.shed.Inc()
		return a, nil
	}
	w := &pending{Press: p, slot: b.wins + 1, arrived: now, done: make(chan struct{})}
	b.inflight[p.CID] = w
	s.queue = append(s.queue, w)
	s.mu.Unlock()
	s.signal()
	return w.wait(ctx)
}

func (s *sale) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// cannotWin reports that a press with ahead presses queued before it cannot get a
// unit: the pool is exhausted, or the presses before it on this gateway (queued and
// being served) are at least the units not yet sold. Such a press is answered at
// once (lostAnswer) instead of waiting for the presses before it; a unit can still
// come back to the pool only if a win fails to be stored, and then it goes to a later
// press. The shortcut needs the sale's winners (to answer a user who won elsewhere),
// so it is taken only while they are complete (winnersKnown); otherwise, and without
// a watch, such presses wait for the seller. Caller holds s.mu.
func (s *sale) cannotWin(ahead int) bool {
	return s.winnersKnown() && (s.soldOut || ahead+s.serving >= s.left)
}

// winnersKnown reports that the order watch has caught up and delivered at least as
// many orders as the pool counts sold: the pool and the order stream are two
// subscriptions, and the pool's news (sold out) may come first. Caller holds s.mu.
func (s *sale) winnersKnown() bool {
	return s.caughtUp && s.seen >= uint64(s.sold)
}

// shed answers the queued presses that cannot win (cannotWin), keeping the order of
// the rest. It takes the sale's lock once: in a herd thousands of presses wait on it,
// and the seller must not queue behind them once per press.
func (s *sale) shed() {
	s.mu.Lock()
	var lost []*pending
	kept := s.queue[:0]
	for _, w := range s.queue {
		if s.cannotWin(len(kept)) {
			lost = append(lost, w)
			continue
		}
		kept = append(kept, w)
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	for _, w := range lost {
		s.answerLocked(w, s.lostAnswer(s.buyer(w.User), w.Press), nil)
	}
	s.mu.Unlock()
	s.f.metrics.shed.Add(float64(len(lost)))
	for _, w := range lost {
		close(w.done)
	}
}

// finish answers a press the seller took.
func (s *sale) finish(w *pending, a Answer, err error) {
	s.mu.Lock()
	s.serving--
	s.answerLocked(w, a, err)
	s.mu.Unlock()
	close(w.done)
}

// answerLocked records a press's answer; the caller closes w.done once it has let go
// of s.mu. Final answers are remembered for retries with its cid.
func (s *sale) answerLocked(w *pending, a Answer, err error) {
	b := s.buyer(w.User)
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
	lr, err := s.f.relet(ctx, s.key, s.known(), s.owed, 0)
	if err != nil {
		// The lease expires and another gateway takes its units back.
		s.f.metrics.settleErrors.Inc()
		return
	}
	s.owed = nil
	s.observe(lr.rec)
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
	if len(s.queue) > 0 {
		return false
	}
	for _, b := range s.buyers {
		if len(b.inflight) > 0 {
			return false
		}
	}
	s.unloaded = true
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
	lr, err := s.f.relet(opCtx, s.key, s.known(), s.owed, len(batch))
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
	s.mu.Lock()
	known := s.winnersKnown()
	s.mu.Unlock()
	if rec.exhausted() && known {
		s.requeue(batch) // shed answers them, from the sale's winners
		return
	}
	now := time.Now()
	var wait []*pending
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
	m := s.f.metrics
	now := time.Now().UnixMilli()
	for i, w := range batch {
		o := Order{ID: orderID(rec.Sale, units[i]), Sale: rec.Sale, Room: rec.Room, Item: rec.Item,
			Unit: units[i], User: w.User, Slot: w.slot, CID: w.CID, Gateway: s.f.cfg.Gateway, TS: now}
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
	s.mu.Lock()
	limit := s.limit
	b := s.buyer(w.User)
	b.wins = max(b.wins, w.slot)
	s.mu.Unlock()
	if w.slot < limit {
		w.slot++
		return w
	}
	s.finish(w, Answer{Kind: AlreadyBought, final: true}, nil)
	return nil
}
