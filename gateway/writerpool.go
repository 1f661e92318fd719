package gateway

import (
	"runtime"
	"sync"

	"github.com/liveroom/liveroom/fanout"
)

// writerPool writes the rooms' frames to the sockets with a few goroutines.
//
// A room's tick hands a frame to every viewer at once. With a writer goroutine per
// connection that was 11,000 goroutines started per tick per room, each with its
// stack and its batch buffer alive until the scheduler got to it: on a saturated box
// a third of a viewer's memory, and a good share of the CPU was the scheduler's. The
// pool instead keeps a FIFO of connections with frames queued, and its workers write
// each one's batch with one non-blocking socket write (socketWriter.tryEnd).
//
// A worker never waits on a viewer. Whatever could block is handed to a goroutine of
// the connection's own (writeFrom), which then holds the writer role until its queue
// is empty: the rest of a batch the socket did not take (a slow viewer), a socket
// busy with another write, a ping (it waits for its pong) and the close frame. The
// watchdog ends those as before. Sockets that are not plain file descriptors (TLS, or
// the pipes of unit tests) are always written that way.
type writerPool struct {
	handoffs func() // counts a batch handed to a connection's own goroutine

	mu      sync.Mutex // guards the fields below
	cond    sync.Cond  // signalled when ready grows and a worker is idle
	ready   []*conn    // FIFO of connections whose writer role the pool holds
	head    int        // ready[head:] are waiting
	idle    int        // workers waiting on cond
	stopped bool
	wg      sync.WaitGroup
}

// maxTake is the most connections a worker takes at once: enough to make the lock
// cheap, few enough that the other workers get a share of a tick.
const maxTake = 32

// maxRounds is how many jobs a worker does for one connection before putting it at
// the back of the FIFO.
const maxRounds = 4

func newWriterPool(workers int, handoffs func()) *writerPool {
	p := &writerPool{handoffs: handoffs}
	p.cond.L = &p.mu
	p.wg.Add(workers)
	for range workers {
		go p.work()
	}
	return p
}

// schedule queues c, whose writer role the caller has claimed (a push that said
// start).
func (p *writerPool) schedule(c *conn) {
	c.queued.Store(true)
	p.mu.Lock()
	p.ready = append(p.ready, c)
	if p.idle > 0 {
		p.cond.Signal()
	}
	p.mu.Unlock()
}

// stop ends the workers once the FIFO is empty and waits for them. Called after
// every connection has ended.
func (p *writerPool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *writerPool) work() {
	defer p.wg.Done()
	var batch []*conn
	for {
		batch = p.take(batch[:0])
		if batch == nil {
			return
		}
		for i, c := range batch {
			// A reply may have taken c out of the FIFO meanwhile: skip the entry.
			if c.claimQueued() && c.writeSome() {
				p.schedule(c)
			}
			batch[i] = nil
		}
		// Let the rest of the gateway run between takes: through a tick's fan-out
		// the workers would otherwise hold the Ps until preempted (10 ms), and the
		// goroutines woken meanwhile (the NATS reader with JetStream's acks, viewers'
		// readers with presses and joins) wait for them.
		runtime.Gosched()
	}
}

// take waits for connections and moves up to maxTake of them into buf. It returns nil
// once the pool is stopped and empty.
func (p *writerPool) take(buf []*conn) []*conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.head == len(p.ready) {
		if p.stopped {
			return nil
		}
		p.idle++
		p.cond.Wait()
		p.idle--
	}
	n := min(maxTake, len(p.ready)-p.head)
	buf = append(buf, p.ready[p.head:p.head+n]...)
	clear(p.ready[p.head : p.head+n])
	p.head += n
	if p.head == len(p.ready) {
		p.ready, p.head = p.ready[:0], 0
	} else if p.head > 4096 && p.head > len(p.ready)/2 {
		p.ready = p.ready[:copy(p.ready, p.ready[p.head:])]
		p.head = 0
	}
	return buf
}

// claimQueued takes c's writer role from the pool's FIFO, where c waits to be
// written, for the caller (a worker, or a goroutine with a reply) to write now; false
// if c is not waiting there (not queued, or someone else took it).
func (c *conn) claimQueued() bool {
	return c.queued.CompareAndSwap(true, false)
}

// writeSome does c's writer jobs without blocking, on a pool worker or on the
// goroutine that answers with a reply, until its queue is empty, or hands the role to
// a goroutine of c's own for a job that could block. It reports whether
// c still has work and must go to the back of the FIFO.
func (c *conn) writeSome() bool {
	for range maxRounds {
		j, items := c.q.next()
		switch j {
		case jobNone:
			return false
		case jobFlush:
			if !c.flushNow(items) {
				return false
			}
		default: // a ping or the close frame
			go c.writeFrom(j, items)
			return false
		}
	}
	return true
}

// flushNow writes items without blocking. It reports false when the batch, or what
// the socket did not take of it, was handed to a goroutine of c's own.
func (c *conn) flushNow(items []*fanout.Frame) bool {
	if !c.out.tryBegin() {
		// Another write holds the socket (the reader answering a ping to a viewer
		// that does not read): wait for it elsewhere.
		go c.writeFrom(jobFlush, items)
		c.g.writers.handoffs()
		return false
	}
	if err := c.writeFrames(items); err != nil {
		c.out.drop()
		c.wrote(items, err)
		return true
	}
	done, err := c.out.tryEnd()
	if !done {
		go c.writeFrom(jobFinish, items)
		c.g.writers.handoffs()
		return false
	}
	c.wrote(items, err)
	return true
}
