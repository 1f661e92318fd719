package loadgen

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// This file is what viewers and the host do besides reading: chat lines, cheers and
// pins, each sent with an id that a resend after a reconnect carries again, and the
// replies and state events that settle them.

// pendingCmd is an action awaiting its reply.
type pendingCmd struct {
	kind   byte  // idChat, idCheer or idPin
	sentUS int64 // first send
	text   int   // chat: text index
	count  int   // cheer: taps
	n      int   // pin: product number
	flash  *flashTerms
	item   string // pin of a flash sale, buy: the item
	tries  int    // cheer: resends after an `unavailable` answer
	resent bool   // cheer: sent again after a (re)join, its reply lost with the connection
}

// maxCheerTries is how often a cheer answered `unavailable` (outcome unknown) is
// resent with the same cid before its taps are reported as unknown.
const maxCheerTries = 5

// track remembers an action until its reply.
func (v *viewer) track(cid string, p pendingCmd) {
	v.mu.Lock()
	if v.pending == nil {
		v.pending = make(map[string]pendingCmd, 1)
	}
	v.pending[cid] = p
	v.mu.Unlock()
}

// settle forgets an action and returns it, or false if it was settled already.
func (v *viewer) settle(cid string) (pendingCmd, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p, ok := v.pending[cid]
	delete(v.pending, cid)
	return p, ok
}

// hasPending reports whether any action still awaits its reply.
func (v *viewer) hasPending() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.pending) > 0
}

// command builds the wire command of a pending action.
func (v *viewer) command(cid string, p pendingCmd) command {
	room := v.e.cfg.Room
	switch p.kind {
	case idCheer:
		return command{ID: "k" + cid, Cmd: "cheer", Room: room, Count: p.count, CID: cid}
	case idPin:
		pr := &product{ID: cid, Title: fmt.Sprintf("Product %d 限时特价", p.n), Price: 99.5, Image: "/img/product.png", Stock: 100}
		if p.flash != nil {
			pr.ID, pr.Title, pr.Stock, pr.FlashSale = p.item, fmt.Sprintf("Flash sale %d 秒杀", p.n), p.flash.Stock, p.flash
		}
		return command{ID: "n" + cid, Cmd: "pin", Room: room, Product: pr}
	case idBuy:
		return command{ID: "b" + cid, Cmd: "buy", Room: room, Item: p.item, CID: cid}
	default:
		return command{ID: "c" + cid, Cmd: "chat", Room: room, Text: chatTexts[p.text%len(chatTexts)], CID: cid}
	}
}

// act sends a new action. The controller counted it as pending when it queued the
// job, so that the drain also waits for actions still in the queue.
func (v *viewer) act(p pendingCmd) {
	e := v.e
	now := time.Now()
	p.sentUS = now.UnixMicro()
	cid := makeCID(now, e.shard, uint64(v.num)<<20|v.chatCount.Add(1))
	v.track(cid, p)
	switch p.kind {
	case idChat:
		e.stats.chatSent.Add(1)
	case idCheer:
		e.stats.cheerCmds.Add(1)
		e.stats.cheerTaps.Add(int64(p.count))
		e.stats.cheerInFlight.Add(int64(p.count))
	case idBuy:
		e.stats.presses.Add(1)
	}
	v.send(v.command(cid, p))
}

// resendPending resends, after a (re)join, the actions whose replies never came: the
// gateway deduplicates chat and cheers by cid (and a pin is the latest value), so
// nothing counts twice.
func (v *viewer) resendPending() {
	v.mu.Lock()
	cmds := make([]command, 0, len(v.pending))
	for cid, p := range v.pending {
		if p.kind == idCheer && !p.resent {
			p.resent = true
			v.pending[cid] = p
		}
		c := v.command(cid, p)
		c.Resend = true
		cmds = append(cmds, c)
	}
	v.mu.Unlock()
	for _, c := range cmds {
		v.e.stats.retried.Add(1)
		v.e.enqueue(job{v: v, kind: jobResend, cmd: c})
	}
}

// chatReply settles a pending line.
func (v *viewer) chatReply(cid string, res *replyResult, rerr *replyError) {
	e := v.e
	p, ok := v.settle(cid)
	if !ok {
		return
	}
	// Logged before it stops being pending: the drain reads the highest stored seq
	// once nothing is pending.
	defer e.stats.pending.Add(-1)
	if rerr != nil || res == nil {
		e.stats.addRejected("chat", rerr)
		return
	}
	e.stats.chatAcked.Add(1)
	e.addLine(sentLine{SentUS: p.sentUS, Seq: res.Seq, Priority: v.isHost})
}

// cheerReply settles a cheer. Its reply's total becomes a checkpoint of this viewer:
// the room's viewers should soon see a total at least that high, and the time from
// sending the cheer until this viewer sees it is the cheer total's latency. Each
// cheer is measured against its own reply's total (a later cheer's reply used to
// raise the total an earlier one waited for, so that one was measured until the
// later cheer showed).
//
// `unavailable` does not settle it: its taps may or may not be stored, so it is resent
// with the same cid after a jittered backoff (a resend is never counted twice), up to
// maxCheerTries times; then its taps are unknown. Its latency still counts from the
// first send: that is when the user tapped.
func (v *viewer) cheerReply(cid string, res *replyResult, rerr *replyError, now time.Time) {
	e := v.e
	p, ok := v.settle(cid)
	if !ok {
		return
	}
	unavailable := rerr != nil && rerr.Code == "unavailable"
	if unavailable && p.tries < maxCheerTries {
		p.tries++
		v.track(cid, p)
		cmd := v.command(cid, p)
		cmd.Resend = true
		e.later(now.Add(cheerBackoff(p.tries)), job{v: v, kind: jobResend, cmd: cmd})
		e.stats.retried.Add(1)
		return
	}
	defer e.stats.pending.Add(-1)
	e.stats.cheerInFlight.Add(-int64(p.count))
	if rerr != nil || res == nil {
		e.stats.addRejected("cheer", rerr)
		if unavailable {
			e.stats.cheerUnknown.Add(int64(p.count))
		} else {
			e.stats.cheerRefused.Add(int64(p.count))
		}
		return
	}
	e.stats.cheerCredited.Add(res.Credited)
	e.stats.cheerRefused.Add(res.Refused)
	if res.Credited == 0 || p.sentUS < v.startUS.Load() || p.sentUS > v.cutUS.Load() {
		return
	}
	v.cheerOwed++
	cp := cheerCp{sentUS: p.sentUS, total: res.Total, resent: p.tries > 0 || p.resent}
	if v.cheersSeen >= res.Total {
		v.recordCheer(cp, v.cheersSeenAt) // the total was on screen before the reply came
		return
	}
	v.cheerCps = append(v.cheerCps, cp)
	v.cheerCpN.Store(int64(len(v.cheerCps)))
}

// cheerCp is an acknowledged cheer whose total its viewer has not yet seen.
type cheerCp struct {
	sentUS int64 // first send
	total  int64 // the total its reply reported
	resent bool  // sent more than once (after `unavailable`, or after a reconnect)
}

// cheerBackoff is the wait before the tries-th resend of a cheer answered
// `unavailable`: 0.5-1.5 s, doubling with each try (at most 8-24 s before the 5th).
func cheerBackoff(tries int) time.Duration {
	return time.Duration(500+rand.IntN(1000)) * time.Millisecond << (tries - 1)
}

// seeCheers takes a cheers total from an event or a snapshot.
func (v *viewer) seeCheers(total int64, now time.Time) {
	if total <= v.cheersSeen {
		return
	}
	v.cheersSeen, v.cheersSeenAt = total, now
	kept := v.cheerCps[:0]
	for _, cp := range v.cheerCps {
		if total >= cp.total {
			v.recordCheer(cp, now)
		} else {
			kept = append(kept, cp)
		}
	}
	v.cheerCps = kept
	v.cheerCpN.Store(int64(len(kept)))
}

// recordCheer records the latency of a cheer whose total showed at at; that of a
// resent cheer goes to cheerLatResent too, so that the report tells the time lost to
// `unavailable` answers and dropped connections from the rest.
func (v *viewer) recordCheer(cp cheerCp, at time.Time) {
	lat := max(at.Sub(time.UnixMicro(cp.sentUS)), 0)
	v.e.cheerLat.Record(lat)
	if cp.resent {
		v.e.cheerLatResent.Record(lat)
	}
	v.cheerGot++
}

// pinReply settles the host's pin: its version is what every viewer must reach.
func (v *viewer) pinReply(cid string, res *replyResult, rerr *replyError) {
	e := v.e
	p, ok := v.settle(cid)
	if !ok {
		return
	}
	defer e.stats.pending.Add(-1)
	if rerr != nil || res == nil {
		e.stats.addRejected("pin", rerr)
		return
	}
	e.addPin(sentPin{SentUS: p.sentUS, Version: res.Version})
}

// seePin takes a pin state from an event or a snapshot. A newer version than any
// seen is measured from the moment the host sent it (carried in the product id).
func (v *viewer) seePin(version int64, p *product, now time.Time) {
	if version <= v.pinMax.Load() {
		return
	}
	v.pinMax.Store(version)
	if p == nil {
		return
	}
	if p.FlashSale != nil {
		v.e.noteSale(p.ID, p.FlashSale.StartsAt)
	}
	if sent, ours := cidSentUS(p.ID); ours && sent >= v.startUS.Load() {
		v.e.pinLat.Record(now.Sub(time.UnixMicro(sent)))
	}
}
