package gateway

import "github.com/prometheus/client_golang/prometheus"

// stateMetrics are the gateway's room-state series; fanout counts what it stores.
type stateMetrics struct {
	cheerCredited  prometheus.Counter
	cheerRefused   prometheus.Counter
	cheerDuplicate prometheus.Counter
	apiRefused     prometheus.Counter
}

func newStateMetrics(reg prometheus.Registerer) *stateMetrics {
	taps := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_cheer_taps_total", Help: "Cheer taps received from viewers, by outcome: credited (acknowledged as counted), refused (over the per-user rate).",
	}, []string{"result"})
	m := &stateMetrics{
		cheerCredited: taps.WithLabelValues("credited"),
		cheerRefused:  taps.WithLabelValues("refused"),
		cheerDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_cheer_resends_total", Help: "Cheer commands resent after they had been counted (answered from the stored claim, not counted again).",
		}),
		apiRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_api_refused_total", Help: "HTTP API requests refused for a bad or missing API key.",
		}),
	}
	reg.MustRegister(taps, m.cheerDuplicate, m.apiRefused)
	return m
}
