package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/internal/embednats"
)

var testSecret = []byte("test-secret")

// testGateway is a gateway on a real NATS server, served over a real HTTP listener.
type testGateway struct {
	gw  *Gateway
	srv *httptest.Server
	reg *prometheus.Registry
	url string
}

func startNATS(t testing.TB) *server.Server { return embednats.Test(t) }

func startGateway(t testing.TB, ns *server.Server, cfg Config) *testGateway {
	t.Helper()
	tg, _ := startGatewayNATS(t, ns, cfg)
	return tg
}

// startGatewayNATS starts a gateway on its own NATS connection, made with opts.
func startGatewayNATS(t testing.TB, ns *server.Server, cfg Config, opts ...nats.Option) (*testGateway, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	reg := prometheus.NewRegistry()
	gw, err := New(cfg, nc, reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler())
	tg := &testGateway{gw: gw, srv: srv, reg: reg, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if !tg.gw.draining.Load() {
			_ = tg.gw.Shutdown(ctx)
		}
		srv.Close()
		nc.Close()
	})
	return tg, nc
}

// counter reads a counter's value from the gateway's registry.
func (tg *testGateway) counter(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := tg.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m.GetLabel(), labels) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func matchLabels[L interface {
	GetName() string
	GetValue() string
}](have []L, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		found := false
		for _, l := range have {
			if l.GetName() == want[i] && l.GetValue() == want[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func mintToken(t testing.TB, user string, role auth.Role, rooms []string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(testSecret, auth.Claims{UserID: user, Name: "name-" + user, Role: role, Rooms: rooms, Expires: time.Now().Add(ttl)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// client is a test WebSocket client that speaks the protocol.
type client struct {
	t      testing.TB
	ws     *websocket.Conn
	nextID atomic.Int64
	frames chan frame
	closed chan error // the read error that ended the client
	held   []frame    // event frames seen while waiting for replies
}

type frame struct {
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *cmdError       `json:"error"`
	Room   string          `json:"room"`
	Events []chatEvent     `json:"events"`
}

type chatEvent struct {
	Type string `json:"type"`
	Seq  uint64 `json:"seq"`
	TS   int64  `json:"ts"`
	User struct {
		ID, Name, Role string
	} `json:"user"`
	Text string `json:"text"`
	CID  string `json:"cid"`
	// other events: delete (Line), reset (Lines), slow_mode (Seconds)
	Line    uint64      `json:"line"`
	Lines   []chatEvent `json:"lines"`
	Seconds int         `json:"seconds"`
}

func dial(t testing.TB, url string) *client {
	t.Helper()
	return dialWith(t, url, nil, true)
}

// dialWith dials with an optional HTTP client; read=false leaves the socket unread
// (a viewer that stopped reading).
func dialWith(t testing.TB, url string, hc *http.Client, read bool) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 22)
	c := &client{t: t, ws: ws, frames: make(chan frame, 4096), closed: make(chan error, 1)}
	if read {
		go c.readLoop()
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return c
}

// tinyBufferClient has a 4 KiB socket receive buffer, so that a server writing to it
// blocks soon after it stops reading.
func tinyBufferClient() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func (c *client) readLoop() {
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.closed <- err
			close(c.frames)
			return
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.closed <- fmt.Errorf("bad frame %q: %w", data, err)
			close(c.frames)
			return
		}
		c.frames <- f
	}
}

func (c *client) sendRaw(data string) {
	c.t.Helper()
	if err := c.ws.Write(context.Background(), websocket.MessageText, []byte(data)); err != nil {
		c.t.Fatal(err)
	}
}

// send sends a command and returns its id.
func (c *client) send(cmd map[string]any) string {
	c.t.Helper()
	id := fmt.Sprint(c.nextID.Add(1))
	cmd["id"] = id
	b, _ := json.Marshal(cmd)
	c.sendRaw(string(b))
	return id
}

// call sends a command and waits for its reply.
func (c *client) call(cmd map[string]any) frame {
	c.t.Helper()
	return c.waitReply(c.send(cmd))
}

// waitReply waits for the reply to id. Event frames that arrive meanwhile are kept for
// chatLines.
func (c *client) waitReply(id string) frame {
	c.t.Helper()
	for {
		f, ok := c.next()
		if !ok {
			c.t.Fatalf("no reply to %s: %v", id, c.closeErr())
		}
		if f.Type == "reply" && f.ID == id {
			return f
		}
		if f.Type == "events" {
			c.held = append(c.held, f)
		}
	}
}

// chatLines returns the next n chat events, failing the test if they do not come.
func (c *client) chatLines(n int) []chatEvent {
	c.t.Helper()
	var out []chatEvent
	for len(out) < n {
		var f frame
		if len(c.held) > 0 {
			f, c.held = c.held[0], c.held[1:]
		} else {
			var ok bool
			if f, ok = c.next(); !ok {
				c.t.Fatalf("got %d of %d chat lines: %v", len(out), n, c.closeErr())
			}
		}
		for _, ev := range f.Events {
			if ev.Type == "chat" {
				out = append(out, ev)
			}
		}
	}
	if len(out) > n {
		c.t.Fatalf("got %d chat lines, want %d", len(out), n)
	}
	return out
}

// next returns the next frame, or false when the connection ended or 10 s passed.
func (c *client) next() (frame, bool) {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case f, ok := <-c.frames:
		return f, ok
	case <-t.C:
		return frame{}, false
	}
}

// closeErr waits for the connection to end and returns why.
func (c *client) closeErr() error {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case err := <-c.closed:
			c.closed <- err
			return err
		case _, ok := <-c.frames:
			if !ok {
				continue
			}
		case <-t.C:
			return fmt.Errorf("connection still open")
		}
	}
}

// closeCode waits for the connection to end and returns the close code received.
func (c *client) closeCode() websocket.StatusCode {
	return websocket.CloseStatus(c.closeErr())
}

func (c *client) join(room, token string) frame {
	c.t.Helper()
	cmd := map[string]any{"cmd": "join", "room": room}
	if token != "" {
		cmd["token"] = token
	}
	f := c.call(cmd)
	if f.Error != nil {
		c.t.Fatalf("join %s: %v", room, f.Error)
	}
	return f
}
