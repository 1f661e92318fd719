package gateway

import (
	"sync"

	"github.com/liveroom/liveroom/fanout"
)

// queue is a connection's outbound queue, bounded in bytes. Rooms and the reader push
// into it; the writer takes everything at once. It never blocks a pusher.
type queue struct {
	notify chan struct{} // capacity 1: "there is something to take"
	limit  int

	mu     sync.Mutex // guards the fields below
	items  []*fanout.Frame
	spare  []*fanout.Frame // the writer's last batch, returned for reuse
	bytes  int
	closed bool
}

// pushResult says what a push did beyond queueing the frame.
type pushResult struct {
	droppedOld int  // chat frames dropped, oldest first, to make room
	droppedNew bool // the pushed chat frame itself was dropped (only replies/state queued)
	coalesced  bool // the pushed state frame replaced a queued older one
	overflow   bool // a reply or state frame did not fit: the viewer is too slow
}

func newQueue(limit int) *queue {
	return &queue{notify: make(chan struct{}, 1), limit: limit}
}

func (q *queue) push(f *fanout.Frame) (res pushResult) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return res
	}
	if f.Class == fanout.ClassState && f.Key != "" {
		for i, old := range q.items {
			if old.Class == fanout.ClassState && old.Key == f.Key {
				q.bytes += len(f.Data) - len(old.Data)
				q.items[i] = f
				res.coalesced = true
				return res
			}
		}
	}
	for q.bytes+len(f.Data) > q.limit && len(q.items) > 0 {
		i := q.oldestStream()
		if i < 0 {
			break
		}
		q.bytes -= len(q.items[i].Data)
		q.items = append(q.items[:i], q.items[i+1:]...)
		res.droppedOld++
	}
	if q.bytes+len(f.Data) > q.limit && len(q.items) > 0 {
		if f.Class == fanout.ClassStream {
			res.droppedNew = true
		} else {
			res.overflow = true
		}
		return res
	}
	q.items = append(q.items, f)
	q.bytes += len(f.Data)
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return res
}

func (q *queue) oldestStream() int {
	for i, f := range q.items {
		if f.Class == fanout.ClassStream {
			return i
		}
	}
	return -1
}

// take returns everything queued, in order. The caller hands the slice back with
// giveBack once it has written it.
func (q *queue) take() []*fanout.Frame {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items, q.spare = q.spare[:0], nil
	q.bytes = 0
	return items
}

func (q *queue) giveBack(items []*fanout.Frame) {
	clear(items)
	q.mu.Lock()
	if q.spare == nil && cap(items) <= 64 {
		q.spare = items[:0]
	}
	q.mu.Unlock()
}

// close drops what is queued and makes later pushes no-ops.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	clear(q.items)
	q.items, q.spare, q.bytes = nil, nil, 0
}
