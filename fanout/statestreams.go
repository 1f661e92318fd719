package fanout

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Room state (docs/protocol.md, "Room state"): cheers, viewer counts, pins, live status.
//
//	stream     subjects                         holds                                  re-published to
//	LR_CHEERS  lr.cheer.<room>                  the room's cheer total (counter CRDT)   lr.ev.<room>.cheer
//	           lr.cheerc.<room>.<claim>         one claim per credited cheer command     —
//	LR_VIEWERS lr.viewers.<room>.<gateway>      a gateway's local viewer count (MaxAge)  lr.ev.<room>.viewers
//	LR_UNIQUE  lr.unique.<room>.<gateway>       a HyperLogLog sketch of the room's users —
//	LR_PINS    lr.pin.<room>                    the pinned product card (last only)      lr.ev.<room>.pin
//	LR_LIVE    lr.live.<room>                   live status, owned by media/             (read only)
const (
	cheerStream       = "LR_CHEERS"
	cheerSubjectAll   = "lr.cheer.*"
	claimSubjectAll   = "lr.cheerc.*.*"
	cheerRepublishDst = "lr.ev.{{wildcard(1)}}.cheer"

	viewersStream       = "LR_VIEWERS"
	viewersSubjectAll   = "lr.viewers.*.*"
	viewersRepublishDst = "lr.ev.{{wildcard(1)}}.viewers"

	uniqueStream     = "LR_UNIQUE"
	uniqueSubjectAll = "lr.unique.*.*"

	pinStream       = "LR_PINS"
	pinSubjectAll   = "lr.pin.*"
	pinRepublishDst = "lr.ev.{{wildcard(1)}}.pin"

	liveStream = "LR_LIVE"
)

func cheerSubject(room string) string             { return "lr.cheer." + room }
func claimSubject(room, claim string) string      { return "lr.cheerc." + room + "." + claim }
func viewersSubject(room, gw string) string       { return "lr.viewers." + room + "." + gw }
func uniqueSubject(room, gw string) string        { return "lr.unique." + room + "." + gw }
func pinSubject(room string) string               { return "lr.pin." + room }
func liveSubject(room string) string              { return "lr.live." + room }
func viewersRoomFilter(room string) string        { return "lr.viewers." + room + ".*" }
func uniqueRoomFilter(room string) string         { return "lr.unique." + room + ".*" }
func gatewayOfSubject(subject string) (gw string) { return subject[lastDot(subject)+1:] }

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// StateConfig tunes the room state of a Hub (cheers, viewer counts, pins). The zero
// value is a sensible default for every field.
type StateConfig struct {
	// GatewayID names this gateway in viewer reports and cheer batch ids. It must be
	// one NATS subject token and unique among running gateways. Default: random.
	GatewayID string
	// CheerInterval is how often a gateway publishes each room's cheer increment.
	// Default 200ms.
	CheerInterval time.Duration
	// CheerBatchesInFlight bounds the cheer atomic batches this gateway has in flight
	// at once, across all its rooms (a room's commands of one CheerInterval are one
	// batch, more above 900 commands); a batch waits for a free slot. nats-server
	// refuses atomic batches beyond jetstream.limits.batch.max_inflight_per_stream
	// (default 50, the batches of every gateway on LR_CHEERS together) and
	// max_inflight_total (1000 per server): keep gateways × CheerBatchesInFlight under
	// them. Going over costs time, not cheers: a refused batch is sent again after a
	// short backoff. Default 16.
	CheerBatchesInFlight int
	// CheerDedupeWindow is how long a cheer command's (user, cid) is remembered: a
	// resend within it is never counted again. Default 10 minutes.
	CheerDedupeWindow time.Duration
	// CheerStateInterval is the shortest time between two cheer-total state frames
	// of a room: a new total after a quieter spell goes out in the next tick, later
	// ones at the interval's end. Default 250ms.
	CheerStateInterval time.Duration
	// ViewerReport is how often a gateway reports its local viewers per room, and how
	// often rooms' online counts are broadcast (when they changed). Default 1s.
	ViewerReport time.Duration
	// ViewerTTL is how long a gateway's report counts; a gateway that stops reporting
	// drops out of the online count after it. Default 4 × ViewerReport.
	ViewerTTL time.Duration
	// UniqueTTL is how long a room's unique-viewer sketch is kept after its last
	// update. Default 48h.
	UniqueTTL time.Duration
}

func (c StateConfig) withDefaults() StateConfig {
	c.GatewayID = cmp.Or(c.GatewayID, nuid.Next())
	c.CheerInterval = cmp.Or(max(c.CheerInterval, 0), 200*time.Millisecond)
	c.CheerBatchesInFlight = cmp.Or(max(c.CheerBatchesInFlight, 0), 16)
	c.CheerDedupeWindow = cmp.Or(max(c.CheerDedupeWindow, 0), 10*time.Minute)
	c.CheerStateInterval = cmp.Or(max(c.CheerStateInterval, 0), 250*time.Millisecond)
	c.ViewerReport = cmp.Or(max(c.ViewerReport, 0), time.Second)
	c.ViewerTTL = cmp.Or(max(c.ViewerTTL, 0), 4*c.ViewerReport)
	c.UniqueTTL = cmp.Or(max(c.UniqueTTL, 0), 48*time.Hour)
	return c
}

// ensureStateStreams creates or updates the room-state streams (idempotent).
func ensureStateStreams(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	sc := cfg.State
	streams := []jetstream.StreamConfig{{
		Name:        cheerStream,
		Description: "liveroom cheers: per-room totals (counters) and per-command claims",
		Subjects:    []string{cheerSubjectAll, claimSubjectAll},
		// The total is the last message of lr.cheer.<room>; a claim is the only
		// message of its subject.
		MaxMsgsPerSubject:  1,
		AllowMsgCounter:    true,
		AllowAtomicPublish: true,
		AllowDirect:        true,
		Duplicates:         sc.CheerDedupeWindow,
		Storage:            jetstream.FileStorage,
		Replicas:           cfg.Replicas,
		RePublish:          &jetstream.RePublish{Source: cheerSubjectAll, Destination: cheerRepublishDst},
	}, {
		Name:              viewersStream,
		Description:       "liveroom viewer counts: each gateway's local viewers per room, expiring",
		Subjects:          []string{viewersSubjectAll},
		MaxMsgsPerSubject: 1,
		MaxAge:            sc.ViewerTTL,
		AllowDirect:       true,
		Storage:           jetstream.MemoryStorage,
		Replicas:          cfg.Replicas,
		RePublish:         &jetstream.RePublish{Source: viewersSubjectAll, Destination: viewersRepublishDst},
	}, {
		Name:              uniqueStream,
		Description:       "liveroom unique viewers: HyperLogLog sketch per room per gateway",
		Subjects:          []string{uniqueSubjectAll},
		MaxMsgsPerSubject: 1,
		MaxAge:            sc.UniqueTTL,
		AllowDirect:       true,
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
	}, {
		Name:              pinStream,
		Description:       "liveroom pins: the pinned product card per room, versioned by sequence",
		Subjects:          []string{pinSubjectAll},
		MaxMsgsPerSubject: 1,
		AllowDirect:       true,
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
		RePublish:         &jetstream.RePublish{Source: pinSubjectAll, Destination: pinRepublishDst},
	}}
	for _, s := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, s); err != nil {
			return fmt.Errorf("fanout: stream %s: %w", s.Name, err)
		}
	}
	return nil
}
