package media

import (
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// packetSource is where a forwarder reads its publisher's RTP packets: a
// *webrtc.TrackRemote (tests and benchmarks may call forward directly instead).
type packetSource interface {
	Read(b []byte) (int, interceptor.Attributes, error)
}

// forwarder carries one publisher track to every viewer of it. One goroutine (run)
// reads the publisher's packets, keeps each once in the ring, and writes it to every
// started viewer with that viewer's header; viewers join by being armed, start at the
// next keyframe, and are served NACKs from the same ring.
type forwarder struct {
	// set in newForwarder
	codec  webrtc.RTPCodecParameters
	kind   codecKind
	media  webrtc.RTPCodecType
	ring   *packetRing
	kf     *keyframeRequester
	m      *metrics
	pubPT  uint8
	source packetSource

	downs atomic.Pointer[[]*downTrack] // copy on write under mu; read by run without locks

	mu     sync.Mutex // guards changes to downs
	closed bool

	// owned by the goroutine that calls forward (run)
	scratch []byte
	maxSeq  uint16 // newest sequence number seen
	lastTS  uint32 // its timestamp
	haveSeq bool
	begun   bool // lastTS's frame has had a packet a viewer cannot do without
}

func newForwarder(codec webrtc.RTPCodecParameters, media webrtc.RTPCodecType, src packetSource, cfg Config, m *metrics, requestKeyframe func()) *forwarder {
	f := &forwarder{
		codec:   codec,
		kind:    kindOf(codec.MimeType, media),
		media:   media,
		ring:    newPacketRing(cfg.BufferPackets),
		m:       m,
		pubPT:   uint8(codec.PayloadType),
		source:  src,
		scratch: make([]byte, maxPacket),
	}
	f.kf = newKeyframeRequester(cfg.KeyframeInterval, func() {
		if requestKeyframe != nil {
			requestKeyframe()
			m.plisSent.Inc()
		}
	})
	empty := []*downTrack{}
	f.downs.Store(&empty)
	return f
}

func kindOf(mime string, media webrtc.RTPCodecType) codecKind {
	switch {
	case media == webrtc.RTPCodecTypeAudio:
		return codecAudio
	case strings.EqualFold(mime, webrtc.MimeTypeH264):
		return codecH264
	case strings.EqualFold(mime, webrtc.MimeTypeVP8):
		return codecVP8
	default:
		return codecOther
	}
}

// run forwards packets until the source ends.
func (f *forwarder) run() {
	defer f.close()
	for {
		n, _, err := f.source.Read(f.scratch)
		if errors.Is(err, io.ErrShortBuffer) {
			continue // a packet larger than maxPacket: dropped
		}
		if err != nil {
			return
		}
		f.forward(f.scratch[:n])
	}
}

// forward stores one publisher packet and writes it to every viewer.
func (f *forwarder) forward(b []byte) {
	h, ok := parseRTP(b)
	if !ok || len(b) > maxPacket {
		return
	}
	if h.pt != f.pubPT {
		return // a codec switch mid-stream is not supported: viewers negotiated one codec
	}
	pkt := f.ring.put(h, b)
	payload := pkt[h.hdrLen:]
	// A viewer may start only at the first packet of a new frame, or after leading
	// packets of it that it can do without (H.264 AUD/SEI): never at a late or
	// retransmitted packet (its frame has been sent already).
	keyStart := false
	if !f.haveSeq || int16(h.seq-f.maxSeq) > 0 {
		pl := payloadOf(h, pkt)
		if !f.haveSeq || h.ts != f.lastTS {
			f.begun = false
		}
		keyStart = !f.begun && isKeyframeStart(f.kind, pl)
		f.begun = f.begun || !skippableAtFrameStart(f.kind, pl)
		f.maxSeq, f.lastTS, f.haveSeq = h.seq, h.ts, true
	}

	downs := *f.downs.Load()
	sent, waiting := 0, 0
	for _, d := range downs {
		switch d.forward(h, payload, keyStart) {
		case fwdSent:
			sent++
		case fwdWaiting:
			waiting++
		}
	}
	if sent > 0 {
		f.m.packetsOut.Add(float64(sent))
		f.m.bytesOut.Add(float64(sent * len(b)))
	}
	if waiting > 0 && f.kind != codecAudio {
		f.kf.request() // throttled: at most one per KeyframeInterval
	}
}

// readPublisherRTCP drains the publisher's RTCP for this track until it ends, and
// relays its sender reports to every started viewer.
func (f *forwarder) readPublisherRTCP(recv *webrtc.RTPReceiver, ssrc uint32) {
	drainRTCP(recv.Read, func(p rtcp.Packet) {
		if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == ssrc {
			for _, d := range *f.downs.Load() {
				d.relaySenderReport(sr)
			}
		}
	})
}

// drainRTCP reads RTCP with read (an RTPSender's or RTPReceiver's Read) until it
// fails, and passes each packet of every compound packet to handle. Packets that do
// not unmarshal are skipped.
func drainRTCP(read func([]byte) (int, interceptor.Attributes, error), handle func(rtcp.Packet)) {
	buf := make([]byte, maxPacket)
	for {
		n, _, err := read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			handle(p)
		}
	}
}

// arm starts sending to d: from the next keyframe (or the next packet, for audio).
func (f *forwarder) arm(d *downTrack) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	old := *f.downs.Load()
	for _, o := range old {
		if o == d {
			f.mu.Unlock()
			return
		}
	}
	next := make([]*downTrack, len(old), len(old)+1)
	copy(next, old)
	next = append(next, d)
	f.downs.Store(&next)
	f.mu.Unlock()
	if f.kind != codecAudio {
		f.kf.request()
	}
}

// remove stops sending to d. It is safe to call more than once.
func (f *forwarder) remove(d *downTrack) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := *f.downs.Load()
	for i, o := range old {
		if o == d {
			next := make([]*downTrack, 0, len(old)-1)
			next = append(next, old[:i]...)
			next = append(next, old[i+1:]...)
			f.downs.Store(&next)
			return
		}
	}
}

// close is called when the publisher's track ends.
func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	empty := []*downTrack{}
	f.downs.Store(&empty)
	f.mu.Unlock()
	f.kf.stop()
}
