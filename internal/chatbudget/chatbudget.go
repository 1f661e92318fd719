// Package chatbudget is the rule that samples a busy room's chat: each viewer is shown
// at most a budget of ordinary lines per second on average, in bursts of at most the
// budget. It is a token bucket over the lines' own times (the time JetStream stored
// them), holding the budget and refilled at the budget per second, so that every
// gateway picks the same lines, and a room above the budget shows exactly the budget
// over any long stretch however its lines clump (a sliding one-second window shows
// less when lines arrive in clumps: each clump reopens the window late).
//
// The gateway's rooms (package fanout) apply it to decide what viewers see; the load
// generator applies it to the lines it sent to decide what every viewer is owed.
package chatbudget

// Bucket is one room's budget. Its zero value is unset: the first Take fills it.
type Bucket struct {
	perSecond float64
	tokens    float64
	lastUS    int64 // the newest line time seen, µs
	started   bool
}

// New is a bucket of perSecond lines a second (at least 1).
func New(perSecond float64) *Bucket {
	return &Bucket{perSecond: max(perSecond, 1)}
}

// Take reports whether an ordinary line of time atUS (µs since the epoch) is shown, and
// if so takes it from the budget. Lines may come slightly out of time order: an older
// time than the newest seen refills nothing.
func (b *Bucket) Take(atUS int64) bool {
	switch {
	case !b.started:
		b.started, b.tokens, b.lastUS = true, b.perSecond, atUS
	case atUS > b.lastUS:
		b.tokens = min(b.perSecond, b.tokens+float64(atUS-b.lastUS)/1e6*b.perSecond)
		b.lastUS = atUS
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
