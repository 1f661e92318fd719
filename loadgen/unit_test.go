package loadgen

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"
)

func TestHistogramQuantilesWithinBucketError(t *testing.T) {
	var h Histogram
	for i := 1; i <= 100000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		got := float64(h.Quantile(q).Microseconds())
		want := q * 100000
		if math.Abs(got-want)/want > 1.0/histSub {
			t.Errorf("q%.2f = %.0f µs, want %.0f ± %.0f%%", q, got, want, 100.0/histSub)
		}
	}
	if h.Max() != 100*time.Millisecond || h.Count() != 100000 {
		t.Errorf("max %v count %d", h.Max(), h.Count())
	}
}

func TestHistogramBucketsAreContiguous(t *testing.T) {
	prev := -1
	for us := int64(0); us < 1<<20; us++ {
		b := bucketOf(us)
		if b != prev && b != prev+1 {
			t.Fatalf("bucketOf(%d) = %d after %d", us, b, prev)
		}
		if us > bucketUpper(b) || (b > 0 && us <= bucketUpper(b-1)) {
			t.Fatalf("%d µs outside its bucket %d (upper %d)", us, b, bucketUpper(b))
		}
		prev = b
	}
}

// Merging the JSON forms of two histograms equals recording everything in one: that
// is what lets the parent merge its children exactly.
func TestHistogramMergeThroughJSON(t *testing.T) {
	var a, b, all Histogram
	for i := range 5000 {
		d := time.Duration(i*i) * time.Microsecond
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
		all.Record(d)
	}
	var merged Histogram
	for _, h := range []*Histogram{&a, &b} {
		js, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var back Histogram
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatal(err)
		}
		merged.Merge(&back)
	}
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		if merged.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v: merged %v, direct %v", q, merged.Quantile(q), all.Quantile(q))
		}
	}
	if merged.Count() != all.Count() || merged.Max() != all.Max() {
		t.Errorf("count %d/%d max %v/%v", merged.Count(), all.Count(), merged.Max(), all.Max())
	}
}

func TestCIDCarriesSendTime(t *testing.T) {
	now := time.UnixMicro(1764050000123456)
	cid := makeCID(now, 3, 1<<40)
	if len(cid) > 64 {
		t.Fatalf("cid %q longer than the protocol's 64", cid)
	}
	us, ok := cidSentUS(cid)
	if !ok || us != now.UnixMicro() {
		t.Errorf("cidSentUS(%q) = %d, %v", cid, us, ok)
	}
	for _, foreign := range []string{"c-19", "", "lg", "lgzz", "lg-1-2"} {
		if _, ok := cidSentUS(foreign); ok {
			t.Errorf("%q taken for a loadgen cid", foreign)
		}
	}
}

func TestTargetsMustBeLoopback(t *testing.T) {
	for _, ok := range []string{"ws://127.0.0.1:8080/ws", "ws://localhost:1/ws", "wss://[::1]:443/ws", "ws://127.0.0.9/ws"} {
		if err := checkTarget(ok, false); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"ws://example.com/ws", "ws://10.0.0.1:8080/ws", "ws://0.0.0.0:8080/ws"} {
		if err := checkTarget(bad, false); !errors.Is(err, ErrRemote) {
			t.Errorf("%s: err %v, want ErrRemote", bad, err)
		}
		if err := checkTarget(bad, true); err != nil {
			t.Errorf("%s with allow-remote: %v", bad, err)
		}
	}
	if err := checkTarget("http://127.0.0.1/ws", false); err == nil {
		t.Error("http scheme accepted")
	}
	if got := metricsURL("wss://127.0.0.1:8443/ws?x=1"); got != "https://127.0.0.1:8443/metrics" {
		t.Errorf("metricsURL = %s", got)
	}
}

func TestSeedScheduleFollowsProfile(t *testing.T) {
	c := Defaults(22000)
	s := schedule{cfg: &c}
	at := func(m float64) float64 { return s.online(time.Duration(m*float64(time.Minute))) * 22000 }
	checks := []struct {
		min, lo, hi float64
	}{
		{0, 0, 1},
		{3, 9900, 10100},   // reminder wave done
		{30, 21900, 22000}, // sharing done: the peak
		{60, 19700, 22000}, // plateau ±10 %
		{180, 9900, 10100}, // tail
		{181, 0, 1},        // everybody left
	}
	for _, ch := range checks {
		if n := at(ch.min); n < ch.lo || n > ch.hi {
			t.Errorf("online at %v min = %.0f, want %v–%v", ch.min, n, ch.lo, ch.hi)
		}
	}
	prev := 0.0
	for m := 0.0; m <= 30; m += 0.25 {
		if n := at(m); n < prev-1 {
			t.Fatalf("audience shrinks during the ramp at %v min: %.0f < %.0f", m, n, prev)
		}
		prev = at(m)
	}
	// Bursts: ChatBursts of them, each ChatBurstLength long.
	var burstSecs, churnSecs int
	for sec := range int((180 * time.Minute).Seconds()) {
		tt := time.Duration(sec) * time.Second
		if s.chatRate(tt) == c.ChatBurstRate {
			burstSecs++
		}
		if s.churn(tt) > 0 {
			churnSecs++
		}
	}
	if want := c.ChatBursts * int(c.ChatBurstLength.Seconds()); burstSecs != want {
		t.Errorf("burst seconds %d, want %d", burstSecs, want)
	}
	if want := int((c.TailEnd - c.SharingEnd).Seconds()); churnSecs != want {
		t.Errorf("churn seconds %d, want %d", churnSecs, want)
	}
	// Speed compresses time but keeps the audience.
	fast := Config{Viewers: 22000, Speed: 10}.withDefaults()
	fs := schedule{cfg: &fast}
	if a, b := fs.online(3*time.Minute), s.online(30*time.Minute); math.Abs(a-b) > 1e-9 {
		t.Errorf("speed 10 at 3 min %.4f, speed 1 at 30 min %.4f", a, b)
	}
	if fast.Duration != fast.scaled(c.TailEnd+c.EndLeave)+fast.Drain {
		t.Errorf("default duration %v", fast.Duration)
	}
}

func TestReportMergeCountsWindows(t *testing.T) {
	cfg := Defaults(3)
	lines := []sentLine{{SentUS: 100, Seq: 1}, {SentUS: 200, Seq: 5}, {SentUS: 300, Seq: 9}, {SentUS: 400, Seq: 12}}
	res := []*shardResult{
		{Lines: lines[:2], Windows: []window{{StartUS: 0, CutUS: 1000, Delivered: 4}}},
		{Lines: lines[2:], Windows: []window{
			{StartUS: 150, CutUS: 350, Delivered: 1, Dups: 1}, // expects 200 and 300, got one
			{StartUS: 500, CutUS: 900, Delivered: 0},          // expects nothing
			{StartUS: 250, CutUS: 450, Delivered: 3},          // expects 300 and 400, got one more
		}},
	}
	r := merge(&cfg, res)
	chat := r.Classes["chat"]
	if chat.Expected != 8 || chat.Delivered != 7 || chat.Lost != 1 || chat.Duplicated != 1 || r.Chat.Stored != 4 {
		t.Errorf("chat %+v stored %d", chat, r.Chat.Stored)
	}
	if chat.LostIn != 1 || chat.LostMax != 1 || chat.Extra != 1 {
		t.Errorf("chat: lost in %d windows, at most %d; extra %d; want 1, 1, 1", chat.LostIn, chat.LostMax, chat.Extra)
	}
}

func TestChatLedgerOwesTheBudget(t *testing.T) {
	var lines []sentLine
	seq := int64(0)
	add := func(us int64, pri bool) {
		seq++
		lines = append(lines, sentLine{SentUS: us, Seq: seq, Priority: pri})
	}
	// A burst of 30 ordinary lines in 30 ms straddling a second boundary, one host
	// line in it, then 5 lines 0.5 s later and 25 lines 1.2 s later.
	for i := range 30 {
		add(10_985_000+int64(i)*1000, false)
	}
	add(11_000_500, true)
	for i := range 5 {
		add(11_500_000+int64(i)*1000, false)
	}
	for i := range 25 {
		add(12_200_000+int64(i)*1000, false)
	}
	l := newChatLedger(lines, 20)
	cases := []struct {
		a, b      int64
		owed, all int64
	}{
		// The burst owes the budget, 20 (not 20 per aligned second), the host line
		// always; the 5 lines all (0.5 s refilled 10), the last 25 owe 19 (the 5 left
		// ~5, 0.7 s refilled 14).
		{0, 100e6, 20 + 1 + 5 + 19, 61},
		{0, 11_400_000, 21, 31},
		{11_400_000, 100e6, 5 + 19, 30},
		{13e6, 14e6, 0, 0},
	}
	for _, c := range cases {
		if owed, all := l.count(c.a, c.b); owed != c.owed || all != c.all {
			t.Errorf("count(%d, %d) = %d, %d; want %d, %d", c.a, c.b, owed, all, c.owed, c.all)
		}
	}
	if owed, all := newChatLedger(lines, 0).count(0, 100e6); owed != 61 || all != 61 {
		t.Errorf("no budget: %d, %d", owed, all)
	}
}

func TestSourceAddrsOnlyWhenPortsRunOut(t *testing.T) {
	c := Config{Targets: []string{"ws://127.0.0.1:8080/ws", "ws://127.0.0.1:8081/ws"}, Viewers: 22000}.withDefaults()
	if got := sourceAddrs(&c); len(got) != 2 || got[0] != "127.0.0.2" || got[1] != "127.0.0.3" {
		t.Errorf("22k viewers: %v", got)
	}
	c.Viewers = 10000
	if got := sourceAddrs(&c); got != nil {
		t.Errorf("10k viewers: %v, want the kernel's choice", got)
	}
	c.Viewers = 60000
	c.Targets = []string{"ws://localhost:8080/ws"}
	if got := sourceAddrs(&c); got != nil {
		t.Errorf("named host: %v, want the kernel's choice", got)
	}
}

// TestCoordinateDrainReleasesOnlyOnceAllChecked: shards are answered only once all
// have asked (or exited), and released only once all have checked their viewers'
// online count (or exited). A shard released early leaves the room while another is
// still checking, which then finds its viewers shown a falling count.
func TestCoordinateDrainReleasesOnlyOnceAllChecked(t *testing.T) {
	events := make(chan shardEvent) // unbuffered: a send returns once the coordinator took it
	answered := make(chan drainMsg, 3)
	released := make(chan struct{})
	go coordinateDrain(3, events, func(i int, all drainMsg) {
		if i == 2 {
			t.Errorf("answered shard 2, which exited without asking")
		}
		answered <- all
	}, func() { close(released) })

	send := func(ev shardEvent) {
		t.Helper()
		select {
		case events <- ev:
		case <-released:
			t.Fatalf("released before event %+v", ev)
		}
	}
	send(shardEvent{i: 0, drain: &drainMsg{MaxSeq: 7, MaxPin: 1, Online: 40}})
	send(shardEvent{i: 2, exit: true})
	if len(answered) != 0 {
		t.Fatalf("answered before shard 1 asked")
	}
	send(shardEvent{i: 1, drain: &drainMsg{MaxSeq: 9, Online: 41}})
	for range 2 {
		if all := <-answered; all != (drainMsg{MaxSeq: 9, MaxPin: 1, Online: 81}) {
			t.Errorf("answer %+v, want max seq 9, max pin 1, online 81", all)
		}
	}
	send(shardEvent{i: 0, check: true})
	send(shardEvent{i: 0, check: true}) // taken only if shard 0's check did not release everyone
	send(shardEvent{i: 1, check: true})
	<-released
}
