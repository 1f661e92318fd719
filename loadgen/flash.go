package loadgen

import (
	"strconv"
	"time"
)

// Flash sales: the host pins a product with flash-sale terms; every viewer that sees
// the pin presses `buy` when the countdown ends, like a herd of thumbs, and presses
// again until it gets a final answer. The report says how every press was answered,
// how fast, how many units were won per sale (never more than the stock), and
// whether any user won twice.

// flashState is one viewer's standing in one sale.
type flashState struct {
	final bool // won, sold_out or already_bought: it stops pressing
	won   int
}

// noteSale records a flash sale a viewer saw pinned, for the controller to schedule
// its viewers' presses. Called by readers.
func (e *engine) noteSale(item string, startsAtMS int64) {
	e.salesMu.Lock()
	if _, ok := e.salesSeen[item]; !ok {
		e.salesSeen[item] = startsAtMS
	}
	e.salesMu.Unlock()
}

// scheduleSales gives every joined viewer its presses of each newly seen sale: the
// first within a second of the start, the next ones 0.2–0.5 s apart. Controller only.
func (e *engine) scheduleSales() {
	e.salesMu.Lock()
	var fresh []string
	for item := range e.salesSeen {
		if !e.salesScheduled[item] {
			e.salesScheduled[item] = true
			fresh = append(fresh, item)
		}
	}
	starts := make([]int64, len(fresh))
	for i, item := range fresh {
		starts[i] = e.salesSeen[item]
	}
	e.salesMu.Unlock()
	for i, item := range fresh {
		start := time.UnixMilli(starts[i])
		for _, v := range e.active {
			if !v.joined.Load() {
				continue
			}
			at := start.Add(time.Duration(e.rng.Int64N(int64(time.Second))))
			for range max(1, e.cfg.FlashPresses) {
				e.presses.pushItem(at, v, item)
				at = at.Add(200*time.Millisecond + time.Duration(e.rng.Int64N(int64(300*time.Millisecond))))
			}
		}
	}
}

// pressDue sends the presses that are due, skipping viewers that are done (with
// FlashMash, only those that left).
func (e *engine) pressDue(now time.Time) {
	for {
		it, ok := e.presses.popDue(now)
		if !ok {
			return
		}
		v := it.v
		if v.leaving || v.finished || (!e.cfg.FlashMash && v.flashFinal(it.item)) {
			continue
		}
		e.enqueueAct(v, pendingCmd{kind: idBuy, item: it.item})
	}
}

// saleTimes are the run times at which the host pins its flash sales.
func (e *engine) saleTimes(full time.Duration) []time.Duration {
	c := &e.cfg
	n := c.FlashSales
	var from, span time.Duration
	if c.Profile == ProfileFlat {
		n = c.FlatFlashSales
		from, span = full, c.scaled(c.Hold)
	} else {
		from, span = c.scaled(c.SharingEnd), c.scaled(c.TailEnd-c.SharingEnd)
	}
	var ts []time.Duration
	for k := range max(0, n) {
		t := from + time.Duration(float64(span)*(float64(k)+0.5)/float64(n)) - c.FlashLead
		ts = append(ts, max(t, from))
	}
	return ts
}

// pinSale has the host pin flash sale k, starting FlashLead from now.
func (e *engine) pinSale(k int, now time.Time) {
	starts := now.Add(e.cfg.FlashLead)
	item := "fs" + strconv.FormatInt(e.start.UnixMilli(), 36) + "-" + strconv.Itoa(k)
	e.stats.flashSales.Add(1)
	e.enqueueAct(e.host, pendingCmd{kind: idPin, n: k + 1, item: item, flash: &flashTerms{
		Stock: int64(e.cfg.FlashStock), StartsAt: starts.UnixMilli(), PerUserLimit: 1,
	}})
}

func (v *viewer) flashFinal(item string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.flash[item].final
}

// buyReply counts a press's answer.
func (v *viewer) buyReply(cid string, res *replyResult, rerr *replyError, now time.Time) {
	e := v.e
	p, ok := v.settle(cid)
	if !ok {
		return
	}
	defer e.stats.pending.Add(-1)
	e.buyLat.Record(now.Sub(time.UnixMicro(p.sentUS)))
	if rerr != nil || res == nil {
		e.stats.addRejected("buy", rerr)
		return
	}
	e.stats.addAnswer(res.Answer)
	v.mu.Lock()
	if v.flash == nil {
		v.flash = make(map[string]flashState, 1)
	}
	st := v.flash[p.item]
	switch res.Answer {
	case "won":
		st.won++
		st.final = true
		if st.won > 1 {
			e.stats.multiWins.Add(1)
		}
		e.stats.addWon(p.item, res.OrderID)
	case "sold_out", "already_bought":
		st.final = true
	}
	v.flash[p.item] = st
	v.mu.Unlock()
}
