package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/liveroom/liveroom/internal/embednats"
)

// chanSink hands every frame it receives to a channel.
type chanSink chan *Frame

func (s chanSink) Deliver(f *Frame) { s <- f }

// testHub is a hub (a gateway) with cfg on a NATS server of its own.
func testHub(t *testing.T, cfg Config) *Hub {
	t.Helper()
	return hubOn(t, embednats.Test(t), cfg)
}

// hubOn returns a hub of its own (a gateway) on the NATS server ns.
func hubOn(t *testing.T, ns *server.Server, cfg Config) *Hub {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := New(ctx, cfg, nc, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// nextTexts reads frames until it has n chat lines and returns their texts.
func nextTexts(t *testing.T, s chanSink, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		select {
		case f := <-s:
			var fr struct {
				Events []struct {
					Type string `json:"type"`
					Text string `json:"text"`
				} `json:"events"`
			}
			if err := json.Unmarshal(f.Data, &fr); err != nil {
				t.Fatal(err)
			}
			for _, e := range fr.Events {
				if e.Type == "chat" {
					out = append(out, e.Text)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of %d lines: %q", len(out), n, out)
		}
	}
	return out
}

// A line the room's subscription never received (as after a NATS reconnect) is noticed
// from the next line's Nats-Last-Sequence, read from JetStream, and delivered in its
// place, once.
func TestChatGapIsFilledFromJetStream(t *testing.T) {
	h := testHub(t, Config{})
	sink := make(chanSink, 16)
	joined := make(chan ChatJoin, 1)
	if err := h.JoinRoom("g", sink, JoinOptions{Joined: func(cj ChatJoin) { joined <- cj }}); err != nil {
		t.Fatal(err)
	}
	<-joined
	ctx := context.Background()
	send := func(text string) {
		t.Helper()
		if _, err := h.PublishChat(ctx, "g", ChatLine{User: User{ID: "u", Role: "viewer"}, Text: text, CID: text}); err != nil {
			t.Fatal(err)
		}
	}
	send("a")
	if got := nextTexts(t, sink, 1); got[0] != "a" {
		t.Fatalf("got %q", got)
	}

	// Lose the subscription's interest while "b" is stored.
	r := h.room("g")
	if err := r.sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	send("b")
	sub, err := h.nc.Subscribe(roomEventsSubject("g"), r.onMsg)
	if err != nil {
		t.Fatal(err)
	}
	r.sub = sub
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	send("c")
	if got := nextTexts(t, sink, 2); fmt.Sprint(got) != "[b c]" {
		t.Fatalf("after the gap got %q, want [b c]", got)
	}
	if n := chatCounter(h.chatm.gaps); n != 1 {
		t.Errorf("gaps = %v, want 1", n)
	}
	if n := chatCounter(h.chatm.gapLines); n != 1 {
		t.Errorf("gap lines = %v, want 1", n)
	}
	select {
	case f := <-sink:
		t.Fatalf("unexpected frame %s", f.Data)
	default:
	}
}

func chatCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}
