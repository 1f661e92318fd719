package gateway

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

// conn is one client connection: a reader goroutine (serve) and a writer goroutine
// (writeLoop) that end together.
type conn struct {
	// set in newConn
	g          *Gateway
	ws         *websocket.Conn
	ctx        context.Context
	cancel     context.CancelFunc
	q          *queue
	closing    chan struct{} // closed once the connection is to end
	writerDone chan struct{}
	idle       *time.Timer
	authExpiry *time.Timer

	closeOnce   sync.Once
	closeCode   websocket.StatusCode // set in closeOnce; read after closing is closed
	closeReason string

	// writeStart is the unix nano time the write in progress began, 0 between writes.
	// Set by the writer, read by the watchdog.
	writeStart atomic.Int64

	// owned by the reader goroutine
	claims       *auth.Claims // nil until a join presented a token
	you          fanout.User
	rooms        map[string]struct{}
	limiter      *rate.Limiter
	cheerLimiter *rate.Limiter // statecmds.go
	policyErrors int
}

func newConn(g *Gateway, ws *websocket.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		g:          g,
		ws:         ws,
		ctx:        ctx,
		cancel:     cancel,
		q:          newQueue(g.cfg.QueueBytes),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		rooms:      make(map[string]struct{}),
	}
	c.idle = time.AfterFunc(g.cfg.IdleTimeout, func() { c.closeWith(CloseIdle, "idle") })
	return c
}

// Deliver queues a room frame. It never blocks (fanout.Sink).
func (c *conn) Deliver(f *fanout.Frame) {
	res := c.q.push(f)
	m := c.g.metrics
	if res.droppedOld > 0 {
		m.dropChatOld.Add(float64(res.droppedOld))
	}
	if res.droppedNew {
		m.dropChatNew.Inc()
	}
	if res.coalesced {
		m.dropCoalesced.Inc()
	}
	if res.overflow {
		c.closeWith(CloseTooSlow, "too slow")
	}
}

// closeWith ends the connection with code. The first call wins; the writer sends the
// close frame, which ends the reader too.
func (c *conn) closeWith(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		close(c.closing)
	})
}

// closeNow ends the connection without a close handshake, for a peer that is not
// reading (a stuck write).
func (c *conn) closeNow(code websocket.StatusCode, reason string) {
	c.closeWith(code, reason)
	_ = c.ws.CloseNow()
}

// serve runs the reader until the connection ends, then tears it down.
func (c *conn) serve() {
	go c.writeLoop()
	err := c.readLoop()
	if code := websocket.CloseStatus(err); code != -1 {
		c.closeWith(code, "peer closed")
	} else {
		c.closeWith(closeGone, "")
	}
	c.teardown()
}

func (c *conn) readLoop() error {
	for {
		typ, r, err := c.ws.Reader(c.ctx)
		if err != nil {
			return err
		}
		c.idle.Reset(c.g.cfg.IdleTimeout)
		if typ != websocket.MessageText {
			c.closeWith(ClosePolicy, "binary frames are not part of the protocol")
			return nil
		}
		data, err := io.ReadAll(io.LimitReader(r, int64(c.g.cfg.MaxFrameBytes)+1))
		if err != nil {
			return err
		}
		if len(data) > c.g.cfg.MaxFrameBytes {
			c.closeWith(CloseTooBig, "frame too big")
			return nil
		}
		c.handle(data)
		select {
		case <-c.closing:
			return nil
		default:
		}
	}
}

// teardown leaves the rooms, waits for the writer, and closes the socket.
func (c *conn) teardown() {
	for room := range c.rooms {
		c.g.hub.Leave(room, c)
	}
	c.q.close()
	c.idle.Stop()
	if c.authExpiry != nil {
		c.authExpiry.Stop()
	}
	<-c.writerDone
	c.cancel()
	_ = c.ws.CloseNow()
	c.g.metrics.disconnect(c.closeCode)
	c.g.metrics.connections.Dec()
	c.g.untrack(c)
}

// send queues a reply. A reply that does not fit closes the connection as too slow.
func (c *conn) send(data []byte) {
	c.Deliver(&fanout.Frame{Data: data, Class: fanout.ClassReply})
}
