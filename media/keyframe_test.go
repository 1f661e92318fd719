package media

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestKeyframeStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind codecKind
		p    []byte
		want bool
	}{
		{"h264 SPS", codecH264, []byte{0x67, 0x42}, true},
		{"h264 IDR", codecH264, []byte{0x65, 0x88}, true},
		{"h264 non-IDR", codecH264, []byte{0x41, 0x9a}, false},
		{"h264 STAP-A SPS+PPS", codecH264, []byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce}, true},
		{"h264 STAP-A SEI only", codecH264, []byte{0x78, 0, 2, 0x06, 0x05}, false},
		{"h264 STAP-A truncated", codecH264, []byte{0x78, 0, 9, 0x67}, false},
		{"h264 FU-A IDR start", codecH264, []byte{0x7c, 0x85, 0x88}, true},
		{"h264 FU-A IDR middle", codecH264, []byte{0x7c, 0x05, 0x88}, false},
		{"h264 FU-A non-IDR start", codecH264, []byte{0x7c, 0x81, 0x9a}, false},
		{"h264 empty", codecH264, nil, false},
		{"vp8 key, no ext", codecVP8, []byte{0x10, 0x50}, true},
		{"vp8 inter, no ext", codecVP8, []byte{0x10, 0x51}, false},
		{"vp8 key, 15-bit picture id", codecVP8, []byte{0x90, 0x80, 0x81, 0x23, 0x50}, true},
		{"vp8 inter, 7-bit picture id", codecVP8, []byte{0x90, 0x80, 0x12, 0x51}, false},
		{"vp8 continuation", codecVP8, []byte{0x00, 0x50}, false},
		{"vp8 second partition", codecVP8, []byte{0x11, 0x50}, false},
		{"opus", codecAudio, []byte{0xfc}, true},
	} {
		if got := isKeyframeStart(tc.kind, tc.p); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSkippableAtFrameStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind codecKind
		p    []byte
		want bool
	}{
		{"h264 AUD", codecH264, []byte{0x09, 0x30}, true},
		{"h264 SEI", codecH264, []byte{0x06, 0x05}, true},
		{"h264 STAP-A AUD+SEI", codecH264, []byte{0x78, 0, 2, 0x09, 0x30, 0, 2, 0x06, 0x05}, true},
		{"h264 STAP-A AUD+SPS", codecH264, []byte{0x78, 0, 2, 0x09, 0x30, 0, 2, 0x67, 0x42}, false},
		{"h264 STAP-A empty", codecH264, []byte{0x78}, false},
		{"h264 SPS", codecH264, []byte{0x67, 0x42}, false},
		{"h264 non-IDR", codecH264, []byte{0x41, 0x9a}, false},
		{"vp8", codecVP8, []byte{0x09, 0x30}, false},
	} {
		if got := skippableAtFrameStart(tc.kind, tc.p); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestKeyframeRequesterMerges: requests inside the interval become one request at
// its end.
func TestKeyframeRequesterMerges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sent atomic.Int32
		k := newKeyframeRequester(500*time.Millisecond, func() { sent.Add(1) })
		defer k.stop()
		k.request() // sent at once
		for range 10 {
			k.request() // merged into one, sent when the interval ends
		}
		if got := sent.Load(); got != 1 {
			t.Fatalf("after a burst: %d sent, want 1", got)
		}
		time.Sleep(499 * time.Millisecond)
		synctest.Wait()
		if got := sent.Load(); got != 1 {
			t.Fatalf("before the interval ends: %d sent, want 1", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := sent.Load(); got != 2 {
			t.Fatalf("at the interval's end: %d sent, want 2", got)
		}
		time.Sleep(time.Second)
		k.request() // quiet for longer than the interval: sent at once
		if got := sent.Load(); got != 3 {
			t.Fatalf("after a quiet second: %d sent, want 3", got)
		}
	})
}
