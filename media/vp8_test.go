package media

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/auth"
)

// TestVP8 publishes a VP8-only clip to an anonymous-viewer room; a viewer joining
// mid-stream starts on a VP8 keyframe and misses nothing after it.
func TestVP8(t *testing.T) {
	env := newTestEnv(t, Config{AllowAnonymous: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	api := clientAPI(t)

	pub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.GracefulClose()
	track, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "pub")
	var rtcpDone sync.WaitGroup
	addTrack(t, pub, track, &rtcpDone)
	connected := onConnected(pub)
	if code, _, body := signal(t, pub, env.web.URL+"/whip/vp8room", mint(t, auth.RoleHost, "vp8room")); code != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", code, body)
	}
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("publisher never connected")
	}

	video := vp8Clip(t, 0)
	midway := make(chan struct{})
	playErr := make(chan error, 1)
	go func() { playErr <- play(ctx, track, video, 45, midway) }()
	select {
	case <-midway:
	case <-ctx.Done():
		t.Fatal("clip did not reach its middle")
	}
	// A viewer that cannot decode VP8 is refused.
	{
		m := &webrtc.MediaEngine{}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
		h264only := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(clientSettings()))
		pc, err := h264only.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
		code, _, body := signal(t, pc, env.web.URL+"/whep/vp8room", "")
		t.Logf("H.264-only viewer of a VP8 room: %d %q", code, body)
		if code == http.StatusCreated {
			t.Errorf("H.264-only viewer of a VP8 room was accepted")
		}
		_ = pc.GracefulClose()
	}
	// Anonymous viewer: no token.
	v := watch(t, api, env.web.URL+"/whep/vp8room", "", video, newClip(time.Second))
	if err := <-playErr; err != nil {
		t.Fatal(err)
	}
	select {
	case <-v.video.lastSeen:
	case <-ctx.Done():
		t.Fatal("viewer did not get the clip's last packet")
	}
	start, key, expected, got, missing := v.video.check()
	t.Logf("VP8 viewer: started at packet %d of %d, got %d of %d expected, %d missing", start, video.total, got, expected, missing)
	if start < 0 || !key {
		t.Errorf("first packet (clip index %d) is not a keyframe start", start)
	}
	if got != expected || missing != 0 {
		t.Errorf("got %d packets, want %d; %d missing", got, expected, missing)
	}
	_ = pub.GracefulClose()
	rtcpDone.Wait()
}
