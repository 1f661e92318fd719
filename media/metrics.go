package media

import "github.com/prometheus/client_golang/prometheus"

// metrics are the media server's Prometheus series, all prefixed liveroom_media_.
type metrics struct {
	publishers     prometheus.Gauge
	viewers        prometheus.Gauge
	packetsOut     prometheus.Counter
	bytesOut       prometheus.Counter
	nacksServed    prometheus.Counter
	nacksMissed    prometheus.Counter
	plisSent       prometheus.Counter
	keyframeAsks   prometheus.Counter
	joinToKeyframe prometheus.Histogram
	fractionLost   prometheus.Histogram
	refused        *prometheus.CounterVec
	relays         prometheus.Gauge
	relayStarts    prometheus.Counter
	relayFailures  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		publishers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveroom_media_publishers", Help: "Live WHIP publishers.",
		}),
		viewers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveroom_media_viewers", Help: "WHEP viewer sessions.",
		}),
		packetsOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_media_packets_forwarded_total", Help: "RTP packets written to viewers (not counting retransmissions).",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_media_bytes_forwarded_total", Help: "RTP bytes (as received from the publisher) written to viewers.",
		}),
		nacksServed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_media_nacks_served_total", Help: "Packets retransmitted to viewers from the shared buffer.",
		}),
		nacksMissed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_media_nacks_missed_total", Help: "NACKed packets no longer (or never) in the shared buffer.",
		}),
		plisSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_media_plis_sent_total", Help: "Keyframe requests (PLI) sent to publishers, after merging.",
		}),
		keyframeAsks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_media_viewer_keyframe_requests_total", Help: "PLI/FIR received from viewers (merged before reaching the publisher).",
		}),
		joinToKeyframe: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "liveroom_media_join_to_keyframe_seconds",
			Help:    "Time from a viewer's WHEP request to its first video packet (the start of a keyframe).",
			Buckets: []float64{0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5},
		}),
		fractionLost: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "liveroom_media_viewer_fraction_lost",
			Help:    "Fraction of packets lost, from viewers' receiver reports.",
			Buckets: []float64{0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5},
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_media_refused_total", Help: "WHIP/WHEP requests refused, by reason.",
		}, []string{"reason"}),
		relays: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveroom_media_relays", Help: "Upstream relays: rooms this node serves as an edge, each with one WHEP session to the room's origin.",
		}),
		relayStarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_media_relay_starts_total", Help: "Upstream relays started (a WHEP request for a room live on another node).",
		}),
		relayFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_media_relay_failures_total", Help: "Upstream relays that failed, by reason: signal (the WHEP exchange with the origin), start (no media in time), upstream (the connection failed).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{
		m.publishers, m.viewers, m.packetsOut, m.bytesOut, m.nacksServed, m.nacksMissed,
		m.plisSent, m.keyframeAsks, m.joinToKeyframe, m.fractionLost, m.refused,
		m.relays, m.relayStarts, m.relayFailures,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
