package gateway

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/coder/websocket"
)

// writeLoop drains the queue to the socket. It is the only goroutine that writes data
// frames; it also sends pings and, when the connection is closing, the close frame.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	ping := time.NewTimer(c.jitteredPing())
	defer ping.Stop()
	for {
		select {
		case <-c.closing:
			c.sendClose()
			return
		case <-c.q.notify:
			if !c.flush() {
				return
			}
		case <-ping.C:
			if !c.ping() {
				return
			}
			ping.Reset(c.jitteredPing())
		}
	}
}

// flush writes everything queued. It returns false when the connection is over.
func (c *conn) flush() bool {
	items := c.q.take()
	defer c.q.giveBack(items)
	m := c.g.metrics
	for _, f := range items {
		c.writeStart.Store(time.Now().UnixNano())
		// No per-write context: a write that does not finish is ended by the watchdog
		// (CloseNow), which spares every write a context registration.
		err := c.ws.Write(context.Background(), websocket.MessageText, f.Data)
		c.writeStart.Store(0)
		if err != nil {
			c.closeNow(closeGone, "")
			return false
		}
		m.framesOut.Inc()
		m.bytesOut.Add(float64(len(f.Data)))
		if f.Events > 0 {
			m.eventsOut.Add(float64(f.Events))
		}
		if !f.Received.IsZero() {
			m.deliverLag.Observe(time.Since(f.Received).Seconds())
		}
	}
	return true
}

func (c *conn) ping() bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.g.cfg.WriteTimeout)
	defer cancel()
	c.writeStart.Store(time.Now().UnixNano())
	err := c.ws.Ping(ctx)
	c.writeStart.Store(0)
	if err != nil {
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
	c.writeStart.Store(time.Now().UnixNano())
	_ = c.ws.Close(c.closeCode, c.closeReason)
	c.writeStart.Store(0)
}

// jitteredPing spreads pings over ±1/6 of the interval so that connections accepted
// together do not ping together.
func (c *conn) jitteredPing() time.Duration {
	d := c.g.cfg.PingInterval
	return d - d/6 + rand.N(d/3+1)
}
