package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// FlashConfig tunes FlashSales. The zero value is a sensible default for every field.
type FlashConfig struct {
	// Gateway names this gateway in leases and orders. Default: a random id.
	Gateway string
	// Replicas is the JetStream replication of LR_ORDERS and LR_FLASH. Default 1.
	Replicas int
	// MaxLease is the most units one gateway takes from a sale's pool at a time.
	// Small leases keep stock from sitting on one gateway (and bound what a crashed
	// gateway's lease holds back for LeaseTTL); large ones need fewer pool writes while
	// a herd waits. A gateway leases only as many units as presses are waiting. Default
	// 64: with 16, the 30,000 presses/s herd waited ~32 rounds for the sell-out and 9 %
	// of the engine's answers took over 200 ms; with 64, 0.1 %.
	MaxLease int
	// LeaseTTL is how long a lease may stay out before another gateway may take its
	// units back (a gateway that died mid-sale). Default 5s.
	LeaseTTL time.Duration
	// SoldOutWait is how long a press may wait for units that other gateways hold on
	// lease before it is answered sold_out. Default 1s.
	SoldOutWait time.Duration
	// PressRate is how many presses per second one user may make on one sale through
	// one gateway (token bucket refill); a retry with the same cid is free. Default 2.
	PressRate float64
	// PressBurst is the token bucket's size. Default 5.
	PressBurst int
	// PublishTimeout bounds the wait for JetStream to store an order. Default 3s.
	PublishTimeout time.Duration
	// OrderMaxAge is how long LR_ORDERS keeps orders. Default 7 days.
	OrderMaxAge time.Duration
	// OrderDedupeWindow is how long JetStream remembers a user's order slots: a sale
	// must be over within it for the per-user limit to hold. Default 24h.
	OrderDedupeWindow time.Duration
	// SaleIdle is how long a sale with no presses stays loaded on this gateway (its
	// seller goroutine and what it remembers of each user); a later press loads it
	// again from LR_FLASH. Default 30 minutes.
	SaleIdle time.Duration
}

func (c FlashConfig) withDefaults() FlashConfig {
	if c.Gateway == "" {
		c.Gateway = "gw-" + newID()
	}
	setDef(&c.Replicas, 1)
	setDef(&c.MaxLease, 64)
	setDef(&c.LeaseTTL, 5*time.Second)
	setDef(&c.SoldOutWait, time.Second)
	setDef(&c.PressRate, 2)
	setDef(&c.PressBurst, 5)
	setDef(&c.PublishTimeout, 3*time.Second)
	setDef(&c.OrderMaxAge, 7*24*time.Hour)
	setDef(&c.OrderDedupeWindow, 24*time.Hour)
	setDef(&c.SaleIdle, 30*time.Minute)
	return c
}

func setDef[T int | float64 | time.Duration](p *T, def T) {
	if *p <= 0 {
		*p = def
	}
}

// AnswerKind is the outcome of a press.
type AnswerKind string

// The answers to a press (docs/protocol.md, "buy").
const (
	Won           AnswerKind = "won"
	SoldOut       AnswerKind = "sold_out"
	AlreadyBought AnswerKind = "already_bought"
	NotStarted    AnswerKind = "not_started"
	RateLimited   AnswerKind = "rate_limited"
)

var answerKinds = []AnswerKind{Won, SoldOut, AlreadyBought, NotStarted, RateLimited}

// Answer is what a press gets.
type Answer struct {
	Kind    AnswerKind
	OrderID string        // Won: the order intent's id; AlreadyBought: "" (the earlier press has it)
	Retry   time.Duration // RateLimited, NotStarted: when pressing again makes sense
	// final answers (won, already_bought, sold_out once the pool is exhausted) are
	// remembered per user and cid and replayed to a retried press.
	final bool
}

// Press is one "buy" press: a user, the item pinned in a room, and the client's id of
// the press (a retry carries the same CID).
type Press struct {
	Room, Item, User, CID string
	// Resend says the client sends this press again because it got no answer (a
	// reconnect, an unavailable error): it may have won already, on any gateway. A
	// first send of a press cannot have won, so once the sale sold out it is answered
	// at once; a resend waits until this gateway knows every winner of the sale.
	Resend bool
}

// Sale says how a flash sale is set up: taken from a pinned product's flash_sale.
type Sale struct {
	Room, Item   string
	Stock        int
	StartsAt     time.Time
	PerUserLimit int
}

// SaleInfo is a sale as stored.
type SaleInfo struct {
	ID string
	Sale
}

// Errors of FlashSales; callers branch on them.
var (
	ErrNoSale   = errors.New("fanout: no flash sale for this item")
	ErrBadItem  = errors.New("fanout: item must be 1-64 characters of A-Z a-z 0-9 _ -")
	ErrBadSale  = errors.New("fanout: flash sale needs stock >= 1 and per_user_limit >= 1")
	ErrBadPress = errors.New("fanout: press needs a user and a cid")
)

// FlashSales is one gateway's flash-sale engine: it answers presses for every sale
// of its viewers. Gateways share nothing but NATS: the sale's pool lives in the KV
// bucket LR_FLASH, the wins in the stream LR_ORDERS (docs/flashsale.md).
type FlashSales struct {
	// set in NewFlashSales
	cfg     FlashConfig
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	orders  jetstream.Stream
	metrics *flashMetrics
	ctx     context.Context // ends at Close: stops the sellers
	cancel  context.CancelFunc
	wg      sync.WaitGroup // one per seller goroutine

	mu      sync.Mutex // guards the fields below
	sales   map[string]*sale
	loading map[string]chan struct{} // sales being read from LR_FLASH; closed when done
	closed  bool
}

// NewFlashSales creates LR_ORDERS and LR_FLASH if needed (idempotent: every gateway
// calls it) and returns an engine with no sales loaded.
func NewFlashSales(ctx context.Context, cfg FlashConfig, nc *nats.Conn, reg prometheus.Registerer) (*FlashSales, error) {
	cfg = cfg.withDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("fanout: jetstream: %w", err)
	}
	orders, kv, err := ensureFlash(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	f := &FlashSales{cfg: cfg, js: js, kv: kv, orders: orders, sales: map[string]*sale{}, loading: map[string]chan struct{}{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.metrics = newFlashMetrics(reg)
	if err := f.watchPools(); err != nil {
		f.cancel()
		return nil, err
	}
	return f, nil
}

// Open starts a sale of item in room, or returns the running one when it has the
// same stock, start and limit (every gateway that sees the pin may call it).
// Different figures start a new sale of the item, with a new id.
func (f *FlashSales) Open(ctx context.Context, s Sale) (SaleInfo, error) {
	if !ValidRoom(s.Room) {
		return SaleInfo{}, ErrBadRoom
	}
	if !ValidRoom(s.Item) {
		return SaleInfo{}, ErrBadItem
	}
	if s.Stock < 1 || s.PerUserLimit < 1 {
		return SaleInfo{}, ErrBadSale
	}
	key := saleKey(s.Room, s.Item)
	for {
		rec := &saleRecord{Sale: newID(), Room: s.Room, Item: s.Item, Stock: s.Stock,
			StartsAt: s.StartsAt.UnixMilli(), PerUserLimit: s.PerUserLimit, Next: 1}
		e, err := f.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			data, _ := json.Marshal(rec)
			if _, err := f.kv.Create(ctx, key, data); err != nil {
				if isWrongLastSeq(err) {
					continue
				}
				return SaleInfo{}, fmt.Errorf("fanout: open sale: %w", err)
			}
		case err != nil:
			return SaleInfo{}, fmt.Errorf("fanout: open sale: %w", err)
		default:
			old, err := decodeRecord(e)
			if err != nil {
				return SaleInfo{}, err
			}
			if old.Stock == rec.Stock && old.StartsAt == rec.StartsAt && old.PerUserLimit == rec.PerUserLimit {
				rec = old
				break
			}
			if err := f.write(ctx, key, rec, e.Revision()); err != nil {
				if isWrongLastSeq(err) {
					continue
				}
				return SaleInfo{}, fmt.Errorf("fanout: open sale: %w", err)
			}
		}
		return SaleInfo{ID: rec.Sale, Sale: Sale{Room: rec.Room, Item: rec.Item, Stock: rec.Stock,
			StartsAt: time.UnixMilli(rec.StartsAt), PerUserLimit: rec.PerUserLimit}}, nil
	}
}

// Buy answers one press. It returns once the answer is final for this press: for Won,
// once the order intent is stored in LR_ORDERS. An error means the outcome is unknown
// (NATS did not answer in time): the client should retry with the same cid, and the
// retry gets the won order if this press won.
func (f *FlashSales) Buy(ctx context.Context, p Press) (Answer, error) {
	start := time.Now()
	if !ValidRoom(p.Room) {
		return Answer{}, ErrBadRoom
	}
	if !ValidRoom(p.Item) {
		return Answer{}, ErrBadItem
	}
	if p.User == "" || p.CID == "" {
		return Answer{}, ErrBadPress
	}
	var a Answer
	var err error
	for {
		var s *sale
		if s, err = f.sale(ctx, p.Room, p.Item); err != nil {
			return Answer{}, err
		}
		if a, err = s.press(ctx, p, start); !errors.Is(err, errSaleUnloaded) {
			break
		}
	}
	if err != nil {
		f.metrics.unavailable.Inc()
		return Answer{}, err
	}
	f.metrics.answered(a.Kind, time.Since(start))
	return a, nil
}

// sale returns the loaded sale for room and item, loading it (and starting its
// seller) on first use. Concurrent first presses share one read of LR_FLASH.
func (f *FlashSales) sale(ctx context.Context, room, item string) (*sale, error) {
	key := saleKey(room, item)
	for {
		f.mu.Lock()
		s, loading, closed := f.sales[key], f.loading[key], f.closed
		if s == nil && loading == nil && !closed {
			f.loading[key] = make(chan struct{})
		}
		f.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case s != nil:
			return s, nil
		case loading != nil:
			select {
			case <-loading:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return f.load(ctx, key)
	}
}

// load reads a sale from LR_FLASH and starts it. The caller registered the load in
// f.loading.
func (f *FlashSales) load(ctx context.Context, key string) (*sale, error) {
	rec, err := f.read(ctx, key)
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.loading[key])
	delete(f.loading, key)
	if err != nil {
		return nil, err
	}
	if f.closed {
		return nil, ErrClosed
	}
	return f.startLocked(key, rec), nil
}

func (f *FlashSales) read(ctx context.Context, key string) (*saleRecord, error) {
	e, err := f.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNoSale
	}
	if err != nil {
		return nil, fmt.Errorf("fanout: load sale: %w", err)
	}
	return decodeRecord(e)
}

// startLocked returns the sale of key, starting it from rec (and its seller) if it is
// not loaded. Caller holds f.mu and has checked f.closed.
func (f *FlashSales) startLocked(key string, rec *saleRecord) *sale {
	if s := f.sales[key]; s != nil {
		return s
	}
	s := newSale(f, key, rec)
	f.sales[key] = s
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		s.run()
	}()
	s.signal() // the seller starts following the sale's orders at once
	return s
}

// Close stops every seller; presses waiting for one get ErrClosed. It waits for the
// sellers to finish the batch they are publishing.
func (f *FlashSales) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
}

// newLimiter is a user's press bucket for one sale on this gateway.
func (f *FlashSales) newLimiter() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(f.cfg.PressRate), f.cfg.PressBurst)
}
