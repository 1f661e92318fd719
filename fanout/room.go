package fanout

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// room is one room as seen by one gateway: its local sinks, its NATS subscription, and
// the events collected for the next frame.
//
// Everything a viewer is sent by the room leaves in the room's tick frame: the chat
// lines of the tick and the state changes of the tick, the latest value of each state
// key only (queueState). A viewer thus gets at most one frame per tick from a room,
// however many state keys change.
//
// Lock order: flushMu, then pendMu (released before sinksMu is taken). The hub shard's
// mu is never held while waiting for flushMu or sinksMu.
type room struct {
	// set in newRoom / openRoom
	hub    *Hub
	name   string
	prefix []byte // `{"type":"events","room":"<name>","events":[`
	sub    *nats.Subscription
	timer  *time.Timer
	refs   int // guarded by the hub shard's mu: sinks plus joins on their way in (hub.go)

	joins roomJoins // joins waiting to be admitted (joins.go)

	sinksMu sync.RWMutex // guards sinks and index
	sinks   []Sink
	nsinks  atomic.Int32 // len(sinks), read without the lock to pick the tick
	index   map[Sink]int

	pendMu     sync.Mutex // guards the fields below
	pending    []pendingEvent
	spare      []pendingEvent
	pendState  []stateEvent // state changes for the next frame, one per key
	spareState []stateEvent
	firstAt    time.Time
	lastFrame  time.Time // when the last flush with something to send began
	scheduled  bool
	closed     bool

	flushMu sync.Mutex // one flush at a time, so frames leave in order

	chat  roomChat  // chat memory, gap filling, sampling (chatroom.go)
	state roomState // pin, cheers, viewer counts, live (state.go)
	stock roomStock // flash-sale stock left (stock.go)
}

type pendingEvent struct {
	data []byte
	chat *chatEntry // set for chat stream entries (chatroom.go)
}

// stateEvent is the latest value of one state key ("pin", "cheers", "online", "live",
// "slow_mode", "stock/<item>") waiting for the next frame.
type stateEvent struct {
	key  string
	data []byte
}

func newRoom(h *Hub, name string) *room {
	r := &room{
		hub:    h,
		name:   name,
		prefix: []byte(`{"type":"events","room":"` + name + `","events":[`),
		index:  make(map[Sink]int),
	}
	r.timer = time.AfterFunc(time.Hour, r.flush)
	r.timer.Stop()
	return r
}

// addSink adds s and reports whether it was not in the room yet.
func (r *room) addSink(s Sink) bool {
	r.sinksMu.Lock()
	defer r.sinksMu.Unlock()
	if _, ok := r.index[s]; ok {
		return false
	}
	r.index[s] = len(r.sinks)
	r.sinks = append(r.sinks, s)
	r.nsinks.Store(int32(len(r.sinks)))
	return true
}

// removeSink removes s and reports whether it was in the room.
func (r *room) removeSink(s Sink) bool {
	r.sinksMu.Lock()
	defer r.sinksMu.Unlock()
	i, ok := r.index[s]
	if !ok {
		return false
	}
	last := len(r.sinks) - 1
	r.sinks[i] = r.sinks[last]
	r.index[r.sinks[i]] = i
	r.sinks[last] = nil
	r.nsinks.Store(int32(last))
	r.sinks = r.sinks[:last]
	delete(r.index, s)
	r.chat.forget(s)
	return true
}

func (r *room) close() {
	if r.sub != nil {
		_ = r.sub.Unsubscribe()
	}
	r.pendMu.Lock()
	r.closed = true
	r.pendMu.Unlock()
	r.timer.Stop()
	r.closeState()
	r.closeStock()
}

// onMsg runs on the subscription's goroutine, in NATS order.
func (r *room) onMsg(m *nats.Msg) {
	kind := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	switch kind {
	case "chat":
		r.onChat(m)
	case "stock":
		r.onStock(m)
	default:
		if !r.onState(kind, m) {
			r.hub.metrics.badEvents.Inc()
		}
	}
}

// add queues an encoded event for the next frame, arming the tick if it is the first.
func (r *room) add(data []byte) { r.addEvent(pendingEvent{data: data}) }

func (r *room) addEvent(ev pendingEvent) {
	r.pendMu.Lock()
	defer r.pendMu.Unlock()
	if r.closed {
		return
	}
	r.noteFirstLocked()
	r.pending = append(r.pending, ev)
	r.armLocked()
}

// queueState puts the latest value of a state key into the next frame: a value queued
// earlier in the same tick is replaced (state is latest-wins; pins, stock and cheer
// totals carry a version or only grow, so the newest covers the older ones).
func (r *room) queueState(key string, data []byte) {
	r.pendMu.Lock()
	defer r.pendMu.Unlock()
	if r.closed {
		return
	}
	for i := range r.pendState {
		if r.pendState[i].key == key {
			r.pendState[i].data = data
			r.hub.statem.stateCoalesced.Inc()
			return
		}
	}
	r.noteFirstLocked()
	r.pendState = append(r.pendState, stateEvent{key: key, data: data})
	r.armLocked()
}

// noteFirstLocked notes when the first event of the next frame arrived. pendMu held.
func (r *room) noteFirstLocked() {
	if len(r.pending) == 0 && len(r.pendState) == 0 {
		r.firstAt = time.Now()
	}
}

// armLocked schedules the flush of the next frame. pendMu held.
func (r *room) armLocked() {
	if !r.scheduled {
		r.scheduled = true
		r.timer.Reset(r.delay())
	}
}

// flush sends what was collected as one frame to every local sink.
func (r *room) flush() {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()

	r.pendMu.Lock()
	events, states, firstAt := r.pending, r.pendState, r.firstAt
	r.pending, r.spare = r.spare[:0], nil
	r.pendState, r.spareState = r.spareState[:0], nil
	r.scheduled = false
	if len(events) > 0 || len(states) > 0 {
		r.lastFrame = time.Now()
	}
	r.pendMu.Unlock()
	if len(events) == 0 && len(states) == 0 {
		return
	}

	stateOnly := r.stateFrame(states, firstAt)
	shared, own := r.chatFlush(events, states, stateOnly, firstAt)
	f := r.tickFrame(shared, states, stateOnly, firstAt)
	if f != nil {
		r.hub.metrics.batchEvents.Observe(float64(f.Events))
	}
	clear(events)
	clear(states)
	r.pendMu.Lock()
	if r.spare == nil {
		r.spare = events[:0]
	}
	if r.spareState == nil {
		r.spareState = states[:0]
	}
	r.pendMu.Unlock()

	r.sinksMu.RLock()
	for _, s := range r.sinks {
		if of := own[s]; of != nil {
			s.Deliver(of) // the shared events plus this viewer's own sampled-out lines
		} else if f != nil {
			s.Deliver(f)
		}
	}
	r.sinksMu.RUnlock()
}

// tickFrame is a tick's frame: the chat events, then the state changes; nil if there
// are neither. Chat alone is ClassStream (a slow viewer may lose it). State alone is
// ClassState, never dropped; with a single key it keeps that key, so a slow viewer's
// queue replaces it with a newer one of the same key. Chat and state together are one
// ClassStream frame whose State is the state-only frame (stateOnly, shared by every
// frame of the tick): a queue that drops the frame keeps its state.
func (r *room) tickFrame(chat []pendingEvent, states []stateEvent, stateOnly *Frame, firstAt time.Time) *Frame {
	if len(chat) == 0 {
		return stateOnly
	}
	return &Frame{Data: r.encodeWith(chat, states), Class: ClassStream, Received: firstAt,
		Events: len(chat) + len(states), State: stateOnly}
}

// stateFrame is the frame of a tick's state changes alone; nil if there are none.
func (r *room) stateFrame(states []stateEvent, firstAt time.Time) *Frame {
	if len(states) == 0 {
		return nil
	}
	f := &Frame{Data: r.encodeWith(nil, states), Class: ClassState, Received: firstAt, Events: len(states)}
	if len(states) == 1 {
		f.Key = r.name + "/" + states[0].key
	}
	return f
}

// encode builds `{"type":"events","room":"r","events":[e1,e2,...]}` in one allocation.
func (r *room) encode(events []pendingEvent) []byte { return r.encodeWith(events, nil) }

// encodeWith encodes events followed by the state events.
func (r *room) encodeWith(events []pendingEvent, states []stateEvent) []byte {
	n := len(r.prefix) + 2 + len(events) + len(states)
	for _, e := range events {
		n += len(e.data)
	}
	for _, s := range states {
		n += len(s.data)
	}
	b := make([]byte, 0, n)
	b = append(b, r.prefix...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.data...)
	}
	for i, s := range states {
		if i > 0 || len(events) > 0 {
			b = append(b, ',')
		}
		b = append(b, s.data...)
	}
	return append(b, ']', '}')
}

// delay is how long the room collects events before its next frame, counted from the
// first of them: Tick. A room with LargeRoomViewers local viewers, where the number of
// socket writes (viewers × frames per second), not the delay, is what limits the
// gateway, sends its frames at least LargeRoomTick apart instead: in a burst each
// frame holds LargeRoomTick's events, while an event after a quiet spell still waits
// only Tick. pendMu held.
func (r *room) delay() time.Duration {
	d := r.hub.cfg.Tick
	if r.large() {
		d = max(d, r.hub.cfg.LargeRoomTick-time.Since(r.lastFrame))
	}
	return d
}

// large reports whether the room has LargeRoomViewers local viewers.
func (r *room) large() bool {
	return int(r.nsinks.Load()) >= r.hub.cfg.LargeRoomViewers
}
