package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liveroom/liveroom/auth"
)

// shardSpec is what one process of a run needs to know: the Config, which share of
// the room it plays, and the common clock. The parent sends it to a child as JSON.
type shardSpec struct {
	Config  Config   `json:"config"`
	Index   int      `json:"index"`
	Count   int      `json:"count"`
	StartUS int64    `json:"start_us"` // the run's common start, µs since the epoch
	Sources []string `json:"sources,omitempty"`
}

// viewers is this shard's share of the peak audience.
func (s *shardSpec) viewers() int {
	n := s.Config.Viewers / s.Count
	if s.Index < s.Config.Viewers%s.Count {
		n++
	}
	return n
}

// sentLine is one chat line the gateway stored: when it was first sent, its seq.
type sentLine struct {
	SentUS int64 `json:"t"`
	Seq    int64 `json:"s"`
	// Priority lines (the host's) are never sampled out.
	Priority bool `json:"p,omitempty"`
}

// sentPin is one pin the host stored: when it was sent and its version.
type sentPin struct {
	SentUS  int64 `json:"t"`
	Version int64 `json:"v"`
}

// window is one viewer's part of the accounting: it expects every stored line and
// every pin sent in [StartUS, CutUS]; it received Delivered of the lines (and Dups
// again) and saw pins up to version PinMax.
type window struct {
	StartUS   int64 `json:"a"`
	CutUS     int64 `json:"b"`
	Delivered int64 `json:"d"`
	Dups      int64 `json:"u,omitempty"`
	PinMax    int64 `json:"p,omitempty"`
}

// tick is one second of one shard, for the live progress line and the timeline.
type tick struct {
	Shard      int        `json:"shard"`
	Sec        int        `json:"sec"`
	Connected  int64      `json:"connected"`
	Peak       int64      `json:"peak"`
	Events     int64      `json:"events"`
	Reconnects int64      `json:"reconnects"`
	Failures   int64      `json:"failures"`
	ChatSent   int64      `json:"chat_sent"`
	Latency    *Histogram `json:"latency"`
}

// shardResult is everything one process measured; the parent merges them.
type shardResult struct {
	Shard    int        `json:"shard"`
	FullS    float64    `json:"full_s,omitempty"` // flat: start → every viewer joined
	Counters counters   `json:"counters"`
	Join     *Histogram `json:"join"`
	Chat     *Histogram `json:"chat"`
	CheerLat *Histogram `json:"cheer_lat"`
	// CheerLatResent is the part of CheerLat of cheers sent more than once.
	CheerLatResent *Histogram `json:"cheer_lat_resent"`
	PinLat         *Histogram `json:"pin_lat"`
	BuyLat         *Histogram `json:"buy_lat"`
	Lines          []sentLine `json:"lines"`
	Pins           []sentPin  `json:"pins,omitempty"`
	Windows        []window   `json:"windows"`
}

// job is one write the controller hands to the writer pool.
type job struct {
	v    *viewer
	kind byte
	act  pendingCmd // jobAct
	cmd  command    // jobResend
}

const (
	jobPing = iota
	jobAct
	jobResend
	jobLeave
)

// engine plays one shard of a run inside this process: a controller goroutine (run)
// that follows the profile, spawns and retires viewers and schedules their writes; a
// small writer pool; and one goroutine per viewer.
type engine struct {
	// Set in newEngine.
	cfg            Config
	spec           shardSpec
	shard          int
	sched          schedule
	start          time.Time
	clients        []*http.Client
	dialSem        chan struct{}
	jobs           chan job
	bufs           sync.Pool
	stats          *shardStats
	join           Histogram
	chat           Histogram
	cheerLat       Histogram
	cheerLatResent Histogram
	pinLat         Histogram
	buyLat         Histogram

	salesMu        sync.Mutex
	salesSeen      map[string]int64 // flash item → starts_at (ms), as viewers saw it pinned
	salesScheduled map[string]bool  // owned by the controller, under salesMu for brevity
	interval       atomic.Pointer[Histogram]
	progress       func(tick)                                                  // called once a second by the controller
	agree          func(ctx context.Context, local drainMsg) (drainMsg, error) // the run-wide last seq and pin to drain to
	settle         func(ctx context.Context)                                   // waits until every shard has checked its viewers' online count
	vctx           context.Context                                             // parent of every viewer's context
	vcancel        context.CancelFunc

	linesMu sync.Mutex
	lines   []sentLine
	maxSeq  int64
	pins    []sentPin
	maxPin  int64

	doneMu  sync.Mutex
	done    []*viewer // finished, not yet removed by the controller
	windows []window

	laterMu sync.Mutex
	delayed []delayedJob // writes due at a later time (cheers resent after `unavailable`)

	viewers sync.WaitGroup
	workers sync.WaitGroup

	// Owned by the controller.
	active   []*viewer // joined or joining, not leaving
	all      []*viewer // every viewer not finished (host included), for the drain
	nextNum  int
	rng      *rand.Rand
	sessions dueHeap // session ends: who leaves first
	beats    dueHeap // next heartbeat
	closing  dueHeap // leave after LeaveGrace
	presses  dueHeap // flash-sale presses
	host     *viewer
	fullAt   time.Duration // flat: when every viewer of the shard had joined
}

func newEngine(spec shardSpec) *engine {
	cfg := spec.Config
	seed := uint64(cfg.Seed) + uint64(spec.Index)
	if cfg.Seed == 0 {
		seed = uint64(time.Now().UnixNano()) + uint64(spec.Index)
	}
	e := &engine{
		cfg:     cfg,
		spec:    spec,
		shard:   spec.Index,
		sched:   schedule{cfg: &spec.Config},
		start:   time.UnixMicro(spec.StartUS),
		clients: dialClients(spec.Sources),
		dialSem: make(chan struct{}, cfg.DialConcurrency),
		jobs:    make(chan job, 4096),
		stats:   newShardStats(),
		rng:     rand.New(rand.NewPCG(seed, 0x10ad)),

		salesSeen:      map[string]int64{},
		salesScheduled: map[string]bool{},
	}
	e.bufs.New = func() any { return new(bytes.Buffer) }
	e.interval.Store(new(Histogram))
	return e
}

// noteError keeps the first error of each kind for the report.
func (e *engine) noteError(kind string, err error) {
	e.stats.mu.Lock()
	if _, ok := e.stats.errors[kind]; !ok {
		e.stats.errors[kind] = err.Error()
	}
	e.stats.mu.Unlock()
}

func (e *engine) addLine(l sentLine) {
	e.linesMu.Lock()
	e.lines = append(e.lines, l)
	e.maxSeq = max(e.maxSeq, l.Seq)
	e.linesMu.Unlock()
}

// enqueue hands a write to the pool; it gives up when the run is over.
func (e *engine) enqueue(j job) {
	select {
	case e.jobs <- j:
	case <-e.vctx.Done():
	}
}

// enqueueAct queues a new action; it counts as pending from here until its reply.
func (e *engine) enqueueAct(v *viewer, p pendingCmd) {
	e.stats.pending.Add(1)
	e.enqueue(job{v: v, kind: jobAct, act: p})
}

func (e *engine) enqueueChat(v *viewer) {
	e.enqueueAct(v, pendingCmd{kind: idChat, text: e.rng.IntN(len(chatTexts))})
}

func (e *engine) addPin(p sentPin) {
	e.linesMu.Lock()
	e.pins = append(e.pins, p)
	e.maxPin = max(e.maxPin, p.Version)
	e.linesMu.Unlock()
}

func (e *engine) worker() {
	defer e.workers.Done()
	for j := range e.jobs {
		switch j.kind {
		case jobPing:
			j.v.ping()
		case jobAct:
			j.v.act(j.act)
		case jobResend:
			j.v.send(j.cmd)
		case jobLeave:
			j.v.leave()
		}
	}
}

// viewerDone is called by a viewer's goroutine as it ends.
func (e *engine) viewerDone(v *viewer) {
	w, ok := v.window(time.Now().UnixMicro())
	if ok {
		e.stats.cheerOwed.Add(v.cheerOwed)
		e.stats.cheerGot.Add(v.cheerGot)
	}
	e.doneMu.Lock()
	if ok {
		e.windows = append(e.windows, w)
	}
	e.done = append(e.done, v)
	e.doneMu.Unlock()
	v.cancel()
	e.viewers.Done()
}

// spawn starts one viewer.
func (e *engine) spawn(now time.Time, host bool) (*viewer, error) {
	num := e.nextNum
	e.nextNum++
	g := num*e.spec.Count + e.shard // run-wide index: spreads targets and sources
	v := &viewer{
		e:         e,
		num:       num,
		userID:    fmt.Sprintf("lg%d-%d", e.shard, num),
		target:    g % len(e.cfg.Targets),
		client:    e.clients[g%len(e.clients)],
		isHost:    host,
		activeIdx: -1,
	}
	if host {
		v.userID = fmt.Sprintf("lg-host-%d", e.shard)
	}
	v.token = e.mint(v.userID, host, now)
	if v.token == "" {
		return nil, errors.New("loadgen: cannot mint tokens: check the secret")
	}
	v.cutUS.Store(math.MaxInt64)
	v.ctx, v.cancel = context.WithCancel(e.vctx)
	if !host {
		// Log-normal session, median SessionMedian, σ = √(2 ln 2): mean = 2 × median.
		sess := float64(e.cfg.scaled(e.cfg.SessionMedian)) * math.Exp(math.Sqrt(2*math.Ln2)*e.rng.NormFloat64())
		v.sessionEnd = now.Add(time.Duration(sess))
		e.sessions.push(v.sessionEnd, v)
		v.activeIdx = len(e.active)
		e.active = append(e.active, v)
	}
	e.all = append(e.all, v)
	hb := e.cfg.Heartbeat
	e.beats.push(now.Add(time.Duration(e.rng.Int64N(int64(hb)))), v)
	e.viewers.Add(1)
	go v.run()
	return v, nil
}

// mintOrErr signs a viewer token valid for the whole run.
func (e *engine) mintOrErr(userID string) (string, error) {
	return auth.Mint(e.cfg.Secret, auth.Claims{
		UserID: userID, Name: userID, Role: auth.RoleViewer, Rooms: []string{e.cfg.Room},
		Expires: time.Now().Add(e.cfg.Duration + time.Hour),
	})
}

// mint signs a token for a viewer or the host, valid for the whole run; "" when the
// secret cannot sign (checked at the first spawn).
func (e *engine) mint(userID string, host bool, now time.Time) string {
	role, name := auth.RoleViewer, "viewer "+userID
	if host {
		role, name = auth.RoleHost, "Host"
	}
	tok, err := auth.Mint(e.cfg.Secret, auth.Claims{
		UserID: userID, Name: name, Role: role, Rooms: []string{e.cfg.Room},
		Expires: now.Add(e.cfg.Duration + time.Hour),
	})
	if err != nil {
		e.noteError("mint", err)
	}
	return tok
}

// retire makes the viewer that the profile lets go first leave: it stops counting
// new lines now and sends its leave after LeaveGrace.
func (e *engine) retire(now time.Time) bool {
	for {
		it, ok := e.sessions.popFirst()
		if !ok {
			return false
		}
		v := it.v
		if v.activeIdx < 0 || v.leaving {
			continue
		}
		v.leaving = true
		v.cutUS.Store(now.UnixMicro())
		e.removeActive(v)
		e.closing.push(now.Add(e.cfg.LeaveGrace), v)
		return true
	}
}

func (e *engine) removeActive(v *viewer) {
	i := v.activeIdx
	if i < 0 {
		return
	}
	last := len(e.active) - 1
	e.active[i] = e.active[last]
	e.active[i].activeIdx = i
	e.active[last] = nil
	e.active = e.active[:last]
	v.activeIdx = -1
}

// reap removes finished viewers from the controller's lists.
func (e *engine) reap() {
	e.doneMu.Lock()
	done := e.done
	e.done = nil
	e.doneMu.Unlock()
	if len(done) == 0 {
		return
	}
	for _, v := range done {
		e.removeActive(v)
		v.finished = true
	}
	kept := e.all[:0]
	for _, v := range e.all {
		if !v.finished {
			kept = append(kept, v)
		}
	}
	clear(e.all[len(kept):])
	e.all = kept
}
