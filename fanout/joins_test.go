package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// logSink records, in order, its join's chat and every chat line delivered to it.
type logSink struct {
	mu    sync.Mutex
	lines []string
	got   chan struct{} // a token per frame
}

func newLogSink() *logSink { return &logSink{got: make(chan struct{}, 64)} }

func (s *logSink) Deliver(f *Frame) {
	var fr struct {
		Events []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"events"`
	}
	_ = json.Unmarshal(f.Data, &fr)
	s.mu.Lock()
	for _, e := range fr.Events {
		if e.Type == "chat" {
			s.lines = append(s.lines, e.Text)
		}
	}
	s.mu.Unlock()
	s.got <- struct{}{}
}

func (s *logSink) joined(cj ChatJoin) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, "joined")
	for _, l := range cj.Lines {
		var e struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(l, &e)
		s.lines = append(s.lines, e.Text)
	}
}

func (s *logSink) seen() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.lines)
}

// Joins that queue while the room is busy flushing are admitted together, under one
// hold of its flush lock, and each gets its join's chat before any live frame, with no
// line missing or repeated. Joins on their way in keep the room open when its last
// viewer leaves meanwhile.
func TestJoinsQueuedBehindAFlushAreAdmittedTogether(t *testing.T) {
	h := testHub(t, Config{})
	ctx := context.Background()
	send := func(text string) {
		t.Helper()
		if _, err := h.PublishChat(ctx, "j", ChatLine{User: User{ID: "u", Role: "viewer"}, Text: text, CID: text}); err != nil {
			t.Fatal(err)
		}
	}
	first := newLogSink()
	if err := h.JoinRoom("j", first, JoinOptions{Joined: first.joined}); err != nil {
		t.Fatal(err)
	}
	send("a")
	<-first.got
	r := h.room("j")

	const n = 40
	r.flushMu.Lock() // the room is busy
	sinks := make([]*logSink, n)
	errs := make(chan error, n)
	for i := range sinks {
		sinks[i] = newLogSink()
		go func() {
			errs <- h.JoinRoom("j", sinks[i], JoinOptions{Joined: sinks[i].joined, Deadline: time.Now().Add(time.Minute)})
		}()
	}
	for queued := 0; queued < n; {
		runtime.Gosched()
		r.joins.mu.Lock()
		queued = len(r.joins.queue)
		r.joins.mu.Unlock()
	}
	h.Leave("j", first) // its last viewer: the joins on their way hold the room
	send("b")           // stored and received; its flush waits for the room
	r.flushMu.Unlock()

	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if h.room("j") != r {
		t.Fatal("the room was closed (or replaced) while joins were on their way in")
	}
	for i, s := range sinks {
		// "b" is either in the join's chat (its flush came first) or the first live line.
		if got := s.seen(); got != "[joined a b]" {
			if got != "[joined a]" {
				t.Fatalf("viewer %d saw %s at its join", i, got)
			}
			<-s.got
			if got := s.seen(); got != "[joined a b]" {
				t.Fatalf("viewer %d saw %s, want [joined a b]", i, got)
			}
		}
	}
	if got := first.seen(); got != "[joined a]" {
		t.Fatalf("the viewer that left saw %s", got)
	}
	count, sum := histogram(h.chatm.joinBatch)
	if count != 2 || sum != 1+n {
		t.Fatalf("join batches: %d batches of %v joins in all, want 2 (1 and %d)", count, sum, n)
	}
	for _, s := range sinks {
		h.Leave("j", s)
	}
	if h.room("j") != nil {
		t.Fatal("the room stayed open after its last viewer left")
	}
}

// histogram is the sample count and sum of h.
func histogram(h prometheus.Histogram) (uint64, float64) {
	var m dto.Metric
	_ = h.Write(&m)
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}
