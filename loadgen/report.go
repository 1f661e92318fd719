package loadgen

import (
	"encoding/json"
	"os"
	"sort"
	"time"
)

// Report is what a run measured. Its JSON form (WriteJSON, `--json FILE`) is the
// schema of issue 5; fields beyond it are extra detail.
type Report struct {
	wonOrders []string // the order ids of the answered wins, for the order stream check

	Profile string  `json:"profile"`
	Room    string  `json:"room"`
	Speed   float64 `json:"speed"`
	// Shards is how many processes held the viewers (1: this one, n: n children).
	Shards int `json:"shards"`

	ViewersTarget int   `json:"viewers_target"`
	ViewersPeak   int64 `json:"viewers_peak"`
	// ConnectFailures counts connection attempts that did not open (dial or
	// handshake failed); JoinErrors counts joins the gateway refused, by error code.
	ConnectFailures int64            `json:"connect_failures"`
	JoinErrors      map[string]int64 `json:"join_errors"`
	Reconnects      int64            `json:"reconnects"`
	// Closes counts connections that ended, by close code (-1: dropped without one).
	Closes map[string]int64 `json:"closes"`
	// FullS (flat profile) is the time from the start until every viewer had joined
	// and received its snapshot: the join storm's length.
	FullS float64 `json:"full_s,omitempty"`
	// JoinMS is connect (dial start) → join reply with the snapshot, every join
	// including rejoins after a reconnect.
	JoinMS Percentiles `json:"join_ms"`
	// Classes has one entry per class of event: chat, pin, cheer_total (and its part
	// cheer_total_resent), online.
	// Classes the gateway does not speak yet have Measured false and zero counts.
	Classes map[string]ClassReport `json:"classes"`
	Cheers  CheerReport            `json:"cheers"`
	Chat    ChatSendReport         `json:"chat"`
	// Pins is how many pins the host stored (flash sales included).
	Pins int64 `json:"pins"`
	// Flash is the flash-sale herd's outcome.
	Flash FlashReport `json:"flash"`
	// Actions (chat, cheer, pin): resent after a reconnect, refused by the gateway
	// ("chat:rate_limited" → count), and never answered before the run ended.
	Retried    int64            `json:"retried"`
	Rejected   map[string]int64 `json:"rejected"`
	Unanswered int64            `json:"unanswered"`
	// Gateways are the targets' process figures, read from their /metrics.
	Gateways []GatewayReport `json:"gateways"`
	// GatewayKiBPerViewer is the gateways' summed RSS over the viewers connected, at
	// the second with the most viewers (base RSS included: it overstates small runs).
	GatewayKiBPerViewer float64 `json:"gateway_kib_per_viewer"`
	DurationS           float64 `json:"duration_s"`
	// WHEP is the WebRTC side (mediarun.go), when the run had one.
	WHEP *WHEPReport `json:"whep,omitempty"`
	// Timeline has one sample per second, for the charts.
	Timeline []Sample `json:"timeline"`
	// Errors holds the first error of each kind seen (dial, frame, …).
	Errors map[string]string `json:"errors,omitempty"`
	Notes  []string          `json:"notes,omitempty"`
}

// Percentiles of a latency, in milliseconds.
type Percentiles struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// ClassReport is one class of event. Expected counts (viewer, event) pairs the
// viewers should have received (for chat: within the per-viewer budget, see
// chatLedger); Lost = Expected − Delivered; Duplicated counts events
// a viewer received again (or out of order). Latency is measured from the moment the
// load generator sent the action that caused the event.
type ClassReport struct {
	Measured   bool  `json:"measured"`
	Expected   int64 `json:"expected"`
	Delivered  int64 `json:"delivered"`
	Lost       int64 `json:"lost"`
	Duplicated int64 `json:"duplicated"`
	// Sampled counts (viewer, event) pairs the gateway was allowed to leave out
	// (chat above the per-viewer budget); they are in neither Expected nor Lost.
	Sampled int64 `json:"sampled,omitempty"`
	// For chat, where a viewer's owed lines are a count, not a list: LostIn is how
	// many viewers' windows came up short (Lost is their shortfall) and LostMax the
	// most one window lacked; Extra is how many lines windows received beyond their
	// count. The gateway samples a busy room over the lines' stored times and the
	// ledger over their send times, so near a window's edges the two may pick a few
	// different lines: shortfalls of a few lines spread over many windows, matched by
	// as much Extra elsewhere, are that; a window short by more than the budget is not.
	LostIn  int64   `json:"lost_in,omitempty"`
	LostMax int64   `json:"lost_max,omitempty"`
	Extra   int64   `json:"extra,omitempty"`
	P50MS   float64 `json:"p50_ms"`
	P90MS   float64 `json:"p90_ms"`
	P99MS   float64 `json:"p99_ms"`
	MaxMS   float64 `json:"max_ms"`
}

// CheerReport is the cheer count. Every tap sent is either acknowledged (Acked:
// credited, counted by the gateway), refused (not counted: over the rate, or a bad
// command), or unknown (Unknown: the cheer's answer never came, because the connection
// dropped and the viewer did not come back, or it was still `unavailable` after
// resends with the same cid). The totals are read by joining the room once before and
// once after the run (an observer connection); Measured is false when that failed.
//
// The room's growth G = FinalTotal − InitialTotal must lie in [Acked, Acked+Unknown]
// (Bounded). Exact is the proof: no tap unknown and G == Acked; with nothing refused
// that is also G == Sent. It assumes nobody else cheers in the room meanwhile.
type CheerReport struct {
	Measured     bool  `json:"measured"`
	Sent         int64 `json:"sent"`
	Acked        int64 `json:"acked"`
	Refused      int64 `json:"refused"`
	Unknown      int64 `json:"unknown"`
	Commands     int64 `json:"commands"`
	InitialTotal int64 `json:"initial_total"`
	FinalTotal   int64 `json:"final_total"`
	Bounded      bool  `json:"bounded"`
	Exact        bool  `json:"exact"`
}

// settle judges the final total read after the run.
func (c *CheerReport) settle(final int64) {
	c.FinalTotal = final
	g := final - c.InitialTotal
	c.Bounded = c.Acked <= g && g <= c.Acked+c.Unknown
	c.Exact = c.Unknown == 0 && g == c.Acked
}

// FlashReport is what the flash sales came to. A user never wins a unit of one
// sale twice (MultiWins 0) and no sale hands out more units than its stock
// (Oversold false); every press is answered (AnswerMS: press → answer).
type FlashReport struct {
	Sales     int64            `json:"sales"`
	Stock     int              `json:"stock_per_sale"`
	Presses   int64            `json:"presses"`
	Answers   map[string]int64 `json:"answers"`
	Won       int64            `json:"won"`
	WonBySale map[string]int64 `json:"won_by_sale"`
	Oversold  bool             `json:"oversold"`
	MultiWins int64            `json:"multi_wins"`
	AnswerMS  Percentiles      `json:"answer_ms"`
	// Orders is the order stream checked against the answered wins (Config.NATS).
	Orders OrdersReport `json:"orders"`
}

// ChatSendReport is the sending side of chat.
type ChatSendReport struct {
	Sent  int64 `json:"sent"`
	Acked int64 `json:"acked"`
	// Stored is how many distinct lines the gateways stored (acked, by seq).
	Stored int64 `json:"stored"`
	// Recovered counts lines received in rejoin snapshots (resumed with `since`);
	// Resets counts rejoins the gateway could not resume (a `reset` event instead).
	Recovered int64 `json:"recovered"`
	Resets    int64 `json:"resets"`
	// Foreign counts received lines that no load generator sent.
	Foreign int64 `json:"foreign"`
	// Budget is the per-viewer lines/s the accounting allowed (0: every line owed).
	Budget int `json:"view_budget"`
}

// GatewayReport is one target's process, from its Prometheus endpoint.
type GatewayReport struct {
	URL string `json:"url"`
	// CPUS is process_cpu_seconds_total spent during the run.
	CPUS float64 `json:"cpu_s"`
	// RSSMB is the largest process_resident_memory_bytes seen, in MiB.
	RSSMB    float64 `json:"rss_mb"`
	RSSEndMB float64 `json:"rss_end_mb"`
	Error    string  `json:"error,omitempty"`
}

// Sample is one second of the run.
type Sample struct {
	T          int     `json:"t"`
	Viewers    int64   `json:"viewers"`
	EventsPerS int64   `json:"events_per_s"`
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	Reconnects int64   `json:"reconnects"`
	GatewayCPU float64 `json:"gateway_cpu"` // cores busy, all targets
	GatewayRSS float64 `json:"gateway_rss_mb"`
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentiles(h *Histogram) Percentiles {
	return Percentiles{
		Count: h.Count(),
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		Max:   ms(h.Max()),
	}
}

// merge builds the report from every shard's result. The chat accounting is done
// here, over the whole run: a viewer expects every stored line sent between its first
// join and its cut (when it decided to leave, when the load stopped, or when it
// dropped for good), whichever shard sent it.
func merge(cfg *Config, results []*shardResult) *Report {
	r := &Report{
		Profile:       cfg.Profile,
		Room:          cfg.Room,
		Speed:         cfg.Speed,
		Shards:        len(results),
		ViewersTarget: cfg.Viewers,
		Classes:       map[string]ClassReport{},
	}
	var c counters
	var join, chat, cheerLat, cheerResent, pinLat, buyLat Histogram
	var lines []sentLine
	var pins []sentPin
	for _, res := range results {
		c.add(res.Counters)
		r.FullS = max(r.FullS, res.FullS)
		for _, m := range []struct{ dst, src *Histogram }{{&join, res.Join}, {&chat, res.Chat}, {&cheerLat, res.CheerLat}, {&cheerResent, res.CheerLatResent}, {&pinLat, res.PinLat}, {&buyLat, res.BuyLat}} {
			if m.src != nil {
				m.dst.Merge(m.src)
			}
		}
		lines = append(lines, res.Lines...)
		pins = append(pins, res.Pins...)
	}
	sort.Slice(pins, func(i, j int) bool { return pins[i].SentUS < pins[j].SentUS })

	ledger := newChatLedger(lines, cfg.ChatViewBudget)
	chatCR := ClassReport{Measured: true}
	pinCR := ClassReport{Measured: true}
	for _, res := range results {
		for _, w := range res.Windows {
			exp, all := ledger.count(w.StartUS, w.CutUS)
			got := min(w.Delivered, exp)
			chatCR.Expected += exp
			chatCR.Delivered += got
			chatCR.Lost += exp - got
			chatCR.Extra += w.Delivered - got
			if exp > got {
				chatCR.LostIn++
				chatCR.LostMax = max(chatCR.LostMax, exp-got)
			}
			chatCR.Duplicated += w.Dups
			chatCR.Sampled += all - exp

			// Every pin sent in the window is owed; seeing it or any newer version
			// covers it (state is coalesced: a slow viewer may skip to the newest).
			lo := sort.Search(len(pins), func(i int) bool { return pins[i].SentUS >= w.StartUS })
			for _, p := range pins[lo:] {
				if p.SentUS > w.CutUS {
					break
				}
				pinCR.Expected++
				if p.Version <= w.PinMax {
					pinCR.Delivered++
				} else {
					pinCR.Lost++
				}
			}
		}
	}
	chatCR.setLatency(&chat)
	pinCR.setLatency(&pinLat)
	r.Classes["chat"] = chatCR
	r.Classes["pin"] = pinCR
	cheerCR := ClassReport{Measured: true, Expected: c.CheerOwed, Delivered: c.CheerGot, Lost: c.CheerOwed - c.CheerGot}
	cheerCR.setLatency(&cheerLat)
	r.Classes["cheer_total"] = cheerCR
	resentCR := ClassReport{Measured: true, Expected: int64(cheerResent.Count()), Delivered: int64(cheerResent.Count())}
	resentCR.setLatency(&cheerResent)
	r.Classes["cheer_total_resent"] = resentCR
	r.Classes["online"] = ClassReport{Measured: true, Expected: c.OnlineOwed, Delivered: c.OnlineGot, Lost: c.OnlineOwed - c.OnlineGot}
	r.Notes = append(r.Notes,
		"cheer_total: each cheering viewer owes itself the total its cheer's reply reported; latency is from sending the cheer (its first send) until that viewer sees the room total reach it",
		"cheer_total_resent: the part of cheer_total whose cheer was sent more than once (answered unavailable, or its reply lost with a dropped connection)",
		"online: at the end, every viewer still connected is owed the run's audience (its viewers and host) as the room's online count; no latency (counts are reported once a second)")

	r.ViewersPeak = c.Peak // exact for one shard; replaced from the timeline for more
	r.ConnectFailures = c.ConnectFailures
	r.JoinErrors = c.JoinErrors
	r.Reconnects = c.Reconnects
	r.Closes = c.Closes
	r.JoinMS = percentiles(&join)
	r.Chat = ChatSendReport{
		Sent: c.ChatSent, Acked: c.ChatAcked, Stored: int64(len(ledger.lines)), Foreign: c.Foreign,
		Budget: cfg.ChatViewBudget, Recovered: c.Recovered, Resets: c.Resets,
	}
	r.Cheers = CheerReport{Sent: c.CheerTaps, Acked: c.CheerCredited, Refused: c.CheerRefused, Unknown: c.CheerUnknown, Commands: c.CheerCmds}
	r.Pins = int64(len(pins))
	r.wonOrders = c.WonOrders
	r.Flash = FlashReport{Sales: c.FlashSales, Stock: cfg.FlashStock, Presses: c.Presses, Answers: c.Answers,
		WonBySale: c.Won, MultiWins: c.MultiWins, AnswerMS: percentiles(&buyLat)}
	for _, n := range c.Won {
		r.Flash.Won += n
		if n > int64(cfg.FlashStock) {
			r.Flash.Oversold = true
		}
	}
	r.Retried, r.Unanswered, r.Rejected = c.Retried, c.Unanswered, c.Rejected
	r.Errors = c.Errors
	return r
}

func (cr *ClassReport) setLatency(h *Histogram) {
	cr.P50MS, cr.P90MS = ms(h.Quantile(0.5)), ms(h.Quantile(0.9))
	cr.P99MS, cr.MaxMS = ms(h.Quantile(0.99)), ms(h.Max())
}
