package gateway

import (
	"sync"

	"github.com/liveroom/liveroom/fanout"
)

// queue is a connection's outbound queue, bounded in bytes, and the record of whether
// a writer goroutine is running for it. Rooms and the reader push into it; the writer
// takes everything at once. It never blocks a pusher.
//
// There is at most one writer per connection, and only while there is work: a push,
// a due ping or the end of the connection starts one (the caller runs `go
// c.writeLoop()` when told to), and the writer exits once next finds nothing to do. An
// idle viewer is therefore one goroutine, its reader.
type queue struct {
	limit int

	mu     sync.Mutex // guards the fields below
	items  []*fanout.Frame
	spare  []*fanout.Frame // the writer's last batch, returned for reuse
	bytes  int
	closed bool // torn down: pushes are no-ops

	// writer state
	running    bool // a writer goroutine is running; it alone writes to the socket
	pingDue    bool // the ping timer fired; the writer sends a ping
	ending     bool // the connection is to end: no more pushes, the writer sends the close frame
	flushAtEnd bool // when ending, write what is queued before the close frame
	ended      bool // the writer has taken the close job: no writer starts again
}

// pushResult says what a push did beyond queueing the frame.
type pushResult struct {
	droppedOld int  // chat frames dropped, oldest first, to make room
	droppedNew bool // the pushed chat frame itself was dropped (only replies/state queued)
	coalesced  bool // the pushed state frame replaced a queued older one
	overflow   bool // a reply or state frame did not fit: the viewer is too slow
	start      bool // the frame was queued and no writer was running: start one
}

func newQueue(limit int) *queue {
	return &queue{limit: limit}
}

func (q *queue) push(f *fanout.Frame) pushResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.ending {
		return pushResult{}
	}
	return q.pushLocked(f)
}

// pushLocked queues f. A chat frame that also carries state (f.State set) loses only
// its chat when it must be dropped: its state frame takes its place.
func (q *queue) pushLocked(f *fanout.Frame) (res pushResult) {
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
		old := q.items[i]
		q.bytes -= len(old.Data)
		if old.State != nil {
			q.items[i] = old.State
			q.bytes += len(old.State.Data)
		} else {
			q.items = append(q.items[:i], q.items[i+1:]...)
		}
		res.droppedOld++
	}
	if q.bytes+len(f.Data) > q.limit && len(q.items) > 0 {
		if f.Class == fanout.ClassStream {
			if f.State != nil {
				st := q.pushLocked(f.State)
				st.droppedOld += res.droppedOld
				st.droppedNew = true
				return st
			}
			res.droppedNew = true
		} else {
			res.overflow = true
		}
		return res
	}
	q.items = append(q.items, f)
	q.bytes += len(f.Data)
	res.start = q.startLocked()
	return res
}

// startLocked claims the writer role for a new goroutine if none is running.
func (q *queue) startLocked() bool {
	if q.running || q.ended {
		return false
	}
	q.running = true
	return true
}

// wantPing asks the writer for a ping. It reports whether the caller must start one.
func (q *queue) wantPing() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ending {
		return false
	}
	q.pingDue = true
	return q.startLocked()
}

// end asks the writer to close the connection, after writing what is queued if flush
// is set. Later pushes are dropped. It reports whether the caller must start a writer.
func (q *queue) end(flush bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ending, q.flushAtEnd = true, flush
	return q.startLocked()
}

// job is what the writer does next.
type job int

const (
	jobNone  job = iota // nothing to do: the writer exits
	jobFlush            // write the frames next returned
	jobPing             // send a ping
	jobClose            // send the close frame; the writer is the last one

	// jobFinish is never returned by next: a pool worker hands it to the connection's
	// own goroutine with a batch the socket did not take at once (writerpool.go).
	jobFinish
)

// next hands the writer its next job. On jobNone the writer role is released and the
// goroutine must exit; on jobClose it is never given again.
func (q *queue) next() (job, []*fanout.Frame) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.ending && (!q.flushAtEnd || len(q.items) == 0):
		q.ended = true
		return jobClose, nil
	case len(q.items) > 0:
		return jobFlush, q.takeLocked()
	case q.pingDue:
		q.pingDue = false
		return jobPing, nil
	}
	q.running = false
	return jobNone, nil
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
	return q.takeLocked()
}

func (q *queue) takeLocked() []*fanout.Frame {
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
