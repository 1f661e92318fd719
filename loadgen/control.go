package loadgen

import (
	"context"
	"math"
	"time"
)

// This file is the engine's controller: the one goroutine that follows the
// schedule, spawns and retires viewers, and decides who chats, cheers, pins and
// presses when.

// pickSender picks a random joined viewer that has not chatted for 2 s (the gateway's
// per-user rate limit), falling back to any joined viewer.
func (e *engine) pickSender(now time.Time) *viewer {
	var fallback *viewer
	for range 8 {
		if len(e.active) == 0 {
			return nil
		}
		v := e.active[e.rng.IntN(len(e.active))]
		if !v.joined.Load() {
			continue
		}
		if now.Sub(v.lastChat) >= 2*time.Second {
			return v
		}
		fallback = v
	}
	return fallback
}

// pickCheerer picks a random joined viewer that has not cheered for 0.5 s, or nil.
func (e *engine) pickCheerer(now time.Time) *viewer {
	for range 8 {
		if len(e.active) == 0 {
			return nil
		}
		v := e.active[e.rng.IntN(len(e.active))]
		if v.joined.Load() && now.Sub(v.lastCheer) >= 500*time.Millisecond {
			return v
		}
	}
	return nil
}

// delayedJob is a write the controller hands to the pool once it is due.
type delayedJob struct {
	at time.Time
	j  job
}

// later queues j for the writer pool at time at; any goroutine may call it.
func (e *engine) later(at time.Time, j job) {
	e.laterMu.Lock()
	e.delayed = append(e.delayed, delayedJob{at, j})
	e.laterMu.Unlock()
}

// runDue hands the writes queued by later that are due to the pool. Called by the
// controller.
func (e *engine) runDue(now time.Time) {
	e.laterMu.Lock()
	var due []job
	kept := e.delayed[:0]
	for _, d := range e.delayed {
		if d.at.After(now) {
			kept = append(kept, d)
		} else {
			due = append(due, d.j)
		}
	}
	clear(e.delayed[len(kept):])
	e.delayed = kept
	e.laterMu.Unlock()
	for _, j := range due {
		e.enqueue(j)
	}
}

// run plays the shard until the profile ends, drains, and returns what it measured
// once every viewer and writer has stopped.
func (e *engine) run(ctx context.Context) (*shardResult, error) {
	ctx, cancel := context.WithDeadline(ctx, e.start.Add(e.cfg.Duration))
	defer cancel()
	e.vctx, e.vcancel = context.WithCancel(ctx)
	defer e.vcancel()
	const nWorkers = 8
	e.workers.Add(nWorkers)
	for range nWorkers {
		go e.worker()
	}
	err := e.play(ctx)
	e.vcancel()
	e.viewers.Wait()
	close(e.jobs)
	e.workers.Wait()
	return e.result(), err
}

// play is the controller: it follows the profile until the load ends, then drains.
func (e *engine) play(ctx context.Context) error {
	cfg := &e.cfg
	if !sleepUntil(ctx, e.start) {
		return ctx.Err()
	}
	share := e.spec.viewers()
	frac := 0.0
	if cfg.Viewers > 0 {
		frac = float64(share) / float64(cfg.Viewers)
	}
	if e.shard == 0 {
		h, err := e.spawn(time.Now(), true)
		if err != nil {
			return err
		}
		e.host = h
	}
	hardEnd := cfg.Duration - cfg.Drain
	loadEnd := e.sched.loadEnd(0)
	flat := cfg.Profile == ProfileFlat
	full := time.Duration(-1)
	if flat {
		loadEnd = hardEnd
	}
	// The host is one user: the gateway's chat rate limit (one line per 2 s by
	// default) holds for it too, whatever the Speed.
	hostChatEvery := max(cfg.scaled(cfg.HostChatEvery), 2*time.Second)
	hostChatAt := hostChatEvery / 2
	// The host pins every PinEvery (and at least 2 s apart), starting half a period in.
	pinEvery := max(cfg.scaled(cfg.PinEvery), 2*time.Second)
	pinAt := pinEvery / 2
	pins := 0
	sales := e.saleTimes(0) // flat: set once the room is full
	nextSale := 0
	if flat {
		sales = nil
	}
	var churnAcc, chatAcc, cheerAcc float64
	sec := 1
	last := time.Now()
	t50 := time.NewTicker(50 * time.Millisecond)
	defer t50.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-t50.C:
			t := now.Sub(e.start)
			dt := now.Sub(last).Seconds()
			last = now
			e.reap()

			// Audience: follow the curve, plus churn.
			want := int(math.Round(e.sched.online(t) * float64(share)))
			churnAcc += e.sched.churn(t) * dt * frac
			k := int(churnAcc)
			churnAcc -= float64(k)
			n := len(e.active)
			joins, leaves := k, k
			if want > n {
				joins += want - n
			} else {
				leaves += n - want
			}
			for range leaves {
				if !e.retire(now) {
					break
				}
			}
			for range joins {
				if _, err := e.spawn(now, false); err != nil {
					return err
				}
			}
			if flat && full < 0 && e.stats.connected.Load() >= int64(share) {
				full = t
				e.fullAt = t
				sales = e.saleTimes(full)
				loadEnd = min(hardEnd, e.sched.loadEnd(full))
			}

			// Chat: this shard's share of the room's rate.
			rate := e.sched.chatRate(t)
			if flat {
				rate = 0
				if full >= 0 {
					rate = e.sched.chatRate(t - full)
				}
			}
			chatAcc += rate * dt * frac
			for ; chatAcc >= 1; chatAcc-- {
				if v := e.pickSender(now); v != nil {
					v.lastChat = now
					e.enqueueChat(v)
				}
			}
			if e.host != nil && !flat && t >= hostChatAt && t < loadEnd {
				hostChatAt += hostChatEvery
				e.enqueueChat(e.host)
			}
			if e.host != nil && (!flat || full >= 0) && t >= pinAt && t < loadEnd {
				pinAt = t + pinEvery
				pins++
				e.enqueueAct(e.host, pendingCmd{kind: idPin, n: pins})
			}

			// Flash sales: the host pins them; every shard's viewers press.
			if e.host != nil && nextSale < len(sales) && t >= sales[nextSale] && t < loadEnd {
				e.pinSale(nextSale, now)
				nextSale++
			}
			e.scheduleSales()
			e.pressDue(now)

			// Cheers: taps coalesced into one command per viewer every ≥ 0.5 s, at most
			// 10 taps each (the gateway credits 20 taps/s per user).
			cheerRate := e.sched.cheerRate(t)
			if flat {
				cheerRate = 0
				if full >= 0 && t-full < cfg.scaled(cfg.Hold) {
					cheerRate = max(0, cfg.FlatCheerRate)
				}
			}
			cheerAcc += cheerRate * dt * frac
			for cheerAcc >= 1 {
				n := min(int(cheerAcc), 10)
				v := e.pickCheerer(now)
				if v == nil {
					break
				}
				v.lastCheer = now
				cheerAcc -= float64(n)
				e.enqueueAct(v, pendingCmd{kind: idCheer, count: n})
			}

			// Heartbeats, resends and leaves that are due.
			e.runDue(now)
			for {
				it, ok := e.beats.popDue(now)
				if !ok {
					break
				}
				if it.v.leaving || it.v.finished {
					continue
				}
				e.enqueue(job{v: it.v, kind: jobPing})
				jit := 0.8 + 0.4*e.rng.Float64()
				e.beats.push(it.at.Add(time.Duration(float64(cfg.Heartbeat)*jit)), it.v)
			}
			for {
				it, ok := e.closing.popDue(now)
				if !ok {
					break
				}
				if it.v.hasPending() && it.v.joined.Load() {
					// Answers still due: a person waits for the spinner too.
					e.closing.push(now.Add(250*time.Millisecond), it.v)
					continue
				}
				it.v.leaveSent = true
				e.enqueue(job{v: it.v, kind: jobLeave})
			}

			for t >= time.Duration(sec)*time.Second {
				e.emitTick(sec)
				sec++
			}
			if t >= loadEnd {
				break loop
			}
		}
	}
	return e.drain(ctx, &sec)
}
