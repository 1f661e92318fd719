package gateway

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

// In a room above the per-viewer chat budget, a viewer is shown at most the budget of
// ordinary lines per second, but every host and moderator line; a sender is shown all
// of its own lines; and every viewer sees lines in seq order.
func TestSamplingKeepsBudgetAndPriorityLines(t *testing.T) {
	ns := startNATS(t)
	const budget = 5
	g := startGateway(t, ns, Config{AllowAnonymous: true, ChatRate: 10000, ChatBurst: 10000, Fanout: fanout.Config{ChatBudget: budget}})
	const room = "big"
	v := dial(t, g.url)
	v.join(room, "")
	tok := func(u string, r auth.Role) string { return mintToken(t, u, r, []string{room}, time.Hour) }
	s1, s2, host, mod := dial(t, g.url), dial(t, g.url), dial(t, g.url), dial(t, g.url)
	s1.join(room, tok("s1", auth.RoleViewer))
	s2.join(room, tok("s2", auth.RoleViewer))
	host.join(room, tok("h", auth.RoleHost))
	mod.join(room, tok("m", auth.RoleModerator))

	const ordinary = 60
	for i := range ordinary {
		sendLine(t, []*client{s1, s2}[i%2], room, fmt.Sprint("o-", i))
		if i%10 == 0 {
			sendLine(t, host, room, fmt.Sprint("h-", i))
			sendLine(t, mod, room, fmt.Sprint("m-", i))
		}
	}
	sendLine(t, host, room, "end")

	var got []chatEvent
	var perFrame []int // ordinary lines per frame
	for len(got) == 0 || got[len(got)-1].Text != "end" {
		f, ok := v.next()
		if !ok {
			t.Fatalf("viewer: %v", v.closeErr())
		}
		n := 0
		for _, e := range f.Events {
			got = append(got, e)
			if e.User.Role == "viewer" {
				n++
			}
		}
		perFrame = append(perFrame, n)
	}
	var shown, priority int
	for i, e := range got {
		if i > 0 && e.Seq <= got[i-1].Seq {
			t.Fatalf("seq not increasing at %d", i)
		}
		if e.User.Role == "viewer" {
			shown++
		} else {
			priority++
		}
	}
	if priority != 13 {
		t.Errorf("viewer got %d host/moderator lines, want all 13", priority)
	}
	for i, n := range perFrame {
		if n > budget {
			t.Errorf("frame %d carries %d ordinary lines, budget %d", i, n, budget)
		}
	}
	// Flush times of the lines shown fall within [first ts, last ts + a tick + slack];
	// no one-second window of them holds more than the budget.
	span := time.Duration(got[len(got)-1].TS-got[0].TS) * time.Millisecond
	if limit := budget * (int(math.Ceil(span.Seconds())) + 1); shown > limit {
		t.Errorf("viewer shown %d ordinary lines over %v, limit %d", shown, span, limit)
	}
	if shown >= ordinary {
		t.Errorf("nothing sampled out: %d of %d shown", shown, ordinary)
	}
	if n := g.counter(t, "liveroom_chat_sampled_out_total"); n != float64(ordinary-shown) {
		t.Errorf("sampled out = %v, want %d", n, ordinary-shown)
	}
	// The sender sees all of its own lines, in order with the rest.
	var own []chatEvent
	prev := uint64(0)
	for len(own) < ordinary/2 {
		e := s1.nextEvent(func(chatEvent) bool { return true })
		if e.Seq <= prev {
			t.Fatalf("sender: seq %d after %d", e.Seq, prev)
		}
		prev = e.Seq
		if e.User.ID == "s1" {
			own = append(own, e)
		}
	}
	for i, e := range own {
		if e.Text != fmt.Sprint("o-", 2*i) {
			t.Fatalf("sender's own line %d = %q", i, e.Text)
		}
	}
}
