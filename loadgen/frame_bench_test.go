package loadgen

import (
	"encoding/json"
	"testing"
)

var benchFrame = []byte(`{"type":"events","room":"seed","events":[{"type":"chat","seq":123456,"ts":1764050000123,"user":{"id":"lg0-1234","name":"viewer lg0-1234","role":"viewer"},"text":"好看!这个颜色太美了 love it","cid":"lgsa2kd8f1c-0-1x2k"}]}`)

// BenchmarkDecodeFrame is what every viewer pays per frame: at 22k viewers and 20
// frames/s each, the load generator decodes 440k of these a second.
func BenchmarkDecodeFrame(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var f frame
		if err := json.Unmarshal(benchFrame, &f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEvents(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseEvents(benchFrame, make([]event, 0, 4)); !ok {
			b.Fatal("not parsed")
		}
	}
}

// The fast path reads the same type, seq and cid as encoding/json, or declines.
func TestParseEventsAgreesWithEncodingJSON(t *testing.T) {
	frames := []string{
		string(benchFrame),
		`{"type":"events","room":"r1","events":[]}`,
		`{"type":"events","room":"r1","events":[{"type":"chat","seq":41,"ts":1764050000123,"user":{"id":"u7","name":"小红","role":"viewer"},"text":"好看!","cid":"c-19"},{"type":"chat","seq":44,"ts":1764050000150,"user":{"id":"h1","name":"Host","role":"host"},"text":"3 2 1 上链接","cid":"c-2"}]}`,
		`{"type":"events","room":"r1","events":[{"type":"chat","seq":45,"text":"he said \"hi\", {not} [an] object\\","user":{"id":"a","name":"x\"y","role":"viewer"},"cid":"lg1-0-1"}]}`,
		`{"type":"events","room":"r1","events":[{"type":"delete","seq":46,"ts":1,"line":45,"by":{"id":"h","name":"H","role":"host"}}]}`,
		`{"type":"events","room":"r1","events":[{"type":"slow_mode","seconds":5}, {"type":"chat","seq":47,"extra":[1,2,{"a":[3]}],"n":null,"b":true,"f":-1.5e3,"cid":"lgx-1-2"}]}`,
		`{"type":"events","room":"r1","events":[{"type":"reset","lines":[{"type":"chat","seq":3,"cid":"x"}]}]}`,
		`{"type":"events","room":"r1","events":[{"type":"chat","seq":48,"cid":"esc\u0041"}]}`,
		`{"type":"reply","id":"j","result":{}}`,
		`{"type":"events","room":"r1","events":[{"type":"chat","seq":4`,
	}
	for _, fr := range frames {
		got, ok := parseEvents([]byte(fr), nil)
		var f frame
		err := json.Unmarshal([]byte(fr), &f)
		if !ok {
			continue // declined: the slow path decodes it
		}
		if err != nil {
			t.Errorf("fast path accepted invalid frame %s", fr)
			continue
		}
		if len(got) != len(f.Events) {
			t.Errorf("%s: %d events, encoding/json %d", fr, len(got), len(f.Events))
			continue
		}
		for i := range got {
			w := f.Events[i]
			if got[i].Type != w.Type || got[i].Seq != w.Seq || got[i].CID != w.CID {
				t.Errorf("%s: event %d = %+v, encoding/json %+v", fr, i, got[i], w)
			}
		}
	}
	for _, must := range frames[:6] {
		if _, ok := parseEvents([]byte(must), nil); !ok {
			t.Errorf("fast path declined an ordinary frame: %s", must)
		}
	}
}
