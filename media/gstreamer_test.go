package media

// The GStreamer interop test: a WHIP publisher built on GStreamer's webrtcbin (libnice
// ICE, its DTLS/SRTP, x264enc and opusenc behind GStreamer's RTP payloaders) publishes
// to the real media server, and a Pion WHEP viewer must receive its video from a
// keyframe on.
//
// The publisher is testdata/gst-whip-client.py, which follows Meetecho's
// simple-whip-client in its non-trickle mode (-n): the same webrtcbin pipeline, the
// same offer with its candidates, the same DELETE on SIGTERM. simple-whip-client itself
// cannot run on Debian bookworm (docs/media.md, "Tested clients").
//
// libnice, like Chromium, leaves loopback out of its candidates, so the test runs
// itself again inside a network namespace (internal/netnstest); the server offers
// 127.0.0.1 (for the Pion viewer) and the namespace's veth address (for webrtcbin).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/internal/netnstest"
)

const (
	requireGStreamerEnv = "LIVEROOM_REQUIRE_GSTREAMER"
	gstPythonEnv        = "LIVEROOM_GST_PYTHON" // the Python with GStreamer's bindings, found by the parent
	gstClient           = "testdata/gst-whip-client.py"
)

// The publisher's pipelines, as a user would give them to simple-whip-client (-V, -A).
// x264enc makes an IDR only at the start (key-int-max is 100 s): the keyframe a viewer
// starts on has to come from the server's PLI, which webrtcbin turns into a
// force-key-unit request to the encoder.
const (
	gstVideo = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! videoconvert ! queue ! " +
		"x264enc tune=zerolatency speed-preset=ultrafast bitrate=600 key-int-max=3000 ! video/x-h264,profile=constrained-baseline ! " +
		"rtph264pay pt=96 config-interval=-1 ! queue ! application/x-rtp,media=video,encoding-name=H264,payload=96"
	gstAudio = "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! queue ! opusenc ! " +
		"rtpopuspay pt=111 ! queue ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111"
)

func TestGStreamerWHIP(t *testing.T) {
	if netnstest.InChild(t) {
		runGStreamerWHIP(t)
		return
	}
	required := os.Getenv(requireGStreamerEnv) != ""
	skip := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if required {
			t.Fatalf("%s (%s is set, so this is a failure)", msg, requireGStreamerEnv)
		}
		t.Skipf("%s; set %s=1 to make this a failure", msg, requireGStreamerEnv)
	}
	python := findGstPython()
	if python == "" {
		skip("GStreamer WHIP test skipped: no python3")
	}
	// Builds the pipeline without playing it: are the bindings and every plugin there?
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, python, gstClient, "--check", "-V", gstVideo, "-A", gstAudio).CombinedOutput(); err != nil {
		skip("GStreamer WHIP test skipped: %v %s (apt-get install python3-gi gir1.2-gst-plugins-bad-1.0 "+
			"gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-nice iproute2)",
			err, bytes.TrimSpace(out))
	}
	if why := netnstest.Unavailable(); why != "" {
		skip("GStreamer WHIP test skipped: %s", why)
	}
	netnstest.Run(t, 2*time.Minute, gstPythonEnv+"="+python)
}

// findGstPython returns the Python to run the client with: LIVEROOM_GST_PYTHON, else
// the system's (where Debian's python3-gi lives, whatever python3 comes first in
// PATH), else python3 from PATH; "" if none.
func findGstPython() string {
	if p := os.Getenv(gstPythonEnv); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	p, _ := exec.LookPath("python3")
	return p
}

// runGStreamerWHIP is the test proper, inside the namespace.
func runGStreamerWHIP(t *testing.T) {
	env := newTestEnv(t, Config{ICEAddresses: []string{"127.0.0.1", netnstest.ServerAddr}})
	const room = "gst"
	statuses := make(chan *nats.Msg, 16)
	sub, err := env.nc.ChanSubscribe(LiveSubject(room), statuses)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := env.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// Every wait below is on an event (a line of the client, a NATS message, a
	// packet) and bounded by this deadline; none is a sleep.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pub := startGstClient(ctx, t, os.Getenv(gstPythonEnv),
		"-u", env.web.URL+"/whip/"+room, "-t", mint(t, auth.RoleHost, room), "-V", gstVideo, "-A", gstAudio)
	start := time.Now()
	step := func(name string) { t.Logf("%-40s ok at %v", name, time.Since(start).Round(time.Millisecond)) }

	if line := pub.await(ctx, t, "POST "); !strings.HasPrefix(line, "POST 201 ") {
		t.Fatalf("WHIP POST: %s", line)
	}
	step("WHIP POST answered 201")
	pub.await(ctx, t, "connection-state connected")
	step("webrtcbin connected")
	st := awaitStatus(ctx, t, statuses)
	if !st.Live || len(st.Tracks) != 2 || !slices.Contains(st.Tracks, TrackInfo{Kind: "video", Codec: "H264"}) || !slices.Contains(st.Tracks, TrackInfo{Kind: "audio", Codec: "opus"}) {
		t.Fatalf("live status: %+v, want live with H264 video and opus audio", st)
	}
	step("room live (H264 + opus)")

	// A Pion viewer joins over WHEP as soon as the room is live, a second one once the
	// first has had 60 frames (2 s): the encoder's only periodic keyframe was its
	// first, so the second viewer's keyframe can only come from a PLI.
	watchAndCheck := func(name string) {
		t.Helper()
		joined := time.Now()
		v := watchGst(t, env.web.URL+"/whep/"+room, mint(t, auth.RoleViewer, room))
		step(name + ": WHEP POST answered 201")
		for _, w := range []struct {
			name string
			ch   <-chan struct{}
		}{{"first audio packet", v.audio}, {"first video frame", v.firstFrame}, {"60 video frames", v.frames60}} {
			select {
			case <-w.ch:
				step(name + ": " + w.name)
			case <-ctx.Done():
				v.mu.Lock()
				t.Errorf("%s: %d video packets, %d frames; PLIs sent to the publisher: %v",
					name, v.packets, v.frames, metricValue(t, env.srv.m.plisSent))
				v.mu.Unlock()
				t.Fatalf("%s: waiting for the %s: %v", name, w.name, ctx.Err())
			}
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		t.Logf("%s: first frame %v after the WHEP request, its NAL unit types %v; %d video packets in 60 frames; PLIs sent so far: %v",
			name, v.firstAt.Sub(joined).Round(time.Millisecond), v.firstNALs, v.packets, metricValue(t, env.srv.m.plisSent))
		for _, want := range []byte{7, 8, 5} { // SPS, PPS, IDR slice
			if bytes.IndexByte(v.firstNALs, want) < 0 {
				t.Fatalf("%s: the first frame (NAL unit types %v) is not a keyframe: no NAL unit of type %d", name, v.firstNALs, want)
			}
		}
	}
	watchAndCheck("viewer 1")
	watchAndCheck("viewer 2")

	// The publisher stops (SIGTERM, as a service manager would): it DELETEs its
	// resource and the room goes offline.
	if err := pub.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if line := pub.await(ctx, t, "deleted "); line != "deleted 200" {
		t.Fatalf("WHIP DELETE: %s", line)
	}
	if st := awaitStatus(ctx, t, statuses); st.Live {
		t.Fatalf("after the DELETE: %+v, want offline", st)
	}
	step("DELETE: room offline")
	if err := pub.wait(); err != nil {
		t.Fatalf("client: %v", err)
	}
}

// gstProc is the running publisher; its "whip: …" lines are events.
type gstProc struct {
	cmd    *exec.Cmd
	events chan string   // the client's "whip: " lines, without the prefix
	done   chan struct{} // closed when its output ends
}

func startGstClient(ctx context.Context, t *testing.T, python string, args ...string) *gstProc {
	t.Helper()
	cmd := exec.CommandContext(ctx, python, append([]string{gstClient}, args...)...)
	cmd.Env = append(os.Environ(), "GST_DEBUG=1") // GStreamer's own errors and nothing more
	// Its own process group, killed at the end whatever happened.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &gstProc{cmd: cmd, events: make(chan string, 256), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			t.Log("client: " + line)
			if ev, ok := strings.CutPrefix(line, "whip: "); ok {
				select {
				case p.events <- ev:
				default: // nobody waits for so many
				}
			}
		}
	})
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		wg.Wait()
	})
	return p
}

// await returns the client's next event that starts with prefix, skipping others. It
// fails the test if the client ends or ctx expires first.
func (p *gstProc) await(ctx context.Context, t *testing.T, prefix string) string {
	t.Helper()
	for {
		select {
		case ev := <-p.events:
			if strings.HasPrefix(ev, prefix) {
				return ev
			}
		case <-p.done:
			t.Fatalf("client ended before %q", prefix)
		case <-ctx.Done():
			t.Fatalf("waiting for the client's %q: %v", prefix, ctx.Err())
		}
	}
}

// wait waits for the client to exit after it was asked to stop.
func (p *gstProc) wait() error {
	<-p.done
	return p.cmd.Wait()
}

func awaitStatus(ctx context.Context, t *testing.T, ch <-chan *nats.Msg) LiveStatus {
	t.Helper()
	select {
	case m := <-ch:
		var st LiveStatus
		if err := json.Unmarshal(m.Data, &st); err != nil {
			t.Fatal(err)
		}
		return st
	case <-ctx.Done():
		t.Fatalf("waiting for a live status: %v", ctx.Err())
		return LiveStatus{}
	}
}

// gstViewer is a Pion WHEP viewer that checks the video's first frame and counts frames.
type gstViewer struct {
	firstFrame chan struct{} // closed when the first whole frame (up to its marker) came
	frames60   chan struct{} // closed at the 60th frame
	audio      chan struct{} // closed on the first audio packet

	mu        sync.Mutex
	depack    codecs.H264Packet
	firstNALs []byte    // NAL unit types of the first frame, in order
	firstAt   time.Time // when the first frame was complete
	frames    int
	packets   int
}

func watchGst(t *testing.T, url, token string) *gstViewer {
	t.Helper()
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &gstViewer{firstFrame: make(chan struct{}), frames60: make(chan struct{}), audio: make(chan struct{})}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	var readers sync.WaitGroup
	pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		readers.Add(1)
		defer readers.Done()
		readers.Go(func() { // drain RTCP
			for {
				if _, _, err := recv.ReadRTCP(); err != nil {
					return
				}
			}
		})
		var audioOnce sync.Once
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if tr.Kind() == webrtc.RTPCodecTypeAudio {
				audioOnce.Do(func() { close(v.audio) })
				continue
			}
			v.video(p)
		}
	})
	code, _, body := signal(t, pc, url, token)
	if code != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", code, body)
	}
	t.Cleanup(func() {
		_ = pc.GracefulClose()
		readers.Wait()
	})
	return v
}

// video records one video packet: the first frame's NAL unit types (depacketized by
// Pion's H.264 depacketizer, not by the server's keyframe code), and frame ends.
func (v *gstViewer) video(p *rtp.Packet) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.packets++
	if v.frames == 0 {
		if annexB, err := v.depack.Unmarshal(p.Payload); err == nil {
			v.firstNALs = append(v.firstNALs, nalTypes(annexB)...)
		}
	}
	if !p.Marker {
		return
	}
	v.frames++
	switch v.frames {
	case 1:
		v.firstAt = time.Now()
		close(v.firstFrame)
	case 60:
		close(v.frames60)
	}
}

// nalTypes lists the NAL unit types in an Annex B byte stream.
func nalTypes(b []byte) []byte {
	var types []byte
	for {
		i := bytes.Index(b, []byte{0, 0, 1})
		if i < 0 || i+3 >= len(b) {
			return types
		}
		b = b[i+3:]
		types = append(types, b[0]&0x1f)
	}
}
