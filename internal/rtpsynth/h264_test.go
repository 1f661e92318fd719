package rtpsynth_test

import (
	"bytes"
	"testing"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/internal/rtpsynth"
	"github.com/liveroom/liveroom/media"
)

// TestH264 checks that the stream is valid RFC 6184 packetisation (Pion's depacketiser
// rebuilds SPS, PPS and one slice per frame), that keyframes start where the media
// forwarder sees them, and the default rate: 1.8 Mbit/s of slices in ~220 packets/s.
func TestH264(t *testing.T) {
	s := rtpsynth.NewH264(rtpsynth.H264Config{})
	const frames = 300 // 10 s
	var packets, sliceBytes int
	for f := range frames {
		key := f%60 == 0
		payloads := s.Frame(key)
		if got := media.KeyframeStart(webrtc.MimeTypeH264, payloads[0]); got != key {
			t.Fatalf("frame %d: keyframe start %v, want %v", f, got, key)
		}
		for _, p := range payloads {
			if !key && media.KeyframeStart(webrtc.MimeTypeH264, p) {
				t.Fatalf("frame %d: a delta frame's packet looks like a keyframe start", f)
			}
		}
		var d codecs.H264Packet
		var nals [][]byte
		for i, p := range payloads {
			out, err := d.Unmarshal(p)
			if err != nil {
				t.Fatalf("frame %d packet %d: %v", f, i, err)
			}
			for nal := range bytes.SplitSeq(out, []byte{0, 0, 0, 1}) {
				if len(nal) > 0 {
					nals = append(nals, nal)
				}
			}
		}
		want := []byte{1}
		if key {
			want = []byte{7, 8, 5}
		}
		if len(nals) != len(want) {
			t.Fatalf("frame %d: %d NAL units, want %d", f, len(nals), len(want))
		}
		for i, nal := range nals {
			if nal[0]&0x1f != want[i] {
				t.Fatalf("frame %d: NAL %d has type %d, want %d", f, i, nal[0]&0x1f, want[i])
			}
		}
		sliceBytes += len(nals[len(nals)-1])
		packets += len(payloads)
	}
	if bits := sliceBytes * 8 / 10; bits < 1_750_000 || bits > 1_850_000 {
		t.Errorf("slice bitrate %d bit/s, want ~1.8 Mbit/s", bits)
	}
	if pps := packets / 10; pps < 215 || pps > 226 {
		t.Errorf("%d packets/s, want ~220", pps)
	}
}
