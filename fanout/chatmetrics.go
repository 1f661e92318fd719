package fanout

import "github.com/prometheus/client_golang/prometheus"

// chatMetrics are the series of chat recovery, sampling and moderation. Label children
// are resolved here, once.
type chatMetrics struct {
	joinRecent       prometheus.Counter
	recoverMemory    prometheus.Counter
	recoverJetStream prometheus.Counter
	recoverReset     prometheus.Counter
	joinsLate        prometheus.Counter
	joinBatch        prometheus.Histogram

	duplicates   prometheus.Counter
	gaps         prometheus.Counter
	gapLines     prometheus.Counter
	gapsUnfilled prometheus.Counter

	sampledOut   prometheus.Counter
	ownDelivered prometheus.Counter

	modActions map[string]prometheus.Counter
	kicks      prometheus.Counter
}

var modActionLabels = []string{"delete", "mute", "unmute", "ban", "unban", "slow_mode"}

func newChatMetrics(reg prometheus.Registerer) *chatMetrics {
	joins := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_chat_join_total",
		Help: "Chat handed to joining viewers, by source: recent (no since), memory or jetstream (recovery after since), reset (since older than the history kept).",
	}, []string{"source"})
	actions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_moderation_actions_total", Help: "Moderation commands stored, by action.",
	}, []string{"action"})
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &chatMetrics{
		joinRecent:       joins.WithLabelValues("recent"),
		recoverMemory:    joins.WithLabelValues("memory"),
		recoverJetStream: joins.WithLabelValues("jetstream"),
		recoverReset:     joins.WithLabelValues("reset"),
		joinsLate:        c("liveroom_joins_late_total", "Joins refused (unavailable) because they waited for the room's locks past their deadline: their client had given up."),
		joinBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "liveroom_join_batch_size",
			Help:    "Joins admitted to a room under one hold of its flush lock (joins queue while the room is busy).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		duplicates:   c("liveroom_chat_duplicates_dropped_total", "Live chat entries dropped because the room already had them (history read and live feed overlapping)."),
		gaps:         c("liveroom_chat_gaps_total", "Gaps detected in a room's live chat feed (Nats-Last-Sequence ahead of the last entry seen), e.g. after a NATS reconnect."),
		gapLines:     c("liveroom_chat_gap_lines_total", "Chat entries read from JetStream to fill gaps in the live feed."),
		gapsUnfilled: c("liveroom_chat_gaps_unfilled_total", "Gaps that could not be read from JetStream; the room's memory was cleared and recoveries read JetStream."),
		sampledOut:   c("liveroom_chat_sampled_out_total", "Ordinary chat lines left out of a room's shared frame because the room was above the per-viewer chat budget."),
		ownDelivered: c("liveroom_chat_own_delivered_total", "Sampled-out lines delivered anyway to their sender's own connections."),
		modActions:   map[string]prometheus.Counter{},
		kicks:        c("liveroom_moderation_kicks_total", "Connections closed with 4004 because their user was banned from a room they had joined."),
	}
	for _, a := range modActionLabels {
		m.modActions[a] = actions.WithLabelValues(a)
	}
	reg.MustRegister(joins, actions, m.joinsLate, m.joinBatch, m.duplicates, m.gaps, m.gapLines, m.gapsUnfilled, m.sampledOut, m.ownDelivered, m.kicks)
	return m
}
