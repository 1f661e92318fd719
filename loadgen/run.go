package loadgen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Run replays cfg's profile against its targets and reports what happened. It dials
// nothing but cfg.Targets (loopback only unless AllowRemote), stops by itself after
// cfg.Duration, and holds at most PerProcess viewers in this process: above that it
// runs the viewers in child processes and merges their results. WebRTC viewers and
// the WHIP publisher (Config.WHEP, WHEPPublish) run in this process, beside them.
//
// The report is returned even with an error when something was measured.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	progress := cfg.Progress
	if progress == nil {
		progress = os.Stderr
	}
	n := (cfg.Viewers + cfg.PerProcess - 1) / cfg.PerProcess
	n = max(n, 1)
	// The children bound themselves by Duration; the parent allows them time to
	// start and to leave.
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+30*time.Second)
	defer cancel()
	began := time.Now()
	waitMedia, err := startMedia(ctx, &cfg, began, progress)
	if err != nil {
		return nil, err
	}
	if cfg.Viewers < 0 { // WebRTC only
		r := &Report{Profile: cfg.Profile, Room: cfg.Room, Speed: cfg.Speed, Shards: 1, Classes: map[string]ClassReport{}}
		r.WHEP = waitMedia()
		r.DurationS = time.Since(began).Seconds()
		if cerr := context.Cause(ctx); cerr != nil && !errors.Is(cerr, context.DeadlineExceeded) {
			return r, fmt.Errorf("loadgen: run interrupted: %w", cerr)
		}
		return r, nil
	}
	start := began
	if n > 1 {
		start = began.Add(2 * time.Second) // time for the children to start
	}
	sources := sourceAddrs(&cfg)
	specs := make([]shardSpec, n)
	for i := range specs {
		specs[i] = shardSpec{Config: cfg, Index: i, Count: n, StartUS: start.UnixMicro(), Sources: sources}
	}

	probeClient := dialClients(nil)[0]
	initial, probeErr := probeCheers(ctx, &cfg, probeClient)

	scr := newScraper(cfg.Targets)
	sctx, stopScrape := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		scr.run(sctx, start)
	}()
	agg := newAggregator(n, cfg.Viewers, progress, scr)

	var results []*shardResult
	if n == 1 {
		e := newEngine(specs[0])
		e.progress = agg.add
		var res *shardResult
		res, err = e.run(ctx)
		results = []*shardResult{res}
	} else {
		results, err = runChildren(ctx, &cfg, specs, agg)
	}
	stopScrape()
	wg.Wait()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = nil // the run's own bound; an interrupt is reported below
	}
	if cerr := context.Cause(ctx); cerr != nil && !errors.Is(cerr, context.DeadlineExceeded) {
		err = errors.Join(err, fmt.Errorf("loadgen: run interrupted: %w", cerr))
	}
	if len(results) == 0 {
		waitMedia()
		return nil, err
	}
	r := merge(&cfg, results)
	r.WHEP = waitMedia()
	if cfg.NATS != "" && r.Flash.Won > 0 {
		orders, oerr := checkOrders(context.WithoutCancel(ctx), cfg.NATS, r.wonOrders)
		if oerr != nil {
			r.Errors = withError(r.Errors, "orders_check", oerr)
		}
		r.Flash.Orders = orders
	}
	if probeErr == nil {
		r.Cheers.Measured = true
		r.Cheers.InitialTotal = initial
		// Every cheer was answered once stored; the gateway's view of the total may
		// trail its store by a batch, so look again a few times before calling it.
		for try := 0; ; try++ {
			final, err := probeCheers(context.WithoutCancel(ctx), &cfg, probeClient)
			if err != nil {
				r.Cheers.Measured = false
				r.Errors = withError(r.Errors, "cheer_probe", err)
				break
			}
			r.Cheers.settle(final)
			if r.Cheers.Exact || try == 4 {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	} else {
		r.Errors = withError(r.Errors, "cheer_probe", probeErr)
	}
	var peak int64
	r.Timeline, peak = agg.timeline()
	if n > 1 {
		r.ViewersPeak = peak
	}
	r.Gateways = scr.gateways(cfg.Targets)
	var top Sample
	for _, smp := range r.Timeline {
		if smp.Viewers > top.Viewers && smp.GatewayRSS > 0 {
			top = smp
		}
	}
	if top.Viewers > 0 {
		r.GatewayKiBPerViewer = top.GatewayRSS * 1024 / float64(top.Viewers)
	}
	r.DurationS = time.Since(began).Seconds()
	return r, err
}

func withError(m map[string]string, kind string, err error) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[kind] = err.Error()
	return m
}
