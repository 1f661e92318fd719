package media

import (
	"context"
	"encoding/json"
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

// TrackInfo describes one published track.
type TrackInfo struct {
	Kind  string `json:"kind"`  // "video" or "audio"
	Codec string `json:"codec"` // "H264", "VP8", "opus"
}

// statusPublisher writes live statuses to JetStream; nil when the server has no NATS.
type statusPublisher struct {
	js jetstream.JetStream
}

func newStatusPublisher(ctx context.Context, nc *nats.Conn, cfg Config) (*statusPublisher, error) {
	if nc == nil {
		return nil, nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("media: jetstream: %w", err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
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
	return &statusPublisher{js: js}, nil
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
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = p.js.Publish(ctx, LiveSubject(st.Room), data)
	return err
}
