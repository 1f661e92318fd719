package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A room's state on one gateway: the pin, the cheer total, the viewer reports of every
// gateway, the unique-viewer sketch and the live status. It is loaded from JetStream
// when the room opens on this gateway (before the first viewer's join reply) and then
// kept current by the room's subscription; every value is versioned or monotonic, so
// an update that arrives while the load runs is never lost or reverted.
//
// Each change reaches viewers in the room's next tick frame (room.queueState), the
// latest value of each kind per tick; frames with state are never dropped.

// StateSnapshot is the room state a joining viewer gets (docs/protocol.md, "Snapshot").
type StateSnapshot struct {
	Pin    *PinState       `json:"pin"`
	Cheers int64           `json:"cheers"`
	Online int             `json:"online"`
	Unique uint64          `json:"unique"`
	Live   json.RawMessage `json:"live"`
	// Stock is the newest `stock` event of each flash-sale item of the room (stock.go).
	Stock []json.RawMessage `json:"stock,omitempty"`
}

// PinState is a room's pin: Product is null once unpinned. Version is the pin's
// JetStream sequence: it only grows, and is the same on every gateway.
type PinState struct {
	Version uint64          `json:"version"`
	Product json.RawMessage `json:"product"`
}

var offline = json.RawMessage(`{"live":false}`)

type viewerReport struct {
	n  int
	at time.Time // when JetStream stored it
}

// roomState is the state part of a room. mu is taken after the room's flushMu.
type roomState struct {
	mu          sync.Mutex
	loaded      bool
	pin         *PinState
	cheers      int64
	cheerArmed  bool      // a cheers frame is due (cheerTimer runs, or sendCheers is being called)
	cheerSentAt time.Time // when the last cheers frame was queued
	cheerTimer  *time.Timer
	reports     map[string]viewerReport // gateway → its last report
	sentOnline  int
	sentUnique  uint64
	unique      *hyperloglog.Sketch // merged: this gateway's joins and every stored sketch
	uniqueNew   bool                // users added since the sketch was last published
	live        json.RawMessage
	closed      bool
}

func (s *roomState) init() {
	if s.reports == nil {
		s.reports = make(map[string]viewerReport)
		s.unique = hyperloglog.New14()
		s.sentOnline = -1
		s.live = offline
	}
}

// loadState reads the room's state from JetStream. Called with flushMu held, once,
// by the first join.
func (r *room) loadState(ctx context.Context) error {
	h := r.hub
	pin, err := h.lastMsg(ctx, pinStream, pinSubject(r.name))
	if err != nil && !errors.Is(err, errNoMsg) {
		return err
	}
	total, err := h.readCheerTotal(ctx, r.name)
	if err != nil {
		return err
	}
	reports, err := h.multiLast(ctx, viewersStream, []string{viewersRoomFilter(r.name)})
	if err != nil {
		return err
	}
	sketches, err := h.multiLast(ctx, uniqueStream, []string{uniqueRoomFilter(r.name)})
	if err != nil {
		return err
	}
	live := h.readLive(ctx, r.name)

	s := &r.state
	if pin != nil {
		r.setPin(pin, false)
	}
	r.setCheers(total, false)
	for _, m := range reports {
		r.setReport(m)
	}
	r.mergeSketches(sketches)
	s.mu.Lock()
	s.init()
	if live != nil && s.live == nil || live != nil && string(s.live) == string(offline) {
		s.live = live
	}
	s.loaded = true
	s.mu.Unlock()
	h.statem.stateLoads.Inc()
	return nil
}

// readLive reads the room's live status from media's LR_LIVE stream; nil when there
// is none (no stream yet, or no status: offline).
func (h *Hub) readLive(ctx context.Context, room string) json.RawMessage {
	req, _ := json.Marshal(map[string]string{"last_by_subj": liveSubject(room)})
	m, err := h.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+liveStream, req)
	if err != nil {
		return nil
	}
	var resp struct {
		Message *struct {
			Data []byte `json:"data"`
		} `json:"message"`
	}
	if json.Unmarshal(m.Data, &resp) != nil || resp.Message == nil || !json.Valid(resp.Message.Data) {
		return nil
	}
	return resp.Message.Data
}

// snapshot is what a joining viewer gets. Called with flushMu held.
func (r *room) snapshot() *StateSnapshot {
	s := &r.state
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	snap := &StateSnapshot{Pin: s.pin, Cheers: s.cheers, Online: s.online(r.hub.cfg.State.ViewerTTL), Unique: s.unique.Estimate(), Live: s.live}
	if s.sentOnline >= 0 {
		// What the room's viewers were last sent: the viewer loop sends a count only when
		// it differs from that, so a joining viewer given a fresher sum would keep it if
		// the sum then went back to the value sent.
		snap.Online, snap.Unique = s.sentOnline, s.sentUnique
	}
	if s.live == nil {
		snap.Live = offline
	}
	snap.Stock = r.stockSnapshot()
	return snap
}

// online sums the reports that have not expired. Called with mu held.
func (s *roomState) online(ttl time.Duration) int {
	n := 0
	now := time.Now()
	for gw, rep := range s.reports {
		if now.Sub(rep.at) > ttl {
			delete(s.reports, gw)
			continue
		}
		n += rep.n
	}
	return n
}

// onState handles a re-published state message; false if kind is not state.
func (r *room) onState(kind string, m *nats.Msg) bool {
	switch kind {
	case "cheer":
		r.setCheers(counterValue(m.Data), true)
	case "pin":
		r.setPin(m, true)
	case "viewers":
		r.setReport(m) // broadcast by the viewer loop, about once a second
	case "live":
		if len(m.Data) > 2 && m.Data[0] == '{' && json.Valid(m.Data) {
			r.state.mu.Lock()
			r.state.init()
			r.state.live = append(json.RawMessage(nil), m.Data...)
			r.state.mu.Unlock()
			// The media status becomes a typed event: {"type":"live",<status fields>}.
			r.sendState("live", append([]byte(`{"type":"live",`), m.Data[1:]...))
		}
	default:
		return false
	}
	r.hub.statem.stateEvents.Inc()
	return true
}

func (r *room) setPin(m *nats.Msg, broadcast bool) {
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil || !json.Valid(m.Data) {
		r.hub.metrics.badEvents.Inc()
		return
	}
	var stored struct {
		Product json.RawMessage `json:"product"`
	}
	if json.Unmarshal(m.Data, &stored) != nil {
		r.hub.metrics.badEvents.Inc()
		return
	}
	if len(stored.Product) == 0 {
		stored.Product = json.RawMessage("null")
	}
	s := &r.state
	s.mu.Lock()
	if s.pin != nil && s.pin.Version >= seq {
		s.mu.Unlock()
		return
	}
	p := &PinState{Version: seq, Product: stored.Product}
	s.pin = p
	s.mu.Unlock()
	if !broadcast {
		return
	}
	ev, _ := json.Marshal(struct {
		Type string `json:"type"`
		*PinState
	}{"pin", p})
	r.sendState("pin", ev)
}

// setCheers records a total; broadcast sends it to the room's viewers in the next tick
// frame, at once if no cheers frame went in the last CheerStateInterval, else when it
// ends (with the newest total then). So a lone change waits for no timer, and a burst
// still costs at most one cheers frame per CheerStateInterval.
func (r *room) setCheers(total int64, broadcast bool) {
	s := &r.state
	s.mu.Lock()
	if total <= s.cheers {
		s.mu.Unlock()
		return
	}
	s.cheers = total
	if !broadcast || s.cheerArmed || s.closed {
		s.mu.Unlock()
		return
	}
	s.cheerArmed = true
	if wait := r.hub.cfg.State.CheerStateInterval - time.Since(s.cheerSentAt); wait > 0 {
		if s.cheerTimer == nil {
			s.cheerTimer = time.AfterFunc(wait, r.sendCheers)
		} else {
			s.cheerTimer.Reset(wait)
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	r.sendCheers()
}

func (r *room) sendCheers() {
	s := &r.state
	s.mu.Lock()
	s.cheerArmed = false
	s.cheerSentAt = time.Now()
	total := s.cheers
	s.mu.Unlock()
	ev := strconv.AppendInt([]byte(`{"type":"cheers","total":`), total, 10)
	r.sendState("cheers", append(ev, '}'))
}

func (r *room) setReport(m *nats.Msg) {
	var rep struct {
		N int `json:"n"`
	}
	at, err := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
	if err != nil || json.Unmarshal(m.Data, &rep) != nil {
		r.hub.metrics.badEvents.Inc()
		return
	}
	gw := gatewayOfSubject(m.Header.Get(jetstream.SubjectHeader))
	s := &r.state
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if old, ok := s.reports[gw]; !ok || !at.Before(old.at) {
		s.reports[gw] = viewerReport{n: rep.N, at: at}
	}
}

// noteUser adds a joining user to the room's unique viewers.
func (r *room) noteUser(user string) {
	if user == "" {
		return
	}
	s := &r.state
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.unique.Insert([]byte(user))
	s.uniqueNew = true
}

func (r *room) mergeSketches(msgs []*nats.Msg) {
	s := &r.state
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	for _, m := range msgs {
		var sk hyperloglog.Sketch
		if sk.UnmarshalBinary(m.Data) != nil || s.unique.Merge(&sk) != nil {
			r.hub.metrics.badEvents.Inc()
		}
	}
}

// sendState queues one state event for every local viewer of the room, in the next
// tick frame.
func (r *room) sendState(kind string, event []byte) {
	r.hub.statem.stateFrames[kind].Inc()
	r.queueState(kind, event)
}

// closeState stops the room's state timer. Called when the room closes.
func (r *room) closeState() {
	s := &r.state
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.cheerTimer != nil {
		s.cheerTimer.Stop()
	}
}

// noteCheerTotal records a total learnt from a publish ack.
func (h *Hub) noteCheerTotal(room string, total int64) {
	if r := h.room(room); r != nil {
		r.setCheers(total, true)
	}
}
