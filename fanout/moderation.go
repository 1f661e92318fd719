package fanout

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Moderation: bans, mutes and slow mode live in the JetStream KV bucket LR_MOD, so that
// every gateway sees them and a gateway that starts later loads them. Each gateway
// watches the whole bucket with ONE watcher (not one per room or viewer) and keeps the
// values in memory, so checks on join and chat cost no round trip.
//
// Keys: "<room>.ban.<user>", "<room>.mute.<user>", "<room>.slow", where <user> is the
// user id in unpadded base64url (user ids may hold characters keys may not).
//
// Deleted lines are not in the bucket: a delete is a tombstone entry in the room's chat
// stream (LR_CHAT), ordered with the lines, so that live viewers, recoveries and
// snapshots all apply it in the same place.

const modBucket = "LR_MOD"

// modValue is what a key of LR_MOD stores.
type modValue struct {
	Until   int64  `json:"until,omitempty"`   // mute: unix ms
	Seconds int    `json:"seconds,omitempty"` // slow mode
	By      string `json:"by"`                // the moderator's user id
}

type moderation struct {
	// set in startModeration
	hub      *Hub
	kv       jetstream.KeyValue
	w        jetstream.KeyWatcher
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed when the watch loop has ended

	mu    sync.RWMutex // guards the maps below
	bans  map[string]struct{}
	mutes map[string]int64 // until, unix ms
	slow  map[string]int   // room → seconds

	lastMu   sync.Mutex // guards lastLine
	lastLine map[string]time.Time
}

func modKey(room, kind, user string) string {
	k := room + "." + kind
	if user != "" {
		k += "." + base64.RawURLEncoding.EncodeToString([]byte(user))
	}
	return k
}

func roomUser(room, user string) string { return room + "\x00" + user }

// startModeration creates the bucket, loads it, and starts watching it.
func startModeration(ctx context.Context, h *Hub) (*moderation, error) {
	kv, err := h.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      modBucket,
		Description: "liveroom moderation: bans, mutes, slow mode per room",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    h.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("fanout: kv %s: %w", modBucket, err)
	}
	// The watcher outlives ctx (which only bounds the start); stop ends it.
	w, err := kv.WatchAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("fanout: watch %s: %w", modBucket, err)
	}
	m := &moderation{
		hub: h, kv: kv, w: w,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		bans:     make(map[string]struct{}),
		mutes:    make(map[string]int64),
		slow:     make(map[string]int),
		lastLine: make(map[string]time.Time),
	}
	// Initial values, up to the nil marker.
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("fanout: watch %s ended", modBucket)
			}
			if e != nil {
				m.apply(e)
				continue
			}
		case <-ctx.Done():
			_ = w.Stop()
			return nil, fmt.Errorf("fanout: load %s: %w", modBucket, ctx.Err())
		}
		break
	}
	go m.loop()
	return m, nil
}

func (m *moderation) loop() {
	defer close(m.done)
	for {
		select {
		case e, ok := <-m.w.Updates():
			if !ok {
				return
			}
			if e != nil {
				m.apply(e)
			}
		case <-m.stop:
			return
		}
	}
}

func (m *moderation) close() {
	m.stopOnce.Do(func() {
		close(m.stop)
		_ = m.w.Stop()
	})
	<-m.done
}

// apply records one bucket update and acts on the local viewers.
func (m *moderation) apply(e jetstream.KeyValueEntry) {
	parts := strings.SplitN(e.Key(), ".", 3)
	if len(parts) < 2 {
		return
	}
	room, kind := parts[0], parts[1]
	var user string
	if len(parts) == 3 {
		b, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			return
		}
		user = string(b)
	}
	put := e.Operation() == jetstream.KeyValuePut
	var v modValue
	if put && json.Unmarshal(e.Value(), &v) != nil {
		return
	}
	m.mu.Lock()
	switch kind {
	case "ban":
		if put {
			m.bans[roomUser(room, user)] = struct{}{}
		} else {
			delete(m.bans, roomUser(room, user))
		}
	case "mute":
		if put {
			m.mutes[roomUser(room, user)] = v.Until
		} else {
			delete(m.mutes, roomUser(room, user))
		}
	case "slow":
		if put && v.Seconds > 0 {
			m.slow[room] = v.Seconds
		} else {
			delete(m.slow, room)
			v.Seconds = 0
		}
	}
	m.mu.Unlock()

	// After the maps: a viewer joining now either sees the ban in JoinRoom's second
	// check or is found here.
	r := m.hub.room(room)
	if r == nil {
		return
	}
	switch {
	case kind == "ban" && put:
		for _, s := range r.chat.sinksOf(user) {
			if b, ok := s.(BanSink); ok {
				m.hub.chatm.kicks.Inc()
				b.Banned(room)
			}
		}
	case kind == "slow":
		r.queueState("slow_mode", slowModeEvent(v.Seconds))
	}
}

func slowModeEvent(seconds int) []byte {
	return fmt.Appendf(nil, `{"type":"slow_mode","seconds":%d}`, seconds)
}

func (m *moderation) banned(room, user string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.bans[roomUser(room, user)]
	return ok
}

func (m *moderation) slowMode(room string) int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.slow[room]
}

// Banned reports whether user is banned from room.
func (h *Hub) Banned(room, user string) bool { return h.mod.banned(room, user) }

// MutedUntil returns when user's mute in room ends, and whether it is muted now.
func (h *Hub) MutedUntil(room, user string, now time.Time) (time.Time, bool) {
	h.mod.mu.RLock()
	until, ok := h.mod.mutes[roomUser(room, user)]
	h.mod.mu.RUnlock()
	t := time.UnixMilli(until)
	return t, ok && now.Before(t)
}

// SlowMode returns room's slow mode (minimum time between one user's lines), 0 for off.
func (h *Hub) SlowMode(room string) time.Duration {
	return time.Duration(h.mod.slowMode(room)) * time.Second
}

// ReserveLine enforces slow mode for one user's line: it returns 0 and records now when
// the user may send, or how long it has to wait. The record is per gateway: a user who
// sends through two gateways at once gets at most one line per gateway per period.
func (h *Hub) ReserveLine(room, user string, now time.Time) time.Duration {
	period := h.SlowMode(room)
	if period <= 0 {
		return 0
	}
	m := h.mod
	k := roomUser(room, user)
	m.lastMu.Lock()
	defer m.lastMu.Unlock()
	if last, ok := m.lastLine[k]; ok && now.Sub(last) < period {
		return period - now.Sub(last)
	}
	if len(m.lastLine) >= 4096 {
		for k2, t := range m.lastLine { // forget users whose period has surely passed
			if now.Sub(t) > 10*time.Minute {
				delete(m.lastLine, k2)
			}
		}
	}
	m.lastLine[k] = now
	return 0
}

// Ban bans user from room on every gateway; its connections in the room are closed.
func (h *Hub) Ban(ctx context.Context, room, user string, by User) error {
	return h.modPut(ctx, "ban", modKey(room, "ban", user), modValue{By: by.ID})
}

// Unban lifts a ban.
func (h *Hub) Unban(ctx context.Context, room, user string) error {
	return h.modDelete(ctx, "unban", modKey(room, "ban", user))
}

// Mute stops user from chatting in room for d (0 lifts a mute) and returns its end.
func (h *Hub) Mute(ctx context.Context, room, user string, d time.Duration, by User) (time.Time, error) {
	if d <= 0 {
		return time.Time{}, h.modDelete(ctx, "unmute", modKey(room, "mute", user))
	}
	until := time.Now().Add(d)
	return until, h.modPut(ctx, "mute", modKey(room, "mute", user), modValue{Until: until.UnixMilli(), By: by.ID})
}

// SetSlowMode sets room's slow mode in seconds; 0 turns it off. Every viewer of the
// room gets a slow_mode event.
func (h *Hub) SetSlowMode(ctx context.Context, room string, seconds int, by User) error {
	if seconds <= 0 {
		return h.modDelete(ctx, "slow_mode", modKey(room, "slow", ""))
	}
	return h.modPut(ctx, "slow_mode", modKey(room, "slow", ""), modValue{Seconds: seconds, By: by.ID})
}

func (h *Hub) modPut(ctx context.Context, action, key string, v modValue) error {
	if !ValidRoom(key[:strings.IndexByte(key, '.')]) {
		return ErrBadRoom
	}
	data, _ := json.Marshal(v)
	if _, err := h.mod.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("fanout: %s: %w", action, err)
	}
	h.chatm.modActions[action].Inc()
	return nil
}

func (h *Hub) modDelete(ctx context.Context, action, key string) error {
	if !ValidRoom(key[:strings.IndexByte(key, '.')]) {
		return ErrBadRoom
	}
	if err := h.mod.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("fanout: %s: %w", action, err)
	}
	h.chatm.modActions[action].Inc()
	return nil
}

// ErrNoSuchLine is returned by DeleteLine for a seq that is not a chat line of the room.
var ErrNoSuchLine = errors.New("fanout: no such chat line in this room")

// DeleteLine hides the line seq of room: it stores a tombstone in the room's chat
// stream, which every viewer receives as a `delete` event and which later snapshots and
// recoveries apply. Deleting a line twice stores one tombstone.
func (h *Hub) DeleteLine(ctx context.Context, room string, seq uint64, by User) (ChatAck, error) {
	if !ValidRoom(room) {
		return ChatAck{}, ErrBadRoom
	}
	es, err := h.readChat(ctx, room, seq, seq+1, 1)
	if err != nil {
		return ChatAck{}, err
	}
	if len(es) != 1 || es[0].seq != seq || es[0].kind != kindLine {
		return ChatAck{}, ErrNoSuchLine
	}
	data, _ := json.Marshal(deletePayload{Line: seq, By: by})
	msg := nats.NewMsg(chatSubject(room))
	msg.Data = data
	msg.Header.Set(headerKind, "delete")
	msg.Header.Set(headerRole, by.Role)
	msg.Header.Set(headerUser, by.ID)
	ack, err := h.js.PublishMsg(ctx, msg,
		jetstream.WithMsgID(fmt.Sprintf("%s/delete/%d", room, seq)),
		jetstream.WithExpectStream(chatStream))
	if err != nil {
		return ChatAck{}, fmt.Errorf("fanout: publish delete: %w", err)
	}
	h.chatm.modActions["delete"].Inc()
	return ChatAck{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}
