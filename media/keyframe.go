package media

import (
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// codecKind says how the forwarder finds a place where a new viewer may start.
type codecKind uint8

const (
	codecAudio codecKind = iota // every packet is a start
	codecH264
	codecVP8
	codecOther // video we cannot parse: start anywhere, the decoder waits for a keyframe
)

// isKeyframeStart reports whether an RTP payload begins a keyframe: for H.264 a
// packet carrying an SPS or an IDR slice start (single NAL, STAP-A, or the first
// FU-A fragment), for VP8 the first partition of a frame whose P bit is 0. The
// forwarder only starts a viewer at the first packet of a frame (after its
// skippableAtFrameStart packets, if any), so SPS/PPS that precede an IDR in their own
// packets are sent too.
func isKeyframeStart(kind codecKind, p []byte) bool {
	switch kind {
	case codecH264:
		return h264Keyframe(p)
	case codecVP8:
		return vp8Keyframe(p)
	default:
		return true
	}
}

// H.264 NAL unit types (RFC 6184).
const (
	naluIDR  = 5
	naluSEI  = 6
	naluSPS  = 7
	naluAUD  = 9
	naluSTAP = 24
	naluFUA  = 28
)

// skippableAtFrameStart reports whether a packet holds only NAL units that a viewer
// may miss when it starts at a later packet of the same frame: H.264 access unit
// delimiters and SEI. x264 begins every access unit with an AUD by default, and
// GStreamer's rtph264pay sends it in a packet of its own, ahead of the SPS.
func skippableAtFrameStart(kind codecKind, p []byte) bool {
	if kind != codecH264 || len(p) < 1 {
		return false
	}
	skippable := func(t byte) bool { return t == naluAUD || t == naluSEI }
	if t := p[0] & 0x1f; t != naluSTAP {
		return skippable(t)
	}
	n := 0
	for i := 1; i+2 < len(p); n++ {
		size := int(p[i])<<8 | int(p[i+1])
		i += 2
		if size == 0 || i+size > len(p) || !skippable(p[i]&0x1f) {
			return false
		}
		i += size
	}
	return n > 0
}

func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; t {
	case naluIDR, naluSPS:
		return true
	case naluSTAP:
		// STAP-A: header, then (16-bit size, NAL unit)*.
		for i := 1; i+2 < len(p); {
			n := int(p[i])<<8 | int(p[i+1])
			i += 2
			if n == 0 || i+n > len(p) {
				return false
			}
			if nt := p[i] & 0x1f; nt == naluIDR || nt == naluSPS {
				return true
			}
			i += n
		}
		return false
	case naluFUA:
		// FU indicator, FU header: S bit, then the fragmented NAL's type.
		return len(p) >= 2 && p[1]&0x80 != 0 && p[1]&0x1f == naluIDR
	default:
		return false
	}
}

func vp8Keyframe(p []byte) bool {
	// RFC 7741 payload descriptor: X R N S R PID(3).
	if len(p) < 1 {
		return false
	}
	first := p[0]
	if first&0x10 == 0 || first&0x07 != 0 { // S=1 and partition 0
		return false
	}
	i := 1
	if first&0x80 != 0 { // X: extension byte I L T K
		if len(p) < 2 {
			return false
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/KEYIDX
			i++
		}
	}
	// VP8 payload header: P bit (bit 0 of the first byte) is 0 on keyframes.
	return len(p) > i && p[i]&0x01 == 0
}

// keyframeRequester merges and throttles keyframe requests to one publisher track:
// at most one request per interval, and a request inside the interval is sent when it
// ends. send is called without locks held, from the caller's goroutine or the timer's.
type keyframeRequester struct {
	interval time.Duration
	send     func()

	inflight sync.WaitGroup // sends running in the timer's goroutine

	mu      sync.Mutex
	last    time.Time   // when the last request went out
	timer   *time.Timer // pending merged request, nil when none
	stopped bool
}

func newKeyframeRequester(interval time.Duration, send func()) *keyframeRequester {
	return &keyframeRequester{interval: interval, send: send}
}

// request asks for a keyframe soon.
func (k *keyframeRequester) request() {
	k.mu.Lock()
	if k.stopped || k.timer != nil {
		k.mu.Unlock()
		return // one is already scheduled: merged
	}
	now := time.Now()
	if wait := k.interval - now.Sub(k.last); !k.last.IsZero() && wait > 0 {
		k.timer = time.AfterFunc(wait, k.fire)
		k.mu.Unlock()
		return
	}
	k.last = now
	k.mu.Unlock()
	k.send()
}

func (k *keyframeRequester) fire() {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	k.timer = nil
	k.last = time.Now()
	k.inflight.Add(1)
	k.mu.Unlock()
	defer k.inflight.Done()
	k.send()
}

// stop cancels a pending request, ignores later ones, and waits for a send running
// in the timer's goroutine.
func (k *keyframeRequester) stop() {
	k.mu.Lock()
	k.stopped = true
	if k.timer != nil {
		k.timer.Stop()
		k.timer = nil
	}
	k.mu.Unlock()
	k.inflight.Wait()
}

// KeyframeStart reports whether an RTP payload of a video codec (its MIME type, e.g.
// "video/H264") begins a keyframe: the rule the forwarder starts viewers by, for
// clients that check where they started (the load generator). False for codecs it
// does not parse.
func KeyframeStart(mimeType string, payload []byte) bool {
	switch k := kindOf(mimeType, webrtc.RTPCodecTypeVideo); k {
	case codecH264, codecVP8:
		return isKeyframeStart(k, payload)
	}
	return false
}
