package fanout

import (
	"context"
	"sync"
	"time"
)

// Joins are admitted in batches.
//
// A join must hold the room's flushMu while it adds its viewer and computes what the
// viewer is owed (chatroom.go), and a flush to 10,000 viewers holds it for
// milliseconds. One lock acquisition per join made a join storm serial with the
// flushes: on a saturated machine, a lock holder that is descheduled makes everyone
// wait, and joins queued behind each other for seconds.
//
// Instead a join queues itself on the room. The first join to find the queue idle
// admits it: it takes flushMu once and admits every join queued by then, computing the
// state snapshot once for all of them. Joins that arrive meanwhile queue up, and a new
// goroutine admits them as the next batch once this one is done. An idle room admits a
// lone join at once, with no tick to wait for.
//
// The hub shard's lock is held only to find or open the room and count the join in
// the room's refs, never while waiting for the room, so joins and leaves of other rooms
// (and leaves of this one) do not queue behind a busy room.

// joinReq is one join waiting in a room's queue.
type joinReq struct {
	s    Sink
	o    JoinOptions
	err  error
	kept bool          // the sink was added by this join and stays: its ref is the sink's
	done chan struct{} // closed once err and kept are set
}

// roomJoins is a room's queue of joins.
type roomJoins struct {
	mu     sync.Mutex
	queue  []*joinReq
	active bool // a goroutine is admitting the queue
}

// enqueue adds q and reports whether the caller must admit the queue.
func (j *roomJoins) enqueue(q *joinReq) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.queue = append(j.queue, q)
	if j.active {
		return false
	}
	j.active = true
	return true
}

// next takes the queued joins, or ends the admitting goroutine's turn when none are.
func (j *roomJoins) next() []*joinReq {
	j.mu.Lock()
	defer j.mu.Unlock()
	batch := j.queue
	j.queue = nil
	if len(batch) == 0 {
		j.active = false
	}
	return batch
}

// join queues q on the room and returns once it is admitted or refused.
func (r *room) join(q *joinReq) {
	if r.joins.enqueue(q) {
		r.admitJoins()
	}
	<-q.done
}

// admitJoins admits the joins queued by the time it holds flushMu, then hands the rest
// of the queue, if any, to a new goroutine: the caller is a connection's reader and has
// its own reply to send.
func (r *room) admitJoins() {
	r.flushMu.Lock()
	batch := r.joins.next()
	if len(batch) == 0 {
		r.flushMu.Unlock()
		return
	}
	r.admitBatch(batch)
	r.flushMu.Unlock()
	go r.admitJoins()
}

// admitBatch adds the batch's viewers to the room and hands each what it is owed.
// Called with flushMu held.
func (r *room) admitBatch(batch []*joinReq) {
	h := r.hub
	h.chatm.joinBatch.Observe(float64(len(batch)))

	now := time.Now()
	admitted := batch[:0:0]
	for _, q := range batch {
		if !q.o.Deadline.IsZero() && now.After(q.o.Deadline) {
			h.chatm.joinsLate.Inc()
			q.finish(ErrJoinLate)
			continue
		}
		admitted = append(admitted, q)
	}
	if len(admitted) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.SubscribeTimeout)
	defer cancel()
	if err := r.load(ctx); err != nil {
		for _, q := range admitted {
			q.finish(err)
		}
		return
	}

	ok := admitted[:0]
	cjs := make([]ChatJoin, 0, len(admitted))
	for _, q := range admitted {
		cj, err := r.addViewer(ctx, q)
		if err != nil {
			q.finish(err)
			continue
		}
		ok = append(ok, q)
		cjs = append(cjs, cj)
	}
	for _, q := range ok {
		r.noteUser(q.o.User)
	}
	snap := r.snapshot() // shared: a joining viewer only reads it
	slow := h.mod.slowMode(r.name)
	for i, q := range ok {
		cjs[i].SlowMode = slow
		cjs[i].State = snap
		q.o.Joined(cjs[i])
		q.finish(nil)
	}
}

// load reads from JetStream what the room keeps in memory, the first time. Called with
// flushMu held.
func (r *room) load(ctx context.Context) error {
	if !r.chat.loaded {
		if err := r.loadChat(ctx); err != nil {
			return err
		}
	}
	if !r.state.loaded {
		if err := r.loadState(ctx); err != nil {
			return err
		}
	}
	if !r.stock.loaded {
		r.loadStock(ctx)
	}
	return nil
}

// addViewer adds q's sink to the room and computes its chat. On error the sink is
// removed again (if this join added it). Called with flushMu held.
func (r *room) addViewer(ctx context.Context, q *joinReq) (ChatJoin, error) {
	h := r.hub
	added := r.addSink(q.s)
	drop := func() {
		if added {
			r.removeSink(q.s)
		}
	}
	r.chat.addUser(q.s, q.o.User)
	// Checked after the user is registered: a ban stored meanwhile either is seen here or
	// finds the user when it kicks (moderation.go).
	if q.o.User != "" && h.mod.banned(r.name, q.o.User) {
		drop()
		return ChatJoin{}, ErrBanned
	}
	cj, err := r.chatJoin(ctx, q.o)
	if err != nil {
		drop()
		return ChatJoin{}, err
	}
	q.kept = added
	return cj, nil
}

func (q *joinReq) finish(err error) {
	q.err = err
	close(q.done)
}
