package loadgen

import (
	"encoding/json"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram counts durations in log-linear buckets: each power of two of microseconds
// is split into histSub equal buckets, so every value is kept within 1/histSub (~3 %)
// of its true value from 1 µs to ~19 hours. Buckets are plain counts, so histograms of
// different viewers, intervals and processes merge exactly by adding them.
//
// Record is safe for concurrent use and does not allocate.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64 // µs
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits // linear buckets per power of two
	histExp     = 36               // 2^36 µs ≈ 19 h
	histBuckets = (histExp + 1) * histSub
)

// bucketOf maps a value in µs to its bucket index.
func bucketOf(us int64) int {
	if us < histSub {
		if us < 0 {
			us = 0
		}
		return int(us)
	}
	e := bits.Len64(uint64(us)) - 1 // us in [2^e, 2^(e+1))
	sub := int(uint64(us)>>(e-histSubBits)) - histSub
	i := (e-histSubBits+1)*histSub + sub
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// bucketUpper is the largest value in µs that falls into bucket i.
func bucketUpper(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	e := i/histSub + histSubBits - 1
	sub := i%histSub + histSub
	return int64(sub+1)<<(e-histSubBits) - 1
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	us := d.Microseconds()
	h.counts[bucketOf(us)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max is the largest recorded value.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) * time.Microsecond }

// Quantile returns the value below which fraction q of the recorded values fall,
// rounded up to its bucket's upper bound (but never above Max). Zero when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			us := min(bucketUpper(i), h.max.Load())
			return time.Duration(us) * time.Microsecond
		}
	}
	return h.Max()
}

// Merge adds every count of o into h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	for {
		m, om := h.max.Load(), o.max.Load()
		if om <= m || h.max.CompareAndSwap(m, om) {
			return
		}
	}
}

// histJSON is the wire form: only the non-empty buckets, as [index, count] pairs.
type histJSON struct {
	Buckets [][2]uint64 `json:"buckets"`
	MaxUS   int64       `json:"max_us"`
}

// MarshalJSON writes the raw buckets so that a parent process can merge them exactly.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	var w histJSON
	for i := range h.counts {
		if c := h.counts[i].Load(); c != 0 {
			w.Buckets = append(w.Buckets, [2]uint64{uint64(i), c})
		}
	}
	w.MaxUS = h.max.Load()
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON wrote, replacing h's contents.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var w histJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	h.Reset()
	for _, bc := range w.Buckets {
		if bc[0] < histBuckets {
			h.counts[bc[0]].Add(bc[1])
			h.n.Add(bc[1])
		}
	}
	h.max.Store(w.MaxUS)
	return nil
}

// Reset empties h. Not atomic with respect to concurrent Record calls.
func (h *Histogram) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.n.Store(0)
	h.max.Store(0)
}
