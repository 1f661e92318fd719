package media

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/pion/webrtc/v4"
)

// viewer is one WHEP session: a peer connection with one downTrack per publisher
// track, from its POST until DELETE, a failed connection, or its broadcast's end.
type viewer struct {
	// set before it is shared
	s     *Server
	b     *broadcast
	id    string
	pc    *webrtc.PeerConnection
	downs []*downTrack

	once   sync.Once
	closed bool // guarded by b.mu: set by close, checked before registering
}

func (s *Server) whepPost(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !validRoom(room) {
		s.refuse(w, http.StatusBadRequest, "room_name", "room must be 1-64 characters of A-Z a-z 0-9 _ -")
		return
	}
	if !s.authorize(w, r, room, false) {
		return
	}
	offer, ok := s.readOffer(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	b := s.rooms[room]
	s.mu.Unlock()
	if b == nil {
		// No publisher here: relay the room if it is live on another node.
		b = s.edgeFor(r.Context(), room)
	}
	var tracks []*forwarder
	if b != nil {
		b.mu.Lock()
		b.joining++ // an edge keeps its upstream for this request
		waitLive := !b.ended && !b.live && (len(b.tracks) > 0 || b.relay != nil)
		b.mu.Unlock()
		defer b.joined()
		if waitLive {
			// The publisher's first track is there, not yet all of them: wait (at
			// most TrackWait) so that this viewer gets every track. An edge's relay
			// that is starting is waited for (at most relayStartTimeout).
			select {
			case <-b.liveCh:
			case <-b.done:
			case <-r.Context().Done():
				return
			}
		}
		b.mu.Lock()
		if !b.ended {
			tracks = append(tracks, b.tracks...)
		}
		b.mu.Unlock()
	}
	if len(tracks) == 0 {
		s.refuse(w, http.StatusNotFound, "not_live", fmt.Sprintf("room %q is not live", room))
		return
	}

	pc, err := s.viewAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		s.refuse(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	v := &viewer{s: s, b: b, id: newID(), pc: pc}
	var senders []*webrtc.RTPSender
	for _, f := range tracks {
		d := newDownTrack(f, f.media.String(), "liveroom-"+room, pc.WriteRTCP)
		sender, err := pc.AddTrack(d)
		if err != nil {
			_ = pc.Close()
			s.refuse(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		v.downs = append(v.downs, d)
		senders = append(senders, sender)
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			for _, d := range v.downs {
				d.arm()
			}
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			s.spawn(v.close)
		}
	})
	sdp, err := s.answer(r.Context(), pc, offer)
	if err != nil {
		_ = pc.GracefulClose()
		s.answerError(w, err)
		return
	}

	b.mu.Lock()
	if b.ended || v.closed {
		b.mu.Unlock()
		v.close()
		s.refuse(w, http.StatusNotFound, "not_live", fmt.Sprintf("room %q is not live", room))
		return
	}
	b.viewers[v.id] = v
	b.mu.Unlock()
	s.m.viewers.Inc()
	for i, sender := range senders {
		d := v.downs[i]
		if !s.spawn(func() { d.readRTCP(sender) }) {
			break
		}
	}
	writeAnswer(w, "/whep/"+room+"/"+v.id, sdp)
}

func (s *Server) whepDelete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	b := s.rooms[r.PathValue("room")]
	s.mu.Unlock()
	var v *viewer
	if b != nil {
		b.mu.Lock()
		v = b.viewers[r.PathValue("id")]
		b.mu.Unlock()
	}
	if v == nil {
		http.Error(w, "no such WHEP session", http.StatusNotFound)
		return
	}
	v.close()
	w.WriteHeader(http.StatusOK)
}

// close ends the viewer's session. Safe to call more than once, from any goroutine
// except Pion's callbacks.
func (v *viewer) close() {
	v.once.Do(func() {
		v.b.mu.Lock()
		v.closed = true
		_, registered := v.b.viewers[v.id]
		delete(v.b.viewers, v.id)
		idle := v.b.idleLocked()
		v.b.mu.Unlock()
		if idle {
			v.b.relay.idleNow()
		}
		for _, d := range v.downs {
			d.f.remove(d)
		}
		_ = v.pc.GracefulClose()
		if registered {
			v.s.m.viewers.Dec()
		}
	})
}

// joined ends a WHEP request's hold on b (joining), registered or not.
func (b *broadcast) joined() {
	b.mu.Lock()
	b.joining--
	idle := b.idleLocked()
	b.mu.Unlock()
	if idle {
		b.relay.idleNow()
	}
}

// idleLocked reports whether b is a relay with no viewer and no viewer joining.
// Called with b.mu held.
func (b *broadcast) idleLocked() bool {
	return b.relay != nil && len(b.viewers) == 0 && b.joining == 0
}
