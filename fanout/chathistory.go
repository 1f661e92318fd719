package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reading a room's chat history from JetStream.
//
// Reads use the stream's batched direct get ($JS.API.DIRECT.GET.LR_CHAT with
// next_by_subj and batch, nats-server 2.11+, AllowDirect on the stream): one request,
// the stored messages stream back to an inbox, ended by a "204 EOB" status. No consumer
// is created, so a reconnect storm of viewers creates none either.

const headerKind = "Lr-Kind" // "delete" for a tombstone; absent for a line

// deletePayload is what a tombstone stores in LR_CHAT.
type deletePayload struct {
	Line uint64 `json:"line"`
	By   User   `json:"by"`
}

// decodeEntry turns a stored or re-published LR_CHAT message into an entry.
func decodeEntry(m *nats.Msg) (chatEntry, error) {
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return chatEntry{}, ErrBadEvent
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
	if err != nil {
		return chatEntry{}, ErrBadEvent
	}
	prev, _ := strconv.ParseUint(m.Header.Get("Nats-Last-Sequence"), 10, 64)
	e := chatEntry{seq: seq, prev: prev, at: ts, user: m.Header.Get(headerUser), role: m.Header.Get(headerRole)}
	if m.Header.Get(headerKind) == "delete" {
		var p deletePayload
		if json.Unmarshal(m.Data, &p) != nil || p.Line == 0 {
			return chatEntry{}, ErrBadEvent
		}
		e.kind, e.target = kindDelete, p.Line
		e.data, err = spliceEvent("delete", seq, ts, m.Data)
	} else {
		e.data, err = chatEvent(seq, ts, m.Data)
	}
	if err != nil {
		return chatEntry{}, err
	}
	return e, nil
}

// spliceEvent builds `{"type":typ,"seq":N,"ts":MS,<payload fields>}`.
func spliceEvent(typ string, seq uint64, ts time.Time, payload []byte) ([]byte, error) {
	if len(payload) < 2 || payload[0] != '{' || !json.Valid(payload) {
		return nil, ErrBadEvent
	}
	b := make([]byte, 0, len(payload)+48)
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts.UnixMilli(), 10)
	b = append(b, ',')
	return append(b, payload[1:]...), nil
}

// directGetRequest is the JetStream direct get request (JSApiMsgGetRequest).
type directGetRequest struct {
	Seq     uint64 `json:"seq"`
	NextFor string `json:"next_by_subj"`
	Batch   int    `json:"batch"`
}

// readChat returns the room's stored entries with from <= seq < below (below 0: no
// upper bound), oldest first, at most max of them.
func (h *Hub) readChat(ctx context.Context, room string, from, below uint64, max int) ([]chatEntry, error) {
	if from == 0 {
		from = 1
	}
	var out []chatEntry
	for len(out) < max {
		more, last, err := h.readChatBatch(ctx, room, from, below, max-len(out), &out)
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
		from = last + 1
	}
	return out, nil
}

// readChatBatch runs one batched direct get. more says the server stopped early (its
// byte limit) with entries left before below.
func (h *Hub) readChatBatch(ctx context.Context, room string, from, below uint64, n int, out *[]chatEntry) (more bool, last uint64, err error) {
	inbox := h.nc.NewRespInbox()
	sub, err := h.nc.SubscribeSync(inbox)
	if err != nil {
		return false, 0, fmt.Errorf("fanout: chat history: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, _ := json.Marshal(directGetRequest{Seq: from, NextFor: chatSubject(room), Batch: n})
	if err := h.nc.PublishRequest("$JS.API.DIRECT.GET."+chatStream, inbox, req); err != nil {
		return false, 0, fmt.Errorf("fanout: chat history: %w", err)
	}
	got := 0
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return false, 0, fmt.Errorf("fanout: chat history: %w", err)
		}
		switch m.Header.Get("Status") {
		case "":
		case "404": // nothing stored at or after from
			return false, last, nil
		case "204": // end of batch
			pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return pending > 0 && got < n && (below == 0 || last+1 < below), last, nil
		default:
			return false, 0, fmt.Errorf("fanout: chat history: status %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
		}
		e, err := decodeEntry(m)
		if err != nil {
			h.metrics.badEvents.Inc()
			continue
		}
		got++
		last = e.seq
		if below != 0 && e.seq >= below {
			continue // the rest arrives live; drain to EOB
		}
		*out = append(*out, e)
	}
}
