package loadgen

import (
	"sort"

	"github.com/liveroom/liveroom/internal/chatbudget"
)

// chatLedger counts, over the whole run, how many chat lines each viewer was owed.
//
// The gateway may show a viewer only a sample of a busy room: at most a budget of
// ordinary lines a second on average, in bursts of at most the budget, while host and
// moderator lines always pass and take nothing from the budget (docs/protocol.md, "the
// chat budget"). The ledger plays the same rule (internal/chatbudget) over the lines'
// send times. The gateway plays it over their stored times, so the two may pick
// different lines near the limit, but they owe the same number over any stretch longer
// than a second or so; a viewer is therefore compared on totals (received vs owed within its window), and lines beyond
// the budget are reported as Sampled, not Lost.
type chatLedger struct {
	lines []sentLine // by send time, unique seqs
	// owedPrefix[i] is how many of lines[:i] are owed.
	owedPrefix []int64
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
	l := &chatLedger{lines: uniq, owedPrefix: make([]int64, len(uniq)+1)}
	b := chatbudget.New(float64(budget))
	for i, ln := range uniq {
		owed := ln.Priority || budget <= 0 || b.Take(ln.SentUS)
		l.owedPrefix[i+1] = l.owedPrefix[i]
		if owed {
			l.owedPrefix[i+1]++
		}
	}
	return l
}

// count returns the lines owed to a viewer whose window is [a, b] (send times, µs),
// and all lines sent in it.
func (l *chatLedger) count(a, b int64) (owed, all int64) {
	lo := sort.Search(len(l.lines), func(i int) bool { return l.lines[i].SentUS >= a })
	hi := sort.Search(len(l.lines), func(i int) bool { return l.lines[i].SentUS > b })
	if hi <= lo {
		return 0, 0
	}
	return l.owedPrefix[hi] - l.owedPrefix[lo], int64(hi - lo)
}
