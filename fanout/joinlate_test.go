package fanout

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveroom/liveroom/internal/embednats"
)

// A join that only reaches the room after its deadline does no work: it is refused,
// leaves no viewer (or room) behind, and is counted in liveroom_joins_late_total.
func TestJoinPastDeadlineIsRefused(t *testing.T) {
	nc, err := nats.Connect(embednats.Test(t).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := New(ctx, Config{}, nc, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	s := &countingSink{}
	joined := false
	err = h.JoinRoom("late", s, JoinOptions{Deadline: time.Now().Add(-time.Millisecond), Joined: func(ChatJoin) { joined = true }})
	if !errors.Is(err, ErrJoinLate) || joined {
		t.Fatalf("JoinRoom = %v (joined %v), want ErrJoinLate", err, joined)
	}
	if n := h.roomCount(); n != 0 {
		t.Fatalf("%v rooms open after a refused join", n)
	}
	if got := gathered(t, reg, "liveroom_joins_late_total"); got != 1 {
		t.Fatalf("liveroom_joins_late_total = %v, want 1 (registered and counted)", got)
	}
	if err := h.JoinRoom("late", s, JoinOptions{Deadline: time.Now().Add(time.Minute), Joined: func(ChatJoin) { joined = true }}); err != nil || !joined {
		t.Fatalf("JoinRoom in time = %v (joined %v)", err, joined)
	}
}

// gathered is the value of an unlabelled counter in reg, or -1 if reg lacks it.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}
