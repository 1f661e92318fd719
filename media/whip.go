package media

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// broadcast is one room's publisher session, from its WHIP POST until DELETE, a
// failed connection or Server.Close. It owns the room's forwarders and viewers.
type broadcast struct {
	// set before it is shared
	s        *Server
	room     string
	id       string
	relay    *relay        // nil for a WHIP publisher; set for an edge's upstream (relay.go)
	done     chan struct{} // closed by end when it starts
	finished chan struct{} // closed by end when it is over: viewers and peer closed

	// The room goes live (status published, WHEP answered) once every track the
	// offer announced has sent its first packet, or TrackWait after the first one.
	firstTrack chan struct{} // closed by onTrack on the first track
	allTracks  chan struct{} // closed by onTrack when the expected tracks are all there
	liveCh     chan struct{} // closed by goLive

	// statusMu serialises this broadcast's status publishes so "offline" is last.
	// Lock order: statusMu, then mu.
	statusMu sync.Mutex

	mu       sync.Mutex
	pc       *webrtc.PeerConnection
	expected int // tracks the publisher's offer announced
	tracks   []*forwarder
	live     bool // liveCh is closed
	viewers  map[string]*viewer
	joining  int  // WHEP requests between finding this broadcast and registering
	counted  bool // publishers gauge incremented
	ended    bool
}

func (s *Server) whipPost(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !validRoom(room) {
		s.refuse(w, http.StatusBadRequest, "room_name", "room must be 1-64 characters of A-Z a-z 0-9 _ -")
		return
	}
	if !s.authorize(w, r, room, true) {
		return
	}
	offer, ok := s.readOffer(w, r)
	if !ok {
		return
	}

	b := newBroadcast(s, room)
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		s.refuse(w, http.StatusServiceUnavailable, "closing", "media server is shutting down")
		return
	case s.rooms[room] != nil:
		s.mu.Unlock()
		s.refuse(w, http.StatusConflict, "busy", fmt.Sprintf("room %q already has a live publisher; end it (DELETE its resource) first", room))
		return
	}
	s.rooms[room] = b // reserved: a second publisher now gets 409
	s.mu.Unlock()

	pc, err := s.pubAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.end()
		s.refuse(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	b.mu.Lock()
	b.pc = pc
	b.mu.Unlock()
	pc.OnTrack(b.onTrack)
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			s.spawn(b.end)
		}
	})
	sdp, err := s.answer(r.Context(), pc, offer)
	if err != nil {
		b.end()
		s.answerError(w, err)
		return
	}
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		s.refuse(w, http.StatusServiceUnavailable, "closing", "broadcast ended before it started")
		return
	}
	b.counted = true
	// Set before the answer is sent: no track can arrive before the publisher has it.
	b.expected = receivingTracks(pc)
	b.mu.Unlock()
	s.m.publishers.Inc()
	s.spawn(b.refreshStatus)
	writeAnswer(w, "/whip/"+room+"/"+b.id, sdp)
}

func newBroadcast(s *Server, room string) *broadcast {
	return &broadcast{
		s: s, room: room, id: newID(), done: make(chan struct{}), finished: make(chan struct{}),
		viewers: map[string]*viewer{}, firstTrack: make(chan struct{}), allTracks: make(chan struct{}),
		liveCh: make(chan struct{}),
	}
}

func (s *Server) whipDelete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	b := s.rooms[r.PathValue("room")]
	s.mu.Unlock()
	if b == nil || b.relay != nil || b.id != r.PathValue("id") {
		http.Error(w, "no such WHIP session", http.StatusNotFound)
		return
	}
	b.end()
	w.WriteHeader(http.StatusOK)
}

// onTrack starts a forwarder for a publisher track (Pion calls it on the track's
// first packet) and announces the room's tracks.
func (b *broadcast) onTrack(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	b.mu.Lock()
	pc := b.pc
	b.mu.Unlock()
	ssrc := uint32(track.SSRC())
	f := newForwarder(track.Codec(), track.Kind(), track, b.s.cfg, b.s.m, func() {
		_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	})
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return
	}
	b.tracks = append(b.tracks, f)
	if len(b.tracks) == 1 {
		close(b.firstTrack)
	}
	if len(b.tracks) == b.expected {
		close(b.allTracks)
	}
	live := b.live
	b.mu.Unlock()
	if !b.s.spawn(f.run) {
		return
	}
	// Drain the publisher's RTCP; sender reports go on to the viewers.
	b.s.spawn(func() { f.readPublisherRTCP(recv, ssrc) })
	if live {
		b.publishStatus() // a track later than TrackWait
	}
}

// receivingTracks counts the media sections of the answered offer that the publisher
// sends on.
func receivingTracks(pc *webrtc.PeerConnection) int {
	n := 0
	for _, t := range pc.GetTransceivers() {
		if d := t.Direction(); t.Receiver() != nil && (d == webrtc.RTPTransceiverDirectionRecvonly || d == webrtc.RTPTransceiverDirectionSendrecv) {
			n++
		}
	}
	return n
}

// goLive marks the room live: waiting viewers are answered, the status published.
func (b *broadcast) goLive() {
	b.mu.Lock()
	if b.live {
		b.mu.Unlock()
		return
	}
	b.live = true
	close(b.liveCh)
	b.mu.Unlock()
	b.publishStatus()
}

// tracksInfo describes the forwarders; called with b.mu held.
func (b *broadcast) tracksInfo() []TrackInfo {
	out := make([]TrackInfo, 0, len(b.tracks))
	for _, f := range b.tracks {
		out = append(out, TrackInfo{Kind: f.media.String(), Codec: codecName(f.codec.MimeType)})
	}
	return out
}

// codecName is TrackInfo.Codec for a MIME type, spelt the same whatever the
// publisher's SDP said (GStreamer's is "OPUS", a browser's "opus").
func codecName(mimeType string) string {
	switch {
	case strings.EqualFold(mimeType, webrtc.MimeTypeH264):
		return "H264"
	case strings.EqualFold(mimeType, webrtc.MimeTypeVP8):
		return "VP8"
	case strings.EqualFold(mimeType, webrtc.MimeTypeOpus):
		return "opus"
	}
	_, sub, _ := strings.Cut(mimeType, "/")
	return sub
}

// publishStatus announces the room live with its current tracks, and this node as
// its origin. An edge's relay announces nothing: the origin does.
func (b *broadcast) publishStatus() {
	if b.relay != nil {
		return
	}
	b.statusMu.Lock()
	defer b.statusMu.Unlock()
	b.mu.Lock()
	if b.ended || !b.live {
		b.mu.Unlock()
		return
	}
	info := b.tracksInfo()
	b.mu.Unlock()
	// The origin first: a viewer who learns that the room is live may ask an edge.
	if err := b.s.status.publishOrigin(OriginStatus{Room: b.room, Live: true, Origin: b.s.cfg.PublicURL}); err != nil {
		b.s.cfg.Logger.Warn("media: publish origin status", "room", b.room, "err", err)
	}
	if err := b.s.status.publish(LiveStatus{Room: b.room, Live: true, Tracks: info}); err != nil {
		b.s.cfg.Logger.Warn("media: publish live status", "room", b.room, "err", err)
	}
}

// refreshStatus makes the room live when its tracks have arrived (goLive), then
// republishes the live status every LiveRefresh until the broadcast ends.
func (b *broadcast) refreshStatus() {
	select {
	case <-b.done:
		return
	case <-b.firstTrack:
	}
	wait := time.NewTimer(b.s.cfg.TrackWait)
	select {
	case <-b.done:
		wait.Stop()
		return
	case <-b.allTracks:
	case <-wait.C:
	}
	wait.Stop()
	b.goLive()
	if b.relay != nil {
		return // an edge publishes no status
	}

	t := time.NewTicker(b.s.cfg.LiveRefresh)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
			b.publishStatus()
		}
	}
}

// end stops the broadcast: the room goes offline, its viewers are closed, the
// publisher's connection is closed (which ends the forwarders). An edge's relay
// announces nothing and ends its upstream session instead. Safe to call more than
// once and from any goroutine except Pion's callbacks.
func (b *broadcast) end() {
	b.statusMu.Lock()
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		b.statusMu.Unlock()
		return
	}
	b.ended = true
	wasLive, counted, pc := b.live, b.counted, b.pc
	viewers := make([]*viewer, 0, len(b.viewers))
	for _, v := range b.viewers {
		viewers = append(viewers, v)
	}
	b.mu.Unlock()
	close(b.done)
	if b.relay != nil {
		b.relay.cancel() // a relay still starting stops
	} else if wasLive {
		if err := b.s.status.publish(LiveStatus{Room: b.room, Live: false}); err != nil {
			b.s.cfg.Logger.Warn("media: publish offline status", "room", b.room, "err", err)
		}
		if err := b.s.status.publishOrigin(OriginStatus{Room: b.room, Live: false, Origin: b.s.cfg.PublicURL}); err != nil {
			b.s.cfg.Logger.Warn("media: publish origin status", "room", b.room, "err", err)
		}
	}
	b.statusMu.Unlock()

	b.s.mu.Lock()
	if b.s.rooms[b.room] == b {
		delete(b.s.rooms, b.room)
	}
	b.s.mu.Unlock()
	var closing sync.WaitGroup // viewers close in parallel: each waits for its DTLS close
	for _, v := range viewers {
		closing.Go(v.close)
	}
	closing.Wait()
	if b.relay != nil {
		b.relay.leaveOrigin()
	}
	if pc != nil {
		if err := pc.GracefulClose(); err != nil {
			b.s.cfg.Logger.Debug("media: close publisher", "room", b.room, "err", err)
		}
	}
	if counted {
		b.s.m.publishers.Dec()
	}
	if b.relay != nil {
		b.s.m.relays.Dec()
		b.s.cfg.Logger.Info("media: relay ended", slog.String("room", b.room), slog.String("origin", b.relay.origin))
	} else {
		b.s.cfg.Logger.Info("media: broadcast ended", slog.String("room", b.room))
	}
	close(b.finished)
}
