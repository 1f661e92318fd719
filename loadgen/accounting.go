package loadgen

import "sort"

// chatLedger counts, over the whole run, which chat lines each viewer was owed.
//
// The gateway may show a viewer only a sample of a busy room: at most a budget of
// ordinary lines per second, while host and moderator lines are always shown
// (docs/protocol.md, design §2). A viewer is therefore owed, per second of send time,
// min(ordinary lines, budget) plus every priority line sent in its window; lines
// above that are counted as Sampled, not Lost. The gateway's sample is taken over a
// sliding second of its own flush times, so at a burst's edges a viewer may be shown
// a line or so more or less than the aligned seconds here say.
type chatLedger struct {
	lines   []sentLine // by send time, unique seqs
	budget  int        // 0: no sampling, every line is owed
	buckets []bucket   // one per second of send time that has lines, in order
	// capPrefix[i] is the owed count of buckets[:i]; rawPrefix[i] all lines of them.
	capPrefix, rawPrefix []int64
}

type bucket struct {
	sec      int64
	first    int // index of its first line
	ord, pri int
}

func newChatLedger(lines []sentLine, budget int) *chatLedger {
	sort.Slice(lines, func(i, j int) bool { return lines[i].SentUS < lines[j].SentUS })
	seen := make(map[int64]bool, len(lines))
	uniq := lines[:0]
	for _, l := range lines {
		if !seen[l.Seq] {
			seen[l.Seq] = true
			uniq = append(uniq, l)
		}
	}
	l := &chatLedger{lines: uniq, budget: max(0, budget)}
	for i, ln := range uniq {
		sec := ln.SentUS / 1e6
		if len(l.buckets) == 0 || l.buckets[len(l.buckets)-1].sec != sec {
			l.buckets = append(l.buckets, bucket{sec: sec, first: i})
		}
		b := &l.buckets[len(l.buckets)-1]
		if ln.Priority {
			b.pri++
		} else {
			b.ord++
		}
	}
	l.capPrefix = make([]int64, len(l.buckets)+1)
	l.rawPrefix = make([]int64, len(l.buckets)+1)
	for i, b := range l.buckets {
		l.capPrefix[i+1] = l.capPrefix[i] + int64(l.owed(b.ord, b.pri))
		l.rawPrefix[i+1] = l.rawPrefix[i] + int64(b.ord+b.pri)
	}
	return l
}

func (l *chatLedger) owed(ord, pri int) int {
	if l.budget > 0 {
		ord = min(ord, l.budget)
	}
	return ord + pri
}

// count returns the lines owed to a viewer whose window is [a, b] (send times, µs),
// and all lines sent in it.
func (l *chatLedger) count(a, b int64) (owed, all int64) {
	lo := sort.Search(len(l.lines), func(i int) bool { return l.lines[i].SentUS >= a })
	hi := sort.Search(len(l.lines), func(i int) bool { return l.lines[i].SentUS > b })
	if hi <= lo {
		return 0, 0
	}
	bl := sort.Search(len(l.buckets), func(i int) bool { return l.buckets[i].sec >= l.lines[lo].SentUS/1e6 })
	bh := sort.Search(len(l.buckets), func(i int) bool { return l.buckets[i].sec >= l.lines[hi-1].SentUS/1e6 })
	// The window's first and last buckets may be partial: count their lines directly.
	part := func(from, to int) (int64, int64) {
		var ord, pri int
		for _, ln := range l.lines[from:to] {
			if ln.Priority {
				pri++
			} else {
				ord++
			}
		}
		return int64(l.owed(ord, pri)), int64(ord + pri)
	}
	if bl == bh {
		return part(lo, hi)
	}
	o1, a1 := part(lo, l.buckets[bl+1].first)
	o2, a2 := part(l.buckets[bh].first, hi)
	owed = o1 + o2 + l.capPrefix[bh] - l.capPrefix[bl+1]
	all = a1 + a2 + l.rawPrefix[bh] - l.rawPrefix[bl+1]
	return owed, all
}
