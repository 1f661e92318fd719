package loadgen

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// This file ends a shard's run: the drain, which waits until everything sent has
// reached everyone, and the per-second tick.

// drain stops counting at the end of the load, waits until every line stored anywhere
// in the run has reached every viewer still here (bounded by Drain and the run's
// deadline), then makes everybody leave.
func (e *engine) drain(ctx context.Context, sec *int) error {
	cfg := &e.cfg
	e.reap()
	stopUS := time.Now().UnixMicro()
	for _, v := range e.all {
		if v.cutUS.Load() > stopUS {
			v.cutUS.Store(stopUS)
		}
	}
	deadline := time.Now().Add(cfg.Drain)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	tickIfDue := func() {
		e.runDue(time.Now())
		for time.Since(e.start) >= time.Duration(*sec)*time.Second {
			e.emitTick(*sec)
			*sec++
		}
	}
	// Replies to lines in flight, for at most half the drain: the shards must still
	// agree on the audience within it (a shard that waited out the whole drain here
	// made every other shard's agreement time out).
	pctx, pcancel := context.WithTimeout(dctx, cfg.Drain/2)
	for e.stats.pending.Load() > 0 && waitTick(pctx, poll) {
		tickIfDue()
	}
	pcancel()
	e.linesMu.Lock()
	local := drainMsg{MaxSeq: e.maxSeq, MaxPin: e.maxPin}
	e.linesMu.Unlock()
	// A viewer that is not in the room when the load stops (reconnecting, its join
	// refused, in backoff for up to 30 s) is not brought back: it might return after
	// the check, or never before the run ends, and the room's count could never match.
	e.reap()
	for _, v := range e.all {
		if !v.leaveSent && !v.joined.Load() {
			v.leaveSent = true
			e.enqueue(job{v: v, kind: jobLeave})
		}
	}
	// The audience the room should show: every viewer here that has joined and has
	// not been sent off (one whose leave is in flight will be gone).
	e.reap()
	for _, v := range e.all {
		if v.startUS.Load() != 0 && !v.leaveSent {
			local.Online++
		}
	}
	var err error
	target := local
	if e.agree != nil {
		target, err = e.agree(dctx, local)
	}
	if err == nil {
		for !e.caughtUp(target) && waitTick(dctx, poll) {
			tickIfDue()
		}
	} else {
		e.noteError("online_agree", fmt.Errorf("the shards did not agree on the audience, online not checked: %w", err))
	}
	tickIfDue()
	// Online: every viewer still here should be shown the run's audience.
	e.reap()
	seen := map[int64]int{}
	for _, v := range e.all {
		if err != nil {
			break // no audience to check against: this shard only knows its own viewers
		}
		if v.startUS.Load() != 0 && !v.leaveSent {
			e.stats.onlineOwed.Add(1)
			if v.lastOnline.Load() == target.Online {
				e.stats.onlineGot.Add(1)
			} else {
				seen[v.lastOnline.Load()]++
			}
		}
	}
	if len(seen) > 0 {
		e.noteError(fmt.Sprintf("online_shard_%d", e.shard), fmt.Errorf("expected %d online, viewers were shown %s", target.Online, topCounts(seen, 3)))
	}
	// Nobody leaves before every shard has checked: leaving changes the count the
	// others' viewers are shown.
	if e.settle != nil && err == nil {
		sctx, scancel := context.WithTimeout(ctx, cfg.Drain)
		e.settle(sctx)
		scancel()
	}
	// Everybody leaves; stragglers are cut after a few seconds.
	e.reap()
	for _, v := range e.all {
		e.enqueue(job{v: v, kind: jobLeave})
	}
	finished := make(chan struct{})
	go func() { e.viewers.Wait(); close(finished) }()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-finished:
	case <-t.C:
	case <-ctx.Done():
	}
	e.vcancel()
	<-finished
	return err
}

// caughtUp reports whether every viewer still here has seen chat up to the last
// seq, the last pin, the cheer total of its own last cheer, and the run's audience
// as the room's online count.
func (e *engine) caughtUp(t drainMsg) bool {
	e.reap()
	for _, v := range e.all {
		if v.startUS.Load() != 0 && !v.leaveSent && (v.lastSeq.Load() < t.MaxSeq || v.pinMax.Load() < t.MaxPin ||
			v.cheerCpN.Load() != 0 || v.lastOnline.Load() != t.Online) {
			return false
		}
	}
	return true
}

func (e *engine) emitTick(sec int) {
	h := e.interval.Swap(new(Histogram))
	tk := tick{
		Shard:      e.shard,
		Sec:        sec,
		Connected:  e.stats.connected.Load(),
		Peak:       e.stats.intervalPeak.Swap(e.stats.connected.Load()),
		Events:     e.stats.events.Load(),
		Reconnects: e.stats.reconnects.Load(),
		Failures:   e.stats.connectFailures.Load(),
		ChatSent:   e.stats.chatSent.Load(),
		Latency:    h,
	}
	if e.progress != nil {
		e.progress(tk)
	}
}

// result gathers what this shard measured; called once every viewer has ended.
func (e *engine) result() *shardResult {
	e.linesMu.Lock()
	lines, pins := e.lines, e.pins
	e.linesMu.Unlock()
	e.doneMu.Lock()
	windows := e.windows
	e.doneMu.Unlock()
	sort.Slice(lines, func(i, j int) bool { return lines[i].SentUS < lines[j].SentUS })
	return &shardResult{
		Shard:          e.shard,
		FullS:          e.fullAt.Seconds(),
		Counters:       e.stats.snapshot(),
		Join:           &e.join,
		Chat:           &e.chat,
		CheerLat:       &e.cheerLat,
		CheerLatResent: &e.cheerLatResent,
		PinLat:         &e.pinLat,
		BuyLat:         &e.buyLat,
		Lines:          lines,
		Pins:           pins,
		Windows:        windows,
	}
}

// sleepUntil waits until t or until ctx ends; false when ctx ended.
func sleepUntil(ctx context.Context, t time.Time) bool {
	if d := time.Until(t); d > 0 {
		return sleepCtx(ctx, d)
	}
	return ctx.Err() == nil
}

// waitTick waits for the next tick; false when ctx ended.
func waitTick(ctx context.Context, t *time.Ticker) bool {
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// topCounts is the n most frequent values of counts, as "v×count" (most first).
func topCounts(counts map[int64]int, n int) string {
	vals := make([]int64, 0, len(counts))
	for v := range counts {
		vals = append(vals, v)
	}
	sort.Slice(vals, func(i, j int) bool { return counts[vals[i]] > counts[vals[j]] })
	var parts []string
	for _, v := range vals[:min(n, len(vals))] {
		parts = append(parts, fmt.Sprintf("%d×%d", v, counts[v]))
	}
	return strings.Join(parts, ", ")
}
