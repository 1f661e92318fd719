package media

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/internal/embednats"
)

// relayOf returns the edge's broadcast of room, which must be a relay.
func relayOf(t *testing.T, s *Server, room string) *broadcast {
	t.Helper()
	s.mu.Lock()
	b := s.rooms[room]
	s.mu.Unlock()
	if b == nil || b.relay == nil {
		t.Fatalf("no relay for room %s", room)
	}
	return b
}

// postAll sends each viewer's complete offer to url at once and applies the answers.
func postAll(t *testing.T, url, token string, vs []*testViewer) {
	t.Helper()
	offers := make([]string, len(vs))
	pcs := make([]*webrtc.PeerConnection, len(vs))
	for i, v := range vs {
		offers[i], pcs[i] = completeOffer(t, v.pc), v.pc
	}
	answers := postOffers(url, token, offers)()
	applyAnswers(t, pcs, answers)
	for i, a := range answers {
		vs[i].resource = a.location
	}
}

// TestEdgeRelay runs an origin and an edge against one NATS. A WHEP request on the
// edge for a room live nowhere gets the usual 404; once the H.264+Opus clip is
// published to the origin, two viewers asking the edge at once share one upstream
// (the origin sees one viewer), start on a keyframe and lose nothing; when they
// leave, the edge ends its upstream after RelayIdle.
func TestEdgeRelay(t *testing.T) {
	ns := embednats.Test(t)
	origin := newTestEnvOn(t, ns.ClientURL(), Config{})
	edge := newTestEnvOn(t, ns.ClientURL(), Config{RelayIdle: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	api := clientAPI(t)
	viewerTok := mint(t, auth.RoleViewer, "r1")

	// Live nowhere: the edge answers as the origin does.
	for _, env := range []*testEnv{edge, origin} {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
		code, _, body := post(t, env.web.URL+"/whep/r1", viewerTok, completeOffer(t, pc))
		_ = pc.Close()
		if code != http.StatusNotFound || !strings.Contains(body, `room "r1" is not live`) {
			t.Errorf("WHEP for a room live nowhere: %d %q, want 404 not live", code, body)
		}
	}
	if n := metricValue(t, edge.srv.m.relayStarts); n != 0 {
		t.Errorf("relay starts = %v for a room live nowhere", n)
	}

	// What gateways get: the live status, without the origin's URL.
	events := make(chan []byte, 16)
	sub, err := edge.nc.Subscribe("lr.ev.r1.live", func(m *nats.Msg) { events <- m.Data })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	pub, vtrack, atrack, pubRTCP := newClipPublisher(t, api)
	defer pub.GracefulClose()
	connected := onConnected(pub)
	if code, _, body := signal(t, pub, origin.web.URL+"/whip/r1", mint(t, auth.RoleHost, "r1")); code != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", code, body)
	}
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("publisher never connected")
	}
	video, audio := h264Clip(t, 0), opusClip(t, 0)
	var playing sync.WaitGroup
	playErr := make(chan error, 2)
	playing.Go(func() { playErr <- play(ctx, vtrack, video, 0, nil) })
	playing.Go(func() { playErr <- play(ctx, atrack, audio, 0, nil) })

	for live := false; !live; {
		select {
		case data := <-events:
			var st LiveStatus
			if err := json.Unmarshal(data, &st); err != nil {
				t.Fatal(err)
			}
			live = st.Live && len(st.Tracks) == 2
			if strings.Contains(string(data), origin.srv.PublicURL()) {
				t.Errorf("the live event carries the origin's URL: %s", data)
			}
		case <-ctx.Done():
			t.Fatal("no live status with two tracks")
		}
	}
	js, _ := jetstream.New(edge.nc)
	stream, err := js.Stream(ctx, "LR_LIVE")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, OriginSubject("r1"))
	if err != nil {
		t.Fatal(err)
	}
	var ost OriginStatus
	if err := json.Unmarshal(msg.Data, &ost); err != nil || !ost.Live || ost.Origin != origin.srv.PublicURL() {
		t.Fatalf("origin status %s (%v), want live on %s", msg.Data, err, origin.srv.PublicURL())
	}
	// Every origin status from now on must name the origin, never the edge.
	originSub, err := edge.nc.Subscribe(OriginSubject("r1"), func(m *nats.Msg) {
		var st OriginStatus
		if json.Unmarshal(m.Data, &st) == nil && st.Origin != origin.srv.PublicURL() {
			t.Errorf("origin status from another node: %s", m.Data)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer originSub.Unsubscribe()

	// Two viewers ask the edge at once.
	viewers := []*testViewer{newTestViewer(t, api, video, audio), newTestViewer(t, api, video, audio)}
	postAll(t, edge.web.URL+"/whep/r1", viewerTok, viewers)
	relay := relayOf(t, edge.srv, "r1")

	checkGotClip(ctx, t, "edge viewer", &playing, playErr, viewers, video)
	for _, c := range []struct {
		name string
		m    float64
		want float64
	}{
		{"origin viewers (the edge's upstream)", metricValue(t, origin.srv.m.viewers), 1},
		{"edge viewers", metricValue(t, edge.srv.m.viewers), 2},
		{"edge relays", metricValue(t, edge.srv.m.relays), 1},
		{"edge relay starts", metricValue(t, edge.srv.m.relayStarts), 1},
		{"edge publishers", metricValue(t, edge.srv.m.publishers), 0},
	} {
		if c.m != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.m, c.want)
		}
	}

	// Both viewers leave: the upstream ends RelayIdle later.
	for _, v := range viewers {
		req, _ := http.NewRequest(http.MethodDelete, edge.web.URL+v.resource, nil)
		if code, _, body := do(t, req); code != http.StatusOK {
			t.Errorf("WHEP DELETE on the edge: %d %s", code, body)
		}
	}
	select {
	case <-relay.finished:
	case <-ctx.Done():
		t.Fatal("the edge kept its upstream after its last viewer left")
	}
	if n := metricValue(t, origin.srv.m.viewers); n != 0 {
		t.Errorf("origin viewers = %v after the edge's upstream ended, want 0", n)
	}
	if n := metricValue(t, edge.srv.m.relays); n != 0 {
		t.Errorf("edge relays = %v after the upstream ended, want 0", n)
	}
	if n := metricValue(t, edge.srv.m.relayFailures.WithLabelValues("signal")) + metricValue(t, edge.srv.m.relayFailures.WithLabelValues("start")); n != 0 {
		t.Errorf("relay failures = %v", n)
	}
	_ = pub.GracefulClose()
	pubRTCP.Wait()
}

// TestEdgeOriginEnds: when the host stops on the origin, the edge's viewers are
// ended and its upstream closed, as when a local publisher leaves.
func TestEdgeOriginEnds(t *testing.T) {
	ns := embednats.Test(t)
	origin := newTestEnvOn(t, ns.ClientURL(), Config{})
	edge := newTestEnvOn(t, ns.ClientURL(), Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	api := clientAPI(t)

	pub := newLivePublisher(t, api)
	code, hdr, body := post(t, origin.web.URL+"/whip/r1", mint(t, auth.RoleHost, "r1"), completeOffer(t, pub.pc))
	if code != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", code, body)
	}
	if err := pub.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	close(pub.startVideo)
	pub.run(true)
	b := waitFirstTrack(t, origin.srv, "r1")
	select {
	case <-b.liveCh:
	case <-ctx.Done():
		t.Fatal("the origin never went live")
	}

	v := newJoinViewer(t, api)
	code, _, body = post(t, edge.web.URL+"/whep/r1", mint(t, auth.RoleViewer, "r1"), completeOffer(t, v.pc))
	if code != http.StatusCreated {
		t.Fatalf("WHEP POST on the edge: %d %s", code, body)
	}
	if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	relay := relayOf(t, edge.srv, "r1")
	select {
	case p := <-v.firstVideo:
		if !vp8Keyframe(p) {
			t.Errorf("first video packet on the edge is not a keyframe: %x", p)
		}
	case <-ctx.Done():
		t.Fatal("no video on the edge")
	}

	req, _ := http.NewRequest(http.MethodDelete, origin.web.URL+hdr.Get("Location"), nil)
	if code, _, body := do(t, req); code != http.StatusOK {
		t.Fatalf("WHIP DELETE: %d %s", code, body)
	}
	select {
	case <-relay.finished:
	case <-ctx.Done():
		t.Fatal("the edge kept relaying after the origin's host stopped")
	}
	if n := metricValue(t, edge.srv.m.viewers); n != 0 {
		t.Errorf("edge viewers = %v after the origin stopped", n)
	}
	// The room is live nowhere now: the edge answers 404 and starts no relay.
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	if code, _, body := post(t, edge.web.URL+"/whep/r1", mint(t, auth.RoleViewer, "r1"), completeOffer(t, pc)); code != http.StatusNotFound {
		t.Errorf("WHEP on the edge after the end: %d %s, want 404", code, body)
	}
	if n := metricValue(t, edge.srv.m.relayStarts); n != 1 {
		t.Errorf("relay starts = %v, want 1", n)
	}
}
