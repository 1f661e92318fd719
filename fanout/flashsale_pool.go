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

// lease takes up to n units for this gateway, reclaiming expired leases of other
// gateways on the way. It retries on a conflicting write.
func (f *FlashSales) lease(ctx context.Context, key string, n int) (leaseResult, error) {
	n = min(n, f.cfg.MaxLease)
	for {
		e, err := f.kv.Get(ctx, key)
		if err != nil {
			return leaseResult{}, err
		}
		rec, err := decodeRecord(e)
		if err != nil {
			return leaseResult{}, err
		}
		changed, err := f.reclaim(ctx, rec)
		if err != nil {
			return leaseResult{}, err
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
			return res, nil
		}
		if err := f.write(ctx, key, rec, e.Revision()); err != nil {
			if isWrongLastSeq(err) {
				f.metrics.casConflicts.Inc()
				continue
			}
			return leaseResult{}, err
		}
		return res, nil
	}
}

// settle ends a lease: units sold are counted, units not sold go back to Free. If the
// lease was reclaimed meanwhile (this gateway was too slow), the reclaimer already
// accounted for its units and settle changes nothing.
func (f *FlashSales) settle(ctx context.Context, key, id string, sold int, unused []int) (*saleRecord, error) {
	for {
		e, err := f.kv.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		rec, err := decodeRecord(e)
		if err != nil {
			return nil, err
		}
		if _, ok := rec.Leases[id]; !ok {
			return rec, nil
		}
		delete(rec.Leases, id)
		rec.Sold += sold
		rec.Free = append(rec.Free, unused...)
		if err := f.write(ctx, key, rec, e.Revision()); err != nil {
			if isWrongLastSeq(err) {
				f.metrics.casConflicts.Inc()
				continue
			}
			return nil, err
		}
		return rec, nil
	}
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
