package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Live status: one message per room on lr.live.<room>, the stream keeps the last.
const (
	liveStream     = "LR_LIVE"
	liveSubjectAll = "lr.live.>"
)

// LiveSubject is the subject a room's live status is published on.
func LiveSubject(room string) string { return "lr.live." + room }

// LiveStatus is the JSON published on LiveSubject when a host goes live, when its
// tracks change, every Config.LiveRefresh while live, and when it stops.
type LiveStatus struct {
	Room   string      `json:"room"`
	Live   bool        `json:"live"`
	Tracks []TrackInfo `json:"tracks"`
	TS     int64       `json:"ts"` // unix milliseconds
}

// OriginStatus says which media node holds a room's publisher (the room's origin),
// so that other nodes can relay the room to their own viewers (relay.go). It is
// published on OriginSubject, just before each LiveStatus of a node that has a
// Config.PublicURL, and kept in LR_LIVE like it; it is not re-published to gateways:
// viewers never see media nodes' URLs.
type OriginStatus struct {
	Room   string `json:"room"`
	Live   bool   `json:"live"`
	Origin string `json:"origin,omitempty"` // the origin's Config.PublicURL
	TS     int64  `json:"ts"`               // unix milliseconds
}

// OriginSubject is the subject a room's OriginStatus is published on. It has one
// token more than LiveSubject: stored by the stream (lr.live.>), not re-published to
// the room's event subject (lr.live.*), and no room name can collide with it.
func OriginSubject(room string) string { return "lr.live." + room + ".origin" }

// TrackInfo describes one published track.
type TrackInfo struct {
	Kind  string `json:"kind"`  // "video" or "audio"
	Codec string `json:"codec"` // "H264", "VP8", "opus"
}

// statusPublisher writes live statuses to JetStream and reads origins back; nil when
// the server has no NATS.
type statusPublisher struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
}

func newStatusPublisher(ctx context.Context, nc *nats.Conn, cfg Config) (*statusPublisher, error) {
	if nc == nil {
		return nil, nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("media: jetstream: %w", err)
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              liveStream,
		Description:       "liveroom live status: the last lr.live.<room> per room",
		Subjects:          []string{liveSubjectAll},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.MemoryStorage,
		MaxAge:            3 * cfg.LiveRefresh,
		Replicas:          cfg.Replicas,
		// Gateways hold one subscription per room on lr.ev.<room>.>: this is how
		// viewers already in the room learn that the host went live or stopped.
		RePublish: &jetstream.RePublish{Source: "lr.live.*", Destination: "lr.ev.{{wildcard(1)}}.live"},
	})
	if err != nil {
		return nil, fmt.Errorf("media: stream %s: %w", liveStream, err)
	}
	return &statusPublisher{nc: nc, js: js, stream: stream}, nil
}

// publish stores st as the room's status and waits for the ack (bounded by 2 s).
func (p *statusPublisher) publish(st LiveStatus) error {
	if p == nil {
		return nil
	}
	if st.Tracks == nil {
		st.Tracks = []TrackInfo{}
	}
	st.TS = time.Now().UnixMilli()
	return p.store(LiveSubject(st.Room), st)
}

// publishOrigin stores st as the room's origin status (not when the server has no
// public URL: it cannot be relayed from).
func (p *statusPublisher) publishOrigin(st OriginStatus) error {
	if p == nil || st.Origin == "" {
		return nil
	}
	st.TS = time.Now().UnixMilli()
	return p.store(OriginSubject(st.Room), st)
}

func (p *statusPublisher) store(subject string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = p.js.Publish(ctx, subject, data)
	return err
}

// origin reads the room's last origin status: its origin's URL when the room is live
// on a node with a public URL, "" otherwise (no NATS, no status, offline, expired).
func (p *statusPublisher) origin(ctx context.Context, room string) (string, error) {
	if p == nil {
		return "", nil
	}
	m, err := p.stream.GetLastMsgForSubject(ctx, OriginSubject(room))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("media: read origin of %q: %w", room, err)
	}
	var st OriginStatus
	if err := json.Unmarshal(m.Data, &st); err != nil || !st.Live {
		return "", nil
	}
	return st.Origin, nil
}

// watchOrigin calls fn with each origin status published for room until the
// subscription is removed.
func (p *statusPublisher) watchOrigin(room string, fn func(OriginStatus)) (*nats.Subscription, error) {
	return p.nc.Subscribe(OriginSubject(room), func(m *nats.Msg) {
		var st OriginStatus
		if json.Unmarshal(m.Data, &st) == nil {
			fn(st)
		}
	})
}
