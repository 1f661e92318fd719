package gateway

import (
	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus series. Label children are resolved here, once,
// so the hot paths only touch atomics.
type metrics struct {
	connections prometheus.Gauge
	framesIn    map[string]prometheus.Counter // by command, "other" for the rest
	framesOut   prometheus.Counter
	eventsOut   prometheus.Counter
	bytesOut    prometheus.Counter
	deliverLag  prometheus.Histogram
	// writeHandoffs counts batches the writer pool could not write at once (a socket
	// full or busy) and handed to the connection's own goroutine.
	writeHandoffs prometheus.Counter

	dropChatOld    prometheus.Counter
	dropChatNew    prometheus.Counter
	dropCoalesced  prometheus.Counter
	errors         map[string]prometheus.Counter
	disconnects    *prometheus.CounterVec
	chatStored     prometheus.Counter
	chatDuplicate  prometheus.Counter
	joins          prometheus.Counter
	refusedDrain   prometheus.Counter
	refusedUpgrade prometheus.Counter
}

var commandLabels = []string{"join", "leave", "chat", "ping", "delete", "mute", "ban", "unban", "slow_mode", "buy", "other"}

func newMetrics(reg prometheus.Registerer, nc *nats.Conn) *metrics {
	framesIn := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_frames_in_total", Help: "Frames received from clients, by command.",
	}, []string{"cmd"})
	drops := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_queue_drops_total", Help: "Frames dropped or replaced in viewers' outbound queues, by reason.",
	}, []string{"reason"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_errors_total", Help: "Error replies sent to clients, by error code.",
	}, []string{"code"})
	chat := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_chat_published_total", Help: "Chat lines acknowledged to senders, by whether JetStream stored them or recognised a resend.",
	}, []string{"result"})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_connections_refused_total", Help: "WebSocket connections refused before they started, by reason.",
	}, []string{"reason"})
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveroom_connections", Help: "Open WebSocket connections.",
		}),
		framesIn: map[string]prometheus.Counter{},
		writeHandoffs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_write_handoffs_total", Help: "Batches the writer pool could not write at once (the viewer's socket was full or busy), written by a goroutine of the connection's own.",
		}),
		framesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_frames_out_total", Help: "Frames written to clients.",
		}),
		eventsOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_events_out_total", Help: "Room events written to clients (a frame carries one or more).",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_bytes_out_total", Help: "Payload bytes written to clients.",
		}),
		deliverLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "liveroom_deliver_latency_seconds",
			Help:    "Time from an event's receipt from NATS to the end of its socket write.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .075, .1, .15, .25, .5, 1, 2.5, 5},
		}),
		dropChatOld:   drops.WithLabelValues("chat_oldest"),
		dropChatNew:   drops.WithLabelValues("chat_new"),
		dropCoalesced: drops.WithLabelValues("state_coalesced"),
		errors:        map[string]prometheus.Counter{},
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveroom_disconnects_total", Help: "Closed connections, by close code (1006: ended without a close handshake).",
		}, []string{"code"}),
		chatStored:     chat.WithLabelValues("stored"),
		chatDuplicate:  chat.WithLabelValues("duplicate"),
		joins:          prometheus.NewCounter(prometheus.CounterOpts{Name: "liveroom_joins_total", Help: "Successful room joins."}),
		refusedDrain:   refused.WithLabelValues("draining"),
		refusedUpgrade: refused.WithLabelValues("bad_upgrade"),
	}
	for _, c := range commandLabels {
		m.framesIn[c] = framesIn.WithLabelValues(c)
	}
	for _, c := range errorCodes {
		m.errors[c] = errs.WithLabelValues(c)
	}
	for code := range closeCodes {
		m.disconnects.WithLabelValues(closeLabel(code))
	}
	reg.MustRegister(m.connections, framesIn, m.framesOut, m.writeHandoffs, m.eventsOut, m.bytesOut, m.deliverLag,
		drops, errs, m.disconnects, chat, m.joins, refused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "liveroom_nats_connected", Help: "1 when the gateway's NATS connection is up.",
		}, func() float64 {
			if nc.IsConnected() {
				return 1
			}
			return 0
		}))
	return m
}

func (m *metrics) frameIn(cmd string) {
	c, ok := m.framesIn[cmd]
	if !ok {
		c = m.framesIn["other"]
	}
	c.Inc()
}

func (m *metrics) disconnect(code websocket.StatusCode) {
	m.disconnects.WithLabelValues(closeLabel(code)).Inc()
}
