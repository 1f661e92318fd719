package fanout

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Every gateway follows the order stream of each sale it has loaded (an ordered
// consumer on "lr.orders.<room>.<sale>.*"), so it knows every win of the sale, on any
// gateway, moments after it is stored. That is what lets a gateway answer a press it
// cannot serve (sold out, or too far back in the queue to get a unit) from memory and
// still be right for a user who won elsewhere: a press retried here after its gateway
// died between storing the win and answering it gets `won` with its order, and a
// user who holds the limit gets `already_bought`, not `sold_out`.

// winner is one stored order, as much of it as answers need.
type winner struct {
	cid     string
	orderID string
	slot    int
}

// watchOrders (re)starts following the orders of the sale's current id, if it is not
// followed yet. The watch counts as caught up once it has delivered as many orders as
// the stream held for the sale when it started. Seller only.
func (s *sale) watchOrders(ctx context.Context) {
	s.mu.Lock()
	id := s.id
	s.mu.Unlock()
	if s.watchedID == id {
		return
	}
	s.stopWatch()
	s.watchedID = id
	filter := strings.TrimSuffix(orderSubject(s.room, id, 0), "0") + "*"
	err := s.startWatch(ctx, id, filter)
	if err != nil {
		// Without the watch, presses that cannot get a unit wait for the seller as
		// before: slower, equally right. The next round tries again.
		s.f.metrics.watchErrors.Inc()
		s.watchedID = ""
	}
}

func (s *sale) startWatch(ctx context.Context, id, filter string) error {
	info, err := s.f.orders.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return err
	}
	var stored uint64
	for _, n := range info.State.Subjects {
		stored += n
	}
	cons, err := s.f.orders.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.id == id {
		s.wmu.Lock()
		s.winners, s.backlog = map[string][]winner{}, stored
		s.seen.Store(0)
		s.caughtUp.Store(stored == 0)
		s.wmu.Unlock()
	}
	s.mu.Unlock()
	cc, err := cons.Consume(func(m jetstream.Msg) { s.noteOrder(id, m.Data()) })
	if err != nil {
		return err
	}
	s.watch = cc
	return nil
}

func (s *sale) stopWatch() {
	if s.watch != nil {
		s.watch.Stop()
		s.watch = nil
	}
	s.caughtUp.Store(false)
}

// resetWinners forgets the winners of a previous sale id. Caller holds s.mu.
func (s *sale) resetWinners() {
	s.wmu.Lock()
	s.winners = nil
	s.seen.Store(0)
	s.caughtUp.Store(false)
	s.wmu.Unlock()
}

// noteOrder records a stored order of sale id. Called by the watch's goroutine.
func (s *sale) noteOrder(id string, data []byte) {
	var o Order
	if err := json.Unmarshal(data, &o); err != nil || o.Sale != id {
		return
	}
	if g := s.gate.Load(); g == nil || g.id != id {
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.winners == nil {
		return // the sale id changed since the watch started
	}
	if s.seen.Add(1) >= s.backlog {
		s.caughtUp.Store(true)
	}
	s.addWinnerLocked(o)
}

// addWinner records a win this gateway just stored, before the watch delivers it.
func (s *sale) addWinner(o Order) {
	if g := s.gate.Load(); g.id != o.Sale {
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.winners != nil {
		s.addWinnerLocked(o)
	}
}

// addWinnerLocked records an order once. Caller holds s.wmu for writing.
func (s *sale) addWinnerLocked(o Order) {
	for _, w := range s.winners[o.User] {
		if w.slot == o.Slot {
			return
		}
	}
	s.winners[o.User] = append(s.winners[o.User], winner{cid: o.CID, orderID: o.ID, slot: o.Slot})
}

// lostAnswer is the final answer to a press that gets no unit: the user's own win if
// this very press (by cid) won, already_bought if the user holds the limit, else
// sold_out. Caller holds b's shard lock.
func (s *sale) lostAnswer(b *buyer, p Press, g *saleGate) Answer {
	s.wmu.RLock()
	ws := s.winners[p.User]
	s.wmu.RUnlock()
	for _, w := range ws {
		if w.cid == p.CID {
			return Answer{Kind: Won, OrderID: w.orderID, final: true}
		}
	}
	b.wins = max(b.wins, len(ws))
	if b.wins >= g.limit {
		return Answer{Kind: AlreadyBought, final: true}
	}
	return Answer{Kind: SoldOut, final: true}
}
