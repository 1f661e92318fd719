package loadgen

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/media"
)

// whepViewer is one WebRTC viewer: a Pion peer connection (its own UDP socket) that
// plays the room over WHEP and reads every RTP packet of every track it gets. It
// counts packets, sequence gaps after its first packet, the time from its WHEP
// request to its first keyframe, and the drift of its video delay.
type whepViewer struct {
	run *mediaRun // set in newWHEPViewer

	// owned by play (the viewer's goroutine), then by stop
	pc       *webrtc.PeerConnection
	resource string

	sentAt    atomic.Int64 // when the WHEP request went out, ns since run.base
	answerAt  atomic.Int64 // when its answer was applied
	upAt      atomic.Int64 // when the connection came up (ICE and DTLS done)
	connected atomic.Bool
	failed    atomic.Bool
	settled   atomic.Bool // counted once in run.settle: started or failed

	readers sync.WaitGroup // one per track; Add under mu while not stopped

	mu      sync.Mutex
	stopped bool
	tracks  []*trackStats // appended by OnTrack; read after stop
}

// trackStats is one received track, owned by its reader goroutine until the
// readers are done.
type trackStats struct {
	video bool
	mime  string
	clock float64

	packets  int64
	started  bool
	lastSeq  uint16
	ext      int64 // extended sequence number of the last packet
	firstExt int64
	maxExt   int64

	// video only
	keyframe     bool          // the first keyframe start has arrived
	startedOnKey bool          // the first packet was a keyframe start
	firstKey     time.Duration // WHEP request → first keyframe start
	// Delay drift: arrival time minus RTP time, its least value in the viewer's
	// first driftWindow and in the run's last driftWindow.
	lastTS   uint32
	tsExt    int64
	firstAt  time.Time
	startMin time.Duration
	endMin   time.Duration
	haveEnd  bool
}

// driftWindow is how long the start and end of the delay comparison last.
const driftWindow = 5 * time.Second

func newWHEPViewer(m *mediaRun) *whepViewer { return &whepViewer{run: m} }

// connect makes a new peer connection with a receive-only video and audio section.
func (v *whepViewer) connect() (*webrtc.PeerConnection, error) {
	m := v.run
	pc, err := m.viewAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			_ = pc.Close()
			return nil, err
		}
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			v.upAt.Store(int64(time.Since(m.base)))
			v.connected.Store(true)
		case webrtc.PeerConnectionStateFailed:
			if !v.failed.Swap(true) {
				m.fail("connection_failed")
			}
			m.settle(v)
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		ts := &trackStats{
			video: tr.Kind() == webrtc.RTPCodecTypeVideo,
			mime:  tr.Codec().MimeType,
			clock: float64(tr.Codec().ClockRate),
		}
		v.mu.Lock()
		if v.stopped {
			v.mu.Unlock()
			return
		}
		v.readers.Add(1)
		v.tracks = append(v.tracks, ts)
		v.mu.Unlock()
		defer v.readers.Done()
		v.read(tr, ts)
	})
	return pc, nil
}

// play sends the WHEP offer, retrying with a new connection every 200 ms while the
// room is not live (404) until ctx ends. Any other refusal or error is returned.
func (v *whepViewer) play(ctx context.Context, endpoint, token string) error {
	for {
		pc, err := v.connect()
		if err != nil {
			return err
		}
		v.pc = pc
		v.resource, err = exchange(ctx, v.run.client, pc, endpoint, token, func() { v.sentAt.Store(int64(time.Since(v.run.base))) })
		if !errors.Is(err, errNotLive) {
			if err == nil {
				v.answerAt.Store(int64(time.Since(v.run.base)))
			}
			return err
		}
		v.run.notLive.Add(1)
		_ = pc.Close()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// read counts one track's packets until the connection closes.
func (v *whepViewer) read(tr *webrtc.TrackRemote, ts *trackStats) {
	buf := make([]byte, 1500)
	var h rtp.Header
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		hl, err := h.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		now := time.Now()
		v.run.packets.Add(1)
		ts.add(&h, buf[hl:n], now, v)
	}
}

func (ts *trackStats) add(h *rtp.Header, payload []byte, now time.Time, v *whepViewer) {
	ts.packets++
	if !ts.started {
		ts.started = true
		ts.ext = 1 << 32
		ts.firstExt, ts.maxExt = ts.ext, ts.ext
		ts.lastSeq = h.SequenceNumber
		if ts.video {
			ts.startedOnKey = media.KeyframeStart(ts.mime, payload)
			ts.firstAt, ts.lastTS = now, h.Timestamp
		}
	} else {
		ts.ext += int64(int16(h.SequenceNumber - ts.lastSeq))
		ts.lastSeq = h.SequenceNumber
		ts.maxExt = max(ts.maxExt, ts.ext)
	}
	if !ts.video {
		return
	}
	if !ts.keyframe && media.KeyframeStart(ts.mime, payload) {
		ts.keyframe = true
		ts.firstKey = now.Sub(v.run.base) - time.Duration(v.sentAt.Load())
		v.run.settle(v)
	}
	if ts.clock <= 0 {
		return
	}
	ts.tsExt += int64(int32(h.Timestamp - ts.lastTS))
	ts.lastTS = h.Timestamp
	delay := now.Sub(ts.firstAt) - time.Duration(float64(ts.tsExt)/ts.clock*float64(time.Second))
	if now.Sub(ts.firstAt) < driftWindow && (ts.packets == 1 || delay < ts.startMin) {
		ts.startMin = delay
	}
	if !now.Before(v.run.endWindow) && (!ts.haveEnd || delay < ts.endMin) {
		ts.endMin, ts.haveEnd = delay, true
	}
}

// lost is how many packets in the track's span never came (no NACKs are sent).
func (ts *trackStats) lost() int64 {
	if !ts.started {
		return 0
	}
	return max(0, ts.maxExt-ts.firstExt+1-ts.packets)
}

// stop deletes the WHEP session, closes the connection and waits for its readers;
// the stats are the caller's after it returns.
func (v *whepViewer) stop(client *http.Client) {
	deleteSession(client, v.resource)
	if v.pc != nil {
		_ = v.pc.Close()
	}
	v.mu.Lock()
	v.stopped = true
	v.mu.Unlock()
	v.readers.Wait()
}
