package fanout

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	eventsChat  prometheus.Counter
	badEvents   prometheus.Counter
	batchEvents prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, rooms func() float64) *metrics {
	m := &metrics{
		eventsChat: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_fanout_events_total", Help: "Events received from NATS for local rooms.",
			ConstLabels: prometheus.Labels{"kind": "chat"},
		}),
		badEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_fanout_bad_events_total", Help: "Events from NATS that could not be decoded and were skipped.",
		}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "liveroom_fanout_batch_events", Help: "Events per room frame (one frame per room per tick).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
	}
	reg.MustRegister(m.eventsChat, m.badEvents, m.batchEvents,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "liveroom_rooms", Help: "Rooms with at least one viewer on this gateway.",
		}, rooms))
	return m
}
