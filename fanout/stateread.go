package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Reading room state from JetStream with direct gets (AllowDirect on the stream): no
// consumer is created, and any replica may answer.

// errNoMsg is returned by lastMsg when the subject holds nothing.
var errNoMsg = errors.New("fanout: no message")

// lastMsg returns the last message stored on subject in stream.
func (h *Hub) lastMsg(ctx context.Context, stream, subject string) (*nats.Msg, error) {
	m, err := h.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream+"."+subject, nil)
	if err != nil {
		return nil, fmt.Errorf("fanout: read %s: %w", subject, err)
	}
	switch m.Header.Get("Status") {
	case "":
		return m, nil
	case "404":
		return nil, errNoMsg
	default:
		return nil, fmt.Errorf("fanout: read %s: status %s %s", subject, m.Header.Get("Status"), m.Header.Get("Description"))
	}
}

// multiLast returns the last message of every subject matching the filters, in one
// batched direct get (nats-server 2.11+).
func (h *Hub) multiLast(ctx context.Context, stream string, filters []string) ([]*nats.Msg, error) {
	inbox := h.nc.NewRespInbox()
	sub, err := h.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("fanout: read %s: %w", stream, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, _ := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		Batch     int      `json:"batch"`
	}{filters, 100000})
	if err := h.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, req); err != nil {
		return nil, fmt.Errorf("fanout: read %s: %w", stream, err)
	}
	var out []*nats.Msg
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("fanout: read %s: %w", stream, err)
		}
		switch m.Header.Get("Status") {
		case "":
			out = append(out, m)
		case "404", "204":
			return out, nil
		default:
			return nil, fmt.Errorf("fanout: read %s: status %s %s", stream, m.Header.Get("Status"), m.Header.Get("Description"))
		}
	}
}
