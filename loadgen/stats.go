package loadgen

import (
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
	chatRetried     atomic.Int64
	chatPending     atomic.Int64
	pings           atomic.Int64
	pongs           atomic.Int64
	recovered       atomic.Int64 // lines received in a rejoin's snapshot
	resets          atomic.Int64 // reset events (recovery was impossible)

	mu           sync.Mutex
	closes       map[string]int64 // close code → count
	joinErrors   map[string]int64 // join error code → count
	chatRejected map[string]int64 // chat error code → count
	errors       map[string]string
}

func newShardStats() *shardStats {
	return &shardStats{
		closes:       map[string]int64{},
		joinErrors:   map[string]int64{},
		chatRejected: map[string]int64{},
		errors:       map[string]string{},
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

func (s *shardStats) addChatRejected(code string) {
	s.mu.Lock()
	s.chatRejected[code]++
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
	ChatRetried     int64             `json:"chat_retried"`
	ChatUnanswered  int64             `json:"chat_unanswered"`
	Pings           int64             `json:"pings"`
	Pongs           int64             `json:"pongs"`
	Recovered       int64             `json:"recovered"`
	Resets          int64             `json:"resets"`
	Closes          map[string]int64  `json:"closes"`
	JoinErrors      map[string]int64  `json:"join_errors"`
	ChatRejected    map[string]int64  `json:"chat_rejected"`
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
		ChatRetried:     s.chatRetried.Load(),
		ChatUnanswered:  s.chatPending.Load(),
		Pings:           s.pings.Load(),
		Pongs:           s.pongs.Load(),
		Recovered:       s.recovered.Load(),
		Resets:          s.resets.Load(),
		Closes:          cp(s.closes),
		JoinErrors:      cp(s.joinErrors),
		ChatRejected:    cp(s.chatRejected),
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
	c.ChatRetried += o.ChatRetried
	c.ChatUnanswered += o.ChatUnanswered
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
	addMap(&c.ChatRejected, o.ChatRejected)
	for k, v := range o.Errors {
		if c.Errors == nil {
			c.Errors = map[string]string{}
		}
		c.Errors[k] = v
	}
}
