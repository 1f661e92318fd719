package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// stateClient is a test client that keeps the raw frames, for the room-state tests
// (cheers, pins, online counts).
type stateClient struct {
	t      testing.TB
	ws     *websocket.Conn
	nextID atomic.Int64
	frames chan rawFrame
	held   []rawFrame
}

type rawFrame struct {
	Type   string            `json:"type"`
	ID     string            `json:"id"`
	Result json.RawMessage   `json:"result"`
	Error  *cmdError         `json:"error"`
	Events []json.RawMessage `json:"events"`
	closed error             // set on the last frame: the read error
}

type stateEvent struct {
	Type    string          `json:"type"`
	Total   int64           `json:"total"`
	Version uint64          `json:"version"`
	Product json.RawMessage `json:"product"`
	Online  int             `json:"online"`
	Unique  uint64          `json:"unique"`
}

func dialState(t testing.TB, url string) (*stateClient, error) {
	return dialStateWith(t, url, nil, true)
}

// dialStateWith dials with an optional HTTP client; read=false leaves the socket unread
// until startReading.
func dialStateWith(t testing.TB, url string, hc *http.Client, read bool) (*stateClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 22)
	c := &stateClient{t: t, ws: ws, frames: make(chan rawFrame, 1<<14)}
	if read {
		c.startReading()
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return c, nil
}

func (c *stateClient) startReading() {
	ws := c.ws
	go func() {
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				c.frames <- rawFrame{Type: "closed", closed: err}
				close(c.frames)
				return
			}
			var f rawFrame
			if err := json.Unmarshal(data, &f); err != nil {
				c.frames <- rawFrame{Type: "closed", closed: fmt.Errorf("bad frame %q", data)}
				close(c.frames)
				return
			}
			c.frames <- f
		}
	}()
}

func mustDialState(t testing.TB, url string) *stateClient {
	t.Helper()
	c, err := dialState(t, url)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// call sends cmd and waits for its reply; an error if the connection ended first.
func (c *stateClient) call(cmd map[string]any) (rawFrame, error) {
	id := fmt.Sprint(c.nextID.Add(1))
	cmd["id"] = id
	b, _ := json.Marshal(cmd)
	if err := c.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		return rawFrame{}, err
	}
	for {
		f, err := c.next()
		if err != nil {
			return rawFrame{}, err
		}
		if f.Type == "reply" && f.ID == id {
			return f, nil
		}
		if f.Type == "events" {
			c.held = append(c.held, f)
		}
	}
}

func (c *stateClient) mustCall(cmd map[string]any) rawFrame {
	c.t.Helper()
	f, err := c.call(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

func (c *stateClient) next() (rawFrame, error) {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case f, ok := <-c.frames:
		if !ok {
			return rawFrame{}, fmt.Errorf("connection ended")
		}
		if f.closed != nil {
			return rawFrame{}, f.closed
		}
		return f, nil
	case <-t.C:
		return rawFrame{}, fmt.Errorf("no frame for 10s")
	}
}

// waitState returns state events of type typ until ok accepts one; it fails the test
// if the connection ends or 10 s pass without a frame.
func (c *stateClient) waitState(typ string, ok func(stateEvent) bool) stateEvent {
	c.t.Helper()
	for {
		var f rawFrame
		if len(c.held) > 0 {
			f, c.held = c.held[0], c.held[1:]
		} else {
			var err error
			if f, err = c.next(); err != nil {
				c.t.Fatalf("waiting for %s: %v", typ, err)
			}
		}
		for _, raw := range f.Events {
			var ev stateEvent
			if json.Unmarshal(raw, &ev) == nil && ev.Type == typ && ok(ev) {
				return ev
			}
		}
	}
}

type stateSnapshotT struct {
	Pin *struct {
		Version uint64          `json:"version"`
		Product json.RawMessage `json:"product"`
	} `json:"pin"`
	Cheers int64           `json:"cheers"`
	Online int             `json:"online"`
	Unique uint64          `json:"unique"`
	Live   json.RawMessage `json:"live"`
	Chat   []json.RawMessage
}

func (c *stateClient) join(room, token string) stateSnapshotT {
	c.t.Helper()
	f := c.mustCall(map[string]any{"cmd": "join", "room": room, "token": token})
	if f.Error != nil {
		c.t.Fatalf("join: %v", f.Error)
	}
	var res struct {
		Snapshot stateSnapshotT `json:"snapshot"`
	}
	if err := json.Unmarshal(f.Result, &res); err != nil {
		c.t.Fatal(err)
	}
	return res.Snapshot
}
