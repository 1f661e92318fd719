package gateway

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveroom/liveroom/fanout"
)

// pipeResponse is the server side of an upgrade over net.Pipe: a ResponseWriter whose
// Hijack hands over the pipe, as net/http's does the TCP connection.
type pipeResponse struct {
	conn   net.Conn
	br     *bufio.Reader
	header http.Header
	status int
}

func (w *pipeResponse) Header() http.Header         { return w.header }
func (w *pipeResponse) Write(p []byte) (int, error) { return len(p), nil }
func (w *pipeResponse) WriteHeader(status int)      { w.status = status }

func (w *pipeResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	bw := bufio.NewWriter(w.conn)
	resp := http.Response{StatusCode: w.status, ProtoMajor: 1, ProtoMinor: 1, Header: w.header}
	if err := resp.Write(bw); err != nil {
		return nil, nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, nil, err
	}
	return w.conn, bufio.NewReadWriter(w.br, bw), nil
}

// pipeConn serves one connection of g over net.Pipe (no NATS, no room): everything
// it starts, timers included, lives in the caller's synctest bubble, so that
// synctest.Wait says when the connection's goroutines are all parked, and the bubble
// fails the test if one is left behind.
// onPing, if set, runs when the client receives a ping.
func pipeConn(t *testing.T, g *Gateway, onPing func()) (*conn, *websocket.Conn) {
	t.Helper()
	server, client := net.Pipe()
	accepted := make(chan *conn)
	go func() {
		br := bufio.NewReader(server)
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Error(err)
			close(accepted)
			return
		}
		if c := acceptConn(t, g, &pipeResponse{conn: server, br: br, header: http.Header{}}, req, accepted); c != nil {
			c.serve()
		}
	}()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) { return client, nil },
	}}
	opts := &websocket.DialOptions{HTTPClient: hc}
	if onPing != nil {
		opts.OnPingReceived = func(context.Context, []byte) bool { onPing(); return true }
	}
	ws, _, err := websocket.Dial(context.Background(), "ws://pipe/ws", opts)
	if err != nil {
		t.Fatal(err)
	}
	c := <-accepted
	if c == nil {
		t.FailNow()
	}
	return c, ws
}

// acceptConn upgrades req as serveWS does (with the small socket buffers of
// upgrader), hands the connection to accepted and returns it; on failure it closes
// accepted and returns nil.
func acceptConn(t *testing.T, g *Gateway, w http.ResponseWriter, req *http.Request, accepted chan<- *conn) *conn {
	up := &upgrader{ResponseWriter: w}
	ws, err := websocket.Accept(up, req, nil)
	if err != nil {
		t.Error(err)
		close(accepted)
		return nil
	}
	c := newConn(g, ws, up.out)
	if !g.track(c) {
		t.Error("gateway not tracking")
	}
	accepted <- c
	return c
}

// pipeGateway is the part of a Gateway a connection uses when it joins no room.
func pipeGateway() *Gateway {
	return &Gateway{
		cfg:     Config{Secret: testSecret}.withDefaults(),
		metrics: newMetrics(prometheus.NewRegistry(), nil),
		conns:   make(map[*conn]struct{}),
	}
}

// goroutinesIn counts the goroutines whose stack holds fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), fn+"(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

const writerFn = "gateway.(*conn).writeLoop"

// An idle connection is one goroutine, its reader: a writer runs for a burst of
// frames or a ping and is gone once they are written. The writer that sends the close
// frame is waited for, and nothing is left behind (synctest fails on a leak).
func TestWriterRunsOnlyWhileThereIsWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pipeGateway()
		var pings atomic.Int32
		c, client := pipeConn(t, g, func() { pings.Add(1) })

		synctest.Wait()
		if n := goroutinesIn(writerFn); n != 0 {
			t.Fatalf("idle connection: %d writer goroutines, want 0", n)
		}
		if n := goroutinesIn("gateway.(*conn).serve"); n != 1 {
			t.Fatalf("idle connection: %d reader goroutines, want 1", n)
		}

		// A burst: one writer writes it all, in order, then exits.
		for _, s := range []string{"a", "b", "c"} {
			c.Deliver(&fanout.Frame{Data: []byte(s), Class: fanout.ClassStream})
		}
		for _, want := range []string{"a", "b", "c"} {
			_, got, err := client.Read(context.Background())
			if err != nil || string(got) != want {
				t.Fatalf("read %q, %v; want %q", got, err, want)
			}
		}
		synctest.Wait()
		if n := goroutinesIn(writerFn); n != 0 {
			t.Fatalf("after a burst: %d writer goroutines, want 0", n)
		}

		// A ping: the client must be reading to answer it.
		reads := make(chan error, 1)
		go func() {
			_, _, err := client.Read(context.Background())
			reads <- err
		}()
		time.Sleep(g.cfg.PingInterval * 4 / 3) // fake time: the jittered ping is due
		synctest.Wait()
		if pings.Load() != 1 {
			t.Fatalf("client saw %d pings, want 1", pings.Load())
		}
		if n := goroutinesIn(writerFn); n != 0 {
			t.Fatalf("after a ping: %d writer goroutines, want 0", n)
		}
		select {
		case <-c.closing:
			t.Fatal("connection closed by its ping")
		default:
		}

		// The close: a writer sends the close frame, the reader ends, teardown waits.
		c.closeWith(CloseRestart, "server restart")
		if err := <-reads; websocket.CloseStatus(err) != CloseRestart {
			t.Fatalf("client read %v, want close %v", err, CloseRestart)
		}
		g.wg.Wait()
		_ = client.CloseNow()
	})
}

// A writer stuck on a socket nobody reads is ended by the watchdog, and the viewer
// is closed as too slow; the writer goroutine is not left behind.
func TestWatchdogEndsStuckWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := pipeGateway()
		g.stop = make(chan struct{})
		g.bg.Add(1)
		go g.watchdog()
		c, client := pipeConn(t, g, nil)

		// net.Pipe has no buffer: with the client not reading, the first write blocks.
		c.Deliver(&fanout.Frame{Data: []byte("stuck"), Class: fanout.ClassStream})
		synctest.Wait()
		if n := goroutinesIn(writerFn); n != 1 {
			t.Fatalf("%d writer goroutines while a write is stuck, want 1", n)
		}
		time.Sleep(g.cfg.WriteTimeout * 5 / 4) // fake time: the watchdog's next tick
		g.wg.Wait()
		if c.closeCode != CloseTooSlow {
			t.Fatalf("closed with %v, want %v", c.closeCode, CloseTooSlow)
		}
		if n := goroutinesIn(writerFn); n != 0 {
			t.Fatalf("%d writer goroutines after the watchdog, want 0", n)
		}
		close(g.stop)
		g.bg.Wait()
		if _, _, err := client.Read(context.Background()); err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("client read %v after the watchdog, want the connection gone", err)
		}
	})
}

// The queue hands the writer role to one goroutine at a time, for as long as there is
// work, and never again once the close frame is taken.
func TestQueueWriterHandOff(t *testing.T) {
	f := func(s string) *fanout.Frame { return &fanout.Frame{Data: []byte(s), Class: fanout.ClassStream} }
	q := newQueue(1 << 10)
	if !q.push(f("a")).start {
		t.Fatal("first push did not start a writer")
	}
	if q.push(f("b")).start || q.wantPing() {
		t.Fatal("a second writer was started while one runs")
	}
	if j, items := q.next(); j != jobFlush || len(items) != 2 {
		t.Fatalf("next = %v with %d frames, want a flush of 2", j, len(items))
	}
	if j, _ := q.next(); j != jobPing {
		t.Fatalf("next = %v, want the ping", j)
	}
	if j, _ := q.next(); j != jobNone {
		t.Fatalf("next = %v, want none: the writer exits", j)
	}
	if !q.wantPing() {
		t.Fatal("a due ping on an idle queue did not start a writer")
	}
	q.next() // the ping
	q.next() // none
	q.push(f("c"))
	if q.end(true) {
		t.Fatal("end started a second writer")
	}
	if q.push(f("d")).start {
		t.Fatal("a push after end started a writer")
	}
	if j, items := q.next(); j != jobFlush || len(items) != 1 {
		t.Fatalf("next = %v with %d frames, want the frame queued before end", j, len(items))
	}
	if j, _ := q.next(); j != jobClose {
		t.Fatalf("next = %v, want the close", j)
	}
	if q.push(f("e")).start || q.wantPing() || q.end(false) {
		t.Fatal("a writer was started after the close")
	}

	// Too slow or gone: the close goes first, what is queued is dropped.
	q = newQueue(1 << 10)
	q.push(f("a"))
	q.end(false)
	if j, _ := q.next(); j != jobClose {
		t.Fatalf("next = %v, want the close before the queued frame", j)
	}
}
