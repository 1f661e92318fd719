package loadgen

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// aggregator gathers every shard's per-second ticks into the live progress line and
// the report's timeline. Ticks arrive from the in-process engine or from the readers
// of the children's output, so it has a lock.
type aggregator struct {
	shards int
	target int
	out    io.Writer
	scr    *scraper

	mu      sync.Mutex
	secs    map[int]*secAgg
	printed int
	events  []int64 // last cumulative events per shard
}

type secAgg struct {
	n          int
	connected  int64
	peak       int64
	events     int64 // delivered during this second, all shards
	reconnects int64
	failures   int64
	lat        Histogram
}

func newAggregator(shards, target int, out io.Writer, scr *scraper) *aggregator {
	return &aggregator{
		shards: shards, target: target, out: out, scr: scr,
		secs:   map[int]*secAgg{},
		events: make([]int64, shards),
	}
}

// shardGone stops waiting for a shard that exited early, so that progress goes on.
func (a *aggregator) shardGone() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.shards--
	a.printReady()
}

// add takes one shard's tick and prints every second that all shards have reported.
func (a *aggregator) add(t tick) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.secs[t.Sec]
	if s == nil {
		s = &secAgg{}
		a.secs[t.Sec] = s
	}
	s.n++
	s.connected += t.Connected
	s.peak += t.Peak
	if t.Shard >= 0 && t.Shard < len(a.events) {
		s.events += t.Events - a.events[t.Shard]
		a.events[t.Shard] = t.Events
	}
	s.reconnects += t.Reconnects
	s.failures += t.Failures
	if t.Latency != nil {
		s.lat.Merge(t.Latency)
	}
	a.printReady()
}

// printReady prints the seconds every live shard has reported. Called with mu held.
func (a *aggregator) printReady() {
	for {
		next := a.secs[a.printed+1]
		if next == nil || next.n < a.shards {
			return
		}
		a.printed++
		if a.out != nil {
			fmt.Fprintf(a.out, "loadgen t=%4ds viewers=%d/%d events/s=%d p99=%s reconnects=%d connect_failures=%d\n",
				a.printed, next.connected, a.target, next.events,
				next.lat.Quantile(0.99).Round(100*time.Microsecond), next.reconnects, next.failures)
		}
	}
}

// timeline returns one sample per second seen, and the highest concurrent audience
// (the sum over shards of each second's peak).
func (a *aggregator) timeline() ([]Sample, int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	secs := make([]int, 0, len(a.secs))
	for s := range a.secs {
		secs = append(secs, s)
	}
	sort.Ints(secs)
	var peak int64
	out := make([]Sample, 0, len(secs))
	for _, sec := range secs {
		s := a.secs[sec]
		peak = max(peak, s.peak)
		smp := Sample{
			T: sec, Viewers: s.connected, EventsPerS: s.events,
			P50MS: ms(s.lat.Quantile(0.5)), P99MS: ms(s.lat.Quantile(0.99)),
			Reconnects: s.reconnects,
		}
		if a.scr != nil {
			g := a.scr.sample(sec)
			smp.GatewayCPU, smp.GatewayRSS = g.cpu, g.rss
		}
		out = append(out, smp)
	}
	return out, peak
}
