package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// User is who sent a line, as shown to viewers.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

// ChatLine is a line a viewer sends. CID is the client's id for it: sending the same
// (user, CID) again within the dedupe window stores nothing new.
type ChatLine struct {
	User User
	Text string
	CID  string
}

// ChatAck says where a line was stored.
type ChatAck struct {
	Seq       uint64
	Duplicate bool
}

// chatPayload is what LR_CHAT stores: the chat event without seq and ts, which the
// stream supplies.
type chatPayload struct {
	User User   `json:"user"`
	Text string `json:"text"`
	CID  string `json:"cid"`
}

const (
	headerRole = "Lr-Role"
	headerUser = "Lr-User"
)

// ErrBadEvent is returned when an event from NATS does not have the expected form.
var ErrBadEvent = errors.New("fanout: malformed event")

// PublishChat stores a line in the room's history and returns once JetStream has it.
// Every gateway with viewers in the room then receives it through its subscription.
func (h *Hub) PublishChat(ctx context.Context, room string, l ChatLine) (ChatAck, error) {
	if !ValidRoom(room) {
		return ChatAck{}, ErrBadRoom
	}
	data, err := json.Marshal(chatPayload(l))
	if err != nil {
		return ChatAck{}, err
	}
	msg := nats.NewMsg(chatSubject(room))
	msg.Data = data
	msg.Header.Set(headerRole, l.User.Role)
	msg.Header.Set(headerUser, l.User.ID)
	ack, err := h.js.PublishMsg(ctx, msg,
		jetstream.WithMsgID(room+"/"+l.User.ID+"/"+l.CID),
		jetstream.WithExpectStream(chatStream))
	if err != nil {
		return ChatAck{}, fmt.Errorf("fanout: publish chat: %w", err)
	}
	return ChatAck{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// chatEvent splices seq and ts into a stored payload without decoding it again.
func chatEvent(seq uint64, ts time.Time, payload []byte) ([]byte, error) {
	if len(payload) < 2 || payload[0] != '{' || !json.Valid(payload) {
		return nil, ErrBadEvent
	}
	b := make([]byte, 0, len(payload)+48)
	b = append(b, `{"type":"chat","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts.UnixMilli(), 10)
	b = append(b, ',')
	return append(b, payload[1:]...), nil
}
