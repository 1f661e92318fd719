package gateway

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/coder/websocket"

	"github.com/liveroom/liveroom/fanout"
)

// writeLoop is a connection's own writer goroutine: it writes data frames, pings and
// the close frame. It is started on demand (a due ping, the end of the connection,
// or a push to an empty queue when the gateway has no writer pool; see queue) and
// exits as soon as the queue has nothing more for it, so an idle viewer has no
// writer. At most one writer, this goroutine or the pool (writerpool.go), runs at a
// time.
func (c *conn) writeLoop() { c.writeFrom(jobNone, nil) }

// writeFrom is writeLoop starting with job j (jobNone: none), which a pool worker took
// from the queue but could not do without blocking.
func (c *conn) writeFrom(j job, items []*fanout.Frame) {
	for {
		if j == jobNone {
			if j, items = c.q.next(); j == jobNone {
				return
			}
		}
		switch j {
		case jobClose:
			c.sendClose()
			close(c.writerDone)
			return
		case jobFlush:
			c.flush(items)
		case jobFinish:
			c.wrote(items, c.out.end())
		case jobPing:
			if c.ping() {
				c.pinger.Reset(c.jitteredPing())
			}
		}
		j, items = jobNone, nil
	}
}

// flush writes a batch of frames with one socket write (socketWriter) and hands the
// slice back to the queue. A failed write closes the connection.
func (c *conn) flush(items []*fanout.Frame) {
	c.out.begin()
	err := c.writeFrames(items)
	if endErr := c.out.end(); err == nil {
		err = endErr
	}
	c.wrote(items, err)
}

// writeFrames writes items into the batch begun on c.out.
func (c *conn) writeFrames(items []*fanout.Frame) error {
	for _, f := range items {
		// No per-write context: a socket write that does not finish is ended by the
		// watchdog (CloseNow), which spares every write a context registration.
		if err := c.ws.Write(context.Background(), websocket.MessageText, f.Data); err != nil {
			return err
		}
	}
	return nil
}

// wrote ends the write of items: it counts them, or closes the connection if err is
// set, and hands the slice back to the queue.
func (c *conn) wrote(items []*fanout.Frame, err error) {
	defer c.q.giveBack(items)
	if err != nil {
		c.closeNow(closeGone, "")
		return
	}
	m := c.g.metrics
	for _, f := range items {
		m.framesOut.Inc()
		m.bytesOut.Add(float64(len(f.Data)))
		if f.Events > 0 {
			m.eventsOut.Add(float64(f.Events))
		}
		if !f.Received.IsZero() {
			m.deliverLag.Observe(time.Since(f.Received).Seconds())
		}
	}
}

// ping sends a ping and waits up to WriteTimeout for its pong. It reports whether the
// pong came; if not, the connection is closed.
func (c *conn) ping() bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.g.cfg.WriteTimeout)
	defer cancel()
	if err := c.ws.Ping(ctx); err != nil {
		c.closeNow(CloseIdle, "no pong")
		return false
	}
	return true
}

func (c *conn) sendClose() {
	if c.closeCode == closeGone {
		_ = c.ws.CloseNow()
		return
	}
	_ = c.ws.Close(c.closeCode, c.closeReason)
}

// jitteredPing spreads pings over ±1/6 of the interval so that connections accepted
// together do not ping together.
func (c *conn) jitteredPing() time.Duration {
	d := c.g.cfg.PingInterval
	return d - d/6 + rand.N(d/3+1)
}
