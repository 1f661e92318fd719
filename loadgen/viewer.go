package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// viewer is one simulated person: one goroutine (run) that dials, joins, reads every
// frame and reconnects with jittered backoff when dropped. It never writes on its own
// timers: the engine's controller decides when it pings, chats and leaves, and the
// engine's writer pool does the writing (send), so an idle viewer costs one blocked
// goroutine and its connection.
type viewer struct {
	// Set before run starts (target is then owned by run).
	e          *engine
	num        int    // index within the shard
	userID     string // token subject
	token      string
	target     int          // index in Config.Targets; owned by run, which moves it on after a drop
	client     *http.Client // carries the source address
	isHost     bool
	ctx        context.Context
	cancel     context.CancelFunc
	sessionEnd time.Time // when the controller lets it go first (log-normal session end)

	// Owned by the controller goroutine.
	activeIdx int  // index in engine.active, -1 when not there
	leaving   bool // the controller decided it leaves
	finished  bool // its goroutine has ended
	leaveSent bool // its leave was handed to the writers
	lastChat  time.Time
	lastCheer time.Time

	// Shared between the reader, the writers and the controller.
	conn      atomic.Pointer[websocket.Conn] // nil while not connected
	joined    atomic.Bool                    // the current connection's join was answered
	lastSeq   atomic.Int64                   // highest chat seq seen, for `since`
	startUS   atomic.Int64                   // first join reply, µs; 0 before
	cutUS     atomic.Int64                   // lines sent after this no longer count
	downUS    atomic.Int64                   // when the last connection dropped, µs; 0 while up
	left      atomic.Bool                    // its leave was sent: it never comes back
	chatCount atomic.Uint64                  // chat cid counter

	// Actions (chat lines, cheers, pins) awaiting their reply; resent after a
	// reconnect with the same cid.
	mu      sync.Mutex
	pending map[string]pendingCmd
	flash   map[string]flashState // item → standing in that flash sale

	// Owned by run (the reader).
	delivered int64
	dups      int64
	// Cheers: the total last seen and when; the viewer's acknowledged cheers whose
	// totals it has not yet seen (cheerCps; their number in cheerCpN, atomic for the
	// drain).
	cheersSeen   int64
	cheersSeenAt time.Time
	cheerCps     []cheerCp
	cheerCpN     atomic.Int64
	cheerOwed    int64
	cheerGot     int64
	pinMax       atomic.Int64 // newest pin version seen
	lastOnline   atomic.Int64 // the room's online count, as last shown
}

// Why a session ended on the viewer's side.
var (
	errLeft    = errors.New("left")         // it left on purpose: stop
	errRefused = errors.New("join refused") // unauthorized, forbidden, …: stop
	errRetry   = errors.New("join failed")  // unavailable, expired token: reconnect
)

// run is the viewer's goroutine: connect, read until dropped, back off, repeat.
func (v *viewer) run() {
	e := v.e
	defer e.viewerDone(v)
	backoff := time.Duration(0)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			e.stats.reconnects.Add(1)
			if !sleepCtx(v.ctx, backoff) {
				return
			}
		}
		code, joined, err := v.session()
		if errors.Is(err, errLeft) || v.ctx.Err() != nil {
			return
		}
		if v.left.Load() {
			// It sent its leave and the connection dropped before the answer: a
			// person who closed the page does not come back. Rejoining would put a
			// viewer in the room that the run no longer counts in its audience.
			e.stats.addClose(code)
			return
		}
		if joined {
			backoff = 0 // it was in: a new drop starts the backoff afresh
		}
		if code == 4003 { // auth_expired: come back with a fresh token
			v.token = e.mint(v.userID, v.isHost, time.Now())
		}
		// Come back through the next gateway: the one that dropped us may be going
		// away (4001) or gone.
		v.target = (v.target + 1) % len(e.cfg.Targets)
		reconnect, soon := reconnectPolicy(code)
		if !reconnect {
			e.stats.addClose(code)
			return
		}
		e.stats.addClose(code)
		// Jittered exponential backoff: start 0.5–1.5 s, double, cap 30 s; a draining
		// gateway (4001) asks for 0–2 s.
		switch {
		case soon:
			backoff = time.Duration(rand.Int64N(int64(2 * time.Second)))
		case backoff == 0:
			backoff = 500*time.Millisecond + time.Duration(rand.Int64N(int64(time.Second)))
		default:
			backoff = min(2*backoff, 30*time.Second)
			backoff = backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
		}
	}
}

// session is one connection: dial, join, read until it ends. It returns the close
// code the connection ended with (-1 when it never opened or broke without one) and
// whether its join was answered (set by the deferred cleanup).
func (v *viewer) session() (code websocket.StatusCode, joined bool, err error) {
	e := v.e
	select {
	case e.dialSem <- struct{}{}:
	case <-v.ctx.Done():
		return -1, false, v.ctx.Err()
	}
	began := time.Now()
	dctx, cancel := context.WithTimeout(v.ctx, 15*time.Second)
	c, _, err := websocket.Dial(dctx, e.cfg.Targets[v.target], &websocket.DialOptions{HTTPClient: v.client})
	cancel()
	<-e.dialSem
	if err != nil {
		if v.ctx.Err() == nil {
			e.stats.connectFailures.Add(1)
			e.noteError("dial", err)
		}
		return -1, false, err
	}
	c.SetReadLimit(4 << 20)
	v.joined.Store(false)
	v.conn.Store(c)
	defer func() {
		v.conn.Store(nil)
		if v.joined.Swap(false) {
			joined = true
			if !v.isHost {
				e.stats.connected.Add(-1)
			}
		}
		v.downUS.Store(time.Now().UnixMicro())
		c.CloseNow()
	}()
	v.downUS.Store(0)

	join := command{ID: "j", Cmd: "join", Room: e.cfg.Room, Token: v.token, Since: v.lastSeq.Load()}
	if err := v.write(c, encodeCommand(join)); err != nil {
		return websocket.CloseStatus(err), false, err
	}
	// Reads wait without a context: one cancellation hook per connection instead of
	// one per frame (coder/websocket arms a timer hook for every read with a
	// cancellable context; at 20 frames/s per viewer that was a tenth of the CPU).
	stop := context.AfterFunc(v.ctx, func() { c.CloseNow() })
	defer stop()
	for {
		typ, r, err := c.Reader(context.Background())
		if err != nil {
			return websocket.CloseStatus(err), false, err
		}
		// A buffer only while a frame is in hand: an idle viewer holds none.
		buf := e.bufs.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(r)
		if err == nil && typ == websocket.MessageText {
			err = v.handle(c, buf.Bytes(), began)
		}
		e.bufs.Put(buf)
		if err != nil {
			if !errors.Is(err, errLeft) && !errors.Is(err, errRefused) && !errors.Is(err, errRetry) {
				return websocket.CloseStatus(err), false, err
			}
			if errors.Is(err, errRetry) {
				return -1, false, err
			}
			return websocket.StatusNormalClosure, false, err
		}
	}
}

// handle reads one frame.
func (v *viewer) handle(c *websocket.Conn, b []byte, began time.Time) error {
	e := v.e
	if evs, ok := parseEvents(b, make([]event, 0, 4)); ok {
		now := time.Now()
		for i := range evs {
			v.handleEvent(&evs[i], now)
		}
		return nil
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		e.noteError("frame", err)
		return nil
	}
	now := time.Now()
	switch f.Type {
	case "events":
		for i := range f.Events {
			v.handleEvent(&f.Events[i], now)
		}
	case "reply":
		if f.ID == "" {
			return nil
		}
		switch f.ID[0] {
		case idJoin:
			if f.Error != nil {
				e.stats.addJoinError(f.Error.Code)
				c.Close(websocket.StatusNormalClosure, "join refused")
				switch f.Error.Code {
				case "unavailable", "internal", "token_expired":
					// NATS was slow, or the token ran out: back off and come again
					// (with a fresh token, as a client would fetch one).
					if f.Error.Code == "token_expired" {
						v.token = v.e.mint(v.userID, v.isHost, now)
					}
					return errRetry
				}
				return errRefused
			}
			e.join.Record(now.Sub(began))
			first := v.startUS.CompareAndSwap(0, now.UnixMicro())
			if sn := f.Result; sn != nil && sn.Snapshot != nil {
				v.seeCheers(sn.Snapshot.Cheers, now)
				v.lastOnline.Store(sn.Snapshot.Online)
				if sn.Snapshot.Pin != nil {
					v.seePin(sn.Snapshot.Pin.Version, sn.Snapshot.Pin.Product, now)
				}
			}
			if f.Result != nil && f.Result.Snapshot != nil {
				// On a rejoin, the lines missed since lastSeq; on the first join,
				// recent history from before the window, which only moves lastSeq.
				for i := range f.Result.Snapshot.Chat {
					v.handleEvent(&f.Result.Snapshot.Chat[i], now)
				}
				if !first && len(f.Result.Snapshot.Chat) > 0 {
					e.stats.recovered.Add(int64(len(f.Result.Snapshot.Chat)))
				}
			}
			v.joined.Store(true)
			if !v.isHost { // the host is an actor, not audience
				e.stats.noteConnected(e.stats.connected.Add(1))
			}
			v.resendPending()
		case idChat:
			v.chatReply(f.ID[1:], f.Result, f.Error)
		case idCheer:
			v.cheerReply(f.ID[1:], f.Result, f.Error, now)
		case idPin:
			v.pinReply(f.ID[1:], f.Result, f.Error)
		case idBuy:
			v.buyReply(f.ID[1:], f.Result, f.Error, now)
		case idPing:
			e.stats.pongs.Add(1)
		case idLeave:
			c.Close(websocket.StatusNormalClosure, "bye")
			return errLeft
		}
	}
	return nil
}

// handleEvent counts one event. Each class the protocol grows gets a case here.
func (v *viewer) handleEvent(ev *event, now time.Time) {
	e := v.e
	switch ev.Type {
	case "cheers":
		v.seeCheers(ev.Total, now)
	case "pin":
		v.seePin(ev.Version, ev.Product, now)
	case "online":
		v.lastOnline.Store(ev.Online)
	case "delete": // shares the chat sequence: it moves `since`
		if ev.Seq > v.lastSeq.Load() {
			v.lastSeq.Store(ev.Seq)
		}
	case "reset":
		// The gateway could not recover from lastSeq: its recent lines replace the
		// viewer's chat. Lines not above lastSeq were seen already (not duplicates);
		// the ones skipped before them are lost.
		e.stats.resets.Add(1)
		for i := range ev.Lines {
			if ev.Lines[i].Seq > v.lastSeq.Load() {
				v.handleEvent(&ev.Lines[i], now)
			}
		}
	case "chat":
		dup := ev.Seq <= v.lastSeq.Load()
		if !dup {
			v.lastSeq.Store(ev.Seq)
		}
		sent, ours := cidSentUS(ev.CID)
		if !ours {
			e.stats.foreign.Add(1)
			return
		}
		start := v.startUS.Load()
		if start == 0 || sent < start || sent > v.cutUS.Load() {
			return // outside this viewer's window: neither expected nor counted
		}
		if dup {
			v.dups++
			return
		}
		v.delivered++
		lat := now.Sub(time.UnixMicro(sent))
		e.chat.Record(lat)
		e.interval.Load().Record(lat)
		e.stats.events.Add(1)
	}
}

// write sends one text frame with a deadline.
func (v *viewer) write(c *websocket.Conn, b []byte) error {
	ctx, cancel := context.WithTimeout(v.ctx, 10*time.Second)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, b)
}

// send writes a command on the current connection if the viewer is joined. It is
// called by the engine's writer pool.
func (v *viewer) send(cmd command) bool {
	c := v.conn.Load()
	if c == nil || !v.joined.Load() {
		return false
	}
	return v.write(c, encodeCommand(cmd)) == nil
}

// ping sends the heartbeat command.
func (v *viewer) ping() {
	if v.send(command{ID: "p", Cmd: "ping"}) {
		v.e.stats.pings.Add(1)
	}
}

// leave asks the gateway to leave the room; the reader closes on the reply. A viewer
// that is not connected just stops, and so does one whose connection drops before
// the reply: it never reconnects.
func (v *viewer) leave() {
	v.left.Store(true)
	if !v.send(command{ID: "l", Cmd: "leave", Room: v.e.cfg.Room}) {
		v.cancel()
	}
}

// window is what this viewer's session contributes to the chat accounting; called
// after run returned.
func (v *viewer) window(endUS int64) (window, bool) {
	start := v.startUS.Load()
	if start == 0 {
		return window{}, false
	}
	cut := v.cutUS.Load()
	if down := v.downUS.Load(); down != 0 && cut == math.MaxInt64 {
		cut = down // it ended dropped: count what it should have had until then
	}
	cut = min(cut, endUS)
	return window{StartUS: start, CutUS: cut, Delivered: v.delivered, Dups: v.dups, PinMax: v.pinMax.Load()}, true
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
