package gateway

import (
	"context"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

// conn is one client connection: a reader goroutine (serve), and a writer (the
// gateway's writer pool, or a goroutine of its own: writeLoop) that runs only while
// there is something to write (see queue). The
// connection ends when both have: teardown, at the end of the reader, waits for the
// writer that sends the close frame.
type conn struct {
	// set in newConn
	g          *Gateway
	ws         *websocket.Conn
	out        *socketWriter // the socket under ws (socket.go)
	ctx        context.Context
	cancel     context.CancelFunc
	q          *queue
	closing    chan struct{} // closed once the connection is to end
	queued     atomic.Bool   // waiting in the writer pool's FIFO, which holds its writer role
	writerDone chan struct{} // closed by the writer that sent the close frame

	// set in serve, before the reader runs
	idle   *time.Timer // closes the connection when the client has sent nothing for IdleTimeout
	pinger *time.Timer // asks the writer for a ping; the writer re-arms it

	closeOnce   sync.Once
	closeCode   websocket.StatusCode // set in closeOnce; read after closing is closed
	closeReason string

	// owned by the reader goroutine
	authExpiry   *time.Timer
	claims       *auth.Claims // nil until a join presented a token
	you          fanout.User
	rooms        map[string]struct{}
	limiter      *rate.Limiter
	cheerLimiter *rate.Limiter // statecmds.go
	policyErrors int
}

func newConn(g *Gateway, ws *websocket.Conn, out *socketWriter) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		g:          g,
		ws:         ws,
		out:        out,
		ctx:        ctx,
		cancel:     cancel,
		q:          newQueue(g.cfg.QueueBytes),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		rooms:      make(map[string]struct{}),
	}
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
	switch {
	case !res.start && (f.Class != fanout.ClassReply || !c.claimQueued()):
		// A writer has the frame: a running one, or the pool's FIFO.
	case c.g.writers == nil || c.out.raw == nil:
		go c.writeLoop()
	case f.Class == fanout.ClassReply:
		// A reply (to a press, a chat, a join) is written at once by the goroutine
		// that answers, without blocking (writerpool.go), instead of waiting behind a
		// tick's fan-out in the pool's FIFO, even when the connection is waiting there.
		if c.writeSome() {
			c.g.writers.schedule(c)
		}
	default:
		c.g.writers.schedule(c)
	}
}

// pingDue runs on the pinger timer.
func (c *conn) pingDue() {
	if c.q.wantPing() {
		go c.writeLoop()
	}
}

// closeWith ends the connection with code. The first call wins; the writer sends the
// close frame (after what is queued, unless the viewer is too slow or gone), which
// ends the reader too.
func (c *conn) closeWith(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		close(c.closing)
		if c.q.end(code != CloseTooSlow && code != closeGone) {
			go c.writeLoop()
		}
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
	c.idle = time.AfterFunc(c.g.cfg.IdleTimeout, func() { c.closeWith(CloseIdle, "idle") })
	// Armed after the assignment, so that the writer, which re-arms it, sees it set.
	c.pinger = time.AfterFunc(time.Duration(math.MaxInt64), c.pingDue)
	c.pinger.Reset(c.jitteredPing())
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
		// No context: the read ends when the socket is closed (by the close
		// handshake, CloseNow or teardown), which spares every read a context
		// registration held while the viewer is idle.
		typ, r, err := c.ws.Reader(context.Background())
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
		c.handleAside(data)
		select {
		case <-c.closing:
			return nil
		default:
		}
	}
}

// handleAside runs a command on a goroutine of its own and waits for it. The reader
// spends its life parked in a read, which needs a small stack; a command (JSON, the
// token check, a room join and its snapshot) needs several times more. Run on the
// reader, that growth would stay with every idle viewer until a garbage collection
// shrinks it; run aside, it goes away with the goroutine. Commands still run one at a
// time, in order, owned by the reader while they run.
func (c *conn) handleAside(data []byte) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.handle(data)
	}()
	<-done
}

// teardown leaves the rooms, waits for the writer that sends the close frame (a
// closeWith has started it), and closes the socket.
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
	c.pinger.Stop() // no writer runs any more to re-arm it
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
