package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/liveroom/liveroom/auth"
)

// Each bad input gets its documented answer: an error reply with a code, or a close
// code; and each is counted.
func TestBadInputs(t *testing.T) {
	ns := startNATS(t)
	g := startGateway(t, ns, Config{AllowAnonymous: true, MaxFrameBytes: 1024, MaxChatRunes: 10, ChatBurst: 2, ChatRate: 0.001, PolicyErrorLimit: 3})
	tok := mintToken(t, "u1", auth.RoleViewer, []string{"*"}, time.Hour)

	errorCases := []struct {
		name  string
		setup func(c *client)
		frame string
		want  string
	}{
		{"not json", nil, `hello`, codeMalformed},
		{"not an object", nil, `[1,2]`, codeMalformed},
		{"no cmd", nil, `{"id":"x"}`, codeMalformed},
		{"unknown cmd", nil, `{"id":"x","cmd":"dance"}`, codeUnknown},
		{"bad room", nil, `{"id":"x","cmd":"join","room":"a.b"}`, codeBadRequest},
		{"long id", nil, `{"id":"` + strings.Repeat("i", 65) + `","cmd":"ping"}`, codeBadRequest},
		{"chat before join", nil, `{"id":"x","cmd":"chat","room":"r","text":"hi","cid":"1"}`, codeNotJoined},
		{"leave before join", nil, `{"id":"x","cmd":"leave","room":"r"}`, codeNotJoined},
		{"anonymous chat", func(c *client) { c.join("r", "") }, `{"id":"x","cmd":"chat","room":"r","text":"hi","cid":"1"}`, codeForbidden},
		{"text too long", func(c *client) { c.join("r", tok) }, `{"id":"x","cmd":"chat","room":"r","text":"12345678901","cid":"1"}`, codeTextTooLong},
		{"empty text", func(c *client) { c.join("r", tok) }, `{"id":"x","cmd":"chat","room":"r","text":"","cid":"1"}`, codeTextTooLong},
		{"no cid", func(c *client) { c.join("r", tok) }, `{"id":"x","cmd":"chat","room":"r","text":"hi"}`, codeBadRequest},
		{"double join", func(c *client) { c.join("r", tok) }, `{"id":"x","cmd":"join","room":"r"}`, codeAlreadyJoined},
		{"too many rooms", func(c *client) {
			for i := range 4 {
				c.join(fmt.Sprint("room", i), tok)
			}
		}, `{"id":"x","cmd":"join","room":"room5"}`, codeTooManyRooms},
		{"rate limited", func(c *client) {
			c.join("r", tok)
			for i := range 2 {
				if f := c.call(map[string]any{"cmd": "chat", "room": "r", "text": "hi", "cid": fmt.Sprint("rl", i)}); f.Error != nil {
					t.Fatal(f.Error)
				}
			}
		}, `{"id":"x","cmd":"chat","room":"r","text":"hi","cid":"rl3"}`, codeRateLimited},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			before := g.counter(t, "liveroom_errors_total", "code", tc.want)
			c := dial(t, g.url)
			c.t = t
			if tc.setup != nil {
				tc.setup(c)
			}
			c.sendRaw(tc.frame)
			f := c.waitReplyAny()
			if f.Error == nil || f.Error.Code != tc.want {
				t.Fatalf("reply = %+v, want error %s", f, tc.want)
			}
			if tc.want == codeRateLimited && f.Error.RetryMS <= 0 {
				t.Errorf("rate_limited without retry_ms")
			}
			if after := g.counter(t, "liveroom_errors_total", "code", tc.want); after != before+1 {
				t.Errorf("errors_total{%s} went %v -> %v", tc.want, before, after)
			}
		})
	}

	closeCases := []struct {
		name string
		send func(c *client)
		want websocket.StatusCode
	}{
		{"oversized frame", func(c *client) { c.sendRaw(`{"id":"x","cmd":"ping","pad":"` + strings.Repeat("x", 1100) + `"}`) }, CloseTooBig},
		{"binary frame", func(c *client) {
			_ = c.ws.Write(context.Background(), websocket.MessageBinary, []byte{1, 2, 3})
		}, ClosePolicy},
		{"repeated abuse", func(c *client) {
			for range 3 {
				c.sendRaw(`garbage`)
			}
		}, ClosePolicy},
	}
	for _, tc := range closeCases {
		t.Run(tc.name, func(t *testing.T) {
			before := g.counter(t, "liveroom_disconnects_total", "code", closeLabel(tc.want))
			c := dial(t, g.url)
			c.t = t
			tc.send(c)
			if got := c.closeCode(); got != tc.want {
				t.Fatalf("close code = %v, want %v", got, tc.want)
			}
			waitFor(t, func() bool {
				return g.counter(t, "liveroom_disconnects_total", "code", closeLabel(tc.want)) == before+1
			})
		})
	}
}

// waitReplyAny returns the next reply, whatever its id.
func (c *client) waitReplyAny() frame {
	c.t.Helper()
	for {
		f, ok := c.next()
		if !ok {
			c.t.Fatalf("no reply: %v", c.closeErr())
		}
		if f.Type == "reply" {
			return f
		}
	}
}

// waitFor polls cond until it holds, for state that has no event to wait on (metrics
// updated after a connection's teardown).
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
