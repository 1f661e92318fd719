package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// saleRecord is a sale's pool, the value of "sale.<room>.<item>" in LR_FLASH. Every
// change is a compare-and-swap on the key's revision, so gateways never hand out the
// same never-issued unit twice. The pool is only an allocator: the order stream's
// one-subject-per-unit rule is what forbids selling a unit twice (see docs/flashsale.md).
type saleRecord struct {
	Sale         string `json:"sale"`
	Room         string `json:"room"`
	Item         string `json:"item"`
	Stock        int    `json:"stock"`
	StartsAt     int64  `json:"starts_at"` // unix ms
	PerUserLimit int    `json:"per_user_limit"`

	// Units 1..Stock are, at any time, in exactly one place: never issued (>= Next),
	// Free (handed back), in a lease, or sold.
	Next   int                  `json:"next"`
	Free   []int                `json:"free,omitempty"`
	Sold   int                  `json:"sold"` // units known sold (stock left = Stock - Sold)
	Leases map[string]saleLease `json:"leases,omitempty"`

	rev uint64 // the KV revision this record was read at or written as; 0: unknown
}

// saleLease is a batch of units one gateway is selling right now.
type saleLease struct {
	Holder  string `json:"holder"`
	Units   []int  `json:"units"`
	Expires int64  `json:"expires"` // unix ms; after it any gateway may reclaim the units
}

// exhausted reports that every unit is sold: nothing left to issue, nothing handed
// back, nothing out on lease.
func (r *saleRecord) exhausted() bool {
	return r.Next > r.Stock && len(r.Free) == 0 && len(r.Leases) == 0
}

func (r *saleRecord) left() int { return max(r.Stock-r.Sold, 0) }

func decodeRecord(e jetstream.KeyValueEntry) (*saleRecord, error) {
	var r saleRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("fanout: sale record %s: %w", e.Key(), err)
	}
	r.rev = e.Revision()
	return &r, nil
}

// leaseResult is what one lease round trip returned.
type leaseResult struct {
	rec   *saleRecord // the record as written (or read, when nothing changed)
	id    string      // lease id, "" when no unit was leased
	units []int
}

// settlement is what a seller's round hands back to the pool: how many of the
// lease's units it sold, and the units to put back.
type settlement struct {
	id     string
	sold   int
	unused []int
}

// relet ends the seller's previous lease (prev, may be nil) and takes up to n new
// units (n may be 0: settle only), in one compare-and-swap, reclaiming expired leases
// of other gateways on the way. It starts from known, the freshest record this
// gateway has (from its own writes and the pool watch), and reads the record only
// when the write conflicts, or to confirm that there is nothing to do. Ending a
// lease is idempotent: a lease that is gone (reclaimed, or ended by a write whose
// answer was lost) is not accounted twice.
//
// After a conflict it retries from newer(rev), the first record newer than the one
// it wrote on that the pool watch delivers (nil: none came soon, read it). The watch
// pushes the winning write at once, where a read would cost a round trip in which
// a gateway selling round after round writes again: with reads, the other gateways'
// leases lost every race until its queue drained.
func (f *FlashSales) relet(ctx context.Context, key string, known *saleRecord, prev *settlement, n int,
	newer func(ctx context.Context, rev uint64) *saleRecord) (leaseResult, error) {
	n = min(n, f.cfg.MaxLease)
	rec, fresh := known, false
	for {
		if rec == nil {
			e, err := f.kv.Get(ctx, key)
			if err != nil {
				return leaseResult{}, err
			}
			if rec, err = decodeRecord(e); err != nil {
				return leaseResult{}, err
			}
			fresh = true
		}
		rec = rec.clone()
		changed, err := f.reclaim(ctx, rec)
		if err != nil {
			return leaseResult{}, err
		}
		if prev != nil {
			if _, ok := rec.Leases[prev.id]; ok {
				delete(rec.Leases, prev.id)
				rec.Sold += prev.sold
				rec.Free = append(rec.Free, prev.unused...)
				changed = true
			}
		}
		var units []int
		for len(units) < n && len(rec.Free) > 0 {
			units = append(units, rec.Free[0])
			rec.Free = rec.Free[1:]
		}
		for len(units) < n && rec.Next <= rec.Stock {
			units = append(units, rec.Next)
			rec.Next++
		}
		res := leaseResult{rec: rec, units: units}
		if len(units) > 0 {
			res.id = newID()
			if rec.Leases == nil {
				rec.Leases = map[string]saleLease{}
			}
			rec.Leases[res.id] = saleLease{Holder: f.cfg.Gateway, Units: units, Expires: time.Now().Add(f.cfg.LeaseTTL).UnixMilli()}
			changed = true
		}
		if !changed {
			if !fresh {
				rec = nil // nothing to do on what we knew: make sure on what is stored
				continue
			}
			return res, nil
		}
		base := rec.rev
		if err := f.write(ctx, key, rec, base); err != nil {
			if isWrongLastSeq(err) {
				f.metrics.casConflicts.Inc()
				rec, fresh = nil, false
				if newer != nil {
					rec = newer(ctx, base)
				}
				continue
			}
			return leaseResult{}, err
		}
		return res, nil
	}
}

// clone copies what relet changes: Free and Leases (a lease's units are never
// changed in place).
func (r *saleRecord) clone() *saleRecord {
	c := *r
	c.Free = append([]int(nil), r.Free...)
	if r.Leases != nil {
		c.Leases = make(map[string]saleLease, len(r.Leases))
		for id, l := range r.Leases {
			c.Leases[id] = l
		}
	}
	return &c
}

// reclaim moves the units of expired leases (a dead or stuck gateway's) back: each
// unit that has an order is counted sold, the others go to Free. A stuck holder that
// sells one of them later is harmless: the unit's order subject refuses a second
// order, and whoever finds the unit taken counts it then.
func (f *FlashSales) reclaim(ctx context.Context, rec *saleRecord) (bool, error) {
	now := time.Now().UnixMilli()
	changed := false
	for _, id := range sortedKeys(rec.Leases) {
		l := rec.Leases[id]
		if l.Expires > now {
			continue
		}
		for _, u := range l.Units {
			_, err := f.orders.GetLastMsgForSubject(ctx, orderSubject(rec.Room, rec.Sale, u))
			switch {
			case err == nil:
				rec.Sold++
			case errors.Is(err, jetstream.ErrMsgNotFound):
				rec.Free = append(rec.Free, u)
			default:
				return false, err
			}
		}
		delete(rec.Leases, id)
		f.metrics.leasesReclaimed.Inc()
		changed = true
	}
	return changed, nil
}

// write stores rec if the key is still at revision rev, and sets rec.rev to the new
// revision.
func (f *FlashSales) write(ctx context.Context, key string, rec *saleRecord, rev uint64) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	rec.rev, err = f.kv.Update(ctx, key, data, rev)
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
