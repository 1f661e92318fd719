package fanout

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// flashMetrics are the flash-sale engine's series. Answer children are resolved once.
type flashMetrics struct {
	presses         map[AnswerKind]prometheus.Counter
	unavailable     prometheus.Counter
	answerTime      prometheus.Histogram
	stockLeft       *prometheus.GaugeVec
	intentsInflight prometheus.Gauge
	ordersStored    prometheus.Counter
	unitsTaken      prometheus.Counter
	casConflicts    prometheus.Counter
	leasesReclaimed prometheus.Counter
	settleErrors    prometheus.Counter
	watchErrors     prometheus.Counter
	shed            prometheus.Counter
}

func newFlashMetrics(reg prometheus.Registerer) *flashMetrics {
	presses := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveroom_flash_presses_total",
		Help: "Flash-sale presses answered by this gateway, by answer (unavailable: NATS did not answer in time).",
	}, []string{"answer"})
	m := &flashMetrics{
		presses:     map[AnswerKind]prometheus.Counter{},
		unavailable: presses.WithLabelValues("unavailable"),
		answerTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "liveroom_flash_answer_seconds",
			Help:    "Time from a press's arrival at the engine to its answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .2, .5, 1, 2.5},
		}),
		stockLeft: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "liveroom_flash_stock_left",
			Help: "Units of a flash sale not yet sold, as last seen by this gateway.",
		}, []string{"room", "item"}),
		intentsInflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveroom_flash_intents_pending",
			Help: "Order intents sent to LR_ORDERS and not yet acknowledged by JetStream (the shop's backlog is its consumer's pending count; liveroom shop-sim prints it).",
		}),
		ordersStored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_flash_orders_stored_total", Help: "Order intents this gateway stored in LR_ORDERS.",
		}),
		unitsTaken: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_flash_units_taken_total", Help: "Leased units found already sold (they came back from a reclaimed lease).",
		}),
		casConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_flash_cas_conflicts_total", Help: "Sale pool writes retried because another gateway wrote first.",
		}),
		leasesReclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_flash_leases_reclaimed_total", Help: "Expired leases of other gateways taken back by this one.",
		}),
		settleErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_flash_settle_errors_total", Help: "Leases that could not be handed back (they expire and are reclaimed).",
		}),
		watchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_flash_watch_errors_total", Help: "Failed starts of a sale's order watch (presses that cannot win then wait for the seller).",
		}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveroom_flash_presses_shed_total", Help: "Presses answered without waiting for the seller: too far back in the queue to get a unit, or the sale sold out.",
		}),
	}
	for _, k := range answerKinds {
		m.presses[k] = presses.WithLabelValues(string(k))
	}
	reg.MustRegister(presses, m.answerTime, m.stockLeft, m.intentsInflight, m.ordersStored,
		m.unitsTaken, m.casConflicts, m.leasesReclaimed, m.settleErrors, m.watchErrors, m.shed)
	return m
}

func (m *flashMetrics) answered(k AnswerKind, d time.Duration) {
	m.presses[k].Inc()
	m.answerTime.Observe(d.Seconds())
}
