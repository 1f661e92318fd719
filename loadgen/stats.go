package loadgen

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
)

// shardStats are one process's counters, updated by every viewer.
type shardStats struct {
	connected       atomic.Int64 // viewers joined right now (gauge)
	intervalPeak    atomic.Int64 // most connected since the last progress tick
	peak            atomic.Int64 // most connected ever
	reconnects      atomic.Int64
	connectFailures atomic.Int64
	events          atomic.Int64 // counted chat events delivered
	foreign         atomic.Int64 // chat lines not sent by a load generator
	chatSent        atomic.Int64
	chatAcked       atomic.Int64
	cheerCmds       atomic.Int64
	cheerTaps       atomic.Int64 // taps sent
	cheerCredited   atomic.Int64
	cheerRefused    atomic.Int64 // taps answered as not counted (rate limit, bad request)
	cheerUnknown    atomic.Int64 // taps still `unavailable` after maxCheerTries
	cheerInFlight   atomic.Int64 // taps of cheers sent and not settled
	cheerOwed       atomic.Int64 // cheer checkpoints owed to viewers (see cheerReply)
	cheerGot        atomic.Int64
	onlineOwed      atomic.Int64 // viewers at the end of the drain
	onlineGot       atomic.Int64 // … shown the run's audience as online
	flashSales      atomic.Int64 // flash sales pinned
	presses         atomic.Int64 // buy commands sent (resends not counted)
	multiWins       atomic.Int64 // a user won a second unit of one sale
	retried         atomic.Int64 // actions resent after a reconnect
	pending         atomic.Int64 // actions queued or sent and not answered
	pings           atomic.Int64
	pongs           atomic.Int64
	recovered       atomic.Int64 // lines received in a rejoin's snapshot
	resets          atomic.Int64 // reset events (recovery was impossible)

	mu         sync.Mutex
	closes     map[string]int64 // close code → count
	joinErrors map[string]int64 // join error code → count
	rejected   map[string]int64 // "chat:rate_limited" → count
	answers    map[string]int64 // buy answer → count
	won        map[string]int64 // flash item → units won
	wonOrders  []string         // order ids of the wins
	errors     map[string]string
}

func newShardStats() *shardStats {
	return &shardStats{
		closes:     map[string]int64{},
		joinErrors: map[string]int64{},
		rejected:   map[string]int64{},
		answers:    map[string]int64{},
		won:        map[string]int64{},
		errors:     map[string]string{},
	}
}

func (s *shardStats) noteConnected(n int64) {
	raise(&s.peak, n)
	raise(&s.intervalPeak, n)
}

func raise(p *atomic.Int64, n int64) {
	for {
		m := p.Load()
		if n <= m || p.CompareAndSwap(m, n) {
			return
		}
	}
}

func (s *shardStats) addClose(code websocket.StatusCode) {
	s.mu.Lock()
	s.closes[strconv.Itoa(int(code))]++
	s.mu.Unlock()
}

func (s *shardStats) addJoinError(code string) {
	s.mu.Lock()
	s.joinErrors[code]++
	s.mu.Unlock()
}

// addRejected counts an action the gateway refused, by action and error code.
func (s *shardStats) addRejected(action string, rerr *replyError) {
	code := "no_result"
	if rerr != nil {
		code = rerr.Code
	}
	s.mu.Lock()
	s.rejected[action+":"+code]++
	s.mu.Unlock()
}

func (s *shardStats) addAnswer(a string) {
	s.mu.Lock()
	s.answers[a]++
	s.mu.Unlock()
}

func (s *shardStats) addWon(item, orderID string) {
	s.mu.Lock()
	s.won[item]++
	s.wonOrders = append(s.wonOrders, orderID)
	s.mu.Unlock()
}

// counters is the JSON form of shardStats, summed over shards by the parent.
type counters struct {
	Peak            int64             `json:"peak"`
	Reconnects      int64             `json:"reconnects"`
	ConnectFailures int64             `json:"connect_failures"`
	Foreign         int64             `json:"foreign"`
	ChatSent        int64             `json:"chat_sent"`
	ChatAcked       int64             `json:"chat_acked"`
	CheerCmds       int64             `json:"cheer_cmds"`
	CheerTaps       int64             `json:"cheer_taps"`
	CheerCredited   int64             `json:"cheer_credited"`
	CheerRefused    int64             `json:"cheer_refused"`
	CheerUnknown    int64             `json:"cheer_unknown"`
	CheerOwed       int64             `json:"cheer_owed"`
	CheerGot        int64             `json:"cheer_got"`
	OnlineOwed      int64             `json:"online_owed"`
	OnlineGot       int64             `json:"online_got"`
	FlashSales      int64             `json:"flash_sales"`
	Presses         int64             `json:"presses"`
	MultiWins       int64             `json:"multi_wins"`
	Answers         map[string]int64  `json:"answers"`
	Won             map[string]int64  `json:"won"`
	WonOrders       []string          `json:"won_orders,omitempty"`
	Retried         int64             `json:"retried"`
	Unanswered      int64             `json:"unanswered"`
	Pings           int64             `json:"pings"`
	Pongs           int64             `json:"pongs"`
	Recovered       int64             `json:"recovered"`
	Resets          int64             `json:"resets"`
	Closes          map[string]int64  `json:"closes"`
	JoinErrors      map[string]int64  `json:"join_errors"`
	Rejected        map[string]int64  `json:"rejected"`
	Errors          map[string]string `json:"errors,omitempty"`
}

func (s *shardStats) snapshot() counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := func(m map[string]int64) map[string]int64 {
		o := make(map[string]int64, len(m))
		for k, v := range m {
			o[k] = v
		}
		return o
	}
	errs := make(map[string]string, len(s.errors))
	for k, v := range s.errors {
		errs[k] = v
	}
	return counters{
		Peak:            s.peak.Load(),
		Reconnects:      s.reconnects.Load(),
		ConnectFailures: s.connectFailures.Load(),
		Foreign:         s.foreign.Load(),
		ChatSent:        s.chatSent.Load(),
		ChatAcked:       s.chatAcked.Load(),
		CheerCmds:       s.cheerCmds.Load(),
		CheerTaps:       s.cheerTaps.Load(),
		CheerCredited:   s.cheerCredited.Load(),
		CheerRefused:    s.cheerRefused.Load(),
		CheerUnknown:    s.cheerUnknown.Load() + s.cheerInFlight.Load(),
		CheerOwed:       s.cheerOwed.Load(),
		CheerGot:        s.cheerGot.Load(),
		OnlineOwed:      s.onlineOwed.Load(),
		OnlineGot:       s.onlineGot.Load(),
		FlashSales:      s.flashSales.Load(),
		Presses:         s.presses.Load(),
		MultiWins:       s.multiWins.Load(),
		Answers:         cp(s.answers),
		Won:             cp(s.won),
		WonOrders:       slices.Clone(s.wonOrders),
		Retried:         s.retried.Load(),
		Unanswered:      s.pending.Load(),
		Pings:           s.pings.Load(),
		Pongs:           s.pongs.Load(),
		Recovered:       s.recovered.Load(),
		Resets:          s.resets.Load(),
		Closes:          cp(s.closes),
		JoinErrors:      cp(s.joinErrors),
		Rejected:        cp(s.rejected),
		Errors:          errs,
	}
}

// add sums o into c.
func (c *counters) add(o counters) {
	c.Peak += o.Peak
	c.Reconnects += o.Reconnects
	c.ConnectFailures += o.ConnectFailures
	c.Foreign += o.Foreign
	c.ChatSent += o.ChatSent
	c.ChatAcked += o.ChatAcked
	c.CheerCmds += o.CheerCmds
	c.CheerTaps += o.CheerTaps
	c.CheerCredited += o.CheerCredited
	c.CheerRefused += o.CheerRefused
	c.CheerUnknown += o.CheerUnknown
	c.CheerOwed += o.CheerOwed
	c.CheerGot += o.CheerGot
	c.OnlineOwed += o.OnlineOwed
	c.OnlineGot += o.OnlineGot
	c.FlashSales += o.FlashSales
	c.Presses += o.Presses
	c.MultiWins += o.MultiWins
	c.Retried += o.Retried
	c.Unanswered += o.Unanswered
	c.Pings += o.Pings
	c.Pongs += o.Pongs
	c.Recovered += o.Recovered
	c.Resets += o.Resets
	addMap := func(dst *map[string]int64, src map[string]int64) {
		if *dst == nil {
			*dst = map[string]int64{}
		}
		for k, v := range src {
			(*dst)[k] += v
		}
	}
	addMap(&c.Closes, o.Closes)
	addMap(&c.JoinErrors, o.JoinErrors)
	addMap(&c.Rejected, o.Rejected)
	addMap(&c.Answers, o.Answers)
	addMap(&c.Won, o.Won)
	c.WonOrders = append(c.WonOrders, o.WonOrders...)
	for k, v := range o.Errors {
		if c.Errors == nil {
			c.Errors = map[string]string{}
		}
		c.Errors[k] = v
	}
}
