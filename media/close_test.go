package media

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/auth"
)

// TestCloseWaits: Close with a live publisher and a watching viewer ends them and
// returns only when no goroutine of the package is left.
func TestCloseWaits(t *testing.T) {
	env := newTestEnv(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	api := clientAPI(t)

	live := make(chan struct{})
	var liveOnce sync.Once
	sub, err := env.nc.Subscribe(LiveSubject("r1"), func(*nats.Msg) { liveOnce.Do(func() { close(live) }) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	pub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.GracefulClose()
	track, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "pub")
	if _, err := pub.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	if code, _, body := signal(t, pub, env.web.URL+"/whip/r1", mint(t, auth.RoleHost, "r1")); code != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", code, body)
	}
	video := vp8Clip(t, 0)
	playCtx, stopPlay := context.WithCancel(ctx)
	var playing sync.WaitGroup
	playing.Add(1)
	go func() { defer playing.Done(); _ = play(playCtx, track, video, -1, nil) }()
	defer func() { stopPlay(); playing.Wait() }()

	select {
	case <-live:
	case <-ctx.Done():
		t.Fatal("room never went live")
	}
	v := watch(t, api, env.web.URL+"/whep/r1", mint(t, auth.RoleViewer, "r1"), video, newClip(time.Second))
	select {
	case <-v.video.firstSeen:
	case <-ctx.Done():
		t.Fatal("viewer got nothing")
	}

	if err := env.srv.Close(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "liveroom/media.") && !strings.Contains(g, "_test.go") {
			t.Errorf("goroutine left after Close:\n%s", g)
		}
	}
	if got := metricValue(t, env.srv.m.publishers); got != 0 {
		t.Errorf("publishers = %v after Close", got)
	}
	if got := metricValue(t, env.srv.m.viewers); got != 0 {
		t.Errorf("viewers = %v after Close", got)
	}
}
