package fanout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Config tunes a Hub. The zero value is a sensible default for every field.
type Config struct {
	// Tick is how long a room collects events before sending them as one frame.
	// Default 50ms.
	Tick time.Duration
	// ChatHistory is how many chat lines JetStream keeps per room. Default 1000.
	ChatHistory int64
	// ChatDedupeWindow is how long a resent chat line (same user and client id) is
	// recognised as a duplicate. Default 10 minutes.
	ChatDedupeWindow time.Duration
	// Replicas is the JetStream replication of the streams the hub creates: 1 on one
	// machine, 3 on a cluster. Default 1.
	Replicas int
	// SubscribeTimeout bounds the round trip that makes a new room subscription
	// effective before the joining viewer is answered. Default 2s.
	SubscribeTimeout time.Duration

	// LargeRoomTick is the least time between two frames of a room with at least
	// LargeRoomViewers viewers on this gateway: in a burst, fewer and fuller frames;
	// an event after a quiet spell still goes out after Tick. Default 100ms.
	LargeRoomTick time.Duration
	// LargeRoomViewers is where a room counts as large. Default 5000.
	LargeRoomViewers int

	// ChatMemory is how many recent chat entries each room keeps in the gateway's
	// memory for snapshots and recoveries; older ones are read from JetStream (under
	// the room's lock: keep it large enough that reconnects recover from memory, about
	// 14 s of a 220 lines/s burst by default). Default 3000.
	ChatMemory int
	// ChatSnapshot is how many recent lines a join without `since` (or a reset) gets.
	// Default 50.
	ChatSnapshot int
	// ChatRecoverMax is the most entries a recovery sends; a viewer missing more gets a
	// reset. Default 500.
	ChatRecoverMax int
	// ChatBudget is the most ordinary chat lines per second a viewer is shown; above it
	// the room samples them (host, moderator and the viewer's own lines always pass).
	// Default 20.
	ChatBudget float64

	// State tunes cheers, viewer counts and pins (statestreams.go).
	State StateConfig
}

func (c Config) withDefaults() Config {
	if c.Tick <= 0 {
		c.Tick = 50 * time.Millisecond
	}
	if c.ChatHistory <= 0 {
		c.ChatHistory = 1000
	}
	if c.ChatDedupeWindow <= 0 {
		c.ChatDedupeWindow = 10 * time.Minute
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.SubscribeTimeout <= 0 {
		c.SubscribeTimeout = 2 * time.Second
	}
	c.LargeRoomTick = cmp.Or(max(c.LargeRoomTick, 0), 100*time.Millisecond)
	c.LargeRoomViewers = cmp.Or(max(c.LargeRoomViewers, 0), 5000)
	c.ChatMemory = cmp.Or(max(c.ChatMemory, 0), 3000)
	c.ChatSnapshot = cmp.Or(max(c.ChatSnapshot, 0), 50)
	c.ChatRecoverMax = cmp.Or(max(c.ChatRecoverMax, 0), 500)
	if c.ChatBudget <= 0 {
		c.ChatBudget = 20
	}
	c.State = c.State.withDefaults()
	return c
}

const shardCount = 64

// Hub is one gateway's view of its rooms: which local sinks watch which room, and the
// one NATS subscription per room that feeds them.
type Hub struct {
	// set in New
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	metrics *metrics
	seed    maphash.Seed
	chatm   *chatMetrics  // chatmetrics.go
	mod     *moderation   // moderation.go
	statem  *stateMetrics // statemetrics.go
	cheers  *cheerer      // cheers.go
	viewers *viewerLoop   // viewers.go

	shards [shardCount]shard
}

// shard holds a slice of the rooms. Joins and leaves of one room happen under its
// shard's lock, so subscribing and unsubscribing never race.
type shard struct {
	mu     sync.Mutex
	rooms  map[string]*room
	closed bool
}

// ErrClosed is returned by Join after Close.
var ErrClosed = errors.New("fanout: hub closed")

// New creates the JetStream streams the hub needs (idempotently: every gateway calls
// it) and returns a hub with no rooms.
func New(ctx context.Context, cfg Config, nc *nats.Conn, reg prometheus.Registerer) (*Hub, error) {
	cfg = cfg.withDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("fanout: jetstream: %w", err)
	}
	if err := ensureStreams(ctx, js, cfg); err != nil {
		return nil, err
	}
	if err := ensureStateStreams(ctx, js, cfg); err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, nc: nc, js: js, seed: maphash.MakeSeed()}
	h.metrics = newMetrics(reg, h.roomCount)
	h.chatm = newChatMetrics(reg)
	if h.mod, err = startModeration(ctx, h); err != nil {
		return nil, err
	}
	for i := range h.shards {
		h.shards[i].rooms = make(map[string]*room)
	}
	h.statem = newStateMetrics(reg)
	if h.cheers, err = newCheerer(h); err != nil {
		h.mod.close()
		return nil, err
	}
	h.viewers = newViewerLoop(h)
	return h, nil
}

func (h *Hub) shardFor(room string) *shard {
	return &h.shards[maphash.String(h.seed, room)%shardCount]
}

// Join adds s to room's local viewers. The first local viewer of a room makes the hub
// subscribe to the room's events; Join returns once that subscription is effective,
// so the viewer misses nothing published after Join returns.
func (h *Hub) Join(roomName string, s Sink) error {
	if !ValidRoom(roomName) {
		return ErrBadRoom
	}
	r, err := h.acquire(roomName)
	if err != nil {
		return err
	}
	if !r.addSink(s) {
		h.release(roomName, r) // already in: its ref is held
	}
	return nil
}

// Leave removes s from room. The last local viewer leaving drops the subscription.
func (h *Hub) Leave(roomName string, s Sink) {
	r := h.room(roomName)
	if r != nil && r.removeSink(s) {
		h.release(roomName, r)
	}
}

// acquire returns the room called name, opening it if needed, with one more ref: the
// room stays open until every ref is released. A ref is held by each sink in the room
// and by each join on its way in.
func (h *Hub) acquire(name string) (*room, error) {
	sh := h.shardFor(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.closed {
		return nil, ErrClosed
	}
	r := sh.rooms[name]
	if r == nil {
		var err error
		if r, err = h.openRoom(name); err != nil {
			return nil, err
		}
		sh.rooms[name] = r
	}
	r.refs++
	return r, nil
}

// release drops a ref of r; the last one closes the room.
func (h *Hub) release(name string, r *room) {
	sh := h.shardFor(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if r.refs--; r.refs > 0 {
		return
	}
	if sh.rooms[name] == r { // else Close has closed it
		delete(sh.rooms, name)
		r.close()
	}
}

func (h *Hub) openRoom(name string) (*room, error) {
	r := newRoom(h, name)
	sub, err := h.nc.Subscribe(roomEventsSubject(name), r.onMsg)
	if err != nil {
		return nil, fmt.Errorf("fanout: subscribe %s: %w", name, err)
	}
	// Unlimited pending: a room's subscription is drained by one fast callback, and
	// dropping events here would lose state. NATS itself bounds what it buffers.
	_ = sub.SetPendingLimits(-1, -1)
	if err := h.nc.FlushTimeout(h.cfg.SubscribeTimeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("fanout: subscribe %s: %w", name, err)
	}
	r.sub = sub
	return r, nil
}

// Close drops every room subscription. Sinks are not told; the gateway closes its
// connections itself.
func (h *Hub) Close() {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for name, r := range sh.rooms {
			r.close()
			delete(sh.rooms, name)
		}
		sh.closed = true
		sh.mu.Unlock()
	}
	h.mod.close()
	h.cheers.close()
	h.viewers.close()
}

func (h *Hub) roomCount() float64 {
	n := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		n += len(sh.rooms)
		sh.mu.Unlock()
	}
	return float64(n)
}
