package fanout

import (
	"errors"
	"testing"
	"time"
)

// A join that only reaches the room after its deadline does no work: it is refused
// and leaves no viewer (or room) behind.
func TestJoinPastDeadlineIsRefused(t *testing.T) {
	h := testHub(t, Config{})
	s := &countingSink{}
	joined := false
	err := h.JoinRoom("late", s, JoinOptions{Deadline: time.Now().Add(-time.Millisecond), Joined: func(ChatJoin) { joined = true }})
	if !errors.Is(err, ErrJoinLate) || joined {
		t.Fatalf("JoinRoom = %v (joined %v), want ErrJoinLate", err, joined)
	}
	if n := h.roomCount(); n != 0 {
		t.Fatalf("%v rooms open after a refused join", n)
	}
	if err := h.JoinRoom("late", s, JoinOptions{Deadline: time.Now().Add(time.Minute), Joined: func(ChatJoin) { joined = true }}); err != nil || !joined {
		t.Fatalf("JoinRoom in time = %v (joined %v)", err, joined)
	}
}
