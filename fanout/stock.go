package fanout

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Flash-sale stock as room state. Every change of a sale's pool in LR_FLASH is
// re-published by JetStream to "lr.ev.<room>.stock", which the room's subscription
// receives on every gateway with viewers in the room. The pool changes once per lease
// (hundreds of times a second while a sale is hot), so each item's newest value is sent
// to viewers at most every stockInterval, and at once when the item sells out: "sold
// out" is never held back (it leaves in the next tick). Stock events ride the room's
// tick frame as state key "stock/<item>": the newest of the tick, never dropped.

// stockInterval is the shortest time between two stock frames of one item (4 Hz: at
// least 1 Hz while the stock changes). A large room (LargeRoomViewers local viewers)
// gets largeRoomStockInterval instead: during a herd every stock frame is a socket
// write per viewer, and a sale's 1 Hz is enough to watch the stock fall.
const (
	stockInterval          = 250 * time.Millisecond
	largeRoomStockInterval = time.Second
)

// stockEvery is the room's current stockInterval.
func (r *room) stockEvery() time.Duration {
	if r.large() {
		return largeRoomStockInterval
	}
	return stockInterval
}

// roomStock is the stock part of a room. Lock order: the room's flushMu, then mu
// (frames are delivered with both held, so they leave in version order and never
// between a joining viewer's snapshot and its first frames).
type roomStock struct {
	mu     sync.Mutex
	items  map[string]*stockItem
	timer  *time.Timer // armed while some item has a version not yet sent
	armed  bool
	loaded bool // read from LR_FLASH by the room's first join
	closed bool
}

type stockItem struct {
	version uint64 // the LR_FLASH revision of the newest record seen
	event   []byte
	sent    uint64 // the version last sent
	sentAt  time.Time
}

// stockEvent is the `stock` event (docs/protocol.md, "Flash sale").
type stockEvent struct {
	Type         string `json:"type"`
	Item         string `json:"item"`
	Sale         string `json:"sale"`
	Stock        int    `json:"stock"`
	Left         int    `json:"left"`
	SoldOut      bool   `json:"sold_out"`
	StartsAt     int64  `json:"starts_at"`
	PerUserLimit int    `json:"per_user_limit"`
	Version      uint64 `json:"version"`
}

// onStock handles a re-published sale record.
func (r *room) onStock(m *nats.Msg) {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	s := &r.stock
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	item, it, soldOut := r.noteStock(m)
	if it == nil {
		return
	}
	now := time.Now()
	every := r.stockEvery()
	if soldOut || now.Sub(it.sentAt) >= every {
		r.sendStock(item, it, now)
		return
	}
	if !s.armed {
		s.armed = true
		d := every - now.Sub(it.sentAt)
		if s.timer == nil {
			s.timer = time.AfterFunc(d, r.flushStock)
		} else {
			s.timer.Reset(d)
		}
	}
}

// noteStock keeps a sale record if it is newer than what the room has, and returns
// its item (nil when it was not newer). Called with the stock mu held.
func (r *room) noteStock(m *nats.Msg) (string, *stockItem, bool) {
	if m.Header.Get("KV-Operation") != "" {
		return "", nil, false // a delete or purge of the sale: nothing to show
	}
	ver, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	var rec saleRecord
	if err != nil || json.Unmarshal(m.Data, &rec) != nil || rec.Room != r.name || !ValidRoom(rec.Item) {
		r.hub.metrics.badEvents.Inc()
		return "", nil, false
	}
	s := &r.stock
	if s.items == nil {
		s.items = map[string]*stockItem{}
	}
	it := s.items[rec.Item]
	if it == nil {
		it = &stockItem{}
		s.items[rec.Item] = it
	}
	if ver <= it.version {
		return "", nil, false
	}
	it.version = ver
	it.event, _ = json.Marshal(stockEvent{Type: "stock", Item: rec.Item, Sale: rec.Sale, Stock: rec.Stock,
		Left: rec.left(), SoldOut: rec.exhausted(), StartsAt: rec.StartsAt, PerUserLimit: rec.PerUserLimit, Version: ver})
	return rec.Item, it, rec.exhausted()
}

// flushStock sends every item whose newest version was held back.
func (r *room) flushStock() {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	s := &r.stock
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	if s.closed {
		return
	}
	now := time.Now()
	for _, item := range sortedKeys(s.items) {
		if it := s.items[item]; it.version > it.sent {
			r.sendStock(item, it, now)
		}
	}
}

// sendStock queues an item's newest event for every local viewer, in the room's next
// tick frame (state key "stock/<item>"). Called with flushMu and the stock mu held.
func (r *room) sendStock(item string, it *stockItem, now time.Time) {
	it.sent, it.sentAt = it.version, now
	r.queueState("stock/"+item, it.event)
}

// loadStock reads the room's sales from LR_FLASH, so that the first viewers get the
// stock in their join snapshot. Called once, by the room's first join, with flushMu
// held. Best effort: without it, viewers get the stock with its next change.
func (r *room) loadStock(ctx context.Context) {
	msgs, err := r.hub.multiLast(ctx, "KV_"+flashBucket, []string{"$KV." + flashBucket + ".sale." + r.name + ".*"})
	s := &r.stock
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded = true
	if err != nil {
		return
	}
	for _, m := range msgs {
		r.noteStock(m)
	}
}

// stockSnapshot returns the newest stock event of every item, for a joining viewer.
// Called with flushMu held.
func (r *room) stockSnapshot() []json.RawMessage {
	s := &r.stock
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []json.RawMessage
	for _, item := range sortedKeys(s.items) {
		out = append(out, s.items[item].event)
	}
	return out
}

func (r *room) closeStock() {
	s := &r.stock
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
}
