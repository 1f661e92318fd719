package fanout

import "github.com/prometheus/client_golang/prometheus"

// stateMetrics are the room-state series (cheers, pins, viewer counts).
type stateMetrics struct {
	cheerCredited      prometheus.Counter
	cheerDuplicate     prometheus.Counter
	cheerWithdrawn     prometheus.Counter
	cheerBatchStored   prometheus.Counter
	cheerBatchRetried  prometheus.Counter
	cheerBatchFailed   prometheus.Counter
	cheerBatchCommands prometheus.Histogram
	cheerBatchSeconds  prometheus.Histogram
	cheerWait          map[string]prometheus.Observer // by outcome: cheerOutcomes
	cheerFlushBusy     prometheus.Counter
	cheerBatchLimited  map[string]prometheus.Counter // by limit: gateway, server
	pins               prometheus.Counter
	viewerReports      prometheus.Counter
	stateLoads         prometheus.Counter
	stateEvents        prometheus.Counter
	stateFrames        map[string]prometheus.Counter // by kind
	stateCoalesced     prometheus.Counter
}

var stateKinds = []string{"cheers", "pin", "online", "live"}

// cheerOutcomes label liveroom_cheer_wait_seconds: what Hub.Cheer answered.
var cheerOutcomes = []string{"stored", "duplicate", "not_stored", "unknown"}

func newStateMetrics(reg prometheus.Registerer) *stateMetrics {
	batches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_cheer_batches_total", Help: "Cheer batches (one atomic JetStream batch per room per CheerInterval), by outcome: stored, retried (duplicate or lost answer, resolved by reading the claims), failed (its commands are answered with an error: e.g. it got no slot, or no acceptance by the server, within its time bound).",
	}, []string{"result"})
	taps := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_cheer_stored_total", Help: "Cheer taps stored by this gateway (credited); resent cheer commands recognised as already counted (duplicate_commands); commands whose caller gave up before a batch took them, so nothing was stored (withdrawn_commands).",
	}, []string{"result"})
	wait := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "liveroom_cheer_wait_seconds", Help: "Time from a cheer command reaching the hub until its answer, by outcome: stored, duplicate (counted before), not_stored (nothing stored: withdrawn because its caller gave up before a batch took it, or its batch got no slot or the server's acceptance in time), unknown (its batch failed).",
		Buckets: prometheus.ExponentialBuckets(0.025, 2, 10),
	}, []string{"result"})
	limited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_cheer_batch_limited_total", Help: "Cheer batches held back by a limit on atomic batches in flight, by limit: gateway (waited for one of this gateway's CheerBatchesInFlight slots), server (refused by nats-server: too many atomic batches in flight on LR_CHEERS, every gateway's together, or on the server; sent again after a backoff).",
	}, []string{"limit"})
	frames := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_state_frames_total", Help: "Room state changes sent to viewers (in the room's next tick frame, shared by its viewers), by kind.",
	}, []string{"kind"})
	m := &stateMetrics{
		cheerCredited:     taps.WithLabelValues("credited_taps"),
		cheerDuplicate:    taps.WithLabelValues("duplicate_commands"),
		cheerWithdrawn:    taps.WithLabelValues("withdrawn_commands"),
		cheerBatchStored:  batches.WithLabelValues("stored"),
		cheerBatchRetried: batches.WithLabelValues("retried"),
		cheerBatchFailed:  batches.WithLabelValues("failed"),
		cheerBatchCommands: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "liveroom_cheer_batch_commands", Help: "Cheer commands per stored batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		cheerBatchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "liveroom_cheer_batch_seconds", Help: "Time to settle one room's cheer commands of one CheerInterval: every atomic batch, duplicate resolution and total read, until each command has its answer.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		cheerWait: map[string]prometheus.Observer{},
		cheerBatchLimited: map[string]prometheus.Counter{
			"gateway": limited.WithLabelValues("gateway"),
			"server":  limited.WithLabelValues("server"),
		},
		cheerFlushBusy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_cheer_flushes_busy_total", Help: "CheerIntervals whose flush did not start because the most flushes allowed in flight were still waiting for JetStream: their commands waited for the next interval.",
		}),
		pins:           prometheus.NewCounter(prometheus.CounterOpts{Name: "liveroom_pins_total", Help: "Pins and unpins stored by this gateway."}),
		viewerReports:  prometheus.NewCounter(prometheus.CounterOpts{Name: "liveroom_viewer_reports_total", Help: "Per-room viewer count reports published by this gateway."}),
		stateLoads:     prometheus.NewCounter(prometheus.CounterOpts{Name: "liveroom_state_loads_total", Help: "Rooms whose state was loaded from JetStream (the room's first viewer on this gateway)."}),
		stateEvents:    prometheus.NewCounter(prometheus.CounterOpts{Name: "liveroom_state_events_total", Help: "State messages received from NATS for local rooms (cheer totals, pins, viewer reports, live status)."}),
		stateFrames:    map[string]prometheus.Counter{},
		stateCoalesced: prometheus.NewCounter(prometheus.CounterOpts{Name: "liveroom_state_coalesced_total", Help: "State changes replaced by a newer value of the same key (room and kind) before their tick frame left."}),
	}
	for _, o := range cheerOutcomes {
		m.cheerWait[o] = wait.WithLabelValues(o)
	}
	for _, k := range stateKinds {
		m.stateFrames[k] = frames.WithLabelValues(k)
	}
	reg.MustRegister(batches, taps, wait, limited, frames, m.stateCoalesced, m.cheerBatchCommands, m.cheerBatchSeconds, m.cheerFlushBusy, m.pins, m.viewerReports, m.stateLoads, m.stateEvents)
	return m
}
