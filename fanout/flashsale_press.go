package fanout

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// buyerShards is how many locks the users of one sale are spread over.
const buyerShards = 64

var buyerSeed = maphash.MakeSeed()

// buyerShard holds some of a sale's buyers under one lock.
type buyerShard struct {
	mu sync.Mutex
	m  map[string]*buyer
}

// buyer is one user's presses on one sale through this gateway.
type buyer struct {
	sale     string // the sale id this state is about; another id starts afresh
	limiter  *rate.Limiter
	wins     int                 // orders this user is known to hold in the sale
	answers  map[string]Answer   // final answers, by cid
	inflight map[string]*pending // presses being served, by cid
}

func (s *sale) shard(user string) *buyerShard {
	return &s.buyers[maphash.String(buyerSeed, user)%buyerShards]
}

// buyer returns user's state in sale id, fresh if it was about another sale id.
// Caller holds sh.mu.
func (sh *buyerShard) buyer(s *sale, user, id string) *buyer {
	b := sh.m[user]
	if b == nil || b.sale != id {
		b = &buyer{sale: id, limiter: s.f.newLimiter(), answers: map[string]Answer{}, inflight: map[string]*pending{}}
		sh.m[user] = b
	}
	return b
}

// inflight reports whether some press is being served. Caller holds s.mu.
func (s *sale) inflight() bool {
	for i := range s.buyers {
		sh := &s.buyers[i]
		sh.mu.Lock()
		for _, b := range sh.m {
			if len(b.inflight) > 0 {
				sh.mu.Unlock()
				return true
			}
		}
		sh.mu.Unlock()
	}
	return false
}

// press answers what can be answered from memory and queues the rest for the seller.
func (s *sale) press(ctx context.Context, p Press, now time.Time) (Answer, error) {
	g := s.gate.Load()
	if g.unloaded {
		return Answer{}, errSaleUnloaded
	}
	sh := s.shard(p.User)
	sh.mu.Lock()
	b := sh.buyer(s, p.User, g.id)
	if a, ok := b.answers[p.CID]; ok {
		sh.mu.Unlock()
		return a, nil
	}
	if w := b.inflight[p.CID]; w != nil {
		sh.mu.Unlock()
		return w.wait(ctx)
	}
	if r := b.limiter.ReserveN(now, 1); r.DelayFrom(now) > 0 {
		d := r.DelayFrom(now)
		r.CancelAt(now)
		sh.mu.Unlock()
		return Answer{Kind: RateLimited, Retry: d}, nil
	}
	if now.Before(g.startsAt) {
		sh.mu.Unlock()
		return Answer{Kind: NotStarted, Retry: g.startsAt.Sub(now)}, nil
	}
	if b.wins >= g.limit {
		a := Answer{Kind: AlreadyBought, final: true}
		b.answers[p.CID] = a
		sh.mu.Unlock()
		return a, nil
	}
	if s.cannotWin(g, &p) {
		a := s.lostAnswer(b, p, g)
		b.answers[p.CID] = a
		sh.mu.Unlock()
		s.f.metrics.shed.Inc()
		return a, nil
	}
	w := &pending{Press: p, slot: b.wins + 1, arrived: now, done: make(chan struct{})}
	b.inflight[p.CID] = w
	sh.mu.Unlock()
	if !s.enqueue(w) {
		sh.mu.Lock()
		delete(b.inflight, p.CID)
		sh.mu.Unlock()
		close(w.done)
		return Answer{}, errSaleUnloaded
	}
	s.signal()
	return w.wait(ctx)
}

// enqueue queues a press for the seller, unless the sale was unloaded meanwhile.
func (s *sale) enqueue(w *pending) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unloaded {
		return false
	}
	s.queue = append(s.queue, w)
	return true
}
