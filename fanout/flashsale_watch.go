package fanout

import (
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// watchPools follows every change of every sale's pool in LR_FLASH, for as long as
// the engine runs. A change to a loaded sale updates what this gateway knows of it
// (units left, sold out) without a read of its own, so presses that cannot win are
// answered from memory as soon as another gateway sells the stock. A new sale, or a
// change to one not loaded here, loads it: by the time the countdown ends, its
// seller runs and follows the sale's orders, and the herd's first presses do not
// queue behind a read of LR_FLASH.
func (f *FlashSales) watchPools() error {
	// The watch's subscription lives as long as the context it is made with: the
	// engine's, not the caller's.
	w, err := f.kv.WatchAll(f.ctx, jetstream.UpdatesOnly(), jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("fanout: watch %s: %w", flashBucket, err)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-f.ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil && e.Operation() == jetstream.KeyValuePut {
					f.notePool(e)
				}
			}
		}
	}()
	return nil
}

// notePool takes in one pool change seen by the watch.
func (f *FlashSales) notePool(e jetstream.KeyValueEntry) {
	rec, err := decodeRecord(e)
	if err != nil {
		return
	}
	f.mu.Lock()
	s := f.sales[e.Key()]
	if s == nil && !f.closed && f.loading[e.Key()] == nil && !rec.exhausted() {
		s = f.startLocked(e.Key(), rec)
	}
	f.mu.Unlock()
	if s == nil {
		return
	}
	s.observe(rec)
	if rec.exhausted() {
		// Answer the presses queued here now: the seller may be inside a round trip
		// that a saturated gateway takes hundreds of milliseconds to finish.
		s.shed()
	}
}
