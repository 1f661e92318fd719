package media

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/auth"
)

// testViewer is a Pion WHEP client that records what it receives.
type testViewer struct {
	pc       *webrtc.PeerConnection
	video    *received
	audio    *received
	readers  sync.WaitGroup
	resource string
	srOK     chan struct{} // closed on the first sender report for the video SSRC
	srOnce   sync.Once
}

func watch(t *testing.T, api *webrtc.API, url, token string, video, audio *clip) *testViewer {
	t.Helper()
	v := newTestViewer(t, api, video, audio)
	code, loc, body := signal(t, v.pc, url, token)
	if code != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", code, body)
	}
	v.resource = loc
	return v
}

// newTestViewer is a testViewer that has not signalled yet.
func newTestViewer(t *testing.T, api *webrtc.API, video, audio *clip) *testViewer {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &testViewer{pc: pc, video: newReceived(video), audio: newReceived(audio), srOK: make(chan struct{})}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		v.readers.Add(1)
		defer v.readers.Done()
		rec := v.audio
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			rec = v.video
			v.readers.Add(1)
			go func() {
				defer v.readers.Done()
				for {
					pkts, _, err := recv.ReadRTCP()
					if err != nil {
						return
					}
					for _, p := range pkts {
						if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == uint32(tr.SSRC()) {
							v.srOnce.Do(func() { close(v.srOK) })
						}
					}
				}
			}()
		}
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			rec.add(p)
		}
	})
	t.Cleanup(func() {
		_ = pc.GracefulClose()
		v.readers.Wait()
	})
	return v
}

// TestPublishAndWatch publishes the H.264+Opus clip over WHIP and has three viewers
// join as soon as the room is live and one more mid-stream; every viewer must start
// on a keyframe and receive every packet from there to the clip's end.
func TestPublishAndWatch(t *testing.T) {
	env := newTestEnv(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	api := clientAPI(t)

	// Listen where gateways do: the stream re-publishes each status to the room's
	// event subject.
	statuses := make(chan LiveStatus, 16)
	sub, err := env.nc.Subscribe("lr.ev.r1.live", func(m *nats.Msg) {
		var st LiveStatus
		if json.Unmarshal(m.Data, &st) == nil {
			statuses <- st
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	// Publisher: H.264 + Opus from testdata, paced in real time.
	pub, vtrack, atrack, pubRTCP := newClipPublisher(t, api)
	defer pub.GracefulClose()
	connected := onConnected(pub)
	code, whipResource, body := signal(t, pub, env.web.URL+"/whip/r1", mint(t, auth.RoleHost, "r1"))
	if code != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", code, body)
	}
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("publisher never connected")
	}

	video, audio := h264Clip(t, 0), opusClip(t, 0)
	midway := make(chan struct{})
	var playing sync.WaitGroup
	playErr := make(chan error, 2)
	playing.Add(2)
	go func() { defer playing.Done(); playErr <- play(ctx, vtrack, video, 75, midway) }()
	go func() { defer playing.Done(); playErr <- play(ctx, atrack, audio, 0, nil) }()

	// Live status: wait for both tracks.
	for live := false; !live; {
		select {
		case st := <-statuses:
			live = st.Live && len(st.Tracks) == 2
		case <-ctx.Done():
			t.Fatal("no live status with two tracks")
		}
	}
	js, _ := jetstream.New(env.nc)
	stream, err := js.Stream(ctx, "LR_LIVE")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, LiveSubject("r1"))
	if err != nil {
		t.Fatal(err)
	}
	var stored LiveStatus
	if err := json.Unmarshal(msg.Data, &stored); err != nil || !stored.Live || len(stored.Tracks) != 2 {
		t.Fatalf("stored status %s (%v)", msg.Data, err)
	}
	kinds := map[string]string{}
	for _, tr := range stored.Tracks {
		kinds[tr.Kind] = tr.Codec
	}
	if kinds["video"] != "H264" || kinds["audio"] != "opus" {
		t.Errorf("tracks = %v, want video H264 and audio opus", stored.Tracks)
	}

	viewerTok := mint(t, auth.RoleViewer, "r1")
	var viewers []*testViewer
	for range 3 {
		viewers = append(viewers, watch(t, api, env.web.URL+"/whep/r1", viewerTok, video, audio))
	}
	select {
	case <-midway:
	case <-ctx.Done():
		t.Fatal("clip did not reach its middle")
	}
	viewers = append(viewers, watch(t, api, env.web.URL+"/whep/r1", viewerTok, video, audio))

	checkGotClip(ctx, t, "viewer", &playing, playErr, viewers, video)
	sentBeforeJoin := 0
	for _, tick := range video.ticks[:76] {
		sentBeforeJoin += len(tick)
	}
	if late, _, _, _, _ := viewers[3].video.check(); late < sentBeforeJoin {
		t.Errorf("mid-stream viewer started at packet %d, before it joined (%d sent)", late, sentBeforeJoin)
	}

	for i, v := range viewers[:3] {
		select {
		case <-v.srOK:
		case <-ctx.Done():
			t.Fatalf("viewer %d got no sender report for its video", i)
		}
	}

	if got := metricValue(t, env.srv.m.viewers); got != 4 {
		t.Errorf("viewers gauge = %v, want 4", got)
	}
	if got := metricValue(t, env.srv.m.plisSent); got < 1 {
		t.Errorf("PLIs sent = %v, want at least one", got)
	}
	if got := metricValue(t, env.srv.m.packetsOut); got == 0 {
		t.Error("no packets counted as forwarded")
	}

	// A viewer leaves with DELETE.
	req, _ := http.NewRequest(http.MethodDelete, env.web.URL+viewers[0].resource, nil)
	if code, _, body := do(t, req); code != http.StatusOK {
		t.Errorf("WHEP DELETE: %d %s", code, body)
	}
	if got := metricValue(t, env.srv.m.viewers); got != 3 {
		t.Errorf("viewers gauge after a DELETE = %v, want 3", got)
	}

	// The host ends the broadcast: the room goes offline.
	req, _ = http.NewRequest(http.MethodDelete, env.web.URL+whipResource, nil)
	if code, _, body := do(t, req); code != http.StatusOK {
		t.Fatalf("WHIP DELETE: %d %s", code, body)
	}
	for offline := false; !offline; {
		select {
		case st := <-statuses:
			offline = !st.Live
		case <-ctx.Done():
			t.Fatal("no offline status")
		}
	}
	if got := metricValue(t, env.srv.m.publishers); got != 0 {
		t.Errorf("publishers gauge = %v after the end", got)
	}
	_ = pub.GracefulClose()
	pubRTCP.Wait()
}
