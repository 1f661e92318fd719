package fanout

import (
	"encoding/json"
	"sort"
	"time"
)

// entryKind says what a chat stream entry is. Lines and the moderators' tombstones share
// one JetStream subject per room, so that they are ordered together and recovered
// together.
type entryKind uint8

const (
	kindLine entryKind = iota
	kindDelete
)

// chatEntry is one stored entry of a room's chat stream, decoded once.
type chatEntry struct {
	seq    uint64
	prev   uint64    // the room's previous entry as JetStream saw it (Nats-Last-Sequence); 0 if none or unknown
	at     time.Time // when JetStream stored it: the same on every gateway
	kind   entryKind
	target uint64 // kindDelete: the seq of the line it hides
	user   string
	role   string
	data   []byte // the encoded event, shared by every frame and snapshot that carries it

	deleted bool // kindLine: hidden by a later tombstone
}

// priority reports whether the entry is always delivered, even in a sampled room.
func (e *chatEntry) priority() bool {
	return e.kind == kindDelete || e.role == "host" || e.role == "moderator"
}

// chatLog is a room's most recent chat entries in the gateway's memory. Its window is a
// contiguous run of the room's stream: when the gateway holds it, every entry after the
// window's first is in it, in order. Guarded by the room's flushMu.
type chatLog struct {
	max     int
	entries []chatEntry // the window is the last max entries
	lastSeq uint64      // seq of the newest entry ever appended (kept when the window is cleared)
}

func (l *chatLog) window() []chatEntry {
	if len(l.entries) > l.max {
		return l.entries[len(l.entries)-l.max:]
	}
	return l.entries
}

// append adds e (newer than every entry) and applies it if it is a tombstone.
func (l *chatLog) append(e chatEntry) {
	if e.kind == kindDelete {
		l.markDeleted(e.target)
	}
	if len(l.entries) >= 2*l.max {
		n := copy(l.entries, l.entries[len(l.entries)-l.max+1:])
		clear(l.entries[n:])
		l.entries = l.entries[:n]
	}
	l.entries = append(l.entries, e)
	l.lastSeq = e.seq
}

// reset empties the window, after a gap the gateway could not fill: the window must stay
// contiguous. lastSeq is kept.
func (l *chatLog) reset() {
	clear(l.entries)
	l.entries = l.entries[:0]
}

func (l *chatLog) find(seq uint64) *chatEntry {
	w := l.window()
	i := sort.Search(len(w), func(i int) bool { return w[i].seq >= seq })
	if i < len(w) && w[i].seq == seq {
		return &w[i]
	}
	return nil
}

func (l *chatLog) markDeleted(seq uint64) {
	if e := l.find(seq); e != nil && e.kind == kindLine {
		e.deleted = true
	}
}

// first is the seq of the oldest entry in the window, 0 when it is empty.
func (l *chatLog) first() uint64 {
	if w := l.window(); len(w) > 0 {
		return w[0].seq
	}
	return 0
}

// recent returns the last n visible lines (not deleted), oldest first.
func (l *chatLog) recent(n int) []json.RawMessage {
	w := l.window()
	var out []json.RawMessage
	for i := len(w) - 1; i >= 0 && len(out) < n; i-- {
		if w[i].kind == kindLine && !w[i].deleted {
			out = append(out, w[i].data)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// missed returns what a viewer that saw everything up to since is missing, from the
// entries es (oldest first): lines after since that are still visible, and tombstones
// after since for lines the viewer already has.
func missed(es []chatEntry, since uint64, out []json.RawMessage) []json.RawMessage {
	for i := range es {
		e := &es[i]
		if e.seq <= since {
			continue
		}
		switch {
		case e.kind == kindLine && !e.deleted:
			out = append(out, e.data)
		case e.kind == kindDelete && e.target <= since:
			out = append(out, e.data)
		}
	}
	return out
}
