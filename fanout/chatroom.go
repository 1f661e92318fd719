package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/liveroom/liveroom/internal/chatbudget"
)

// A room's chat on one gateway: the recent lines in memory (for snapshots and
// recovery), gap detection on the live feed, and sampling in huge rooms.
//
// Everything here that touches the log runs under the room's flushMu: the flush, the
// join (which adds the viewer and computes what it is owed in one step, so that a line
// is either in what the join returns or in a later frame, never both and never
// neither), and the moderation state frames.

// roomChat is the chat part of a room.
type roomChat struct {
	// guarded by the room's flushMu
	log    chatLog
	loaded bool               // the log was filled from JetStream; before that it is not kept
	budget *chatbudget.Bucket // the chat budget (sampling); nil until the first line

	usersMu sync.Mutex // guards users and byUser; taken after sinksMu
	users   map[Sink]string
	byUser  map[string][]Sink
}

// BanSink is a Sink that can be told that its user was just banned from a room
// (the gateway closes the connection with 4004).
type BanSink interface {
	Sink
	Banned(room string)
}

// JoinOptions says who joins and what chat it already has.
type JoinOptions struct {
	// User is the viewer's user id. Its own lines reach it even when the room samples
	// them out for everybody else; a ban of User kicks it. Empty for none.
	User string
	// Since is the last chat seq the viewer saw; HasSince says it sent one.
	Since    uint64
	HasSince bool
	// Deadline, when set, is when the viewer stops waiting for the answer: a join that
	// only gets the room's locks after it is refused with ErrJoinLate without any work,
	// so a crowd of reconnects that timed out does not keep the room busy.
	Deadline time.Time
	// Joined is called once the sink is in the room and before any room frame reaches
	// it, with what the viewer is owed. The gateway queues its join reply there, so the
	// reply comes before every live frame. Required.
	Joined func(ChatJoin)
}

// ChatJoin is the chat a joining viewer gets (docs/protocol.md, "Chat recovery").
type ChatJoin struct {
	// Lines are encoded chat (and delete) events, oldest first: without Since the last
	// ChatSnapshot visible lines; with Since, exactly the events after it.
	Lines []json.RawMessage
	// Recovered says Lines are the events after Since (from memory or JetStream).
	Recovered bool
	// Reset is set when Since was older than the history kept: Lines is empty, and Reset
	// (a frame with one `reset` event carrying the recent lines) must be queued right
	// after the join reply.
	Reset *Frame
	// SlowMode is the room's slow mode in seconds, 0 for off.
	SlowMode int
	// State is the room's state: pin, cheer total, online count, live (state.go).
	State *StateSnapshot
}

// ErrJoinLate is returned by JoinRoom when the join's Deadline passed while it waited.
var ErrJoinLate = errors.New("fanout: join waited past its deadline")

// ErrBanned is returned by JoinRoom for a user banned from the room.
var ErrBanned = errors.New("fanout: user is banned from this room")

// JoinRoom adds s to the room like Join, and hands o.Joined the chat the viewer is owed:
// the recent lines, or what it missed since o.Since, or a reset. Joins are admitted in
// batches (joins.go).
func (h *Hub) JoinRoom(name string, s Sink, o JoinOptions) error {
	if !ValidRoom(name) {
		return ErrBadRoom
	}
	if o.User != "" && h.mod.banned(name, o.User) {
		return ErrBanned
	}
	if !o.Deadline.IsZero() && time.Now().After(o.Deadline) {
		h.chatm.joinsLate.Inc()
		return ErrJoinLate
	}
	r, err := h.acquire(name)
	if err != nil {
		return err
	}
	q := &joinReq{s: s, o: o, done: make(chan struct{})}
	r.join(q)
	if !q.kept {
		h.release(name, r)
	}
	return q.err
}

// loadChat fills the log from JetStream. Live lines that arrived meanwhile are pending
// and are de-duplicated by seq when flushed.
func (r *room) loadChat(ctx context.Context) error {
	h := r.hub
	es, err := h.readChat(ctx, r.name, 1, 0, int(h.cfg.ChatHistory))
	if err != nil {
		return err
	}
	r.chat.log.max = h.cfg.ChatMemory
	for _, e := range es {
		r.chat.log.append(e)
	}
	r.chat.loaded = true
	return nil
}

// chatJoin computes what a joining viewer is owed. Called with flushMu held.
func (r *room) chatJoin(ctx context.Context, o JoinOptions) (ChatJoin, error) {
	h, l := r.hub, &r.chat.log
	m := h.chatm
	if !o.HasSince {
		m.joinRecent.Inc()
		return ChatJoin{Lines: l.recent(h.cfg.ChatSnapshot)}, nil
	}
	if o.Since >= l.lastSeq {
		m.recoverMemory.Inc()
		return ChatJoin{Lines: []json.RawMessage{}, Recovered: true}, nil
	}
	if first := l.first(); first != 0 && first <= o.Since {
		lines := missed(l.window(), o.Since, []json.RawMessage{})
		if len(lines) > h.cfg.ChatRecoverMax {
			// Too much to send in one reply (it must fit the viewer's queue).
			m.recoverReset.Inc()
			return ChatJoin{Reset: r.resetFrame()}, nil
		}
		m.recoverMemory.Inc()
		return ChatJoin{Lines: lines, Recovered: true}, nil
	}
	// Older than the memory: JetStream, from the entry at since itself. If that entry is
	// no longer stored, the history limit has dropped it, and possibly lines after it.
	// Bounded by what the log holds (or, with an empty window, by the last entry
	// flushed): later entries reach the viewer live.
	below := l.first()
	if below == 0 {
		below = l.lastSeq + 1
	}
	es, err := h.readChat(ctx, r.name, o.Since, below, int(h.cfg.ChatHistory)+1)
	if err != nil {
		return ChatJoin{}, err
	}
	if len(es) == 0 || es[0].seq != o.Since || len(es) > h.cfg.ChatRecoverMax {
		m.recoverReset.Inc()
		return ChatJoin{Reset: r.resetFrame()}, nil
	}
	// Apply the tombstones (read here or in the memory) to the lines read here.
	bySeq := make(map[uint64]int, len(es))
	for i := range es {
		bySeq[es[i].seq] = i
	}
	for _, w := range [][]chatEntry{es, l.window()} {
		for _, e := range w {
			if i, ok := bySeq[e.target]; ok && e.kind == kindDelete && es[i].kind == kindLine {
				es[i].deleted = true
			}
		}
	}
	m.recoverJetStream.Inc()
	out := missed(es, o.Since, []json.RawMessage{})
	return ChatJoin{Lines: missed(l.window(), o.Since, out), Recovered: true}, nil
}

// resetFrame is `{"type":"events","room":R,"events":[{"type":"reset","lines":[...]}]}`
// with the room's recent lines. Called with flushMu held.
func (r *room) resetFrame() *Frame {
	lines := r.chat.log.recent(r.hub.cfg.ChatSnapshot)
	ev, _ := json.Marshal(struct {
		Type  string            `json:"type"`
		Lines []json.RawMessage `json:"lines"`
	}{"reset", append([]json.RawMessage{}, lines...)})
	return &Frame{Data: r.encode([]pendingEvent{{data: ev}}), Class: ClassReply, Events: 1}
}

// onChat runs on the subscription's goroutine for a re-published LR_CHAT message.
func (r *room) onChat(m *nats.Msg) {
	e, err := decodeEntry(m)
	if err != nil {
		r.hub.metrics.badEvents.Inc()
		return
	}
	r.hub.metrics.eventsChat.Inc()
	r.addEvent(pendingEvent{data: e.data, chat: &e})
}

// chatFlush prepares a tick's events, called by flush with flushMu held. It drops chat
// entries already seen, fills gaps from JetStream, keeps the log, and samples ordinary
// lines above the budget. It returns the events for the shared frame (events filtered
// in place) and, for viewers whose own lines were sampled out, a frame of their own:
// the shared events with their lines in place.
func (r *room) chatFlush(events []pendingEvent, states []stateEvent, stateOnly *Frame, firstAt time.Time) ([]pendingEvent, map[Sink]*Frame) {
	c, m := &r.chat, r.hub.chatm
	out := events[:0]
	type ownLine struct {
		at int // index in out it goes before
		ev pendingEvent
	}
	var own map[string][]ownLine
	keep := func(ev pendingEvent) {
		e := ev.chat
		if e == nil || e.priority() || c.take(r.hub, e.at) {
			out = append(out, ev)
			return
		}
		m.sampledOut.Inc()
		if e.user != "" && c.hasUser(e.user) {
			if own == nil {
				own = make(map[string][]ownLine)
			}
			own[e.user] = append(own[e.user], ownLine{len(out), ev})
		}
	}
	for _, ev := range events {
		e := ev.chat
		if e == nil || !c.loaded {
			keep(ev)
			continue
		}
		if e.seq <= c.log.lastSeq {
			m.duplicates.Inc()
			continue
		}
		if e.prev > c.log.lastSeq {
			for _, g := range r.fillGap(e.seq) {
				c.log.append(g)
				keep(pendingEvent{data: g.data, chat: &g})
			}
		}
		c.log.append(*e)
		keep(ev)
	}
	if len(own) == 0 {
		return out, nil
	}
	frames := make(map[Sink]*Frame)
	for user, lines := range own {
		merged := make([]pendingEvent, 0, len(out)+len(lines))
		j := 0
		for i := 0; i <= len(out); i++ {
			for j < len(lines) && lines[j].at == i {
				merged = append(merged, lines[j].ev)
				j++
			}
			if i < len(out) {
				merged = append(merged, out[i])
			}
		}
		f := r.tickFrame(merged, states, stateOnly, firstAt)
		for _, s := range c.sinksOf(user) {
			frames[s] = f
		}
		m.ownDelivered.Add(float64(len(lines)))
	}
	return out, frames
}

// fillGap reads the entries the live feed skipped, between the log's last and seq
// (after a NATS reconnect, for example). If JetStream cannot say, the log's window is
// cleared so that it stays contiguous: recoveries then read JetStream.
func (r *room) fillGap(seq uint64) []chatEntry {
	h, l := r.hub, &r.chat.log
	h.chatm.gaps.Inc()
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.SubscribeTimeout)
	defer cancel()
	es, err := h.readChat(ctx, r.name, l.lastSeq+1, seq, int(h.cfg.ChatHistory))
	if err != nil {
		h.chatm.gapsUnfilled.Inc()
		l.reset()
		return nil
	}
	h.chatm.gapLines.Add(float64(len(es)))
	return es
}

// take reports whether one more ordinary line, stored at `at`, may be shown: the room
// shows ChatBudget ordinary lines a second on average, in bursts of at most ChatBudget
// (internal/chatbudget). A quiet room's burst passes whole; a busy room is cut to the
// budget. Every viewer is shown the same sample, so the frame is still encoded once;
// and since the stored time is the same on every gateway, every gateway shows the
// same sample.
func (c *roomChat) take(h *Hub, at time.Time) bool {
	if c.budget == nil {
		c.budget = chatbudget.New(h.cfg.ChatBudget)
	}
	return c.budget.Take(at.UnixMicro())
}

func (c *roomChat) addUser(s Sink, user string) {
	if user == "" {
		return
	}
	c.usersMu.Lock()
	defer c.usersMu.Unlock()
	if c.users == nil {
		c.users, c.byUser = make(map[Sink]string), make(map[string][]Sink)
	}
	if _, ok := c.users[s]; ok {
		return
	}
	c.users[s] = user
	c.byUser[user] = append(c.byUser[user], s)
}

// forget removes s; called by removeSink.
func (c *roomChat) forget(s Sink) {
	c.usersMu.Lock()
	defer c.usersMu.Unlock()
	user, ok := c.users[s]
	if !ok {
		return
	}
	delete(c.users, s)
	ss := c.byUser[user]
	for i := range ss {
		if ss[i] == s {
			ss[i] = ss[len(ss)-1]
			ss[len(ss)-1] = nil
			ss = ss[:len(ss)-1]
			break
		}
	}
	if len(ss) == 0 {
		delete(c.byUser, user)
	} else {
		c.byUser[user] = ss
	}
}

func (c *roomChat) hasUser(user string) bool {
	c.usersMu.Lock()
	defer c.usersMu.Unlock()
	return len(c.byUser[user]) > 0
}

func (c *roomChat) sinksOf(user string) []Sink {
	c.usersMu.Lock()
	defer c.usersMu.Unlock()
	return append([]Sink(nil), c.byUser[user]...)
}

// room returns the open room called name, or nil.
func (h *Hub) room(name string) *room {
	sh := h.shardFor(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.rooms[name]
}
