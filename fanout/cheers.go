package fanout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Cheers, counted exactly.
//
// A viewer's cheer command carries a count and a client id (cid). The gateway adds the
// commands of a room up and, every CheerInterval, writes them to LR_CHEERS as ONE
// JetStream atomic batch (nats-server 2.12+, AllowAtomicPublish):
//
//	lr.cheerc.<room>.<claim>   Nats-Incr: n      Nats-Msg-Id: c/<room>/<claim>   one per command
//	...
//	lr.cheer.<room>            Nats-Incr: total  Nats-Msg-Id: <gateway>/<room>/<batch>  (commit)
//
// where claim = sha256(user, cid). The batch is stored entirely or not at all, so a
// command's claim exists exactly when its taps are in the room's counter. A resent
// command (same user and cid, on any gateway) makes its batch fail as a duplicate;
// the gateway then reads which claims are stored (one batched direct get), answers
// those as duplicates with the count stored in the claim, and writes the rest again
// in a new batch. A commit whose answer was lost is resolved the same way. Claims are
// remembered for CheerDedupeWindow (the stream's duplicate window; older claims are
// purged).
//
// Atomic batches in flight are limited by nats-server (jetstream.limits.batch:
// max_inflight_per_stream, 50 by default, the batches of every gateway together, and
// max_inflight_total, 1000 per server); beyond them it refuses a batch's first message
// (JSAtomicPublishTooManyInflight, 10210) and the commit then fails as incomplete.
// So a gateway has at most CheerBatchesInFlight batches in flight, whatever the number
// of rooms (a batch waits for a slot), and a refused batch, of which nothing is stored,
// is sent again after a short backoff: gateways that together go over the server's
// limit still converge. The first message carries a reply subject so that the refusal
// is told apart from other failures, which go through the claims look-up above.
//
// The room's total is the counter's value. A batch commit's ack does not carry it, so
// the gateway reads it (one direct get) once the batch is stored, to answer the batch's
// commands. It also reaches every gateway with viewers in the room through RePublish
// (lr.ev.<room>.cheer), which sends it to them as state at most every
// CheerStateInterval.

// CheerAck is the outcome of a cheer command.
type CheerAck struct {
	// Credited is how many taps of the command are counted.
	Credited int64
	// Total is the room's total once they are (or a later value).
	Total int64
	// Duplicate says the command had already been counted (a resend).
	Duplicate bool
}

const maxClaimsPerBatch = 900 // below the server's 1000 messages per atomic batch

// maxCheerFlushes bounds the flushes in flight at once. A CheerInterval's commands do
// not wait for the previous interval's batches to be stored (under load, when a batch
// and its total read take longer than CheerInterval, they used to queue behind it
// until PublishTimeout withdrew them), yet a stalled JetStream does not pile up
// flushes either: with every slot busy, commands wait for the next interval.
const maxCheerFlushes = 4

type cheerReq struct {
	claim   string
	n       int64
	resend  bool          // a waiter said it may have been stored before; guarded by cheerer.mu until taken
	waiters int           // callers waiting on it while it is pending; guarded by cheerer.mu
	done    chan struct{} // closed once ack or err is set
	ack     CheerAck
	err     error
}

func (q *cheerReq) resolve(ack CheerAck, err error) {
	q.ack, q.err = ack, err
	close(q.done)
}

// cheerer batches a hub's cheer commands per room. Its loop is started in New and
// stopped by Close.
type cheerer struct {
	// set in newCheerer
	h        *Hub
	stop     chan struct{}
	wg       sync.WaitGroup
	batch    atomic.Uint64 // batch number, unique per gateway
	flushing chan struct{} // a token per flush in flight, at most maxCheerFlushes
	slots    chan struct{} // a token per atomic batch in flight, at most CheerBatchesInFlight
	inbox    string        // the server answers a batch on <inbox>.<batch id>
	sub      *nats.Subscription

	mu      sync.Mutex                      // guards pending and closed
	pending map[string]map[string]*cheerReq // room → claim → command
	closed  bool

	repliesMu sync.Mutex                // guards replies
	replies   map[string]chan *nats.Msg // batch id → its answers, while it is in flight
}

func newCheerer(h *Hub) (*cheerer, error) {
	c := &cheerer{h: h, stop: make(chan struct{}), flushing: make(chan struct{}, maxCheerFlushes),
		slots: make(chan struct{}, h.cfg.State.CheerBatchesInFlight), inbox: h.nc.NewInbox(),
		pending: make(map[string]map[string]*cheerReq), replies: make(map[string]chan *nats.Msg)}
	sub, err := h.nc.Subscribe(c.inbox+".*", c.onReply)
	if err != nil {
		return nil, fmt.Errorf("fanout: cheer batch replies: %w", err)
	}
	c.sub = sub
	c.wg.Add(1)
	go c.loop()
	return c, nil
}

func claimOf(user, cid string) string {
	sum := sha256.Sum256([]byte(user + "\x00" + cid))
	return hex.EncodeToString(sum[:16])
}

// Cheer counts n taps of user in room, identified by the client's cid, and returns
// once they are stored (or were stored before: Duplicate). Sending the same (user,
// cid) again, on any gateway, within CheerDedupeWindow never counts it twice. resend
// says the client sent this cid before without an answer: such commands are looked up
// before they are batched, apart from first sends, so that one already stored does
// not make the batch of everyone else's first sends fail and go round again.
func (h *Hub) Cheer(ctx context.Context, room, user, cid string, n int64, resend bool) (CheerAck, error) {
	if !ValidRoom(room) {
		return CheerAck{}, ErrBadRoom
	}
	if n <= 0 {
		return CheerAck{}, errors.New("fanout: cheer count must be positive")
	}
	c := h.cheers
	claim := claimOf(user, cid)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return CheerAck{}, ErrClosed
	}
	byClaim := c.pending[room]
	if byClaim == nil {
		byClaim = make(map[string]*cheerReq)
		c.pending[room] = byClaim
	}
	q := byClaim[claim]
	if q == nil { // the same command twice in one batch waits for the first
		q = &cheerReq{claim: claim, n: n, done: make(chan struct{})}
		byClaim[claim] = q
	}
	q.waiters++
	q.resend = q.resend || resend
	c.mu.Unlock()
	start := time.Now()
	ack, err := c.await(ctx, room, q)
	outcome := "stored"
	switch {
	case errors.Is(err, ErrCheerNotStored):
		outcome = "not_stored"
	case err != nil:
		outcome = "unknown"
	case ack.Duplicate:
		outcome = "duplicate"
	}
	h.statem.cheerWait[outcome].Observe(time.Since(start).Seconds())
	return ack, err
}

// await waits for q's answer, or withdraws q if ctx ends before a batch took it.
func (c *cheerer) await(ctx context.Context, room string, q *cheerReq) (CheerAck, error) {
	select {
	case <-q.done:
		return q.ack, q.err
	case <-ctx.Done():
	}
	// Not yet taken by a batch: withdraw it, so that the answer is true (nothing of
	// it is stored). Taken: it is in a batch whose outcome comes within the batch's own
	// time bound, and answering before it would leave the client not knowing whether
	// its taps count (they most likely do).
	c.mu.Lock()
	if byClaim := c.pending[room]; byClaim != nil && byClaim[q.claim] == q {
		if q.waiters--; q.waiters == 0 {
			delete(byClaim, q.claim)
		}
		c.mu.Unlock()
		c.h.statem.cheerWithdrawn.Inc()
		return CheerAck{}, fmt.Errorf("%w: %w", ErrCheerNotStored, ctx.Err())
	}
	c.mu.Unlock()
	<-q.done
	return q.ack, q.err
}

// ErrCheerNotStored is returned by Cheer when its context ended before the command
// was handed to a batch, or when its batch found no slot (nor the server's acceptance)
// within the batch's time bound: none of its taps are stored by this call.
var ErrCheerNotStored = errors.New("fanout: cheer not stored")

// errNotSent: a batch's time bound ended while it waited for a slot, or after the
// server refused it: nothing of it is stored.
var errNotSent = errors.New("fanout: cheer batch not sent in time")

// errBatchRefused: nats-server refused to open the batch, too many atomic batches in
// flight on the stream or the server. Nothing of it is stored.
var errBatchRefused = errors.New("fanout: cheer batch refused: too many atomic batches in flight")

// jsTooManyBatches is JSAtomicPublishTooManyInflight (nats-server errors.json).
const jsTooManyBatches = 10210

func (c *cheerer) loop() {
	defer c.wg.Done()
	t := time.NewTicker(c.h.cfg.State.CheerInterval)
	defer t.Stop()
	purge := time.NewTicker(c.h.cfg.State.CheerDedupeWindow / 4)
	defer purge.Stop()
	var marks []seqMark
	purged := make(chan []seqMark, 1) // the purge in flight, if purging, hands marks back
	purging := false
	for {
		select {
		case <-c.stop:
			c.mu.Lock()
			c.closed = true
			for _, byClaim := range c.pending {
				for _, q := range byClaim {
					q.resolve(CheerAck{}, ErrClosed)
				}
			}
			c.pending = nil
			c.mu.Unlock()
			return
		case <-t.C:
			c.tick()
		case <-purge.C:
			// Off the loop: a slow purge must not hold the next flushes back.
			if !purging {
				purging = true
				c.wg.Add(1)
				go func(marks []seqMark) {
					defer c.wg.Done()
					purged <- c.purgeClaims(marks)
				}(marks)
			}
		case marks = <-purged:
			purging = false
		}
	}
}

// tick starts a flush of the pending commands, unless maxCheerFlushes are in flight:
// then it leaves them for the next interval and returns false.
func (c *cheerer) tick() bool {
	select {
	case c.flushing <- struct{}{}:
	default:
		c.h.statem.cheerFlushBusy.Inc()
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.flushing }()
		c.flush()
	}()
	return true
}

// flush publishes every room's pending commands, the rooms concurrently (their batches
// take turns in the gateway's CheerBatchesInFlight slots).
func (c *cheerer) flush() {
	c.mu.Lock()
	rooms := c.pending
	if rooms == nil { // closed
		c.mu.Unlock()
		return
	}
	c.pending = make(map[string]map[string]*cheerReq, len(rooms))
	c.mu.Unlock()
	var wg sync.WaitGroup
	for room, byClaim := range rooms {
		if len(byClaim) == 0 { // every command withdrawn
			continue
		}
		var fresh, resent []*cheerReq
		for _, q := range byClaim {
			if q.resend {
				resent = append(resent, q)
			} else {
				fresh = append(fresh, q)
			}
		}
		for _, qs := range [][]*cheerReq{fresh, resent} {
			if len(qs) == 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.publishRoom(room, qs)
			}()
		}
	}
	wg.Wait()
}

// publishRoom stores a room's commands, resolving duplicates, in at most 4 rounds.
// Resent commands (all of qs or none) are looked up first: those stored are answered
// as duplicates without a failed batch.
func (c *cheerer) publishRoom(room string, qs []*cheerReq) {
	m := c.h.statem
	defer func(start time.Time) { m.cheerBatchSeconds.Observe(time.Since(start).Seconds()) }(time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 2*c.h.cfg.SubscribeTimeout)
	defer cancel()
	if qs[0].resend {
		// On a failed look-up the batch finds the duplicates itself.
		if rest, err := c.resolveStored(ctx, room, qs); err == nil {
			qs = rest
		}
	}
	for round := 0; len(qs) > 0; round++ {
		if round == 4 {
			for _, q := range qs {
				q.resolve(CheerAck{}, errors.New("fanout: cheer not stored after 4 rounds"))
			}
			m.cheerBatchFailed.Inc()
			return
		}
		var retry []*cheerReq
		for len(qs) > 0 {
			chunk := qs[:min(len(qs), maxClaimsPerBatch)]
			qs = qs[len(chunk):]
			total, err := c.publishBatch(ctx, room, chunk)
			if err == nil {
				m.cheerBatchStored.Inc()
				m.cheerBatchCommands.Observe(float64(len(chunk)))
				for _, q := range chunk {
					m.cheerCredited.Add(float64(q.n))
					q.resolve(CheerAck{Credited: q.n, Total: total}, nil)
				}
				continue
			}
			if errors.Is(err, errNotSent) {
				// Not stored by this round; in a later one, an earlier round's batch
				// whose answer was lost might still be.
				if round == 0 {
					err = fmt.Errorf("%w: %w", ErrCheerNotStored, err)
				}
				for _, q := range chunk {
					q.resolve(CheerAck{}, err)
				}
				m.cheerBatchFailed.Inc()
				continue
			}
			// Duplicate, lost answer, or another failure: ask what is stored.
			m.cheerBatchRetried.Inc()
			rest, lerr := c.resolveStored(ctx, room, chunk)
			if lerr != nil {
				for _, q := range rest {
					q.resolve(CheerAck{}, fmt.Errorf("%w (then %w)", err, lerr))
				}
				m.cheerBatchFailed.Inc()
				continue
			}
			retry = append(retry, rest...)
		}
		qs = retry
	}
}

// pubAckResponse is JetStream's answer to a publish (or a batch commit).
type pubAckResponse struct {
	jetstream.PubAck
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// publishBatch writes the claims of qs and the room increment as one atomic batch and
// returns the room's total after it. A batch the server refuses for its in-flight
// limits is sent again after a backoff; errNotSent if ctx ends first.
func (c *cheerer) publishBatch(ctx context.Context, room string, qs []*cheerReq) (int64, error) {
	for try := 0; ; try++ {
		err := c.sendBatch(ctx, room, qs)
		if err == nil {
			break
		}
		if !errors.Is(err, errBatchRefused) {
			return 0, err
		}
		c.h.statem.cheerBatchLimited["server"].Inc()
		t := time.NewTimer(refusedBackoff(try))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("%w: refused by the server: %w", errNotSent, ctx.Err())
		}
	}
	// A batch commit's ack does not carry the counter's value: read it. The batch is
	// stored, so a failed read is not a failed batch: Total is then 0 ("unknown").
	v, err := c.h.readCheerTotal(ctx, room)
	if err != nil {
		return 0, nil
	}
	c.h.noteCheerTotal(room, v)
	return v, nil
}

// refusedBackoff is how long a refused batch waits before it is sent again: 10ms, 20ms,
// ... up to 320ms, jittered so that gateways refused together do not come back together.
func refusedBackoff(try int) time.Duration {
	d := 10 * time.Millisecond << min(try, 5)
	return d/2 + rand.N(d/2)
}

// sendBatch sends qs as one atomic batch, in one of the gateway's slots, and waits
// for the server's answer: nil once it is stored, errBatchRefused if the server
// refused to open it, errNotSent if ctx ended before a slot was free.
func (c *cheerer) sendBatch(ctx context.Context, room string, qs []*cheerReq) error {
	select {
	case c.slots <- struct{}{}:
	default:
		c.h.statem.cheerBatchLimited["gateway"].Inc()
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("%w: no batch slot free: %w", errNotSent, ctx.Err())
		}
	}
	defer func() { <-c.slots }()

	id := nuid.Next()
	answers := make(chan *nats.Msg, 2) // the first message's and the commit's
	c.repliesMu.Lock()
	c.replies[id] = answers
	c.repliesMu.Unlock()
	defer func() {
		c.repliesMu.Lock()
		delete(c.replies, id)
		c.repliesMu.Unlock()
	}()
	reply := c.inbox + "." + id

	nc := c.h.nc
	var total int64
	for i, q := range qs {
		msg := nats.NewMsg(claimSubject(room, q.claim))
		if i == 0 {
			msg.Reply = reply // answered empty once the batch is open, else with the refusal
		}
		msg.Header.Set("Nats-Incr", strconv.FormatInt(q.n, 10))
		msg.Header.Set(jetstream.MsgIDHeader, "c/"+room+"/"+q.claim)
		msg.Header.Set("Nats-Batch-Id", id)
		msg.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if err := nc.PublishMsg(msg); err != nil {
			return fmt.Errorf("fanout: cheer batch: %w", err)
		}
		total += q.n
	}
	commit := nats.NewMsg(cheerSubject(room))
	commit.Reply = reply
	commit.Header.Set("Nats-Incr", strconv.FormatInt(total, 10))
	commit.Header.Set(jetstream.MsgIDHeader, c.h.cfg.State.GatewayID+"/"+room+"/"+strconv.FormatUint(c.batch.Add(1), 10))
	commit.Header.Set("Nats-Batch-Id", id)
	commit.Header.Set("Nats-Batch-Sequence", strconv.Itoa(len(qs)+1))
	commit.Header.Set("Nats-Batch-Commit", "1")
	if err := nc.PublishMsg(commit); err != nil {
		return fmt.Errorf("fanout: cheer batch: %w", err)
	}
	// The answers come in order: the first message's, then the commit's. An error in
	// either means nothing of the batch is stored; only the commit is acked with a body.
	for {
		var resp *nats.Msg
		select {
		case resp = <-answers:
		case <-ctx.Done():
			return fmt.Errorf("fanout: cheer batch: %w", ctx.Err())
		}
		if status := resp.Header.Get("Status"); status != "" {
			return fmt.Errorf("fanout: cheer batch: status %s %s", status, resp.Header.Get("Description"))
		}
		if len(resp.Data) == 0 {
			continue // the batch is open
		}
		var ack pubAckResponse
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return fmt.Errorf("fanout: cheer batch: bad ack %q", resp.Data)
		}
		if ack.Error != nil {
			if ack.Error.ErrCode == jsTooManyBatches {
				return errBatchRefused
			}
			return fmt.Errorf("fanout: cheer batch: %s (%d)", ack.Error.Description, ack.Error.ErrCode)
		}
		return nil
	}
}

// onReply hands the server's answer to a batch in flight to its sender.
func (c *cheerer) onReply(m *nats.Msg) {
	id := m.Subject[len(c.inbox)+1:]
	c.repliesMu.Lock()
	answers := c.replies[id]
	c.repliesMu.Unlock()
	if answers != nil {
		select {
		case answers <- m:
		default: // not a batch's answer: at most two come
		}
	}
}

// resolveStored answers the commands whose claims are stored as duplicates and returns
// the others.
func (c *cheerer) resolveStored(ctx context.Context, room string, qs []*cheerReq) ([]*cheerReq, error) {
	stored := make(map[string]int64)
	for i := 0; i < len(qs); i += 200 {
		var subjects []string
		for _, q := range qs[i:min(len(qs), i+200)] {
			subjects = append(subjects, claimSubject(room, q.claim))
		}
		msgs, err := c.h.multiLast(ctx, cheerStream, subjects)
		if err != nil {
			return qs, err
		}
		for _, m := range msgs {
			stored[gatewayOfSubject(m.Header.Get(jetstream.SubjectHeader))] = counterValue(m.Data)
		}
	}
	if len(stored) == 0 {
		return qs, nil
	}
	total, err := c.h.readCheerTotal(ctx, room)
	if err != nil {
		return qs, err
	}
	var rest []*cheerReq
	for _, q := range qs {
		if n, ok := stored[q.claim]; ok {
			c.h.statem.cheerDuplicate.Inc()
			q.resolve(CheerAck{Credited: n, Total: total, Duplicate: true}, nil)
		} else {
			rest = append(rest, q)
		}
	}
	return rest, nil
}

// counterValue parses a counter message body, {"val":"123"}; 0 if it is not one.
func counterValue(data []byte) int64 {
	var v struct {
		Val string `json:"val"`
	}
	if json.Unmarshal(data, &v) != nil {
		return 0
	}
	n, _ := strconv.ParseInt(v.Val, 10, 64)
	return n
}

// readCheerTotal reads the room's total from JetStream.
func (h *Hub) readCheerTotal(ctx context.Context, room string) (int64, error) {
	m, err := h.lastMsg(ctx, cheerStream, cheerSubject(room))
	if errors.Is(err, errNoMsg) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return counterValue(m.Data), nil
}

// seqMark is LR_CHEERS' last sequence at a time.
type seqMark struct {
	at  time.Time
	seq uint64
}

// purgeClaims removes claims stored more than CheerDedupeWindow ago: it notes the
// stream's last sequence now and purges lr.cheerc.> below the newest mark older than
// the window. Every gateway runs it; purges are idempotent.
func (c *cheerer) purgeClaims(marks []seqMark) []seqMark {
	ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.SubscribeTimeout)
	defer cancel()
	s, err := c.h.js.Stream(ctx, cheerStream)
	if err != nil {
		return marks
	}
	now := time.Now()
	marks = append(marks, seqMark{now, s.CachedInfo().State.LastSeq + 1})
	cut := -1
	for i, mk := range marks {
		if now.Sub(mk.at) >= c.h.cfg.State.CheerDedupeWindow {
			cut = i
		}
	}
	if cut < 0 {
		return marks
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject("lr.cheerc.>"), jetstream.WithPurgeSequence(marks[cut].seq)); err == nil {
		marks = marks[cut+1:]
	}
	return marks
}

func (c *cheerer) close() {
	close(c.stop)
	c.wg.Wait()
	_ = c.sub.Unsubscribe()
}
