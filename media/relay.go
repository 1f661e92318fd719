package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/auth"
)

// An edge relays a room whose host publishes to another media node (the origin): on
// the first WHEP request for a room with no local publisher, when LR_LIVE names an
// origin for it (OriginStatus), the node opens one WHEP session to the origin and
// feeds the tracks it receives into a broadcast of its own, whose forwarders serve
// its local viewers as a WHIP publisher's would. Keyframe requests and NACKs go
// upstream through the same merged paths (the origin sees one viewer).

// relayStartTimeout bounds a relay's start: from the first WHEP request to the first
// packet from the origin. Local viewers waiting for it are answered 404 after it.
const relayStartTimeout = 10 * time.Second

// relayTokenTTL is the life of the token an edge mints for its WHEP request to the
// origin (checked once, on the POST).
const relayTokenTTL = time.Minute

// relay is the upstream side of an edge's broadcast.
type relay struct {
	// set in edgeFor
	b      *broadcast
	origin string             // the origin's public URL
	ctx    context.Context    // ends with the broadcast (cancel is called by end)
	cancel context.CancelFunc //
	idle   chan struct{}      // one signal (cap 1) each time the last local viewer leaves

	resource string // the upstream WHEP resource URL; guarded by b.mu
}

// edgeFor returns the room's broadcast relayed from its origin, starting it when
// there is none (concurrent first viewers share one), or nil when the room is not
// live on another node.
func (s *Server) edgeFor(ctx context.Context, room string) *broadcast {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	origin, err := s.status.origin(ctx, room)
	cancel()
	if err != nil {
		s.cfg.Logger.Warn("media: look up the room's origin", "room", room, "err", err)
		return nil
	}
	if origin == "" || origin == s.cfg.PublicURL {
		return nil // live nowhere, or a stale status of this very node
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if b := s.rooms[room]; b != nil {
		return b // another request started it, or a host has just published here
	}
	b := newBroadcast(s, room)
	rctx, rcancel := context.WithCancel(context.Background())
	b.relay = &relay{b: b, origin: origin, ctx: rctx, cancel: rcancel, idle: make(chan struct{}, 1)}
	s.rooms[room] = b
	s.m.relays.Inc()
	s.m.relayStarts.Inc()
	s.wg.Add(2) // as spawn does; s.mu is held
	go func() {
		defer s.wg.Done()
		b.relay.run()
	}()
	go func() {
		defer s.wg.Done()
		b.refreshStatus() // makes the relay live once its tracks arrived
	}()
	return b
}

// idleNow tells the relay that its last local viewer left.
func (rl *relay) idleNow() {
	select {
	case rl.idle <- struct{}{}:
	default:
	}
}

// run connects to the origin and then keeps the relay until it has had no local
// viewer for RelayIdle, the origin's status says the room is offline (or live on
// another node), or the broadcast ends (its upstream connection failed, Close).
func (rl *relay) run() {
	b, s := rl.b, rl.b.s
	// Watch the origin before connecting: its going offline is not missed.
	watch := make(chan OriginStatus, 1)
	sub, err := s.status.watchOrigin(b.room, func(st OriginStatus) {
		if !st.Live || st.Origin != rl.origin {
			select {
			case watch <- st:
			default:
			}
		}
	})
	if err != nil {
		rl.fail("signal", err)
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := rl.connect(); err != nil {
		rl.fail("signal", err)
		return
	}
	s.cfg.Logger.Info("media: relaying", "room", b.room, "origin", rl.origin)

	start := time.NewTimer(relayStartTimeout)
	defer start.Stop()
	idle := time.NewTimer(s.cfg.RelayIdle)
	defer idle.Stop()
	liveCh := b.liveCh
	for {
		select {
		case <-b.done:
			return
		case <-liveCh:
			liveCh = nil
			start.Stop()
		case <-start.C:
			b.mu.Lock()
			live := b.live
			b.mu.Unlock()
			if !live {
				rl.fail("start", errors.New("no media from the origin in time"))
				return
			}
		case <-rl.idle:
			idle.Reset(s.cfg.RelayIdle)
		case <-idle.C:
			b.mu.Lock()
			idleNow := b.idleLocked()
			b.mu.Unlock()
			if idleNow {
				b.end()
				return
			}
		case st := <-watch:
			s.cfg.Logger.Info("media: the origin stopped the room", "room", b.room, "origin", rl.origin, "now", st.Origin, "live", st.Live)
			b.end()
			return
		}
	}
}

func (rl *relay) fail(reason string, err error) {
	b := rl.b
	select {
	case <-b.done: // ended on purpose (Close) while starting: not a failure
	default:
		b.s.m.relayFailures.WithLabelValues(reason).Inc()
		b.s.cfg.Logger.Warn("media: relay failed", "room", b.room, "origin", rl.origin, "reason", reason, "err", err)
	}
	b.end()
}

// connect opens the upstream: a receive-only peer connection (with the publisher
// API's interceptors: NACK generation and receiver reports, as towards a WHIP
// publisher) whose WHEP offer goes to the origin. Its tracks arrive in b.onTrack.
func (rl *relay) connect() error {
	b, s := rl.b, rl.b.s
	pc, err := s.pubAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return pc.Close()
	}
	b.pc = pc // closed by end from now on
	b.mu.Unlock()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return err
		}
	}
	pc.OnTrack(b.onTrack)
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			s.spawn(func() {
				select {
				case <-b.done:
				default:
					s.m.relayFailures.WithLabelValues("upstream").Inc()
				}
				b.end()
			})
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	t := time.NewTimer(s.cfg.GatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
		return errors.New("ICE gathering timed out")
	case <-rl.ctx.Done():
		return rl.ctx.Err()
	}
	answer, resource, err := rl.post(pc.LocalDescription().SDP)
	if err != nil {
		return err
	}
	desc := webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}
	parsed, err := desc.Unmarshal()
	if err != nil {
		return fmt.Errorf("origin's answer: %w", err)
	}
	// The tracks the origin will send: set before its first packet can arrive.
	expected := 0
	for _, md := range parsed.MediaDescriptions {
		if _, ok := md.Attribute(webrtc.RTPTransceiverDirectionSendonly.String()); ok {
			expected++
		}
	}
	b.mu.Lock()
	b.expected = expected
	rl.resource = resource
	b.mu.Unlock()
	return pc.SetRemoteDescription(desc)
}

// post sends the WHEP offer to the origin with a token the edge mints: a viewer
// token for this room only, which the origin checks as any viewer's.
func (rl *relay) post(offer string) (answer, resource string, err error) {
	b, s := rl.b, rl.b.s
	tok, err := auth.Mint(s.cfg.Secret, auth.Claims{
		UserID: "media-edge", Name: s.cfg.PublicURL, Role: auth.RoleViewer,
		Rooms: []string{b.room}, Expires: time.Now().Add(relayTokenTTL),
	})
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(rl.ctx, 10*time.Second)
	defer cancel()
	endpoint := rl.origin + "/whep/" + b.room
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(offer))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("WHEP %s: %s: %s", endpoint, resp.Status, strings.TrimSpace(string(body)))
	}
	loc, err := resp.Location()
	if err != nil {
		return "", "", fmt.Errorf("WHEP %s: no resource URL: %w", endpoint, err)
	}
	return string(body), loc.String(), nil
}

// leaveOrigin deletes the upstream WHEP session on the origin (best effort: the
// origin also ends it when the connection closes). Called by end.
func (rl *relay) leaveOrigin() {
	rl.b.mu.Lock()
	resource := rl.resource
	rl.b.mu.Unlock()
	if resource == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, resource, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		rl.b.s.cfg.Logger.Debug("media: leave the origin", "room", rl.b.room, "err", err)
		return
	}
	_ = resp.Body.Close()
}
