package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/liveroom/liveroom/fanout"
)

// tcpConn is pipeConn over a real TCP socket on loopback: a connection the writer pool
// writes. hc dials it (nil: the default client).
func tcpConn(t *testing.T, g *Gateway, hc *http.Client) (*conn, *websocket.Conn) {
	t.Helper()
	accepted := make(chan *conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := acceptConn(t, g, w, r, accepted); c != nil {
			go c.serve()
		}
	}))
	t.Cleanup(srv.Close)
	ws, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	c := <-accepted
	if c == nil {
		t.FailNow()
	}
	if c.out.raw == nil {
		t.Fatal("a TCP connection has no raw socket: the pool would never write it")
	}
	ws.SetReadLimit(32 << 20)
	return c, ws
}

// handoffGoroutines counts the goroutines flushNow started: running writeFrom, or not
// yet running (then the dump shows only the wrapper of the go statement).
func handoffGoroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "gateway.(*conn).writeFrom(") || strings.Contains(g, "gateway.(*conn).flushNow.gowrap") {
			n++
		}
	}
	return n
}

func readText(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	_, b, err := ws.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The rooms' frames are written by the pool, not by a goroutine per connection, and
// replies by the goroutine that answers; a viewer whose socket is full has its batch handed to a goroutine of its own, and the
// pool goes on writing the others.
func TestWriterPoolWritesAndHandsOffFullSockets(t *testing.T) {
	g := pipeGateway()
	g.cfg.QueueBytes = 64 << 20 // room for a frame larger than a socket buffer
	handedOff := make(chan struct{}, 1)
	g.writers = newWriterPool(0, func() { handedOff <- struct{}{} }) // workers added below
	stuck, stuckClient := tcpConn(t, g, tinyBufferClient())
	other, otherClient := tcpConn(t, g, nil)

	// With no worker, a delivered frame waits in the pool's FIFO: the pool, not a
	// goroutine of the connection, is what writes it.
	other.Deliver(&fanout.Frame{Data: []byte("first"), Class: fanout.ClassStream})
	other.Deliver(&fanout.Frame{Data: []byte("second"), Class: fanout.ClassStream})
	g.writers.mu.Lock()
	waiting := len(g.writers.ready) - g.writers.head
	g.writers.mu.Unlock()
	if waiting != 1 {
		t.Fatalf("%d connections in the pool's FIFO, want 1", waiting)
	}
	if n := goroutinesIn(writerFn); n != 0 {
		t.Fatalf("%d connection writer goroutines, want 0", n)
	}
	// A reply does not wait there: the goroutine that answers takes the connection
	// out of the FIFO and writes everything queued, in order, itself.
	other.Deliver(&fanout.Frame{Data: []byte("reply"), Class: fanout.ClassReply})
	for _, want := range []string{"first", "second", "reply"} {
		if got := readText(t, otherClient); got != want {
			t.Fatalf("read %q, want %q", got, want)
		}
	}
	// The FIFO's stale entry is skipped once a worker runs: nothing is written twice.
	g.writers.wg.Add(1)
	go g.writers.work()
	other.Deliver(&fanout.Frame{Data: []byte("third"), Class: fanout.ClassStream})
	if got := readText(t, otherClient); got != "third" {
		t.Fatalf("read %q, want %q", got, "third")
	}
	select {
	case <-handedOff:
		t.Fatal("a batch to a reading viewer was handed off")
	default:
	}

	// A viewer that does not read: its socket fills, and the batch the socket did
	// not take goes to a goroutine of its own (still writing, blocked).
	// 16 MB is more than a socket's send buffer takes.
	big := strings.Repeat("x", 16<<20)
	stuck.Deliver(&fanout.Frame{Data: []byte(big), Class: fanout.ClassStream})
	select {
	case <-handedOff:
	case <-time.After(time.Minute): // a guard, not a timing: the worker is stuck writing
		t.Fatal("a batch larger than the socket takes was not handed off")
	}
	if n := handoffGoroutines(); n != 1 {
		t.Fatalf("%d connection writer goroutines for the stuck viewer, want 1", n)
	}
	for i := range 3 {
		want := fmt.Sprint("while stuck ", i)
		other.Deliver(&fanout.Frame{Data: []byte(want), Class: fanout.ClassStream})
		if got := readText(t, otherClient); got != want {
			t.Fatalf("read %q, want %q", got, want)
		}
	}

	// The stuck viewer reads again: it gets its frames, whole and in order.
	stuck.Deliver(&fanout.Frame{Data: []byte("last"), Class: fanout.ClassStream})
	if got := readText(t, stuckClient); got != big {
		t.Fatalf("stuck viewer read %d bytes, want the %d of its big frame", len(got), len(big))
	}
	if got := readText(t, stuckClient); got != "last" {
		t.Fatalf("stuck viewer read %.20q, want the last frame", got)
	}

	stuck.closeWith(CloseRestart, "server restart")
	other.closeWith(CloseRestart, "server restart")
	for _, ws := range []*websocket.Conn{stuckClient, otherClient} {
		if _, _, err := ws.Read(context.Background()); websocket.CloseStatus(err) != CloseRestart {
			t.Fatalf("client read %v, want close %v", err, CloseRestart)
		}
	}
	g.wg.Wait()
	g.writers.stop() // returns once its worker has
}
