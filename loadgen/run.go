package loadgen

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"
)

// Run replays cfg's profile against its targets and reports what happened. It dials
// nothing but cfg.Targets (loopback only unless AllowRemote), stops by itself after
// cfg.Duration, and holds at most PerProcess viewers in this process: above that it
// runs the viewers in child processes and merges their results.
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
	start := began
	if n > 1 {
		start = began.Add(2 * time.Second) // time for the children to start
	}
	sources := sourceAddrs(&cfg)
	specs := make([]shardSpec, n)
	for i := range specs {
		specs[i] = shardSpec{Config: cfg, Index: i, Count: n, StartUS: start.UnixMicro(), Sources: sources}
	}

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
	var err error
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
	if errors.Is(err, context.DeadlineExceeded) {
		err = nil // the run's own bound
	}
	if len(results) == 0 {
		return nil, err
	}
	r := merge(&cfg, results)
	var peak int64
	r.Timeline, peak = agg.timeline()
	if n > 1 {
		r.ViewersPeak = peak
	}
	r.Gateways = scr.gateways(cfg.Targets)
	r.DurationS = time.Since(began).Seconds()
	return r, err
}
